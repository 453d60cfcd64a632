#pragma once
// bfloat16 as bits (the upper half of a float32): the exact conversion to float and the rounding
// from float (to nearest even; a NaN stays a NaN). Host and device: checkpoints
// (io/detail/dtype.hpp) and the CUDA backend's bf16 operands (ops/cuda/conv2d_cudnn.cuh) share it.
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__) && !defined(ARCNET_CUDA_EMULATOR)
#define ARCNET_HOST_DEVICE __host__ __device__
#else
#define ARCNET_HOST_DEVICE
#endif

namespace arcnet {

ARCNET_HOST_DEVICE inline float bfloat16_to_float(std::uint16_t b) {
  std::uint32_t const bits = static_cast<std::uint32_t>(b) << 16;
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

ARCNET_HOST_DEVICE inline std::uint16_t float_to_bfloat16(float value) {
  std::uint32_t f;
  memcpy(&f, &value, sizeof f);
  if ((f & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((f >> 16) | 0x40u);
  f += 0x7fffu + ((f >> 16) & 1u);
  return static_cast<std::uint16_t>(f >> 16);
}

}  // namespace arcnet
