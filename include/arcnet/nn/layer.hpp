#pragma once
// What every layer descriptor provides, and the helpers layers share.
//
// A layer is a descriptor type with compile-time hyper-parameters and a nested module:
//
//   struct my_layer {
//     static constexpr int in_channels = any_channels;   // or a fixed count
//     static constexpr int out_channels = same_channels; // or a fixed count
//     static constexpr char const* type_name = "my_layer";
//     template <class T, class D> class module {
//      public:
//       explicit module(generator& g = default_generator());
//       variable<T, D> forward(variable<T, D> const& x);
//       template <class F> void for_each_parameter(F&& f, std::string const& prefix = "");  // f(name, variable&, param_layout)
//       template <class F> void for_each_buffer(F&& f, std::string const& prefix = "");     // f(name, tensor&)
//       void train(bool on);
//       shape describe(shape const& in, std::string const& prefix, std::vector<layer_info>& out) const;
//     };
//   };
//
// Layers write forward only; gradients come from the ops they call.
#include <string>
#include <vector>

#include "arcnet/autograd/variable.hpp"
#include "arcnet/core/random.hpp"

namespace arcnet::nn {

/// in_channels of a layer that accepts any channel count (relu, pooling).
inline constexpr int any_channels = 0;
/// out_channels of a layer whose output has as many channels as its input.
inline constexpr int same_channels = 0;

/// How a parameter is laid out in memory, so that checkpoints can convert to PyTorch's layout.
enum class param_layout {
  plain,      // same as PyTorch
  conv_hwio,  // (KH, KW, Cin, Cout) here, (Cout, Cin, KH, KW) in PyTorch
};

/// One row of a model summary (see nn/summary.hpp).
struct layer_info {
  std::string name;   // hierarchical, as in the state dict ("layer1.0.conv1")
  std::string type;   // "conv2d<64, 3, 1>"
  shape output;       // for the summarised input shape
  index_t params = 0;
  double macs = 0;    // multiply-accumulates, counted as mmcv's get_model_complexity_info (the tool behind
                      // mmpretrain's published FLOPs): convolutions and linear layers their MACs, affine
                      // batch norm 2 per element, relu 1 per element, pooling 1 per input element
};

/// Calls a visitor of parameters with the dtype-erased count, for summaries.
template <class Module>
index_t count_parameters(Module& m) {
  index_t n = 0;
  m.for_each_parameter([&](std::string const&, auto& p, param_layout) { n += p.numel(); });
  return n;
}

}  // namespace arcnet::nn

namespace arcnet::detail {
/// "a" + "." + "b", without a leading dot when a is empty.
inline std::string join_name(std::string const& prefix, std::string const& name) {
  if (prefix.empty()) return name;
  if (name.empty()) return prefix;
  return prefix + "." + name;
}
/// Throws unless an activation is NHWC with the expected channels.
inline void check_nhwc(char const* layer, shape const& s, int channels) {
  if (s.rank() != 4)
    raise<shape_error>(layer, ": expected an NHWC input of rank 4, got shape ", s);
  if (channels != 0 && s[3] != channels)
    raise<shape_error>(layer, ": expected ", channels, " input channels, got ", s[3], " (input shape ", s, ")");
}
}  // namespace arcnet::detail
