#pragma once
// Batch normalisation over channels-last input: x (..., C), statistics per channel over all
// other axes ((N, H, W, C) for BatchNorm2d, (N, C) for BatchNorm1d). PyTorch semantics: biased
// variance to normalise, unbiased variance in the running estimate.
//
// The activations (x, the output, the residual; type A) and the parameters and statistics
// (type P) have one type, or, on the CUDA device, bf16 activations with float parameters and
// statistics (bf16 mode's storage: computed in float, each output rounded to bf16 once, as
// PyTorch's cuDNN batch norm under autocast).
#include <algorithm>
#include <type_traits>

#include "arcnet/autograd/variable.hpp"
#include "arcnet/ops/elementwise.hpp"

namespace arcnet::ops {

template <class D>
struct batch_norm_impl {
  static_assert(detail::always_false<D>, "arcnet::ops batch_norm: no backend for this device; CUDA backends "
                                         "exist only in translation units compiled by nvcc (.cu)");
};

}  // namespace arcnet::ops

#include "arcnet/ops/cpu/batch_norm.hpp"
#if defined(__CUDACC__)
#include "arcnet/ops/cuda/batch_norm.cuh"
#endif

namespace arcnet::ops {

/// training: normalise with batch statistics and update the running ones; otherwise use the
/// running statistics. momentum weighs the new batch in the running average, eps stabilises 1/std.
/// relu: the output is max(y, 0), in the same pass (a batch norm followed by a ReLU, as in every
/// ResNet block, without the ReLU's own passes over the activation and without keeping the
/// pre-ReLU tensor for the backward; values and gradients equal the two ops run one by one).
struct batch_norm_options {
  bool training = true;
  double momentum = 0.1;
  double eps = 1e-5;
  bool relu = false;
};

}  // namespace arcnet::ops

namespace arcnet::detail {
/// Checks the operands of batch_norm and returns the channel count C.
template <class A, class P, class D>
index_t check_batch_norm_args(tensor<A, D> const& x, tensor<P, D> const& weight, tensor<P, D> const& bias,
                              tensor<P, D> const& running_mean, tensor<P, D> const& running_var,
                              ops::batch_norm_options const& o) {
  static_assert(std::is_same_v<A, P> || (std::is_same_v<A, bfloat16> && std::is_same_v<P, float> &&
                                         std::is_same_v<D, cuda>),
                "arcnet::ops::batch_norm: activations and parameters of one type, or bf16 activations with "
                "float parameters on the CUDA device");
  if (!x.defined()) raise<error>("batch_norm: the input is undefined");
  if (x.rank() < 2)
    raise<shape_error>("batch_norm: expected input of rank >= 2 (N, ..., C), got shape ", x.shape());
  index_t c = x.size(-1);
  auto check_channels = [&](tensor<P, D> const& t, char const* name) {
    if (t.defined() && (t.rank() != 1 || t.size(0) != c))
      raise<shape_error>("batch_norm: expected ", name, " of shape (", c, ",) for input ", x.shape(), ", got ",
                         t.shape());
  };
  check_channels(weight, "weight");
  check_channels(bias, "bias");
  check_channels(running_mean, "running_mean");
  check_channels(running_var, "running_var");
  if (running_mean.defined() != running_var.defined())
    raise<error>("batch_norm: running_mean and running_var must both be defined or both undefined");
  if (!(o.eps > 0)) raise<config_error>("batch_norm: eps must be positive, got ", o.eps);
  if (o.training && x.numel() / std::max<index_t>(c, 1) <= 1)
    raise<shape_error>("batch_norm: expected more than 1 value per channel when training, got input of shape ",
                       x.shape());
  return c;
}
}  // namespace arcnet::detail

namespace arcnet::ops {

// ---- raw tensors ------------------------------------------------------------------------------

/// y = (x - mean) * invstd * weight + bias over x (..., C), plus residual (x's shape) when it is
/// given, then max(y, 0) when o.relu. weight and bias (C) may be undefined (identity affine).
/// Batch statistics are used when o.training or when the running statistics are undefined; in
/// training, defined running_mean/running_var (C) are updated in place. Writes the mean and
/// 1/sqrt(var + eps) that were used into save_mean and save_invstd (C), which batch_norm_backward
/// needs.
template <class A, class P, class D>
tensor<A, D> batch_norm_forward(tensor<A, D> const& x, tensor<P, D> const& weight, tensor<P, D> const& bias,
                                tensor<P, D>& running_mean, tensor<P, D>& running_var, batch_norm_options o,
                                tensor<P, D>& save_mean, tensor<P, D>& save_invstd,
                                tensor<A, D> const* residual = nullptr) {
  index_t c = detail::check_batch_norm_args(x, weight, bias, running_mean, running_var, o);
  if (residual) check_same_shape("batch_norm (residual)", x, *residual);
  index_t m = x.numel() / std::max<index_t>(c, 1);
  save_mean = tensor<P, D>::uninitialized(shape{c});
  save_invstd = tensor<P, D>::uninitialized(shape{c});
  if (o.training || !running_mean.defined()) {
    batch_norm_impl<D>::batch_statistics(x, m, c, o.eps, save_mean, save_invstd,
                                         o.training && running_mean.defined() ? &running_mean : nullptr,
                                         o.training && running_var.defined() ? &running_var : nullptr,
                                         o.momentum);
  } else {
    batch_norm_impl<D>::running_statistics(running_mean, running_var, o.eps, save_mean, save_invstd);
  }
  auto y = tensor<A, D>::uninitialized(x.shape());
  batch_norm_impl<D>::normalize(x, m, c, save_mean, save_invstd, weight, bias, y, o.relu,
                                residual ? residual->data() : nullptr);
  return y;
}

/// Accumulates the gradients of batch_norm_forward: dx (x's shape), dweight and dbias (C); each
/// may be null. batch_stats says whether the forward normalised with batch statistics (then
/// the mean and variance depend on x); otherwise the backward is the plain per-channel affine one.
/// relu_out: the output of a forward with o.relu (dy then counts only where it is positive), or null.
template <class A, class P, class D>
void batch_norm_backward(tensor<A, D> const& x, tensor<P, D> const& weight, tensor<P, D> const& save_mean,
                         tensor<P, D> const& save_invstd, tensor<A, D> const& dy, bool batch_stats,
                         tensor<A, D>* dx, tensor<P, D>* dweight, tensor<P, D>* dbias,
                         tensor<A, D> const* relu_out = nullptr) {
  check_same_shape("batch_norm_backward", x, dy);
  if (dx) check_same_shape("batch_norm_backward", x, *dx);
  if (relu_out) check_same_shape("batch_norm_backward", x, *relu_out);
  index_t c = x.size(-1);
  index_t m = x.numel() / std::max<index_t>(c, 1);
  batch_norm_impl<D>::backward(x, dy, m, c, save_mean, save_invstd, weight, batch_stats, dx, dweight, dbias,
                               relu_out);
}

// ---- differentiable -----------------------------------------------------------------------------

}  // namespace arcnet::ops

