#pragma once
// Separable convolution resampling with Pillow's semantics (Resample.c, Pillow 9): the filter
// support grows with the shrink factor (antialiasing), weights are normalised per output pixel
// and rounded to 22-bit fixed point, the horizontal pass runs first into 8-bit rows that the
// vertical pass then combines. Results are bit-identical to Pillow's resize. Only the rows the
// vertical pass reads are filtered, each once, into a ring of a few rows that stays in cache.
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

/// One output pixel of the horizontal pass: n taps of weights k from the pixels at p -> out (C bytes).
template <int C>
void data_resample_pixel(std::uint8_t const* p, std::int32_t const* k, int n, std::uint8_t* out) {
  std::int32_t ss[C];
  for (int ch = 0; ch < C; ++ch) ss[ch] = 1 << (data_resample_bits - 1);
  for (int x = 0; x < n; ++x)
    for (int ch = 0; ch < C; ++ch) ss[ch] += p[x * C + ch] * k[x];
  for (int ch = 0; ch < C; ++ch) out[ch] = data_resample_clip8(ss[ch]);
}

/// Horizontal pass of one row, portable: in (the input row) -> out (out_w * C bytes).
template <int C>
void data_resample_row_scalar(std::uint8_t const* in, std::uint8_t* out, int out_w, data_resample_coeffs const& c) {
  for (int xx = 0; xx < out_w; ++xx)
    data_resample_pixel<C>(in + static_cast<std::size_t>(c.first[static_cast<std::size_t>(xx)]) * C,
                           &c.weights[static_cast<std::size_t>(xx) * c.ksize], c.count[static_cast<std::size_t>(xx)],
                           out + static_cast<std::size_t>(xx) * C);
}

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define ARCNET_DATA_RESAMPLE_X86 1
#define ARCNET_DATA_ALWAYS_INLINE __attribute__((always_inline))
/// Whether this CPU runs SSE4.1 (checked once).
inline bool data_cpu_has_sse41() {
  static bool const has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("sse4.1") != 0;
  }();
  return has;
}
/// Whether this CPU runs AVX2 (checked once).
inline bool data_cpu_has_avx2() {
  static bool const has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") != 0;
  }();
  return has;
}

/// Horizontal pass of one row with SSE4.1 for 3 or 4 channels (the same integers as the portable
/// pass, about 3x faster): one pixel's channels in the lanes of a register, so a tap is a 4-byte
/// load, a widening, a multiply and an add. With 3 channels a load also reads the next pixel's
/// first byte (an ignored lane): `avail` is how many bytes from `in` may be read, and a pixel
/// whose last load would pass it takes the portable pass. Compiled for SSE4.1 whatever the
/// translation unit's flags; call it only when data_cpu_has_sse41().
template <int C>
__attribute__((target("sse4.1"))) void data_resample_row_sse41(std::uint8_t const* in, std::size_t avail,
                                                               std::uint8_t* out, int out_w,
                                                               data_resample_coeffs const& c) {
  static_assert(C == 3 || C == 4, "data_resample_row_sse41: 3 or 4 channels");
  __m128i const rounding = _mm_set1_epi32(1 << (data_resample_bits - 1));
  for (int xx = 0; xx < out_w; ++xx) {
    auto const ux = static_cast<std::size_t>(xx);
    std::int32_t const* k = &c.weights[ux * c.ksize];
    std::size_t const first = static_cast<std::size_t>(c.first[ux]) * C;
    int const n = c.count[ux];
    if (first + static_cast<std::size_t>(n) * C + (4 - C) > avail) {  // at the buffer's end: the portable way
      data_resample_pixel<C>(in + first, k, n, out + ux * C);
      continue;
    }
    std::uint8_t const* p = in + first;
    __m128i acc = rounding;
    for (int x = 0; x < n; ++x) {
      std::int32_t bytes;
      std::memcpy(&bytes, p + x * C, 4);
      __m128i const pixel = _mm_cvtepu8_epi32(_mm_cvtsi32_si128(bytes));
      acc = _mm_add_epi32(acc, _mm_mullo_epi32(pixel, _mm_set1_epi32(k[x])));
    }
    // Pillow's clip8 (v >> 22 clamped to 0..255): arithmetic shift, then saturating packs.
    acc = _mm_srai_epi32(acc, data_resample_bits);
    auto const v = static_cast<std::uint32_t>(_mm_cvtsi128_si32(_mm_packus_epi16(_mm_packs_epi32(acc, acc), acc)));
    if (C == 4 || xx + 1 < out_w) {
      std::memcpy(out + ux * C, &v, 4);  // with 3 channels the 4th byte is the next pixel's, written next
    } else {
      out[ux * 3 + 0] = static_cast<std::uint8_t>(v);
      out[ux * 3 + 1] = static_cast<std::uint8_t>(v >> 8);
      out[ux * 3 + 2] = static_cast<std::uint8_t>(v >> 16);
    }
  }
}
#else
#define ARCNET_DATA_RESAMPLE_X86 0
#define ARCNET_DATA_ALWAYS_INLINE
#endif

