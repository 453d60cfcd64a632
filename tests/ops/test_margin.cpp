#include "test_util.hpp"

#include <cstring>

#include <arcnet/ops/margin.hpp>

using namespace arcnet;

TEST_CASE("angular_margin: ArcFace logits on hand-made cosines", "[ops]") {
  // Row 0: target 1 with cos 0.8 -> s * cos(acos(0.8) + 0.5).  Row 1: target 0 with cos -0.95,
  // below cos(pi - 0.5) = -0.8776 -> fallback s * (cos - 0.5 * sin(0.5)).
  auto cos = tensor<double>::from_vector(shape{2, 3}, {0.1, 0.8, -0.3, -0.95, 0.2, 0.6});
  ops::margin_options o;  // s = 64, ArcFace
  auto y = ops::angular_margin_forward(cos, {1, 0}, {0.5, 0.5, 0.5}, o);
  CHECK(y.at(0, 0) == Approx(6.4));
  CHECK(y.at(0, 1) == Approx(64 * 0.4144107263497765).epsilon(1e-12));  // cos(acos(0.8) + 0.5), from Python
  CHECK(y.at(0, 2) == Approx(-19.2));
  CHECK(y.at(1, 0) == Approx(64 * (-0.95 - 0.5 * std::sin(0.5))));
  CHECK(y.at(1, 2) == Approx(38.4));

  o.easy_margin = true;  // cos <= 0 keeps the plain cosine
  auto e = ops::angular_margin_forward(cos, {1, 0}, {0.5, 0.5, 0.5}, o);
  CHECK(e.at(1, 0) == Approx(64 * -0.95));
  CHECK(e.at(0, 1) == Approx(y.at(0, 1)));
}

TEST_CASE("angular_margin: per-class margins, CosFace and combined variants", "[ops]") {
  auto cos = tensor<double>::from_vector(shape{2, 2}, {0.5, 0.2, 0.3, 0.7});
  ops::margin_options o;
  o.scale = 10;
  auto y = ops::angular_margin_forward(cos, {0, 1}, {0.1, 0.4}, o);
  CHECK(y.at(0, 0) == Approx(10 * std::cos(std::acos(0.5) + 0.1)));
  CHECK(y.at(1, 1) == Approx(10 * std::cos(std::acos(0.7) + 0.4)));
  o.m3 = 0.35;  // CosFace: cos - m3 (m2 = 0)
  auto c = ops::angular_margin_forward(cos, {0, 1}, {0.0, 0.0}, o);
  CHECK(c.at(0, 0) == Approx(10 * (0.5 - 0.35)));
  CHECK(c.at(0, 1) == Approx(2.0));
  o.m1 = 1.2;  // combined: cos(m1 theta + m2) - m3
  auto m = ops::angular_margin_forward(cos, {0, 1}, {0.2, 0.2}, o);
  CHECK(m.at(1, 1) == Approx(10 * (std::cos(1.2 * std::acos(0.7) + 0.2) - 0.35)));
}

TEST_CASE("angular_margin: gradients match finite differences", "[ops]") {
  generator g(11);
  auto cos = testing::random_variable(shape{5, 7}, g, -0.9, 0.9);
  std::vector<std::int64_t> t{0, 3, 6, 2, 3};
  std::vector<double> m{0.5, 0.3, 0.2, 0.45, 0.1, 0.5, 0.25};
  for (bool easy : {false, true}) {
    ops::margin_options o;
    o.scale = 8;
    o.easy_margin = easy;
    testing::require_gradients_match([&] { return ops::angular_margin(cos, t, m, o); }, {cos});
  }
  ops::margin_options combined;
  combined.m1 = 1.1;
  combined.m3 = 0.2;
  testing::require_gradients_match([&] { return ops::angular_margin(cos, t, m, combined); }, {cos});
}

