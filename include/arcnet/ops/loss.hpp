#pragma once
// Softmax, log-softmax (over the last axis) and softmax cross-entropy with integer targets,
// averaged over the batch (PyTorch's F.cross_entropy with reduction "mean", optional label
// smoothing).
#include <cstdint>
#include <vector>

#include "arcnet/autograd/variable.hpp"

namespace arcnet::ops {

template <class D>
struct loss_impl {
  static_assert(detail::always_false<D>, "arcnet::ops loss: no backend for this device; CUDA backends exist "
                                         "only in translation units compiled by nvcc (.cu)");
};

}  // namespace arcnet::ops

#include "arcnet/ops/cpu/loss.hpp"
#if defined(__CUDACC__)
#include "arcnet/ops/cuda/loss.cuh"
#endif

namespace arcnet::detail {
/// Rows and columns of x seen as (rows, last axis); throws for rank 0.
template <class T, class D>
void softmax_dims(char const* op, tensor<T, D> const& x, index_t& rows, index_t& cols) {
  if (!x.defined()) raise<error>(op, ": the input is undefined");
  if (x.rank() < 1) raise<shape_error>(op, ": expected an input of rank >= 1, got shape ", x.shape());
  cols = x.size(-1);
  rows = cols > 0 ? x.numel() / cols : 0;
}
}  // namespace arcnet::detail