namespace arcnet::detail {
/// ops::batch_norm (residual undefined) and ops::batch_norm_add (residual of x's shape): one
/// recorded op whose backward masks dy with the output when o.relu (the output is kept by the
/// next layer anyway) and passes the masked dy to the residual.
template <class A, class P, class D>
variable<A, D> record_batch_norm(variable<A, D> const& x, variable<P, D> const& weight, variable<P, D> const& bias,
                                 tensor<P, D>& running_mean, tensor<P, D>& running_var, ops::batch_norm_options o,
                                 variable<A, D> const& residual) {
  if (!x.defined()) raise<error>("batch_norm: the input is undefined");
  tensor<P, D> w = weight.defined() ? weight.value() : tensor<P, D>();
  tensor<P, D> b = bias.defined() ? bias.value() : tensor<P, D>();
  tensor<P, D> save_mean, save_invstd;
  auto y = ops::batch_norm_forward(x.value(), w, b, running_mean, running_var, o, save_mean, save_invstd,
                                   residual.defined() ? &residual.value() : nullptr);
  bool batch_stats = o.training || !running_mean.defined();
  tensor<A, D> relu_out = o.relu ? y : tensor<A, D>();  // shares y's storage
  static constexpr char const* names[2][2] = {{"batch_norm", "batch_norm_relu"},
                                              {"batch_norm_add", "batch_norm_add_relu"}};
  return autograd::make_mixed_op(
      names[residual.defined()][o.relu], y,
      [x, weight, bias, residual, w, save_mean, save_invstd, batch_stats, relu_out](tensor<A, D> const& dy) mutable {
        bool gx = x.requires_grad(), gw = weight.defined() && weight.requires_grad(),
             gb = bias.defined() && bias.requires_grad();
        tensor<A, D> const* mask = relu_out.defined() ? &relu_out : nullptr;
        ops::batch_norm_backward(x.value(), w, save_mean, save_invstd, dy, batch_stats,
                                 gx ? &x.grad_for_accumulate() : nullptr, gw ? &weight.grad_for_accumulate() : nullptr,
                                 gb ? &bias.grad_for_accumulate() : nullptr, mask);
        if (residual.defined() && residual.requires_grad()) {
          if (mask) ops::unary_backward(ops::unary_kind::relu, *mask, *mask, dy, residual.grad_for_accumulate());
          else ops::axpy(A(1), dy, residual.grad_for_accumulate());
        }
      },
      x, weight, bias, residual);
}
}  // namespace arcnet::detail

namespace arcnet::ops {

/// Differentiable batch norm over x (..., C): weight, bias (C) or undefined (affine = false);
/// running_mean, running_var (C) or undefined (track_running_stats = false: always batch
/// statistics). Updates the running statistics in place in training mode, like PyTorch. With
/// o.relu the output is max(batch_norm(x), 0), recorded as one op ("batch_norm_relu").
template <class A, class P, class D>
variable<A, D> batch_norm(variable<A, D> const& x, variable<P, D> const& weight, variable<P, D> const& bias,
                          tensor<P, D>& running_mean, tensor<P, D>& running_var, batch_norm_options o = {}) {
  return detail::record_batch_norm(x, weight, bias, running_mean, running_var, o, variable<A, D>());
}

/// batch_norm(x) + residual (x's shape), then max(., 0) when o.relu, as one op: the end of a
/// ResNet block (bn3, the shortcut's add and the ReLU) in one pass forward and one backward, with
/// neither the batch norm's output nor the sum kept for the backward. Values and gradients equal
/// batch_norm, add and relu run one by one.
template <class A, class P, class D>
variable<A, D> batch_norm_add(variable<A, D> const& x, variable<P, D> const& weight, variable<P, D> const& bias,
                              tensor<P, D>& running_mean, tensor<P, D>& running_var, variable<A, D> const& residual,
                              batch_norm_options o = {}) {
  if (!residual.defined()) detail::raise<error>("batch_norm_add: the residual is undefined");
  return detail::record_batch_norm(x, weight, bias, running_mean, running_var, o, residual);
}

}  // namespace arcnet::ops