namespace margin_test {
/// The ArcFace target logit / s by its definition (mmpretrain's ArcFaceClsHead), in long double:
/// cos(acos(c) + m); with easy_margin c itself where c <= 0; otherwise c - m sin(m) where
/// c <= cos(pi - m). The op computes it another way (cos theta cos m - sin theta sin m).
long double ref_phi(long double c, long double m, bool easy) {
  long double phi = std::cos(std::acos(c) + m);
  if (easy) return c > 0 ? phi : c;
  return c > std::cos(static_cast<long double>(M_PI) - m) ? phi : c - m * std::sin(m);
}
/// d ref_phi / dc inside (-1, 1): sin(acos(c) + m) / sqrt(1 - c^2), or 1 on the linear branches.
long double ref_dphi(long double c, long double m, bool easy) {
  bool linear = easy ? !(c > 0) : !(c > std::cos(static_cast<long double>(M_PI) - m));
  return linear ? 1.0L : std::sin(std::acos(c) + m) / std::sqrt((1 - c) * (1 + c));
}
/// Rounds to the nearest bfloat16 (ties to even) and back: what a bf16 backbone hands the head.
/// arcnet has no bf16 tensor type yet; on CUDA in bf16 mode the whole ArcFace head runs in fp32
/// (DESIGN.md), so "bf16" here means the fp32 head fed bf16-representable inputs.
float round_to_bf16(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7f800000u) == 0x7f800000u) return x;  // inf, nan: unchanged
  u += 0x7fffu + ((u >> 16) & 1u);
  u &= 0xffff0000u;
  std::memcpy(&x, &u, 4);
  return x;
}
/// Logits and dlogits/dcos (dy = 1) of one row per cosine, the target being column 0 of 2;
/// column 1 holds 0.25 (a non-target: logit s * 0.25, gradient s).
template <class T>
void logits_and_slopes(std::vector<T> const& cosines, double m, ops::margin_options const& o, std::vector<T>& logit,
                       std::vector<T>& slope) {
  auto n = static_cast<index_t>(cosines.size());
  auto cos = tensor<T>::zeros(shape{n, 2});
  for (index_t i = 0; i < n; ++i) cos.at(i, 0) = cosines[static_cast<size_t>(i)], cos.at(i, 1) = T(0.25);
  std::vector<std::int64_t> t(static_cast<size_t>(n), 0);
  auto y = ops::angular_margin_forward(cos, t, {m, m}, o);
  auto d = tensor<T>::zeros(cos.shape());
  ops::angular_margin_backward(cos, t, {m, m}, o, tensor<T>::full(cos.shape(), T(1)), d);
  logit.clear(), slope.clear();
  for (index_t i = 0; i < n; ++i) {
    logit.push_back(y.at(i, 0)), slope.push_back(d.at(i, 0));
    CHECK(y.at(i, 1) == Approx(o.scale * 0.25));
    CHECK(d.at(i, 1) == Approx(o.scale));
  }
}
}  // namespace margin_test

TEMPLATE_TEST_CASE("angular_margin: ArcFace exact and finite at cos = +-1, margins 0 to pi/2", "[ops]", float, double) {
  using T = TestType;
  T const next = std::nextafter(T(1), T(0)), near = T(1 - 1e-7);  // 1 - 2^-24 or 1 - 2^-53; 1 - 1e-7
  std::vector<T> cosines{T(1), T(-1), next, -next, near, -near, T(0.5), T(-0.5)};
  for (double m : {0.0, 0.5, M_PI / 2}) {
    for (bool easy : {false, true}) {
      CAPTURE(m, easy);
      ops::margin_options o;
      o.scale = 64;
      o.easy_margin = easy;
      std::vector<T> logit, slope;
      margin_test::logits_and_slopes(cosines, m, o, logit, slope);
      for (size_t i = 0; i < cosines.size(); ++i) {
        long double c = cosines[i];
        CAPTURE(i, static_cast<double>(c));
        REQUIRE(std::isfinite(logit[i]));
        REQUIRE(std::isfinite(slope[i]));
        // The logit is exact everywhere, +-1 included (acos of a clamped 1 - 1e-7 is not).
        CHECK(logit[i] == Approx(static_cast<double>(64 * margin_test::ref_phi(c, m, easy))).epsilon(1e-6).margin(1e-5));
        if (std::abs(c) < 1) {
          CHECK(slope[i] == Approx(static_cast<double>(64 * margin_test::ref_dphi(c, m, easy))).epsilon(1e-5));
        } else if (m == 0 || c < 0) {
          CHECK(slope[i] == Approx(64.0).epsilon(1e-12));  // phi = c there: slope exactly 1
        } else {
          // cos(theta + m) has an infinite slope at theta = 0; the op continues the slope of
          // the next representable cosine below 1, which is finite and positive.
          CHECK(slope[i] == Approx(slope[2]).epsilon(1e-6));
          CHECK(slope[i] > 0);
        }
      }
      if (m == 0) CHECK(logit[0] == T(64));  // margin 0: s * cos exactly, also at cos = 1
      if (!easy) CHECK(logit[1] == Approx(64 * (-1 - m * std::sin(m))).epsilon(1e-6));
    }
  }
}

TEST_CASE("angular_margin: cosines a rounding error outside [-1, 1] act as +-1", "[ops]") {
  // A dot product of two unit vectors in float can come out as 1 + 1.2e-7.
  float const above = std::nextafter(1.0f, 2.0f);
  for (double m : {0.0, 0.5, M_PI / 2}) {
    CAPTURE(m);
    std::vector<float> l_out, s_out, l_one, s_one;
    margin_test::logits_and_slopes<float>({above, -above}, m, ops::margin_options{}, l_out, s_out);
    margin_test::logits_and_slopes<float>({1.0f, -1.0f}, m, ops::margin_options{}, l_one, s_one);
    CHECK(l_out == l_one);
    CHECK(s_out == s_one);
  }
}

