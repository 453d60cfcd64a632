#pragma once
// nn::batch_norm<C>: batch normalisation over the channels (last axis) of NHWC or (N, C) activations.
#include <functional>
#include <string>
#include <type_traits>
#include <utility>

#include "arcnet/nn/init.hpp"
#include "arcnet/nn/layer.hpp"
#include "arcnet/ops/activation.hpp"
#include "arcnet/ops/batch_norm.hpp"

namespace arcnet::nn {

/// Called with every batch_norm layer's input (recorded on the tape), running mean and running
/// variance during forward passes on this thread while a batch_norm_observer is alive: the way
/// to put a prior on activation statistics (DeepInversion, ArcFace's embedding inversion)
/// without changing the model. PyTorch users do the same with forward hooks.
template <class T, class D>
using batch_norm_hook = std::function<void(variable<T, D> const& x, tensor<T, D> const& running_mean,
                                           tensor<T, D> const& running_var)>;

namespace detail_bn {
template <class T, class D>
batch_norm_hook<T, D>*& current_hook() {
  static thread_local batch_norm_hook<T, D>* hook = nullptr;
  return hook;
}
}  // namespace detail_bn

/// Installs a batch_norm_hook for its lifetime (scopes nest: the previous hook comes back).
template <class T, class D>
class batch_norm_observer {
 public:
  explicit batch_norm_observer(batch_norm_hook<T, D> hook)
      : hook_(std::move(hook)), previous_(detail_bn::current_hook<T, D>()) {
    detail_bn::current_hook<T, D>() = &hook_;
  }
  ~batch_norm_observer() { detail_bn::current_hook<T, D>() = previous_; }
  batch_norm_observer(batch_norm_observer const&) = delete;
  batch_norm_observer& operator=(batch_norm_observer const&) = delete;

 private:
  batch_norm_hook<T, D> hook_;
  batch_norm_hook<T, D>* previous_;
};

/// Computes a batch_norm layer's TRAIN-mode output in place of ops::batch_norm (same arguments,
/// o.training is true) on this thread while a batch_norm_train_override is alive; eval mode never
/// calls it. distributed::sync_batch_norm_scope installs one that normalises over all ranks.
template <class T, class D>
using batch_norm_train_forward =
    std::function<variable<T, D>(variable<T, D> const& x, variable<T, D> const& weight, variable<T, D> const& bias,
                                 tensor<T, D>& running_mean, tensor<T, D>& running_var, ops::batch_norm_options o)>;

namespace detail_bn {
template <class T, class D>
batch_norm_train_forward<T, D>*& current_train_forward() {
  static thread_local batch_norm_train_forward<T, D>* f = nullptr;
  return f;
}
}  // namespace detail_bn

/// Installs a batch_norm_train_forward for its lifetime (scopes nest: the previous one comes back).
template <class T, class D>
class batch_norm_train_override {
 public:
  explicit batch_norm_train_override(batch_norm_train_forward<T, D> f)
      : f_(std::move(f)), previous_(detail_bn::current_train_forward<T, D>()) {
    detail_bn::current_train_forward<T, D>() = &f_;
  }
  ~batch_norm_train_override() { detail_bn::current_train_forward<T, D>() = previous_; }
  batch_norm_train_override(batch_norm_train_override const&) = delete;
  batch_norm_train_override& operator=(batch_norm_train_override const&) = delete;

 private:
  batch_norm_train_forward<T, D> f_;
  batch_norm_train_forward<T, D>* previous_;
};

/// PyTorch's BatchNorm2d / BatchNorm1d: weight 1, bias 0, running_mean 0, running_var 1, momentum 0.1, eps 1e-5.
/// Training mode normalises with batch statistics and updates the running ones; eval mode uses the running ones.
template <int C>
struct batch_norm {
  static_assert(C > 0, "arcnet::nn::batch_norm<C>: C must be positive");
  static constexpr int in_channels = C;
  static constexpr int out_channels = C;
  static constexpr char const* type_name = "batch_norm";
  static std::string describe_type() { return detail::concat("batch_norm<", C, ">"); }

  template <class T, class D>
  class module {
   public:
    explicit module(generator& = default_generator())
        : weight_(detail::make_parameter<T, D>(shape{C}, [](auto& w) { w.fill(T(1)); })),
          bias_(detail::make_parameter<T, D>(shape{C}, [](auto&) {})),
          running_mean_(detail::make_buffer<T, D>(shape{C}, T(0))),
          running_var_(detail::make_buffer<T, D>(shape{C}, T(1))),
          num_batches_tracked_(detail::make_buffer<T, D>(shape{}, T(0))) {}

