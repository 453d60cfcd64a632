#pragma once
// Layers without parameters: relu, identity, flatten, and the pooling layers.
#include <string>

#include "arcnet/nn/layer.hpp"
#include "arcnet/ops/activation.hpp"
#include "arcnet/ops/pool.hpp"

namespace arcnet::detail {
/// The module part shared by layers that own no parameters or buffers.
struct stateless_module {
  template <class F>
  void for_each_parameter(F&&, std::string const& = "") {}
  template <class F>
  void for_each_buffer(F&&, std::string const& = "") {}
  void train(bool) {}
};
}  // namespace arcnet::detail

namespace arcnet::nn {

/// max(x, 0), any shape.
struct relu {
  static constexpr int in_channels = any_channels;
  static constexpr int out_channels = same_channels;
  static constexpr char const* type_name = "relu";
  static std::string describe_type() { return "relu"; }
  template <class T, class D>
  struct module : detail::stateless_module {
    explicit module(generator& = default_generator()) {}
    template <class A = T>
    variable<A, D> forward(variable<A, D> const& x) { return ops::relu(x); }
    shape describe(shape const& in, std::string const& prefix, std::vector<layer_info>& out) const {
      out.push_back({prefix, describe_type(), in, 0, double(in.numel())});
      return in;
    }
  };
};

/// Passes its input through (the shortcut of a residual block whose shapes already match).
struct identity {
  static constexpr int in_channels = any_channels;
  static constexpr int out_channels = same_channels;
  static constexpr char const* type_name = "identity";
  static std::string describe_type() { return "identity"; }
  template <class T, class D>
  struct module : detail::stateless_module {
    explicit module(generator& = default_generator()) {}
    template <class A = T>
    variable<A, D> forward(variable<A, D> const& x) { return x; }
    shape describe(shape const& in, std::string const&, std::vector<layer_info>&) const { return in; }
  };
};

/// (N, ...) -> (N, prod(...)), a view (no copy).
struct flatten {
  static constexpr int in_channels = any_channels;
  static constexpr int out_channels = same_channels;
  static constexpr char const* type_name = "flatten";
  static std::string describe_type() { return "flatten"; }
  template <class T, class D>
  struct module : detail::stateless_module {
    explicit module(generator& = default_generator()) {}
    variable<T, D> forward(variable<T, D> const& x) {
      ARCNET_CHECK_AS(shape_error, x.rank() >= 1, "flatten: expected an input of rank >= 1, got shape ", x.shape());
      index_t n = x.size(0);
      auto y = x.value().view({n, n == 0 ? 0 : x.numel() / n});
      return autograd::make_op("flatten", y, {x}, [x](tensor<T, D> const& dy) mutable {
        if (x.requires_grad()) ops::axpy(T(1), dy, x.grad_for_accumulate());
      });
    }
    shape describe(shape const& in, std::string const&, std::vector<layer_info>&) const {
      return shape{in[0], in[0] == 0 ? 0 : in.numel() / in[0]};
    }
  };
};

/// Max pooling with a square Kernel, Stride and Pad (PyTorch's MaxPool2d; padding never wins the max).
template <int Kernel, int Stride = Kernel, int Pad = 0>
struct max_pool {
  static_assert(Kernel > 0 && Stride > 0 && Pad >= 0 && 2 * Pad <= Kernel,
                "arcnet::nn::max_pool<Kernel, Stride, Pad>: need Kernel, Stride > 0 and 0 <= Pad <= Kernel / 2");
  static constexpr int in_channels = any_channels;
  static constexpr int out_channels = same_channels;
  static constexpr char const* type_name = "max_pool";
  static std::string describe_type() { return detail::concat("max_pool<", Kernel, ", ", Stride, ", ", Pad, ">"); }
  static ops::pool2d_options options() {
    ops::pool2d_options o;
    o.kernel_h = o.kernel_w = Kernel;
    o.stride_h = o.stride_w = Stride;
    o.pad_h = o.pad_w = Pad;
    return o;
  }
  template <class T, class D>
  struct module : detail::stateless_module {
    explicit module(generator& = default_generator()) {}
    template <class A = T>
    variable<A, D> forward(variable<A, D> const& x) { return ops::max_pool2d(x, options()); }
    shape describe(shape const& in, std::string const& prefix, std::vector<layer_info>& out) const {
      detail::check_nhwc(describe_type().c_str(), in, 0);
      shape y{in[0], (in[1] + 2 * Pad - Kernel) / Stride + 1, (in[2] + 2 * Pad - Kernel) / Stride + 1, in[3]};
      out.push_back({prefix, describe_type(), y, 0, double(in.numel())});
      return y;
    }
  };
};

/// Average pooling (PyTorch's AvgPool2d with count_include_pad = true).
template <int Kernel, int Stride = Kernel, int Pad = 0>
struct avg_pool {
  static_assert(Kernel > 0 && Stride > 0 && Pad >= 0 && 2 * Pad <= Kernel,
                "arcnet::nn::avg_pool<Kernel, Stride, Pad>: need Kernel, Stride > 0 and 0 <= Pad <= Kernel / 2");
  static constexpr int in_channels = any_channels;
  static constexpr int out_channels = same_channels;
  static constexpr char const* type_name = "avg_pool";
  static std::string describe_type() { return detail::concat("avg_pool<", Kernel, ", ", Stride, ", ", Pad, ">"); }
  template <class T, class D>
  struct module : detail::stateless_module {
    explicit module(generator& = default_generator()) {}
    template <class A = T>
    variable<A, D> forward(variable<A, D> const& x) { return ops::avg_pool2d(x, max_pool<Kernel, Stride, Pad>::options()); }
    shape describe(shape const& in, std::string const& prefix, std::vector<layer_info>& out) const {
      detail::check_nhwc(describe_type().c_str(), in, 0);
      shape y{in[0], (in[1] + 2 * Pad - Kernel) / Stride + 1, (in[2] + 2 * Pad - Kernel) / Stride + 1, in[3]};
      out.push_back({prefix, describe_type(), y, 0, double(in.numel())});
      return y;
    }
  };
};

/// (N, H, W, C) -> (N, C): the mean over H and W.
struct global_avg_pool {
  static constexpr int in_channels = any_channels;
  static constexpr int out_channels = same_channels;
  static constexpr char const* type_name = "global_avg_pool";
  static std::string describe_type() { return "global_avg_pool"; }
  template <class T, class D>
  struct module : detail::stateless_module {
    explicit module(generator& = default_generator()) {}
    template <class A = T>
    variable<A, D> forward(variable<A, D> const& x) { return ops::global_avg_pool(x); }
    shape describe(shape const& in, std::string const& prefix, std::vector<layer_info>& out) const {
      detail::check_nhwc("global_avg_pool", in, 0);
      shape y{in[0], in[3]};
      out.push_back({prefix, describe_type(), y, 0, double(in.numel())});
      return y;
    }
  };
};

}  // namespace arcnet::nn
