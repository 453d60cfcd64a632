#include "test_util.hpp"

#include <arcnet/ops/loss.hpp>

using namespace arcnet;

namespace loss_test {
using arcnet::testing::random_variable;
using arcnet::testing::require_gradients_match;
using dtensor = tensor<double, cpu>;
using dvar = variable<double, cpu>;

inline std::vector<std::int64_t> random_targets(index_t n, index_t c, generator& g) {
  std::vector<std::int64_t> t;
  for (index_t i = 0; i < n; ++i) t.push_back(static_cast<std::int64_t>(g.below(static_cast<std::uint64_t>(c))));
  return t;
}
}  // namespace loss_test

TEST_CASE("softmax: hand-computed values, stable for large logits", "[ops][loss]") {
  using namespace loss_test;
  double l2 = std::log(2.0), l3 = std::log(3.0);
  auto x = dtensor::from_vector(shape{2, 3}, {0.0, l2, l3, 1000.0, 1000.0 + l2, 1000.0 + l3});
  auto p = ops::softmax_forward(x);
  auto lp = ops::log_softmax_forward(x);
  for (index_t r = 0; r < 2; ++r)
    for (index_t j = 0; j < 3; ++j) {
      CHECK(p.at(r, j) == Approx((j + 1) / 6.0).epsilon(1e-12));
      CHECK(lp.at(r, j) == Approx(std::log((j + 1) / 6.0)).epsilon(1e-12));
    }
  // float too: exp(1000) would overflow without the max shift
  auto pf = ops::softmax_forward(x.cast<float>());
  CHECK(pf.at(1, 2) == Approx(0.5f));
  CHECK(std::isfinite(ops::log_softmax_forward(x.cast<float>()).at(1, 0)));
}

TEST_CASE("cross_entropy: hand-computed loss and gradient", "[ops][loss]") {
  using namespace loss_test;
  // Row 0: uniform logits, loss ln 3. Row 1: probabilities 1/6, 2/6, 3/6, target 2, loss ln 2.
  double l2 = std::log(2.0), l3 = std::log(3.0);
  dvar logits(dtensor::from_vector(shape{2, 3}, {5.0, 5.0, 5.0, 0.0, l2, l3}), true);
  auto loss = ops::cross_entropy(logits, {1, 2});
  REQUIRE(loss.shape() == shape{});
  CHECK(loss.value().item() == Approx((l3 + l2) / 2).epsilon(1e-12));
  loss.backward();
  auto const& g = logits.grad();  // (softmax - onehot) / N
  CHECK(g.at(0, 0) == Approx((1 / 3.0) / 2));
  CHECK(g.at(0, 1) == Approx((1 / 3.0 - 1) / 2));
  CHECK(g.at(1, 0) == Approx((1 / 6.0) / 2));
  CHECK(g.at(1, 2) == Approx((3 / 6.0 - 1) / 2));
}

TEST_CASE("cross_entropy: label smoothing mixes in the uniform distribution", "[ops][loss]") {
  using namespace loss_test;
  double l2 = std::log(2.0), l3 = std::log(3.0);
  dvar logits(dtensor::from_vector(shape{1, 3}, {0.0, l2, l3}), true);
  double ls = 0.3;
  auto loss = ops::cross_entropy(logits, {0}, ls);
  double nll[3] = {std::log(6.0), std::log(3.0), std::log(2.0)};
  double expect = (1 - ls) * nll[0] + ls * (nll[0] + nll[1] + nll[2]) / 3;
  CHECK(loss.value().item() == Approx(expect).epsilon(1e-12));
  loss.backward();
  CHECK(logits.grad().at(0, 0) == Approx(1 / 6.0 - (1 - ls) - ls / 3));
  CHECK(logits.grad().at(0, 2) == Approx(3 / 6.0 - ls / 3));
}

TEST_CASE("cross_entropy: the upstream gradient scales the logits gradient", "[ops][loss]") {
  using namespace loss_test;
  generator g(21);
  auto logits = random_variable(shape{4, 5}, g);
  auto t = random_targets(4, 5, g);
  ops::cross_entropy(logits, t).backward();
  auto once = logits.grad().clone();
  logits.zero_grad();
  (ops::cross_entropy(logits, t) * 3.0).backward();
  CHECK(arcnet::testing::max_relative_difference(logits.grad(), once, 1e-12) > 0);
  for (index_t i = 0; i < once.numel(); ++i) CHECK(logits.grad()[i] == Approx(3 * once[i]));
}

