#include "test_util.hpp"

using namespace arcnet;
using arcnet::testing::random_variable;
using arcnet::testing::require_gradients_match;

TEST_CASE("autograd: a value used twice accumulates both gradients", "[autograd]") {
  variable<double> x(tensor<double>::from_vector(shape{2}, {3.0, -2.0}), true);
  auto y = ops::sum(ops::mul(x, x) + x);  // sum(x^2 + x): dy/dx = 2x + 1
  y.backward();
  CHECK(y.value().item() == Approx(9 + 3 + 4 - 2));
  CHECK(x.grad().at(0) == Approx(7.0));
  CHECK(x.grad().at(1) == Approx(-3.0));
}

TEST_CASE("autograd: shared sub-expressions in a DAG run each node once", "[autograd]") {
  variable<double> x(tensor<double>::from_vector(shape{1}, {0.5}), true);
  auto e = ops::exp(x);          // shared
  auto y = ops::sum(e * e + e);  // d/dx = 2e^2 + e
  y.backward();
  double ex = std::exp(0.5);
  CHECK(x.grad().at(0) == Approx(2 * ex * ex + ex));
}

TEST_CASE("autograd: gradients accumulate across backward calls until zeroed", "[autograd]") {
  variable<double> x(tensor<double>::from_vector(shape{1}, {2.0}), true);
  ops::sum(x * 3.0).backward();
  ops::sum(x * 3.0).backward();
  CHECK(x.grad().at(0) == Approx(6.0));
  x.zero_grad();
  CHECK_FALSE(x.grad().defined());
}

TEST_CASE("autograd: the graph is freed after backward - a second backward is an error", "[autograd]") {
  variable<double> x(tensor<double>::from_vector(shape{1}, {2.0}), true);
  auto y = ops::sum(ops::exp(x));
  REQUIRE(y.grad_fn() != nullptr);
  std::weak_ptr<autograd::node> inner = y.grad_fn()->inputs.empty() ? nullptr : y.grad_fn()->inputs[0]->grad_fn;
  y.backward();
  CHECK(y.grad_fn() == nullptr);
  CHECK(inner.expired());
  CHECK_THROWS_WITH(y.backward(), Catch::Contains("already freed"));

  auto z = ops::sum(ops::exp(x));
  z.backward(true);  // retain_graph
  z.backward();
  CHECK(x.grad().at(0) == Approx(3 * std::exp(2.0)));  // three backward runs of exp(x), each adding e^2
}

TEST_CASE("autograd: no_grad records nothing and detach cuts the graph", "[autograd]") {
  variable<double> x(tensor<double>::from_vector(shape{1}, {2.0}), true);
  {
    autograd::no_grad guard;
    auto y = x * 2.0;
    CHECK_FALSE(y.requires_grad());
    CHECK(y.grad_fn() == nullptr);
  }
  auto d = (x * 2.0).detach();
  CHECK_FALSE(d.requires_grad());
  auto y = ops::sum(d * x);  // only the x factor carries gradient: dy/dx = d = 4
  y.backward();
  CHECK(x.grad().at(0) == Approx(4.0));
  CHECK_THROWS_AS(d.backward(), error);
}

TEST_CASE("autograd: non-leaf gradients are freed unless retained", "[autograd]") {
  variable<double> x(tensor<double>::from_vector(shape{2}, {1.0, 2.0}), true);
  auto h = x * 3.0;
  auto k = x * 5.0;
  k.retain_grad();
  ops::sum(h * k).backward();
  CHECK_FALSE(h.grad().defined());
  REQUIRE(k.grad().defined());
  CHECK(k.grad().at(1) == Approx(6.0));
}

// A user-defined differentiable op: y = x^3, with its own forward and backward.
template <class D>
variable<double, D> cube(variable<double, D> const& x) {
  auto y = tensor<double, D>::uninitialized(x.shape());
  for (index_t i = 0; i < y.numel(); ++i) y[i] = x.value()[i] * x.value()[i] * x.value()[i];
  return autograd::make_op("cube", y, {x}, [x](tensor<double, D> const& dy) mutable {
    if (!x.requires_grad()) return;
    auto& dx = x.grad_for_accumulate();
    for (index_t i = 0; i < dx.numel(); ++i) dx[i] += 3 * x.value()[i] * x.value()[i] * dy[i];
  });
}

TEST_CASE("autograd: a custom op from a forward and a backward function", "[autograd]") {
  generator g(3);
  auto x = random_variable(shape{3, 5}, g);
  require_gradients_match([&] { return ops::sum(cube(x) * x, {1}); }, {x});
  auto y = cube(x);
  CHECK(y.grad_fn()->name == std::string("cube"));
}
