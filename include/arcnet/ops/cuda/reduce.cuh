#pragma once
// CUDA backend of ops/reduce.hpp. The input is seen as (outer, r, inner), as on the CPU, and
// the middle axis is reduced. Two layouts, two kernels:
//  - inner > 1 (columns): one thread per output (o, i) adds its r values in order: neighbouring
//    threads read neighbouring addresses, and the order is the CPU's.
//  - inner == 1 (rows) of 64 values or more: one block per output, its threads split the row and a tree adds up.
// When that leaves too few outputs to fill the device (a sum over a long axis into a few
// values), r is cut into chunks: a first pass writes one partial sum per chunk, a second sums
// the partials. The chunking depends on the shape only, so results are deterministic: no float
// atomics anywhere. Sums accumulate in T, as the CPU backend does. max keeps the first index that
// attains the maximum, as the CPU's strict `v > best` scan does (NaNs are never picked).
#include <algorithm>
#include <limits>
#include <vector>

#include "arcnet/core/cuda.hpp"
#include "arcnet/core/tensor.hpp"
#include "arcnet/ops/cuda/elementwise.cuh"

namespace arcnet::ops {

namespace cuda_kernels {

/// part[o, c, i] = scale * sum_{k in chunk c} x[o, k, i], chunk c = [c * len, min(r, (c + 1) * len)),
/// one thread per (o, c, i).
template <class T>
__global__ void rd_sum_columns(T const* x, T* part, index_t outer, index_t r, index_t inner, index_t len,
                               index_t chunks, T scale) {
  index_t const n = outer * chunks * inner;
  for (index_t t = blockIdx.x * index_t(blockDim.x) + threadIdx.x; t < n; t += index_t(gridDim.x) * blockDim.x) {
    index_t const i = t % inner, oc = t / inner;
    index_t const c = oc % chunks, o = oc / chunks;
    index_t const k0 = c * len, k1 = k0 + len < r ? k0 + len : r;
    T const* xs = x + (o * r) * inner + i;
    T acc = T(0);
    for (index_t k = k0; k < k1; ++k) acc += xs[k * inner];
    part[t] = acc * scale;
  }
}

/// part[o, c] = scale * sum_{k in chunk c} x[o, k] (inner == 1), one block per (o, c).
template <class T>
__global__ void rd_sum_rows(T const* x, T* part, index_t outer, index_t r, index_t len, index_t chunks, T scale) {
  index_t const n = outer * chunks;
  for (index_t b = blockIdx.x; b < n; b += gridDim.x) {
    index_t const c = b % chunks, o = b / chunks;
    index_t const k0 = c * len, k1 = k0 + len < r ? k0 + len : r;
    T const* xs = x + o * r;
    T acc = T(0);
    for (index_t k = k0 + threadIdx.x; k < k1; k += blockDim.x) acc += xs[k];
    acc = block_sum(acc);
    if (threadIdx.x == 0) part[b] = acc * scale;
  }
}

/// part[c] = sum over chunk c = [c * len, min(n, (c + 1) * len)) of double(x_i)^2, one block per chunk.
template <class T>
__global__ void rd_squares(T const* x, index_t n, index_t len, index_t chunks, double* part) {
  for (index_t c = blockIdx.x; c < chunks; c += gridDim.x) {
    index_t const k0 = c * len, k1 = k0 + len < n ? k0 + len : n;
    double acc = 0;
    for (index_t k = k0 + threadIdx.x; k < k1; k += blockDim.x) acc += static_cast<double>(x[k]) * static_cast<double>(x[k]);
    acc = block_sum(acc);
    if (threadIdx.x == 0) part[c] = acc;
  }
}

/// dx[o, k, i] += scale * dy[o, i]
template <class T>
__global__ void rd_sum_backward(T const* dy, T* dx, index_t n, index_t r, index_t inner, T scale) {
  for (index_t t = blockIdx.x * index_t(blockDim.x) + threadIdx.x; t < n; t += index_t(gridDim.x) * blockDim.x) {
    index_t const i = t % inner, o = t / (r * inner);
    dx[t] += mul_rn(scale, dy[o * inner + i]);  // no FMA: as the CPU rounds
  }
}

/// y[o, i] = max_k x[o, k, i] and its first index, one thread per (o, i): the CPU's scan.
template <class T>
__global__ void rd_max_columns(T const* x, T* y, index_t* arg, index_t outer, index_t r, index_t inner, T lowest) {
  index_t const n = outer * inner;
  for (index_t t = blockIdx.x * index_t(blockDim.x) + threadIdx.x; t < n; t += index_t(gridDim.x) * blockDim.x) {
    index_t const i = t % inner, o = t / inner;
    T const* xs = x + (o * r) * inner + i;
    T best = lowest;
    index_t at = 0;
    for (index_t k = 0; k < r; ++k) {
      T const v = xs[k * inner];
      if (v > best) best = v, at = k;
    }
    y[t] = best;
    arg[t] = at;
  }
}

/// (best, at) of two partial scans: the larger value, the smaller index on a tie. Unset partials
/// carry (lowest, r): a value never beaten by `>` and an index after every real one.
template <class T>
__device__ inline void rd_max_combine(T& best, index_t& at, T other_best, index_t other_at) {
  if (other_best > best || (other_best == best && other_at < at)) best = other_best, at = other_at;
}

/// The same for inner == 1, one block per row: each thread scans a strided part of the row in
/// order (first strict maximum), then a tree keeps the larger value, or the smaller index of
/// equal values: the row's first maximal index, as the sequential scan finds it. A row with no
/// value above `lowest` (all -inf or NaN) gets index 0, as on the CPU.
template <class T>
__global__ void rd_max_rows(T const* x, T* y, index_t* arg, index_t outer, index_t r, T lowest) {
  __shared__ T best_of[32];
  __shared__ index_t at_of[32];
  int const lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  for (index_t o = blockIdx.x; o < outer; o += gridDim.x) {
    T const* xs = x + o * r;
    T best = lowest;
    index_t at = r;
    for (index_t k = threadIdx.x; k < r; k += blockDim.x) {
      T const v = xs[k];
      if (v > best) best = v, at = k;
    }
    for (int off = 16; off > 0; off >>= 1) {
      T const ob = __shfl_down_sync(0xffffffffu, best, off);
      index_t const oa = __shfl_down_sync(0xffffffffu, at, off);
      rd_max_combine(best, at, ob, oa);
    }
    __syncthreads();  // the previous row's readers are done with best_of / at_of
    if (lane == 0) best_of[warp] = best, at_of[warp] = at;
    __syncthreads();
    if (warp == 0) {
      best = lane < warps ? best_of[lane] : lowest;
      at = lane < warps ? at_of[lane] : r;
      for (int off = 16; off > 0; off >>= 1) {
        T const ob = __shfl_down_sync(0xffffffffu, best, off);
        index_t const oa = __shfl_down_sync(0xffffffffu, at, off);
        rd_max_combine(best, at, ob, oa);
      }
      if (lane == 0) {
        y[o] = best;
        arg[o] = at < r && best > lowest ? at : 0;
      }
    }
  }
}

/// dx[o, arg[o, i], i] += dy[o, i]: every (o, i) owns a distinct element of dx.
template <class T>
__global__ void rd_max_backward(T const* dy, index_t const* arg, T* dx, index_t n, index_t r, index_t inner) {
  for (index_t t = blockIdx.x * index_t(blockDim.x) + threadIdx.x; t < n; t += index_t(gridDim.x) * blockDim.x) {
    index_t const i = t % inner, o = t / inner;
    dx[(o * r + arg[t]) * inner + i] += dy[t];
  }
}

}  // namespace cuda_kernels

template <>
struct reduce_impl<cuda> {
  /// Outputs below which a long reduction is split into chunks, and the chunk lengths.
  static constexpr index_t few_column_outputs = index_t(1) << 15;
  static constexpr index_t column_chunk = 256;
  static constexpr index_t few_row_outputs = 1024;
  /// Rows (inner == 1) shorter than this go to the column kernel: one thread per row wastes
  /// less than a block per row.
  static constexpr index_t min_row_length = 64;
  static constexpr index_t row_chunk = index_t(1) << 14;
  /// Blocks of the one-block-per-output kernels (they loop when there are more outputs).
  static constexpr index_t max_blocks = index_t(1) << 20;

