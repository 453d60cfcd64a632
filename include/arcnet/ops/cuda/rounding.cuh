#pragma once
// Correctly rounded arithmetic that nvcc never contracts into fused multiply-adds, for kernels
// that must round as the CPU backend does (built without FMA): `y + a * b` fused rounds once,
// which moves results near cancellation (1 - x * x, y += alpha * x, shifted moments) beyond the
// tests' bounds. On the host (the index checks of the per-element functions) the plain
// operators; for types other than float and double, too.
#include <cmath>
#include <type_traits>

namespace arcnet::ops::cuda_kernels {

template <class T>
__host__ __device__ inline T mul_rn(T a, T b) {
#if defined(__CUDA_ARCH__)
  if constexpr (std::is_same_v<T, float>) return __fmul_rn(a, b);
  else if constexpr (std::is_same_v<T, double>) return __dmul_rn(a, b);
  else return a * b;
#else
  return a * b;
#endif
}
template <class T>
__host__ __device__ inline T add_rn(T a, T b) {
#if defined(__CUDA_ARCH__)
  if constexpr (std::is_same_v<T, float>) return __fadd_rn(a, b);
  else if constexpr (std::is_same_v<T, double>) return __dadd_rn(a, b);
  else return a + b;
#else
  return a + b;
#endif
}
template <class T>
__host__ __device__ inline T sub_rn(T a, T b) {
#if defined(__CUDA_ARCH__)
  if constexpr (std::is_same_v<T, float>) return __fsub_rn(a, b);
  else if constexpr (std::is_same_v<T, double>) return __dsub_rn(a, b);
  else return a - b;
#else
  return a - b;
#endif
}
template <class T>
__host__ __device__ inline T div_rn(T a, T b) {
#if defined(__CUDA_ARCH__)
  if constexpr (std::is_same_v<T, float>) return __fdiv_rn(a, b);
  else if constexpr (std::is_same_v<T, double>) return __ddiv_rn(a, b);
  else return a / b;
#else
  return a / b;
#endif
}
__host__ __device__ inline double sqrt_rn(double a) {
#if defined(__CUDA_ARCH__)
  return __dsqrt_rn(a);
#else
  return std::sqrt(a);
#endif
}

}  // namespace arcnet::ops::cuda_kernels
