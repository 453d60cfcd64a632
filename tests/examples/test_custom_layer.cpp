#include "test_util.hpp"

#include <arcnet/nn/sequential.hpp>

#include "../../examples/gem_pool.hpp"

using namespace arcnet;

TEST_CASE("custom layer: GeM pooling built from ops has correct gradients", "[nn][examples]") {
  generator g(21);
  example::gem_pool::module<double, cpu> gem;
  auto x = testing::random_variable(shape{2, 3, 5, 4}, g, 0.1, 2.0);
  testing::require_gradients_match([&] { return gem.forward(x); }, {x, gem.p()});
}

TEST_CASE("custom layer: GeM with p = 1 is average pooling, and large p approaches max pooling", "[nn][examples]") {
  auto t = tensor<double>::from_vector(shape{1, 2, 2, 1}, {1, 2, 3, 4});
  example::gem_pool::module<double, cpu> gem;
  gem.p().value_mut()[0] = 1;
  CHECK(gem.forward(variable<double>(t)).value()[0] == Approx(2.5));
  gem.p().value_mut()[0] = 3;
  CHECK(gem.forward(variable<double>(t)).value()[0] == Approx(std::cbrt((1 + 8 + 27 + 64) / 4.0)));
  gem.p().value_mut()[0] = 60;
  CHECK(gem.forward(variable<double>(t)).value()[0] == Approx(4.0).epsilon(0.03));
}

TEST_CASE("custom layer: GeM composes with the layer templates", "[nn][examples]") {
  using net = nn::sequential<nn::conv2d<2, 3, 3>, nn::relu, example::gem_pool, nn::linear<3, 2>>;
  static_assert(net::in_channels == 2, "the first layer fixes the input channels");
  generator g(3);
  net::module<double, cpu> m(g);
  auto x = testing::random_variable(shape{2, 5, 5, 2}, g);
  auto y = m.forward(x);
  CHECK(y.shape() == shape{2, 2});
  CHECK(nn::count_parameters(m) == 3 * 3 * 2 * 3 + 1 + 3 * 2 + 2);
}
