#include "test_util.hpp"

#include <arcnet/ops/reduce.hpp>

using namespace arcnet;

namespace reduce_test {
using arcnet::testing::max_relative_difference;
using arcnet::testing::random_variable;
using arcnet::testing::require_gradients_match;
using dtensor = tensor<double, cpu>;
using dvar = variable<double, cpu>;

/// 0, 1, ..., numel - 1 in shape s.
inline dtensor iota(shape s) {
  auto t = dtensor::uninitialized(std::move(s));
  for (index_t i = 0; i < t.numel(); ++i) t[i] = static_cast<double>(i);
  return t;
}
}  // namespace reduce_test

TEST_CASE("reduce: sum and mean over axes of a known tensor", "[ops][reduce]") {
  using namespace reduce_test;
  dvar x(iota(shape{2, 3, 4}));  // x[i, j, k] = 12 i + 4 j + k
  auto s0 = ops::sum(x, {0});
  REQUIRE(s0.shape() == shape{3, 4});
  CHECK(s0.value().at(0, 0) == 12.0);  // 0 + 12
  CHECK(s0.value().at(2, 3) == 11.0 + 23.0);
  auto s1 = ops::sum(x, {1}, true);
  REQUIRE(s1.shape() == shape{2, 1, 4});
  CHECK(s1.value().at(1, 0, 2) == 14.0 + 18.0 + 22.0);
  auto s02 = ops::sum(x, {0, 2});
  REQUIRE(s02.shape() == shape{3});
  // sum over i, k of 12 i + 4 j + k = 8 * 4 j + (0 + 12) * 4 + 2 * (0 + 1 + 2 + 3)
  for (index_t j = 0; j < 3; ++j) CHECK(s02.value().at(j) == 32.0 * j + 48.0 + 12.0);
  auto s_neg = ops::sum(x, {-1, -3});
  CHECK(s_neg.value().to_vector() == s02.value().to_vector());
  auto all = ops::sum(x);
  REQUIRE(all.shape() == shape{});
  CHECK(all.value().item() == 23.0 * 24.0 / 2);
  auto all_keep = ops::sum(x, {}, true);
  CHECK(all_keep.shape() == shape{1, 1, 1});

  auto m = ops::mean(x, {2});
  REQUIRE(m.shape() == shape{2, 3});
  CHECK(m.value().at(1, 2) == Approx((20.0 + 21 + 22 + 23) / 4));
  CHECK(ops::mean(x).value().item() == Approx(11.5));
  CHECK(ops::mean(x, {0, 1}, true).shape() == shape{1, 1, 4});
  CHECK(ops::mean(x, {0, 1}).value().at(3) == Approx((3.0 + 7 + 11 + 15 + 19 + 23) / 6));
}

TEST_CASE("reduce: max over an axis with its argmax - ties go to the first", "[ops][reduce]") {
  using namespace reduce_test;
  dvar x(dtensor::from_vector(shape{2, 3}, {1.0, 5.0, 5.0, -2.0, -7.0, -1.0}), true);
  auto m1 = ops::max(x, 1);
  CHECK(m1.value().to_vector() == std::vector<double>{5.0, -1.0});
  auto m0 = ops::max(x, 0, true);
  REQUIRE(m0.shape() == shape{1, 3});
  CHECK(m0.value().to_vector() == std::vector<double>{1.0, 5.0, 5.0});
  ops::sum(m1).backward();
  CHECK(x.grad().to_vector() == std::vector<double>{0, 1, 0, 0, 0, 1});

  arcnet::tensor<index_t, arcnet::cpu> arg;
  auto y = ops::max_forward(x.value(), -1, arg);
  CHECK(arg.shape() == shape{2});
  CHECK(arg.to_vector() == std::vector<index_t>{1, 2});
  CHECK(y.shape() == shape{2});
  CHECK_THROWS_AS(ops::max(dvar(dtensor::zeros(shape{2, 0})), 1), shape_error);
}

TEST_CASE("reduce: sum_to undoes broadcasting", "[ops][reduce]") {
  using namespace reduce_test;
  auto x = iota(shape{2, 3});
  CHECK(ops::sum_to(x, shape{3}).to_vector() == std::vector<double>{3, 5, 7});
  CHECK(ops::sum_to(x, shape{2, 1}).to_vector() == std::vector<double>{3, 12});
  CHECK(ops::sum_to(x, shape{}).item() == 15.0);
  CHECK(ops::sum_to(x, shape{2, 3}).to_vector() == x.to_vector());
  CHECK_THROWS_AS(ops::sum_to(x, shape{4}), shape_error);
}

