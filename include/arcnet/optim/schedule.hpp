#pragma once
// Learning-rate schedules of mmpretrain / mmengine as pure functions of the iteration: a linear
// warm-up (LinearLR) followed by a constant, cosine (CosineAnnealingLR) or step (MultiStepLR)
// schedule, stepped per iteration. A resumed run gets the same rates from the iteration alone.
// Also auto_scale_lr, mmpretrain's linear scaling of the learning rate with the batch size.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "arcnet/core/error.hpp"

namespace arcnet::optim {

/// What follows the warm-up.
enum class schedule_kind {
  constant,  // base_lr
  cosine,    // CosineAnnealingLR(T_max = total_iters - warmup_iters, eta_min) from base_lr
  step       // MultiStepLR(milestones, gamma): times gamma at each milestone
};

/// "constant", "cosine", "step".
inline char const* to_string(schedule_kind k) {
  switch (k) {
    case schedule_kind::constant: return "constant";
    case schedule_kind::cosine: return "cosine";
    case schedule_kind::step: return "step";
  }
  return "?";
}
/// The kind named `name` ("constant", "cosine", "step"); throws config_error otherwise.
inline schedule_kind schedule_kind_from_string(std::string const& name) {
  for (auto k : {schedule_kind::constant, schedule_kind::cosine, schedule_kind::step})
    if (name == to_string(k)) return k;
  detail::raise<config_error>("lr_schedule: unknown schedule kind '", name,
                              "', expected 'constant', 'cosine' or 'step'");
}

/// Whose LinearLR the warm-up follows. They differ in where the warm-up ends:
///   mmengine: LinearLR(start_factor, by_epoch=False, begin=0, end=warmup_iters) reaches base_lr at
///             iteration warmup_iters - 1 (its total_iters is end - begin - 1); what mmpretrain runs;
///   torch:    torch.optim.lr_scheduler.LinearLR(start_factor, total_iters=warmup_iters) reaches
///             base_lr at iteration warmup_iters (then SequentialLR or ChainedScheduler).
enum class warmup_convention { mmengine, torch };

/// Options of lr_schedule; chain the setters:
/// `lr_schedule_options().set_base_lr(0.02).set_warmup(500, 0.01).set_total_iters(5000)` (cosine).
struct lr_schedule_options {
  double base_lr = 0.1;
  std::int64_t warmup_iters = 0;      // 0: no warm-up
  double warmup_start_factor = 0.01;  // the warm-up starts at warmup_start_factor * base_lr
  std::int64_t total_iters = 0;       // iterations of the whole run, warm-up included
  schedule_kind kind = schedule_kind::cosine;
  double eta_min = 0;                     // cosine: the floor
  std::vector<std::int64_t> milestones;   // step: iterations (from 0) at which the rate is multiplied
  double gamma = 0.1;                     // step: the factor
  warmup_convention convention = warmup_convention::mmengine;

  lr_schedule_options& set_base_lr(double v) { base_lr = v; return *this; }
  lr_schedule_options& set_warmup(std::int64_t iters, double start_factor) {
    warmup_iters = iters;
    warmup_start_factor = start_factor;
    return *this;
  }
  lr_schedule_options& set_total_iters(std::int64_t v) { total_iters = v; return *this; }
  lr_schedule_options& set_kind(schedule_kind v) { kind = v; return *this; }
  lr_schedule_options& set_eta_min(double v) { eta_min = v; return *this; }
  lr_schedule_options& set_milestones(std::vector<std::int64_t> v, double g = 0.1) {
    milestones = std::move(v);
    gamma = g;
    return *this;
  }
  lr_schedule_options& set_convention(warmup_convention v) { convention = v; return *this; }

