#pragma once
// The interface every optimizer offers (SGD, AdamW), so that a trainer can choose one at run time,
// drive its learning rate from a schedule and save and restore its state for an exact resume.
#include <cstddef>
#include <map>
#include <string>

#include "arcnet/core/device.hpp"
#include "arcnet/core/tensor.hpp"

namespace arcnet::optim {

/// An optimizer over leaf variables of type variable<T, Device>, organised in parameter groups.
/// Implementations: optim::sgd, optim::adamw.
template <class T, class Device = cpu>
class optimizer {
 public:
  /// Optimizer state by "<parameter name>.<entry>" as host tensors (for checkpoints). Scalars such
  /// as step counts are 1-element tensors, so that the state alone resumes a run bit-exactly.
  using state_dict = std::map<std::string, tensor<T, cpu>>;

  virtual ~optimizer() = default;

  /// What the optimizer is, as named in configs and checkpoints ("sgd", "adamw").
  virtual char const* name() const = 0;

  /// One update of every parameter that has a gradient.
  virtual void step() = 0;
  /// Clears every parameter's gradient (set to none, so that the next backward allocates it).
  virtual void zero_grad() = 0;

  /// Number of parameter groups.
  virtual std::size_t num_groups() const = 0;
  /// The learning rate of group `g`; throws on a group out of range.
  virtual double lr(std::size_t g = 0) const = 0;
  /// Sets the learning rate of group `g`; throws config_error on lr < 0.
  virtual void set_lr(std::size_t g, double lr) = 0;
  /// Sets the learning rate of every group (what a schedule does each iteration).
  virtual void set_lr(double lr) {
    for (std::size_t g = 0; g < num_groups(); ++g) set_lr(g, lr);
  }

  /// Host copies of the state (a copy: changing it changes nothing in the optimizer).
  virtual state_dict state() const = 0;
  /// Replaces the state with `s` (keys as state() writes them). Throws, leaving the state as it
  /// was, on unknown keys, mismatched shapes and incomplete entries.
  virtual void load_state(state_dict const& s) = 0;

 protected:
  optimizer() = default;
  optimizer(optimizer const&) = default;  // copies through the derived class only (no slicing)
  optimizer(optimizer&&) = default;
  optimizer& operator=(optimizer const&) = default;
  optimizer& operator=(optimizer&&) = default;
};

}  // namespace arcnet::optim