namespace arcnet::ops {

// ---- raw tensors ------------------------------------------------------------------------------

/// Softmax over the last axis of x (..., C), stable (the row maximum is subtracted first).
template <class T, class D>
tensor<T, D> softmax_forward(tensor<T, D> const& x) {
  index_t rows, cols;
  detail::softmax_dims("softmax", x, rows, cols);
  auto y = tensor<T, D>::uninitialized(x.shape());
  loss_impl<D>::softmax(x, y, rows, cols, false);
  return y;
}
/// dx += y * (dy - sum(dy * y)) per row; y = softmax_forward(x).
template <class T, class D>
void softmax_backward(tensor<T, D> const& y, tensor<T, D> const& dy, tensor<T, D>& dx) {
  check_same_shape("softmax_backward", y, dy);
  check_same_shape("softmax_backward", y, dx);
  index_t rows, cols;
  detail::softmax_dims("softmax_backward", y, rows, cols);
  loss_impl<D>::softmax_backward(y, dy, dx, rows, cols, false);
}

/// log(softmax(x)) over the last axis of x (..., C), computed as x - max - log(sum(exp(x - max))).
template <class T, class D>
tensor<T, D> log_softmax_forward(tensor<T, D> const& x) {
  index_t rows, cols;
  detail::softmax_dims("log_softmax", x, rows, cols);
  auto y = tensor<T, D>::uninitialized(x.shape());
  loss_impl<D>::softmax(x, y, rows, cols, true);
  return y;
}
/// dx += dy - exp(y) * sum(dy) per row; y = log_softmax_forward(x).
template <class T, class D>
void log_softmax_backward(tensor<T, D> const& y, tensor<T, D> const& dy, tensor<T, D>& dx) {
  check_same_shape("log_softmax_backward", y, dy);
  check_same_shape("log_softmax_backward", y, dx);
  index_t rows, cols;
  detail::softmax_dims("log_softmax_backward", y, rows, cols);
  loss_impl<D>::softmax_backward(y, dy, dx, rows, cols, true);
}

/// Checks logits (N, C) against targets (N values in [0, C)) and label_smoothing in [0, 1].
template <class T, class D>
void check_cross_entropy_args(tensor<T, D> const& logits, std::vector<std::int64_t> const& targets,
                              double label_smoothing) {
  if (!logits.defined()) detail::raise<error>("cross_entropy: the logits are undefined");
  if (logits.rank() != 2)
    detail::raise<shape_error>("cross_entropy: expected logits of rank 2 (N, C), got shape ", logits.shape());
  index_t n = logits.size(0), c = logits.size(1);
  if (static_cast<index_t>(targets.size()) != n)
    detail::raise<shape_error>("cross_entropy: expected ", n, " targets (one per row of logits ", logits.shape(),
                               "), got ", targets.size());
  if (n == 0) detail::raise<shape_error>("cross_entropy: the batch is empty (logits ", logits.shape(), ")");
  for (index_t i = 0; i < n; ++i) {
    auto t = targets[static_cast<size_t>(i)];
    if (t < 0 || t >= c)
      detail::raise<shape_error>("cross_entropy: target ", t, " at row ", i, " is out of range for ", c,
                                 " classes");
  }
  if (!(label_smoothing >= 0 && label_smoothing <= 1))
    detail::raise<config_error>("cross_entropy: label_smoothing must be in [0, 1], got ", label_smoothing);
}

/// Mean over rows of -sum_c q[c] log softmax(logits)[c], q = (1 - ls) onehot(target) + ls / C.
/// logits (N, C); returns the loss (shape ()) and writes the softmax probabilities (N, C) into
/// prob for cross_entropy_backward.
template <class T, class D>
tensor<T, D> cross_entropy_forward(tensor<T, D> const& logits, std::vector<std::int64_t> const& targets,
                                   tensor<T, D>& prob, double label_smoothing = 0.0) {
  check_cross_entropy_args(logits, targets, label_smoothing);
  prob = tensor<T, D>::uninitialized(logits.shape());
  auto loss = tensor<T, D>::uninitialized(shape{});
  loss_impl<D>::cross_entropy(logits, targets, label_smoothing, prob, loss);
  return loss;
}
/// dlogits += dy * (prob - q) / N, dy of shape ().
template <class T, class D>
void cross_entropy_backward(tensor<T, D> const& prob, std::vector<std::int64_t> const& targets,
                            tensor<T, D> const& dy, tensor<T, D>& dlogits, double label_smoothing = 0.0) {
  check_cross_entropy_args(prob, targets, label_smoothing);
  check_same_shape("cross_entropy_backward", prob, dlogits);
  ARCNET_CHECK_AS(shape_error, dy.numel() == 1, "cross_entropy_backward: expected a scalar gradient, got shape ",
                  dy.shape());
  loss_impl<D>::cross_entropy_backward(prob, targets, label_smoothing, dy, dlogits);
}

// ---- differentiable -----------------------------------------------------------------------------

/// Differentiable softmax over the last axis.
template <class T, class D>
variable<T, D> softmax(variable<T, D> const& x) {
  auto y = softmax_forward(x.value());
  return autograd::make_op("softmax", y, {x}, [x, y](tensor<T, D> const& dy) mutable {
    if (x.requires_grad()) softmax_backward(y, dy, x.grad_for_accumulate());
  });
}

/// Differentiable log-softmax over the last axis.
template <class T, class D>
variable<T, D> log_softmax(variable<T, D> const& x) {
  auto y = log_softmax_forward(x.value());
  return autograd::make_op("log_softmax", y, {x}, [x, y](tensor<T, D> const& dy) mutable {
    if (x.requires_grad()) log_softmax_backward(y, dy, x.grad_for_accumulate());
  });
}

/// Softmax cross-entropy of logits (N, C) against integer targets (N values in [0, C)), mean
/// over the batch; a scalar (shape ()). label_smoothing as in PyTorch.
template <class T, class D>
variable<T, D> cross_entropy(variable<T, D> const& logits, std::vector<std::int64_t> const& targets,
                             double label_smoothing = 0.0) {
  if (!logits.defined()) detail::raise<error>("cross_entropy: the logits are undefined");
  tensor<T, D> prob;
  auto loss = cross_entropy_forward(logits.value(), targets, prob, label_smoothing);
  return autograd::make_op("cross_entropy", loss, {logits},
                           [logits, prob, targets, label_smoothing](tensor<T, D> const& dy) mutable {
                             if (logits.requires_grad())
                               cross_entropy_backward(prob, targets, dy, logits.grad_for_accumulate(),
                                                      label_smoothing);
                           });
}

}  // namespace arcnet::ops
