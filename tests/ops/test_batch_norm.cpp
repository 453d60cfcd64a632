#include "test_util.hpp"

#include <arcnet/ops/batch_norm.hpp>

using namespace arcnet;

namespace bn_test {
using arcnet::testing::random_variable;
using arcnet::testing::require_gradients_match;
using dtensor = tensor<double, cpu>;
using dvar = variable<double, cpu>;

using arcnet::testing::message_contains;

/// Per-channel mean and biased variance of y (..., C).
inline void channel_moments(dtensor const& y, index_t c, std::vector<double>& mean, std::vector<double>& var) {
  index_t m = y.numel() / c;
  mean.assign(static_cast<size_t>(c), 0.0);
  var.assign(static_cast<size_t>(c), 0.0);
  for (index_t r = 0; r < m; ++r)
    for (index_t j = 0; j < c; ++j) mean[static_cast<size_t>(j)] += y[r * c + j] / static_cast<double>(m);
  for (index_t r = 0; r < m; ++r)
    for (index_t j = 0; j < c; ++j) {
      double d = y[r * c + j] - mean[static_cast<size_t>(j)];
      var[static_cast<size_t>(j)] += d * d / static_cast<double>(m);
    }
}
}  // namespace bn_test

TEST_CASE("batch_norm: training normalises with batch statistics and updates the running ones", "[ops][batch_norm]") {
  using namespace bn_test;
  // Channel 0: 1, 2, 3, 4 (mean 2.5, biased var 1.25); channel 1: 10, 10, 20, 20 (mean 15, var 25).
  dvar x(dtensor::from_vector(shape{4, 2}, {1, 10, 2, 10, 3, 20, 4, 20}));
  dvar w(dtensor::from_vector(shape{2}, {2.0, 0.5}));
  dvar b(dtensor::from_vector(shape{2}, {1.0, -1.0}));
  auto rm = dtensor::from_vector(shape{2}, {0.0, 1.0});
  auto rv = dtensor::from_vector(shape{2}, {1.0, 2.0});
  auto y = ops::batch_norm(x, w, b, rm, rv, {true, 0.1, 1e-5});
  REQUIRE(y.shape() == shape{4, 2});
  double s0 = 1 / std::sqrt(1.25 + 1e-5), s1 = 1 / std::sqrt(25 + 1e-5);
  CHECK(y.value().at(0, 0) == Approx(2.0 * (1 - 2.5) * s0 + 1.0).epsilon(1e-12));
  CHECK(y.value().at(3, 0) == Approx(2.0 * (4 - 2.5) * s0 + 1.0).epsilon(1e-12));
  CHECK(y.value().at(1, 1) == Approx(0.5 * (10 - 15) * s1 - 1.0).epsilon(1e-12));
  CHECK(y.value().at(2, 1) == Approx(0.5 * (20 - 15) * s1 - 1.0).epsilon(1e-12));
  // running = 0.9 running + 0.1 batch, with the unbiased variance (x 4/3)
  CHECK(rm.at(0) == Approx(0.9 * 0.0 + 0.1 * 2.5).epsilon(1e-12));
  CHECK(rm.at(1) == Approx(0.9 * 1.0 + 0.1 * 15).epsilon(1e-12));
  CHECK(rv.at(0) == Approx(0.9 * 1.0 + 0.1 * 1.25 * 4 / 3).epsilon(1e-12));
  CHECK(rv.at(1) == Approx(0.9 * 2.0 + 0.1 * 25 * 4.0 / 3).epsilon(1e-12));
}

TEST_CASE("batch_norm: without affine the output has zero mean and unit variance per channel", "[ops][batch_norm]") {
  using namespace bn_test;
  generator g(11);
  auto x = random_variable(shape{3, 5, 7, 4}, g);
  dtensor none;
  auto y = ops::batch_norm(x, dvar(), dvar(), none, none, {true, 0.1, 1e-12});
  std::vector<double> mean, var;
  channel_moments(y.value(), 4, mean, var);
  for (int j = 0; j < 4; ++j) {
    CHECK(mean[static_cast<size_t>(j)] == Approx(0.0).margin(1e-12));
    CHECK(var[static_cast<size_t>(j)] == Approx(1.0).epsilon(1e-9));
  }
}

