#include "test_util.hpp"

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

TEST_CASE("angular_margin: finite at cos = +-1 in float", "[ops]") {
  auto cos = tensor<float>::from_vector(shape{2, 2}, {1.0f, -1.0f, -1.0f, 1.0f});
  variable<float> c(cos, true);
  auto y = ops::angular_margin(c, {0, 0}, {1.5707963, 1.5707963}, ops::margin_options{});
  ops::sum(y).backward();
  for (index_t i = 0; i < 4; ++i) {
    CHECK(std::isfinite(y.value()[i]));
    CHECK(std::isfinite(c.grad()[i]));
  }
}

TEST_CASE("angular_margin: bad targets and margin counts are errors", "[ops]") {
  auto cos = tensor<double>::zeros(shape{2, 3});
  CHECK_THROWS_WITH(ops::angular_margin_forward(cos, {0, 3}, {0.5, 0.5, 0.5}, {}),
                    Catch::Contains("target 3 at row 1 is out of range for 3 classes"));
  CHECK_THROWS_AS(ops::angular_margin_forward(cos, {0}, {0.5, 0.5, 0.5}, {}), shape_error);
  CHECK_THROWS_WITH(ops::angular_margin_forward(cos, {0, 1}, {0.5}, {}), Catch::Contains("one margin per class"));
}
