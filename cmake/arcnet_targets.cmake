# The INTERFACE targets users link, their install rules and the package config.
find_package(Eigen3 3.4 REQUIRED NO_MODULE)
# OpenMP threads the CPU kernels; without it every `#pragma omp` is a no-op and they run on one
# thread. Off by default only for ThreadSanitizer builds (see arcnet_sanitize.cmake).
if(ARCNET_SANITIZE MATCHES "thread")
  set(arcnet_openmp_default OFF)
else()
  set(arcnet_openmp_default ON)
endif()
option(ARCNET_OPENMP "Thread the CPU kernels with OpenMP (when the compiler supports it)" ${arcnet_openmp_default})
if(ARCNET_OPENMP)
  find_package(OpenMP)
  if(ARCNET_SANITIZE MATCHES "thread")
    message(WARNING "arcnet: ARCNET_SANITIZE=thread with ARCNET_OPENMP=ON: libgomp is not built with ThreadSanitizer, "
                    "so expect false data-race reports from OpenMP regions; pass -DARCNET_OPENMP=OFF")
  endif()
endif()

add_library(arcnet INTERFACE)
add_library(arcnet::arcnet ALIAS arcnet)
target_include_directories(arcnet INTERFACE
  $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
  $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
target_compile_features(arcnet INTERFACE cxx_std_17)
target_link_libraries(arcnet INTERFACE Eigen3::Eigen)
if(ARCNET_OPENMP AND OpenMP_CXX_FOUND)
  target_link_libraries(arcnet INTERFACE OpenMP::OpenMP_CXX)
  # OpenMP::OpenMP_CXX flags only CXX sources; nvcc's host compiler needs -fopenmp too, or the
  # CPU kernels in a .cu file run on one thread (and warn at every #pragma omp).
  target_compile_options(arcnet INTERFACE $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-fopenmp>)
else()
  # The kernels' `#pragma omp` lines are then plain loops: not worth a warning in every file.
  target_compile_options(arcnet INTERFACE $<$<COMPILE_LANG_AND_ID:CXX,GNU,Clang>:-Wno-unknown-pragmas>)
endif()
if(ARCNET_WITH_CUDA)
  target_compile_definitions(arcnet INTERFACE ARCNET_WITH_CUDA=1)
  target_link_libraries(arcnet INTERFACE CUDA::cudart CUDA::cublas)
  # Eigen serves only the CPU backend: without this, nvcc sees its __host__ __device__ markings
  # and warns about them in every .cu file.
  target_compile_definitions(arcnet INTERFACE $<$<COMPILE_LANGUAGE:CUDA>:EIGEN_NO_CUDA>)
  if(ARCNET_WITH_CUDNN)
    target_compile_definitions(arcnet INTERFACE ARCNET_WITH_CUDNN=1)
    target_include_directories(arcnet INTERFACE ${ARCNET_CUDNN_INCLUDE_DIR})
    target_link_libraries(arcnet INTERFACE ${ARCNET_CUDNN_LIBRARY})
  endif()
endif()
set_target_properties(arcnet PROPERTIES EXPORT_NAME arcnet)

# arcnet::io (safetensors, PyTorch .pth) adds nlohmann_json, so a user of the core alone needs none.
find_package(nlohmann_json 3 QUIET)
if(nlohmann_json_FOUND)
  set(ARCNET_WITH_IO ON)
  add_library(arcnet_io INTERFACE)
  add_library(arcnet::io ALIAS arcnet_io)
  target_link_libraries(arcnet_io INTERFACE arcnet nlohmann_json::nlohmann_json)
  set_target_properties(arcnet_io PROPERTIES EXPORT_NAME io)
else()
  set(ARCNET_WITH_IO OFF)
  message(STATUS "arcnet: nlohmann_json 3 not found, so arcnet::io (safetensors, .pth) is not available; "
                 "install nlohmann-json3-dev to get it")
endif()

install(DIRECTORY include/arcnet DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS arcnet EXPORT arcnetTargets)
if(ARCNET_WITH_IO)
  install(TARGETS arcnet_io EXPORT arcnetTargets)
endif()
include(${CMAKE_CURRENT_LIST_DIR}/arcnet_data.cmake)  # arcnet::data: TurboJPEG, libpng, zlib, threads
include(${CMAKE_CURRENT_LIST_DIR}/arcnet_viz.cmake)   # arcnet::viz: cairo (needs arcnet::data)
include(${CMAKE_CURRENT_LIST_DIR}/arcnet_distributed.cmake)  # arcnet::mpi: MPI (optional)
include(${CMAKE_CURRENT_LIST_DIR}/arcnet_engine.cmake)  # arcnet::engine: Boost.Program_options (needs io, data)
install(EXPORT arcnetTargets NAMESPACE arcnet:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/arcnet)
configure_package_config_file(cmake/arcnetConfig.cmake.in ${CMAKE_CURRENT_BINARY_DIR}/arcnetConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/arcnet)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/arcnetConfigVersion.cmake
  COMPATIBILITY SameMinorVersion ARCH_INDEPENDENT)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/arcnetConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/arcnetConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/arcnet)
