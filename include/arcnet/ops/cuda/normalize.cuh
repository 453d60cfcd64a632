#pragma once
// CUDA backend of ops/normalize.hpp (nvcc only): x seen as (outer, r, inner), L2-normalised along
// r, sums in double, as normalize_impl<cpu>.
//
// Two shapes of work, no atomics (reproducible):
//   inner == 1 (rows: features, class weights): one block per row, the threads stride over the
//     row, a fixed tree (block_sum) sums the squares (or dy * y), then the same block writes the
//     row. Every read of the sum phase comes before the block's barrier and each element is then
//     read and written by one thread, so y may alias x and dx may alias dy.
//   inner > 1 (a middle axis): one thread per (o, i) column walks k in order, exactly the CPU's
//     summation order; neighbouring threads read neighbouring i, so loads are coalesced.
// The element-wise updates use _rn intrinsics so that nvcc does not contract them into FMAs.
#include <algorithm>

#include "arcnet/core/cuda.hpp"
#include "arcnet/ops/cuda/block_reduce.cuh"
#include "arcnet/ops/cuda/rounding.cuh"
#include "arcnet/core/tensor.hpp"

namespace arcnet::ops {

namespace cuda_kernels {

inline constexpr int normalize_threads = 256;  // a multiple of 32, as block_sum needs


/// std::max(n, eps) as the CPU writes it (a NaN norm stays NaN).
__device__ inline double normalize_clamp(double n, double eps) { return n < eps ? eps : n; }

/// inner == 1: norms[o] = max(||x[o, :]||, eps), y[o, :] = x[o, :] / norms[o]; a block per row.
template <class T>
__global__ void normalize_rows_forward(T const* x, T* y, T* __restrict__ norms, index_t outer, index_t r,
                                       double eps) {
  for (index_t o = blockIdx.x; o < outer; o += gridDim.x) {
    T const* xr = x + o * r;
    T* yr = y + o * r;
    double s = 0;
    for (index_t k = threadIdx.x; k < r; k += normalize_threads) {
      double const v = static_cast<double>(xr[k]);
      s += v * v;
    }
    double const n = normalize_clamp(::sqrt(block_sum(s)), eps);
    if (threadIdx.x == 0) norms[o] = static_cast<T>(n);
    for (index_t k = threadIdx.x; k < r; k += normalize_threads)
      yr[k] = static_cast<T>(static_cast<double>(xr[k]) / n);
  }
}

/// inner > 1: one thread per column (o, i) of x (outer, r, inner); norms is (outer, inner).
template <class T>
__global__ void normalize_columns_forward(T const* x, T* y, T* __restrict__ norms, index_t outer, index_t r,
                                          index_t inner, double eps) {
  index_t const columns = outer * inner;
  for (index_t t = blockIdx.x * index_t(blockDim.x) + threadIdx.x; t < columns; t += index_t(gridDim.x) * blockDim.x) {
    index_t const o = t / inner, i = t % inner;
    T const* xc = x + o * r * inner + i;
    T* yc = y + o * r * inner + i;
    double s = 0;
    for (index_t k = 0; k < r; ++k) {
      double const v = static_cast<double>(xc[k * inner]);
      s += v * v;
    }
    double const n = normalize_clamp(::sqrt(s), eps);
    norms[t] = static_cast<T>(n);
    for (index_t k = 0; k < r; ++k) yc[k * inner] = static_cast<T>(static_cast<double>(xc[k * inner]) / n);
  }
}

/// inner == 1: dx[o, :] += (dy - y * sum(dy * y)) / n, or dy / n where n was clamped to eps.
template <class T>
__global__ void normalize_rows_backward(T const* y, T const* __restrict__ norms, T const* dy, T* dx, index_t outer,
                                        index_t r, double eps) {
  T const clamped = static_cast<T>(eps);
  for (index_t o = blockIdx.x; o < outer; o += gridDim.x) {
    T const* yr = y + o * r;
    T const* gr = dy + o * r;
    T* dxr = dx + o * r;
    T const n = norms[o];
    double dot = 0;
    if (n > clamped)  // the same for the whole block: the tree below is reached by every thread
      for (index_t k = threadIdx.x; k < r; k += normalize_threads)
        dot += static_cast<double>(gr[k]) * static_cast<double>(yr[k]);
    T const d = static_cast<T>(block_sum(dot));
    for (index_t k = threadIdx.x; k < r; k += normalize_threads)
      dxr[k] = add_rn(dxr[k], div_rn(sub_rn(gr[k], mul_rn(yr[k], d)), n));
  }
}

/// inner > 1: the column form of normalize_rows_backward, one thread per (o, i).
template <class T>
__global__ void normalize_columns_backward(T const* y, T const* __restrict__ norms, T const* dy, T* dx, index_t outer,
                                           index_t r, index_t inner, double eps) {
  T const clamped = static_cast<T>(eps);
  index_t const columns = outer * inner;
  for (index_t t = blockIdx.x * index_t(blockDim.x) + threadIdx.x; t < columns; t += index_t(gridDim.x) * blockDim.x) {
    index_t const o = t / inner, i = t % inner;
    index_t const base = o * r * inner + i;
    T const n = norms[t];
    double dot = 0;
    if (n > clamped)
      for (index_t k = 0; k < r; ++k)
        dot += static_cast<double>(dy[base + k * inner]) * static_cast<double>(y[base + k * inner]);
    T const d = static_cast<T>(dot);
    for (index_t k = 0; k < r; ++k) {
      index_t const e = base + k * inner;
      dx[e] = add_rn(dx[e], div_rn(sub_rn(dy[e], mul_rn(y[e], d)), n));
    }
  }
}

}  // namespace cuda_kernels

template <>
struct normalize_impl<cuda> {
  /// Blocks of the row kernels: one per row up to this many, then a grid-stride loop.
  static constexpr index_t max_row_blocks = index_t(1) << 16;