  /// y[o, i] = scale * sum_r x[o, r, i]
  template <class T>
  static void sum(tensor<T, cuda> const& x, tensor<T, cuda>& y, index_t outer, index_t r, index_t inner, T scale) {
    index_t const outputs = outer * inner;
    if (outputs == 0) return;
    if (r == 0) {  // the CPU's zeros, scaled
      gpu::fill(y.data(), outputs, T(0) * scale);
      return;
    }
    if (inner == 1 && r >= min_row_length) {
      index_t const chunks = outer < few_row_outputs && r > row_chunk ? (r + row_chunk - 1) / row_chunk : 1;
      if (chunks == 1) return sum_rows(x.data(), y.data(), outer, r, r, 1, scale);
      auto part = tensor<T, cuda>::uninitialized(shape{outer, chunks});
      sum_rows(x.data(), part.data(), outer, r, row_chunk, chunks, T(1));
      return sum_rows(part.data(), y.data(), outer, chunks, chunks, 1, scale);
    }
    index_t const chunks = outputs < few_column_outputs && r > column_chunk ? (r + column_chunk - 1) / column_chunk : 1;
    if (chunks == 1) return sum_columns(x.data(), y.data(), outer, r, inner, r, 1, scale);
    auto part = tensor<T, cuda>::uninitialized(shape{outer, chunks, inner});
    sum_columns(x.data(), part.data(), outer, r, inner, column_chunk, chunks, T(1));
    sum_columns(part.data(), y.data(), outer, chunks, inner, chunks, 1, scale);
  }

