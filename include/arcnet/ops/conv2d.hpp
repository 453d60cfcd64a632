#pragma once
// 2-D convolution on NHWC activations with (KH, KW, Cin, Cout) weights, so that the weight is
// a [KH*KW*Cin, Cout] GEMM operand as stored: forward, backward, the differentiable form, and
// the conversion from and to PyTorch's OIHW weight layout for checkpoints.
#include "arcnet/autograd/variable.hpp"
#include "arcnet/ops/matmul.hpp"  // the CPU backend runs its GEMMs through matmul_impl

namespace arcnet::ops {

/// Strides, zero padding and dilation of a 2-D convolution, with PyTorch's meaning.
struct conv2d_options {
  int stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dilation_h = 1, dilation_w = 1;
};

template <class D>
struct conv2d_impl {
  static_assert(detail::always_false<D>, "arcnet::ops conv2d: no backend for this device; CUDA backends exist "
                                         "only in translation units compiled by nvcc (.cu)");
};

}  // namespace arcnet::ops

namespace arcnet::detail {

/// Every size a convolution kernel needs, derived once from the shapes and the options.
struct conv2d_geometry {
  index_t n = 0, h = 0, w = 0, cin = 0;  // input (N, H, W, Cin)
  index_t kh = 0, kw = 0, cout = 0;      // weight (KH, KW, Cin, Cout)
  index_t ho = 0, wo = 0;                // output (N, Ho, Wo, Cout)
  index_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dilation_h = 1, dilation_w = 1;

  index_t depth() const { return kh * kw * cin; }  // K of the GEMM: one im2col row
  index_t rows() const { return n * ho * wo; }     // M of the GEMM: one output pixel each
  /// A 1x1, stride-1, unpadded convolution is a plain GEMM on the input as stored.
  bool is_pointwise() const { return kh == 1 && kw == 1 && stride_h == 1 && stride_w == 1 && pad_h == 0 && pad_w == 0; }
};

/// Output size of a convolution along one axis; <= 0 when the input is too small.
inline index_t conv2d_output_size(index_t in, index_t kernel, index_t stride, index_t pad, index_t dilation) {
  index_t span = in + 2 * pad - dilation * (kernel - 1) - 1;
  return span < 0 ? 0 : span / stride + 1;
}

template <class T, class D>
conv2d_geometry conv2d_geometry_of(char const* op, tensor<T, D> const& x, tensor<T, D> const& weight,
                                   ops::conv2d_options o) {
  if (o.stride_h < 1 || o.stride_w < 1)
    raise<config_error>(op, ": stride must be at least 1, got (", o.stride_h, ", ", o.stride_w, ")");
  if (o.dilation_h < 1 || o.dilation_w < 1)
    raise<config_error>(op, ": dilation must be at least 1, got (", o.dilation_h, ", ", o.dilation_w, ")");
  if (o.pad_h < 0 || o.pad_w < 0)
    raise<config_error>(op, ": padding must not be negative, got (", o.pad_h, ", ", o.pad_w, ")");
  if (!x.defined()) raise<error>(op, ": the input is undefined");
  if (!weight.defined()) raise<error>(op, ": the weight is undefined");
  if (x.rank() != 4) raise<shape_error>(op, ": expected input of rank 4 (N, H, W, C), got shape ", x.shape());
  if (weight.rank() != 4)
    raise<shape_error>(op, ": expected weight of rank 4 (KH, KW, Cin, Cout), got shape ", weight.shape());
  conv2d_geometry g;
  g.n = x.size(0), g.h = x.size(1), g.w = x.size(2), g.cin = x.size(3);
  g.kh = weight.size(0), g.kw = weight.size(1), g.cout = weight.size(3);
  if (weight.size(2) != g.cin)
    raise<shape_error>(op, ": expected input with ", weight.size(2), " channels (weight ", weight.shape(),
                       "), got input ", x.shape());
  if (g.kh < 1 || g.kw < 1) raise<shape_error>(op, ": the weight ", weight.shape(), " has an empty kernel");
  g.stride_h = o.stride_h, g.stride_w = o.stride_w, g.pad_h = o.pad_h, g.pad_w = o.pad_w;
  g.dilation_h = o.dilation_h, g.dilation_w = o.dilation_w;
  g.ho = conv2d_output_size(g.h, g.kh, g.stride_h, g.pad_h, g.dilation_h);
  g.wo = conv2d_output_size(g.w, g.kw, g.stride_w, g.pad_w, g.dilation_w);
  if (g.ho <= 0 || g.wo <= 0)
    raise<shape_error>(op, ": input ", x.shape(), " is too small for kernel ", g.kh, "x", g.kw, " with padding (",
                       g.pad_h, ", ", g.pad_w, ") and dilation (", g.dilation_h, ", ", g.dilation_w,
                       "): the output would be empty");
  return g;
}

/// tensor<T, D>*, in a non-deduced context so that callers may pass a plain nullptr.
template <class T, class D>
struct conv2d_gradient_out {
  using type = tensor<T, D>*;
};

template <class T, class D>
void conv2d_check_bias(char const* op, tensor<T, D> const& bias, tensor<T, D> const& weight) {
  if (bias.defined() && (bias.rank() != 1 || bias.size(0) != weight.size(3)))
    raise<shape_error>(op, ": expected bias of shape (", weight.size(3), ",) for weight ", weight.shape(),
                       ", got bias ", bias.shape());
}

}  // namespace arcnet::detail