    /// (..., C) -> (..., C). The activations may be bf16 while the parameters and statistics are
    /// fp32 (bf16 mode's storage on the CUDA device; see ops/batch_norm.hpp).
    template <class A = T>
    variable<A, D> forward(variable<A, D> const& x) { return run(x, false); }
    /// max(forward(x), 0) as one op (ops::batch_norm_options::relu): how sequential runs a batch
    /// norm followed by a ReLU while nn::fusion is on. Under a batch_norm_train_override (synchronised
    /// batch norm) in train mode the override runs unfused and the ReLU follows it.
    template <class A = T>
    variable<A, D> forward_relu(variable<A, D> const& x) { return run(x, true); }
    /// max(forward(x) + shortcut, 0) as one op (ops::batch_norm_add): how nn::residual ends a
    /// block whose body ends in a batch norm while nn::fusion is on.
    template <class A = T>
    variable<A, D> forward_add_relu(variable<A, D> const& x, variable<A, D> const& shortcut) {
      return run(x, true, &shortcut);
    }
    template <class F>
    void for_each_parameter(F&& f, std::string const& prefix = "") {
      f(detail::join_name(prefix, "weight"), weight_, param_layout::plain);
      f(detail::join_name(prefix, "bias"), bias_, param_layout::plain);
    }
    template <class F>
    void for_each_buffer(F&& f, std::string const& prefix = "") {
      f(detail::join_name(prefix, "running_mean"), running_mean_);
      f(detail::join_name(prefix, "running_var"), running_var_);
      f(detail::join_name(prefix, "num_batches_tracked"), num_batches_tracked_);
    }
    void train(bool on) { training_ = on; }
    bool training() const { return training_; }
    void set_momentum(double m) { momentum_ = m; }
    double eps() const { return eps_; }
    shape describe(shape const& in, std::string const& prefix, std::vector<layer_info>& out) const {
      if (in.rank() < 2 || in[in.rank() - 1] != C)
        detail::raise<shape_error>(describe_type(), ": expected input (..., ", C, "), got shape ", in);
      out.push_back({prefix, describe_type(), in, index_t(2) * C, 2.0 * double(in.numel())});
      return in;
    }
    variable<T, D>& weight() { return weight_; }
    variable<T, D>& bias() { return bias_; }
    tensor<T, D>& running_mean() { return running_mean_; }
    tensor<T, D>& running_var() { return running_var_; }

   private:
    /// forward, with the ReLU and the shortcut's add (shortcut may be null) fused when asked.
    template <class A>
    variable<A, D> run(variable<A, D> const& x, bool relu, variable<A, D> const* shortcut = nullptr) {
      if (x.rank() < 2 || x.size(-1) != C)
        detail::raise<shape_error>(describe_type(), ": expected input (..., ", C, "), got shape ", x.shape());
      ops::batch_norm_options o;
      o.training = training_;
      o.momentum = momentum_;
      o.eps = eps_;
      if (training_ && autograd::grad_enabled()) bump_batches();
      auto* hook = detail_bn::current_hook<T, D>();
      auto* f = training_ ? detail_bn::current_train_forward<T, D>() : nullptr;
      if constexpr (std::is_same_v<A, T>) {
        if (hook) (*hook)(x, running_mean_, running_var_);
        if (f) {
          auto y = (*f)(x, weight_, bias_, running_mean_, running_var_, o);
          if (shortcut) y = ops::add(y, *shortcut);
          return relu ? ops::relu(y) : y;
        }
      } else if (hook || f) {
        detail::raise<config_error>(describe_type(), ": a batch_norm_observer or a synchronised batch norm takes "
                                    "activations of the parameters' type; these are bf16 (bf16 mode's storage: set "
                                    "ARCNET_BF16_ACTIVATIONS=0, or precision::set_bf16_activations(false))");
      }
      o.relu = relu;
      if (shortcut) return ops::batch_norm_add(x, weight_, bias_, running_mean_, running_var_, *shortcut, o);
      return ops::batch_norm(x, weight_, bias_, running_mean_, running_var_, o);
    }
    void bump_batches() {
      if constexpr (std::is_same_v<D, cpu>) {
        num_batches_tracked_[0] += T(1);
      } else {
#if defined(__CUDACC__)
        gpu::add_scalar(num_batches_tracked_.data(), 1, T(1));
#endif
      }
    }
    variable<T, D> weight_, bias_;
    tensor<T, D> running_mean_, running_var_, num_batches_tracked_;
    bool training_ = true;
    double momentum_ = 0.1, eps_ = 1e-5;
  };
};

}  // namespace arcnet::nn