TEST_CASE("angular_margin: CosFace and combined margins exact and finite at cos = +-1", "[ops]") {
  ops::margin_options cosface;
  cosface.scale = 30;
  cosface.m3 = 0.35;
  std::vector<float> logit, slope;
  margin_test::logits_and_slopes<float>({1.0f, -1.0f, std::nextafter(1.0f, 0.0f), std::nextafter(1.0f, 2.0f)}, 0.0,
                                        cosface, logit, slope);
  CHECK(logit[0] == Approx(30 * 0.65).epsilon(1e-7));
  CHECK(logit[1] == Approx(30 * -1.35).epsilon(1e-7));
  CHECK(logit[3] == logit[0]);
  for (float s : slope) CHECK(s == 30.0f);  // phi = cos - m3: slope exactly 1, at +-1 too

  ops::margin_options combined;  // cos(m1 theta + m2) - m3
  combined.scale = 16;
  combined.m1 = 1.2;
  combined.m3 = 0.2;
  margin_test::logits_and_slopes<float>({1.0f, -1.0f, 0.3f}, 0.3, combined, logit, slope);
  CHECK(logit[0] == Approx(16 * (std::cos(0.3) - 0.2)).epsilon(1e-6));
  CHECK(logit[1] == Approx(16 * (std::cos(1.2 * M_PI + 0.3) - 0.2)).epsilon(1e-6));
  CHECK(logit[2] == Approx(16 * (std::cos(1.2 * std::acos(0.3f) + 0.3) - 0.2)).epsilon(1e-6));
  CHECK(slope[2] == Approx(16 * 1.2 * std::sin(1.2 * std::acos(0.3f) + 0.3) / std::sqrt(1 - 0.3f * 0.3f)).epsilon(1e-5));
  for (float s : slope) CHECK(std::isfinite(s));
  CHECK(slope[0] > 0);  // sin(0.3) > 0: the logit grows toward cos = 1
}

TEST_CASE("angular_margin: bf16-rounded cosines near +-1 give exact, finite logits in fp32", "[ops]") {
  // Cosines within 1% of +-1 rounded to bf16 (8-bit mantissa): many become exactly +-1.
  generator g(3);
  std::vector<float> cosines;
  int exact_ones = 0;
  for (int i = 0; i < 400; ++i) {
    float u = static_cast<float>(g.uniform(0.0, 0.01));
    float c = margin_test::round_to_bf16((i % 2 ? -1.0f : 1.0f) * (1.0f - u));
    exact_ones += std::abs(c) == 1.0f;
    cosines.push_back(c);
  }
  REQUIRE(exact_ones > 20);
  for (double m : {0.0, 0.5, M_PI / 2})
    for (bool easy : {false, true}) {
      CAPTURE(m, easy);
      ops::margin_options o;
      o.easy_margin = easy;
      std::vector<float> logit, slope;
      margin_test::logits_and_slopes(cosines, m, o, logit, slope);
      int bad = 0;
      for (size_t i = 0; i < cosines.size(); ++i) {
        bad += !std::isfinite(logit[i]) || !std::isfinite(slope[i]);
        bad += std::abs(logit[i] - 64 * margin_test::ref_phi(cosines[i], m, easy)) > 1e-4L;
        if (std::abs(cosines[i]) < 1)
          bad += std::abs(slope[i] / (64 * margin_test::ref_dphi(cosines[i], m, easy)) - 1) > 1e-5L;
      }
      CHECK(bad == 0);
    }
}

TEST_CASE("angular_margin: bad targets and margin counts are errors", "[ops]") {
  auto cos = tensor<double>::zeros(shape{2, 3});
  CHECK_THROWS_WITH(ops::angular_margin_forward(cos, {0, 3}, {0.5, 0.5, 0.5}, {}),
                    Catch::Contains("target 3 at row 1 is out of range for 3 classes"));
  CHECK_THROWS_AS(ops::angular_margin_forward(cos, {0}, {0.5, 0.5, 0.5}, {}), shape_error);
  CHECK_THROWS_WITH(ops::angular_margin_forward(cos, {0, 1}, {0.5}, {}), Catch::Contains("one margin per class"));
  // The raw backward checks as much before it reads margins[target].
  auto dcos = tensor<double>::zeros(shape{2, 3});
  CHECK_THROWS_WITH(ops::angular_margin_backward(cos, {0, -1}, {0.5, 0.5, 0.5}, {}, cos, dcos),
                    Catch::Contains("target -1 at row 1 is out of range for 3 classes"));
  auto short_dy = tensor<double>::zeros(shape{2, 2});
  CHECK_THROWS_AS(ops::angular_margin_backward(cos, {0, 1}, {0.5, 0.5, 0.5}, {}, short_dy, dcos), shape_error);
}
