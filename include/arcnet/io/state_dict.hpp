#pragma once
// state_dict: a checkpoint in memory, shared by the safetensors and .pth readers and writers.
#include <map>
#include <string>

#include "arcnet/core/tensor.hpp"

namespace arcnet::io {

/// A checkpoint in memory: hierarchical name -> float32 CPU tensor in PyTorch layout (conv
/// weights OIHW, linear weights (out, in)), ordered by name.
using state_dict = std::map<std::string, tensor<float, cpu>>;

}  // namespace arcnet::io
