#include "test_util.hpp"

#include <arcnet/ops/elementwise.hpp>
#include <arcnet/ops/reduce.hpp>

using namespace arcnet;

namespace elementwise_test {
using arcnet::testing::max_relative_difference;
using arcnet::testing::random_variable;
using arcnet::testing::require_gradients_match;
using dtensor = tensor<double, cpu>;
using dvar = variable<double, cpu>;

using arcnet::testing::message_contains;

/// Random values with |x| in [lo, hi] and alternating signs (away from 0, e.g. for abs).
inline dvar signed_away_from_zero(shape s, generator& g, double lo, double hi) {
  auto v = random_variable(std::move(s), g, lo, hi);
  for (index_t i = 0; i < v.numel(); i += 2) v.value_mut()[i] = -v.value()[i];
  return v;
}

/// A 0/1 mask of the given shape.
inline dtensor random_mask(shape s, generator& g) {
  auto m = dtensor::uninitialized(std::move(s));
  for (index_t i = 0; i < m.numel(); ++i) m[i] = static_cast<double>(g.below(2));
  return m;
}
}  // namespace elementwise_test

TEST_CASE("elementwise: binary ops on equal shapes, hand-computed values", "[ops][elementwise]") {
  using namespace elementwise_test;
  dvar a(dtensor::from_vector(shape{2, 2}, {1.0, -2.0, 3.0, 8.0}));
  dvar b(dtensor::from_vector(shape{2, 2}, {4.0, 0.5, -1.5, 2.0}));
  CHECK((a + b).value().to_vector() == std::vector<double>{5.0, -1.5, 1.5, 10.0});
  CHECK((a - b).value().to_vector() == std::vector<double>{-3.0, -2.5, 4.5, 6.0});
  CHECK((a * b).value().to_vector() == std::vector<double>{4.0, -1.0, -4.5, 16.0});
  CHECK((a / b).value().to_vector() == std::vector<double>{0.25, -4.0, -2.0, 4.0});
}

TEST_CASE("elementwise: broadcasting follows NumPy rules", "[ops][elementwise]") {
  using namespace elementwise_test;
  // (2, 1) + (3,) -> (2, 3)
  dvar col(dtensor::from_vector(shape{2, 1}, {1.0, 2.0}));
  dvar row(dtensor::from_vector(shape{3}, {10.0, 20.0, 30.0}));
  auto y = col + row;
  REQUIRE(y.shape() == shape{2, 3});
  CHECK(y.value().to_vector() == std::vector<double>{11, 21, 31, 12, 22, 32});
  // (3,) - (2, 1): the order of the operands is kept
  CHECK((row - col).value().to_vector() == std::vector<double>{9, 19, 29, 8, 18, 28});
  // (2, 1, 2) * (3, 1) -> (2, 3, 2)
  dvar a(dtensor::from_vector(shape{2, 1, 2}, {1, 2, 3, 4}));
  dvar b(dtensor::from_vector(shape{3, 1}, {1, 10, 100}));
  auto p = a * b;
  REQUIRE(p.shape() == shape{2, 3, 2});
  CHECK(p.value().to_vector() == std::vector<double>{1, 2, 10, 20, 100, 200, 3, 4, 30, 40, 300, 400});
  // a scalar-shaped operand broadcasts everywhere
  dvar s(dtensor::scalar(2.0));
  CHECK((s / b).value().to_vector() == std::vector<double>{2.0, 0.2, 0.02});
  CHECK((s * s).shape() == shape{});
}

TEST_CASE("elementwise: a broadcasting error names both shapes", "[ops][elementwise]") {
  using namespace elementwise_test;
  dvar a(dtensor::zeros(shape{2, 3}));
  dvar b(dtensor::zeros(shape{4}));
  CHECK_THROWS_MATCHES(ops::add(a, b), shape_error,
                       Catch::Message("arcnet: add: shapes (2, 3) and (4,) do not broadcast (dimension 1: 3 vs 4)"));
  CHECK_THROWS_MATCHES(a * dvar(dtensor::zeros(shape{3, 2, 4})), shape_error,
                       message_contains("mul: shapes (2, 3) and (3, 2, 4) do not broadcast"));
  CHECK_THROWS_MATCHES(ops::binary_forward(ops::binary_kind::div, a.value(), b.value()), shape_error,
                       message_contains("(2, 3) and (4,)"));
}

