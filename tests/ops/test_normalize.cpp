#include "test_util.hpp"

#include <arcnet/ops/normalize.hpp>

using namespace arcnet;

namespace normalize_test {
using arcnet::testing::random_variable;
using arcnet::testing::require_gradients_match;
using dtensor = tensor<double, cpu>;
using dvar = variable<double, cpu>;

using arcnet::testing::message_contains;
}  // namespace normalize_test

TEST_CASE("l2_normalize: hand-computed values along the last axis and along axis 0", "[ops][normalize]") {
  using namespace normalize_test;
  dvar x(dtensor::from_vector(shape{2, 2}, {3.0, 4.0, 0.0, -2.0}));
  auto y = ops::l2_normalize(x);
  CHECK(y.value().to_vector() == std::vector<double>{0.6, 0.8, 0.0, -1.0});
  auto y0 = ops::l2_normalize(x, 0);  // columns: (3, 0) and (4, -2)
  double n1 = std::sqrt(20.0);
  CHECK(y0.value().at(0, 0) == Approx(1.0));
  CHECK(y0.value().at(1, 0) == Approx(0.0));
  CHECK(y0.value().at(0, 1) == Approx(4 / n1));
  CHECK(y0.value().at(1, 1) == Approx(-2 / n1));
}

TEST_CASE("l2_normalize: a zero vector stays zero, with the gradient 1 / eps", "[ops][normalize]") {
  using namespace normalize_test;
  dvar x(dtensor::zeros(shape{1, 3}), true);
  auto y = ops::l2_normalize(x, -1, 1e-2);
  CHECK(y.value().to_vector() == std::vector<double>{0, 0, 0});
  ops::sum(y).backward();
  for (index_t i = 0; i < 3; ++i) CHECK(x.grad()[i] == Approx(100.0));  // y = x / eps near 0
}

TEST_CASE("l2_normalize: gradients match finite differences", "[ops][normalize]") {
  using namespace normalize_test;
  generator g(31);
  SECTION("axis -1") {
    auto x = random_variable(shape{3, 4, 5}, g);
    require_gradients_match([&] { return ops::l2_normalize(x); }, {x});
  }
  SECTION("axis 1 of a 3-D tensor") {
    auto x = random_variable(shape{3, 5, 4}, g);
    require_gradients_match([&] { return ops::l2_normalize(x, 1); }, {x});
  }
  SECTION("axis 0 of a 2-D tensor (class weights normalised per column)") {
    auto x = random_variable(shape{7, 3}, g);
    require_gradients_match([&] { return ops::l2_normalize(x, 0); }, {x});
  }
  SECTION("below the eps clamp") {
    auto x = random_variable(shape{2, 3}, g, -1e-3, 1e-3);
    require_gradients_match([&] { return ops::l2_normalize(x, -1, 1.0); }, {x});
  }
}

TEST_CASE("l2_normalize: float and double agree - rows have unit norm", "[ops][normalize]") {
  using namespace normalize_test;
  generator g(32);
  auto x = randn<double>(shape{6, 33}, g, 0.0, 5.0);
  auto yd = ops::l2_normalize(dvar(x));
  auto yf = ops::l2_normalize(variable<float>(x.cast<float>()));
  CHECK(arcnet::testing::max_relative_difference(yf.value(), yd.value(), 1e-3) < 1e-5);
  for (index_t r = 0; r < 6; ++r) {
    double s = 0;
    for (index_t j = 0; j < 33; ++j) s += yd.value().at(r, j) * yd.value().at(r, j);
    CHECK(s == Approx(1.0).epsilon(1e-14));
  }
}

TEST_CASE("l2_normalize: a bad axis is a shape error", "[ops][normalize]") {
  using namespace normalize_test;
  dvar x(dtensor::zeros(shape{2, 3}));
  CHECK_THROWS_MATCHES(ops::l2_normalize(x, 2), shape_error,
                       message_contains("l2_normalize: axis 2 is out of range for a tensor of shape (2, 3)"));
  CHECK_THROWS_AS(ops::l2_normalize(dvar(dtensor::scalar(1.0))), shape_error);
  CHECK_THROWS_AS(ops::l2_normalize(x, -1, 0.0), config_error);
}
