#pragma once
// CPU backend of ops/pool.hpp: plain loops over NHWC, vectorised along the channels; OpenMP over
// output rows (N * Ho) forward and over images backward (windows overlap, images do not).
#include <algorithm>
#include <limits>

#include "arcnet/core/tensor.hpp"

namespace arcnet::ops {

template <>
struct pool_impl<cpu> {
  static constexpr index_t parallel_threshold = 1 << 15;

  /// Window rows [begin, end) inside the input, and the extent counted by count_include_pad
  /// (clipped at the far padding edge only, as PyTorch does).
  struct window {
    index_t begin, end, padded_extent;
  };
  static window window_of(index_t o, index_t stride, index_t pad, index_t kernel, index_t in) {
    index_t start = o * stride - pad;
    index_t stop = std::min(start + kernel, in + pad);
    return {std::max<index_t>(start, 0), std::min(stop, in), stop - start};
  }

  /// y = window max; idx (may be null) = ih * W + iw of the first maximum. NaN wins, like PyTorch.
  template <class T>
  static void max_forward(detail::pool2d_geometry const& g, T const* x, T* y, index_t* idx) {
    index_t const c = g.c;
#pragma omp parallel for schedule(static) if (g.n * g.ho * g.wo * c * g.kernel_h * g.kernel_w > parallel_threshold)
    for (index_t t = 0; t < g.n * g.ho; ++t) {
      index_t n = t / g.ho, oh = t % g.ho;
      window wh = window_of(oh, g.stride_h, g.pad_h, g.kernel_h, g.h);
      for (index_t ow = 0; ow < g.wo; ++ow) {
        window ww = window_of(ow, g.stride_w, g.pad_w, g.kernel_w, g.w);
        index_t out = (t * g.wo + ow) * c;
        T* yo = y + out;
        std::fill(yo, yo + c, -std::numeric_limits<T>::infinity());
        if (idx) std::fill(idx + out, idx + out + c, wh.begin * g.w + ww.begin);
        for (index_t ih = wh.begin; ih < wh.end; ++ih)
          for (index_t iw = ww.begin; iw < ww.end; ++iw) {
            T const* xs = x + ((n * g.h + ih) * g.w + iw) * c;
            if (idx) {
              index_t pos = ih * g.w + iw;
              index_t* io = idx + out;
              for (index_t ch = 0; ch < c; ++ch) {
                T v = xs[ch];
                if (v > yo[ch] || v != v) yo[ch] = v, io[ch] = pos;
              }
            } else {
              for (index_t ch = 0; ch < c; ++ch) {
                T v = xs[ch];
                yo[ch] = (v > yo[ch] || v != v) ? v : yo[ch];
              }
            }
          }
      }
    }
  }

  /// dx[n, idx, c] += dy[n, o, c].
  template <class T>
  static void max_backward(detail::pool2d_geometry const& g, T const* dy, index_t const* idx, T* dx) {
    index_t const c = g.c, per_out = g.ho * g.wo * c;
#pragma omp parallel for schedule(static) if (g.n * per_out > parallel_threshold)
    for (index_t n = 0; n < g.n; ++n) {
      T* dxn = dx + n * g.h * g.w * c;
      for (index_t o = 0; o < g.ho * g.wo; ++o) {
        index_t at = n * per_out + o * c;
        for (index_t ch = 0; ch < c; ++ch) dxn[idx[at + ch] * c + ch] += dy[at + ch];
      }
    }
  }

  template <class T>
  static T avg_divisor(detail::pool2d_geometry const& g, window const& wh, window const& ww) {
    index_t count = g.count_include_pad ? wh.padded_extent * ww.padded_extent
                                        : (wh.end - wh.begin) * (ww.end - ww.begin);
    return T(1) / static_cast<T>(count);
  }

  /// y = window mean.
  template <class T>
  static void avg_forward(detail::pool2d_geometry const& g, T const* x, T* y) {
    index_t const c = g.c;
#pragma omp parallel for schedule(static) if (g.n * g.ho * g.wo * c * g.kernel_h * g.kernel_w > parallel_threshold)
    for (index_t t = 0; t < g.n * g.ho; ++t) {
      index_t n = t / g.ho, oh = t % g.ho;
      window wh = window_of(oh, g.stride_h, g.pad_h, g.kernel_h, g.h);
      for (index_t ow = 0; ow < g.wo; ++ow) {
        window ww = window_of(ow, g.stride_w, g.pad_w, g.kernel_w, g.w);
        T* yo = y + (t * g.wo + ow) * c;
        std::fill(yo, yo + c, T(0));
        for (index_t ih = wh.begin; ih < wh.end; ++ih)
          for (index_t iw = ww.begin; iw < ww.end; ++iw) {
            T const* xs = x + ((n * g.h + ih) * g.w + iw) * c;
            for (index_t ch = 0; ch < c; ++ch) yo[ch] += xs[ch];
          }
        T scale = avg_divisor<T>(g, wh, ww);
        for (index_t ch = 0; ch < c; ++ch) yo[ch] *= scale;
      }
    }
  }

  /// dx[window] += dy / divisor.
  template <class T>
  static void avg_backward(detail::pool2d_geometry const& g, T const* dy, T* dx) {
    index_t const c = g.c;
#pragma omp parallel for schedule(static) if (g.n * g.ho * g.wo * c * g.kernel_h * g.kernel_w > parallel_threshold)
    for (index_t n = 0; n < g.n; ++n)
      for (index_t oh = 0; oh < g.ho; ++oh) {
        window wh = window_of(oh, g.stride_h, g.pad_h, g.kernel_h, g.h);
        for (index_t ow = 0; ow < g.wo; ++ow) {
          window ww = window_of(ow, g.stride_w, g.pad_w, g.kernel_w, g.w);
          T const* go = dy + ((n * g.ho + oh) * g.wo + ow) * c;
          T scale = avg_divisor<T>(g, wh, ww);
          for (index_t ih = wh.begin; ih < wh.end; ++ih)
            for (index_t iw = ww.begin; iw < ww.end; ++iw) {
              T* d = dx + ((n * g.h + ih) * g.w + iw) * c;
              for (index_t ch = 0; ch < c; ++ch) d[ch] += scale * go[ch];
            }
        }
      }
  }

  /// y[n, c] = mean_p x[n, p, c] over the p < pixels positions of each image.
  template <class T>
  static void global_avg_forward(index_t n, index_t pixels, index_t c, T const* x, T* y) {
#pragma omp parallel for schedule(static) if (n * pixels * c > parallel_threshold)
    for (index_t i = 0; i < n; ++i) {
      T* yo = y + i * c;
      std::fill(yo, yo + c, T(0));
      for (index_t p = 0; p < pixels; ++p) {
        T const* xs = x + (i * pixels + p) * c;
        for (index_t ch = 0; ch < c; ++ch) yo[ch] += xs[ch];
      }
      T scale = T(1) / static_cast<T>(pixels);
      for (index_t ch = 0; ch < c; ++ch) yo[ch] *= scale;
    }
  }

  /// dx[n, p, c] += dy[n, c] / pixels.
  template <class T>
  static void global_avg_backward(index_t n, index_t pixels, index_t c, T const* dy, T* dx) {
    T scale = T(1) / static_cast<T>(pixels);
#pragma omp parallel for schedule(static) if (n * pixels * c > parallel_threshold)
    for (index_t t = 0; t < n * pixels; ++t) {
      T const* go = dy + (t / pixels) * c;
      T* d = dx + t * c;
      for (index_t ch = 0; ch < c; ++ch) d[ch] += scale * go[ch];
    }
  }
};

}  // namespace arcnet::ops