TEST_CASE("elementwise: binary op gradients match finite differences, with broadcasting", "[ops][elementwise]") {
  using namespace elementwise_test;
  generator g(41);
  struct case_shapes {
    shape a, b;
  };
  std::vector<case_shapes> cases{{shape{3, 5}, shape{3, 5}},      // equal shapes
                                 {shape{3, 1, 5}, shape{4, 1}},   // both sides broadcast
                                 {shape{7, 5}, shape{5}},         // bias-like
                                 {shape{}, shape{3, 5}},          // scalar-shaped on the left
                                 {shape{3, 5}, shape{}},          // and on the right
                                 {shape{2, 3, 1}, shape{1, 3, 5}}};
  for (auto const& c : cases) {
    INFO("a " << c.a << ", b " << c.b);
    auto a = random_variable(c.a, g);
    auto b = random_variable(c.b, g);
    auto bpos = random_variable(c.b, g, 0.5, 1.5);  // a divisor away from zero
    require_gradients_match([&] { return ops::add(a, b); }, {a, b});
    require_gradients_match([&] { return ops::sub(a, b); }, {a, b});
    require_gradients_match([&] { return ops::mul(a, b); }, {a, b});
    require_gradients_match([&] { return ops::div(a, bpos); }, {a, bpos});
  }
}

TEST_CASE("elementwise: a variable combined with itself gets both gradients", "[ops][elementwise]") {
  using namespace elementwise_test;
  generator g(42);
  auto x = random_variable(shape{3, 5}, g, 0.5, 1.5);
  require_gradients_match([&] { return x * x + x / x - x; }, {x});
}

TEST_CASE("elementwise: scalar operators, values and gradients", "[ops][elementwise]") {
  using namespace elementwise_test;
  dvar x(dtensor::from_vector(shape{3}, {1.0, -2.0, 4.0}));
  CHECK((x + 2.0).value().to_vector() == std::vector<double>{3.0, 0.0, 6.0});
  CHECK((2.0 + x).value().to_vector() == std::vector<double>{3.0, 0.0, 6.0});
  CHECK((x - 1.0).value().to_vector() == std::vector<double>{0.0, -3.0, 3.0});
  CHECK((1.0 - x).value().to_vector() == std::vector<double>{0.0, 3.0, -3.0});
  CHECK((x * 3.0).value().to_vector() == std::vector<double>{3.0, -6.0, 12.0});
  CHECK((3.0 * x).value().to_vector() == std::vector<double>{3.0, -6.0, 12.0});
  CHECK((8.0 / x).value().to_vector() == std::vector<double>{8.0, -4.0, 2.0});
  CHECK((x / 4.0).value().to_vector() == std::vector<double>{0.25, -0.5, 1.0});
  CHECK((-x).value().to_vector() == std::vector<double>{-1.0, 2.0, -4.0});

  generator g(43);
  auto v = random_variable(shape{3, 5}, g);
  auto p = signed_away_from_zero(shape{5, 3}, g, 0.5, 2.0);
  require_gradients_match([&] { return v + 1.5; }, {v});
  require_gradients_match([&] { return 1.5 + v; }, {v});
  require_gradients_match([&] { return v - 0.5; }, {v});
  require_gradients_match([&] { return 2.5 - v; }, {v});
  require_gradients_match([&] { return v * -1.7; }, {v});
  require_gradients_match([&] { return 0.3 * v; }, {v});
  require_gradients_match([&] { return 3.0 / p; }, {p});
  require_gradients_match([&] { return v / 3.0; }, {v});
  require_gradients_match([&] { return -v; }, {v});
}

