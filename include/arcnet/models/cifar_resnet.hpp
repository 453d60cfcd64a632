#pragma once
// CIFAR-style ResNets (He et al. 2016, section 4.2) for small images such as Fashion-MNIST's
// 28x28 or CIFAR's 32x32: a 3x3 stride-1 stem, no max-pool, three stages of basic blocks at
// widths W, 2W, 4W (strides 1, 2, 2) and a global average pool: depth = 6 * blocks + 2.
// ResNet-20 (W = 16) costs about 0.03 GMAC per 28x28 image. Parameter names follow the
// ImageNet ResNets (conv1, bn1, layer1.0.conv1, ..., layer3.N.bn2), so the same tools apply.
#include "arcnet/models/resnet.hpp"

namespace arcnet::models {

/// (N, H, W, InChannels) -> (N, 4 * Width): Blocks basic blocks per stage.
template <int Blocks, int Width = 16, int InChannels = 3>
struct cifar_resnet
    : nn::sequential<nn::named<names::conv1, nn::conv2d<InChannels, Width, 3, 1, 1>>,
                     nn::named<names::bn1, nn::batch_norm<Width>>, nn::named<names::relu, nn::relu>,
                     nn::named<names::layer1, stage<basic_block, Blocks, Width, Width, 1>>,
                     nn::named<names::layer2, stage<basic_block, Blocks, Width, 2 * Width, 2>>,
                     nn::named<names::layer3, stage<basic_block, Blocks, 2 * Width, 4 * Width, 2>>,
                     nn::named<names::avgpool, nn::global_avg_pool>> {
  static_assert(Blocks > 0 && Width > 0, "arcnet::models::cifar_resnet: needs at least one block and a positive width");
  static constexpr int feature_dim = 4 * Width;
  static constexpr int depth = 6 * Blocks + 2;
  static constexpr char const* last_bn = "bn2";
};

struct cifar_resnet8 : cifar_resnet<1> {};
struct cifar_resnet14 : cifar_resnet<2> {};
struct cifar_resnet20 : cifar_resnet<3> {};
struct cifar_resnet32 : cifar_resnet<5> {};
struct cifar_resnet56 : cifar_resnet<9> {};

}  // namespace arcnet::models
