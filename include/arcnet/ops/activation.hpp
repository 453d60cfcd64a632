#pragma once
// Activations.
#include "arcnet/ops/elementwise.hpp"

namespace arcnet::ops {

/// y = max(x, 0); gradient 0 at x <= 0.
template <class T, class D>
variable<T, D> relu(variable<T, D> const& x) {
  return detail::record_unary("relu", unary_kind::relu, x);
}

}  // namespace arcnet::ops