TEST_CASE("elementwise: unary op gradients match finite differences", "[ops][elementwise]") {
  using namespace elementwise_test;
  generator g(44);
  auto x = random_variable(shape{3, 7}, g);
  auto pos = random_variable(shape{5, 3}, g, 0.5, 2.0);
  auto away = signed_away_from_zero(shape{3, 5}, g, 0.1, 2.0);
  auto inside = random_variable(shape{3, 5}, g, -0.9, 0.9);
  require_gradients_match([&] { return ops::neg(x); }, {x});
  require_gradients_match([&] { return ops::exp(x); }, {x});
  require_gradients_match([&] { return ops::log(pos); }, {pos});
  require_gradients_match([&] { return ops::sqrt(pos); }, {pos});
  require_gradients_match([&] { return ops::pow(pos, 3.0); }, {pos});
  require_gradients_match([&] { return ops::pow(pos, 0.5); }, {pos});
  require_gradients_match([&] { return ops::pow(away, 3.0); }, {away});  // integer exponent: negatives too
  require_gradients_match([&] { return ops::clamp(x, -0.5, 0.7); }, {x});
  require_gradients_match([&] { return ops::abs(away); }, {away});
  require_gradients_match([&] { return ops::cos(x); }, {x});
  require_gradients_match([&] { return ops::acos(inside); }, {inside});
}

TEST_CASE("elementwise: hand-computed unary values and derivatives", "[ops][elementwise]") {
  using namespace elementwise_test;
  dvar x(dtensor::from_vector(shape{4}, {-2.0, -0.5, 0.25, 3.0}), true);
  auto c = ops::clamp(x, -1.0, 1.0);
  CHECK(c.value().to_vector() == std::vector<double>{-1.0, -0.5, 0.25, 1.0});
  ops::sum(c).backward();
  CHECK(x.grad().to_vector() == std::vector<double>{0.0, 1.0, 1.0, 0.0});  // no gradient where clamped

  CHECK(ops::abs(x).value().to_vector() == std::vector<double>{2.0, 0.5, 0.25, 3.0});
  CHECK(ops::pow(x, 2.0).value().to_vector() == std::vector<double>{4.0, 0.25, 0.0625, 9.0});
  CHECK(ops::exp(x).value().at(3) == Approx(std::exp(3.0)));
  CHECK(ops::cos(x).value().at(0) == Approx(std::cos(-2.0)));

  dvar q(dtensor::from_vector(shape{3}, {4.0, 0.25, 1.0}));
  CHECK(ops::sqrt(q).value().to_vector() == std::vector<double>{2.0, 0.5, 1.0});
  CHECK(ops::log(q).value().at(2) == 0.0);
  CHECK(ops::pow(q, 0.5).value().to_vector() == std::vector<double>{2.0, 0.5, 1.0});

  // abs has gradient 0 at 0, like PyTorch's sign(x)
  dvar z(dtensor::from_vector(shape{3}, {-1.0, 0.0, 2.0}), true);
  ops::sum(ops::abs(z)).backward();
  CHECK(z.grad().to_vector() == std::vector<double>{-1.0, 0.0, 1.0});
}

TEST_CASE("elementwise: acos is finite at +-1 (input clamped by acos_epsilon)", "[ops][elementwise]") {
  using namespace elementwise_test;
  dvar x(dtensor::from_vector(shape{4}, {1.0, -1.0, 1.5, 0.5}), true);
  auto y = ops::acos(x);
  double e = ops::acos_epsilon<double>();
  CHECK(y.value().at(0) == Approx(std::acos(1.0 - e)).epsilon(1e-12));
  CHECK(y.value().at(0) > 0.0);
  CHECK(y.value().at(1) == Approx(std::acos(-1.0 + e)).epsilon(1e-12));
  CHECK(y.value().at(2) == y.value().at(0));  // outside [-1, 1]: clamped too
  CHECK(y.value().at(3) == Approx(std::acos(0.5)));
  ops::sum(y).backward();
  for (index_t i = 0; i < 3; ++i) CHECK(x.grad()[i] == 0.0);  // the clamp passes no gradient
  CHECK(x.grad()[3] == Approx(-1 / std::sqrt(0.75)));

  variable<float> xf(tensor<float>::from_vector(shape{1}, {1.0f}), true);
  auto yf = ops::acos(xf);
  CHECK(std::isfinite(yf.value()[0]));
  CHECK(yf.value()[0] > 0.0f);
  ops::sum(yf).backward();
  CHECK(std::isfinite(xf.grad()[0]));
}

