#pragma once
// Adam with decoupled weight decay, with the semantics of torch.optim.AdamW (PyTorch 1.13, the
// single-tensor path), parameter groups and a state (moments and step counts) for checkpoints.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "arcnet/core/error.hpp"
#include "arcnet/core/tensor.hpp"
#include "arcnet/ops/elementwise.hpp"
#include "arcnet/optim/param_groups.hpp"

namespace arcnet::optim {

/// Hyper-parameters of one parameter group; set members directly or chain the setters:
/// `adamw_options().set_lr(1e-3).set_betas(0.9, 0.999).set_weight_decay(0.05)`.
struct adamw_options {
  double lr = 1e-3;
  double beta1 = 0.9;   // running average of the gradient
  double beta2 = 0.999; // running average of the squared gradient
  double eps = 1e-8;
  double weight_decay = 1e-2;  // decoupled: p *= 1 - lr * weight_decay before the Adam step
  bool amsgrad = false;  // normalise by the running maximum of the second moment
  bool maximize = false;  // ascend instead of descend

  adamw_options& set_lr(double v) { lr = v; return *this; }
  adamw_options& set_beta1(double v) { beta1 = v; return *this; }
  adamw_options& set_beta2(double v) { beta2 = v; return *this; }
  adamw_options& set_betas(double b1, double b2) { beta1 = b1; beta2 = b2; return *this; }
  adamw_options& set_eps(double v) { eps = v; return *this; }
  adamw_options& set_weight_decay(double v) { weight_decay = v; return *this; }
  adamw_options& set_amsgrad(bool v) { amsgrad = v; return *this; }
  adamw_options& set_maximize(bool v) { maximize = v; return *this; }

  /// Throws config_error on the values torch.optim.AdamW rejects.
  void validate() const {
    ARCNET_CHECK_AS(config_error, lr >= 0, "adamw: expected lr >= 0, got ", lr);
    ARCNET_CHECK_AS(config_error, eps >= 0, "adamw: expected eps >= 0, got ", eps);
    ARCNET_CHECK_AS(config_error, beta1 >= 0 && beta1 < 1, "adamw: expected beta1 in [0, 1), got ", beta1);
    ARCNET_CHECK_AS(config_error, beta2 >= 0 && beta2 < 1, "adamw: expected beta2 in [0, 1), got ", beta2);
    ARCNET_CHECK_AS(config_error, weight_decay >= 0, "adamw: expected weight_decay >= 0, got ", weight_decay);
  }
};

/// AdamW over leaf variables, exactly as torch.optim.AdamW: per parameter p with gradient g
/// (negated under maximize) and its own step count t,
///   t += 1;  p *= 1 - lr * weight_decay;  m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2;
///   vmax = max(vmax, v) under amsgrad (then used for v below);
///   p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps).
/// Parameters without a gradient are skipped (their step count does not advance, and weight decay
/// does not touch them). Parameters are handles: the optimizer updates the values the model reads.
template <class T, class Device = cpu>
class adamw : public param_groups<T, Device, adamw_options> {
  using base = param_groups<T, Device, adamw_options>;

 public:
  using typename base::parameter;
  /// By "<parameter name>.exp_avg", ".exp_avg_sq", ".max_exp_avg_sq" (amsgrad) and ".step" (a
  /// 1-element tensor), on the host (for checkpoints); PyTorch's names for the same state.
  using state_dict = typename optimizer<T, Device>::state_dict;

  /// One group of parameters, named by their index ("0", "1", ...) in the state.
  explicit adamw(std::vector<parameter> params, adamw_options options = {}) : base("adamw") {
    this->add_param_group(std::move(params), options);
  }
  /// One group of named parameters ({"fc.weight", w}, ...).
  explicit adamw(std::vector<std::pair<std::string, parameter>> named, adamw_options options = {})
      : base("adamw") {
    this->add_param_group(std::move(named), options);
  }

