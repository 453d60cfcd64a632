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
    eigen_gemm(trans_a, trans_b, m, n, k, alpha, a, trans_a ? m : k, b, beta, c);
  }

  /// gemm through Eigen, with A's rows lda apart.
  template <class T>
  static void eigen_gemm(bool trans_a, bool trans_b, index_t m, index_t n, index_t k, T alpha, T const* a,
                         index_t lda, T const* b, T beta, T* c) {
    matrix_map<T> C(c, m, n);
    if (beta == T(0)) C.setZero();
    else if (beta != T(1)) C *= beta;
    if (k == 0) return;
    using strided = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>, 0,
                               Eigen::OuterStride<>>;
    strided A(a, trans_a ? k : m, trans_a ? m : k, Eigen::OuterStride<>(lda));
    const_matrix_map<T> B(b, trans_b ? n : k, trans_b ? k : n);
    if (!trans_a && !trans_b) C.noalias() += alpha * A * B;
    else if (!trans_a && trans_b) C.noalias() += alpha * A * B.transpose();
    else if (trans_a && !trans_b) C.noalias() += alpha * A.transpose() * B;
    else C.noalias() += alpha * A.transpose() * B.transpose();
  }

  /// op(B) (k x n) prepared once for many products with different left operands, as a
  /// convolution multiplies its weight with chunk after chunk: packed for our float kernel when
  /// it takes the product, else kept as it is for gemm. A null b prepares nothing (gemm must
  /// not be called then).
  template <class T>
  class prepared_rhs {
   public:
    prepared_rhs(bool trans_b, index_t k, index_t n, T const* b)
        : trans_b_(trans_b), k_(k), n_(n), b_(b), packed_(pack(trans_b, k, n, b)) {}
    /// C(m, n) = alpha op(A) op(B) + beta C, as gemm; lda: the row stride of A as stored (0:
    /// rows back to back).
    void gemm(bool trans_a, index_t m, T alpha, T const* a, T beta, T* c, index_t lda = 0) const {
      if constexpr (std::is_same_v<T, float>)
        if (!packed_.empty() && packed_.isa() == sgemm::active())
          return sgemm::gemm(trans_a, m, alpha, a, packed_, beta, c, lda);
      if (lda == 0 || lda == (trans_a ? m : k_))  // rows back to back: our kernel still takes it if it can
        return matmul_impl::gemm(trans_a, trans_b_, m, n_, k_, alpha, a, b_, beta, c);
      eigen_gemm(trans_a, trans_b_, m, n_, k_, alpha, a, lda, b_, beta, c);
    }

   private:
    static sgemm::packed_b pack(bool trans_b, index_t k, index_t n, T const* b) {
      if constexpr (std::is_same_v<T, float>)
        if (b && sgemm::packs(k, n)) return sgemm::packed_b(trans_b, k, n, b);
      return sgemm::packed_b();
    }
    bool trans_b_;
    index_t k_, n_;
    T const* b_;
    sgemm::packed_b packed_;  // empty unless float and our kernel
  };
};

}  // namespace arcnet::ops
