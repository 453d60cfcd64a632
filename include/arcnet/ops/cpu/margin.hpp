#pragma once
// CPU backend of ops/margin.hpp. (A CUDA backend must use the same formulas: exact at
// cos = +-1, the slope there continued from the representable cosine next to +-1;
// tests/ops/test_margin.cpp pins both.)
#include <algorithm>
#include <cmath>

#include "arcnet/core/tensor.hpp"

namespace arcnet::ops {

template <>
struct margin_impl<cpu> {
  /// The derivative of cos(m1 * theta + m2) in cos is sin(m1 * theta + m2) * m1 / sin(theta),
  /// infinite at cos = +-1 (theta = 0, pi) unless the numerator vanishes too. There sin(theta) is
  /// held at its value at the representable cosine next to +-1 (1 - 2^-24 in float, 1 - 2^-53
  /// in double): the slope of the nearest cosine inside is continued, so gradients stay finite
  /// and keep their sign, and every cosine inside (-1, 1) gets its exact slope. The forward needs
  /// no such guard.
  template <class T>
  static double min_sine() {
    double const b = static_cast<double>(std::nextafter(T(1), T(0)));
    return std::sqrt((1.0 - b) * (1.0 + b));
  }
  static bool pure_arcface(margin_options const& o) { return o.m1 == 1.0 && o.m3 == 0.0; }

  /// phi(c) and dphi/dc for one target cosine. Cosines a rounding error outside [-1, 1] count as
  /// +-1 (the gradient passes). For m1 = 1, cos(theta + m2) = cos cos(m2) - sin(theta) sin(m2):
  /// no acos, exact at +-1, and for m2 = 0 (CosFace) phi = cos - m3 with slope exactly 1.
  template <class T>
  static void target_logit(double c, double m2, margin_options const& o, double& phi, double& dphi) {
    double const cc = std::clamp(c, -1.0, 1.0);
    double const sine = std::sqrt(std::max(0.0, (1.0 - cc) * (1.0 + cc)));  // sin(theta), theta in [0, pi]
    double const sine_d = std::max(sine, min_sine<T>());
    if (o.m1 == 1.0) {
      phi = cc * std::cos(m2) - sine * std::sin(m2) - o.m3;
      dphi = std::cos(m2) + cc * std::sin(m2) / sine_d;
    } else {
      double const a = o.m1 * std::acos(cc) + m2;
      phi = std::cos(a) - o.m3;
      dphi = std::sin(a) * o.m1 / sine_d;
    }
    if (!pure_arcface(o)) return;
    if (o.easy_margin) {
      if (!(cc > 0)) phi = cc, dphi = 1;
    } else if (!(cc > std::cos(M_PI - m2))) {
      phi = cc - std::sin(m2) * m2;  // mmpretrain: sin(pi - m) * m
      dphi = 1;
    }
  }

  template <class T>
  static void forward(tensor<T, cpu> const& cosine, std::vector<std::int64_t> const& targets,
                      std::vector<double> const& margins, margin_options const& o, tensor<T, cpu>& y) {
    index_t n = cosine.size(0), c = cosine.size(1);
    T const* cs = cosine.data();
    T* ys = y.data();
    T s = static_cast<T>(o.scale);
#pragma omp parallel for if (n * c > (1 << 15))
    for (index_t i = 0; i < n; ++i) {
      for (index_t j = 0; j < c; ++j) ys[i * c + j] = s * cs[i * c + j];
      auto t = static_cast<index_t>(targets[static_cast<size_t>(i)]);
      if (t < 0) continue;  // a row without a target here (Partial FC: its class is on another rank)
      double phi, dphi;
      target_logit<T>(cs[i * c + t], margins[static_cast<size_t>(t)], o, phi, dphi);
      ys[i * c + t] = static_cast<T>(o.scale * phi);
    }
  }

  template <class T>
  static void backward(tensor<T, cpu> const& cosine, std::vector<std::int64_t> const& targets,
                       std::vector<double> const& margins, margin_options const& o, tensor<T, cpu> const& dy,
                       tensor<T, cpu>& dcos) {
    index_t n = cosine.size(0), c = cosine.size(1);
    T const *cs = cosine.data(), *g = dy.data();
    T* d = dcos.data();
    T s = static_cast<T>(o.scale);
#pragma omp parallel for if (n * c > (1 << 15))
    for (index_t i = 0; i < n; ++i) {
      auto t = static_cast<index_t>(targets[static_cast<size_t>(i)]);
      for (index_t j = 0; j < c; ++j)
        if (j != t) d[i * c + j] += s * g[i * c + j];
      if (t < 0) continue;
      double phi, dphi;
      target_logit<T>(cs[i * c + t], margins[static_cast<size_t>(t)], o, phi, dphi);
      d[i * c + t] += static_cast<T>(o.scale * dphi * g[i * c + t]);
    }
  }
};

}  // namespace arcnet::ops
