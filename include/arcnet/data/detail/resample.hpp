#pragma once
// Separable convolution resampling with Pillow's semantics (Resample.c, Pillow 9): the filter
// support grows with the shrink factor (antialiasing), weights are normalised per output pixel
// and rounded to 22-bit fixed point, the horizontal pass runs first into an 8-bit intermediate
// holding only the rows the vertical pass reads. Results are bit-identical to Pillow's resize.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#endif

#include "arcnet/data/image.hpp"

namespace arcnet::detail {

inline constexpr int data_resample_bits = 32 - 8 - 2;  // Pillow's PRECISION_BITS

inline double data_filter_bilinear(double x) {
  x = std::abs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}
inline double data_filter_bicubic(double x) {  // Keys, a = -0.5, as Pillow
  constexpr double a = -0.5;
  x = std::abs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

/// Per output index: the first input index, the tap count and ksize fixed-point weights.
struct data_resample_coeffs {
  int ksize = 0;
  std::vector<int> first, count;
  std::vector<std::int32_t> weights;  // out_size * ksize
};

/// Pillow's precompute_coeffs + normalize_coeffs_8bpc for input [in0, in1) of in_size -> out_size.
inline data_resample_coeffs data_resample_precompute(int in_size, double in0, double in1, int out_size, bool bicubic) {
  double const scale = (in1 - in0) / out_size;
  double const filterscale = scale < 1.0 ? 1.0 : scale;
  double const support = (bicubic ? 2.0 : 1.0) * filterscale;
  data_resample_coeffs c;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.first.resize(static_cast<std::size_t>(out_size));
  c.count.resize(static_cast<std::size_t>(out_size));
  c.weights.assign(static_cast<std::size_t>(out_size) * c.ksize, 0);
  std::vector<double> k(static_cast<std::size_t>(c.ksize));
  double const ss = 1.0 / filterscale;
  for (int xx = 0; xx < out_size; ++xx) {
    double const center = in0 + (xx + 0.5) * scale;
    int xmin = static_cast<int>(center - support + 0.5);  // truncation toward zero, as Pillow's (int)
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    if (xmax > c.ksize) xmax = c.ksize;  // cannot happen for valid boxes; keeps indexing in bounds
    if (xmax < 0) xmax = 0;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      double const w = bicubic ? data_filter_bicubic((x + xmin - center + 0.5) * ss)
                               : data_filter_bilinear((x + xmin - center + 0.5) * ss);
      k[static_cast<std::size_t>(x)] = w;
      ww += w;
    }
    std::int32_t* out = &c.weights[static_cast<std::size_t>(xx) * c.ksize];
    for (int x = 0; x < xmax; ++x) {
      double const w = ww != 0.0 ? k[static_cast<std::size_t>(x)] / ww : k[static_cast<std::size_t>(x)];
      out[x] = static_cast<std::int32_t>(w < 0 ? -0.5 + w * (1 << data_resample_bits)
                                               : 0.5 + w * (1 << data_resample_bits));
    }
    c.first[static_cast<std::size_t>(xx)] = xmin;
    c.count[static_cast<std::size_t>(xx)] = xmax;
  }
  return c;
}

inline std::uint8_t data_resample_clip8(std::int32_t v) {
  if (v >= (1 << data_resample_bits << 8)) return 255;
  if (v <= 0) return 0;
  return static_cast<std::uint8_t>(v >> data_resample_bits);
}

/// Horizontal pass, portable: rows [row0, row0 + rows) of src (src_stride bytes apart) -> dst
/// (out_w * C bytes per row).
template <int C>
void data_resample_horizontal_scalar(std::uint8_t const* src, std::size_t src_stride, int row0, int rows,
                                     std::uint8_t* dst, int out_w, data_resample_coeffs const& c) {
  constexpr std::int32_t half = 1 << (data_resample_bits - 1);
  for (int y = 0; y < rows; ++y) {
    std::uint8_t const* in = src + static_cast<std::size_t>(row0 + y) * src_stride;
    std::uint8_t* out = dst + static_cast<std::size_t>(y) * out_w * C;
    for (int xx = 0; xx < out_w; ++xx) {
      std::int32_t const* k = &c.weights[static_cast<std::size_t>(xx) * c.ksize];
      std::uint8_t const* p = in + static_cast<std::size_t>(c.first[static_cast<std::size_t>(xx)]) * C;
      int const n = c.count[static_cast<std::size_t>(xx)];
      std::int32_t ss[C];
      for (int ch = 0; ch < C; ++ch) ss[ch] = half;
      for (int x = 0; x < n; ++x)
        for (int ch = 0; ch < C; ++ch) ss[ch] += p[x * C + ch] * k[x];
      for (int ch = 0; ch < C; ++ch) out[xx * C + ch] = data_resample_clip8(ss[ch]);
    }
  }
}

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define ARCNET_DATA_RESAMPLE_SSE41 1
/// Horizontal pass with SSE4.1 for 3 or 4 channels (same integers as the scalar pass): one pixel's
/// channels in the lanes of a register, so a tap is a 4-byte load, a widening, a multiply and an
/// add, about 3x faster. Compiled for SSE4.1 whatever the translation unit's flags; call it only
/// when data_cpu_has_sse41(). With 3 channels a load also reads the next pixel's first byte (an
/// ignored lane), so the buffer's last row (src_rows - 1), where it may lie past the end, is scalar.
template <int C>
__attribute__((target("sse4.1"))) void data_resample_horizontal_sse41(std::uint8_t const* src, std::size_t src_stride,
                                                                      int src_rows, int row0, int rows,
                                                                      std::uint8_t* dst, int out_w,
                                                                      data_resample_coeffs const& c) {
  static_assert(C == 3 || C == 4, "data_resample_horizontal_sse41: 3 or 4 channels");
  __m128i const rounding = _mm_set1_epi32(1 << (data_resample_bits - 1));
  for (int y = 0; y < rows; ++y) {
    std::uint8_t* out = dst + static_cast<std::size_t>(y) * out_w * C;
    if (C == 3 && row0 + y + 1 >= src_rows) {
      data_resample_horizontal_scalar<C>(src, src_stride, row0 + y, 1, out, out_w, c);
      continue;
    }
    std::uint8_t const* in = src + static_cast<std::size_t>(row0 + y) * src_stride;
    for (int xx = 0; xx < out_w; ++xx) {
      std::int32_t const* k = &c.weights[static_cast<std::size_t>(xx) * c.ksize];
      std::uint8_t const* p = in + static_cast<std::size_t>(c.first[static_cast<std::size_t>(xx)]) * C;
      int const n = c.count[static_cast<std::size_t>(xx)];
      __m128i acc = rounding;
      for (int x = 0; x < n; ++x) {
        std::int32_t bytes;
        std::memcpy(&bytes, p + x * C, 4);
        __m128i const pixel = _mm_cvtepu8_epi32(_mm_cvtsi32_si128(bytes));
        acc = _mm_add_epi32(acc, _mm_mullo_epi32(pixel, _mm_set1_epi32(k[x])));
      }
      // Pillow's clip8 (v >> 22 clamped to 0..255): arithmetic shift, then saturating packs.
      acc = _mm_srai_epi32(acc, data_resample_bits);
      __m128i const packed = _mm_packus_epi16(_mm_packs_epi32(acc, acc), acc);
      auto const v = static_cast<std::uint32_t>(_mm_cvtsi128_si32(packed));
      if constexpr (C == 4) {
        std::memcpy(out + xx * 4, &v, 4);
      } else {
        out[xx * 3 + 0] = static_cast<std::uint8_t>(v);
        out[xx * 3 + 1] = static_cast<std::uint8_t>(v >> 8);
        out[xx * 3 + 2] = static_cast<std::uint8_t>(v >> 16);
      }
    }
  }
}
/// Whether this CPU runs SSE4.1 (checked once).
inline bool data_cpu_has_sse41() {
  static bool const has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("sse4.1") != 0;
  }();
  return has;
}
#else
#define ARCNET_DATA_RESAMPLE_SSE41 0
#endif

