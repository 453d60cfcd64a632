#include "test_util.hpp"

#include "fixture.hpp"

#include <arcnet/optim/sgd.hpp>

using namespace arcnet;

namespace sgd_test {

using var = variable<double, cpu>;

/// The problem of tests/fixtures/make_sgd_fixtures.py: L = sum(0.5 a w^2 + b w) + sum(0.5 c v^2 + d v).
struct problem {
  explicit problem(testing::fixture const& f)
      : a_w(f["a_w"]), b_w(f["b_w"]), a_v(f["a_v"]), b_v(f["b_v"]),
        w(f["w_0"].clone(), true), v(f["v_0"].clone(), true) {}

  /// zero_grad, forward, backward through arcnet's autograd.
  template <class Optimizer>
  void compute_gradients(Optimizer& opt) {
    opt.zero_grad();
    auto half = [](var const& x) { return x * 0.5; };
    auto loss = ops::sum(half(a_w * w * w) + b_w * w) + ops::sum(half(a_v * v * v) + b_v * v);
    loss.backward();
  }

  sgd_test::var a_w, b_w, a_v, b_v, w, v;
};

inline void require_close(tensor<double, cpu> const& actual, tensor<double, cpu> const& expected,
                          std::string const& what) {
  INFO(what);
  REQUIRE(actual.shape() == expected.shape());
  CHECK(testing::max_relative_difference(actual, expected, 1e-12) < 1e-12);
}

/// Runs steps [first, last] of the fixture's trajectory and checks the values after each one.
template <class Optimizer>
void run_steps(problem& pb, Optimizer& opt, testing::fixture const& f, int first, int last,
               bool follow_lr = false) {
  for (int step = first; step <= last; ++step) {
    if (follow_lr) opt.set_lr(f["lr"][step - 1]);
    pb.compute_gradients(opt);
    opt.step();
    require_close(pb.w.value(), f["w_" + std::to_string(step)], "w after step " + std::to_string(step));
    require_close(pb.v.value(), f["v_" + std::to_string(step)], "v after step " + std::to_string(step));
  }
}

}  // namespace sgd_test

TEST_CASE("sgd: Nesterov momentum, weight decay and a changing lr match torch.optim.SGD", "[optim]") {
  testing::fixture f("sgd_nesterov.txt");
  sgd_test::problem pb(f);
  optim::sgd<double> opt({pb.w, pb.v},
                         optim::sgd_options().set_lr(0.1).set_momentum(0.9).set_nesterov(true).set_weight_decay(0.05));
  sgd_test::run_steps(pb, opt, f, 1, 5, true);
  CHECK(opt.lr() == Approx(0.02));
  auto s = opt.state();
  REQUIRE(s.size() == 2);
  sgd_test::require_close(s.at("0.momentum_buffer"), f["buf_w"], "momentum buffer of w");
  sgd_test::require_close(s.at("1.momentum_buffer"), f["buf_v"], "momentum buffer of v");
}

TEST_CASE("sgd: momentum with dampening matches torch.optim.SGD", "[optim]") {
  testing::fixture f("sgd_dampening.txt");
  sgd_test::problem pb(f);
  optim::sgd_options o;
  o.lr = 0.05;
  o.momentum = 0.9;
  o.dampening = 0.1;
  optim::sgd<double> opt({pb.w, pb.v}, o);
  sgd_test::run_steps(pb, opt, f, 1, 5);
  sgd_test::require_close(opt.state().at("0.momentum_buffer"), f["buf_w"], "momentum buffer of w");
}

TEST_CASE("sgd: parameter groups with and without weight decay match torch.optim.SGD", "[optim]") {
  testing::fixture f("sgd_groups.txt");
  sgd_test::problem pb(f);
  optim::sgd<double> opt({{"w", pb.w}},
                         optim::sgd_options().set_lr(0.1).set_momentum(0.9).set_nesterov(true).set_weight_decay(0.01));
  opt.add_param_group({{"v", pb.v}}, optim::sgd_options().set_lr(0.2).set_momentum(0.5));
  REQUIRE(opt.num_groups() == 2);
  CHECK(opt.lr(1) == Approx(0.2));
  CHECK(opt.param_group(1).names == std::vector<std::string>{"v"});
  sgd_test::run_steps(pb, opt, f, 1, 5);
  auto s = opt.state();
  sgd_test::require_close(s.at("w.momentum_buffer"), f["buf_w"], "momentum buffer of w");
  sgd_test::require_close(s.at("v.momentum_buffer"), f["buf_v"], "momentum buffer of v");
}

TEST_CASE("sgd: maximize and plain gradient descent match torch.optim.SGD", "[optim]") {
  SECTION("maximize, momentum, weight decay") {
    testing::fixture f("sgd_maximize.txt");
    sgd_test::problem pb(f);
    optim::sgd<double> opt({pb.w, pb.v},
                           optim::sgd_options().set_lr(0.03).set_momentum(0.5).set_weight_decay(0.01).set_maximize(true));
    sgd_test::run_steps(pb, opt, f, 1, 5);
  }
  SECTION("no momentum: no state") {
    testing::fixture f("sgd_plain.txt");
    sgd_test::problem pb(f);
    optim::sgd<double> opt({pb.w, pb.v}, optim::sgd_options().set_lr(0.1).set_weight_decay(0.1));
    sgd_test::run_steps(pb, opt, f, 1, 5);
    CHECK(opt.state().empty());
  }
}

