#include "test_util.hpp"

#include "fixture.hpp"

#include <arcnet/optim/schedule.hpp>

using namespace arcnet;

namespace schedule_test {

using optim::lr_schedule;
using optim::lr_schedule_options;
using optim::schedule_kind;
using optim::warmup_convention;

/// lr_at(i) against reference[i] for every i of the reference (relative 1e-12).
inline void require_matches(lr_schedule const& s, tensor<double, cpu> const& reference, std::string const& what) {
  REQUIRE(reference.numel() > 0);
  for (index_t i = 0; i < reference.numel(); ++i) {
    INFO(what << ", iteration " << i << ": " << s.lr_at(i) << " vs " << reference[i]);
    CHECK(std::abs(s.lr_at(i) - reference[i]) <= 1e-12 * std::abs(reference[i]));
  }
}

}  // namespace schedule_test


TEST_CASE("lr_schedule: mmengine warm-up then cosine matches mmengine and torch per iteration", "[optim]") {
  using namespace schedule_test;
  // mmpretrain: LinearLR(start_factor=0.01, end=W) + CosineAnnealingLR(T_max=N-W, begin=W, end=N).
  testing::fixture f("schedule_mmengine_cosine.txt");
  lr_schedule s(lr_schedule_options().set_base_lr(0.02).set_warmup(10, 0.01).set_total_iters(60));
  REQUIRE(f["lr"].numel() == 60);
  require_matches(s, f["lr"], "torch (LinearLR total_iters=W-1, SequentialLR)");
  REQUIRE(f["lr_mmengine"].numel() == 65);
  require_matches(s, f["lr_mmengine"], "mmengine, past the end too");
  // The boundaries, by hand: start_factor * base, base at W - 1 and at W, the last cosine value held.
  CHECK(s.lr_at(0) == Approx(0.0002).epsilon(1e-15));
  CHECK(s.lr_at(1) == Approx(0.02 * (0.01 + 0.99 / 9)).epsilon(1e-15));
  CHECK(s.lr_at(9) == Approx(0.02).epsilon(1e-15));
  CHECK(s.lr_at(10) == 0.02);
  CHECK(s.lr_at(35) == Approx(0.01).epsilon(1e-14));  // halfway through the cosine
  CHECK(s.lr_at(59) == Approx(0.01 * (1 + std::cos(3.14159265358979323846 * 49 / 50))).epsilon(1e-13));
  CHECK(s.lr_at(1000) == s.lr_at(59));
}

TEST_CASE("lr_schedule: mmengine's one-iteration warm-up keeps start_factor * base_lr", "[optim]") {
  using namespace schedule_test;
  testing::fixture f("schedule_mmengine_w1.txt");
  lr_schedule s(lr_schedule_options().set_base_lr(0.1).set_warmup(1, 0.1).set_total_iters(12).set_eta_min(0.001));
  require_matches(s, f["lr"], "mmengine");
  CHECK(s.lr_at(1) == Approx(0.01).epsilon(1e-15));
}

TEST_CASE("lr_schedule: torch warm-up then cosine with a floor matches torch's SequentialLR", "[optim]") {
  using namespace schedule_test;
  // LinearLR(start_factor=0.001, total_iters=W) then CosineAnnealingLR(T_max=N-W, eta_min=1e-4).
  testing::fixture f("schedule_torch_cosine.txt");
  lr_schedule s(lr_schedule_options()
                    .set_base_lr(0.1)
                    .set_warmup(7, 0.001)
                    .set_total_iters(40)
                    .set_eta_min(1e-4)
                    .set_convention(warmup_convention::torch));
  REQUIRE(f["lr"].numel() == 48);  // 8 past the end, where torch's cosine rises again
  require_matches(s, f["lr"], "torch");
  CHECK(s.lr_at(6) == Approx(0.1 * (0.001 + 0.999 * 6 / 7)).epsilon(1e-15));
  CHECK(s.lr_at(7) == 0.1);
  CHECK(s.lr_at(40) == Approx(1e-4).epsilon(1e-14));  // T_max: the floor
}

