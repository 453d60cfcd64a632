#pragma once
// CPU backend of ops/margin.hpp.
#include <algorithm>
#include <cmath>

#include "arcnet/core/tensor.hpp"

namespace arcnet::ops {

template <>
struct margin_impl<cpu> {
  /// Cosines are clamped into [-1 + eps, 1 - eps] before acos, so that theta and the
  /// derivative stay finite at cos = +-1 (eps = 1e-7 in float, 1e-12 in double).
  template <class T>
  static double clamp_eps() {
    return std::is_same_v<T, float> ? 1e-7 : 1e-12;
  }
  static bool pure_arcface(margin_options const& o) { return o.m1 == 1.0 && o.m3 == 0.0; }

  /// phi(c) and dphi/dc for one target cosine.
  template <class T>
  static void target_logit(double c, double m2, margin_options const& o, double& phi, double& dphi) {
    double e = clamp_eps<T>();
    double cc = std::clamp(c, -1.0 + e, 1.0 - e);
    double theta = std::acos(cc);
    double a = o.m1 * theta + m2;
    phi = std::cos(a) - o.m3;
    dphi = std::sin(a) * o.m1 / std::sqrt(1.0 - cc * cc);  // d cos(a) / dc = sin(a) * m1 / sin(theta)
    if (c != cc) dphi = 0;                                  // the clamp passes no gradient
    if (!pure_arcface(o)) return;
    if (o.easy_margin) {
      if (!(c > 0)) phi = c, dphi = 1;
    } else if (!(c > std::cos(M_PI - m2))) {
      phi = c - std::sin(m2) * m2;  // mmpretrain: sin(pi - m) * m
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
      double phi, dphi;
      target_logit<T>(cs[i * c + t], margins[static_cast<size_t>(t)], o, phi, dphi);
      d[i * c + t] += static_cast<T>(o.scale * dphi * g[i * c + t]);
    }
  }
};

}  // namespace arcnet::ops
