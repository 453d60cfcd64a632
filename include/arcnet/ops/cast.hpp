#pragma once
// Element type conversion: y = x as U (float, double, arcnet::bfloat16), rounded to nearest even
// into bf16. Differentiable: the gradient is converted back and added, as PyTorch's .to(dtype).
// The bf16 activations of the CUDA device's bf16 mode enter and leave the network through it.
#include <type_traits>

#include "arcnet/autograd/variable.hpp"

namespace arcnet::ops {

/// The backends (ops/cpu/cast.hpp, ops/cuda/cast.cuh): forward(x, y): y = convert<U>(x);
/// backward(dy, dx): dx += convert<T>(dy), the sum computed in compute_t<T> and rounded once.
template <class D>
struct cast_impl {
  static_assert(detail::always_false<D>, "arcnet::ops cast: no backend for this device; CUDA backends exist only "
                                         "in translation units compiled by nvcc (.cu)");
};

}  // namespace arcnet::ops

#include "arcnet/ops/cpu/cast.hpp"
#if defined(__CUDACC__)
#include "arcnet/ops/cuda/cast.cuh"
#endif

namespace arcnet::ops {

/// x converted to U; a new tensor even when U is T.
template <class U, class T, class D>
tensor<U, D> cast_forward(tensor<T, D> const& x) {
  ARCNET_CHECK(x.defined(), "cast: the input is undefined");
  auto y = tensor<U, D>::uninitialized(x.shape());
  cast_impl<D>::forward(x, y);
  return y;
}
/// dx += dy converted to dx's type.
template <class T, class U, class D>
void cast_backward(tensor<U, D> const& dy, tensor<T, D>& dx) {
  check_same_shape("cast_backward", dy, dx);
  cast_impl<D>::backward(dy, dx);
}

/// Differentiable conversion to U; x itself when it already holds U (as PyTorch's .to()).
template <class U, class T, class D>
variable<U, D> cast(variable<T, D> const& x) {
  if constexpr (std::is_same_v<U, T>) {
    return x;
  } else {
    auto y = cast_forward<U>(x.value());
    return autograd::make_mixed_op(
        "cast", y,
        [x](tensor<U, D> const& dy) mutable {
          if (x.requires_grad()) cast_backward(dy, x.grad_for_accumulate());
        },
        x);
  }
}

}  // namespace arcnet::ops
