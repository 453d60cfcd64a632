#pragma once
// Element-wise ops: add/sub/mul/div with broadcasting, scalar ops, exp, log, sqrt, pow, clamp,
// abs, cos, acos, where. Raw-tensor forms (*_forward assigns, *_backward accumulates) and
// differentiable forms on variables.
#include "arcnet/autograd/variable.hpp"
#include "arcnet/ops/detail/broadcast.hpp"
#include "arcnet/ops/detail/elementwise_kinds.hpp"

#include "arcnet/ops/cpu/elementwise.hpp"
#if defined(__CUDACC__)
#include "arcnet/ops/cuda/elementwise.cuh"
#endif

namespace arcnet::ops {

// ---- raw tensors ------------------------------------------------------------------------------

/// y = f(x) for a unary kind with parameters p, q (pow: exponent; clamp: [p, q]; scalars: p).
template <class T, class D>
tensor<T, D> unary_forward(unary_kind k, tensor<T, D> const& x, T p = T(0), T q = T(0)) {
  auto y = tensor<T, D>::uninitialized(x.shape());
  elementwise_impl<D>::unary_forward(k, x, y, p, q);
  return y;
}
/// dx += dy * f'(x); x, y = f(x), dy and dx share one shape.
template <class T, class D>
void unary_backward(unary_kind k, tensor<T, D> const& x, tensor<T, D> const& y, tensor<T, D> const& dy,
                    tensor<T, D>& dx, T p = T(0), T q = T(0)) {
  check_same_shape("unary_backward", x, dy);
  check_same_shape("unary_backward", x, dx);
  elementwise_impl<D>::unary_backward(k, x, y, dy, dx, p, q);
}

/// y = a op b with broadcasting.
template <class T, class D>
tensor<T, D> binary_forward(binary_kind k, tensor<T, D> const& a, tensor<T, D> const& b) {
  auto y = tensor<T, D>::uninitialized(detail::broadcast_shapes("binary op", a.shape(), b.shape()));
  elementwise_impl<D>::binary_forward(k, a, b, y);
  return y;
}
/// da += dL/da, db += dL/db (reduced over broadcast dimensions); either may be null.
template <class T, class D>
void binary_backward(binary_kind k, tensor<T, D> const& a, tensor<T, D> const& b, tensor<T, D> const& dy,
                     tensor<T, D>* da, tensor<T, D>* db) {
  elementwise_impl<D>::binary_backward(k, a, b, dy, da, db);
}
/// y += alpha * x (same number of elements).
template <class T, class D>
void axpy(T alpha, tensor<T, D> const& x, tensor<T, D>& y) {
  if (x.numel() != y.numel())
    detail::raise<shape_error>("axpy: x ", x.shape(), " and y ", y.shape(), " differ in size");
  elementwise_impl<D>::axpy(alpha, x, y);
}

// ---- differentiable -----------------------------------------------------------------------------

}  // namespace arcnet::ops

namespace arcnet::detail {
template <class T, class D>
variable<T, D> record_unary(char const* name, ops::unary_kind k, variable<T, D> const& x, T p = T(0), T q = T(0)) {
  auto y = ops::unary_forward(k, x.value(), p, q);
  return autograd::make_op(name, y, {x}, [x, xv = x.value(), y, k, p, q](tensor<T, D> const& dy) mutable {
    if (x.requires_grad()) ops::unary_backward(k, xv, y, dy, x.grad_for_accumulate(), p, q);
  });
}
template <class T, class D>
variable<T, D> record_binary(char const* name, ops::binary_kind k, variable<T, D> const& a, variable<T, D> const& b) {
  auto y = tensor<T, D>::uninitialized(broadcast_shapes(name, a.shape(), b.shape()));
  ops::elementwise_impl<D>::binary_forward(k, a.value(), b.value(), y);
  return autograd::make_op(name, y, {a, b}, [a, b, k](tensor<T, D> const& dy) mutable {
    ops::binary_backward(k, a.value(), b.value(), dy, a.requires_grad() ? &a.grad_for_accumulate() : nullptr,
                    b.requires_grad() ? &b.grad_for_accumulate() : nullptr);
  });
}
}  // namespace arcnet::detail