/// Horizontal pass: rows [row0, row0 + rows) of src (src_rows rows, src_stride bytes apart) -> dst.
template <int C>
void data_resample_horizontal(std::uint8_t const* src, std::size_t src_stride, [[maybe_unused]] int src_rows, int row0,
                              int rows, std::uint8_t* dst, int out_w, data_resample_coeffs const& c) {
#if ARCNET_DATA_RESAMPLE_SSE41
  if constexpr (C == 3 || C == 4) {
    if (data_cpu_has_sse41())
      return data_resample_horizontal_sse41<C>(src, src_stride, src_rows, row0, rows, dst, out_w, c);
  }
#endif
  data_resample_horizontal_scalar<C>(src, src_stride, row0, rows, dst, out_w, c);
}

#if ARCNET_DATA_RESAMPLE_SSE41
#define ARCNET_DATA_ALWAYS_INLINE __attribute__((always_inline))
#else
#define ARCNET_DATA_ALWAYS_INLINE
#endif

/// Vertical pass: rows of row_bytes bytes, src_stride apart (c.first relative to src) -> dst, out_h
/// rows of row_bytes bytes. Row by row, so the inner loop is contiguous and vectorises.
inline ARCNET_DATA_ALWAYS_INLINE void data_resample_vertical_portable(std::uint8_t const* src, std::size_t src_stride,
                                                                       std::size_t row_bytes, std::uint8_t* dst,
                                                                       int out_h, data_resample_coeffs const& c,
                                                                       std::int32_t* acc) {
  constexpr std::int32_t half = 1 << (data_resample_bits - 1);
  for (int yy = 0; yy < out_h; ++yy) {
    std::int32_t const* k = &c.weights[static_cast<std::size_t>(yy) * c.ksize];
    int const first = c.first[static_cast<std::size_t>(yy)], n = c.count[static_cast<std::size_t>(yy)];
    for (std::size_t i = 0; i < row_bytes; ++i) acc[i] = half;
    for (int y = 0; y < n; ++y) {
      std::uint8_t const* in = src + static_cast<std::size_t>(first + y) * src_stride;
      std::int32_t const w = k[y];
      for (std::size_t i = 0; i < row_bytes; ++i) acc[i] += in[i] * w;
    }
    std::uint8_t* out = dst + static_cast<std::size_t>(yy) * row_bytes;
    for (std::size_t i = 0; i < row_bytes; ++i) out[i] = data_resample_clip8(acc[i]);
  }
}

