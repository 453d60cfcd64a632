#pragma once
// bfloat16 as bits (the upper half of a float32): the exact conversion to float and the rounding
// from float (to nearest even; a NaN stays a NaN). Host and device: checkpoints
// (io/detail/dtype.hpp) and the CUDA backend's bf16 operands (ops/cuda/conv2d_cudnn.cuh) share it.
// arcnet::bfloat16 is the element type of bf16 tensors (tensor<bfloat16, D>): a storage type, not
// an arithmetic one. Its conversions are explicit, so a kernel that would compute in bf16 by
// accident does not compile; compute_t<T> is the type to compute in (float for bf16).
#include <cstdint>
#include <cstring>
#include <type_traits>

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

struct bfloat16 {
  std::uint16_t bits;
  bfloat16() = default;  // trivial: device arrays of it need no constructor
  ARCNET_HOST_DEVICE explicit bfloat16(float f) : bits(float_to_bfloat16(f)) {}
  ARCNET_HOST_DEVICE explicit operator float() const { return bfloat16_to_float(bits); }
  ARCNET_HOST_DEVICE friend bool operator==(bfloat16 a, bfloat16 b) { return a.bits == b.bits; }
  ARCNET_HOST_DEVICE friend bool operator!=(bfloat16 a, bfloat16 b) { return a.bits != b.bits; }
};
static_assert(sizeof(bfloat16) == 2 && std::is_trivially_copyable_v<bfloat16>, "bfloat16: 2 bytes, copied as bits");

/// The type element-wise math on T is done in: T itself, float for bfloat16.
template <class T>
struct compute_type {
  using type = T;
};
template <>
struct compute_type<bfloat16> {
  using type = float;
};
template <class T>
using compute_t = typename compute_type<T>::type;

/// x converted to U; bfloat16 goes through float (so double -> bf16 rounds twice, as PyTorch's
/// .to(torch.bfloat16) of a double tensor does not; differences are at most one bf16 ulp).
template <class U, class T>
ARCNET_HOST_DEVICE inline U convert(T x) {
  if constexpr (std::is_same_v<T, bfloat16> || std::is_same_v<U, bfloat16>)
    return static_cast<U>(static_cast<float>(x));
  else
    return static_cast<U>(x);
}

/// a + b for element type T, computed in compute_t<T> and rounded back.
template <class T>
ARCNET_HOST_DEVICE inline T element_add(T a, T b) {
  if constexpr (std::is_same_v<T, bfloat16>) return bfloat16(static_cast<float>(a) + static_cast<float>(b));
  else return a + b;
}

/// The element types a tensor may hold.
template <class T>
inline constexpr bool is_element_type_v = std::is_arithmetic_v<T> || std::is_same_v<T, bfloat16>;

}  // namespace arcnet
