#pragma once
// CPU backend of ops/elementwise.hpp: plain loops, OpenMP over large arrays.
#include <algorithm>
#include <cmath>

#include "arcnet/ops/detail/broadcast.hpp"
#include "arcnet/ops/detail/elementwise_kinds.hpp"

namespace arcnet::ops {

template <>
struct elementwise_impl<cpu> {
  static constexpr index_t parallel_threshold = 1 << 15;

  template <class T>
  static T apply(unary_kind k, T x, T p, T q) {
    switch (k) {
      case unary_kind::neg: return -x;
      case unary_kind::exp: return std::exp(x);
      case unary_kind::log: return std::log(x);
      case unary_kind::sqrt: return std::sqrt(x);
      case unary_kind::abs: return std::abs(x);
      case unary_kind::cos: return std::cos(x);
      case unary_kind::acos: return std::acos(std::clamp(x, T(-1) + acos_epsilon<T>(), T(1) - acos_epsilon<T>()));
      case unary_kind::relu: return x > T(0) ? x : T(0);
      case unary_kind::pow: return std::pow(x, p);
      case unary_kind::clamp: return std::clamp(x, p, q);
      case unary_kind::add_scalar: return x + p;
      case unary_kind::mul_scalar: return x * p;
      case unary_kind::rdiv_scalar: return p / x;
    }
    return x;
  }
  /// d f(x) / dx, given x and y = f(x).
  template <class T>
  static T derivative(unary_kind k, T x, T y, T p, T q) {
    switch (k) {
      case unary_kind::neg: return T(-1);
      case unary_kind::exp: return y;
      case unary_kind::log: return T(1) / x;
      case unary_kind::sqrt: return T(0.5) / y;
      case unary_kind::abs: return x > T(0) ? T(1) : (x < T(0) ? T(-1) : T(0));
      case unary_kind::cos: return -std::sin(x);
      case unary_kind::acos: {
        T e = acos_epsilon<T>();
        if (x < T(-1) + e || x > T(1) - e) return T(0);  // the clamp passes no gradient, as in PyTorch
        return T(-1) / std::sqrt(T(1) - x * x);
      }
      case unary_kind::relu: return x > T(0) ? T(1) : T(0);
      case unary_kind::pow: return p == T(0) ? T(0) : p * std::pow(x, p - T(1));
      case unary_kind::clamp: return (x >= p && x <= q) ? T(1) : T(0);
      case unary_kind::add_scalar: return T(1);
      case unary_kind::mul_scalar: return p;
      case unary_kind::rdiv_scalar: return -y / x;
    }
    return T(0);
  }

  template <class T>
  static void unary_forward(unary_kind k, tensor<T, cpu> const& x, tensor<T, cpu>& y, T p, T q) {
    T const* xs = x.data();
    T* ys = y.data();
    index_t n = x.numel();
    if (k == unary_kind::relu) {  // the hot one in a ResNet: a branch-free loop the compiler vectorises
#pragma omp parallel for simd if (n > parallel_threshold)
      for (index_t i = 0; i < n; ++i) ys[i] = xs[i] > T(0) ? xs[i] : T(0);
      return;
    }
#pragma omp parallel for if (n > parallel_threshold)
    for (index_t i = 0; i < n; ++i) ys[i] = apply(k, xs[i], p, q);
  }
  template <class T>
  static void unary_backward(unary_kind k, tensor<T, cpu> const& x, tensor<T, cpu> const& y,
                             tensor<T, cpu> const& dy, tensor<T, cpu>& dx, T p, T q) {
    T const *xs = x.data(), *ys = y.data(), *g = dy.data();
    T* out = dx.data();
    index_t n = x.numel();
    if (k == unary_kind::relu) {
#pragma omp parallel for simd if (n > parallel_threshold)
      for (index_t i = 0; i < n; ++i) out[i] += xs[i] > T(0) ? g[i] : T(0);
      return;
    }
#pragma omp parallel for if (n > parallel_threshold)
    for (index_t i = 0; i < n; ++i) out[i] += g[i] * derivative(k, xs[i], ys[i], p, q);
  }

  template <class T>
  static T combine(binary_kind k, T a, T b) {
    switch (k) {
      case binary_kind::add: return a + b;
      case binary_kind::sub: return a - b;
      case binary_kind::mul: return a * b;
      case binary_kind::div: return a / b;
    }
    return a;
  }

