#pragma once
// ResNet-18/34/50/101/152 (torchvision's "pytorch" style: the stride sits on the 3x3
// convolution) from one template, returning the globally pooled feature (512 or 2048-d).
// Parameter names match torchvision and mmpretrain: conv1, bn1, layer1.0.conv1, ..., layer4.2.bn3,
// layer2.0.downsample.0 (no fc: the head is separate).
#include <string>
#include <type_traits>
#include <utility>

#include "arcnet/nn/batch_norm.hpp"
#include "arcnet/nn/conv2d.hpp"
#include "arcnet/nn/linear.hpp"
#include "arcnet/nn/residual.hpp"
#include "arcnet/nn/sequential.hpp"
#include "arcnet/nn/stateless.hpp"

namespace arcnet::models {

/// Child names shared with torchvision's checkpoints.
namespace names {
inline constexpr char conv1[] = "conv1";
inline constexpr char conv2[] = "conv2";
inline constexpr char conv3[] = "conv3";
inline constexpr char bn1[] = "bn1";
inline constexpr char bn2[] = "bn2";
inline constexpr char bn3[] = "bn3";
inline constexpr char layer1[] = "layer1";
inline constexpr char layer2[] = "layer2";
inline constexpr char layer3[] = "layer3";
inline constexpr char layer4[] = "layer4";
inline constexpr char maxpool[] = "maxpool";
inline constexpr char avgpool[] = "avgpool";
inline constexpr char relu[] = "relu";
}  // namespace names

/// The shortcut of a block: identity when shapes match, else a strided 1x1 projection.
template <int In, int Out, int Stride>
using shortcut = std::conditional_t<(Stride != 1 || In != Out), nn::projection<In, Out, Stride>, nn::identity>;

/// ResNet-18/34 block: 3x3 (stride) -> 3x3, expansion 1.
template <int In, int Mid, int Stride>
using basic_block = nn::residual<
    nn::sequential<nn::named<names::conv1, nn::conv2d<In, Mid, 3, Stride>>, nn::named<names::bn1, nn::batch_norm<Mid>>,
                   nn::relu, nn::named<names::conv2, nn::conv2d<Mid, Mid, 3>>, nn::named<names::bn2, nn::batch_norm<Mid>>>,
    shortcut<In, Mid, Stride>>;

/// ResNet-50/101/152 block: 1x1 -> 3x3 (stride) -> 1x1, expansion 4.
template <int In, int Mid, int Stride>
using bottleneck = nn::residual<
    nn::sequential<nn::named<names::conv1, nn::conv2d<In, Mid, 1>>, nn::named<names::bn1, nn::batch_norm<Mid>>, nn::relu,
                   nn::named<names::conv2, nn::conv2d<Mid, Mid, 3, Stride>>, nn::named<names::bn2, nn::batch_norm<Mid>>,
                   nn::relu, nn::named<names::conv3, nn::conv2d<Mid, 4 * Mid, 1>>,
                   nn::named<names::bn3, nn::batch_norm<4 * Mid>>>,
    shortcut<In, 4 * Mid, Stride>>;

template <template <int, int, int> class Block>
inline constexpr int expansion_of = std::is_same_v<Block<64, 64, 1>, basic_block<64, 64, 1>> ? 1 : 4;

namespace detail_resnet {
template <std::size_t, class T>
using repeat = T;
template <template <int, int, int> class Block, int In, int Mid, int Stride, class Indices>
struct stage_of;
template <template <int, int, int> class Block, int In, int Mid, int Stride, std::size_t... I>
struct stage_of<Block, In, Mid, Stride, std::index_sequence<I...>> {
  using type = nn::sequential<Block<In, Mid, Stride>, repeat<I, Block<Mid * expansion_of<Block>, Mid, 1>>...>;
};
}  // namespace detail_resnet

/// `Blocks` blocks; the first takes In channels and the stride, the others Mid * expansion.
template <template <int, int, int> class Block, int Blocks, int In, int Mid, int Stride>
using stage = typename detail_resnet::stage_of<Block, In, Mid, Stride, std::make_index_sequence<Blocks - 1>>::type;

/// A ResNet on NHWC images with InChannels channels: (N, H, W, InChannels) -> (N, 512 * expansion).
template <template <int, int, int> class Block, int B1, int B2, int B3, int B4, int InChannels = 3>
struct resnet
    : nn::sequential<nn::named<names::conv1, nn::conv2d<InChannels, 64, 7, 2, 3>>,
                     nn::named<names::bn1, nn::batch_norm<64>>, nn::named<names::relu, nn::relu>,
                     nn::named<names::maxpool, nn::max_pool<3, 2, 1>>,
                     nn::named<names::layer1, stage<Block, B1, 64, 64, 1>>,
                     nn::named<names::layer2, stage<Block, B2, 64 * expansion_of<Block>, 128, 2>>,
                     nn::named<names::layer3, stage<Block, B3, 128 * expansion_of<Block>, 256, 2>>,
                     nn::named<names::layer4, stage<Block, B4, 256 * expansion_of<Block>, 512, 2>>,
                     nn::named<names::avgpool, nn::global_avg_pool>> {
  static_assert(B1 > 0 && B2 > 0 && B3 > 0 && B4 > 0, "arcnet::models::resnet: every stage needs at least one block");
  static constexpr int feature_dim = 512 * expansion_of<Block>;
  /// The name of the last batch norm of a block ("bn3" or "bn2"), for zero_init_residual.
  static constexpr char const* last_bn = expansion_of<Block> == 4 ? "bn3" : "bn2";
};

struct resnet18 : resnet<basic_block, 2, 2, 2, 2> {};
struct resnet34 : resnet<basic_block, 3, 4, 6, 3> {};
struct resnet50 : resnet<bottleneck, 3, 4, 6, 3> {};
struct resnet101 : resnet<bottleneck, 3, 4, 23, 3> {};
struct resnet152 : resnet<bottleneck, 3, 8, 36, 3> {};

/// Sets the weight of the last batch norm in every residual block to 0 (torchvision's
/// zero_init_residual), so that each block starts as the identity.
template <class Net, class Module>
void zero_init_residual(Module& m) {
  std::string suffix = std::string(".") + Net::last_bn + ".weight";
  m.for_each_parameter([&](std::string const& name, auto& p, nn::param_layout) {
    bool in_block = name.rfind("layer", 0) == 0;
    if (in_block && name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
      p.value_mut().fill_zero();
  });
}

}  // namespace arcnet::models
