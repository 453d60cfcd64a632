#pragma once
// nn::residual<Body, Shortcut, After>: y = After(Body(x) + Shortcut(x)), the ResNet block.
// In checkpoints the body's children appear directly under the block's name (conv1, bn1, ...)
// and a shortcut with parameters under "downsample", as in torchvision.
#include <string>

#include "arcnet/nn/batch_norm.hpp"
#include "arcnet/nn/conv2d.hpp"
#include "arcnet/nn/fusion.hpp"
#include "arcnet/nn/sequential.hpp"
#include "arcnet/nn/stateless.hpp"

namespace arcnet::detail {
template <int BodyIn, int BodyOut, int ShortcutIn, int ShortcutOut>
struct residual_check {
  static constexpr bool ok = (ShortcutOut == nn::same_channels ? BodyIn == BodyOut : ShortcutOut == BodyOut) &&
                             (ShortcutIn == nn::any_channels || ShortcutIn == BodyIn);
  static_assert(ok,
                "arcnet::nn::residual<Body, Shortcut>: the shortcut's channels must match the body's: the body maps "
                "`BodyIn` -> `BodyOut` channels and the shortcut `ShortcutIn` -> `ShortcutOut` (0 = same as input); "
                "use a projection shortcut (conv2d + batch_norm) when the body changes the channel count");
};
}  // namespace arcnet::detail

namespace arcnet::nn {

/// The projection shortcut of torchvision's ResNet: a strided 1x1 convolution and batch norm.
template <int In, int Out, int Stride>
using projection = sequential<conv2d<In, Out, 1, Stride, 0>, batch_norm<Out>>;

template <class Body, class Shortcut = identity, class After = relu>
struct residual {
  static_assert(sizeof(detail::residual_check<Body::in_channels, Body::out_channels, Shortcut::in_channels,
                                              Shortcut::out_channels>) > 0);  // instantiates the check
  static constexpr int in_channels = Body::in_channels;
  static constexpr int out_channels = Body::out_channels;
  static constexpr char const* type_name = "residual";
  static std::string describe_type() { return "residual"; }

  template <class T, class D>
  class module {
   public:
    explicit module(generator& g = default_generator()) : body_(g), shortcut_(g), after_(g) {}

    /// Activations of the parameters' type, or bf16 ones (bf16 mode's storage on the CUDA device),
    /// which need the fused end (nn::fusion on, a body ending in a batch norm, a ReLU after).
    template <class A = T>
    variable<A, D> forward(variable<A, D> const& x) {
      if constexpr (fusion::is_relu<After> && fusion::ends_in_batch_norm<Body>::value) {
        // The body's last batch norm, the add and the ReLU as one op; not where the CPU's
        // gradient-free forward folds that batch norm into its convolution (below).
        if (fusion::enabled() && !fusion::may_fuse<D>()) return body_.forward_add_relu(x, shortcut_.forward(x));
      }
      if constexpr (std::is_same_v<A, T>) {
        auto y = body_.forward(x);
        auto s = shortcut_.forward(x);
        if constexpr (std::is_same_v<D, cpu> && fusion::is_relu<After>)
          if (fusion::may_fuse<D>() && y.shape() == s.shape()) return fusion::add_relu(y, s);  // one pass
        return after_.forward(ops::add(y, s));
      } else {
        detail::raise<config_error>("residual: bf16 activations take the fused end of a block (batch norm, add and "
                                    "ReLU as one op), and nn::fusion is off or this block's body does not end in "
                                    "a batch norm; set ARCNET_BF16_ACTIVATIONS=0 for fp32 activations");
      }
    }
    template <class F>
    void for_each_parameter(F&& f, std::string const& prefix = "") {
      body_.for_each_parameter(f, prefix);
      shortcut_.for_each_parameter(f, detail::join_name(prefix, "downsample"));
    }
    template <class F>
    void for_each_buffer(F&& f, std::string const& prefix = "") {
      body_.for_each_buffer(f, prefix);
      shortcut_.for_each_buffer(f, detail::join_name(prefix, "downsample"));
    }
    void train(bool on) {
      body_.train(on);
      shortcut_.train(on);
      after_.train(on);
    }
    shape describe(shape const& in, std::string const& prefix, std::vector<layer_info>& out) const {
      shape y = body_.describe(in, prefix, out);
      shape s = shortcut_.describe(in, detail::join_name(prefix, "downsample"), out);
      if (y != s)
        detail::raise<shape_error>("residual ", prefix, ": body output ", y, " and shortcut output ", s, " differ");
      return after_.describe(y, prefix, out);
    }
    typename Body::template module<T, D>& body() { return body_; }
    typename Shortcut::template module<T, D>& shortcut() { return shortcut_; }

   private:
    typename Body::template module<T, D> body_;
    typename Shortcut::template module<T, D> shortcut_;
    typename After::template module<T, D> after_;
  };
};

}  // namespace arcnet::nn
