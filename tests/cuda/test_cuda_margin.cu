// CUDA tests of ops/margin.hpp: ArcFace / CosFace / combined margin logits on the cuda tag against
// the CPU backend, forward and backward (raw and through autograd), float and double, on random
// cosines and on hand-placed target cosines at +-1, next to +-1, at and next to the fallback
// threshold cos(pi - m) and at 0 (easy_margin's switch).
#include "cuda/cuda_test_util.hpp"

#include <cmath>
#include <vector>

#include <arcnet/ops/margin.hpp>

using namespace arcnet;

namespace cuda_margin_test {

struct margin_case {
  char const* name;
  ops::margin_options options;
  bool per_class;  // margins drawn per class in [0.1, 0.6]; otherwise all equal to m
  double m;
};
// scale, m1, m3, easy_margin
std::vector<margin_case> const cases{
    {"ArcFace m = 0.5", {64.0, 1.0, 0.0, false}, false, 0.5},
    {"ArcFace m = 0.5, easy_margin", {64.0, 1.0, 0.0, true}, false, 0.5},
    {"ArcFace per-class margins", {30.0, 1.0, 0.0, false}, true, 0.0},
    {"ArcFace per-class margins, easy_margin", {30.0, 1.0, 0.0, true}, true, 0.0},
    {"CosFace m3 = 0.35", {64.0, 1.0, 0.35, false}, false, 0.0},
    {"combined m1 = 1.2, m2 = 0.3, m3 = 0.2", {64.0, 1.2, 0.2, false}, false, 0.3},
};

std::vector<double> class_margins(margin_case const& mc, index_t c, std::uint64_t seed) {
  generator g(seed);
  std::vector<double> m(static_cast<size_t>(c), mc.m);
  if (mc.per_class)
    for (auto& v : m) v = 0.1 + 0.5 * static_cast<double>(g.below(1u << 20)) / double(1u << 20);
  return m;
}

using cuda_testing::random_targets;

/// Target cosines where the formulas switch or the slope is guarded, for a target class of
/// margin m: +-1, the representable cosines next to +-1, a rounding error outside [-1, 1], the
/// fallback threshold cos(pi - m) as T and its two neighbours, +-0 and values near +-1.
template <class T>
std::vector<T> edge_cosines(double m) {
  T const one(1), th = static_cast<T>(std::cos(M_PI - m));
  return {one,
          -one,
          std::nextafter(one, T(0)),
          std::nextafter(-one, T(0)),
          std::nextafter(one, T(2)),
          std::nextafter(-one, T(-2)),
          th,
          std::nextafter(th, T(2)),
          std::nextafter(th, T(-2)),
          static_cast<T>(std::cos(M_PI - m) + 1e-4),
          static_cast<T>(std::cos(M_PI - m) - 1e-4),
          T(0),
          -T(0),
          T(1e-7),
          T(-1e-7),
          T(0.999),
          T(-0.999)};
}

/// Runs the op on both devices: forward, raw backward into a random dcos, and autograd, each
/// compared with the CPU.
template <class T>
void compare(tensor<T, cpu> const& cosines, std::vector<std::int64_t> const& targets,
             std::vector<double> const& margins, ops::margin_options const& o, std::uint64_t seed) {
  using cuda_testing::max_difference;
  double const tol = cuda_testing::tolerance<T>();
  auto cosd = cosines.template to<cuda>();
  auto y = ops::angular_margin_forward(cosines, targets, margins, o);
  auto yd = ops::angular_margin_forward(cosd, targets, margins, o);
  CHECK(max_difference(y, yd) <= tol);

  auto dy = cuda_testing::random_tensor<T>(cosines.shape(), seed);
  auto dyd = dy.template to<cuda>();
  auto dcos = cuda_testing::random_tensor<T>(cosines.shape(), seed + 1);  // backward accumulates into it
  auto dcosd = dcos.template to<cuda>();
  ops::angular_margin_backward(cosines, targets, margins, o, dy, dcos);
  ops::angular_margin_backward(cosd, targets, margins, o, dyd, dcosd);
  CHECK(max_difference(dcos, dcosd) <= tol);

  variable<T, cpu> v(cosines, true);
  variable<T, cuda> vd(cosd, true);
  ops::angular_margin(v, targets, margins, o).backward(dy);
  ops::angular_margin(vd, targets, margins, o).backward(dyd);
  REQUIRE(vd.grad().defined());
  CHECK(max_difference(v.grad(), vd.grad()) <= tol);
}

}  // namespace cuda_margin_test

TEMPLATE_TEST_CASE("cuda margin: random cosines match the CPU, forward and backward", "[cuda]", float, double) {
  ARCNET_REQUIRE_CUDA_DEVICE();
  using namespace cuda_margin_test;
  using T = TestType;
  std::uint64_t seed = 300;
  for (shape const& s : {shape{1, 1}, shape{3, 7}, shape{8, 3997}, shape{64, 4000}}) {
    for (auto const& mc : cases) {
      INFO("cosines " << s << ", " << mc.name);
      auto cosines = cuda_testing::random_tensor<T>(s, ++seed);
      auto targets = random_targets(s[0], s[1], ++seed);
      auto margins = class_margins(mc, s[1], ++seed);
      compare(cosines, targets, margins, mc.options, ++seed);
    }
  }
}

TEMPLATE_TEST_CASE("cuda margin: target cosines at +-1, at the fallback threshold and at 0 match the CPU", "[cuda]",
                   float, double) {
  ARCNET_REQUIRE_CUDA_DEVICE();
  using namespace cuda_margin_test;
  using T = TestType;
  std::uint64_t seed = 400;
  index_t const c = 7;
  for (auto const& mc : cases) {
    INFO(mc.name);
    auto margins = class_margins(mc, c, ++seed);
    // One row per (class, edge value): the target cosine is placed explicitly, the others random.
    index_t const per_class = static_cast<index_t>(edge_cosines<T>(0.5).size());
    auto cosines = cuda_testing::random_tensor<T>(shape{c * per_class, c}, ++seed);
    std::vector<std::int64_t> targets;
    for (index_t t = 0; t < c; ++t) {
      auto const edges = edge_cosines<T>(margins[static_cast<size_t>(t)]);
      for (index_t k = 0; k < per_class; ++k) {
        index_t const row = t * per_class + k;
        cosines.at(row, t) = edges[static_cast<size_t>(k)];
        targets.push_back(t);
      }
    }
    compare(cosines, targets, margins, mc.options, ++seed);
  }
}

TEST_CASE("cuda margin: bad input on the cuda tag throws", "[cuda]") {
  ARCNET_REQUIRE_CUDA_DEVICE();
  auto cosd = cuda_testing::random_tensor<float>(shape{2, 3}, 1).to<cuda>();
  ops::margin_options o;
  CHECK_THROWS_AS(ops::angular_margin_forward(cosd, {0, 3}, {0.5, 0.5, 0.5}, o), error);  // target out of range
  CHECK_THROWS_AS(ops::angular_margin_forward(cosd, {0, 1}, {0.5, 0.5}, o), error);       // two margins, 3 classes
}
