#pragma once
/// Version and feature macros. ARCNET_WITH_CUDA is set by CMake on the target when the
/// CUDA backend is enabled; CUDA kernels are additionally only visible to nvcc (__CUDACC__).
#define ARCNET_VERSION_MAJOR 0
#define ARCNET_VERSION_MINOR 1
#define ARCNET_VERSION_PATCH 0
#define ARCNET_VERSION_STRING "0.1.0"

#if defined(__CUDACC__)
#define ARCNET_CUDA_COMPILER 1
#else
#define ARCNET_CUDA_COMPILER 0
#endif
