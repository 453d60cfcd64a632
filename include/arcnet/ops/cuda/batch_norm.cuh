#pragma once
// CUDA backend of ops/batch_norm.hpp (nvcc only). The input is an (m, c) row-major matrix,
// m = N*H*W, channels innermost, as on the CPU.
//
// Per-channel sums (forward moments, backward sum(dy) and sum(dy * (x - mean))) run in two passes
// without atomics, so results are reproducible run to run:
//   1. bn_channel_partials: a 2-D grid of (channel tile of 32) x (row strip); a block of 32 x 8
//      threads reads 32 consecutive channels of 8 rows at a time (coalesced for c >= 32), each
//      thread accumulates in double, the 8 row lanes are summed in fixed order in shared memory,
//      and the block writes one double partial per channel and strip.
//   2. a finalize kernel, one warp per channel, sums the strips' partials in a fixed shuffle tree
//      and turns them into the statistics (mean, invstd, running update) or the backward
//      coefficients, with the same double expressions as batch_norm_impl<cpu>.
// The strip count depends only on (m, c), never on the device. The element-wise kernels
// (normalize, dx) use _rn intrinsics so that nvcc does not contract them into FMAs: they round
// like the CPU's step-by-step expressions.
//
// Activations (x, y, dy, dx, the residual and the ReLU mask) are of type A, the parameters,
// statistics and coefficients of type P: both float (or double), or bf16 activations with float
// parameters (bf16 mode's storage), where every element is widened to float, computed as for
// float, and rounded to bf16 once as it is stored.
#include <algorithm>
#include <type_traits>
#include <vector>

#include "arcnet/core/cuda.hpp"
#include "arcnet/ops/cuda/rounding.cuh"
#include "arcnet/core/tensor.hpp"

