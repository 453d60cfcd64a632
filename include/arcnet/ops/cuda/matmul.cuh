#pragma once
// CUDA backend of ops/matmul.hpp: every product through cuBLAS on gpu::stream(). Our tensors
// are row-major and cuBLAS is column-major, so C = op(A) op(B) is computed as
// C^T = op(B)^T op(A)^T: the same memory read with the roles of A and B swapped.
#include <type_traits>

#include "arcnet/core/cuda.hpp"
#include "arcnet/core/precision.hpp"
#include "arcnet/core/tensor.hpp"

namespace arcnet::ops {

namespace cuda_kernels {
template <class T>
__global__ void scale_kernel(T* c, index_t n, T beta) {
  using C = compute_t<T>;
  for (index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x; i < n; i += index_t(gridDim.x) * blockDim.x)
    c[i] = convert<T>(convert<C>(c[i]) * convert<C>(beta));
}
}  // namespace cuda_kernels

template <>
struct matmul_impl<cuda> {
  /// C(m, n) = alpha * op(A) op(B) + beta * C, on device pointers, row-major, as
  /// matmul_impl<cpu>::gemm. beta = 0 ignores C's contents. bfloat16 operands and result are
  /// multiplied and accumulated in fp32 (the result rounded to bf16 once), whatever the mode.
  template <class T>
  static void gemm(bool trans_a, bool trans_b, index_t m, index_t n, index_t k, T alpha, T const* a, T const* b,
                   T beta, T* c) {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, bfloat16>,
                  "arcnet::ops::matmul on cuda: float, double or bfloat16");
    if (m == 0 || n == 0) return;
    ARCNET_CHECK_AS(shape_error, m <= max_dim && n <= max_dim && k <= max_dim, "matmul on cuda: ", m, "x", k,
                    " times ", k, "x", n, " exceeds cuBLAS's 32-bit dimensions");
    cudaDataType_t type = CUDA_R_64F;
    cublasComputeType_t compute = CUBLAS_COMPUTE_64F;
    if constexpr (std::is_same_v<T, float>) {
      type = CUDA_R_32F;
      compute = compute_type_f32();
    } else if constexpr (std::is_same_v<T, bfloat16>) {
      type = CUDA_R_16BF;
      compute = CUBLAS_COMPUTE_32F;
    }
    int const lda = static_cast<int>(trans_a ? m : k), ldb = static_cast<int>(trans_b ? k : n);
    if (k == 0) return scale(c, m * n, beta);  // C = beta C, without relying on cuBLAS's k = 0 case
    compute_t<T> const alpha_c = convert<compute_t<T>>(alpha), beta_c = convert<compute_t<T>>(beta);
    ARCNET_CUBLAS_CHECK(cublasGemmEx(gpu::blas(), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                     trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, static_cast<int>(n), static_cast<int>(m),
                                     static_cast<int>(k), &alpha_c, b, type, ldb, a, type, lda, &beta_c, c, type,
                                     static_cast<int>(n), compute, CUBLAS_GEMM_DEFAULT));
  }

  /// op(B) kept for many products with different left operands (the CPU packs it; cuBLAS
  /// reads it in place, so this only remembers it).
  template <class T>
  class prepared_rhs {
   public:
    prepared_rhs(bool trans_b, index_t k, index_t n, T const* b) : trans_b_(trans_b), k_(k), n_(n), b_(b) {}
    void gemm(bool trans_a, index_t m, T alpha, T const* a, T beta, T* c) const {
      matmul_impl::gemm(trans_a, trans_b_, m, n_, k_, alpha, a, b_, beta, c);
    }

   private:
    bool trans_b_;
    index_t k_, n_;
    T const* b_;
  };

 private:
  static constexpr index_t max_dim = 0x7fffffff;

  static cublasComputeType_t compute_type_f32() {
    switch (precision::matmul()) {
      case precision::mode::tf32: return CUBLAS_COMPUTE_32F_FAST_TF32;
      case precision::mode::bf16: return CUBLAS_COMPUTE_32F_FAST_16BF;
      default: return CUBLAS_COMPUTE_32F;
    }
  }
  template <class T>
  static void scale(T* c, index_t n, T beta) {
    if (beta == T(0)) return gpu::fill(c, n, T(0));
    if (beta == T(1)) return;
    ARCNET_CUDA_KERNEL(gpu::blocks_for(n), gpu::block_threads, 0, gpu::stream(), cuda_kernels::scale_kernel)(
        c, n, beta);
    ARCNET_CUDA_LAUNCH_CHECK("matmul scale_kernel");
  }
};

}  // namespace arcnet::ops
