#pragma once
// Stochastic gradient descent with momentum, Nesterov momentum and L2 weight decay, with the
// semantics of torch.optim.SGD (PyTorch 1.13), parameter groups and a state for checkpoints.
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "arcnet/core/error.hpp"
#include "arcnet/core/tensor.hpp"
#include "arcnet/ops/elementwise.hpp"
#include "arcnet/optim/param_groups.hpp"

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
class sgd : public param_groups<T, Device, sgd_options> {
  using base = param_groups<T, Device, sgd_options>;

 public:
  using typename base::parameter;
  /// Momentum buffers by "<parameter name>.momentum_buffer", on the host (for checkpoints).
  using state_dict = typename optimizer<T, Device>::state_dict;

  /// One group of parameters, named by their index ("0", "1", ...) in the state.
  explicit sgd(std::vector<parameter> params, sgd_options options = {}) : base("sgd") {
    this->add_param_group(std::move(params), options);
  }
  /// One group of named parameters ({"fc.weight", w}, ...).
  explicit sgd(std::vector<std::pair<std::string, parameter>> named, sgd_options options = {}) : base("sgd") {
    this->add_param_group(std::move(named), options);
  }

  using base::set_lr;  // set_lr(g, lr): group g only
  /// Sets the learning rate of every group (what a schedule does each iteration).
  void set_lr(double lr) override {
    ARCNET_CHECK_AS(config_error, lr >= 0, "sgd::set_lr: expected lr >= 0, got ", lr);
    for (auto& g : groups_) g.options.lr = lr;
  }

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
  using base::groups_;
  using base::index_;
  using base::host_copy;
  using base::device_copy;

  static constexpr char const* suffix = ".momentum_buffer";
  static std::size_t suffix_length() { return std::char_traits<char>::length(suffix); }

  void add_group_state(std::size_t n) override { buffers_.emplace_back(n); }

  // torch.optim.sgd._single_tensor_sgd, step by step, on raw tensors.
  void update_parameter(std::size_t gi, std::size_t pi, parameter& p, sgd_options const& o) override {
    auto& buf = buffers_[gi][pi];
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

  std::vector<std::vector<tensor<T, Device>>> buffers_;  // per group, per parameter; undefined until used
};

}  // namespace arcnet::optim
