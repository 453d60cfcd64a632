#pragma once
// CPU backend of ops/matmul.hpp: float products through our AVX-512 / AVX2 kernel where the CPU
// has one (ops/cpu/sgemm.hpp), everything else through Eigen's GEMM on row-major maps (threads
// through OpenMP).
#include <type_traits>

#include <Eigen/Core>

#include "arcnet/core/tensor.hpp"
#include "arcnet/ops/cpu/sgemm.hpp"

namespace arcnet::ops {

template <>
struct matmul_impl<cpu> {
  template <class T>
  using matrix_map = Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;
  template <class T>
  using const_matrix_map = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;

  /// C(m, n) = alpha * op(A) op(B) + beta * C, on raw row-major pointers. A is (m, k), or
  /// (k, m) when trans_a; B is (k, n), or (n, k) when trans_b. beta = 0 ignores C's contents.
  template <class T>
  static void gemm(bool trans_a, bool trans_b, index_t m, index_t n, index_t k, T alpha, T const* a, T const* b,
                   T beta, T* c) {
    if (m == 0 || n == 0) return;
    if constexpr (std::is_same_v<T, float>)
      if (sgemm::gemm(trans_a, trans_b, m, n, k, alpha, a, b, beta, c)) return;
    matrix_map<T> C(c, m, n);
    if (beta == T(0)) C.setZero();
    else if (beta != T(1)) C *= beta;
    if (k == 0) return;
    const_matrix_map<T> A(a, trans_a ? k : m, trans_a ? m : k);
    const_matrix_map<T> B(b, trans_b ? n : k, trans_b ? k : n);
    if (!trans_a && !trans_b) C.noalias() += alpha * A * B;
    else if (!trans_a && trans_b) C.noalias() += alpha * A * B.transpose();
    else if (trans_a && !trans_b) C.noalias() += alpha * A.transpose() * B;
    else C.noalias() += alpha * A.transpose() * B.transpose();
  }
};

}  // namespace arcnet::ops
