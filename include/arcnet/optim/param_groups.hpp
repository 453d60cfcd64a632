#pragma once
// What SGD and AdamW share: parameter groups (parameters, their names and one set of options
// each), the checks on adding them, learning rates by group and the walk over the parameters in
// a step, so that each optimizer holds only its options, its update rule and its per-parameter state.
#include <cstddef>
#include <map>
#include <set>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "arcnet/autograd/no_grad.hpp"
#include "arcnet/autograd/variable.hpp"
#include "arcnet/core/error.hpp"
#include "arcnet/core/tensor.hpp"
#include "arcnet/optim/optimizer.hpp"

namespace arcnet::optim {

/// An optimizer over leaf variables in parameter groups, each with its own Options (sgd_options,
/// adamw_options: a `double lr` and a `validate()` that throws config_error). The base of
/// optim::sgd and optim::adamw: they add their per-parameter state through add_group_state(),
/// their update rule through update_parameter(), and call add_param_group() from their constructors.
template <class T, class Device, class Options>
class param_groups : public optimizer<T, Device> {
 public:
  using parameter = variable<T, Device>;

  /// Parameters sharing one set of hyper-parameters; names key the optimizer state.
  struct group {
    std::vector<parameter> params;
    std::vector<std::string> names;
    Options options;
  };

  /// Adds a group (e.g. norms and biases without weight decay); unnamed parameters are named
  /// by their index over all groups, like PyTorch's optimizer state.
  void add_param_group(std::vector<parameter> params, Options options) {
    std::vector<std::pair<std::string, parameter>> named;
    named.reserve(params.size());
    std::size_t next = total_params_;
    for (auto& p : params) named.emplace_back(std::to_string(next++), std::move(p));
    add_param_group(std::move(named), options);
  }
  /// Adds a group of named parameters; throws on undefined or non-leaf parameters and on a
  /// name already in use, and config_error on invalid options.
  void add_param_group(std::vector<std::pair<std::string, parameter>> named, Options options) {
    options.validate();
    // Check every parameter before recording any, so that a rejected group leaves no trace.
    std::set<std::string> seen;
    for (auto& [name, p] : named) {
      ARCNET_CHECK(p.defined(), who_, ": parameter '", name, "' is undefined");
      ARCNET_CHECK(p.is_leaf(), who_, ": parameter '", name, "' is not a leaf; optimize leaves (parameters) only");
      ARCNET_CHECK(!index_.count(name) && seen.insert(name).second, who_, ": parameter name '", name, "' appears twice");
    }
    group g;
    g.options = options;
    for (auto& [name, p] : named) {
      index_[name] = {groups_.size(), g.params.size()};
      g.names.push_back(name);
      g.params.push_back(std::move(p));
    }
    total_params_ += g.params.size();
    add_group_state(g.params.size());
    groups_.push_back(std::move(g));
  }

  /// The optimizer's name, as given to the constructor ("sgd", "adamw").
  char const* name() const override { return who_; }

  /// One update of every parameter that has a gradient (each group's options validated first).
  void step() override {
    autograd::no_grad guard;
    for (std::size_t gi = 0; gi < groups_.size(); ++gi) {
      auto const& o = groups_[gi].options;
      o.validate();
      auto& params = groups_[gi].params;
      for (std::size_t pi = 0; pi < params.size(); ++pi)
        if (params[pi].grad().defined()) update_parameter(gi, pi, params[pi], o);
    }
  }

  /// Clears every parameter's gradient (set to none, so that the next backward allocates it).
  void zero_grad() override {
    for (auto& g : groups_)
      for (auto& p : g.params) p.zero_grad();
  }

  using optimizer<T, Device>::set_lr;  // set_lr(double): every group
  /// Sets the learning rate of group `g` only.
  void set_lr(std::size_t g, double lr) override {
    checked_group("set_lr", g);
    ARCNET_CHECK_AS(config_error, lr >= 0, who_, "::set_lr: expected lr >= 0 for group ", g, ", got ", lr);
    groups_[g].options.lr = lr;
  }
  /// The learning rate of group `g`.
  double lr(std::size_t g = 0) const override { return checked_group("lr", g).options.lr; }

  std::size_t num_groups() const override { return groups_.size(); }
  /// Group `g`: its parameters, names and (mutable) hyper-parameters.
  group& param_group(std::size_t g) {
    checked_group("param_group", g);
    return groups_[g];
  }
  group const& param_group(std::size_t g) const { return checked_group("param_group", g); }

 protected:
  /// Parameter name -> (group, position in the group).
  using name_index = std::map<std::string, std::pair<std::size_t, std::size_t>>;

  /// `who` names the optimizer in name() and in error messages ("sgd" gives "sgd::set_lr: ...");
  /// it must outlive the optimizer (a string literal).
  explicit param_groups(char const* who) : who_(who) {}
  param_groups(param_groups const&) = default;  // copies through the derived class only (no slicing)
  param_groups(param_groups&&) = default;
  param_groups& operator=(param_groups const&) = default;
  param_groups& operator=(param_groups&&) = default;

  /// Makes room for the state of a new last group of `n` parameters (add_param_group calls it
  /// before the group is added, so not from a base constructor: derived constructors add groups).
  virtual void add_group_state(std::size_t n) = 0;
  /// Updates parameter `p`, number `pi` of group `gi`, which has a gradient, with its group's options.
  virtual void update_parameter(std::size_t gi, std::size_t pi, parameter& p, Options const& o) = 0;

  static tensor<T, cpu> host_copy(tensor<T, Device> const& t) {
    if constexpr (std::is_same_v<Device, cpu>) return t.clone();
    else return t.template to<cpu>();
  }
  static tensor<T, Device> device_copy(tensor<T, cpu> const& t) {
    if constexpr (std::is_same_v<Device, cpu>) return t.clone();
    else return t.template to<Device>();
  }

  std::vector<group> groups_;
  name_index index_;

 private:
  group const& checked_group(char const* op, std::size_t g) const {
    ARCNET_CHECK(g < groups_.size(), who_, "::", op, ": group ", g, " is out of range (", groups_.size(),
                 " groups)");
    return groups_[g];
  }

  char const* who_;
  std::size_t total_params_ = 0;
};

}  // namespace arcnet::optim