TEST_CASE("elementwise: where selects values and routes gradients by the mask", "[ops][elementwise]") {
  using namespace elementwise_test;
  auto cond = dtensor::from_vector(shape{2, 2}, {1, 0, 0, 1});
  dvar a(dtensor::from_vector(shape{2, 2}, {1, 2, 3, 4}), true);
  dvar b(dtensor::from_vector(shape{2, 2}, {-1, -2, -3, -4}), true);
  auto y = ops::where(cond, a, b);
  CHECK(y.value().to_vector() == std::vector<double>{1, -2, -3, 4});
  ops::sum(y * 2.0).backward();
  CHECK(a.grad().to_vector() == std::vector<double>{2, 0, 0, 2});
  CHECK(b.grad().to_vector() == std::vector<double>{0, 2, 2, 0});

  generator g(45);
  auto m = random_mask(shape{3, 5}, g);
  auto u = random_variable(shape{3, 5}, g);
  auto v = random_variable(shape{3, 5}, g);
  require_gradients_match([&] { return ops::where(m, ops::exp(u), v * v); }, {u, v});

  CHECK_THROWS_AS(ops::where(dtensor::zeros(shape{2, 3}), a, b), shape_error);
  CHECK_THROWS_WITH(ops::clamp(a, 1.0, -1.0), Catch::Contains("clamp: expected lo <= hi"));
}

TEST_CASE("elementwise: float and double forward agree for every op", "[ops][elementwise]") {
  using namespace elementwise_test;
  using ops::unary_kind;
  generator g(46);
  auto x = randn<double>(shape{5, 9}, g);
  auto pos = rand<double>(shape{5, 9}, g, 0.5, 3.0);
  auto inside = rand<double>(shape{5, 9}, g, -0.95, 0.95);
  struct unary_case {
    unary_kind k;
    dtensor const* in;
    double p, q;
  };
  std::vector<unary_case> cases{{unary_kind::neg, &x, 0, 0},        {unary_kind::exp, &x, 0, 0},
                                {unary_kind::log, &pos, 0, 0},      {unary_kind::sqrt, &pos, 0, 0},
                                {unary_kind::abs, &x, 0, 0},        {unary_kind::cos, &x, 0, 0},
                                {unary_kind::acos, &inside, 0, 0},  {unary_kind::relu, &x, 0, 0},
                                {unary_kind::pow, &pos, 2.5, 0},    {unary_kind::clamp, &x, -0.3, 0.4},
                                {unary_kind::add_scalar, &x, 1.7, 0}, {unary_kind::mul_scalar, &x, -0.6, 0},
                                {unary_kind::rdiv_scalar, &pos, 2.0, 0}};
  for (auto const& c : cases) {
    INFO("unary kind " << static_cast<int>(c.k));
    auto yd = ops::unary_forward(c.k, *c.in, c.p, c.q);
    auto yf = ops::unary_forward(c.k, c.in->cast<float>(), static_cast<float>(c.p), static_cast<float>(c.q));
    CHECK(max_relative_difference(yf, yd, 1e-3) < 1e-5);
  }
  auto b = rand<double>(shape{9}, g, 0.5, 2.0);
  for (auto k : {ops::binary_kind::add, ops::binary_kind::sub, ops::binary_kind::mul, ops::binary_kind::div}) {
    INFO("binary kind " << static_cast<int>(k));
    auto yd = ops::binary_forward(k, x, b);
    auto yf = ops::binary_forward(k, x.cast<float>(), b.cast<float>());
    CHECK(max_relative_difference(yf, yd, 1e-3) < 1e-5);
  }
}

TEST_CASE("elementwise: raw backward kernels accumulate", "[ops][elementwise]") {
  using namespace elementwise_test;
  auto x = dtensor::from_vector(shape{2}, {1.0, 2.0});
  auto y = ops::unary_forward(ops::unary_kind::exp, x);
  auto dy = dtensor::full(shape{2}, 1.0);
  auto dx = dtensor::full(shape{2}, 10.0);
  ops::unary_backward(ops::unary_kind::exp, x, y, dy, dx);
  CHECK(dx.at(0) == Approx(10 + std::exp(1.0)));
  auto b = dtensor::from_vector(shape{1}, {3.0});
  auto db = dtensor::full(shape{1}, 1.0);
  ops::binary_backward(ops::binary_kind::mul, x, b, dy, static_cast<dtensor*>(nullptr), &db);
  CHECK(db.at(0) == Approx(1 + 1.0 + 2.0));  // summed over the broadcast dimension
  auto acc = dtensor::full(shape{2}, 1.0);
  ops::axpy(2.0, x, acc);
  CHECK(acc.to_vector() == std::vector<double>{3.0, 5.0});
}
