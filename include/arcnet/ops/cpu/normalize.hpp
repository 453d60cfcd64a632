#pragma once
// CPU backend of ops/normalize.hpp: x seen as (outer, r, inner), normalised along r; sums of
// squares in double; OpenMP over outer.
#include <algorithm>
#include <cmath>
#include <vector>

#include "arcnet/core/tensor.hpp"

namespace arcnet::ops {

template <>
struct normalize_impl<cpu> {
  static constexpr index_t parallel_threshold = 1 << 14;

  /// norms[o, i] = max(sqrt(sum_k x[o, k, i]^2), eps), y = x / norms.
  template <class T>
  static void forward(tensor<T, cpu> const& x, tensor<T, cpu>& y, tensor<T, cpu>& norms, index_t outer, index_t r,
                      index_t inner, double eps) {
    T const* xs = x.data();
    T* ys = y.data();
    T* ns = norms.data();
    if (inner == 1) {  // normalising contiguous rows: the common case (features, class weights)
#pragma omp parallel for if (outer * r > parallel_threshold)
      for (index_t o = 0; o < outer; ++o) {
        T const* xr = xs + o * r;
        T* yr = ys + o * r;
        double s = 0;
        for (index_t k = 0; k < r; ++k) s += static_cast<double>(xr[k]) * static_cast<double>(xr[k]);
        double n = std::max(std::sqrt(s), eps);
        ns[o] = static_cast<T>(n);
        for (index_t k = 0; k < r; ++k) yr[k] = static_cast<T>(static_cast<double>(xr[k]) / n);
      }
      return;
    }
#pragma omp parallel for if (outer * r * inner > parallel_threshold)
    for (index_t o = 0; o < outer; ++o) {
      std::vector<double> acc(static_cast<size_t>(inner), 0.0);
      T const* xo = xs + o * r * inner;
      T* yo = ys + o * r * inner;
      for (index_t k = 0; k < r; ++k)
        for (index_t i = 0; i < inner; ++i) {
          double v = static_cast<double>(xo[k * inner + i]);
          acc[static_cast<size_t>(i)] += v * v;
        }
      for (index_t i = 0; i < inner; ++i) {
        double n = std::max(std::sqrt(acc[static_cast<size_t>(i)]), eps);
        acc[static_cast<size_t>(i)] = n;
        ns[o * inner + i] = static_cast<T>(n);
      }
      for (index_t k = 0; k < r; ++k)
        for (index_t i = 0; i < inner; ++i)
          yo[k * inner + i] = static_cast<T>(static_cast<double>(xo[k * inner + i]) / acc[static_cast<size_t>(i)]);
    }
  }

  /// dx += (dy - y * sum_k(dy * y)) / norm, or dy / norm where the norm was clamped to eps
  /// (the denominator is then a constant).
  template <class T>
  static void backward(tensor<T, cpu> const& y, tensor<T, cpu> const& norms, tensor<T, cpu> const& dy,
                       tensor<T, cpu>& dx, index_t outer, index_t r, index_t inner, double eps) {
    T const* ys = y.data();
    T const* ns = norms.data();
    T const* g = dy.data();
    T* out = dx.data();
    T clamped = static_cast<T>(eps);
#pragma omp parallel for if (outer * r * inner > parallel_threshold)
    for (index_t o = 0; o < outer; ++o) {
      T const* yo = ys + o * r * inner;
      T const* go = g + o * r * inner;
      T* dxo = out + o * r * inner;
      for (index_t i = 0; i < inner; ++i) {
        T n = ns[o * inner + i];
        double dot = 0;
        if (n > clamped)
          for (index_t k = 0; k < r; ++k)
            dot += static_cast<double>(go[k * inner + i]) * static_cast<double>(yo[k * inner + i]);
        T d = static_cast<T>(dot);
        for (index_t k = 0; k < r; ++k) dxo[k * inner + i] += (go[k * inner + i] - yo[k * inner + i] * d) / n;
      }
    }
  }
};

}  // namespace arcnet::ops
