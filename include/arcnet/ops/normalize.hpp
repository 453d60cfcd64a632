#pragma once
// L2 normalisation along one axis: y = x / max(||x||_2, eps) (torch.nn.functional.normalize
// with p = 2). ArcFace normalises its features and class weights with it.
#include "arcnet/autograd/variable.hpp"

namespace arcnet::ops {

template <class D>
struct normalize_impl {
  static_assert(detail::always_false<D>, "arcnet::ops normalize: no backend for this device; CUDA backends "
                                         "exist only in translation units compiled by nvcc (.cu)");
};

}  // namespace arcnet::ops

#include "arcnet/ops/cpu/normalize.hpp"
#if defined(__CUDACC__)
#include "arcnet/ops/cuda/normalize.cuh"
#endif

namespace arcnet::detail {
/// x seen as (outer, r, inner) around the normalised axis.
struct l2_normalize_dims {
  index_t outer = 1, r = 1, inner = 1;
};
template <class T, class D>
l2_normalize_dims l2_normalize_layout(char const* op, tensor<T, D> const& x, int axis) {
  if (!x.defined()) raise<error>(op, ": the input is undefined");
  if (x.rank() < 1) raise<shape_error>(op, ": expected an input of rank >= 1, got shape ", x.shape());
  auto const& s = x.shape();
  int a = s.normalize(axis, op);
  return {s.prod(0, a), s[a], s.prod(a + 1, s.rank())};
}
}  // namespace arcnet::detail

namespace arcnet::ops {

// ---- raw tensors ------------------------------------------------------------------------------

/// y = x / max(||x||_2, eps) along `axis` (negative counts from the end); writes the clamped
/// norms max(||x||, eps) into `norms` (x's shape with `axis` of size 1) for l2_normalize_backward.
template <class T, class D>
tensor<T, D> l2_normalize_forward(tensor<T, D> const& x, int axis, double eps, tensor<T, D>& norms) {
  auto d = detail::l2_normalize_layout("l2_normalize", x, axis);
  ARCNET_CHECK_AS(config_error, eps > 0, "l2_normalize: eps must be positive, got ", eps);
  std::vector<index_t> kept = x.shape().dims();
  kept[static_cast<size_t>(x.shape().normalize(axis))] = 1;
  norms = tensor<T, D>::uninitialized(shape(kept));
  auto y = tensor<T, D>::uninitialized(x.shape());
  normalize_impl<D>::forward(x, y, norms, d.outer, d.r, d.inner, eps);
  return y;
}

/// dx += (dy - y * sum(dy * y)) / norm along `axis` where ||x|| > eps, dx += dy / eps where the
/// norm was clamped; y and norms from l2_normalize_forward.
template <class T, class D>
void l2_normalize_backward(tensor<T, D> const& y, tensor<T, D> const& norms, tensor<T, D> const& dy,
                           tensor<T, D>& dx, int axis, double eps) {
  check_same_shape("l2_normalize_backward", y, dy);
  check_same_shape("l2_normalize_backward", y, dx);
  auto d = detail::l2_normalize_layout("l2_normalize_backward", y, axis);
  ARCNET_CHECK_AS(shape_error, norms.numel() == d.outer * d.inner, "l2_normalize_backward: norms of shape ",
                  norms.shape(), " do not fit ", y.shape(), " along axis ", axis);
  normalize_impl<D>::backward(y, norms, dy, dx, d.outer, d.r, d.inner, eps);
}

// ---- differentiable -----------------------------------------------------------------------------

/// Differentiable x / max(||x||_2, eps) along `axis`; y has x's shape.
template <class T, class D>
variable<T, D> l2_normalize(variable<T, D> const& x, int axis = -1, double eps = 1e-12) {
  if (!x.defined()) detail::raise<error>("l2_normalize: the input is undefined");
  tensor<T, D> norms;
  auto y = l2_normalize_forward(x.value(), axis, eps, norms);
  return autograd::make_op("l2_normalize", y, {x}, [x, y, norms, axis, eps](tensor<T, D> const& dy) mutable {
    if (x.requires_grad()) l2_normalize_backward(y, norms, dy, x.grad_for_accumulate(), axis, eps);
  });
}

}  // namespace arcnet::ops
