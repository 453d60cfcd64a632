#include "test_util.hpp"

#include <arcnet/ops/activation.hpp>

using namespace arcnet;

namespace activation_test {
using dtensor = tensor<double, cpu>;
using dvar = variable<double, cpu>;
}  // namespace activation_test

TEST_CASE("relu: values, and gradient 0 at and below zero", "[ops][activation]") {
  using namespace activation_test;
  dvar x(dtensor::from_vector(shape{5}, {-2.0, -0.0, 0.0, 0.5, 3.0}), true);
  auto y = ops::relu(x);
  CHECK(y.value().to_vector() == std::vector<double>{0.0, 0.0, 0.0, 0.5, 3.0});
  ops::sum(y * 2.0).backward();
  CHECK(x.grad().to_vector() == std::vector<double>{0.0, 0.0, 0.0, 2.0, 2.0});
}

TEST_CASE("relu: gradients match finite differences", "[ops][activation]") {
  generator g(71);
  auto x = arcnet::testing::random_variable(shape{3, 5, 7}, g);
  arcnet::testing::require_gradients_match([&] { return ops::relu(x); }, {x});
  // composed: relu(x) * x has the derivative 2x on the positive side
  arcnet::testing::require_gradients_match([&] { return ops::relu(x) * x; }, {x});
}

TEST_CASE("relu: float and double agree - the raw forward may run in place", "[ops][activation]") {
  using namespace activation_test;
  generator g(72);
  auto x = randn<double>(shape{4, 9}, g);
  auto yd = ops::relu(dvar(x)).value();
  auto yf = ops::relu(variable<float>(x.cast<float>())).value();
  CHECK(arcnet::testing::max_relative_difference(yf, yd, 1e-3) < 1e-6);
  auto inplace = x.clone();
  ops::elementwise_impl<cpu>::unary_forward(ops::unary_kind::relu, inplace, inplace, 0.0, 0.0);
  CHECK(inplace.to_vector() == yd.to_vector());
}
