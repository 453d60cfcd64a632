#pragma once
// CPU backend of ops/reduce.hpp. Every reduction sees its input as (outer, r, inner) and
// reduces the middle axis.
#include <limits>

#include "arcnet/core/tensor.hpp"

namespace arcnet::ops {

template <>
struct reduce_impl<cpu> {
  /// out[0] = sum_i double(x_i)^2, in order.
  template <class T>
  static void sum_of_squares(T const* x, index_t n, double* out) {
    double s = 0;
    for (index_t i = 0; i < n; ++i) s += static_cast<double>(x[i]) * static_cast<double>(x[i]);
    out[0] = s;
  }
  /// y[o, i] = scale * sum_r x[o, r, i]
  template <class T>
  static void sum(tensor<T, cpu> const& x, tensor<T, cpu>& y, index_t outer, index_t r, index_t inner, T scale) {
    T const* xs = x.data();
    T* ys = y.data();
#pragma omp parallel for if (outer * r * inner > (1 << 15))
    for (index_t o = 0; o < outer; ++o) {
      T* yo = ys + o * inner;
      for (index_t i = 0; i < inner; ++i) yo[i] = T(0);
      for (index_t k = 0; k < r; ++k) {
        T const* xo = xs + (o * r + k) * inner;
        for (index_t i = 0; i < inner; ++i) yo[i] += xo[i];
      }
      for (index_t i = 0; i < inner; ++i) yo[i] *= scale;
    }
  }
  /// dx[o, r, i] += scale * dy[o, i]
  template <class T>
  static void sum_backward(tensor<T, cpu> const& dy, tensor<T, cpu>& dx, index_t outer, index_t r, index_t inner,
                           T scale) {
    T const* g = dy.data();
    T* out = dx.data();
#pragma omp parallel for if (outer * r * inner > (1 << 15))
    for (index_t o = 0; o < outer; ++o)
      for (index_t k = 0; k < r; ++k) {
        T* d = out + (o * r + k) * inner;
        T const* go = g + o * inner;
        for (index_t i = 0; i < inner; ++i) d[i] += scale * go[i];
      }
  }
  /// y[o, i] = max_r x[o, r, i], arg[o, i] = the first r that attains it.
  template <class T>
  static void max(tensor<T, cpu> const& x, tensor<T, cpu>& y, tensor<index_t, cpu>& arg, index_t outer, index_t r,
                  index_t inner) {
    T const* xs = x.data();
    T* ys = y.data();
    index_t* as = arg.data();
#pragma omp parallel for if (outer * r * inner > (1 << 15))
    for (index_t o = 0; o < outer; ++o)
      for (index_t i = 0; i < inner; ++i) {
        T best = -std::numeric_limits<T>::infinity();
        index_t at = 0;
        for (index_t k = 0; k < r; ++k) {
          T v = xs[(o * r + k) * inner + i];
          if (v > best) best = v, at = k;
        }
        ys[o * inner + i] = best;
        as[o * inner + i] = at;
      }
  }
  template <class T>
  static void max_backward(tensor<T, cpu> const& dy, tensor<index_t, cpu> const& arg, tensor<T, cpu>& dx,
                           index_t outer, index_t r, index_t inner) {
    T const* g = dy.data();
    T* out = dx.data();
    index_t const* as = arg.data();
    for (index_t o = 0; o < outer; ++o)
      for (index_t i = 0; i < inner; ++i)
        out[(o * r + as[o * inner + i]) * inner + i] += g[o * inner + i];
  }
};

}  // namespace arcnet::ops