#if ARCNET_DATA_RESAMPLE_SSE41
/// The same loops vectorised for AVX2 (8 lanes and a 32-bit multiply; SSE2 has neither), whatever
/// the translation unit's flags; call it only when data_cpu_has_avx2().
__attribute__((target("avx2"))) inline void data_resample_vertical_avx2(std::uint8_t const* src, std::size_t src_stride,
                                                                       std::size_t row_bytes, std::uint8_t* dst,
                                                                       int out_h, data_resample_coeffs const& c,
                                                                       std::int32_t* acc) {
  data_resample_vertical_portable(src, src_stride, row_bytes, dst, out_h, c, acc);
}
/// Whether this CPU runs AVX2 (checked once).
inline bool data_cpu_has_avx2() {
  static bool const has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") != 0;
  }();
  return has;
}
#endif

/// Vertical pass (see data_resample_vertical_portable), on AVX2 when the CPU has it.
inline void data_resample_vertical(std::uint8_t const* src, std::size_t src_stride, std::size_t row_bytes,
                                   std::uint8_t* dst, int out_h, data_resample_coeffs const& c) {
  std::vector<std::int32_t> acc(row_bytes);
#if ARCNET_DATA_RESAMPLE_SSE41
  if (data_cpu_has_avx2()) return data_resample_vertical_avx2(src, src_stride, row_bytes, dst, out_h, c, acc.data());
#endif
  data_resample_vertical_portable(src, src_stride, row_bytes, dst, out_h, c, acc.data());
}

