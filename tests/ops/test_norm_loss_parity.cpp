// Agreement with PyTorch (float64) on batch norm, cross-entropy and L2 normalisation; the
// fixtures come from tests/fixtures/make_norm_loss_fixtures.py.
#include "fixture.hpp"
#include "test_util.hpp"

#include <arcnet/ops/batch_norm.hpp>
#include <arcnet/ops/loss.hpp>
#include <arcnet/ops/normalize.hpp>

using namespace arcnet;

namespace norm_loss_parity {
using arcnet::testing::fixture;
using arcnet::testing::max_relative_difference;

template <class T>
constexpr double tolerance() {
  return std::is_same_v<T, float> ? 1e-4 : 1e-5;
}
template <class T>
tensor<T, cpu> as(tensor<double, cpu> const& t) {
  return t.cast<T>();
}
inline std::vector<std::int64_t> as_targets(tensor<double, cpu> const& t) {
  std::vector<std::int64_t> v;
  for (index_t i = 0; i < t.numel(); ++i) v.push_back(static_cast<std::int64_t>(std::lround(t[i])));
  return v;
}
}  // namespace norm_loss_parity

TEMPLATE_TEST_CASE("parity: batch_norm in training mode matches torch.nn.BatchNorm2d", "[ops][batch_norm][parity]",
                   float, double) {
  using namespace norm_loss_parity;
  using T = TestType;
  fixture f("norm_loss_batchnorm_train.txt");
  REQUIRE(f["x"].shape() == shape{4, 5, 5, 3});
  variable<T> x(as<T>(f["x"]), true), w(as<T>(f["weight"]), true), b(as<T>(f["bias"]), true);
  auto rm = as<T>(f["running_mean0"]), rv = as<T>(f["running_var0"]);
  auto y = ops::batch_norm(x, w, b, rm, rv, {true, 0.1, 1e-5});
  y.backward(as<T>(f["dy"]));
  double tol = tolerance<T>();
  CHECK(max_relative_difference(y.value(), f["y"], 1e-3) < tol);
  CHECK(max_relative_difference(x.grad(), f["dx"], 1e-3) < tol);
  CHECK(max_relative_difference(w.grad(), f["dweight"], 1e-3) < tol);
  CHECK(max_relative_difference(b.grad(), f["dbias"], 1e-3) < tol);
  CHECK(max_relative_difference(rm, f["running_mean1"], 1e-3) < tol);
  CHECK(max_relative_difference(rv, f["running_var1"], 1e-3) < tol);
}

TEMPLATE_TEST_CASE("parity: batch_norm in eval mode matches torch.nn.BatchNorm2d", "[ops][batch_norm][parity]",
                   float, double) {
  using namespace norm_loss_parity;
  using T = TestType;
  fixture f("norm_loss_batchnorm_eval.txt");
  variable<T> x(as<T>(f["x"]), true), w(as<T>(f["weight"]), true), b(as<T>(f["bias"]), true);
  auto rm = as<T>(f["running_mean"]), rv = as<T>(f["running_var"]);
  auto rm0 = rm.clone();
  auto y = ops::batch_norm(x, w, b, rm, rv, {false, 0.1, 1e-5});
  y.backward(as<T>(f["dy"]));
  double tol = tolerance<T>();
  CHECK(max_relative_difference(y.value(), f["y"], 1e-3) < tol);
  CHECK(max_relative_difference(x.grad(), f["dx"], 1e-3) < tol);
  CHECK(max_relative_difference(w.grad(), f["dweight"], 1e-3) < tol);
  CHECK(max_relative_difference(b.grad(), f["dbias"], 1e-3) < tol);
  CHECK(rm.to_vector() == rm0.to_vector());  // eval leaves the running statistics alone
}

TEMPLATE_TEST_CASE("parity: cross_entropy matches torch.nn.functional.cross_entropy", "[ops][loss][parity]", float,
                   double) {
  using namespace norm_loss_parity;
  using T = TestType;
  fixture f("norm_loss_cross_entropy.txt");
  auto targets = as_targets(f["targets"]);
  double tol = tolerance<T>();
  SECTION("plain") {
    variable<T> logits(as<T>(f["logits"]), true);
    auto loss = ops::cross_entropy(logits, targets);
    loss.backward();
    CHECK(max_relative_difference(loss.value(), f["loss"]) < tol);
    CHECK(max_relative_difference(logits.grad(), f["dlogits"], 1e-3) < tol);
  }
  SECTION("label smoothing 0.1") {
    variable<T> logits(as<T>(f["logits"]), true);
    auto loss = ops::cross_entropy(logits, targets, 0.1);
    loss.backward();
    CHECK(max_relative_difference(loss.value(), f["loss_smooth"]) < tol);
    CHECK(max_relative_difference(logits.grad(), f["dlogits_smooth"], 1e-3) < tol);
  }
}

TEMPLATE_TEST_CASE("parity: l2_normalize matches torch.nn.functional.normalize", "[ops][normalize][parity]", float,
                   double) {
  using namespace norm_loss_parity;
  using T = TestType;
  fixture f("norm_loss_l2_normalize.txt");
  variable<T> x(as<T>(f["x"]), true);
  auto y = ops::l2_normalize(x);
  y.backward(as<T>(f["dy"]));
  CHECK(max_relative_difference(y.value(), f["y"], 1e-3) < tolerance<T>());
  CHECK(max_relative_difference(x.grad(), f["dx"], 1e-3) < tolerance<T>());
}
