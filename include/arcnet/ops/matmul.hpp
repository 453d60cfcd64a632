#pragma once
// Matrix products: matmul (2-D, optional transposes) and linear (x W^T + b, PyTorch's layout).
#include "arcnet/autograd/variable.hpp"
#include "arcnet/core/precision.hpp"
#include "arcnet/ops/reduce.hpp"

namespace arcnet::ops {

template <class D>
struct matmul_impl {
  static_assert(detail::always_false<D>, "arcnet::ops matmul: no backend for this device; CUDA backends exist "
                                         "only in translation units compiled by nvcc (.cu)");
};

}  // namespace arcnet::ops

#include "arcnet/ops/cpu/matmul.hpp"
#if defined(__CUDACC__)
#include "arcnet/ops/cuda/matmul.cuh"
#endif

namespace arcnet::ops {

struct matmul_options {
  bool transpose_a = false;
  bool transpose_b = false;
  /// Forward and backward in fp32 whatever precision::matmul() says (the ArcFace head: with bf16
  /// operands a cosine is off by ~4e-3, which the scale s = 64 makes a quarter of a logit).
  bool full_precision = false;
};
inline constexpr matmul_options transpose_rhs{false, true};

namespace detail_matmul {
template <class T, class D>
void dims(char const* op, tensor<T, D> const& a, tensor<T, D> const& b, matmul_options o, index_t& m, index_t& n,
          index_t& k) {
  check_rank(op, "the left operand", a, 2);
  check_rank(op, "the right operand", b, 2);
  m = o.transpose_a ? a.size(1) : a.size(0);
  k = o.transpose_a ? a.size(0) : a.size(1);
  index_t kb = o.transpose_b ? b.size(1) : b.size(0);
  n = o.transpose_b ? b.size(0) : b.size(1);
  if (k != kb)
    arcnet::detail::raise<shape_error>(op, ": inner dimensions differ: ", a.shape(), o.transpose_a ? "^T" : "",
                                       " x ", b.shape(), o.transpose_b ? "^T" : "", " (", k, " vs ", kb, ")");
}
}  // namespace detail_matmul

/// y = op(a) op(b), 2-D.
template <class T, class D>
tensor<T, D> matmul_forward(tensor<T, D> const& a, tensor<T, D> const& b, matmul_options o = {}) {
  index_t m, n, k;
  detail_matmul::dims("matmul", a, b, o, m, n, k);
  auto y = tensor<T, D>::uninitialized(shape{m, n});
  precision::scope const mode(o.full_precision ? precision::mode::fp32 : precision::matmul());
  matmul_impl<D>::gemm(o.transpose_a, o.transpose_b, m, n, k, T(1), a.data(), b.data(), T(0), y.data());
  return y;
}

/// da += dy op(b)^T (in a's layout), db += op(a)^T dy (in b's layout); either may be null.
template <class T, class D>
void matmul_backward(tensor<T, D> const& a, tensor<T, D> const& b, tensor<T, D> const& dy, matmul_options o,
                     tensor<T, D>* da, tensor<T, D>* db) {
  index_t m, n, k;
  detail_matmul::dims("matmul_backward", a, b, o, m, n, k);
  precision::scope const mode(o.full_precision ? precision::mode::fp32 : precision::matmul());
  if (da) {
    if (!o.transpose_a)  // da(m,k) += dy(m,n) * op(b)^T
      matmul_impl<D>::gemm(false, !o.transpose_b, m, k, n, T(1), dy.data(), b.data(), T(1), da->data());
    else  // da(k,m) += op(b)(k,n) * dy^T
      matmul_impl<D>::gemm(o.transpose_b, true, k, m, n, T(1), b.data(), dy.data(), T(1), da->data());
  }
  if (db) {
    if (!o.transpose_b)  // db(k,n) += op(a)^T dy
      matmul_impl<D>::gemm(!o.transpose_a, false, k, n, m, T(1), a.data(), dy.data(), T(1), db->data());
    else  // db(n,k) += dy^T op(a)
      matmul_impl<D>::gemm(true, o.transpose_a, n, k, m, T(1), dy.data(), a.data(), T(1), db->data());
  }
}

/// Differentiable op(a) op(b): (m, k) x (k, n) -> (m, n).
template <class T, class D>
variable<T, D> matmul(variable<T, D> const& a, variable<T, D> const& b, matmul_options o = {}) {
  auto y = matmul_forward(a.value(), b.value(), o);
  return autograd::make_op("matmul", y, {a, b}, [a, b, o](tensor<T, D> const& dy) mutable {
    matmul_backward(a.value(), b.value(), dy, o, a.requires_grad() ? &a.grad_for_accumulate() : nullptr,
                    b.requires_grad() ? &b.grad_for_accumulate() : nullptr);
  });
}

/// Differentiable x W^T + bias: x (N, in), weight (out, in) as in PyTorch, bias (out) or undefined.
template <class T, class D>
variable<T, D> linear(variable<T, D> const& x, variable<T, D> const& weight, variable<T, D> const& bias = {}) {
  check_rank("linear", "the input", x.value(), 2);
  check_rank("linear", "the weight", weight.value(), 2);
  if (x.size(1) != weight.size(1))
    detail::raise<shape_error>("linear: expected input features ", weight.size(1), " (weight ", weight.shape(),
                               "), got input ", x.shape());
  auto y = matmul(x, weight, transpose_rhs);
  if (!bias.defined()) return y;
  if (bias.rank() != 1 || bias.size(0) != weight.size(0))
    detail::raise<shape_error>("linear: expected bias of shape (", weight.size(0), ",), got ", bias.shape());
  return add(y, bias);
}

}  // namespace arcnet::ops
