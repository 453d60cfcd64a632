#pragma once
// Reductions: sum and mean over any set of axes, max over one axis (with its argmax), and
// sum_to (the reduction that undoes broadcasting).
#include <algorithm>
#include <vector>

#include "arcnet/autograd/variable.hpp"
#include "arcnet/ops/elementwise.hpp"

namespace arcnet::ops {

template <class D>
struct reduce_impl {
  static_assert(detail::always_false<D>, "arcnet::ops reduce: no backend for this device; CUDA backends exist "
                                         "only in translation units compiled by nvcc (.cu)");
};

}  // namespace arcnet::ops

#include "arcnet/ops/cpu/reduce.hpp"
#if defined(__CUDACC__)
#include "arcnet/ops/cuda/reduce.cuh"
#endif

namespace arcnet::detail {
/// Sorted, unique, normalised axes; all axes when `axes` is empty.
inline std::vector<int> reduction_axes(char const* op, shape const& s, std::vector<int> axes) {
  if (axes.empty())
    for (int i = 0; i < s.rank(); ++i) axes.push_back(i);
  for (auto& a : axes) a = s.normalize(a, op);
  std::sort(axes.begin(), axes.end());
  if (std::adjacent_find(axes.begin(), axes.end()) != axes.end())
    raise<shape_error>(op, ": an axis is repeated in the reduction axes of a tensor of shape ", s);
  return axes;
}
inline shape reduced_shape(shape const& s, std::vector<int> const& axes, bool keepdim) {
  std::vector<index_t> out;
  for (int i = 0; i < s.rank(); ++i) {
    bool reduced = std::find(axes.begin(), axes.end(), i) != axes.end();
    if (!reduced) out.push_back(s[i]);
    else if (keepdim) out.push_back(1);
  }
  return shape(out);
}
}  // namespace arcnet::detail