TEST_CASE("cross_entropy, log_softmax, softmax: gradients match finite differences", "[ops][loss]") {
  using namespace loss_test;
  generator g(22);
  SECTION("cross_entropy") {
    auto logits = random_variable(shape{5, 7}, g);
    auto t = random_targets(5, 7, g);
    require_gradients_match([&] { return ops::cross_entropy(logits, t); }, {logits});
  }
  SECTION("cross_entropy with label smoothing") {
    auto logits = random_variable(shape{3, 9}, g);
    auto t = random_targets(3, 9, g);
    require_gradients_match([&] { return ops::cross_entropy(logits, t, 0.15); }, {logits});
  }
  SECTION("log_softmax over the last axis of a 3-D tensor") {
    auto x = random_variable(shape{3, 4, 5}, g);
    require_gradients_match([&] { return ops::log_softmax(x); }, {x});
  }
  SECTION("softmax") {
    auto x = random_variable(shape{4, 7}, g);
    require_gradients_match([&] { return ops::softmax(x); }, {x});
  }
  SECTION("cross_entropy of log_softmax-normalised logits composes") {
    auto x = random_variable(shape{3, 5}, g);
    auto t = random_targets(3, 5, g);
    require_gradients_match([&] { return ops::cross_entropy(ops::log_softmax(x * 2.0), t); }, {x});
  }
}

TEST_CASE("cross_entropy: float and double agree", "[ops][loss]") {
  using namespace loss_test;
  generator g(23);
  auto x = randn<double>(shape{8, 11}, g, 0.0, 3.0);
  auto t = random_targets(8, 11, g);
  variable<double> xd(x, true);
  variable<float> xf(x.cast<float>(), true);
  auto ld = ops::cross_entropy(xd, t, 0.1);
  auto lf = ops::cross_entropy(xf, t, 0.1);
  CHECK(lf.value().item() == Approx(ld.value().item()).epsilon(1e-6));
  ld.backward();
  lf.backward();
  CHECK(arcnet::testing::max_relative_difference(xf.grad(), xd.grad(), 1e-3) < 1e-5);
  CHECK(arcnet::testing::max_relative_difference(ops::log_softmax_forward(x.cast<float>()),
                                                 ops::log_softmax_forward(x), 1e-3) < 1e-5);
}

TEST_CASE("cross_entropy: bad targets and shapes are errors that say what is wrong", "[ops][loss]") {
  using namespace loss_test;
  dvar logits(dtensor::zeros(shape{5, 10}));
  CHECK_THROWS_MATCHES(ops::cross_entropy(logits, {0, 1, 2, 12, 4}), shape_error,
                       Catch::Message("arcnet: cross_entropy: target 12 at row 3 is out of range for 10 classes"));
  CHECK_THROWS_MATCHES(ops::cross_entropy(logits, {0, -1, 2, 3, 4}), shape_error,
                       Catch::Message("arcnet: cross_entropy: target -1 at row 1 is out of range for 10 classes"));
  CHECK_THROWS_MATCHES(ops::cross_entropy(logits, {0, 1, 2}), shape_error,
                       Catch::Message("arcnet: cross_entropy: expected 5 targets (one per row of logits (5, 10)), "
                                      "got 3"));
  CHECK_THROWS_MATCHES(ops::cross_entropy(dvar(dtensor::zeros(shape{2, 3, 4})), {0, 1}), shape_error,
                       Catch::Message("arcnet: cross_entropy: expected logits of rank 2 (N, C), got shape (2, 3, 4)"));
  CHECK_THROWS_AS(ops::cross_entropy(dvar(dtensor::zeros(shape{0, 4})), {}), shape_error);
  CHECK_THROWS_AS(ops::cross_entropy(logits, {0, 1, 2, 3, 4}, 1.5), config_error);
  CHECK_THROWS_AS(ops::log_softmax(dvar(dtensor::scalar(1.0))), shape_error);
}