TEST_CASE("sgd: a saved state resumes the trajectory in a new optimizer", "[optim]") {
  testing::fixture f("sgd_nesterov.txt");
  auto options = optim::sgd_options().set_lr(0.1).set_momentum(0.9).set_nesterov(true).set_weight_decay(0.05);
  sgd_test::problem pb(f);
  optim::sgd<double>::state_dict saved;
  {
    optim::sgd<double> first({pb.w, pb.v}, options);
    sgd_test::run_steps(pb, first, f, 1, 2, true);
    saved = first.state();
  }
  REQUIRE(saved.size() == 2);
  optim::sgd<double> second({pb.w, pb.v}, options);
  second.load_state(saved);
  sgd_test::run_steps(pb, second, f, 3, 5, true);

  SECTION("without the state the trajectory differs") {
    sgd_test::problem fresh(f);
    optim::sgd<double> a({fresh.w, fresh.v}, options);
    for (int step = 1; step <= 2; ++step) {
      a.set_lr(f["lr"][step - 1]);
      fresh.compute_gradients(a);
      a.step();
    }
    optim::sgd<double> b({fresh.w, fresh.v}, options);  // buffers lost
    b.set_lr(f["lr"][2]);
    fresh.compute_gradients(b);
    b.step();
    CHECK(testing::max_relative_difference(fresh.w.value(), f["w_3"]) > 1e-3);
  }
}

TEST_CASE("sgd: state is a copy, and load_state checks keys and shapes", "[optim]") {
  sgd_test::var w(tensor<double>::from_vector(shape{2}, {1.0, 2.0}), true);
  optim::sgd<double> opt({{"fc.weight", w}}, optim::sgd_options().set_lr(0.5).set_momentum(0.9));
  w.grad_for_accumulate().fill(1.0);
  opt.step();
  auto s = opt.state();
  REQUIRE(s.count("fc.weight.momentum_buffer") == 1);
  s.at("fc.weight.momentum_buffer").fill(100.0);
  CHECK(opt.state().at("fc.weight.momentum_buffer")[0] == 1.0);

  optim::sgd<double>::state_dict bad_key{{"fc.bias.momentum_buffer", tensor<double>(shape{2})}};
  CHECK_THROWS_WITH(opt.load_state(bad_key), Catch::Contains("fc.bias.momentum_buffer") &&
                                                 Catch::Contains("names no parameter"));
  optim::sgd<double>::state_dict bad_shape{{"fc.weight.momentum_buffer", tensor<double>(shape{3})}};
  CHECK_THROWS_AS(opt.load_state(bad_shape), shape_error);
  opt.load_state({});  // no buffers: the next step starts momentum afresh
  CHECK(opt.state().empty());
}

TEST_CASE("sgd: parameters without a gradient are skipped - zero_grad clears gradients", "[optim]") {
  sgd_test::var a(tensor<double>::from_vector(shape{2}, {1.0, 2.0}), true);
  sgd_test::var b(tensor<double>::from_vector(shape{1}, {5.0}), true);
  optim::sgd<double> opt({a, b}, optim::sgd_options().set_lr(0.1).set_momentum(0.9).set_weight_decay(0.1));
  ops::sum(a * a).backward();  // da = 2a; b gets nothing
  opt.step();
  // a -= 0.1 * (2a + 0.1a) = a * (1 - 0.21)
  CHECK(a.value()[0] == Approx(0.79).epsilon(1e-14));
  CHECK(a.value()[1] == Approx(1.58).epsilon(1e-14));
  CHECK(b.value()[0] == 5.0);  // weight decay alone does not move a parameter without a gradient
  CHECK(opt.state().size() == 1);
  opt.zero_grad();
  CHECK_FALSE(a.grad().defined());
  CHECK_FALSE(b.grad().defined());
  opt.step();  // nothing has a gradient: nothing moves
  CHECK(a.value()[0] == Approx(0.79).epsilon(1e-14));
}

TEST_CASE("sgd: the optimizer updates the values the model holds (handles share them)", "[optim]") {
  variable<float> w(tensor<float>::from_vector(shape{1, 2}, {1.0f, -1.0f}), true);
  auto alias = w;  // what a layer would hold
  optim::sgd<float> opt({w}, optim::sgd_options().set_lr(0.5f));
  ops::sum(alias * 2.0f).backward();
  opt.step();
  CHECK(alias.value()[0] == 0.0f);
  CHECK(alias.value()[1] == -2.0f);
}

TEST_CASE("sgd: invalid hyper-parameters are rejected like torch.optim.SGD", "[optim]") {
  sgd_test::var w(tensor<double>(shape{1}), true);
  CHECK_THROWS_AS(optim::sgd<double>({w}, optim::sgd_options().set_lr(-1)), config_error);
  CHECK_THROWS_AS(optim::sgd<double>({w}, optim::sgd_options().set_momentum(-0.1)), config_error);
  CHECK_THROWS_AS(optim::sgd<double>({w}, optim::sgd_options().set_weight_decay(-1)), config_error);
  CHECK_THROWS_WITH(optim::sgd<double>({w}, optim::sgd_options().set_nesterov(true)),
                    Catch::Contains("Nesterov momentum requires momentum > 0"));
  CHECK_THROWS_AS(optim::sgd<double>({w}, optim::sgd_options().set_momentum(0.9).set_dampening(0.1).set_nesterov(true)),
                  config_error);
  auto y = w * 2.0;
  CHECK_THROWS_WITH(optim::sgd<double>({y}), Catch::Contains("not a leaf"));
  CHECK_THROWS_WITH(optim::sgd<double>({{"w", w}, {"w", w}}), Catch::Contains("appears twice"));
  optim::sgd<double> opt({w});
  CHECK_THROWS_AS(opt.set_lr(-0.5), config_error);
  CHECK_THROWS_WITH(opt.lr(3), Catch::Contains("group 3 is out of range"));
}