  /// out[0] = sum_i double(x_i)^2 with `out` on the device, written without a host wait: chunk
  /// sums, then one block over them (a fixed order).
  template <class T>
  static void sum_of_squares(T const* x, index_t n, double* out) {
    if (n == 0) return gpu::fill(out, 1, 0.0);
    index_t const chunks = (n + row_chunk - 1) / row_chunk;
    auto part = tensor<double, cuda>::uninitialized(shape{chunks});
    auto const blocks = static_cast<unsigned>(std::min(chunks, max_blocks));
    ARCNET_CUDA_KERNEL(blocks, gpu::block_threads, 0, gpu::stream(), cuda_kernels::rd_squares)(
        x, n, row_chunk, chunks, part.data());
    ARCNET_CUDA_LAUNCH_CHECK("rd_squares");
    sum_rows(part.data(), out, 1, chunks, chunks, 1, 1.0);
  }

  /// dx[o, r, i] += scale * dy[o, i]
  template <class T>
  static void sum_backward(tensor<T, cuda> const& dy, tensor<T, cuda>& dx, index_t outer, index_t r, index_t inner,
                           T scale) {
    index_t const n = outer * r * inner;
    if (n == 0) return;
    ARCNET_CUDA_KERNEL(gpu::blocks_for(n), gpu::block_threads, 0, gpu::stream(), cuda_kernels::rd_sum_backward)(
        dy.data(), dx.data(), n, r, inner, scale);
    ARCNET_CUDA_LAUNCH_CHECK("rd_sum_backward");
  }

  /// y[o, i] = max_r x[o, r, i], arg[o, i] = the first r that attains it, both on the device
  /// (nothing comes back to the host, so the step needs no synchronisation here).
  template <class T>
  static void max(tensor<T, cuda> const& x, tensor<T, cuda>& y, tensor<index_t, cuda>& arg, index_t outer, index_t r,
                  index_t inner) {
    index_t const n = outer * inner;
    if (n == 0) return;
    T const lowest = -std::numeric_limits<T>::infinity();
    if (inner == 1 && r >= min_row_length) {
      auto const blocks = static_cast<unsigned>(std::min(outer, max_blocks));
      ARCNET_CUDA_KERNEL(blocks, gpu::block_threads, 0, gpu::stream(), cuda_kernels::rd_max_rows)(
          x.data(), y.data(), arg.data(), outer, r, lowest);
      ARCNET_CUDA_LAUNCH_CHECK("rd_max_rows");
    } else {
      ARCNET_CUDA_KERNEL(gpu::blocks_for(n), gpu::block_threads, 0, gpu::stream(), cuda_kernels::rd_max_columns)(
          x.data(), y.data(), arg.data(), outer, r, inner, lowest);
      ARCNET_CUDA_LAUNCH_CHECK("rd_max_columns");
    }
  }

  template <class T>
  static void max_backward(tensor<T, cuda> const& dy, tensor<index_t, cuda> const& arg, tensor<T, cuda>& dx,
                           index_t outer, index_t r, index_t inner) {
    index_t const n = outer * inner;
    if (n == 0) return;
    ARCNET_CUDA_KERNEL(gpu::blocks_for(n), gpu::block_threads, 0, gpu::stream(), cuda_kernels::rd_max_backward)(
        dy.data(), arg.data(), dx.data(), n, r, inner);
    ARCNET_CUDA_LAUNCH_CHECK("rd_max_backward");
  }

 private:
  template <class T>
  static void sum_columns(T const* x, T* part, index_t outer, index_t r, index_t inner, index_t len, index_t chunks,
                          T scale) {
    index_t const n = outer * chunks * inner;
    ARCNET_CUDA_KERNEL(gpu::blocks_for(n), gpu::block_threads, 0, gpu::stream(), cuda_kernels::rd_sum_columns)(
        x, part, outer, r, inner, len, chunks, scale);
    ARCNET_CUDA_LAUNCH_CHECK("rd_sum_columns");
  }
  template <class T>
  static void sum_rows(T const* x, T* part, index_t outer, index_t r, index_t len, index_t chunks, T scale) {
    auto const blocks = static_cast<unsigned>(std::min(outer * chunks, max_blocks));
    ARCNET_CUDA_KERNEL(blocks, gpu::block_threads, 0, gpu::stream(), cuda_kernels::rd_sum_rows)(
        x, part, outer, r, len, chunks, scale);
    ARCNET_CUDA_LAUNCH_CHECK("rd_sum_rows");
  }
};

}  // namespace arcnet::ops