  static unsigned row_blocks(index_t outer) { return static_cast<unsigned>(std::min(outer, max_row_blocks)); }

  /// norms[o, i] = max(sqrt(sum_k x[o, k, i]^2), eps), y = x / norms.
  template <class T>
  static void forward(tensor<T, cuda> const& x, tensor<T, cuda>& y, tensor<T, cuda>& norms, index_t outer, index_t r,
                      index_t inner, double eps) {
    if (outer <= 0 || inner <= 0) return;
    if (inner == 1) {
      ARCNET_CUDA_KERNEL(row_blocks(outer), cuda_kernels::normalize_threads, 0, gpu::stream(),
                         cuda_kernels::normalize_rows_forward<T>)(
          x.data(), y.data(), norms.data(), outer, r, eps);
      ARCNET_CUDA_LAUNCH_CHECK("normalize_rows_forward");
    } else {
      ARCNET_CUDA_KERNEL(gpu::blocks_for(outer * inner), gpu::block_threads, 0, gpu::stream(),
                         cuda_kernels::normalize_columns_forward<T>)(
          x.data(), y.data(), norms.data(), outer, r, inner, eps);
      ARCNET_CUDA_LAUNCH_CHECK("normalize_columns_forward");
    }
  }

  /// dx += (dy - y * sum_k(dy * y)) / norm, or dy / norm where the norm was clamped to eps.
  template <class T>
  static void backward(tensor<T, cuda> const& y, tensor<T, cuda> const& norms, tensor<T, cuda> const& dy,
                       tensor<T, cuda>& dx, index_t outer, index_t r, index_t inner, double eps) {
    if (outer <= 0 || inner <= 0 || r <= 0) return;
    if (inner == 1) {
      ARCNET_CUDA_KERNEL(row_blocks(outer), cuda_kernels::normalize_threads, 0, gpu::stream(),
                         cuda_kernels::normalize_rows_backward<T>)(
          y.data(), norms.data(), dy.data(), dx.data(), outer, r, eps);
      ARCNET_CUDA_LAUNCH_CHECK("normalize_rows_backward");
    } else {
      ARCNET_CUDA_KERNEL(gpu::blocks_for(outer * inner), gpu::block_threads, 0, gpu::stream(),
                         cuda_kernels::normalize_columns_backward<T>)(
          y.data(), norms.data(), dy.data(), dx.data(), outer, r, inner, eps);
      ARCNET_CUDA_LAUNCH_CHECK("normalize_columns_backward");
    }
  }
};

}  // namespace arcnet::ops
