#pragma once
// Layer fusion in nn::sequential and nn::residual.
//
// Inference. With gradients off, on the CPU, sequential runs a convolution followed by an
// eval-mode batch norm (and a ReLU) as one convolution: the batch norm folded into its weight
// and bias (torch.fx's fuse_conv_bn_eval), the ReLU applied while each chunk of the output is in
// cache; residual runs its add and ReLU as one pass. That removes two of the four passes over
// each activation a ResNet block makes besides its GEMMs. Outputs equal the layer-by-layer ones
// to rounding (the add + ReLU exactly). A forward observed by a batch_norm_observer is not folded.
//
// Training (and every forward on the GPU). Where nothing is folded, sequential runs a batch norm
// followed by a ReLU as one op (nn::batch_norm's forward_relu, ops::batch_norm_options::relu),
// and residual runs its body's last batch norm, the add and the ReLU as one op (forward_add_relu,
// ops::batch_norm_add). That saves the ReLU's and the add's passes forward and backward, and the
// intermediate activations the graph would keep (the batch norm's output, the sum). Values and
// gradients equal the layer-by-layer ones exactly.
#include <cmath>
#include <type_traits>

#include "arcnet/autograd/no_grad.hpp"
#include "arcnet/nn/batch_norm.hpp"
#include "arcnet/nn/conv2d.hpp"
#include "arcnet/nn/stateless.hpp"

namespace arcnet::nn::fusion {

/// Process-wide switch (on by default) for both kinds: off, every layer runs on its own. For
/// tests and benchmarks.
inline bool& enabled() {
  static bool on = true;
  return on;
}

/// The layer inside a named<> wrapper (or the layer itself).
template <class L, class = void>
struct unwrap {
  using type = L;
};
template <class L>
struct unwrap<L, std::void_t<typename L::layer>> : unwrap<typename L::layer> {};
template <class L>
using unwrap_t = typename unwrap<L>::type;

template <class L>
struct is_conv2d_layer : std::false_type {};
template <int In, int Out, int Kernel, int Stride, int Pad, bool Bias, int Dilation>
struct is_conv2d_layer<conv2d<In, Out, Kernel, Stride, Pad, Bias, Dilation>> : std::true_type {};
template <class L>
struct is_batch_norm_layer : std::false_type {};
template <int C>
struct is_batch_norm_layer<batch_norm<C>> : std::true_type {};

/// A convolution directly followed by a batch norm (named or not).
template <class First, class Second>
inline constexpr bool is_conv_batch_norm =
    is_conv2d_layer<unwrap_t<First>>::value && is_batch_norm_layer<unwrap_t<Second>>::value;
template <class L>
inline constexpr bool is_relu = std::is_same_v<unwrap_t<L>, relu>;
/// A layer with a static ends_in_batch_norm that is true (a sequential whose last layer is one).
template <class L, class = void>
struct ends_in_batch_norm : std::false_type {};
template <class L>
struct ends_in_batch_norm<L, std::enable_if_t<L::ends_in_batch_norm>> : std::true_type {};
/// A batch norm directly followed by a ReLU (named or not).
template <class First, class Second>
inline constexpr bool is_batch_norm_relu = is_batch_norm_layer<unwrap_t<First>>::value && is_relu<Second>;

/// Whether a forward of these layers may be fused now: CPU, no graph recorded, fusion on, and
/// (for a batch norm) eval mode with no observer installed.
template <class D>
bool may_fuse() {
  return std::is_same_v<D, cpu> && !autograd::grad_enabled() && enabled();
}
template <class T, class D, class BatchNorm>
bool may_fold(BatchNorm const& bn) {
  return may_fuse<D>() && !bn.training() && detail_bn::current_hook<T, D>() == nullptr;
}

/// relu?(batch_norm(conv(x))) in one convolution; ConvLayer is the convolution's layer type.
template <class ConvLayer, class T, class Conv, class BatchNorm>
variable<T, cpu> conv_batch_norm(Conv& conv, BatchNorm& bn, variable<T, cpu> const& x, bool relu_after) {
  detail::check_nhwc(ConvLayer::describe_type().c_str(), x.shape(), ConvLayer::in_channels);
  index_t const c = ConvLayer::out_channels;
  auto scale = tensor<T, cpu>::uninitialized(shape{c});
  auto shift = tensor<T, cpu>::uninitialized(shape{c});
  tensor<T, cpu> const& mean = bn.running_mean();
  tensor<T, cpu> const& var = bn.running_var();
  tensor<T, cpu> const gamma = bn.weight().defined() ? bn.weight().value() : tensor<T, cpu>();
  tensor<T, cpu> const beta = bn.bias().defined() ? bn.bias().value() : tensor<T, cpu>();
  tensor<T, cpu> const conv_bias = conv.bias().defined() ? conv.bias().value() : tensor<T, cpu>();
  for (index_t j = 0; j < c; ++j) {
    double s = 1.0 / std::sqrt(static_cast<double>(var[j]) + bn.eps());
    if (gamma.defined()) s *= static_cast<double>(gamma[j]);
    double b = conv_bias.defined() ? static_cast<double>(conv_bias[j]) : 0.0;
    scale[j] = static_cast<T>(s);
    shift[j] = static_cast<T>((b - static_cast<double>(mean[j])) * s + (beta.defined() ? static_cast<double>(beta[j]) : 0.0));
  }
  return variable<T, cpu>(
      ops::conv2d_scale_shift_forward(x.value(), conv.weight().value(), scale, shift, ConvLayer::options(), relu_after));
}

/// max(a + b, 0) in one pass (a and b of one shape): a residual block's add and ReLU.
template <class T>
variable<T, cpu> add_relu(variable<T, cpu> const& a, variable<T, cpu> const& b) {
  auto y = tensor<T, cpu>::uninitialized(a.shape());
  T const *as = a.value().data(), *bs = b.value().data();
  T* ys = y.data();
  index_t const n = y.numel();
#pragma omp parallel for simd if (n > (1 << 15))
  for (index_t i = 0; i < n; ++i) {
    T v = as[i] + bs[i];
    ys[i] = v > T(0) ? v : T(0);
  }
  return variable<T, cpu>(y);
}

}  // namespace arcnet::nn::fusion