namespace arcnet::ops {

/// Sum over `axes` (all when empty), scaled by `scale`; reduced axes dropped unless keepdim.
template <class T, class D>
tensor<T, D> sum_forward(tensor<T, D> const& x, std::vector<int> axes, bool keepdim = false, T scale = T(1)) {
  axes = detail::reduction_axes("sum", x.shape(), std::move(axes));
  // Reduce one axis at a time, last first, keeping dims so that the remaining axes stay valid.
  tensor<T, D> cur = x;
  for (auto it = axes.rbegin(); it != axes.rend(); ++it) {
    int a = *it;
    auto const& s = cur.shape();
    std::vector<index_t> dims = s.dims();
    dims[static_cast<size_t>(a)] = 1;
    auto y = tensor<T, D>::uninitialized(shape(dims));
    T sc = (it == axes.rbegin()) ? scale : T(1);
    reduce_impl<D>::sum(cur, y, s.prod(0, a), s[a], s.prod(a + 1, s.rank()), sc);
    cur = y;
  }
  if (axes.empty() && scale != T(1)) {  // rank-0 input: nothing to reduce, only scale
    auto y = tensor<T, D>::uninitialized(x.shape());
    reduce_impl<D>::sum(x, y, 1, 1, 1, scale);
    cur = y;
  }
  return cur.view(detail::reduced_shape(x.shape(), axes, keepdim));
}

/// dx += scale * dy broadcast back over the reduced axes (dy with or without the kept dims).
template <class T, class D>
void sum_backward(tensor<T, D> const& dy, tensor<T, D>& dx, std::vector<int> axes, T scale = T(1)) {
  axes = detail::reduction_axes("sum_backward", dx.shape(), std::move(axes));
  auto kept = detail::reduced_shape(dx.shape(), axes, true);
  ARCNET_CHECK_AS(shape_error, dy.numel() == kept.numel(), "sum_backward: gradient of shape ", dy.shape(),
                  " does not fit the reduction of ", dx.shape());
  elementwise_impl<D>::broadcast_accumulate(dy.view(kept), dx, scale);
}

/// Max over one axis: values and, in `arg` (the values' shape, on x's device), the first index
/// along `axis` that attains each one.
template <class T, class D>
tensor<T, D> max_forward(tensor<T, D> const& x, int axis, tensor<index_t, D>& arg, bool keepdim = false) {
  axis = x.shape().normalize(axis, "max");
  auto const& s = x.shape();
  ARCNET_CHECK_AS(shape_error, s[axis] > 0, "max: cannot reduce the empty axis ", axis, " of shape ", s);
  auto y = tensor<T, D>::uninitialized(detail::reduced_shape(s, {axis}, keepdim));
  arg = tensor<index_t, D>::uninitialized(y.shape());
  reduce_impl<D>::max(x, y, arg, s.prod(0, axis), s[axis], s.prod(axis + 1, s.rank()));
  return y;
}

/// *out = the sum of x's squared elements, accumulated in double: finite exactly when every
/// element is (a float squared cannot overflow a double). `out` points into memory of x's
/// device, where the value is written without waiting (the trainer sums every gradient into
/// one device buffer and reads it back once).
template <class T, class D>
void sum_of_squares(tensor<T, D> const& x, double* out) {
  if (!x.defined()) detail::raise<error>("sum_of_squares: the tensor is undefined");
  reduce_impl<D>::sum_of_squares(x.data(), x.numel(), out);
}

/// Differentiable sum over `axes` (all when empty).
template <class T, class D>
variable<T, D> sum(variable<T, D> const& x, std::vector<int> axes = {}, bool keepdim = false) {
  auto y = sum_forward(x.value(), axes, keepdim);
  return autograd::make_op("sum", y, {x}, [x, axes](tensor<T, D> const& dy) mutable {
    if (x.requires_grad()) sum_backward(dy, x.grad_for_accumulate(), axes);
  });
}

/// Differentiable mean over `axes` (all when empty).
template <class T, class D>
variable<T, D> mean(variable<T, D> const& x, std::vector<int> axes = {}, bool keepdim = false) {
  auto norm = detail::reduction_axes("mean", x.shape(), axes);
  index_t count = 1;
  for (int a : norm) count *= x.shape()[a];
  ARCNET_CHECK_AS(shape_error, count > 0, "mean: reducing ", x.shape(), " over an empty axis");
  T scale = T(1) / static_cast<T>(count);
  auto y = sum_forward(x.value(), axes, keepdim, scale);
  return autograd::make_op("mean", y, {x}, [x, axes, scale](tensor<T, D> const& dy) mutable {
    if (x.requires_grad()) sum_backward(dy, x.grad_for_accumulate(), axes, scale);
  });
}

/// Differentiable max over one axis; the gradient flows to the first maximal element.
template <class T, class D>
variable<T, D> max(variable<T, D> const& x, int axis, bool keepdim = false) {
  tensor<index_t, D> arg;
  auto y = max_forward(x.value(), axis, arg, keepdim);
  int a = x.shape().normalize(axis, "max");
  auto const& s = x.shape();
  index_t outer = s.prod(0, a), r = s[a], inner = s.prod(a + 1, s.rank());
  return autograd::make_op("max", y, {x}, [x, arg = std::move(arg), outer, r, inner](tensor<T, D> const& dy) mutable {
    if (x.requires_grad()) reduce_impl<D>::max_backward(dy, arg, x.grad_for_accumulate(), outer, r, inner);
  });
}

/// Sums x down to `target`, a shape x broadcasts from (the gradient of broadcasting).
template <class T, class D>
tensor<T, D> sum_to(tensor<T, D> const& x, shape const& target) {
  auto check = detail::broadcast_shapes("sum_to", target, x.shape());
  ARCNET_CHECK_AS(shape_error, check == x.shape(), "sum_to: ", x.shape(), " is not a broadcast of ", target);
  std::vector<int> axes;
  int off = x.rank() - target.rank();
  for (int i = 0; i < x.rank(); ++i)
    if (i < off || target[i - off] == 1) axes.push_back(i);
  if (axes.empty()) return x.clone().view(target);
  return sum_forward(x, axes, true).view(target);
}

}  // namespace arcnet::ops