#include "arcnet/ops/cpu/conv2d.hpp"
#if defined(__CUDACC__)
#include "arcnet/ops/cuda/conv2d.cuh"
#endif

namespace arcnet::ops {

/// y = conv(x, weight) + bias. x (N, H, W, Cin), weight (KH, KW, Cin, Cout), bias (Cout) or
/// undefined; returns (N, Ho, Wo, Cout), Ho = (H + 2*pad_h - dilation_h*(KH-1) - 1)/stride_h + 1.
template <class T, class D>
tensor<T, D> conv2d_forward(tensor<T, D> const& x, tensor<T, D> const& weight, tensor<T, D> const& bias,
                            conv2d_options o = {}) {
  auto g = detail::conv2d_geometry_of("conv2d", x, weight, o);
  detail::conv2d_check_bias("conv2d", bias, weight);
  auto y = tensor<T, D>::uninitialized(shape{g.n, g.ho, g.wo, g.cout});
  conv2d_impl<D>::forward(g, x.data(), weight.data(), bias.defined() ? bias.data() : nullptr, y.data());
  return y;
}

/// dx += dL/dx (N, H, W, Cin), dweight += dL/dweight (KH, KW, Cin, Cout), dbias += dL/dbias (Cout),
/// given dy = dL/dy (N, Ho, Wo, Cout). Accumulates; any of the three may be null.
template <class T, class D>
void conv2d_backward(tensor<T, D> const& x, tensor<T, D> const& weight, tensor<T, D> const& dy, conv2d_options o,
                     typename detail::conv2d_gradient_out<T, D>::type dx,
                     typename detail::conv2d_gradient_out<T, D>::type dweight,
                     typename detail::conv2d_gradient_out<T, D>::type dbias) {
  auto g = detail::conv2d_geometry_of("conv2d_backward", x, weight, o);
  shape ys{g.n, g.ho, g.wo, g.cout};
  if (!dy.defined() || dy.shape() != ys)
    detail::raise<shape_error>("conv2d_backward: expected output gradient of shape ", ys, ", got ", dy.shape());
  if (dx && dx->shape() != x.shape())
    detail::raise<shape_error>("conv2d_backward: expected input gradient of shape ", x.shape(), ", got ",
                               dx->shape());
  if (dweight && dweight->shape() != weight.shape())
    detail::raise<shape_error>("conv2d_backward: expected weight gradient of shape ", weight.shape(), ", got ",
                               dweight->shape());
  if (dbias && dbias->shape() != shape{g.cout})
    detail::raise<shape_error>("conv2d_backward: expected bias gradient of shape (", g.cout, ",), got ",
                               dbias->shape());
  conv2d_impl<D>::backward(g, x.data(), weight.data(), dy.data(), dx ? dx->data() : nullptr,
                           dweight ? dweight->data() : nullptr, dbias ? dbias->data() : nullptr);
}

/// Inference only (no autograd), CPU: y = conv(x, weight * scale) + shift, then max(y, 0) when
/// relu, with scale and shift per output channel: an eval-mode batch norm folded into the
/// convolution (as torch.fx's fuse_conv_bn_eval does), and the ReLU applied while each chunk of
/// the output is still in cache. Saves the batch norm's and the ReLU's passes over the output.
template <class T>
tensor<T, cpu> conv2d_scale_shift_forward(tensor<T, cpu> const& x, tensor<T, cpu> const& weight,
                                          tensor<T, cpu> const& scale, tensor<T, cpu> const& shift,
                                          conv2d_options o, bool relu) {
  auto g = detail::conv2d_geometry_of("conv2d_scale_shift", x, weight, o);
  if (!scale.defined() || !shift.defined())
    arcnet::detail::raise<shape_error>("conv2d_scale_shift: scale and shift must both be given");
  detail::conv2d_check_bias("conv2d_scale_shift (scale)", scale, weight);
  detail::conv2d_check_bias("conv2d_scale_shift (shift)", shift, weight);
  auto w = tensor<T, cpu>::uninitialized(weight.shape());
  T const* src = weight.data();
  T const* sc = scale.data();
  T* dst = w.data();
  index_t const rows = weight.numel() / g.cout;
#pragma omp parallel for if (weight.numel() > (1 << 16))
  for (index_t r = 0; r < rows; ++r)
    for (index_t c = 0; c < g.cout; ++c) dst[r * g.cout + c] = src[r * g.cout + c] * sc[c];
  auto y = tensor<T, cpu>::uninitialized(shape{g.n, g.ho, g.wo, g.cout});
  conv2d_impl<cpu>::forward(g, x.data(), w.data(), shift.data(), y.data(), relu);
  return y;
}

/// Differentiable convolution: x (N, H, W, Cin), weight (KH, KW, Cin, Cout), bias (Cout) or an
/// undefined variable (no bias) -> (N, Ho, Wo, Cout).
template <class T, class D>
variable<T, D> conv2d(variable<T, D> const& x, variable<T, D> const& weight, variable<T, D> const& bias,
                      conv2d_options o = {}) {
  if (!x.defined() || !weight.defined()) detail::raise<error>("conv2d: the input and the weight must be defined");
  auto y = conv2d_forward(x.value(), weight.value(), bias.defined() ? bias.value() : tensor<T, D>(), o);
  return autograd::make_op("conv2d", y, {x, weight, bias}, [x, weight, bias, o](tensor<T, D> const& dy) mutable {
    bool db = bias.defined() && bias.requires_grad();
    conv2d_backward(x.value(), weight.value(), dy, o, x.requires_grad() ? &x.grad_for_accumulate() : nullptr,
                    weight.requires_grad() ? &weight.grad_for_accumulate() : nullptr,
                    db ? &bias.grad_for_accumulate() : nullptr);
  });
}

/// PyTorch's OIHW weight (Cout, Cin, KH, KW) in our layout (KH, KW, Cin, Cout); a new tensor.
template <class T>
tensor<T, cpu> conv_weight_from_oihw(tensor<T, cpu> const& w) {
  check_rank("conv_weight_from_oihw", "the weight (Cout, Cin, KH, KW)", w, 4);
  index_t co = w.size(0), ci = w.size(1), kh = w.size(2), kw = w.size(3);
  auto out = tensor<T, cpu>::uninitialized(shape{kh, kw, ci, co});
  T const* s = w.data();
  T* d = out.data();
  for (index_t o = 0; o < co; ++o)
    for (index_t i = 0; i < ci; ++i)
      for (index_t y = 0; y < kh; ++y)
        for (index_t x = 0; x < kw; ++x) d[((y * kw + x) * ci + i) * co + o] = s[((o * ci + i) * kh + y) * kw + x];
  return out;
}

/// Our weight layout (KH, KW, Cin, Cout) as PyTorch's OIHW (Cout, Cin, KH, KW); a new tensor.
template <class T>
tensor<T, cpu> conv_weight_to_oihw(tensor<T, cpu> const& w) {
  check_rank("conv_weight_to_oihw", "the weight (KH, KW, Cin, Cout)", w, 4);
  index_t kh = w.size(0), kw = w.size(1), ci = w.size(2), co = w.size(3);
  auto out = tensor<T, cpu>::uninitialized(shape{co, ci, kh, kw});
  T const* s = w.data();
  T* d = out.data();
  for (index_t o = 0; o < co; ++o)
    for (index_t i = 0; i < ci; ++i)
      for (index_t y = 0; y < kh; ++y)
        for (index_t x = 0; x < kw; ++x) d[((o * ci + i) * kh + y) * kw + x] = s[((y * kw + x) * ci + i) * co + o];
  return out;
}

}  // namespace arcnet::ops