/// Horizontal pass of one row: in (avail bytes readable from it) -> out, out_w * C bytes.
template <int C>
void data_resample_row(std::uint8_t const* in, [[maybe_unused]] std::size_t avail, std::uint8_t* out, int out_w,
                       data_resample_coeffs const& c) {
#if ARCNET_DATA_RESAMPLE_X86
  if constexpr (C == 3 || C == 4) {
    if (data_cpu_has_sse41()) return data_resample_row_sse41<C>(in, avail, out, out_w, c);
  }
#endif
  data_resample_row_scalar<C>(in, out, out_w, c);
}

/// Vertical pass of one output row: out[i] = clip8(half + sum over t < n of rows[t][i] * k[t]),
/// i < row_bytes; acc holds row_bytes int32. Contiguous inner loops, so they vectorise.
inline ARCNET_DATA_ALWAYS_INLINE void data_resample_column_portable(std::uint8_t const* const* rows,
                                                                     std::int32_t const* k, int n,
                                                                     std::size_t row_bytes, std::uint8_t* out,
                                                                     std::int32_t* acc) {
  for (std::size_t i = 0; i < row_bytes; ++i) acc[i] = 1 << (data_resample_bits - 1);
  for (int t = 0; t < n; ++t) {
    std::uint8_t const* in = rows[t];
    std::int32_t const w = k[t];
    for (std::size_t i = 0; i < row_bytes; ++i) acc[i] += in[i] * w;
  }
  for (std::size_t i = 0; i < row_bytes; ++i) out[i] = data_resample_clip8(acc[i]);
}

#if ARCNET_DATA_RESAMPLE_X86
/// The same loops vectorised for AVX2 (8 lanes and a 32-bit multiply; SSE2 has neither), whatever
/// the translation unit's flags; call it only when data_cpu_has_avx2().
__attribute__((target("avx2"))) inline void data_resample_column_avx2(std::uint8_t const* const* rows,
                                                                     std::int32_t const* k, int n,
                                                                     std::size_t row_bytes, std::uint8_t* out,
                                                                     std::int32_t* acc) {
  data_resample_column_portable(rows, k, n, row_bytes, out, acc);
}
#endif

/// Vertical pass of one output row (see data_resample_column_portable), on AVX2 when the CPU has it.
inline void data_resample_column(std::uint8_t const* const* rows, std::int32_t const* k, int n, std::size_t row_bytes,
                                 std::uint8_t* out, std::int32_t* acc) {
#if ARCNET_DATA_RESAMPLE_X86
  if (data_cpu_has_avx2()) return data_resample_column_avx2(rows, k, n, row_bytes, out, acc);
#endif
  data_resample_column_portable(rows, k, n, row_bytes, out, acc);
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
  out.pixels.resize(static_cast<std::size_t>(wh) * row_bytes);
  auto horizontal = [&](int y, std::uint8_t* dst) {  // input row y through the horizontal pass
    std::uint8_t const* in = img.row(y);
    std::size_t const avail = static_cast<std::size_t>(img.height - y) * img.stride();
    switch (C) {
      case 1: data_resample_row<1>(in, avail, dst, ww, ch); break;
      case 3: data_resample_row<3>(in, avail, dst, ww, ch); break;
      default: data_resample_row<4>(in, avail, dst, ww, ch); break;
    }
  };
  if (!need_v) {
    for (int y = 0; y < wh; ++y) horizontal(wy + y, out.row(y));
    return out;
  }
  // The vertical pass reads each output row's input rows: the image's own (window columns), or,
  // after a horizontal pass, a ring of the last cv.ksize filtered rows. Each input row is filtered
  // once, when first needed, and the ring stays in cache (no intermediate image).
  std::vector<std::int32_t> acc(row_bytes);
  std::vector<std::uint8_t const*> rows(static_cast<std::size_t>(cv.ksize));
  std::size_t const ring_rows = static_cast<std::size_t>(cv.ksize);
  std::vector<std::uint8_t> ring(need_h ? ring_rows * row_bytes : 0);
  int next = 0;  // the next input row for the horizontal pass
  auto input_row = [&](int y) -> std::uint8_t const* {
    if (!need_h) return img.row(y) + static_cast<std::size_t>(wx) * C;
    std::uint8_t* slot = ring.data() + static_cast<std::size_t>(y) % ring_rows * row_bytes;
    if (y >= next) {  // first rows are non-decreasing, so the rows still needed are the last n <= ksize
      horizontal(y, slot);
      next = y + 1;
    }
    return slot;
  };
  for (int yy = 0; yy < wh; ++yy) {
    int const first = cv.first[static_cast<std::size_t>(yy)], n = cv.count[static_cast<std::size_t>(yy)];
    for (int t = 0; t < n; ++t) rows[static_cast<std::size_t>(t)] = input_row(first + t);
    data_resample_column(rows.data(), &cv.weights[static_cast<std::size_t>(yy) * cv.ksize], n, row_bytes,
                         out.row(yy), acc.data());
  }
  return out;
}

}  // namespace arcnet::detail
