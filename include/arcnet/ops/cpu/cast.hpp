#pragma once
// CPU backend of ops/cast.hpp: one pass, OpenMP over large tensors.
#include "arcnet/core/tensor.hpp"

namespace arcnet::ops {

template <>
struct cast_impl<cpu> {
  static constexpr index_t parallel_threshold = 1 << 15;

  template <class T, class U>
  static void forward(tensor<T, cpu> const& x, tensor<U, cpu>& y) {
    T const* xs = x.data();
    U* ys = y.data();
    index_t const n = x.numel();
#pragma omp parallel for if (n > parallel_threshold)
    for (index_t i = 0; i < n; ++i) ys[i] = convert<U>(xs[i]);
  }
  template <class U, class T>
  static void backward(tensor<U, cpu> const& dy, tensor<T, cpu>& dx) {
    using C = compute_t<T>;
    U const* g = dy.data();
    T* d = dx.data();
    index_t const n = dx.numel();
#pragma omp parallel for if (n > parallel_threshold)
    for (index_t i = 0; i < n; ++i) d[i] = convert<T>(convert<C>(d[i]) + convert<C>(g[i]));
  }
};

}  // namespace arcnet::ops
