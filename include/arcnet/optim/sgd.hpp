#pragma once
// Stochastic gradient descent with momentum, Nesterov momentum and L2 weight decay, with the
// semantics of torch.optim.SGD (PyTorch 1.13), parameter groups and a state for checkpoints.
#include <cstddef>
#include <map>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "arcnet/autograd/no_grad.hpp"
#include "arcnet/autograd/variable.hpp"
#include "arcnet/core/error.hpp"
#include "arcnet/core/tensor.hpp"
#include "arcnet/ops/elementwise.hpp"
#include "arcnet/optim/optimizer.hpp"

namespace arcnet::optim {

/// Hyper-parameters of one parameter group; set members directly or chain the setters:
/// `sgd_options().set_lr(0.1).set_momentum(0.9).set_nesterov(true).set_weight_decay(5e-4)`.
struct sgd_options {
  double lr = 0.01;
  double momentum = 0;
  double dampening = 0;
  double weight_decay = 0;  // L2: weight_decay * param is added to the gradient
  bool nesterov = false;
  bool maximize = false;  // ascend instead of descend

  sgd_options& set_lr(double v) { lr = v; return *this; }
  sgd_options& set_momentum(double v) { momentum = v; return *this; }
  sgd_options& set_dampening(double v) { dampening = v; return *this; }
  sgd_options& set_weight_decay(double v) { weight_decay = v; return *this; }
  sgd_options& set_nesterov(bool v) { nesterov = v; return *this; }
  sgd_options& set_maximize(bool v) { maximize = v; return *this; }

  /// Throws config_error on the values torch.optim.SGD rejects.
  void validate() const {
    ARCNET_CHECK_AS(config_error, lr >= 0, "sgd: expected lr >= 0, got ", lr);
    ARCNET_CHECK_AS(config_error, momentum >= 0, "sgd: expected momentum >= 0, got ", momentum);
    ARCNET_CHECK_AS(config_error, weight_decay >= 0, "sgd: expected weight_decay >= 0, got ", weight_decay);
    ARCNET_CHECK_AS(config_error, !nesterov || (momentum > 0 && dampening == 0),
                    "sgd: Nesterov momentum requires momentum > 0 and dampening = 0, got momentum ", momentum,
                    " and dampening ", dampening);
  }
};

/// SGD over leaf variables, exactly as torch.optim.SGD: per parameter p with gradient g,
///   g += weight_decay * p;  buf = g on the first step, else buf = momentum * buf + (1 - dampening) * g;
///   g = nesterov ? g + momentum * buf : buf  (when momentum != 0);  p -= lr * g.
/// Parameters without a gradient are skipped. Parameters are handles: the optimizer updates
/// the same values the model reads. Usable through the optim::optimizer interface.
template <class T, class Device = cpu>
class sgd : public optimizer<T, Device> {
 public:
  using parameter = variable<T, Device>;
  /// Momentum buffers by "<parameter name>.momentum_buffer", on the host (for checkpoints).
  using state_dict = typename optimizer<T, Device>::state_dict;

  /// Parameters sharing one set of hyper-parameters; names key the optimizer state.
  struct group {
    std::vector<parameter> params;
    std::vector<std::string> names;
    sgd_options options;
  };

  /// One group of parameters, named by their index ("0", "1", ...) in the state.
  explicit sgd(std::vector<parameter> params, sgd_options options = {}) {
    add_param_group(std::move(params), options);
  }
  /// One group of named parameters ({"fc.weight", w}, ...).
  explicit sgd(std::vector<std::pair<std::string, parameter>> named, sgd_options options = {}) {
    add_param_group(std::move(named), options);
  }

  /// Adds a group (e.g. norms and biases without weight decay); unnamed parameters are named
  /// by their index over all groups, like PyTorch's optimizer state.
  void add_param_group(std::vector<parameter> params, sgd_options options) {
    std::vector<std::pair<std::string, parameter>> named;
    named.reserve(params.size());
    std::size_t next = total_params_;
    for (auto& p : params) named.emplace_back(std::to_string(next++), std::move(p));
    add_param_group(std::move(named), options);
  }
  void add_param_group(std::vector<std::pair<std::string, parameter>> named, sgd_options options) {
    options.validate();
    group g;
    g.options = options;
    for (auto& [name, p] : named) {
      ARCNET_CHECK(p.defined(), "sgd: parameter '", name, "' is undefined");
      ARCNET_CHECK(p.is_leaf(), "sgd: parameter '", name, "' is not a leaf; optimize leaves (parameters) only");
      ARCNET_CHECK(!index_.count(name), "sgd: parameter name '", name, "' appears twice");
      index_[name] = {groups_.size(), g.params.size()};
      g.names.push_back(name);
      g.params.push_back(std::move(p));
    }
    total_params_ += g.params.size();
    buffers_.emplace_back(g.params.size());
    groups_.push_back(std::move(g));
  }

  char const* name() const override { return "sgd"; }

  /// One update of every parameter that has a gradient.
  void step() override {
    autograd::no_grad guard;
    for (std::size_t gi = 0; gi < groups_.size(); ++gi) {
      auto const& o = groups_[gi].options;
      o.validate();
      auto& params = groups_[gi].params;
      for (std::size_t pi = 0; pi < params.size(); ++pi) {
        auto& p = params[pi];
        if (!p.grad().defined()) continue;
        update(p, buffers_[gi][pi], o);
      }
    }
  }

