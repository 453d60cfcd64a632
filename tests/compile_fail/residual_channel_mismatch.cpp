// Must NOT compile: the body maps 64 -> 128 channels but the shortcut is the identity.
#include <arcnet/nn/batch_norm.hpp>
#include <arcnet/nn/conv2d.hpp>
#include <arcnet/nn/residual.hpp>

using bad = arcnet::nn::residual<arcnet::nn::sequential<arcnet::nn::conv2d<64, 128, 3>, arcnet::nn::batch_norm<128>>>;
bad::module<float, arcnet::cpu> model;
