#include "test_util.hpp"

#include "fixture.hpp"

#include <cstring>
#include <functional>
#include <memory>

#include <arcnet/optim/adamw.hpp>
#include <arcnet/optim/optimizer.hpp>
#include <arcnet/optim/sgd.hpp>

using namespace arcnet;

namespace optimizer_test {

using var = variable<double, cpu>;
using base = optim::optimizer<double, cpu>;

/// The problem of make_sgd_fixtures.py and make_adamw_fixtures.py (the same seed and coefficients).
struct problem {
  explicit problem(testing::fixture const& f)
      : a_w(f["a_w"]), b_w(f["b_w"]), a_v(f["a_v"]), b_v(f["b_v"]),
        w(f["w_0"].clone(), true), v(f["v_0"].clone(), true) {}

  /// One training iteration through the interface only.
  void iterate(base& opt) {
    opt.zero_grad();
    auto loss = ops::sum(a_w * w * w * 0.5 + b_w * w) + ops::sum(a_v * v * v * 0.5 + b_v * v);
    loss.backward();
    opt.step();
  }

  var a_w, b_w, a_v, b_v, w, v;
};

/// What a trainer does with a configured optimizer name.
inline std::unique_ptr<base> make(std::string const& kind, std::vector<std::pair<std::string, var>> params) {
  if (kind == "sgd")
    return std::make_unique<optim::sgd<double>>(
        std::move(params),
        optim::sgd_options().set_lr(0.1).set_momentum(0.9).set_nesterov(true).set_weight_decay(0.05));
  if (kind == "adamw")
    return std::make_unique<optim::adamw<double>>(
        std::move(params), optim::adamw_options().set_lr(0.05).set_weight_decay(0.1));
  if (kind == "amsgrad")
    return std::make_unique<optim::adamw<double>>(
        std::move(params), optim::adamw_options().set_lr(0.05).set_weight_decay(0.1).set_amsgrad(true));
  detail::raise<config_error>("unknown optimizer '", kind, "'");
}

inline bool same_bits(tensor<double, cpu> const& a, tensor<double, cpu> const& b) {
  return a.shape() == b.shape() &&
         std::memcmp(a.data(), b.data(), sizeof(double) * static_cast<std::size_t>(a.numel())) == 0;
}

}  // namespace optimizer_test


TEST_CASE("optimizer: sgd and adamw chosen at run time follow torch through optimizer&", "[optim]") {
  using namespace optimizer_test;
  // The fixtures' runs: named parameters "0" and "1", a learning rate set before each step.
  using run = std::pair<char const*, char const*>;  // optimizer, fixture
  for (auto [kind, file] : {run{"sgd", "sgd_nesterov.txt"}, run{"adamw", "adamw_decay.txt"}}) {
    INFO(kind);
    testing::fixture f(file);
    problem pb(f);
    auto opt = make(kind, {{"0", pb.w}, {"1", pb.v}});
    CHECK(std::string(opt->name()) == kind);
    CHECK(opt->num_groups() == 1);
    for (int step = 1; step <= 5; ++step) {
      opt->set_lr(f["lr"][step - 1]);
      CHECK(opt->lr(0) == f["lr"][step - 1]);
      pb.iterate(*opt);
    }
    CHECK(testing::max_relative_difference(pb.w.value(), f["w_5"], 1e-12) < 1e-12);
    CHECK(testing::max_relative_difference(pb.v.value(), f["v_5"], 1e-12) < 1e-12);
    CHECK_FALSE(opt->state().empty());
  }
}

