#pragma once
// Element types found in checkpoints, and their exact conversion to float32 (half and
// bfloat16 included); float -> half / bfloat16 rounds to nearest even.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

#include "arcnet/core/bfloat16.hpp"
#include "arcnet/core/shape.hpp"
#include "arcnet/io/detail/binary.hpp"

namespace arcnet::detail {

enum class io_dtype : std::uint8_t { f32, f64, f16, bf16, i64, i32, i16, i8, u8, boolean };

inline std::size_t io_dtype_size(io_dtype d) {
  switch (d) {
    case io_dtype::f64: case io_dtype::i64: return 8;
    case io_dtype::f32: case io_dtype::i32: return 4;
    case io_dtype::f16: case io_dtype::bf16: case io_dtype::i16: return 2;
    default: return 1;
  }
}
/// PyTorch's name of the type, for messages.
inline char const* io_dtype_name(io_dtype d) {
  switch (d) {
    case io_dtype::f32: return "float32";
    case io_dtype::f64: return "float64";
    case io_dtype::f16: return "float16";
    case io_dtype::bf16: return "bfloat16";
    case io_dtype::i64: return "int64";
    case io_dtype::i32: return "int32";
    case io_dtype::i16: return "int16";
    case io_dtype::i8: return "int8";
    case io_dtype::u8: return "uint8";
    default: return "bool";
  }
}

/// IEEE binary16 -> float32, exact (subnormals, infinities and NaN payloads preserved).
inline float io_half_to_float(std::uint16_t h) {
  std::uint32_t const sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  std::uint32_t const exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  std::uint32_t bits;
  if (exp == 0) {
    float f = std::ldexp(static_cast<float>(mant), -24);  // zero or subnormal: mant * 2^-24, exact
    std::memcpy(&bits, &f, 4);
    bits |= sign;
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
/// float32 -> IEEE binary16, round to nearest even; overflow gives infinity, NaN stays NaN.
inline std::uint16_t io_float_to_half(float value) {
  std::uint32_t f;
  std::memcpy(&f, &value, 4);
  std::uint32_t const sign = f & 0x80000000u;
  f ^= sign;
  std::uint16_t out;
  if (f >= 0x47800000u) {  // >= 65536 (rounds to inf), inf or NaN
    out = f > 0x7f800000u ? static_cast<std::uint16_t>(0x7e00u | ((f >> 13) & 0x3ffu)) : std::uint16_t(0x7c00u);
  } else if (f < 0x38800000u) {  // below 2^-14: subnormal or zero; the FPU's rounding aligns the bits
    std::uint32_t const magic_bits = 0x3f000000u;  // 0.5f: 2^-1 puts the unit in the last place at 2^-24
    float magic, a;
    std::memcpy(&magic, &magic_bits, 4);
    std::memcpy(&a, &f, 4);
    a += magic;
    std::uint32_t ab;
    std::memcpy(&ab, &a, 4);
    out = static_cast<std::uint16_t>(ab - magic_bits);
  } else {
    std::uint32_t const odd = (f >> 13) & 1u;
    f += 0xc8000fffu + odd;  // rebias the exponent (-112 << 23, mod 2^32) and round to nearest even
    out = static_cast<std::uint16_t>(f >> 13);
  }
  return static_cast<std::uint16_t>(out | (sign >> 16));
}
/// Element `i` of an array of type D at p (little-endian; byte-swapped first when `swap`).
template <io_dtype D>
float io_decode(unsigned char const* p, std::uint64_t i, bool swap) {
  constexpr std::size_t n = D == io_dtype::f64 || D == io_dtype::i64   ? 8
                            : D == io_dtype::f32 || D == io_dtype::i32 ? 4
                            : D == io_dtype::f16 || D == io_dtype::bf16 || D == io_dtype::i16 ? 2
                                                                                               : 1;
  unsigned char b[n];
  std::memcpy(b, p + i * n, n);
  if constexpr (n > 1)  // (a one-byte type has no byte order; the loop would compare k < 0)
    if (swap)
      for (std::size_t k = 0; k < n / 2; ++k) std::swap(b[k], b[n - 1 - k]);
  if constexpr (D == io_dtype::f32) {
    float v;
    std::memcpy(&v, b, 4);
    return v;
  } else if constexpr (D == io_dtype::f64) {
    double v;
    std::memcpy(&v, b, 8);
    return static_cast<float>(v);
  } else if constexpr (D == io_dtype::f16) {
    std::uint16_t v;
    std::memcpy(&v, b, 2);
    return io_half_to_float(v);
  } else if constexpr (D == io_dtype::bf16) {
    std::uint16_t v;
    std::memcpy(&v, b, 2);
    return bfloat16_to_float(v);
  } else if constexpr (D == io_dtype::i64) {
    std::int64_t v;
    std::memcpy(&v, b, 8);
    return static_cast<float>(v);
  } else if constexpr (D == io_dtype::i32) {
    std::int32_t v;
    std::memcpy(&v, b, 4);
    return static_cast<float>(v);
  } else if constexpr (D == io_dtype::i16) {
    std::int16_t v;
    std::memcpy(&v, b, 2);
    return static_cast<float>(v);
  } else if constexpr (D == io_dtype::i8) {
    return static_cast<float>(static_cast<std::int8_t>(b[0]));
  } else if constexpr (D == io_dtype::u8) {
    return static_cast<float>(b[0]);
  } else {
    return b[0] != 0 ? 1.0f : 0.0f;
  }
}

/// Calls f(std::integral_constant<io_dtype, D>{}) for the run-time type d.
template <class F>
void io_visit_dtype(io_dtype d, F&& f) {
  using dt = io_dtype;
  switch (d) {
    case dt::f32: f(std::integral_constant<dt, dt::f32>{}); break;
    case dt::f64: f(std::integral_constant<dt, dt::f64>{}); break;
    case dt::f16: f(std::integral_constant<dt, dt::f16>{}); break;
    case dt::bf16: f(std::integral_constant<dt, dt::bf16>{}); break;
    case dt::i64: f(std::integral_constant<dt, dt::i64>{}); break;
    case dt::i32: f(std::integral_constant<dt, dt::i32>{}); break;
    case dt::i16: f(std::integral_constant<dt, dt::i16>{}); break;
    case dt::i8: f(std::integral_constant<dt, dt::i8>{}); break;
    case dt::u8: f(std::integral_constant<dt, dt::u8>{}); break;
    case dt::boolean: f(std::integral_constant<dt, dt::boolean>{}); break;
  }
}

/// Converts n contiguous elements of type d at src to float.
inline void io_decode_contiguous(io_dtype d, unsigned char const* src, std::uint64_t n, float* dst, bool swap) {
  if (d == io_dtype::f32 && !swap) {
    if (n > 0) std::memcpy(dst, src, static_cast<std::size_t>(n) * 4);
    return;
  }
  io_visit_dtype(d, [&](auto tag) {
    for (std::uint64_t i = 0; i < n; ++i) dst[i] = io_decode<decltype(tag)::value>(src, i, swap);
  });
}

/// Gathers the strided view (sizes, strides, offset, in elements) of an array of type d at src
/// into the row-major dst. The caller has checked that every index lies inside the array.
inline void io_decode_strided(io_dtype d, unsigned char const* src, std::uint64_t offset,
                              std::vector<index_t> const& sizes, std::vector<index_t> const& strides, float* dst,
                              bool swap) {
  std::uint64_t numel = 1;
  for (auto s : sizes) numel *= static_cast<std::uint64_t>(s);
  if (numel == 0) return;
  bool contiguous = true;
  index_t expect = 1;
  for (std::size_t k = sizes.size(); k-- > 0;) {
    if (sizes[k] != 1 && strides[k] != expect) contiguous = false;
    expect *= sizes[k];
  }
  if (contiguous) {
    io_decode_contiguous(d, src + offset * io_dtype_size(d), numel, dst, swap);
    return;
  }
  io_visit_dtype(d, [&](auto tag) {
    std::size_t const rank = sizes.size();
    std::vector<index_t> idx(rank, 0);
    std::uint64_t at = offset;
    for (std::uint64_t n = 0; n < numel; ++n) {
      dst[n] = io_decode<decltype(tag)::value>(src, at, swap);
      for (std::size_t k = rank; k-- > 0;) {  // odometer: advance the last axis, carry leftwards
        if (++idx[k] < sizes[k]) {
          at += static_cast<std::uint64_t>(strides[k]);
          break;
        }
        at -= static_cast<std::uint64_t>((sizes[k] - 1) * strides[k]);
        idx[k] = 0;
      }
    }
  });
}

}  // namespace arcnet::detail