TEST_CASE("reduce: gradients of sum, mean and max match finite differences", "[ops][reduce]") {
  using namespace reduce_test;
  generator g(51);
  auto x = random_variable(shape{3, 4, 5}, g);
  require_gradients_match([&] { return ops::sum(x, {1}); }, {x});
  require_gradients_match([&] { return ops::sum(x, {0, 2}); }, {x});
  require_gradients_match([&] { return ops::sum(x, {2, 0}, true); }, {x});
  require_gradients_match([&] { return ops::sum(x); }, {x});
  require_gradients_match([&] { return ops::sum(x, {}, true); }, {x});
  require_gradients_match([&] { return ops::mean(x, {-1}); }, {x});
  require_gradients_match([&] { return ops::mean(x, {0, 1}, true); }, {x});
  require_gradients_match([&] { return ops::mean(x); }, {x});
  require_gradients_match([&] { return ops::max(x, 0); }, {x});
  require_gradients_match([&] { return ops::max(x, 1, true); }, {x});
  require_gradients_match([&] { return ops::max(x, -1); }, {x});
  // a reduction inside a formula: x / sum(x) over the rows (broadcast back)
  auto p = random_variable(shape{3, 5}, g, 0.5, 1.5);
  require_gradients_match([&] { return p / ops::sum(p, {1}, true); }, {p});
  auto s = random_variable(shape{}, g);
  require_gradients_match([&] { return ops::mean(s * s); }, {s});
}

TEST_CASE("reduce: sum_of_squares sums in double, finite exactly when every element is", "[ops][reduce]") {
  auto x = tensor<float>::from_vector(shape{2, 2}, {1.5f, -2.0f, std::ldexp(1.0f, 70), 0.25f});
  double s = -1;
  ops::sum_of_squares(x, &s);
  CHECK(s == 2.25 + 4.0 + std::ldexp(1.0, 140) + 0.0625);  // 2^140 overflows float but not double
  CHECK(std::isfinite(s));
  x[1] = std::numeric_limits<float>::infinity();
  ops::sum_of_squares(x, &s);
  CHECK(std::isinf(s));
  x[1] = std::numeric_limits<float>::quiet_NaN();
  ops::sum_of_squares(x, &s);
  CHECK(std::isnan(s));
  ops::sum_of_squares(tensor<float>::zeros(shape{0}), &s);
  CHECK(s == 0.0);
  CHECK_THROWS_AS(ops::sum_of_squares(tensor<float>(), &s), error);
}

TEST_CASE("reduce: float and double agree", "[ops][reduce]") {
  using namespace reduce_test;
  generator g(52);
  auto x = randn<double>(shape{4, 7, 9}, g, 2.0, 1.0);
  auto xf = x.cast<float>();
  CHECK(max_relative_difference(ops::sum_forward(xf, {1}), ops::sum_forward(x, {1}), 1e-3) < 1e-5);
  CHECK(max_relative_difference(ops::sum_forward(xf, {0, 2}), ops::sum_forward(x, {0, 2}), 1e-3) < 1e-5);
  CHECK(max_relative_difference(ops::sum_forward(xf, {}, false, 0.5f), ops::sum_forward(x, {}, false, 0.5), 1e-3) <
        1e-5);
  arcnet::tensor<index_t, arcnet::cpu> af, ad;
  CHECK(max_relative_difference(ops::max_forward(xf, 2, af), ops::max_forward(x, 2, ad), 1e-3) < 1e-6);
  CHECK(af.to_vector() == ad.to_vector());
}

TEST_CASE("reduce: bad axes are shape errors", "[ops][reduce]") {
  using namespace reduce_test;
  dvar x(dtensor::zeros(shape{2, 3}));
  CHECK_THROWS_WITH(ops::sum(x, {2}), Catch::Contains("sum: axis 2 is out of range for a tensor of shape (2, 3)"));
  CHECK_THROWS_WITH(ops::sum(x, {1, -1}), Catch::Contains("sum: an axis is repeated"));
  CHECK_THROWS_AS(ops::mean(x, {-3}), shape_error);
  CHECK_THROWS_AS(ops::max(x, 5), shape_error);
}