  template <class T>
  static void binary_forward(binary_kind k, tensor<T, cpu> const& a, tensor<T, cpu> const& b, tensor<T, cpu>& y) {
    T const *as = a.data(), *bs = b.data();
    T* ys = y.data();
    if (a.shape() == b.shape()) {
      index_t n = y.numel();
#pragma omp parallel for if (n > parallel_threshold)
      for (index_t i = 0; i < n; ++i) ys[i] = combine(k, as[i], bs[i]);
      return;
    }
    auto sa = detail::broadcast_strides(a.shape(), y.shape());
    auto sb = detail::broadcast_strides(b.shape(), y.shape());
    detail::for_each_broadcast(y.shape(), sa, sb,
                               [&](index_t o, index_t ia, index_t ib) { ys[o] = combine(k, as[ia], bs[ib]); });
  }

  /// da += dy * d(a op b)/da and db += dy * d(a op b)/db, summed over broadcast dimensions.
  /// da or db may be null (that input needs no gradient).
  template <class T>
  static void binary_backward(binary_kind k, tensor<T, cpu> const& a, tensor<T, cpu> const& b,
                              tensor<T, cpu> const& dy, tensor<T, cpu>* da, tensor<T, cpu>* db) {
    T const *as = a.data(), *bs = b.data(), *g = dy.data();
    T* ga = da ? da->data() : nullptr;
    T* gb = db ? db->data() : nullptr;
    auto step = [&](index_t o, index_t ia, index_t ib) {
      T x = as[ia], z = bs[ib], d = g[o];
      switch (k) {
        case binary_kind::add:
          if (ga) ga[ia] += d;
          if (gb) gb[ib] += d;
          break;
        case binary_kind::sub:
          if (ga) ga[ia] += d;
          if (gb) gb[ib] -= d;
          break;
        case binary_kind::mul:
          if (ga) ga[ia] += d * z;
          if (gb) gb[ib] += d * x;
          break;
        case binary_kind::div:
          if (ga) ga[ia] += d / z;
          if (gb) gb[ib] -= d * x / (z * z);
          break;
      }
    };
    if (a.shape() == b.shape()) {
      index_t n = dy.numel();
#pragma omp parallel for if (n > parallel_threshold)
      for (index_t i = 0; i < n; ++i) step(i, i, i);
      return;
    }
    // Broadcast: several outputs feed one input element, so this path runs on one thread.
    auto sa = detail::broadcast_strides(a.shape(), dy.shape());
    auto sb = detail::broadcast_strides(b.shape(), dy.shape());
    detail::for_each_broadcast(dy.shape(), sa, sb, step);
  }

  template <class T>
  static void where_forward(tensor<T, cpu> const& cond, tensor<T, cpu> const& a, tensor<T, cpu> const& b,
                            tensor<T, cpu>& y) {
    T const *c = cond.data(), *as = a.data(), *bs = b.data();
    T* ys = y.data();
    index_t n = y.numel();
#pragma omp parallel for if (n > parallel_threshold)
    for (index_t i = 0; i < n; ++i) ys[i] = c[i] != T(0) ? as[i] : bs[i];
  }
  template <class T>
  static void where_backward(tensor<T, cpu> const& cond, tensor<T, cpu> const& dy, tensor<T, cpu>* da,
                             tensor<T, cpu>* db) {
    T const *c = cond.data(), *g = dy.data();
    T* ga = da ? da->data() : nullptr;
    T* gb = db ? db->data() : nullptr;
    index_t n = dy.numel();
#pragma omp parallel for if (n > parallel_threshold)
    for (index_t i = 0; i < n; ++i) {
      if (c[i] != T(0)) {
        if (ga) ga[i] += g[i];
      } else if (gb) {
        gb[i] += g[i];
      }
    }
  }

  /// y += alpha * x, x broadcast to y's shape.
  template <class T>
  static void broadcast_accumulate(tensor<T, cpu> const& x, tensor<T, cpu>& y, T alpha) {
    T const* xs = x.data();
    T* ys = y.data();
    auto sx = detail::broadcast_strides(x.shape(), y.shape());
    auto sy = y.shape().strides();
    detail::for_each_broadcast(y.shape(), sx, sy, [&](index_t o, index_t ix, index_t) { ys[o] += alpha * xs[ix]; });
  }

  /// y += alpha * x (same numel).
  template <class T>
  static void axpy(T alpha, tensor<T, cpu> const& x, tensor<T, cpu>& y) {
    T const* xs = x.data();
    T* ys = y.data();
    index_t n = x.numel();
#pragma omp parallel for if (n > parallel_threshold)
    for (index_t i = 0; i < n; ++i) ys[i] += alpha * xs[i];
  }
};

}  // namespace arcnet::ops