TEST_CASE("batch_norm: eval uses the running statistics and leaves them unchanged", "[ops][batch_norm]") {
  using namespace bn_test;
  dvar x(dtensor::from_vector(shape{3, 2}, {1, 2, 3, 4, 5, 6}));
  dvar w(dtensor::from_vector(shape{2}, {2.0, 3.0}));
  dvar b(dtensor::from_vector(shape{2}, {0.5, -0.5}));
  auto rm = dtensor::from_vector(shape{2}, {1.0, -1.0});
  auto rv = dtensor::from_vector(shape{2}, {4.0, 0.25});
  auto y = ops::batch_norm(x, w, b, rm, rv, {false, 0.1, 1e-5});
  for (index_t r = 0; r < 3; ++r) {
    CHECK(y.value().at(r, 0) == Approx((x.value().at(r, 0) - 1.0) / std::sqrt(4.0 + 1e-5) * 2.0 + 0.5));
    CHECK(y.value().at(r, 1) == Approx((x.value().at(r, 1) + 1.0) / std::sqrt(0.25 + 1e-5) * 3.0 - 0.5));
  }
  CHECK(rm.to_vector() == std::vector<double>{1.0, -1.0});
  CHECK(rv.to_vector() == std::vector<double>{4.0, 0.25});
  // A single sample is fine in eval.
  dvar one(dtensor::from_vector(shape{1, 2}, {1.0, -1.0}));
  auto y1 = ops::batch_norm(one, w, b, rm, rv, {false});
  CHECK(y1.value().at(0, 0) == Approx(0.5));
  CHECK(y1.value().at(0, 1) == Approx(-0.5));
}

TEST_CASE("batch_norm: eval without running statistics uses batch statistics", "[ops][batch_norm]") {
  using namespace bn_test;
  generator g(12);
  auto x = random_variable(shape{5, 3}, g);
  dtensor none;
  auto yt = ops::batch_norm(x, dvar(), dvar(), none, none, {true});
  auto ye = ops::batch_norm(x, dvar(), dvar(), none, none, {false});
  CHECK(arcnet::testing::max_relative_difference(ye.value(), yt.value()) < 1e-14);
}

TEST_CASE("batch_norm: running statistics update under no_grad too", "[ops][batch_norm]") {
  using namespace bn_test;
  dvar x(dtensor::from_vector(shape{2, 1}, {1.0, 3.0}));
  auto rm = dtensor::zeros(shape{1});
  auto rv = dtensor::full(shape{1}, 1.0);
  {
    autograd::no_grad guard;
    ops::batch_norm(x, dvar(), dvar(), rm, rv, {true, 0.5, 1e-5});
  }
  CHECK(rm.at(0) == Approx(0.5 * 2.0));
  CHECK(rv.at(0) == Approx(0.5 * 1.0 + 0.5 * 2.0));  // unbiased var of {1, 3} = 2
}

TEST_CASE("batch_norm: a large mean does not cancel the variance in float", "[ops][batch_norm]") {
  // 1000 +- 1: float sums of x and x^2 would lose the variance; shifted double sums keep it.
  std::vector<float> v;
  for (int i = 0; i < 64; ++i) v.push_back(i % 2 ? 1001.0f : 999.0f);
  variable<float> x(tensor<float>::from_vector(shape{64, 1}, v));
  tensor<float> rm = tensor<float>::zeros(shape{1}), rv = tensor<float>::full(shape{1}, 1.0f);
  auto y = ops::batch_norm(x, variable<float>(), variable<float>(), rm, rv, {true, 1.0, 1e-5});
  float expect = static_cast<float>(1 / std::sqrt(1 + 1e-5));
  CHECK(y.value().at(0, 0) == Approx(-expect).epsilon(1e-6));
  CHECK(y.value().at(1, 0) == Approx(expect).epsilon(1e-6));
  CHECK(rm.at(0) == Approx(1000.0f).epsilon(1e-7));
  CHECK(rv.at(0) == Approx(64.0 / 63.0).epsilon(1e-6));
}

