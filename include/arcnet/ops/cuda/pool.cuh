#pragma once
// CUDA backend of ops/pool.hpp, on gpu::stream(): one thread per output element forward (the
// window loops of the CPU backend, same order, same NaN and tie rules), and backward written
// as gathers, one thread per input element summing, in the CPU's order, the outputs whose window
// holds it, so that no two threads write the same element and the result has the same bits on
// every run (no float atomics). max_backward is not given the window geometry (the facade passes
// only the shapes), so it first finds, from the argmax itself, which output rows and columns
// can point at each input row and column (integer min/max reductions), then gathers over those.
// Global average pooling is a two-stage column sum per image, in double. bf16 tensors are
// pooled in float (compute_t), each result rounded to bf16 once.
#include <algorithm>
#include <cmath>

#include "arcnet/core/cuda.hpp"
#include "arcnet/core/tensor.hpp"

namespace arcnet::ops {

namespace cuda_kernels {

/// pool_impl<cpu>::window_of: input rows [begin, end) of output o's window, and the extent that
/// count_include_pad counts (clipped at the far padding edge only).
struct pool_window {
  index_t begin, end, padded_extent;
};
__host__ __device__ inline pool_window pool_window_of(index_t o, index_t stride, index_t pad, index_t kernel,
                                                      index_t in) {
  index_t const start = o * stride - pad;
  index_t const stop = start + kernel < in + pad ? start + kernel : in + pad;
  return {start > 0 ? start : 0, stop < in ? stop : in, stop - start};
}

/// pool_impl<cpu>::avg_divisor.
template <class T>
__host__ __device__ inline T pool_avg_scale(bool count_include_pad, pool_window const& wh, pool_window const& ww) {
  index_t const count = count_include_pad ? wh.padded_extent * ww.padded_extent
                                          : (wh.end - wh.begin) * (ww.end - ww.begin);
  return T(1) / static_cast<T>(count);
}

/// Max pooling of output element o = ((n * Ho + oh) * Wo + ow) * C + c: the first maximum in
/// row-major window order; NaN wins; idx (may be null) = ih * W + iw, the window's first
/// position when nothing beats -inf.
template <class T>
__host__ __device__ inline void pool_max_forward_item(detail::pool2d_geometry const& g, T const* x, T* y, index_t* idx,
                                                      index_t o) {
  index_t const c = g.c, ch = o % c, t = o / c;
  index_t const ow = t % g.wo, u = t / g.wo, oh = u % g.ho, n = u / g.ho;
  pool_window const wh = pool_window_of(oh, g.stride_h, g.pad_h, g.kernel_h, g.h);
  pool_window const ww = pool_window_of(ow, g.stride_w, g.pad_w, g.kernel_w, g.w);
  using C = compute_t<T>;
  C best = -static_cast<C>(INFINITY);  // (numeric_limits is host-only without --expt-relaxed-constexpr)
  index_t pos = wh.begin * g.w + ww.begin;
  for (index_t ih = wh.begin; ih < wh.end; ++ih)
    for (index_t iw = ww.begin; iw < ww.end; ++iw) {
      C const v = convert<C>(x[((n * g.h + ih) * g.w + iw) * c + ch]);
      if (v > best || v != v) best = v, pos = ih * g.w + iw;
    }
  y[o] = convert<T>(best);
  if (idx) idx[o] = pos;
}

/// Average pooling of output element o, summed in the CPU's order, then scaled.
template <class T>
__host__ __device__ inline T pool_avg_forward_item(detail::pool2d_geometry const& g, T const* x, index_t o) {
  using C = compute_t<T>;
  index_t const c = g.c, ch = o % c, t = o / c;
  index_t const ow = t % g.wo, u = t / g.wo, oh = u % g.ho, n = u / g.ho;
  pool_window const wh = pool_window_of(oh, g.stride_h, g.pad_h, g.kernel_h, g.h);
  pool_window const ww = pool_window_of(ow, g.stride_w, g.pad_w, g.kernel_w, g.w);
  C sum = C(0);
  for (index_t ih = wh.begin; ih < wh.end; ++ih)
    for (index_t iw = ww.begin; iw < ww.end; ++iw) sum += convert<C>(x[((n * g.h + ih) * g.w + iw) * c + ch]);
  return convert<T>(sum * pool_avg_scale<C>(g.count_include_pad, wh, ww));
}

/// Outputs along one axis whose window holds input position i: start = o*stride - pad <= i <
/// start + kernel (the far clip never cuts i off, since i < in <= in + pad), within [0, out).
__host__ __device__ inline void pool_windows_holding(index_t i, index_t stride, index_t pad, index_t kernel,
                                                     index_t out, index_t& lo, index_t& hi) {
  index_t const first = i + pad - kernel + 1;  // lowest start that still reaches i
  lo = first <= 0 ? 0 : (first + stride - 1) / stride;
  hi = (i + pad) / stride;  // i + pad >= 0
  if (hi > out - 1) hi = out - 1;
}

/// dx[i] plus scale * dy over every output whose window holds input element i, in the CPU's
/// order (oh, then ow).
template <class T>
__host__ __device__ inline void pool_avg_backward_item(detail::pool2d_geometry const& g, T const* dy, T* dx,
                                                       index_t i) {
  index_t const c = g.c, ch = i % c, t = i / c;
  index_t const iw = t % g.w, u = t / g.w, ih = u % g.h, n = u / g.h;
  index_t oh_lo, oh_hi, ow_lo, ow_hi;
  pool_windows_holding(ih, g.stride_h, g.pad_h, g.kernel_h, g.ho, oh_lo, oh_hi);
  pool_windows_holding(iw, g.stride_w, g.pad_w, g.kernel_w, g.wo, ow_lo, ow_hi);
  using C = compute_t<T>;
  C acc = convert<C>(dx[i]);
  for (index_t oh = oh_lo; oh <= oh_hi; ++oh) {
    pool_window const wh = pool_window_of(oh, g.stride_h, g.pad_h, g.kernel_h, g.h);
    for (index_t ow = ow_lo; ow <= ow_hi; ++ow) {
      pool_window const ww = pool_window_of(ow, g.stride_w, g.pad_w, g.kernel_w, g.w);
      acc += pool_avg_scale<C>(g.count_include_pad, wh, ww) * convert<C>(dy[((n * g.ho + oh) * g.wo + ow) * c + ch]);
    }
  }
  dx[i] = convert<T>(acc);
}

/// dx[i] plus dy over every output of the same image and channel whose argmax is input element
/// i, in the CPU's order (increasing output position). Only output rows [row_lo[ih], row_hi[ih]]
/// and columns [col_lo[iw], col_hi[iw]] can point at row ih and column iw (pool_argmax_ranges).
template <class T>
__host__ __device__ inline void pool_max_backward_item(detail::pool2d_geometry const& g, T const* dy,
                                                       index_t const* idx, index_t const* row_lo,
                                                       index_t const* row_hi, index_t const* col_lo,
                                                       index_t const* col_hi, T* dx, index_t i) {
  index_t const c = g.c, ch = i % c, t = i / c;
  index_t const iw = t % g.w, u = t / g.w, ih = u % g.h, n = u / g.h;
  index_t const pos = ih * g.w + iw;
  using C = compute_t<T>;
  C acc = convert<C>(dx[i]);
  for (index_t oh = row_lo[ih]; oh <= row_hi[ih]; ++oh)
    for (index_t ow = col_lo[iw]; ow <= col_hi[iw]; ++ow) {
      index_t const o = ((n * g.ho + oh) * g.wo + ow) * c + ch;
      if (idx[o] == pos) acc += convert<C>(dy[o]);
    }
  dx[i] = convert<T>(acc);
}

template <class T>
__global__ void pool_max_forward(detail::pool2d_geometry g, T const* x, T* y, index_t* idx, index_t count) {
  for (index_t o = blockIdx.x * index_t(blockDim.x) + threadIdx.x; o < count; o += index_t(gridDim.x) * blockDim.x)
    pool_max_forward_item(g, x, y, idx, o);
}

template <class T>
__global__ void pool_avg_forward(detail::pool2d_geometry g, T const* x, T* y, index_t count) {
  for (index_t o = blockIdx.x * index_t(blockDim.x) + threadIdx.x; o < count; o += index_t(gridDim.x) * blockDim.x)
    y[o] = pool_avg_forward_item(g, x, o);
}

template <class T>
__global__ void pool_avg_backward(detail::pool2d_geometry g, T const* dy, T* dx, index_t count) {
  for (index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x; i < count; i += index_t(gridDim.x) * blockDim.x)
    pool_avg_backward_item(g, dy, dx, i);
}

inline constexpr int pool_extent_threads = 256;

/// Block b < Ho: the least and greatest input row (argmax / W) that output row b points at, over
/// all images, columns and channels; block Ho + b, b < Wo: the same for input columns
/// (argmax % W) and output column b. ext = [row_min (Ho), row_max (Ho), col_min (Wo), col_max (Wo)].
/// Integer min / max: the result does not depend on the order. (A template, as every kernel in a
/// header, so that several translation units may instantiate it.)
template <class I>
__global__ void pool_argmax_extent(detail::pool2d_geometry g, I const* idx, I* ext) {
  __shared__ I lo[pool_extent_threads], hi[pool_extent_threads];
  index_t const c = g.c;
  for (index_t b = blockIdx.x; b < g.ho + g.wo; b += gridDim.x) {
    bool const row = b < g.ho;
    index_t const count = row ? g.n * g.wo * c : g.n * g.ho * c;
    I mn = I(0x7fffffffffffffff), mx = -1;
    for (index_t j = threadIdx.x; j < count; j += blockDim.x) {
      I v;
      if (row) {  // j = (n, ow, ch): a contiguous run of Wo * C per image
        index_t const per = g.wo * c, n = j / per;
        v = idx[(n * g.ho + b) * per + (j - n * per)] / g.w;
      } else {  // j = (n, oh, ch): a contiguous run of C per output row
        index_t const r = j / c;
        v = idx[(r * g.wo + (b - g.ho)) * c + (j - r * c)] % g.w;
      }
      mn = v < mn ? v : mn;
      mx = v > mx ? v : mx;
    }
    lo[threadIdx.x] = mn;
    hi[threadIdx.x] = mx;
    __syncthreads();
    for (int s = pool_extent_threads / 2; s > 0; s /= 2) {
      if (int(threadIdx.x) < s) {
        lo[threadIdx.x] = lo[threadIdx.x + s] < lo[threadIdx.x] ? lo[threadIdx.x + s] : lo[threadIdx.x];
        hi[threadIdx.x] = hi[threadIdx.x + s] > hi[threadIdx.x] ? hi[threadIdx.x + s] : hi[threadIdx.x];
      }
      __syncthreads();
    }
    if (threadIdx.x == 0) {
      if (row) {
        ext[b] = lo[0], ext[g.ho + b] = hi[0];
      } else {
        ext[2 * g.ho + (b - g.ho)] = lo[0], ext[2 * g.ho + g.wo + (b - g.ho)] = hi[0];
      }
    }
    __syncthreads();  // before the next b overwrites lo / hi
  }
}

/// From the extents: for input row ih, [row_lo, row_hi] = the outputs rows o with row_max[o] >= ih
/// (from the first) and row_min[o] <= ih (to the last); every output row pointing at ih lies in
/// it (empty: lo > hi). The same for columns, item i = h + iw.
/// ranges = [row_lo (H), row_hi (H), col_lo (W), col_hi (W)].
__host__ __device__ inline void pool_argmax_range_item(detail::pool2d_geometry const& g, index_t const* ext,
                                                       index_t* ranges, index_t i) {
  bool const row = i < g.h;
  index_t const at = row ? i : i - g.h, outs = row ? g.ho : g.wo;
  index_t const* mn = row ? ext : ext + 2 * g.ho;
  index_t const* mx = mn + outs;
  index_t lo = outs, hi = -1;
  for (index_t o = 0; o < outs; ++o) {
    if (lo == outs && mx[o] >= at) lo = o;
    if (mn[o] <= at) hi = o;
  }
  if (row) {
    ranges[at] = lo, ranges[g.h + at] = hi;
  } else {
    ranges[2 * g.h + at] = lo, ranges[2 * g.h + g.w + at] = hi;
  }
}

template <class I>
__global__ void pool_argmax_ranges(detail::pool2d_geometry g, I const* ext, I* ranges) {
  for (index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x; i < g.h + g.w; i += index_t(gridDim.x) * blockDim.x)
    pool_argmax_range_item(g, ext, ranges, i);
}

template <class T>
__global__ void pool_max_backward(detail::pool2d_geometry g, T const* dy, index_t const* idx, index_t const* ranges,
                                  T* dx, index_t count) {
  index_t const* row_lo = ranges;
  index_t const* row_hi = ranges + g.h;
  index_t const* col_lo = ranges + 2 * g.h;
  index_t const* col_hi = col_lo + g.w;
  for (index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x; i < count; i += index_t(gridDim.x) * blockDim.x)
    pool_max_backward_item(g, dy, idx, row_lo, row_hi, col_lo, col_hi, dx, i);
}

inline constexpr int pool_sum_cols = 32;  // channels per block of pool_column_partials (one warp)
inline constexpr int pool_sum_rows = 8;   // pixels read at once per block

/// Stage 1 of the global average: block (x, s, image) sums, in double, the pixels of segment s
/// of that image for 32 consecutive channels (a warp reads 32 contiguous values), each thread a
/// strided subset, then adds the 8 threads' sums in a fixed order.
/// partial[(image * segments + s) * C + c].
template <class T>
__global__ void pool_column_partials(T const* x, index_t images, index_t pixels, index_t c, index_t seg_pixels,
                                     double* partial) {
  __shared__ double sums[pool_sum_rows][pool_sum_cols];
  index_t const ch = index_t(blockIdx.x) * pool_sum_cols + threadIdx.x;
  index_t const p0 = index_t(blockIdx.y) * seg_pixels, p1 = p0 + seg_pixels < pixels ? p0 + seg_pixels : pixels;
  for (index_t b = blockIdx.z; b < images; b += gridDim.z) {
    double acc = 0;
    if (ch < c)
      for (index_t p = p0 + threadIdx.y; p < p1; p += pool_sum_rows) acc += convert<double>(x[(b * pixels + p) * c + ch]);
    sums[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && ch < c) {
      double s = 0;
      for (int t = 0; t < pool_sum_rows; ++t) s += sums[t][threadIdx.x];
      partial[(b * gridDim.y + blockIdx.y) * c + ch] = s;
    }
    __syncthreads();  // before the next image overwrites sums
  }
}

/// Stage 2: y[image, c] = (C) (sum over the segments, in order) * scale, as T.
template <class T, class C = compute_t<T>>
__global__ void pool_column_finish(double const* partial, index_t images, index_t segments, index_t c, C scale, T* y) {
  for (index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x; i < images * c; i += index_t(gridDim.x) * blockDim.x) {
    index_t const b = i / c, ch = i - b * c;
    double s = 0;
    for (index_t t = 0; t < segments; ++t) s += partial[(b * segments + t) * c + ch];
    y[i] = convert<T>(static_cast<C>(s) * scale);
  }
}

/// dx[t, c] += scale * dy[t / pixels, c] over the N * pixels rows t.
template <class T, class C = compute_t<T>>
__global__ void pool_global_avg_backward(T const* dy, T* dx, index_t pixels, index_t c, C scale, index_t count) {
  for (index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x; i < count; i += index_t(gridDim.x) * blockDim.x) {
    index_t const ch = i % c, t = i / c;
    dx[i] = convert<T>(convert<C>(dx[i]) + scale * convert<C>(dy[(t / pixels) * c + ch]));
  }
}

}  // namespace cuda_kernels

template <>
struct pool_impl<cuda> {
  /// y = window max; idx (device, may be null) = ih * W + iw of the first maximum. NaN wins.
  template <class T>
  static void max_forward(detail::pool2d_geometry const& g, T const* x, T* y, index_t* idx) {
    index_t const count = g.n * g.ho * g.wo * g.c;
    if (count <= 0) return;
    ARCNET_CUDA_KERNEL(gpu::blocks_for(count), gpu::block_threads, 0, gpu::stream(), cuda_kernels::pool_max_forward)(
        g, x, y, idx, count);
    ARCNET_CUDA_LAUNCH_CHECK("pool_max_forward");
  }