namespace arcnet::ops {

/// a + b, a - b, a * b, a / b with broadcasting (NumPy rules).
template <class T, class D>
variable<T, D> add(variable<T, D> const& a, variable<T, D> const& b) { return detail::record_binary("add", binary_kind::add, a, b); }
template <class T, class D>
variable<T, D> sub(variable<T, D> const& a, variable<T, D> const& b) { return detail::record_binary("sub", binary_kind::sub, a, b); }
template <class T, class D>
variable<T, D> mul(variable<T, D> const& a, variable<T, D> const& b) { return detail::record_binary("mul", binary_kind::mul, a, b); }
template <class T, class D>
variable<T, D> div(variable<T, D> const& a, variable<T, D> const& b) { return detail::record_binary("div", binary_kind::div, a, b); }

template <class T, class D>
variable<T, D> neg(variable<T, D> const& x) { return detail::record_unary("neg", unary_kind::neg, x); }
template <class T, class D>
variable<T, D> exp(variable<T, D> const& x) { return detail::record_unary("exp", unary_kind::exp, x); }
/// Natural logarithm; x must be positive.
template <class T, class D>
variable<T, D> log(variable<T, D> const& x) { return detail::record_unary("log", unary_kind::log, x); }
template <class T, class D>
variable<T, D> sqrt(variable<T, D> const& x) { return detail::record_unary("sqrt", unary_kind::sqrt, x); }
/// |x|; the gradient at 0 is 0.
template <class T, class D>
variable<T, D> abs(variable<T, D> const& x) { return detail::record_unary("abs", unary_kind::abs, x); }
template <class T, class D>
variable<T, D> cos(variable<T, D> const& x) { return detail::record_unary("cos", unary_kind::cos, x); }
/// acos(clamp(x, -1 + eps, 1 - eps)), eps = acos_epsilon<T>(): finite value and gradient at +-1.
template <class T, class D>
variable<T, D> acos(variable<T, D> const& x) { return detail::record_unary("acos", unary_kind::acos, x); }
/// x^p for a scalar exponent p.
template <class T, class D>
variable<T, D> pow(variable<T, D> const& x, T p) { return detail::record_unary("pow", unary_kind::pow, x, p); }
/// min(max(x, lo), hi); gradient 1 inside [lo, hi], 0 outside.
template <class T, class D>
variable<T, D> clamp(variable<T, D> const& x, T lo, T hi) {
  ARCNET_CHECK(lo <= hi, "clamp: expected lo <= hi, got lo = ", lo, ", hi = ", hi);
  return detail::record_unary("clamp", unary_kind::clamp, x, lo, hi);
}
template <class T, class D>
variable<T, D> add_scalar(variable<T, D> const& x, T s) { return detail::record_unary("add_scalar", unary_kind::add_scalar, x, s); }
template <class T, class D>
variable<T, D> mul_scalar(variable<T, D> const& x, T s) { return detail::record_unary("mul_scalar", unary_kind::mul_scalar, x, s); }

/// Element-wise select: cond != 0 ? a : b. cond is a mask of 0/1 values (it gets no gradient);
/// all three have one shape.
template <class T, class D>
variable<T, D> where(tensor<T, D> const& cond, variable<T, D> const& a, variable<T, D> const& b) {
  check_same_shape("where", cond, a.value());
  check_same_shape("where", cond, b.value());
  auto y = tensor<T, D>::uninitialized(a.shape());
  elementwise_impl<D>::where_forward(cond, a.value(), b.value(), y);
  return autograd::make_op("where", y, {a, b}, [cond, a, b](tensor<T, D> const& dy) mutable {
    elementwise_impl<D>::where_backward(cond, dy, a.requires_grad() ? &a.grad_for_accumulate() : nullptr,
                                        b.requires_grad() ? &b.grad_for_accumulate() : nullptr);
  });
}

}  // namespace arcnet::ops

// Operators live in arcnet, beside variable, so that argument-dependent lookup finds them.
namespace arcnet {

// Operators on variables (and with scalars), for readable formulas.
template <class T, class D>
variable<T, D> operator+(variable<T, D> const& a, variable<T, D> const& b) { return ops::add(a, b); }
template <class T, class D>
variable<T, D> operator-(variable<T, D> const& a, variable<T, D> const& b) { return ops::sub(a, b); }
template <class T, class D>
variable<T, D> operator*(variable<T, D> const& a, variable<T, D> const& b) { return ops::mul(a, b); }
template <class T, class D>
variable<T, D> operator/(variable<T, D> const& a, variable<T, D> const& b) { return ops::div(a, b); }
template <class T, class D>
variable<T, D> operator-(variable<T, D> const& x) { return ops::neg(x); }
template <class T, class D>
variable<T, D> operator+(variable<T, D> const& x, T s) { return ops::add_scalar(x, s); }
template <class T, class D>
variable<T, D> operator+(T s, variable<T, D> const& x) { return ops::add_scalar(x, s); }
template <class T, class D>
variable<T, D> operator-(variable<T, D> const& x, T s) { return ops::add_scalar(x, -s); }
template <class T, class D>
variable<T, D> operator-(T s, variable<T, D> const& x) { return ops::add_scalar(ops::neg(x), s); }
template <class T, class D>
variable<T, D> operator*(variable<T, D> const& x, T s) { return ops::mul_scalar(x, s); }
template <class T, class D>
variable<T, D> operator*(T s, variable<T, D> const& x) { return ops::mul_scalar(x, s); }
template <class T, class D>
variable<T, D> operator/(variable<T, D> const& x, T s) { return ops::mul_scalar(x, T(1) / s); }
template <class T, class D>
variable<T, D> operator/(T s, variable<T, D> const& x) { return detail::record_unary("rdiv_scalar", ops::unary_kind::rdiv_scalar, x, s); }

}  // namespace arcnet
