#pragma once
// The element-wise functions, shared by the facade and every backend.
#include <type_traits>

#include "arcnet/core/tensor.hpp"

namespace arcnet::ops {

enum class unary_kind { neg, exp, log, sqrt, abs, cos, acos, relu, pow, clamp, add_scalar, mul_scalar, rdiv_scalar };
enum class binary_kind { add, sub, mul, div };

/// acos clamps its input into [-1 + eps, 1 - eps] so that its derivative stays finite:
/// eps = 1e-7 for float, 1e-12 for double. Inputs outside get a zero gradient.
template <class T>
constexpr T acos_epsilon() {
  return std::is_same_v<T, float> ? T(1e-7) : T(1e-12);
}

template <class D>
struct elementwise_impl {
  static_assert(detail::always_false<D>, "arcnet::ops elementwise: no backend for this device; CUDA backends "
                                         "exist only in translation units compiled by nvcc (.cu)");
};

}  // namespace arcnet::ops