TEST_CASE("optimizer: per-group learning rates through the interface", "[optim]") {
  using namespace optimizer_test;
  var w(tensor<double>(shape{2}), true), v(tensor<double>(shape{3}), true);
  optim::sgd<double> s({{"w", w}}, optim::sgd_options().set_lr(0.1));
  s.add_param_group({{"v", v}}, optim::sgd_options().set_lr(0.2));
  optim::adamw<double> a({{"w", w}}, optim::adamw_options().set_lr(0.1));
  a.add_param_group({{"v", v}}, optim::adamw_options().set_lr(0.2));
  for (base* opt : {static_cast<base*>(&s), static_cast<base*>(&a)}) {
    INFO(opt->name());
    REQUIRE(opt->num_groups() == 2);
    opt->set_lr(1, 0.5);  // one group: the other keeps its rate
    CHECK(opt->lr(0) == 0.1);
    CHECK(opt->lr(1) == 0.5);
    opt->set_lr(0.3);  // every group
    CHECK(opt->lr(0) == 0.3);
    CHECK(opt->lr(1) == 0.3);
    CHECK_THROWS_AS(opt->set_lr(1, -1.0), config_error);
    CHECK_THROWS_AS(opt->set_lr(-1.0), config_error);
    CHECK(opt->lr(1) == 0.3);
    CHECK_THROWS_WITH(opt->set_lr(2, 0.1), Catch::Contains("group 2 is out of range (2 groups)"));
    CHECK_THROWS_WITH(opt->lr(2), Catch::Contains("group 2 is out of range"));
  }
  s.set_lr(std::size_t{0}, 0.7);  // sgd's own overloads stay available
  CHECK(s.lr(0) == 0.7);
  CHECK(s.param_group(0).options.lr == 0.7);
}

TEST_CASE("optimizer: a state saved through the interface resumes bit-exactly, for each optimizer", "[optim]") {
  using namespace optimizer_test;
  testing::fixture f("sgd_nesterov.txt");
  for (std::string kind : {"sgd", "adamw", "amsgrad"}) {
    INFO(kind);
    problem run(f);
    auto first = make(kind, {{"w", run.w}, {"v", run.v}});
    for (int step = 1; step <= 3; ++step) run.iterate(*first);
    base::state_dict saved = first->state();
    CHECK(saved.size() == (kind == "sgd" ? 2u : kind == "adamw" ? 6u : 8u));

    problem resumed(f);  // the parameters as a checkpoint restores them
    resumed.w.value_mut().copy_from(run.w.value());
    resumed.v.value_mut().copy_from(run.v.value());
    auto second = make(kind, {{"w", resumed.w}, {"v", resumed.v}});
    second->load_state(saved);
    for (int step = 4; step <= 5; ++step) {
      run.iterate(*first);
      resumed.iterate(*second);
    }
    CHECK(same_bits(resumed.w.value(), run.w.value()));
    CHECK(same_bits(resumed.v.value(), run.v.value()));
    auto a = first->state(), b = second->state();
    REQUIRE(a.size() == b.size());
    for (auto const& [key, t] : a) {
      INFO(key);
      REQUIRE(b.count(key) == 1);
      CHECK(same_bits(b.at(key), t));
    }
  }
}

TEST_CASE("optimizer: one optimizer's state does not load into another", "[optim]") {
  using namespace optimizer_test;
  testing::fixture f("sgd_nesterov.txt");
  problem pb(f);
  auto s = make("sgd", {{"w", pb.w}, {"v", pb.v}});
  auto a = make("adamw", {{"w", pb.w}, {"v", pb.v}});
  pb.iterate(*s);
  pb.iterate(*a);
  CHECK_THROWS_WITH(a->load_state(s->state()),
                    Catch::Contains("adamw::load_state: key 'v.momentum_buffer' names no parameter"));
  CHECK_THROWS_WITH(s->load_state(a->state()), Catch::Contains("sgd::load_state: key 'v.exp_avg' names no parameter"));
  CHECK_THROWS_AS(make("lamb", {}), config_error);
}

TEST_CASE("optimizer: a rejected parameter group leaves no trace", "[optim]") {
  variable<double> a(tensor<double>::zeros(shape{2}), true);
  variable<double> b(tensor<double>::zeros(shape{2}), true);
  auto not_leaf = a * 2.0;
  optim::sgd<double> opt(std::vector<std::pair<std::string, variable<double>>>{{"a", a}});
  CHECK_THROWS_AS(opt.add_param_group({{"b", b}, {"c", not_leaf}}, optim::sgd_options{}), error);
  CHECK(opt.num_groups() == 1);
  opt.add_param_group({{"b", b}}, optim::sgd_options{});  // "b" was not recorded by the failed call
  CHECK(opt.num_groups() == 2);
  CHECK_THROWS_AS(opt.add_param_group({{"d", a}, {"d", b}}, optim::sgd_options{}), error);
}