// Batch norm is invariant to the scale of x, so dL/dx shrinks like 1 / std(x) while the rounding
// noise of the finite differences grows with the number of outputs: inputs with a small spread
// (and an offset mean) keep the gradients well above that noise.
TEST_CASE("batch_norm: gradients in training mode match finite differences", "[ops][batch_norm]") {
  using namespace bn_test;
  generator g(13);
  dtensor none;
  SECTION("2-D input with affine") {
    auto x = random_variable(shape{7, 5}, g, 0.45, 0.55);
    auto w = random_variable(shape{5}, g);
    auto b = random_variable(shape{5}, g);
    auto rm = dtensor::zeros(shape{5}), rv = dtensor::full(shape{5}, 1.0);
    require_gradients_match([&] { return ops::batch_norm(x, w, b, rm, rv, {true}); }, {x, w, b});
  }
  SECTION("4-D input with affine") {
    auto x = random_variable(shape{3, 5, 3, 4}, g, 0.45, 0.55);
    auto w = random_variable(shape{4}, g);
    auto b = random_variable(shape{4}, g);
    require_gradients_match([&] { return ops::batch_norm(x, w, b, none, none, {true}); }, {x, w, b});
  }
  SECTION("2-D input without affine") {
    auto x = random_variable(shape{9, 3}, g, 0.45, 0.55);
    require_gradients_match([&] { return ops::batch_norm(x, dvar(), dvar(), none, none, {true}); }, {x});
  }
  SECTION("4-D input without affine") {
    auto x = random_variable(shape{3, 3, 5, 2}, g, 0.45, 0.55);
    auto rm = dtensor::zeros(shape{2}), rv = dtensor::full(shape{2}, 1.0);
    require_gradients_match([&] { return ops::batch_norm(x, dvar(), dvar(), rm, rv, {true}); }, {x});
  }
  SECTION("weight only") {
    auto x = random_variable(shape{5, 3}, g, 0.45, 0.55);
    auto w = random_variable(shape{3}, g);
    require_gradients_match([&] { return ops::batch_norm(x, w, dvar(), none, none, {true}); }, {x, w});
  }
}

TEST_CASE("batch_norm: gradients in eval mode match finite differences", "[ops][batch_norm]") {
  using namespace bn_test;
  generator g(14);
  auto x = random_variable(shape{3, 5, 3, 4}, g);
  auto w = random_variable(shape{4}, g);
  auto b = random_variable(shape{4}, g);
  auto rm = randn<double>(shape{4}, g);
  auto rv = rand<double>(shape{4}, g, 0.5, 2.0);
  require_gradients_match([&] { return ops::batch_norm(x, w, b, rm, rv, {false}); }, {x, w, b});
  // The eval backward is the plain affine map: dx = dy * weight / sqrt(running_var + eps).
  x.zero_grad();
  ops::sum(ops::batch_norm(x, w, b, rm, rv, {false})).backward();
  for (index_t i = 0; i < x.numel(); ++i) {
    index_t j = i % 4;
    REQUIRE(x.grad()[i] == Approx(w.value()[j] / std::sqrt(rv[j] + 1e-5)));
  }
}