  /// Host copies of the state of every parameter that has taken a step (none before the first).
  state_dict state() const override {
    state_dict s;
    for (std::size_t gi = 0; gi < groups_.size(); ++gi)
      for (std::size_t pi = 0; pi < states_[gi].size(); ++pi) {
        auto const& st = states_[gi][pi];
        if (!st.exp_avg.defined()) continue;
        auto const& name = groups_[gi].names[pi];
        s[name + ".exp_avg"] = host_copy(st.exp_avg);
        s[name + ".exp_avg_sq"] = host_copy(st.exp_avg_sq);
        if (st.max_exp_avg_sq.defined()) s[name + ".max_exp_avg_sq"] = host_copy(st.max_exp_avg_sq);
        s[name + ".step"] = tensor<T, cpu>::full(shape{1}, static_cast<T>(st.step));
      }
    return s;
  }
  /// Replaces the state with `s` (keys as state() writes them); parameters missing from `s` start
  /// afresh. A parameter's entries come together: exp_avg, exp_avg_sq and step, plus
  /// max_exp_avg_sq when its group uses amsgrad. Throws on unknown keys, mismatched shapes, a
  /// step that is not a non-negative integer and incomplete entries; the state is then unchanged.
  void load_state(state_dict const& s) override {
    std::vector<std::vector<param_state>> loaded;
    for (auto const& st : states_) loaded.emplace_back(st.size());
    std::vector<std::vector<bool>> has_step;
    for (auto const& st : states_) has_step.emplace_back(st.size(), false);
    for (auto const& [key, t] : s) {
      auto [it, entry] = find_key(key);
      ARCNET_CHECK(it != index_.end(), "adamw::load_state: key '", key,
                   "' names no parameter of this optimizer (expected '<parameter name>.exp_avg', "
                   "'.exp_avg_sq', '.max_exp_avg_sq' or '.step')");
      auto [gi, pi] = it->second;
      auto& st = loaded[gi][pi];
      if (entry == entry_kind::step) {
        if (t.numel() != 1)
          detail::raise<shape_error>("adamw::load_state: '", key, "' has shape ", t.shape(),
                                     ", expected one element (the step count)");
        double v = static_cast<double>(t.data()[0]);
        ARCNET_CHECK(v >= 0 && std::floor(v) == v && v < 9.0e15, "adamw::load_state: '", key,
                     "' is ", v, ", expected a non-negative whole number of steps");
        st.step = static_cast<std::int64_t>(v);
        has_step[gi][pi] = true;
        continue;
      }
      auto const& p = groups_[gi].params[pi];
      if (t.shape() != p.shape())
        detail::raise<shape_error>("adamw::load_state: '", key, "' has shape ", t.shape(), ", parameter '",
                                   groups_[gi].names[pi], "' has shape ", p.shape());
      auto& slot = entry == entry_kind::exp_avg ? st.exp_avg
                   : entry == entry_kind::exp_avg_sq ? st.exp_avg_sq : st.max_exp_avg_sq;
      slot = device_copy(t);
    }
    for (std::size_t gi = 0; gi < loaded.size(); ++gi)
      for (std::size_t pi = 0; pi < loaded[gi].size(); ++pi) {
        bool amsgrad = groups_[gi].options.amsgrad;
        char const* missing = missing_entry(loaded[gi][pi], has_step[gi][pi], amsgrad);
        auto const& name = groups_[gi].names[pi];
        ARCNET_CHECK(missing == nullptr, "adamw::load_state: the state of parameter '", name, "' (group ", gi,
                     amsgrad ? ", amsgrad" : "", ") lacks '", name, missing, "'; a parameter's exp_avg, exp_avg_sq",
                     amsgrad ? ", max_exp_avg_sq" : "", " and step come together");
      }
    states_ = std::move(loaded);
  }

 private:
  using base::groups_;
  using base::index_;
  using base::host_copy;
  using base::device_copy;

  struct param_state {
    tensor<T, Device> exp_avg, exp_avg_sq, max_exp_avg_sq;  // undefined until the first step
    std::int64_t step = 0;
  };
  enum class entry_kind { exp_avg, exp_avg_sq, max_exp_avg_sq, step };

  /// The parameter and entry a state key names, or index_.end().
  std::pair<typename base::name_index::const_iterator, entry_kind> find_key(std::string const& key) const {
    // Longest suffix first: ".max_exp_avg_sq" ends in ".exp_avg_sq" too.
    static constexpr std::pair<char const*, entry_kind> suffixes[] = {
        {".max_exp_avg_sq", entry_kind::max_exp_avg_sq},
        {".exp_avg_sq", entry_kind::exp_avg_sq},
        {".exp_avg", entry_kind::exp_avg},
        {".step", entry_kind::step}};
    for (auto const& [suffix, kind] : suffixes) {
      std::size_t n = std::char_traits<char>::length(suffix);
      if (key.size() <= n || key.compare(key.size() - n, std::string::npos, suffix) != 0) continue;
      auto it = index_.find(key.substr(0, key.size() - n));
      if (it != index_.end()) return {it, kind};
    }
    return {index_.end(), entry_kind::step};
  }

