# Resolves ARCNET_CUDA (AUTO|ON|OFF) into ARCNET_WITH_CUDA and enables the CUDA language.
set(ARCNET_WITH_CUDA OFF)
if(NOT ARCNET_CUDA STREQUAL "OFF")
  if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 90)  # H100 / H200; override with -DCMAKE_CUDA_ARCHITECTURES=...
    endif()
    enable_language(CUDA)
    find_package(CUDAToolkit REQUIRED)
    set(ARCNET_WITH_CUDA ON)
  elseif(ARCNET_CUDA STREQUAL "ON")
    message(FATAL_ERROR "arcnet: ARCNET_CUDA=ON but no CUDA compiler (nvcc) was found; "
                        "install the CUDA toolkit or pass -DARCNET_CUDA=OFF")
  endif()
endif()
message(STATUS "arcnet: CUDA backend ${ARCNET_WITH_CUDA} (ARCNET_CUDA=${ARCNET_CUDA})")

# cuDNN (optional, ARCNET_CUDNN AUTO|ON|OFF): the convolution backend of ops/cuda/conv2d_cudnn.cuh,
# used when cudnn.h and libcudnn are found next to the toolkit (they are at /usr/local/cuda on the
# build and GPU machines). Without it the convolutions run on im2col + cuBLAS.
set(ARCNET_CUDNN AUTO CACHE STRING "cuDNN convolutions on the CUDA device: AUTO (when found), ON or OFF")
set_property(CACHE ARCNET_CUDNN PROPERTY STRINGS AUTO ON OFF)
set(ARCNET_WITH_CUDNN OFF)
if(ARCNET_WITH_CUDA AND NOT ARCNET_CUDNN STREQUAL "OFF")
  find_path(ARCNET_CUDNN_INCLUDE_DIR cudnn.h HINTS ${CUDAToolkit_INCLUDE_DIRS})
  find_library(ARCNET_CUDNN_LIBRARY cudnn HINTS ${CUDAToolkit_LIBRARY_DIR})
  if(ARCNET_CUDNN_INCLUDE_DIR AND ARCNET_CUDNN_LIBRARY)
    set(ARCNET_WITH_CUDNN ON)
  elseif(ARCNET_CUDNN STREQUAL "ON")
    message(FATAL_ERROR "arcnet: ARCNET_CUDNN=ON but cudnn.h / libcudnn were not found next to the CUDA toolkit; "
                        "install cuDNN or pass -DARCNET_CUDNN=OFF")
  endif()
endif()
if(ARCNET_WITH_CUDA)
  message(STATUS "arcnet: cuDNN convolutions ${ARCNET_WITH_CUDNN} (ARCNET_CUDNN=${ARCNET_CUDNN})")
endif()