  /// Throws config_error on options no schedule can follow; the message names the option.
  void validate() const {
    ARCNET_CHECK_AS(config_error, std::isfinite(base_lr) && base_lr >= 0,
                    "lr_schedule: expected base_lr >= 0, got ", base_lr);
    ARCNET_CHECK_AS(config_error, total_iters > 0, "lr_schedule: expected total_iters > 0, got ", total_iters);
    ARCNET_CHECK_AS(config_error, warmup_iters >= 0, "lr_schedule: expected warmup_iters >= 0, got ", warmup_iters);
    ARCNET_CHECK_AS(config_error, warmup_iters <= total_iters, "lr_schedule: warmup_iters (", warmup_iters,
                    ") exceeds total_iters (", total_iters, ")");
    ARCNET_CHECK_AS(config_error, warmup_start_factor > 0 && warmup_start_factor <= 1,
                    "lr_schedule: expected warmup_start_factor in (0, 1], got ", warmup_start_factor);
    if (kind == schedule_kind::cosine) {
      ARCNET_CHECK_AS(config_error, warmup_iters < total_iters, "lr_schedule: cosine needs iterations after the "
                      "warm-up, but warmup_iters = total_iters = ", total_iters);
      ARCNET_CHECK_AS(config_error, std::isfinite(eta_min) && eta_min >= 0 && eta_min <= base_lr,
                      "lr_schedule: expected eta_min in [0, base_lr = ", base_lr, "], got ", eta_min);
    }
    if (kind == schedule_kind::step) {
      ARCNET_CHECK_AS(config_error, !milestones.empty(), "lr_schedule: kind 'step' needs milestones");
      ARCNET_CHECK_AS(config_error, std::isfinite(gamma) && gamma > 0, "lr_schedule: expected gamma > 0, got ", gamma);
      for (std::size_t i = 0; i < milestones.size(); ++i) {
        ARCNET_CHECK_AS(config_error, milestones[i] > 0 && milestones[i] < total_iters, "lr_schedule: milestone ",
                        milestones[i], " is outside [1, total_iters = ", total_iters, ")");
        ARCNET_CHECK_AS(config_error, i == 0 || milestones[i] > milestones[i - 1],
                        "lr_schedule: milestones must increase, got ", milestones[i - 1], " then ", milestones[i]);
      }
    } else {
      ARCNET_CHECK_AS(config_error, milestones.empty(), "lr_schedule: milestones are for kind 'step', not '",
                      to_string(kind), "'");
    }
  }
};

/// The learning rate of every iteration of a run, in closed form (no state), equal to mmengine's
/// chainable schedulers stepped once per iteration (ParamSchedulerHook, by_epoch=False or
/// convert_to_iter_based=True), for W = warmup_iters, s = warmup_start_factor, N = total_iters:
///   warm-up, i < W:   base_lr * (s + (1 - s) * i / (W - 1))   [torch convention: i / W]
///   then, i >= W:     constant  base_lr
///                     cosine    eta_min + (base_lr - eta_min) * (1 + cos(pi * (i - W) / (N - W))) / 2
///                     step      base_lr * gamma^(number of milestones <= i)  (also during the warm-up,
///                               times its factor, as mmengine's and torch's chains multiply)
/// mmengine stops updating at N, so iterations past N keep the rate of N - 1; the torch convention
/// continues the cosine's closed form. One mmengine quirk is kept: with W = 1 the warm-up never
/// leaves s * base_lr, and the cosine (or constant, or step) starts from there.
class lr_schedule {
 public:
  /// Throws config_error on invalid options.
  explicit lr_schedule(lr_schedule_options options) : options_(std::move(options)) { options_.validate(); }

  /// The rate iteration `iter` (0-based) trains with.
  double lr_at(std::int64_t iter) const { return lr_at(iter, options_.base_lr); }

  /// The same schedule for a parameter group whose initial rate is `base_lr` (mmengine schedules
  /// each group from its own initial rate, with the shared eta_min).
  double lr_at(std::int64_t iter, double base_lr) const {
    ARCNET_CHECK(iter >= 0, "lr_schedule::lr_at: expected an iteration >= 0, got ", iter);
    ARCNET_CHECK_AS(config_error, std::isfinite(base_lr) && base_lr >= 0,
                    "lr_schedule::lr_at: expected base_lr >= 0, got ", base_lr);
    auto const& o = options_;
    bool mm = o.convention == warmup_convention::mmengine;
    if (mm && iter >= o.total_iters) iter = o.total_iters - 1;  // mmengine's schedulers end at total_iters
    auto const w = o.warmup_iters;
    double const s = o.warmup_start_factor;
    // The warm-up factor at iter (1 once it is over; s for mmengine's one-iteration warm-up).
    double factor = 1;
    if (mm && w == 1) factor = s;
    else if (iter < w) factor = s + (1 - s) * static_cast<double>(iter) / static_cast<double>(mm ? w - 1 : w);
    double const peak = base_lr * factor;
    switch (o.kind) {
      case schedule_kind::constant: return peak;
      case schedule_kind::step: {
        double lr = peak;
        for (auto m : o.milestones)
          if (m <= iter) lr *= o.gamma;
        return lr;
      }
      case schedule_kind::cosine: {
        if (iter < w) return peak;
        double const pi = 3.14159265358979323846;
        auto t = static_cast<double>(iter - w), t_max = static_cast<double>(o.total_iters - w);
        return o.eta_min + (peak - o.eta_min) * (1 + std::cos(pi * t / t_max)) / 2;
      }
    }
    return peak;
  }

  lr_schedule_options const& options() const { return options_; }

 private:
  lr_schedule_options options_;
};

/// mmpretrain's auto_scale_lr (mmengine Runner.scale_lr): base_lr * (actual / base), the linear
/// scaling rule, e.g. lr 0.02 for base_batch_size 256 becomes 0.005 at a total batch of 64.
/// Throws config_error on base_lr < 0 or a batch size < 1.
inline double auto_scale_lr(double base_lr, int base_batch_size, int actual_batch_size) {
  ARCNET_CHECK_AS(config_error, std::isfinite(base_lr) && base_lr >= 0, "auto_scale_lr: expected base_lr >= 0, got ",
                  base_lr);
  ARCNET_CHECK_AS(config_error, base_batch_size > 0, "auto_scale_lr: expected base_batch_size > 0, got ",
                  base_batch_size);
  ARCNET_CHECK_AS(config_error, actual_batch_size > 0, "auto_scale_lr: expected a batch size > 0, got ",
                  actual_batch_size);
  double ratio = static_cast<double>(actual_batch_size) / static_cast<double>(base_batch_size);
  return base_lr * ratio;
}

}  // namespace arcnet::optim