  /// The suffix of the first entry a partly loaded state lacks, or null (complete, or no state).
  static char const* missing_entry(param_state const& st, bool has_step, bool amsgrad) {
    bool any = st.exp_avg.defined() || st.exp_avg_sq.defined() || st.max_exp_avg_sq.defined() || has_step;
    if (!any) return nullptr;
    if (!st.exp_avg.defined()) return ".exp_avg";
    if (!st.exp_avg_sq.defined()) return ".exp_avg_sq";
    if (amsgrad && !st.max_exp_avg_sq.defined()) return ".max_exp_avg_sq";
    if (!has_step) return ".step";
    return nullptr;
  }

  void add_group_state(std::size_t n) override { states_.emplace_back(n); }

  // torch.optim.adamw._single_tensor_adamw, step by step, on raw tensors.
  void update_parameter(std::size_t gi, std::size_t pi, parameter& p, adamw_options const& o) override {
    auto& st = states_[gi][pi];
    using ops::unary_kind;
    using impl = ops::elementwise_impl<Device>;
    auto const& shp = p.shape();
    if (!st.exp_avg.defined()) {  // PyTorch: state starts at the first step with a gradient
      st.exp_avg = tensor<T, Device>::zeros(shp);
      st.exp_avg_sq = tensor<T, Device>::zeros(shp);
      st.step = 0;
    }
    if (o.amsgrad && !st.max_exp_avg_sq.defined()) st.max_exp_avg_sq = tensor<T, Device>::zeros(shp);

    tensor<T, Device> g = p.grad();
    if (o.maximize) g = ops::unary_forward(unary_kind::neg, g);
    st.step += 1;
    auto& value = p.value_mut();
    if (o.weight_decay != 0)  // (multiplying by exactly 1 would change nothing)
      impl::unary_forward(unary_kind::mul_scalar, value, value, static_cast<T>(1 - o.lr * o.weight_decay), T(0));

    // m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
    impl::unary_forward(unary_kind::mul_scalar, st.exp_avg, st.exp_avg, static_cast<T>(o.beta1), T(0));
    ops::axpy(static_cast<T>(1 - o.beta1), g, st.exp_avg);
    impl::unary_forward(unary_kind::mul_scalar, st.exp_avg_sq, st.exp_avg_sq, static_cast<T>(o.beta2), T(0));
    auto g2 = ops::unary_forward(unary_kind::mul_scalar, g, static_cast<T>(1 - o.beta2));  // addcmul's order:
    impl::binary_forward(ops::binary_kind::mul, g2, g, g2);                                 // ((1 - beta2) g) g
    ops::axpy(T(1), g2, st.exp_avg_sq);

    auto t = static_cast<double>(st.step);  // PyTorch: Python floats, so double whatever T is
    double bias_correction1 = 1 - std::pow(o.beta1, t);
    double bias_correction2 = 1 - std::pow(o.beta2, t);
    double step_size = o.lr / bias_correction1;
    double bias_correction2_sqrt = std::sqrt(bias_correction2);

    tensor<T, Device> second = st.exp_avg_sq;
    if (o.amsgrad) {
      // vmax = max(vmax, v), element-wise: where(relu(v - vmax) != 0, v, vmax). v - vmax is
      // non-zero exactly where v != vmax (IEEE subtraction), so the pick is exact.
      auto greater = ops::binary_forward(ops::binary_kind::sub, st.exp_avg_sq, st.max_exp_avg_sq);
      impl::unary_forward(unary_kind::relu, greater, greater, T(0), T(0));
      impl::where_forward(greater, st.exp_avg_sq, st.max_exp_avg_sq, st.max_exp_avg_sq);
      second = st.max_exp_avg_sq;
    }
    // denom = sqrt(v) / sqrt(bias_correction2) + eps;  p -= step_size * m / denom. The division by
    // the scalar is a multiplication by its reciprocal (as PyTorch's CUDA kernels do): one parallel
    // pass, and as close to PyTorch's CPU results (~1e-15) as a true division.
    auto denom = ops::unary_forward(unary_kind::sqrt, second);
    impl::unary_forward(unary_kind::mul_scalar, denom, denom, static_cast<T>(1 / bias_correction2_sqrt), T(0));
    impl::unary_forward(unary_kind::add_scalar, denom, denom, static_cast<T>(o.eps), T(0));
    impl::binary_forward(ops::binary_kind::div, st.exp_avg, denom, denom);
    ops::axpy(static_cast<T>(-step_size), denom, value);
  }

  std::vector<std::vector<param_state>> states_;  // per group, per parameter
};

}  // namespace arcnet::optim