TEST_CASE("batch_norm: raw backward accumulates", "[ops][batch_norm]") {
  using namespace bn_test;
  generator g(15);
  auto x = randn<double>(shape{6, 3}, g);
  auto w = randn<double>(shape{3}, g);
  auto dy = randn<double>(shape{6, 3}, g);
  dtensor none, mean, invstd;
  ops::batch_norm_forward(x, w, none, none, none, {true}, mean, invstd);
  dtensor dx1(x.shape()), dw1(shape{3}), db1(shape{3});
  ops::batch_norm_backward(x, w, mean, invstd, dy, true, &dx1, &dw1, &db1);
  dtensor dx2 = dx1.clone(), dw2 = dw1.clone(), db2 = db1.clone();
  ops::batch_norm_backward(x, w, mean, invstd, dy, true, &dx2, &dw2, &db2);
  for (index_t i = 0; i < dx1.numel(); ++i) CHECK(dx2[i] == Approx(2 * dx1[i]));
  for (index_t i = 0; i < 3; ++i) {
    CHECK(dw2[i] == Approx(2 * dw1[i]));
    CHECK(db2[i] == Approx(2 * db1[i]));
  }
}

TEST_CASE("batch_norm: float and double forward agree", "[ops][batch_norm]") {
  using namespace bn_test;
  generator g(16);
  auto xd = randn<double>(shape{4, 3, 5, 6}, g, 0.5, 2.0);
  auto wd = randn<double>(shape{6}, g), bd = randn<double>(shape{6}, g);
  auto rmd = dtensor::zeros(shape{6}), rvd = dtensor::full(shape{6}, 1.0);
  auto rmf = rmd.cast<float>(), rvf = rvd.cast<float>();
  for (bool training : {true, false}) {
    auto yd = ops::batch_norm(dvar(xd), dvar(wd), dvar(bd), rmd, rvd, {training});
    auto yf = ops::batch_norm(variable<float>(xd.cast<float>()), variable<float>(wd.cast<float>()),
                              variable<float>(bd.cast<float>()), rmf, rvf, {training});
    CHECK(arcnet::testing::max_relative_difference(yf.value(), yd.value(), 1e-3) < 1e-5);
    CHECK(arcnet::testing::max_relative_difference(rmf, rmd, 1e-3) < 1e-5);
    CHECK(arcnet::testing::max_relative_difference(rvf, rvd, 1e-3) < 1e-5);
  }
}

TEST_CASE("batch_norm: bad shapes are shape errors that name the shapes", "[ops][batch_norm]") {
  using namespace bn_test;
  dtensor none;
  dvar x(dtensor::zeros(shape{4, 3}));
  auto rm = dtensor::zeros(shape{3}), rv = dtensor::full(shape{3}, 1.0);
  CHECK_THROWS_MATCHES(ops::batch_norm(dvar(dtensor::zeros(shape{5})), dvar(), dvar(), none, none), shape_error,
                       Catch::Message("arcnet: batch_norm: expected input of rank >= 2 (N, ..., C), got shape (5,)"));
  CHECK_THROWS_MATCHES(ops::batch_norm(x, dvar(dtensor::zeros(shape{4})), dvar(), none, none), shape_error,
                       Catch::Message("arcnet: batch_norm: expected weight of shape (3,) for input (4, 3), got (4,)"));
  CHECK_THROWS_MATCHES(ops::batch_norm(x, dvar(), dvar(dtensor::zeros(shape{1, 3})), none, none), shape_error,
                       message_contains("expected bias of shape (3,)"));
  auto rm_bad = dtensor::zeros(shape{2});
  CHECK_THROWS_MATCHES(ops::batch_norm(x, dvar(), dvar(), rm_bad, rv), shape_error,
                       message_contains("expected running_mean of shape (3,) for input (4, 3), got (2,)"));
  auto rv_bad = dtensor::zeros(shape{5});
  CHECK_THROWS_MATCHES(ops::batch_norm(x, dvar(), dvar(), rm, rv_bad), shape_error,
                       message_contains("expected running_var of shape (3,)"));
  CHECK_THROWS_WITH(ops::batch_norm(x, dvar(), dvar(), rm, none), Catch::Contains("both be defined"));
  CHECK_THROWS_MATCHES(ops::batch_norm(dvar(dtensor::zeros(shape{1, 1, 1, 3})), dvar(), dvar(), rm, rv, {true}),
                       shape_error,
                       Catch::Message("arcnet: batch_norm: expected more than 1 value per channel when training, "
                                      "got input of shape (1, 1, 1, 3)"));
  CHECK_THROWS_AS(ops::batch_norm(x, dvar(), dvar(), rm, rv, {true, 0.1, 0.0}), config_error);
  // Nothing was updated by the failed calls.
  CHECK(rm.to_vector() == std::vector<double>{0, 0, 0});
}

