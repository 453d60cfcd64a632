#pragma once
// nn::conv2d<In, Out, Kernel, Stride, Pad, Bias>: a 2-D convolution over NHWC activations.
#include <string>
#include <type_traits>

#include "arcnet/nn/init.hpp"
#include "arcnet/nn/layer.hpp"
#include "arcnet/ops/cast.hpp"
#include "arcnet/ops/conv2d.hpp"

namespace arcnet::nn {

/// Square kernel; Pad = -1 means "same" padding Dilation * (Kernel - 1) / 2. Weight (Kernel, Kernel, In, Out)
/// in memory, (Out, In, Kernel, Kernel) in checkpoints. Initialised as torchvision does (kaiming normal, fan_out).
template <int In, int Out, int Kernel, int Stride = 1, int Pad = -1, bool Bias = false, int Dilation = 1>
struct conv2d {
  static_assert(In > 0 && Out > 0, "arcnet::nn::conv2d<In, Out, Kernel>: channel counts must be positive");
  static_assert(Kernel > 0 && Stride > 0 && Dilation > 0,
                "arcnet::nn::conv2d<In, Out, Kernel, Stride>: Kernel, Stride and Dilation must be positive");
  static_assert(Pad >= 0 || Kernel % 2 == 1,
                "arcnet::nn::conv2d<In, Out, Kernel>: Kernel must be odd for same padding; pass Pad explicitly");
  static constexpr int in_channels = In;
  static constexpr int out_channels = Out;
  static constexpr int pad = Pad >= 0 ? Pad : Dilation * (Kernel - 1) / 2;
  static constexpr char const* type_name = "conv2d";

  static ops::conv2d_options options() {
    ops::conv2d_options o;
    o.stride_h = o.stride_w = Stride;
    o.pad_h = o.pad_w = pad;
    o.dilation_h = o.dilation_w = Dilation;
    return o;
  }
  static std::string describe_type() {
    return detail::concat("conv2d<", In, ", ", Out, ", ", Kernel, ", ", Stride, ">");
  }

  template <class T, class D>
  class module {
   public:
    explicit module(generator& g = default_generator())
        : weight_(detail::make_parameter<T, D>(shape{Kernel, Kernel, In, Out}, [&](auto& w) {
            init::kaiming_normal_fan_out(w, index_t(Out) * Kernel * Kernel, g);
          })) {
      if constexpr (Bias)
        bias_ = detail::make_parameter<T, D>(shape{Out}, [&](auto& b) {
          init::uniform_fan_in(b, index_t(In) * Kernel * Kernel, g);
        });
    }
    /// (N, H, W, In) -> (N, Ho, Wo, Out). Activations of another type than the parameters (bf16
    /// with fp32 weights) get the weight and bias cast to their type per call, as PyTorch's
    /// autocast: the gradients come back through the casts into the fp32 parameters.
    template <class A = T>
    variable<A, D> forward(variable<A, D> const& x) {
      detail::check_nhwc(describe_type().c_str(), x.shape(), In);
      if constexpr (std::is_same_v<A, T>)
        return ops::conv2d(x, weight_, bias_, options());
      else
        return ops::conv2d(x, ops::cast<A>(weight_), bias_.defined() ? ops::cast<A>(bias_) : variable<A, D>(),
                           options());
    }
    template <class F>
    void for_each_parameter(F&& f, std::string const& prefix = "") {
      f(detail::join_name(prefix, "weight"), weight_, param_layout::conv_hwio);
      if constexpr (Bias) f(detail::join_name(prefix, "bias"), bias_, param_layout::plain);
    }
    template <class F>
    void for_each_buffer(F&&, std::string const& = "") {}
    void train(bool) {}
    shape describe(shape const& in, std::string const& prefix, std::vector<layer_info>& out) const {
      detail::check_nhwc(describe_type().c_str(), in, In);
      index_t ho = (in[1] + 2 * pad - Dilation * (Kernel - 1) - 1) / Stride + 1;
      index_t wo = (in[2] + 2 * pad - Dilation * (Kernel - 1) - 1) / Stride + 1;
      shape y{in[0], ho, wo, Out};
      index_t params = index_t(Kernel) * Kernel * In * Out + (Bias ? Out : 0);
      out.push_back({prefix, describe_type(), y, params, double(y.numel()) * Kernel * Kernel * In});
      return y;
    }
    variable<T, D>& weight() { return weight_; }
    variable<T, D>& bias() { return bias_; }

   private:
    variable<T, D> weight_, bias_;  // (K, K, In, Out), (Out) or undefined
  };
};

}  // namespace arcnet::nn