  /// dx[n, idx, c] += dy[n, o, c]. g holds only the shapes (n, h, w, c, ho, wo), not the window.
  template <class T>
  static void max_backward(detail::pool2d_geometry const& g, T const* dy, index_t const* idx, T* dx) {
    using namespace cuda_kernels;
    index_t const count = g.n * g.h * g.w * g.c;
    if (count <= 0 || g.ho * g.wo <= 0) return;
    auto ext = tensor<index_t, cuda>::uninitialized(shape{2 * (g.ho + g.wo)});
    auto ranges = tensor<index_t, cuda>::uninitialized(shape{2 * (g.h + g.w)});
    unsigned const extent_blocks = static_cast<unsigned>(std::min<index_t>(g.ho + g.wo, 65535));
    ARCNET_CUDA_KERNEL(extent_blocks, pool_extent_threads, 0, gpu::stream(), pool_argmax_extent)(g, idx, ext.data());
    ARCNET_CUDA_LAUNCH_CHECK("pool_argmax_extent");
    ARCNET_CUDA_KERNEL(gpu::blocks_for(g.h + g.w), gpu::block_threads, 0, gpu::stream(), pool_argmax_ranges)(
        g, ext.data(), ranges.data());
    ARCNET_CUDA_LAUNCH_CHECK("pool_argmax_ranges");
    ARCNET_CUDA_KERNEL(gpu::blocks_for(count), gpu::block_threads, 0, gpu::stream(), pool_max_backward)(
        g, dy, idx, ranges.data(), dx, count);
    ARCNET_CUDA_LAUNCH_CHECK("pool_max_backward");
  }