TEST_CASE("lr_schedule: cosine without warm-up matches mmengine and torch", "[optim]") {
  using namespace schedule_test;
  testing::fixture f("schedule_no_warmup_cosine.txt");
  for (auto convention : {warmup_convention::mmengine, warmup_convention::torch}) {
    lr_schedule s(
        lr_schedule_options().set_base_lr(0.05).set_total_iters(25).set_eta_min(0.002).set_convention(convention));
    require_matches(s, f["lr"], "torch");
    require_matches(s, f["lr_mmengine"], "mmengine");
    CHECK(s.lr_at(0) == 0.05);
  }
}

TEST_CASE("lr_schedule: warm-up then steps match MultiStepLR chained with LinearLR", "[optim]") {
  using namespace schedule_test;
  auto o = lr_schedule_options()
               .set_base_lr(0.1)
               .set_warmup(5, 0.25)
               .set_total_iters(30)
               .set_kind(schedule_kind::step)
               .set_milestones({12, 20}, 0.1);
  testing::fixture mm("schedule_mmengine_step.txt"), th("schedule_torch_step.txt");
  lr_schedule s(o);
  require_matches(s, mm["lr"], "torch (total_iters=W-1, ChainedScheduler)");
  require_matches(s, mm["lr_mmengine"], "mmengine");
  lr_schedule t(lr_schedule_options(o).set_convention(warmup_convention::torch));
  require_matches(t, th["lr"], "torch (ChainedScheduler)");
  CHECK(s.lr_at(11) == Approx(0.1).epsilon(1e-15));
  CHECK(s.lr_at(12) == Approx(0.01).epsilon(1e-15));
  CHECK(s.lr_at(29) == Approx(0.001).epsilon(1e-14));
}

TEST_CASE("lr_schedule: warm-up then constant matches torch's LinearLR", "[optim]") {
  using namespace schedule_test;
  testing::fixture f("schedule_torch_constant.txt");
  lr_schedule s(lr_schedule_options()
                    .set_base_lr(0.3)
                    .set_warmup(4, 0.5)
                    .set_total_iters(10)
                    .set_kind(schedule_kind::constant)
                    .set_convention(warmup_convention::torch));
  require_matches(s, f["lr"], "torch");
  CHECK(s.lr_at(500) == 0.3);
}

TEST_CASE("lr_schedule: a group with another initial rate follows the same shape, and the schedule is pure",
          "[optim]") {
  using namespace schedule_test;
  auto o = lr_schedule_options().set_base_lr(0.2).set_warmup(5, 0.1).set_total_iters(25).set_eta_min(0.01);
  lr_schedule s(o);
  CHECK(s.lr_at(2, 0.1) == Approx(0.1 * (0.1 + 0.9 * 2 / 4)).epsilon(1e-15));  // warm-up: proportional
  CHECK(s.lr_at(15, 0.1) == Approx(0.01 + 0.09 * 0.5).epsilon(1e-14));       // cosine: shared eta_min
  // A fresh schedule (a resumed run) gives bit-identical rates, in any order.
  lr_schedule resumed(o);
  for (std::int64_t i = 24; i >= 0; --i) CHECK(resumed.lr_at(i) == s.lr_at(i));
  CHECK_THROWS_WITH(s.lr_at(-1), Catch::Contains("expected an iteration >= 0, got -1"));
  CHECK_THROWS_AS(s.lr_at(0, -0.1), config_error);
}