namespace bn_test {
/// batch_norm with o.relu (or batch_norm_add, with or without o.relu) against batch_norm, add and
/// relu run one by one: outputs, the running statistics and every gradient must be the same
/// numbers (the fused backward masks dy exactly as the ReLU's backward does).
template <class T>
void check_relu_fusion_is_exact(bool training, bool affine, shape const& s, std::uint64_t seed, bool add = false,
                                bool relu = true) {
  using tvar = variable<T, cpu>;
  using ttensor = tensor<T, cpu>;
  generator g(seed);
  index_t const c = s[s.rank() - 1];
  auto x0 = randn<T>(s, g, T(0.3), T(1.7));
  auto w0 = randn<T>(shape{c}, g, T(1), T(0.5));
  auto b0 = randn<T>(shape{c}, g, T(0.2), T(0.5));
  auto rm0 = randn<T>(shape{c}, g);
  auto rv0 = rand<T>(shape{c}, g, T(0.5), T(2));
  auto dy = randn<T>(s, g);
  auto s0 = randn<T>(s, g);
  struct run {
    tvar x, w, b, s;
    ttensor rm, rv, y;
  };
  auto go = [&](bool fused) {
    run r{tvar(x0.clone(), true),
          affine ? tvar(w0.clone(), true) : tvar(),
          affine ? tvar(b0.clone(), true) : tvar(),
          tvar(s0.clone(), true),
          rm0.clone(),
          rv0.clone(),
          ttensor()};
    ops::batch_norm_options o;
    o.training = training;
    o.relu = fused && relu;
    tvar y;
    if (fused && add) {
      y = ops::batch_norm_add(r.x, r.w, r.b, r.rm, r.rv, r.s, o);
      CHECK(std::string(y.grad_fn()->name) == (relu ? "batch_norm_add_relu" : "batch_norm_add"));
    } else {
      y = ops::batch_norm(r.x, r.w, r.b, r.rm, r.rv, o);
      if (!fused && add) y = ops::add(y, r.s);
      if (!fused && relu) y = ops::relu(y);
      CHECK(std::string(y.grad_fn()->name) == (fused ? "batch_norm_relu" : relu ? "relu" : "add"));
    }
    ops::sum(ops::mul(y, tvar(dy))).backward();
    r.y = y.value();
    return r;
  };
  run const a = go(false), f = go(true);
  index_t zeros = 0;
  for (index_t i = 0; i < a.y.numel(); ++i) zeros += a.y[i] == T(0);
  if (relu) CHECK(zeros > a.y.numel() / 5);  // the ReLU cuts a real share, so the masking is exercised
  if (add) CHECK(f.s.grad().to_vector() == a.s.grad().to_vector());
  CHECK(f.y.to_vector() == a.y.to_vector());
  CHECK(f.rm.to_vector() == a.rm.to_vector());
  CHECK(f.rv.to_vector() == a.rv.to_vector());
  CHECK(f.x.grad().to_vector() == a.x.grad().to_vector());
  if (affine) {
    CHECK(f.w.grad().to_vector() == a.w.grad().to_vector());
    CHECK(f.b.grad().to_vector() == a.b.grad().to_vector());
  }
}
}  // namespace bn_test

TEST_CASE("batch_norm: relu fused gives exactly the values and gradients of batch_norm then relu", "[ops][batch_norm]") {
  using namespace bn_test;
  for (bool training : {true, false})
    for (bool affine : {true, false}) {
      INFO("training " << training << ", affine " << affine);
      check_relu_fusion_is_exact<float>(training, affine, shape{4, 6, 5, 7}, 21);
      check_relu_fusion_is_exact<double>(training, affine, shape{4, 6, 5, 7}, 22);
      check_relu_fusion_is_exact<float>(training, affine, shape{700, 48}, 23);  // several row blocks, threads
    }
}

