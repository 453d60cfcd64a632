#pragma once
// 2-D pooling on NHWC activations: max and average pooling over windows (PyTorch semantics,
// including ceil_mode and count_include_pad), and global average pooling (N, H, W, C) -> (N, C).
#include "arcnet/autograd/variable.hpp"

namespace arcnet::ops {

/// Window, stride and implicit padding of a 2-D pooling, with PyTorch's meaning: max pooling
/// treats the padding as -inf; average pooling counts it in the divisor when count_include_pad;
/// ceil_mode rounds the output size up (a window may not start in the right/bottom padding).
struct pool2d_options {
  int kernel_h, kernel_w, stride_h, stride_w, pad_h = 0, pad_w = 0;
  bool count_include_pad = true;
  bool ceil_mode = false;
};

template <class D>
struct pool_impl {
  static_assert(detail::always_false<D>, "arcnet::ops pool: no backend for this device; CUDA backends exist "
                                         "only in translation units compiled by nvcc (.cu)");
};

}  // namespace arcnet::ops

namespace arcnet::detail {

/// Every size a pooling kernel needs, derived once from the input shape and the options.
struct pool2d_geometry {
  index_t n = 0, h = 0, w = 0, c = 0;  // input (N, H, W, C)
  index_t ho = 0, wo = 0;              // output (N, Ho, Wo, C)
  index_t kernel_h = 1, kernel_w = 1, stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0;
  bool count_include_pad = true;
};

/// PyTorch's pooling output size along one axis (floor or ceil; with ceil the last window
/// must start inside the input or its left padding); may be <= 0.
inline index_t pool2d_output_size(index_t in, index_t kernel, index_t stride, index_t pad, bool ceil_mode) {
  index_t num = in + 2 * pad - kernel + (ceil_mode ? stride - 1 : 0);
  index_t out = (num >= 0 ? num / stride : -((-num + stride - 1) / stride)) + 1;  // floor division
  if (ceil_mode && out > 0 && (out - 1) * stride >= in + pad) --out;
  return out;
}

template <class T, class D>
pool2d_geometry pool2d_geometry_of(char const* op, tensor<T, D> const& x, ops::pool2d_options o) {
  if (o.kernel_h < 1 || o.kernel_w < 1)
    raise<config_error>(op, ": kernel size must be at least 1, got (", o.kernel_h, ", ", o.kernel_w, ")");
  if (o.stride_h < 1 || o.stride_w < 1)
    raise<config_error>(op, ": stride must be at least 1, got (", o.stride_h, ", ", o.stride_w, ")");
  if (o.pad_h < 0 || o.pad_w < 0)
    raise<config_error>(op, ": padding must not be negative, got (", o.pad_h, ", ", o.pad_w, ")");
  if (o.pad_h > o.kernel_h / 2 || o.pad_w > o.kernel_w / 2)
    raise<config_error>(op, ": padding must be at most half the kernel size, got padding (", o.pad_h, ", ", o.pad_w,
                        ") for kernel (", o.kernel_h, ", ", o.kernel_w, ")");
  if (!x.defined()) raise<error>(op, ": the input is undefined");
  if (x.rank() != 4) raise<shape_error>(op, ": expected input of rank 4 (N, H, W, C), got shape ", x.shape());
  pool2d_geometry g;
  g.n = x.size(0), g.h = x.size(1), g.w = x.size(2), g.c = x.size(3);
  g.kernel_h = o.kernel_h, g.kernel_w = o.kernel_w, g.stride_h = o.stride_h, g.stride_w = o.stride_w;
  g.pad_h = o.pad_h, g.pad_w = o.pad_w, g.count_include_pad = o.count_include_pad;
  g.ho = pool2d_output_size(g.h, g.kernel_h, g.stride_h, g.pad_h, o.ceil_mode);
  g.wo = pool2d_output_size(g.w, g.kernel_w, g.stride_w, g.pad_w, o.ceil_mode);
  if (g.ho <= 0 || g.wo <= 0)
    raise<shape_error>(op, ": input ", x.shape(), " is too small for kernel (", g.kernel_h, ", ", g.kernel_w,
                       ") with padding (", g.pad_h, ", ", g.pad_w, "): the output would be empty");
  return g;
}

template <class U, class D>
void pool2d_check_output(char const* op, char const* what, tensor<U, D> const& t, shape const& expected) {
  if (!t.defined() || t.shape() != expected)
    raise<shape_error>(op, ": expected ", what, " of shape ", expected, ", got ", t.shape());
}

}  // namespace arcnet::detail

#include "arcnet/ops/cpu/pool.hpp"
#if defined(__CUDACC__)
#include "arcnet/ops/cuda/pool.cuh"
#endif