TEST_CASE("lr_schedule: invalid options are rejected with the option named", "[optim]") {
  using namespace schedule_test;
  auto ok = lr_schedule_options().set_base_lr(0.1).set_warmup(5, 0.01).set_total_iters(50);
  CHECK_NOTHROW(lr_schedule(ok));
  auto rejects = [](lr_schedule_options const& bad, std::string const& part) {
    INFO(part);
    CHECK_THROWS_AS(lr_schedule(bad), config_error);
    CHECK_THROWS_MATCHES(lr_schedule(bad), arcnet::error, testing::message_contains(part));
  };
  rejects(lr_schedule_options(ok).set_base_lr(-0.1), "expected base_lr >= 0, got -0.1");
  rejects(lr_schedule_options(ok).set_total_iters(0), "expected total_iters > 0, got 0");
  rejects(lr_schedule_options(ok).set_warmup(-1, 0.01), "expected warmup_iters >= 0, got -1");
  rejects(lr_schedule_options(ok).set_warmup(60, 0.01), "warmup_iters (60) exceeds total_iters (50)");
  rejects(lr_schedule_options(ok).set_warmup(50, 0.01), "cosine needs iterations after the warm-up");
  rejects(lr_schedule_options(ok).set_warmup(5, 0), "expected warmup_start_factor in (0, 1], got 0");
  rejects(lr_schedule_options(ok).set_warmup(5, 1.5), "expected warmup_start_factor in (0, 1], got 1.5");
  rejects(lr_schedule_options(ok).set_eta_min(-1e-5), "expected eta_min in [0, base_lr = 0.1]");
  rejects(lr_schedule_options(ok).set_eta_min(0.2), "got 0.2");
  rejects(lr_schedule_options(ok).set_milestones({10}), "milestones are for kind 'step', not 'cosine'");
  auto step = lr_schedule_options(ok).set_kind(schedule_kind::step);
  rejects(step, "kind 'step' needs milestones");
  rejects(lr_schedule_options(step).set_milestones({10, 20}, 0), "expected gamma > 0, got 0");
  rejects(lr_schedule_options(step).set_milestones({10, 50}), "milestone 50 is outside [1, total_iters = 50)");
  rejects(lr_schedule_options(step).set_milestones({0}), "milestone 0 is outside");
  rejects(lr_schedule_options(step).set_milestones({20, 10}), "milestones must increase, got 20 then 10");
  // warmup_iters = total_iters is fine without a cosine
  CHECK_NOTHROW(lr_schedule(lr_schedule_options(ok).set_warmup(50, 0.5).set_kind(schedule_kind::constant)));
}

TEST_CASE("lr_schedule: kinds by name", "[optim]") {
  using namespace schedule_test;
  CHECK(optim::schedule_kind_from_string("cosine") == schedule_kind::cosine);
  CHECK(optim::schedule_kind_from_string("step") == schedule_kind::step);
  CHECK(std::string(optim::to_string(schedule_kind::constant)) == "constant");
  CHECK_THROWS_AS(optim::schedule_kind_from_string("Cosine"), config_error);
  CHECK_THROWS_WITH(optim::schedule_kind_from_string("poly"),
                    Catch::Contains("unknown schedule kind 'poly'") &&
                        Catch::Contains("'constant', 'cosine' or 'step'"));
}

TEST_CASE("auto_scale_lr: the linear scaling rule of mmpretrain", "[optim]") {
  CHECK(optim::auto_scale_lr(0.02, 256, 64) == 0.005);  // the In-Shop ArcFace config on one 64-image batch
  CHECK(optim::auto_scale_lr(0.1, 256, 512) == 0.2);
  CHECK(optim::auto_scale_lr(0.02, 256, 256) == 0.02);
  CHECK(optim::auto_scale_lr(0.5, 3, 1) == 0.5 * (1.0 / 3.0));  // mmengine: lr * (real / base)
  CHECK_THROWS_MATCHES(optim::auto_scale_lr(0.1, 0, 32), config_error,
                       testing::message_contains("expected base_batch_size > 0, got 0"));
  CHECK_THROWS_MATCHES(optim::auto_scale_lr(0.1, 256, -4), config_error,
                       testing::message_contains("expected a batch size > 0, got -4"));
  CHECK_THROWS_MATCHES(optim::auto_scale_lr(-0.1, 256, 32), config_error,
                       testing::message_contains("expected base_lr >= 0"));
}