/// The coefficients of outputs [first, first + n) only.
inline void data_resample_slice(data_resample_coeffs& c, int first, int n) {
  c.first.erase(c.first.begin(), c.first.begin() + first);
  c.first.resize(static_cast<std::size_t>(n));
  c.count.erase(c.count.begin(), c.count.begin() + first);
  c.count.resize(static_cast<std::size_t>(n));
  c.weights.erase(c.weights.begin(), c.weights.begin() + static_cast<std::ptrdiff_t>(first) * c.ksize);
  c.weights.resize(static_cast<std::size_t>(n) * c.ksize);
}

/// Pillow's Image.resize(size, filter, box) for an image with 1, 3 or 4 channels (no alpha
/// premultiplication: Pillow does that for RGBA, we treat the 4th channel like the others),
/// computed only inside the output window [wx, wx + ww) x [wy, wy + wh) (inside out_w x out_h;
/// ww, wh < 0: the whole output): the pixels of resizing then cropping, without the rest.
inline data::image data_resample(data::image const& img, double x0, double y0, double x1, double y1, int out_w,
                                 int out_h, bool bicubic, int wx = 0, int wy = 0, int ww = -1, int wh = -1) {
  int const C = img.channels;
  if (ww < 0) ww = out_w;
  if (wh < 0) wh = out_h;
  bool const need_h = out_w != img.width || x0 != 0 || x1 != out_w;
  bool const need_v = out_h != img.height || y0 != 0 || y1 != out_h;
  data::image out{ww, wh, C, {}};
  if (!need_h && !need_v) {  // a copy of the window
    out.pixels.reserve(static_cast<std::size_t>(ww) * wh * C);
    for (int y = wy; y < wy + wh; ++y)
      out.pixels.insert(out.pixels.end(), img.row(y) + static_cast<std::size_t>(wx) * C,
                        img.row(y) + static_cast<std::size_t>(wx + ww) * C);
    return out;
  }
  auto ch = data_resample_precompute(img.width, x0, x1, out_w, bicubic);
  auto cv = data_resample_precompute(img.height, y0, y1, out_h, bicubic);
  data_resample_slice(ch, wx, ww);
  data_resample_slice(cv, wy, wh);
  std::size_t const row_bytes = static_cast<std::size_t>(ww) * C;
  std::uint8_t const* src = img.pixels.data();
  std::size_t src_stride = img.stride();
  std::vector<std::uint8_t> temp;
  if (need_h) {
    // Only the input rows the vertical pass reads go through the horizontal pass.
    int const base = need_v ? cv.first.front() : wy;
    int const rows = need_v ? cv.first.back() + cv.count.back() - base : wh;
    if (need_v)
      for (auto& f : cv.first) f -= base;
    temp.resize(static_cast<std::size_t>(rows) * row_bytes);
    switch (C) {
      case 1: data_resample_horizontal<1>(src, src_stride, img.height, base, rows, temp.data(), ww, ch); break;
      case 3: data_resample_horizontal<3>(src, src_stride, img.height, base, rows, temp.data(), ww, ch); break;
      default: data_resample_horizontal<4>(src, src_stride, img.height, base, rows, temp.data(), ww, ch); break;
    }
    if (!need_v) {
      out.pixels = std::move(temp);
      return out;
    }
    src = temp.data();
    src_stride = row_bytes;
  } else {
    src += static_cast<std::size_t>(wx) * C;  // same columns as the input: the window's columns
  }
  out.pixels.resize(static_cast<std::size_t>(wh) * row_bytes);
  data_resample_vertical(src, src_stride, row_bytes, out.pixels.data(), wh, cv);
  return out;
}

}  // namespace arcnet::detail