  /// y = window mean; the divisor follows count_include_pad.
  template <class T>
  static void avg_forward(detail::pool2d_geometry const& g, T const* x, T* y) {
    index_t const count = g.n * g.ho * g.wo * g.c;
    if (count <= 0) return;
    ARCNET_CUDA_KERNEL(gpu::blocks_for(count), gpu::block_threads, 0, gpu::stream(), cuda_kernels::pool_avg_forward)(
        g, x, y, count);
    ARCNET_CUDA_LAUNCH_CHECK("pool_avg_forward");
  }

  /// dx[window] += dy / divisor, gathered per input element.
  template <class T>
  static void avg_backward(detail::pool2d_geometry const& g, T const* dy, T* dx) {
    index_t const count = g.n * g.h * g.w * g.c;
    if (count <= 0) return;
    ARCNET_CUDA_KERNEL(gpu::blocks_for(count), gpu::block_threads, 0, gpu::stream(), cuda_kernels::pool_avg_backward)(
        g, dy, dx, count);
    ARCNET_CUDA_LAUNCH_CHECK("pool_avg_backward");
  }

  /// y[n, c] = mean_p x[n, p, c] over the p < pixels positions of each image (summed in double).
  template <class T>
  static void global_avg_forward(index_t n, index_t pixels, index_t c, T const* x, T* y) {
    using namespace cuda_kernels;
    if (n <= 0 || c <= 0) return;
    index_t const seg = std::max<index_t>(64, (pixels + 255) / 256);  // at most 256 segments
    index_t const segments = std::max<index_t>(1, (pixels + seg - 1) / seg);
    auto partial = tensor<double, cuda>::uninitialized(shape{n, segments, c});
    dim3 const grid(static_cast<unsigned>((c + pool_sum_cols - 1) / pool_sum_cols), static_cast<unsigned>(segments),
                    static_cast<unsigned>(std::min<index_t>(n, 65535)));
    ARCNET_CUDA_KERNEL(grid, dim3(pool_sum_cols, pool_sum_rows), 0, gpu::stream(), pool_column_partials)(
        x, n, pixels, c, seg, partial.data());
    ARCNET_CUDA_LAUNCH_CHECK("pool_column_partials");
    compute_t<T> const scale = compute_t<T>(1) / static_cast<compute_t<T>>(pixels);
    ARCNET_CUDA_KERNEL(gpu::blocks_for(n * c), gpu::block_threads, 0, gpu::stream(), pool_column_finish<T>)(
        partial.data(), n, segments, c, scale, y);
    ARCNET_CUDA_LAUNCH_CHECK("pool_column_finish");
  }

  /// dx[n, p, c] += dy[n, c] / pixels.
  template <class T>
  static void global_avg_backward(index_t n, index_t pixels, index_t c, T const* dy, T* dx) {
    index_t const count = n * pixels * c;
    if (count <= 0) return;
    compute_t<T> const scale = compute_t<T>(1) / static_cast<compute_t<T>>(pixels);
    ARCNET_CUDA_KERNEL(gpu::blocks_for(count), gpu::block_threads, 0, gpu::stream(),
                       cuda_kernels::pool_global_avg_backward<T>)(
        dy, dx, pixels, c, scale, count);
    ARCNET_CUDA_LAUNCH_CHECK("pool_global_avg_backward");
  }
};

}  // namespace arcnet::ops