TEST_CASE("batch_norm_add: gives exactly the values and gradients of batch_norm, add (and relu)", "[ops][batch_norm]") {
  using namespace bn_test;
  for (bool training : {true, false})
    for (bool relu : {true, false}) {
      INFO("training " << training << ", relu " << relu);
      check_relu_fusion_is_exact<float>(training, true, shape{4, 6, 5, 7}, 31, true, relu);
      check_relu_fusion_is_exact<double>(training, false, shape{4, 6, 5, 7}, 32, true, relu);
      check_relu_fusion_is_exact<float>(training, true, shape{700, 48}, 33, true, relu);
    }
}

TEST_CASE("batch_norm_add: gradients match finite differences, and a bad residual is an error", "[ops][batch_norm]") {
  using namespace bn_test;
  generator g(34);
  auto x = random_variable(shape{3, 4, 3, 4}, g, 0.45, 0.55);
  auto w = random_variable(shape{4}, g);
  auto b = random_variable(shape{4}, g);
  auto r = random_variable(shape{3, 4, 3, 4}, g);
  auto rm = dtensor::zeros(shape{4}), rv = dtensor::full(shape{4}, 1.0);
  for (bool relu : {false, true}) {
    ops::batch_norm_options o;
    o.relu = relu;
    require_gradients_match([&] { return ops::batch_norm_add(x, w, b, rm, rv, r, o); }, {x, w, b, r});
  }
  auto const rm_before = rm.to_vector();
  CHECK_THROWS_MATCHES(ops::batch_norm_add(x, w, b, rm, rv, dvar(), {}), error,
                       message_contains("batch_norm_add: the residual is undefined"));
  dvar bad(dtensor::zeros(shape{3, 4, 4, 3}));
  CHECK_THROWS_MATCHES(ops::batch_norm_add(x, w, b, rm, rv, bad, {}), shape_error,
                       message_contains("got (3, 4, 3, 4) and (3, 4, 4, 3)"));
  CHECK(rm.to_vector() == rm_before);  // the failed calls updated nothing
}

TEST_CASE("batch_norm: relu fused has the gradients of finite differences", "[ops][batch_norm]") {
  using namespace bn_test;
  generator g(24);
  ops::batch_norm_options o;
  o.relu = true;
  auto x = random_variable(shape{3, 4, 3, 4}, g, 0.45, 0.55);
  auto w = random_variable(shape{4}, g);
  auto b = random_variable(shape{4}, g);
  auto rm = dtensor::zeros(shape{4}), rv = dtensor::full(shape{4}, 1.0);
  require_gradients_match([&] { return ops::batch_norm(x, w, b, rm, rv, o); }, {x, w, b});
  o.training = false;
  require_gradients_match([&] { return ops::batch_norm(x, w, b, rm, rv, o); }, {x, w, b});
}

TEST_CASE("batch_norm: the raw backward with relu_out checks its shape", "[ops][batch_norm]") {
  using namespace bn_test;
  generator g(25);
  auto x = randn<double>(shape{6, 3}, g);
  dtensor none, mean, invstd;
  ops::batch_norm_options o;
  o.relu = true;
  auto y = ops::batch_norm_forward(x, none, none, none, none, o, mean, invstd);
  for (index_t i = 0; i < y.numel(); ++i) REQUIRE(y[i] >= 0.0);
  dtensor dx(x.shape());
  auto bad = dtensor::zeros(shape{3, 6});
  CHECK_THROWS_MATCHES(ops::batch_norm_backward(x, none, mean, invstd, y, true, &dx, static_cast<dtensor*>(nullptr),
                                                 static_cast<dtensor*>(nullptr), &bad),
                       shape_error, message_contains("(6, 3)"));
}
