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

# arcnet::nccl (data-parallel training on GPUs: include/arcnet/distributed/nccl.hpp and
# gradient_reducer<cuda>): arcnet::mpi + NCCL, when both the CUDA backend and MPI are built and
# NCCL's header and library are found (the CUDA toolkit's directories first: NVIDIA's images and
# the HPC SDK put NCCL there; -DNCCL_ROOT=... for another place). Optional: without it
# everything else builds, and GPU training runs on one device per program. It defines
# ARCNET_WITH_NCCL, which nccl.hpp and reducer.hpp need besides nvcc.
set(ARCNET_WITH_NCCL OFF)
if(ARCNET_WITH_CUDA AND ARCNET_WITH_MPI)
  set(arcnet_nccl_hints ${NCCL_ROOT} $ENV{NCCL_ROOT} ${CUDAToolkit_LIBRARY_ROOT} ${CUDAToolkit_TARGET_DIR}
                        /usr/local/cuda)
  find_path(NCCL_INCLUDE_DIR nccl.h HINTS ${arcnet_nccl_hints} ${CUDAToolkit_INCLUDE_DIRS} PATH_SUFFIXES include)
  find_library(NCCL_LIBRARY nccl HINTS ${arcnet_nccl_hints} ${CUDAToolkit_LIBRARY_DIR} PATH_SUFFIXES lib64 lib)
  if(NCCL_INCLUDE_DIR AND NCCL_LIBRARY)
    set(ARCNET_WITH_NCCL ON)
    add_library(arcnet_nccl INTERFACE)
    add_library(arcnet::nccl ALIAS arcnet_nccl)
    target_link_libraries(arcnet_nccl INTERFACE arcnet_mpi ${NCCL_LIBRARY})
    target_include_directories(arcnet_nccl SYSTEM INTERFACE ${NCCL_INCLUDE_DIR})
    target_compile_definitions(arcnet_nccl INTERFACE ARCNET_WITH_NCCL=1)
    set_target_properties(arcnet_nccl PROPERTIES EXPORT_NAME nccl)
    install(TARGETS arcnet_nccl EXPORT arcnetTargets)
    message(STATUS "arcnet: NCCL found (${NCCL_LIBRARY}), so arcnet::nccl (training on several GPUs) is built")
  else()
    message(STATUS "arcnet: NCCL not found (nccl.h, libnccl; set NCCL_ROOT), so arcnet::nccl (training on several "
                   "GPUs) is not built")
  endif()
endif()
