#include "test_util.hpp"

#include "fixture.hpp"

#include <cstring>
#include <set>

#include <arcnet/optim/adamw.hpp>

using namespace arcnet;

namespace adamw_test {

using var = variable<double, cpu>;

/// The problem of tests/fixtures/make_adamw_fixtures.py: L = sum(0.5 a w^2 + b w) + sum(0.5 c v^2 + d v).
struct problem {
  explicit problem(testing::fixture const& f)
      : a_w(f["a_w"]), b_w(f["b_w"]), a_v(f["a_v"]), b_v(f["b_v"]),
        w(f["w_0"].clone(), true), v(f["v_0"].clone(), true) {}

  /// zero_grad, forward, backward through arcnet's autograd; without v's term when skip_v.
  template <class Optimizer>
  void compute_gradients(Optimizer& opt, bool skip_v = false) {
    opt.zero_grad();
    auto half = [](var const& x) { return x * 0.5; };
    auto loss = ops::sum(half(a_w * w * w) + b_w * w);
    if (!skip_v) loss = loss + ops::sum(half(a_v * v * v) + b_v * v);
    loss.backward();
  }

  adamw_test::var a_w, b_w, a_v, b_v, w, v;
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
               bool follow_lr = false, std::set<int> const& skip_v = {}) {
  for (int step = first; step <= last; ++step) {
    if (follow_lr) opt.set_lr(f["lr"][step - 1]);
    pb.compute_gradients(opt, skip_v.count(step) != 0);
    opt.step();
    require_close(pb.w.value(), f["w_" + std::to_string(step)], "w after step " + std::to_string(step));
    require_close(pb.v.value(), f["v_" + std::to_string(step)], "v after step " + std::to_string(step));
  }
}

/// The state of parameter `name` ("w", "v") against the fixture's exp_avg_<name>, ... step_<name>.
inline void require_state(optim::adamw<double>::state_dict const& s, std::string const& key,
                          std::string const& name, testing::fixture const& f) {
  for (std::string entry : {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"}) {
    INFO(key << "." << entry);
    REQUIRE(s.count(key + "." + entry) == (f.has(entry + "_" + name) ? 1u : 0u));
    if (f.has(entry + "_" + name)) require_close(s.at(key + "." + entry), f[entry + "_" + name], key + "." + entry);
  }
  REQUIRE(s.count(key + ".step") == 1);
  CHECK(s.at(key + ".step").shape() == shape{1});
  CHECK(s.at(key + ".step")[0] == f["step_" + name][0]);
}

/// Bitwise equality of two tensors.
inline bool same_bits(tensor<double, cpu> const& a, tensor<double, cpu> const& b) {
  return a.shape() == b.shape() &&
         std::memcmp(a.data(), b.data(), sizeof(double) * static_cast<std::size_t>(a.numel())) == 0;
}

}  // namespace adamw_test

TEST_CASE("adamw: weight decay and a changing lr match torch.optim.AdamW", "[optim]") {
  testing::fixture f("adamw_decay.txt");
  adamw_test::problem pb(f);
  optim::adamw<double> opt({pb.w, pb.v},
                           optim::adamw_options().set_lr(0.05).set_betas(0.9, 0.999).set_weight_decay(0.1));
  adamw_test::run_steps(pb, opt, f, 1, 5, true);
  CHECK(opt.lr() == Approx(0.01));
  auto s = opt.state();
  CHECK(s.size() == 6);  // exp_avg, exp_avg_sq, step for "0" and "1"; no max_exp_avg_sq
  adamw_test::require_state(s, "0", "w", f);
  adamw_test::require_state(s, "1", "v", f);
}

TEST_CASE("adamw: amsgrad matches torch.optim.AdamW", "[optim]") {
  auto options = optim::adamw_options().set_lr(0.1).set_betas(0.8, 0.5).set_weight_decay(0.01);
  testing::fixture with("adamw_amsgrad.txt"), without("adamw_amsgrad_off.txt");
  adamw_test::problem pb(with);
  optim::adamw<double> opt({pb.w, pb.v}, optim::adamw_options(options).set_amsgrad(true));
  adamw_test::run_steps(pb, opt, with, 1, 6);
  adamw_test::require_state(opt.state(), "0", "w", with);
  adamw_test::require_state(opt.state(), "1", "v", with);
  // The running maximum mattered on this problem: plain Adam ends elsewhere (and matches torch too).
  CHECK(testing::max_relative_difference(with["w_6"], without["w_6"]) > 1e-3);
  adamw_test::problem plain(without);
  optim::adamw<double> off({plain.w, plain.v}, options);
  adamw_test::run_steps(plain, off, without, 1, 6);
}

TEST_CASE("adamw: parameter groups, and a parameter without a gradient at one step, match torch.optim.AdamW",
          "[optim]") {
  testing::fixture f("adamw_groups.txt");
  adamw_test::problem pb(f);
  optim::adamw<double> opt({{"w", pb.w}},
                           optim::adamw_options().set_lr(0.02).set_weight_decay(0.05).set_amsgrad(true));
  opt.add_param_group({{"v", pb.v}},
                      optim::adamw_options().set_lr(0.03).set_betas(0.8, 0.99).set_eps(1e-6).set_weight_decay(0));
  REQUIRE(opt.num_groups() == 2);
  CHECK(opt.lr(1) == 0.03);
  CHECK(opt.param_group(1).names == std::vector<std::string>{"v"});
  adamw_test::run_steps(pb, opt, f, 1, 5, false, {3});
  auto s = opt.state();
  adamw_test::require_state(s, "w", "w", f);
  adamw_test::require_state(s, "v", "v", f);
  CHECK(s.at("w.step")[0] == 5.0);
  CHECK(s.at("v.step")[0] == 4.0);  // skipped at step 3, like PyTorch
}

TEST_CASE("adamw: maximize matches torch.optim.AdamW", "[optim]") {
  testing::fixture f("adamw_maximize.txt");
  adamw_test::problem pb(f);
  optim::adamw<double> opt({pb.w, pb.v}, optim::adamw_options().set_lr(0.01).set_weight_decay(0.02).set_maximize(true));
  adamw_test::run_steps(pb, opt, f, 1, 5);
}

TEST_CASE("adamw: a saved state resumes bit-exactly in a new optimizer", "[optim]") {
  testing::fixture f("adamw_groups.txt");
  auto make = [](adamw_test::problem& pb) {
    optim::adamw<double> opt({{"w", pb.w}},
                             optim::adamw_options().set_lr(0.02).set_weight_decay(0.05).set_amsgrad(true));
    opt.add_param_group({{"v", pb.v}},
                        optim::adamw_options().set_lr(0.03).set_betas(0.8, 0.99).set_eps(1e-6).set_weight_decay(0));
    return opt;
  };
  std::set<int> const skip_v{3};
  adamw_test::problem run(f);
  auto a = make(run);
  for (int step = 1; step <= 3; ++step) {
    run.compute_gradients(a, skip_v.count(step) != 0);
    a.step();
  }
  auto saved = a.state();
  REQUIRE(saved.size() == 7);  // w: 4 entries (amsgrad), v: 3
  // A second run starts from the saved parameters and state, as a resumed training would.
  adamw_test::problem resumed(f);
  resumed.w.value_mut().copy_from(run.w.value());
  resumed.v.value_mut().copy_from(run.v.value());
  auto b = make(resumed);
  b.load_state(saved);
  adamw_test::problem fresh(f);  // the same start without the state
  fresh.w.value_mut().copy_from(run.w.value());
  fresh.v.value_mut().copy_from(run.v.value());
  auto c = make(fresh);
  for (int step = 4; step <= 5; ++step) {
    run.compute_gradients(a);
    a.step();
    resumed.compute_gradients(b);
    b.step();
    fresh.compute_gradients(c);
    c.step();
  }
  CHECK(adamw_test::same_bits(resumed.w.value(), run.w.value()));
  CHECK(adamw_test::same_bits(resumed.v.value(), run.v.value()));
  for (auto const& [key, t] : a.state()) {
    INFO(key);
    CHECK(adamw_test::same_bits(b.state().at(key), t));
  }
  adamw_test::require_close(run.w.value(), f["w_5"], "w after step 5");
  CHECK(testing::max_relative_difference(fresh.w.value(), run.w.value()) > 1e-3);  // the state mattered
}

TEST_CASE("adamw: state is a copy, and load_state checks keys, shapes, steps and completeness", "[optim]") {
  adamw_test::var w(tensor<double>::from_vector(shape{2}, {1.0, 2.0}), true);
  adamw_test::var b(tensor<double>::from_vector(shape{1}, {0.5}), true);
  optim::adamw<double> opt({{"fc.weight", w}, {"fc.bias", b}}, optim::adamw_options().set_amsgrad(true));
  CHECK(opt.state().empty());  // nothing before the first step
  w.grad_for_accumulate().fill(1.0);
  opt.step();
  auto s = opt.state();
  REQUIRE(s.size() == 4);  // b had no gradient: no state
  CHECK(s.at("fc.weight.step")[0] == 1.0);
  CHECK(s.at("fc.weight.exp_avg")[0] == Approx(0.1).epsilon(1e-15));    // (1 - 0.9) * 1
  CHECK(s.at("fc.weight.exp_avg_sq")[0] == Approx(1e-3).epsilon(1e-13)); // (1 - 0.999) * 1
  s.at("fc.weight.exp_avg").fill(100.0);
  CHECK(opt.state().at("fc.weight.exp_avg")[0] == Approx(0.1).epsilon(1e-15));

  auto good = opt.state();
  auto expect_error = [&](optim::adamw<double>::state_dict const& bad, std::string const& part) {
    INFO(part);
    CHECK_THROWS_MATCHES(opt.load_state(bad), arcnet::error, testing::message_contains(part));
    CHECK(opt.state().at("fc.weight.exp_avg")[0] == good.at("fc.weight.exp_avg")[0]);  // unchanged
    CHECK(opt.state().size() == 4);
  };
  auto with = [&](std::string const& key, tensor<double> t) {
    auto d = good;
    d[key] = std::move(t);
    return d;
  };
  auto without = [&](std::string const& key) {
    auto d = good;
    d.erase(key);
    return d;
  };
  expect_error(with("fc.gamma.exp_avg", tensor<double>(shape{2})), "'fc.gamma.exp_avg' names no parameter");
  expect_error(with("fc.weight.momentum_buffer", tensor<double>(shape{2})), "names no parameter");
  CHECK_THROWS_AS(opt.load_state(with("fc.weight.exp_avg_sq", tensor<double>(shape{3}))), shape_error);
  expect_error(with("fc.weight.exp_avg_sq", tensor<double>(shape{3})), "parameter 'fc.weight' has shape (2,)");
  expect_error(with("fc.weight.step", tensor<double>::full(shape{1}, 2.5)), "non-negative whole number");
  expect_error(with("fc.weight.step", tensor<double>::full(shape{1}, -1.0)), "non-negative whole number");
  expect_error(with("fc.weight.step", tensor<double>(shape{2})), "expected one element");
  expect_error(without("fc.weight.step"), "lacks 'fc.weight.step'");
  expect_error(without("fc.weight.exp_avg"), "lacks 'fc.weight.exp_avg'");
  expect_error(without("fc.weight.max_exp_avg_sq"), "lacks 'fc.weight.max_exp_avg_sq'");
  expect_error(with("fc.bias.step", tensor<double>::full(shape{1}, 3.0)), "state of parameter 'fc.bias'");

  // A state for b too, then none at all: both load.
  auto more = good;
  more["fc.bias.exp_avg"] = tensor<double>(shape{1});
  more["fc.bias.exp_avg_sq"] = tensor<double>(shape{1});
  more["fc.bias.max_exp_avg_sq"] = tensor<double>(shape{1});
  more["fc.bias.step"] = tensor<double>::full(shape{1}, 7.0);
  opt.load_state(more);
  CHECK(opt.state().at("fc.bias.step")[0] == 7.0);
  opt.load_state({});
  CHECK(opt.state().empty());
}

TEST_CASE("adamw: parameters without a gradient are skipped - zero_grad clears gradients", "[optim]") {
  adamw_test::var a(tensor<double>::from_vector(shape{2}, {1.0, -2.0}), true);
  adamw_test::var b(tensor<double>::from_vector(shape{1}, {5.0}), true);
  optim::adamw<double> opt({a, b}, optim::adamw_options().set_lr(0.1).set_weight_decay(0.5).set_eps(0));
  ops::sum(a * a).backward();  // da = 2a; b gets nothing
  opt.step();
  // The first Adam step moves each element by lr * sign(g) (m / sqrt(v) = g / |g| after bias
  // correction, eps = 0), after the decay p *= 1 - 0.1 * 0.5.
  CHECK(a.value()[0] == Approx(0.95 - 0.1).epsilon(1e-14));
  CHECK(a.value()[1] == Approx(-1.9 + 0.1).epsilon(1e-14));
  CHECK(b.value()[0] == 5.0);  // weight decay does not touch a parameter without a gradient
  CHECK(opt.state().size() == 3);
  opt.zero_grad();
  CHECK_FALSE(a.grad().defined());
  CHECK_FALSE(b.grad().defined());
  opt.step();  // nothing has a gradient: nothing moves
  CHECK(a.value()[0] == Approx(0.85).epsilon(1e-14));
}

TEST_CASE("adamw: float parameters follow the double trajectory", "[optim]") {
  testing::fixture f("adamw_decay.txt");
  variable<float> w(f["w_0"].cast<float>(), true), v(f["v_0"].cast<float>(), true);
  auto a_w = f["a_w"].cast<float>(), b_w = f["b_w"].cast<float>(), a_v = f["a_v"].cast<float>(),
       b_v = f["b_v"].cast<float>();
  optim::adamw<float> opt({w, v}, optim::adamw_options().set_weight_decay(0.1));
  for (int step = 1; step <= 5; ++step) {
    opt.set_lr(f["lr"][step - 1]);
    opt.zero_grad();
    // dL/dp = a p + b, written directly
    auto gw = ops::binary_forward(ops::binary_kind::mul, a_w, w.value());
    ops::axpy(1.0f, b_w, gw);
    w.grad_for_accumulate().copy_from(gw);
    auto gv = ops::binary_forward(ops::binary_kind::mul, a_v, v.value());
    ops::axpy(1.0f, b_v, gv);
    v.grad_for_accumulate().copy_from(gv);
    opt.step();
  }
  CHECK(testing::max_relative_difference(w.value(), f["w_5"], 1e-3) < 1e-5);
  CHECK(testing::max_relative_difference(v.value(), f["v_5"], 1e-3) < 1e-5);
}

TEST_CASE("adamw: invalid hyper-parameters are rejected like torch.optim.AdamW", "[optim]") {
  adamw_test::var w(tensor<double>(shape{1}), true);
  using o = optim::adamw_options;
  auto rejects = [&](o const& bad, std::string const& part) {
    INFO(part);
    CHECK_THROWS_AS(optim::adamw<double>({w}, bad), config_error);
    CHECK_THROWS_MATCHES(optim::adamw<double>({w}, bad), arcnet::error, testing::message_contains(part));
  };
  rejects(o().set_lr(-1e-3), "adamw: expected lr >= 0, got -0.001");
  rejects(o().set_eps(-1), "expected eps >= 0");
  rejects(o().set_beta1(1.0), "expected beta1 in [0, 1), got 1");
  rejects(o().set_beta2(-0.1), "expected beta2 in [0, 1), got -0.1");
  rejects(o().set_weight_decay(-0.01), "expected weight_decay >= 0");
  auto y = w * 2.0;
  CHECK_THROWS_WITH(optim::adamw<double>({y}), Catch::Contains("not a leaf"));
  CHECK_THROWS_WITH(optim::adamw<double>({{"w", w}, {"w", w}}), Catch::Contains("appears twice"));
  optim::adamw<double> opt({w});
  CHECK(opt.lr() == 1e-3);  // PyTorch's defaults
  CHECK(opt.param_group(0).options.weight_decay == 1e-2);
  CHECK_THROWS_AS(opt.set_lr(-0.5), config_error);
  CHECK_THROWS_AS(opt.set_lr(0, -0.5), config_error);
  CHECK_THROWS_WITH(opt.lr(3), Catch::Contains("group 3 is out of range"));
  CHECK_THROWS_WITH(opt.set_lr(2, 0.1), Catch::Contains("group 2 is out of range"));
  opt.param_group(0).options.beta2 = 2;  // a bad edit after construction is caught at the step
  w.grad_for_accumulate().fill(1.0);
  CHECK_THROWS_AS(opt.step(), config_error);
}