  /// Clears every parameter's gradient (set to none, so that the next backward allocates it).
  void zero_grad() override {
    for (auto& g : groups_)
      for (auto& p : g.params) p.zero_grad();
  }

  /// Sets the learning rate of every group (what a schedule does each iteration).
  void set_lr(double lr) override {
    ARCNET_CHECK_AS(config_error, lr >= 0, "sgd::set_lr: expected lr >= 0, got ", lr);
    for (auto& g : groups_) g.options.lr = lr;
  }
  /// Sets the learning rate of group `g` only.
  void set_lr(std::size_t g, double lr) override {
    checked_group("sgd::set_lr", g);
    ARCNET_CHECK_AS(config_error, lr >= 0, "sgd::set_lr: expected lr >= 0 for group ", g, ", got ", lr);
    groups_[g].options.lr = lr;
  }
  /// The learning rate of group `g`.
  double lr(std::size_t g = 0) const override { return checked_group("sgd::lr", g).options.lr; }

  std::size_t num_groups() const override { return groups_.size(); }
  /// Group `g`: its parameters, names and (mutable) hyper-parameters.
  group& param_group(std::size_t g) {
    checked_group("sgd::param_group", g);
    return groups_[g];
  }
  group const& param_group(std::size_t g) const { return checked_group("sgd::param_group", g); }

  /// Host copies of the momentum buffers that exist (none before the first step or without momentum).
  state_dict state() const override {
    state_dict s;
    for (std::size_t gi = 0; gi < groups_.size(); ++gi)
      for (std::size_t pi = 0; pi < buffers_[gi].size(); ++pi)
        if (buffers_[gi][pi].defined()) s[groups_[gi].names[pi] + suffix] = host_copy(buffers_[gi][pi]);
    return s;
  }
  /// Replaces the momentum buffers with those in `s` (keys as state() writes them); parameters
  /// missing from `s` start without a buffer. Throws on unknown keys and mismatched shapes.
  void load_state(state_dict const& s) override {
    std::vector<std::vector<tensor<T, Device>>> loaded;
    for (auto const& b : buffers_) loaded.emplace_back(b.size());
    for (auto const& [key, t] : s) {
      auto name_end = key.size() >= suffix_length() ? key.size() - suffix_length() : 0;
      bool has_suffix = key.size() > suffix_length() && key.compare(name_end, std::string::npos, suffix) == 0;
      auto it = has_suffix ? index_.find(key.substr(0, name_end)) : index_.end();
      ARCNET_CHECK(it != index_.end(), "sgd::load_state: key '", key,
                   "' names no parameter of this optimizer (expected '<parameter name>", suffix, "')");
      auto [gi, pi] = it->second;
      auto const& p = groups_[gi].params[pi];
      if (t.shape() != p.shape())
        detail::raise<shape_error>("sgd::load_state: '", key, "' has shape ", t.shape(), ", parameter '",
                                   groups_[gi].names[pi], "' has shape ", p.shape());
      loaded[gi][pi] = device_copy(t);
    }
    buffers_ = std::move(loaded);
  }

 private:
  static constexpr char const* suffix = ".momentum_buffer";
  static std::size_t suffix_length() { return std::char_traits<char>::length(suffix); }

  group const& checked_group(char const* op, std::size_t g) const {
    ARCNET_CHECK(g < groups_.size(), op, ": group ", g, " is out of range (", groups_.size(), " groups)");
    return groups_[g];
  }

  static tensor<T, cpu> host_copy(tensor<T, Device> const& t) {
    if constexpr (std::is_same_v<Device, cpu>) return t.clone();
    else return t.template to<cpu>();
  }
  static tensor<T, Device> device_copy(tensor<T, cpu> const& t) {
    if constexpr (std::is_same_v<Device, cpu>) return t.clone();
    else return t.template to<Device>();
  }

  // torch.optim.sgd._single_tensor_sgd, step by step, on raw tensors.
  static void update(parameter& p, tensor<T, Device>& buf, sgd_options const& o) {
    using impl = ops::elementwise_impl<Device>;
    tensor<T, Device> d = p.grad();  // shares the gradient until something must be written
    bool owned = false;
    auto own = [&] {
      if (!owned) d = d.clone();
      owned = true;
    };
    if (o.maximize) {
      own();
      impl::unary_forward(ops::unary_kind::neg, d, d, T(0), T(0));
    }
    if (o.weight_decay != 0) {
      own();
      ops::axpy(static_cast<T>(o.weight_decay), p.value(), d);
    }
    if (o.momentum != 0) {
      if (!buf.defined()) {
        buf = d.clone();  // PyTorch: the first buffer is the (decayed) gradient, undamped
      } else {
        impl::unary_forward(ops::unary_kind::mul_scalar, buf, buf, static_cast<T>(o.momentum), T(0));
        ops::axpy(static_cast<T>(1 - o.dampening), d, buf);
      }
      if (o.nesterov) {
        own();
        ops::axpy(static_cast<T>(o.momentum), buf, d);
      } else {
        d = buf;
      }
    }
    ops::axpy(static_cast<T>(-o.lr), d, p.value_mut());
  }

  std::vector<group> groups_;
  std::vector<std::vector<tensor<T, Device>>> buffers_;  // per group, per parameter; undefined until used
  std::map<std::string, std::pair<std::size_t, std::size_t>> index_;  // name -> (group, position)
  std::size_t total_params_ = 0;
};

}  // namespace arcnet::optim
