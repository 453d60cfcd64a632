#pragma once
// generator: a seeded source of random numbers whose sequence is the same on every platform
// (std::normal_distribution is not), so that a seed reproduces a run bit for bit.
#include <cmath>
#include <cstdint>
#include <random>

#include "arcnet/core/tensor.hpp"

namespace arcnet {

class generator {
 public:
  explicit generator(std::uint64_t seed = 5489u) : engine_(seed) {}
  void seed(std::uint64_t s) {
    engine_.seed(s);
    has_spare_ = false;
  }
  std::uint64_t next_u64() { return engine_(); }
  /// Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  /// Uniform integer in [0, n).
  std::uint64_t below(std::uint64_t n) {
    ARCNET_CHECK(n > 0, "generator::below: n must be positive");
    std::uint64_t limit = ~std::uint64_t(0) - (~std::uint64_t(0) % n);
    std::uint64_t r;
    do r = engine_(); while (r >= limit);
    return r % n;
  }
  /// Standard normal (Box-Muller, caching the second value).
  double normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    double u1;
    do u1 = uniform(); while (u1 <= 0.0);
    double u2 = uniform();
    double r = std::sqrt(-2.0 * std::log(u1));
    constexpr double two_pi = 6.283185307179586;
    spare_ = r * std::sin(two_pi * u2);
    has_spare_ = true;
    return r * std::cos(two_pi * u2);
  }
  double normal(double mean, double std) { return mean + std * normal(); }

  template <class T>
  void fill_normal(tensor<T, cpu>& t, double mean = 0, double std = 1) {
    for (index_t i = 0; i < t.numel(); ++i) t[i] = static_cast<T>(normal(mean, std));
  }
  template <class T>
  void fill_uniform(tensor<T, cpu>& t, double lo = 0, double hi = 1) {
    for (index_t i = 0; i < t.numel(); ++i) t[i] = static_cast<T>(uniform(lo, hi));
  }

 private:
  std::mt19937_64 engine_;
  bool has_spare_ = false;
  double spare_ = 0;
};

/// The process-wide default generator (initialisers use it unless given another).
inline generator& default_generator() {
  static generator g;
  return g;
}
inline void manual_seed(std::uint64_t s) { default_generator().seed(s); }

/// A new CPU tensor of shape s with N(mean, std^2) entries.
template <class T = float>
tensor<T, cpu> randn(shape s, generator& g = default_generator(), double mean = 0, double std = 1) {
  auto t = tensor<T, cpu>::uninitialized(std::move(s));
  g.fill_normal(t, mean, std);
  return t;
}
/// A new CPU tensor of shape s with U[lo, hi) entries.
template <class T = float>
tensor<T, cpu> rand(shape s, generator& g = default_generator(), double lo = 0, double hi = 1) {
  auto t = tensor<T, cpu>::uninitialized(std::move(s));
  g.fill_uniform(t, lo, hi);
  return t;
}

}  // namespace arcnet