namespace arcnet::ops {

// ---- raw tensors ------------------------------------------------------------------------------

/// Max over each window: x (N, H, W, C) -> (N, Ho, Wo, C). When argmax is given it is set to
/// (N, Ho, Wo, C) holding, per output, the input position ih * W + iw of the maximum (the first
/// one on ties; PyTorch's `indices`).
template <class T, class D>
tensor<T, D> max_pool2d_forward(tensor<T, D> const& x, pool2d_options o, tensor<index_t, D>* argmax = nullptr) {
  auto g = detail::pool2d_geometry_of("max_pool2d", x, o);
  auto y = tensor<T, D>::uninitialized(shape{g.n, g.ho, g.wo, g.c});
  if (argmax) *argmax = tensor<index_t, D>::uninitialized(y.shape());
  pool_impl<D>::max_forward(g, x.data(), y.data(), argmax ? argmax->data() : nullptr);
  return y;
}

/// dx += dy routed to each window's maximum, from max_pool2d_forward's argmax. dx (N, H, W, C);
/// dy and argmax (N, Ho, Wo, C).
template <class T, class D>
void max_pool2d_backward(tensor<T, D> const& dy, tensor<index_t, D> const& argmax, tensor<T, D>& dx) {
  check_rank("max_pool2d_backward", "the input gradient", dx, 4);
  check_rank("max_pool2d_backward", "the output gradient", dy, 4);
  detail::pool2d_check_output("max_pool2d_backward", "argmax", argmax, dy.shape());
  if (dy.size(0) != dx.size(0) || dy.size(3) != dx.size(3))
    detail::raise<shape_error>("max_pool2d_backward: output gradient ", dy.shape(), " does not fit input gradient ",
                               dx.shape());
  detail::pool2d_geometry g;
  g.n = dx.size(0), g.h = dx.size(1), g.w = dx.size(2), g.c = dx.size(3), g.ho = dy.size(1), g.wo = dy.size(2);
  pool_impl<D>::max_backward(g, dy.data(), argmax.data(), dx.data());
}

/// Mean over each window: x (N, H, W, C) -> (N, Ho, Wo, C); the divisor follows count_include_pad.
template <class T, class D>
tensor<T, D> avg_pool2d_forward(tensor<T, D> const& x, pool2d_options o) {
  auto g = detail::pool2d_geometry_of("avg_pool2d", x, o);
  auto y = tensor<T, D>::uninitialized(shape{g.n, g.ho, g.wo, g.c});
  pool_impl<D>::avg_forward(g, x.data(), y.data());
  return y;
}

/// dx += the adjoint of avg_pool2d_forward applied to dy. dx (N, H, W, C), dy (N, Ho, Wo, C).
template <class T, class D>
void avg_pool2d_backward(tensor<T, D> const& dy, pool2d_options o, tensor<T, D>& dx) {
  auto g = detail::pool2d_geometry_of("avg_pool2d_backward", dx, o);
  detail::pool2d_check_output("avg_pool2d_backward", "output gradient", dy, shape{g.n, g.ho, g.wo, g.c});
  pool_impl<D>::avg_backward(g, dy.data(), dx.data());
}

/// Mean over H and W: x (N, H, W, C) -> (N, C).
template <class T, class D>
tensor<T, D> global_avg_pool_forward(tensor<T, D> const& x) {
  if (!x.defined() || x.rank() != 4)
    detail::raise<shape_error>("global_avg_pool: expected input of rank 4 (N, H, W, C), got shape ", x.shape());
  ARCNET_CHECK_AS(shape_error, x.size(1) * x.size(2) > 0, "global_avg_pool: input ", x.shape(),
                  " has no pixels to average");
  auto y = tensor<T, D>::uninitialized(shape{x.size(0), x.size(3)});
  pool_impl<D>::global_avg_forward(x.size(0), x.size(1) * x.size(2), x.size(3), x.data(), y.data());
  return y;
}

/// dx += dy / (H * W) broadcast over each image. dx (N, H, W, C), dy (N, C).
template <class T, class D>
void global_avg_pool_backward(tensor<T, D> const& dy, tensor<T, D>& dx) {
  check_rank("global_avg_pool_backward", "the input gradient", dx, 4);
  detail::pool2d_check_output("global_avg_pool_backward", "output gradient", dy, shape{dx.size(0), dx.size(3)});
  pool_impl<D>::global_avg_backward(dx.size(0), dx.size(1) * dx.size(2), dx.size(3), dy.data(), dx.data());
}

// ---- differentiable -----------------------------------------------------------------------------

/// Differentiable max pooling: (N, H, W, C) -> (N, Ho, Wo, C); the gradient goes to each
/// window's (first) maximum.
template <class T, class D>
variable<T, D> max_pool2d(variable<T, D> const& x, pool2d_options o) {
  tensor<index_t, D> argmax;
  bool record = autograd::needs_grad(x);
  auto y = max_pool2d_forward(x.value(), o, record ? &argmax : nullptr);
  return autograd::make_op("max_pool2d", y, {x}, [x, argmax](tensor<T, D> const& dy) mutable {
    if (x.requires_grad()) max_pool2d_backward(dy, argmax, x.grad_for_accumulate());
  });
}

/// Differentiable average pooling: (N, H, W, C) -> (N, Ho, Wo, C).
template <class T, class D>
variable<T, D> avg_pool2d(variable<T, D> const& x, pool2d_options o) {
  auto y = avg_pool2d_forward(x.value(), o);
  return autograd::make_op("avg_pool2d", y, {x}, [x, o](tensor<T, D> const& dy) mutable {
    if (x.requires_grad()) avg_pool2d_backward(dy, o, x.grad_for_accumulate());
  });
}

/// Differentiable global average pooling: (N, H, W, C) -> (N, C).
template <class T, class D>
variable<T, D> global_avg_pool(variable<T, D> const& x) {
  auto y = global_avg_pool_forward(x.value());
  return autograd::make_op("global_avg_pool", y, {x}, [x](tensor<T, D> const& dy) mutable {
    if (x.requires_grad()) global_avg_pool_backward(dy, x.grad_for_accumulate());
  });
}

}  // namespace arcnet::ops
