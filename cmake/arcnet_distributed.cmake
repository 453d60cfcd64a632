# arcnet::mpi (data-parallel training across processes: include/arcnet/distributed/mpi.hpp):
# arcnet + MPI's C bindings, found when an MPI library is installed (Debian: libopenmpi-dev).
# Optional: without it everything else builds, and the programs train in one process.
option(ARCNET_MPI "Build arcnet::mpi and the MPI tests when an MPI library is found" ON)
set(ARCNET_WITH_MPI OFF)
if(ARCNET_MPI)
  set(MPI_CXX_SKIP_MPICXX ON)  # the C API from C++; not the removed MPI-2 C++ bindings
  find_package(MPI QUIET COMPONENTS CXX)
  if(MPI_CXX_FOUND)
    set(ARCNET_WITH_MPI ON)
    add_library(arcnet_mpi INTERFACE)
    add_library(arcnet::mpi ALIAS arcnet_mpi)
    target_link_libraries(arcnet_mpi INTERFACE arcnet MPI::MPI_CXX)
    target_compile_definitions(arcnet_mpi INTERFACE ARCNET_WITH_MPI=1)
    set_target_properties(arcnet_mpi PROPERTIES EXPORT_NAME mpi)
    install(TARGETS arcnet_mpi EXPORT arcnetTargets)
  else()
    message(STATUS "arcnet: no MPI library found, so arcnet::mpi (training on several processes) is not built; "
                   "install libopenmpi-dev to get it")
  endif()
endif()