namespace arcnet::ops {

namespace cuda_kernels {

inline constexpr int bn_tile_channels = 32;  // threads along channels in bn_channel_partials
inline constexpr int bn_tile_rows = 8;       // threads along rows in bn_channel_partials


/// Pass 1. Block (blockIdx.x, blockIdx.y) covers channels [32 bx, 32 bx + 32) and rows
/// [m s / strips, m (s + 1) / strips) with s = by (the CPU's block split). Writes
/// part[(2 s) c + j] = sum of the first quantity, part[(2 s + 1) c + j] = sum of the second:
///   Grad = false: d = x - x[row 0] (shifted moments; unshifted, d = x, when !shifted): d and d * d;
///   Grad = true:  dy and dy * (x - mean), (x - mean) rounded to T as on the CPU; where relu_out is
///                 given (the output of a forward with ReLU), dy counts only where it is positive.
template <class A, class P, bool Grad>
__global__ void bn_channel_partials(A const* __restrict__ x, A const* __restrict__ dy, P const* __restrict__ mean,
                                    A const* __restrict__ relu_out, index_t m, index_t c, index_t strips,
                                    bool shifted, double* __restrict__ part) {
  __shared__ double s1[bn_tile_rows][bn_tile_channels];
  __shared__ double s2[bn_tile_rows][bn_tile_channels];
  index_t const j = index_t(blockIdx.x) * bn_tile_channels + threadIdx.x;
  index_t const s = blockIdx.y;
  index_t const begin = m * s / strips, end = m * (s + 1) / strips;
  double a1 = 0, a2 = 0;
  if (j < c) {
    if constexpr (Grad) {
      P const mu = mean[j];
      for (index_t r = begin + threadIdx.y; r < end; r += bn_tile_rows) {
        index_t const i = r * c + j;
        double const g = relu_out && !(convert<P>(relu_out[i]) > P(0)) ? 0.0 : convert<double>(dy[i]);
        a1 += g;
        a2 += g * static_cast<double>(sub_rn(convert<P>(x[i]), mu));
      }
    } else {
      double const shift = m > 0 && shifted ? convert<double>(x[j]) : 0.0;
      for (index_t r = begin + threadIdx.y; r < end; r += bn_tile_rows) {
        double const d = convert<double>(x[r * c + j]) - shift;
        a1 += d;
        a2 += d * d;
      }
    }
  }
  s1[threadIdx.y][threadIdx.x] = a1;
  s2[threadIdx.y][threadIdx.x] = a2;
  __syncthreads();
  if (threadIdx.y == 0 && j < c) {
    double t1 = 0, t2 = 0;
    for (int k = 0; k < bn_tile_rows; ++k) {
      t1 += s1[k][threadIdx.x];
      t2 += s2[k][threadIdx.x];
    }
    part[(2 * s) * c + j] = t1;
    part[(2 * s + 1) * c + j] = t2;
  }
}

/// Sums of the strips' partials of channel j in a fixed order (lane-strided, then a shuffle
/// tree); the full totals land in lane 0. Every lane of the warp must call it.
__device__ inline void bn_warp_channel_total(double const* __restrict__ part, index_t c, index_t strips, index_t j,
                                             int lane, double& t1, double& t2) {
  t1 = 0;
  t2 = 0;
  for (index_t s = lane; s < strips; s += 32) {
    t1 += part[(2 * s) * c + j];
    t2 += part[(2 * s + 1) * c + j];
  }
  for (int off = 16; off > 0; off >>= 1) {
    t1 += __shfl_down_sync(0xffffffffu, t1, off);
    t2 += __shfl_down_sync(0xffffffffu, t2, off);
  }
}

/// Pass 2 of batch_statistics: one warp per channel. mean = shift + s1 / m,
/// invstd = 1 / sqrt(max(s2 / m - (s1 / m)^2, 0) + eps); running statistics (may be null) get
/// (1 - momentum) old + momentum new, the variance unbiased (only when m > 1).
template <class A, class T>
__global__ void bn_statistics_finalize(A const* __restrict__ x, double const* __restrict__ part, index_t m, index_t c,
                                       index_t strips, double eps, double momentum, T* __restrict__ mean,
                                       T* __restrict__ invstd, T* running_mean, T* running_var) {
  int const lane = threadIdx.x % 32;
  index_t const warps = index_t(gridDim.x) * (blockDim.x / 32);
  for (index_t j = (index_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32; j < c; j += warps) {
    double t1, t2;
    bn_warp_channel_total(part, c, strips, j, lane, t1, t2);
    if (lane == 0) {
      double const shift = m > 0 ? convert<double>(x[j]) : 0.0;
      double const ms = m > 0 ? t1 / static_cast<double>(m) : 0.0;
      // std::max(s2 / m - ms^2, 0.0) as the CPU rounds it (no FMA; a NaN stays NaN)
      double const raw = m > 0 ? __dsub_rn(t2 / static_cast<double>(m), __dmul_rn(ms, ms)) : 0.0;
      double const var = raw < 0.0 ? 0.0 : raw;
      double const mj = shift + ms;
      mean[j] = static_cast<T>(mj);
      invstd[j] = static_cast<T>(1.0 / ::sqrt(var + eps));
      if (running_mean)
        running_mean[j] = static_cast<T>(
            __dadd_rn(__dmul_rn(1 - momentum, static_cast<double>(running_mean[j])), __dmul_rn(momentum, mj)));
      if (running_var && m > 1) {
        double const unbiased = var * static_cast<double>(m) / static_cast<double>(m - 1);
        running_var[j] = static_cast<T>(
            __dadd_rn(__dmul_rn(1 - momentum, static_cast<double>(running_var[j])), __dmul_rn(momentum, unbiased)));
      }
    }
  }
}

/// The strips' partials summed per channel: totals[j] = first sum, totals[c + j] = second sum.
/// (A template, like every kernel in these headers, so that several translation units may hold it.)
template <class Acc>
__global__ void bn_channel_totals(Acc const* __restrict__ part, index_t c, index_t strips, Acc* __restrict__ totals) {
  int const lane = threadIdx.x % 32;
  index_t const warps = index_t(gridDim.x) * (blockDim.x / 32);
  for (index_t j = (index_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32; j < c; j += warps) {
    Acc t1, t2;
    bn_warp_channel_total(part, c, strips, j, lane, t1, t2);
    if (lane == 0) {
      totals[j] = t1;
      totals[c + j] = t2;
    }
  }
}

/// mean = running_mean, invstd = 1 / sqrt(running_var + eps), per channel.
template <class T>
__global__ void bn_running_statistics(T const* __restrict__ running_mean, T const* __restrict__ running_var,
                                      index_t c, double eps, T* __restrict__ mean, T* __restrict__ invstd) {
  for (index_t j = blockIdx.x * index_t(blockDim.x) + threadIdx.x; j < c; j += index_t(gridDim.x) * blockDim.x) {
    mean[j] = running_mean[j];
    invstd[j] = static_cast<T>(1.0 / ::sqrt(static_cast<double>(running_var[j]) + eps));
  }
}

/// y = (x - mean) * (invstd * weight) + bias (+ residual) element-wise, then max(y, 0) when relu;
/// weight, bias, residual may be null. x and y may alias (each element is read, then written, by
/// one thread).
template <class A, class P>
__global__ void bn_normalize(A const* x, index_t n, index_t c, P const* __restrict__ mean, P const* __restrict__ invstd,
                             P const* __restrict__ weight, P const* __restrict__ bias, A const* residual, bool relu,
                             A* y) {
  for (index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x; i < n; i += index_t(gridDim.x) * blockDim.x) {
    index_t const j = i % c;
    P const scale = mul_rn(invstd[j], weight ? weight[j] : P(1));
    P const offset = bias ? bias[j] : P(0);
    P v = add_rn(mul_rn(sub_rn(convert<P>(x[i]), mean[j]), scale), offset);
    if (residual) v = add_rn(v, convert<P>(residual[i]));
    y[i] = convert<A>(relu && !(v > P(0)) ? P(0) : v);
  }
}

/// Pass 2 of backward: one warp per channel. With sums (part != null): dweight += s2 * invstd,
/// dbias += s1 (each may be null). With coef (may be null): coef[j] = k, coef[c + j] = a,
/// coef[2c + j] = b, where dx = k dy - a - b (x - mean) (a = b = 0 without batch statistics).
template <class T>
__global__ void bn_backward_finalize(double const* __restrict__ part, index_t m, index_t c, index_t strips,
                                     T const* __restrict__ invstd, T const* __restrict__ weight, bool batch_stats,
                                     T* dweight, T* dbias, T* __restrict__ coef) {
  int const lane = threadIdx.x % 32;
  index_t const warps = index_t(gridDim.x) * (blockDim.x / 32);
  for (index_t j = (index_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32; j < c; j += warps) {
    double sum_dy = 0, sum_dy_xmu = 0;
    if (part) bn_warp_channel_total(part, c, strips, j, lane, sum_dy, sum_dy_xmu);
    if (lane == 0 && part) {
      if (dweight) dweight[j] += static_cast<T>(sum_dy_xmu * static_cast<double>(invstd[j]));
      if (dbias) dbias[j] += static_cast<T>(sum_dy);
    }
    if (lane == 0 && coef) {
      double const is = static_cast<double>(invstd[j]);
      double const kj = is * (weight ? static_cast<double>(weight[j]) : 1.0);
      T a = T(0), b = T(0);
      if (batch_stats && m > 0) {
        a = static_cast<T>(kj * sum_dy / static_cast<double>(m));
        b = static_cast<T>(kj * is * is * sum_dy_xmu / static_cast<double>(m));
      }
      coef[j] = static_cast<T>(kj);
      coef[c + j] = a;
      coef[2 * c + j] = b;
    }
  }
}

/// dx += k g - a - b (x - mean) element-wise, coef = [k (c), a (c), b (c)], g = dy, or 0 where
/// relu_out (may be null) is not positive. dx may alias x or dy.
template <class A, class P>
__global__ void bn_backward_dx(A const* x, A const* dy, A const* relu_out, index_t n, index_t c,
                               P const* __restrict__ mean, P const* __restrict__ coef, A* dx) {
  for (index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x; i < n; i += index_t(gridDim.x) * blockDim.x) {
    index_t const j = i % c;
    P const g = relu_out && !(convert<P>(relu_out[i]) > P(0)) ? P(0) : convert<P>(dy[i]);
    P const v = sub_rn(sub_rn(mul_rn(coef[j], g), coef[c + j]),
                       mul_rn(coef[2 * c + j], sub_rn(convert<P>(x[i]), mean[j])));
    dx[i] = convert<A>(add_rn(convert<P>(dx[i]), v));
  }
}

}  // namespace cuda_kernels

template <>
struct batch_norm_impl<cuda> {
  /// Upper bound on the blocks of pass 1 (about 8 resident blocks per SM on an H200); fixed,
  /// so that the summation order does not depend on the device.
  static constexpr index_t target_blocks = 1024;
  /// Fewest rows per strip worth a block (8 rows per thread lane).
  static constexpr index_t min_strip_rows = 64;

  /// Row strips of pass 1 for an (m, c) reduction.
  static index_t strip_count(index_t m, index_t c) {
    index_t const tiles = (c + cuda_kernels::bn_tile_channels - 1) / cuda_kernels::bn_tile_channels;
    index_t const by_rows = (m + min_strip_rows - 1) / min_strip_rows;
    index_t const by_blocks = std::max<index_t>(1, target_blocks / std::max<index_t>(tiles, 1));
    return std::max<index_t>(1, std::min(by_rows, by_blocks));
  }

  /// Pass 1 into a fresh buffer of 2 * strips * c doubles (every entry is written).
  template <class A, class P, bool Grad>
  static tensor<double, cuda> channel_partials(A const* x, A const* dy, P const* mean, A const* relu_out, index_t m,
                                               index_t c, index_t strips, bool shifted = true) {
    auto part = tensor<double, cuda>::uninitialized(shape{2 * strips * c});
    dim3 const grid(static_cast<unsigned>((c + cuda_kernels::bn_tile_channels - 1) / cuda_kernels::bn_tile_channels),
                    static_cast<unsigned>(strips));
    dim3 const block(cuda_kernels::bn_tile_channels, cuda_kernels::bn_tile_rows);
    ARCNET_CUDA_KERNEL(grid, block, 0, gpu::stream(), cuda_kernels::bn_channel_partials<A, P, Grad>)(
        x, dy, mean, relu_out, m, c, strips, shifted, part.data());
    ARCNET_CUDA_LAUNCH_CHECK("bn_channel_partials");
    return part;
  }

  /// Blocks of a one-warp-per-channel kernel.
  static unsigned warp_blocks(index_t c) { return gpu::blocks_for(c * 32); }

  /// Batch mean and invstd = 1 / sqrt(biased var + eps) of x (m, c); updates the running
  /// statistics (unbiased variance) when they are given. As batch_norm_impl<cpu>.
  template <class A, class T>
  static void batch_statistics(tensor<A, cuda> const& x, index_t m, index_t c, double eps, tensor<T, cuda>& mean,
                               tensor<T, cuda>& invstd, tensor<T, cuda>* running_mean, tensor<T, cuda>* running_var,
                               double momentum) {
    if (c <= 0) return;
    index_t const strips = strip_count(m, c);
    auto part = channel_partials<A, T, false>(x.data(), nullptr, nullptr, nullptr, m, c, strips);
    ARCNET_CUDA_KERNEL(warp_blocks(c), gpu::block_threads, 0, gpu::stream(),
                       cuda_kernels::bn_statistics_finalize<A, T>)(
        x.data(), part.data(), m, c, strips, eps, momentum, mean.data(), invstd.data(),
        running_mean ? running_mean->data() : nullptr, running_var ? running_var->data() : nullptr);
    ARCNET_CUDA_LAUNCH_CHECK("bn_statistics_finalize");
  }

  /// mean = running_mean, invstd = 1 / sqrt(running_var + eps).
  template <class T>
  static void running_statistics(tensor<T, cuda> const& running_mean, tensor<T, cuda> const& running_var, double eps,
                                 tensor<T, cuda>& mean, tensor<T, cuda>& invstd) {
    index_t const c = mean.numel();
    if (c <= 0) return;
    ARCNET_CUDA_KERNEL(gpu::blocks_for(c), gpu::block_threads, 0, gpu::stream(),
                       cuda_kernels::bn_running_statistics<T>)(
        running_mean.data(), running_var.data(), c, eps, mean.data(), invstd.data());
    ARCNET_CUDA_LAUNCH_CHECK("bn_running_statistics");
  }

  /// y = (x - mean) * invstd * weight + bias (+ residual, of x's size, when not null), then
  /// max(y, 0) when relu; weight, bias may be undefined.
  template <class A, class P>
  static void normalize(tensor<A, cuda> const& x, index_t m, index_t c, tensor<P, cuda> const& mean,
                        tensor<P, cuda> const& invstd, tensor<P, cuda> const& weight, tensor<P, cuda> const& bias,
                        tensor<A, cuda>& y, bool relu = false, A const* residual = nullptr) {
    index_t const n = m * c;
    if (n <= 0) return;
    ARCNET_CUDA_KERNEL(gpu::blocks_for(n), gpu::block_threads, 0, gpu::stream(), cuda_kernels::bn_normalize<A, P>)(
        x.data(), n, c, mean.data(), invstd.data(), weight.defined() ? weight.data() : nullptr,
        bias.defined() ? bias.data() : nullptr, residual, relu, y.data());
    ARCNET_CUDA_LAUNCH_CHECK("bn_normalize");
  }

  /// Accumulates dx, dweight, dbias (each may be null). With batch statistics
  /// dx = weight * invstd * (dy - sum(dy) / M - xhat * sum(dy * xhat) / M); otherwise
  /// dx = weight * invstd * dy; dy counts only where relu_out (may be null) is positive. As
  /// batch_norm_impl<cpu>.
  template <class A, class T>
  static void backward(tensor<A, cuda> const& x, tensor<A, cuda> const& dy, index_t m, index_t c,
                       tensor<T, cuda> const& mean, tensor<T, cuda> const& invstd, tensor<T, cuda> const& weight,
                       bool batch_stats, tensor<A, cuda>* dx, tensor<T, cuda>* dweight, tensor<T, cuda>* dbias,
                       tensor<A, cuda> const* relu_out = nullptr) {
    A const* const mask = relu_out ? relu_out->data() : nullptr;
    if (c <= 0) return;
    bool const need_sums = dweight || dbias || (dx && batch_stats);
    if (!need_sums && !dx) return;
    index_t const strips = strip_count(m, c);
    tensor<double, cuda> part;
    if (need_sums) part = channel_partials<A, T, true>(x.data(), dy.data(), mean.data(), mask, m, c, strips);
    tensor<T, cuda> coef;
    if (dx) coef = tensor<T, cuda>::uninitialized(shape{3 * c});
    ARCNET_CUDA_KERNEL(warp_blocks(c), gpu::block_threads, 0, gpu::stream(), cuda_kernels::bn_backward_finalize<T>)(
        need_sums ? part.data() : nullptr, m, c, strips, invstd.data(), weight.defined() ? weight.data() : nullptr,
        batch_stats, dweight ? dweight->data() : nullptr, dbias ? dbias->data() : nullptr, dx ? coef.data() : nullptr);
    ARCNET_CUDA_LAUNCH_CHECK("bn_backward_finalize");
    if (!dx) return;
    index_t const n = m * c;
    if (n <= 0) return;
    ARCNET_CUDA_KERNEL(gpu::blocks_for(n), gpu::block_threads, 0, gpu::stream(), cuda_kernels::bn_backward_dx<A, T>)(
        x.data(), dy.data(), mask, n, c, mean.data(), coef.data(), dx->data());
    ARCNET_CUDA_LAUNCH_CHECK("bn_backward_dx");
  }

  /// Per-channel sums over x (m, c) in double, as a host vector of 2c (a device-to-host copy, so
  /// it waits for the stream): without dy, [sum x, sum x^2] (unshifted: the terms sync_batch_norm
  /// all-reduces over ranks); with dy, [sum dy, sum dy * (x - mean)]. As batch_norm_impl<cpu>.
  template <class T>
  static std::vector<double> channel_totals(tensor<T, cuda> const& x, tensor<T, cuda> const* dy,
                                            tensor<T, cuda> const* mean, index_t m, index_t c) {
    if (c <= 0) return {};
    index_t const strips = strip_count(m, c);
    auto part = dy ? channel_partials<T, T, true>(x.data(), dy->data(), mean->data(), nullptr, m, c, strips)
                   : channel_partials<T, T, false>(x.data(), nullptr, nullptr, nullptr, m, c, strips, false);
    auto totals = tensor<double, cuda>::uninitialized(shape{2 * c});
    ARCNET_CUDA_KERNEL(warp_blocks(c), gpu::block_threads, 0, gpu::stream(), cuda_kernels::bn_channel_totals<double>)(
        part.data(), c, strips, totals.data());
    ARCNET_CUDA_LAUNCH_CHECK("bn_channel_totals");
    auto host = totals.template to<cpu>();
    return std::vector<double>(host.data(), host.data() + 2 * c);
  }

  /// dx += k dy - a - b (x - mean) element-wise, with coef = [k (c), a (c), b (c)] per channel
  /// (host values, copied to the device).
  template <class T>
  static void add_dx(tensor<T, cuda> const& x, tensor<T, cuda> const& dy, tensor<T, cuda> const& mean,
                     std::vector<T> const& coef, tensor<T, cuda>& dx) {
    index_t const c = x.size(-1), n = x.numel();
    if (n <= 0 || c <= 0) return;
    auto coef_d = tensor<T, cpu>::from_vector(shape{3 * c}, coef).template to<cuda>();
    ARCNET_CUDA_KERNEL(gpu::blocks_for(n), gpu::block_threads, 0, gpu::stream(), cuda_kernels::bn_backward_dx<T, T>)(
        x.data(), dy.data(), nullptr, n, c, mean.data(), coef_d.data(), dx.data());
    ARCNET_CUDA_LAUNCH_CHECK("bn_backward_dx");
  }
};

}  // namespace arcnet::ops
