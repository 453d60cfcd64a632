#pragma once
// Differentiable reshape: a view of the same data with another shape (no copy).
#include <vector>

#include "arcnet/autograd/variable.hpp"
#include "arcnet/ops/elementwise.hpp"

namespace arcnet::ops {

/// x viewed as `dims` (one may be -1); the gradient is reshaped back.
template <class T, class D>
variable<T, D> reshape(variable<T, D> const& x, std::vector<index_t> dims) {
  auto y = x.value().view(std::move(dims));
  return autograd::make_op("reshape", y, {x}, [x](tensor<T, D> const& dy) mutable {
    if (x.requires_grad()) axpy(T(1), dy, x.grad_for_accumulate());
  });
}

}  // namespace arcnet::ops
