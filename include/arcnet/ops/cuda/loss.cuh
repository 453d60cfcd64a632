#pragma once
// CUDA backend of ops/loss.hpp (nvcc only): softmax, log-softmax and softmax cross-entropy over
// rows of (rows, C), with the formulas of ops/cpu/loss.hpp.
//
// One block per row: rows are long (thousands to 100k classes) and few, so a block strides over
// its row and reduces the maximum and the sums with a fixed shared-memory / warp-shuffle tree
// (deterministic, no atomics). As on the CPU, exponentials are taken in T (their arguments are
// <= 0) and their sums, like every other row sum, are kept in double. The batch mean of the
// cross-entropy is a single-block sum of the per-row losses in double. Every thread of a row
// touches the same columns in every pass, so in-place calls (y aliasing x, dx aliasing dy) work.
#include <cstdint>
#include <vector>

#include "arcnet/core/cuda.hpp"
#include "arcnet/core/tensor.hpp"
#include "arcnet/ops/cuda/block_reduce.cuh"

namespace arcnet::ops {

namespace cuda_kernels {

/// Threads of a row block: 256, or 1024 for rows long enough to keep them busy (a multiple of
/// 32 and at most 1024, as block_reduce needs).
inline int loss_row_threads(index_t cols) { return cols > 8192 ? 1024 : 256; }
/// Blocks of a row kernel: one per row, the rest by a stride loop over rows.
inline unsigned loss_row_blocks(index_t rows) { return static_cast<unsigned>(rows < 65535 ? rows : 65535); }

__device__ inline float loss_exp(float v) { return expf(v); }
__device__ inline double loss_exp(double v) { return ::exp(v); }

/// The row maximum of xr (T, as the CPU) and, over the block, the sum of exp(xr - max) in double;
/// exp(xr - max) goes to exps when given.
template <class T>
__device__ void loss_row_log_sum_exp(T const* xr, index_t cols, T& max, double& sum, T* exps) {
  T mx = -INFINITY;
  for (index_t j = threadIdx.x; j < cols; j += blockDim.x) mx = max_op<T>()(mx, xr[j]);
  mx = block_reduce(mx, max_op<T>(), T(-INFINITY));
  double s = 0;
  for (index_t j = threadIdx.x; j < cols; j += blockDim.x) {
    T const e = loss_exp(xr[j] - mx);
    if (exps) exps[j] = e;
    s += static_cast<double>(e);
  }
  max = mx;
  sum = block_reduce(s, sum_op<double>(), 0.0);
}

/// y = softmax(x) or log_softmax(x), one block per row.
template <class T>
__global__ void __launch_bounds__(1024) loss_softmax_rows(T const* x, T* y, index_t rows, index_t cols, bool log) {
  for (index_t r = blockIdx.x; r < rows; r += gridDim.x) {
    T const* xr = x + r * cols;
    T* yr = y + r * cols;
    T mx;
    double s;
    if (log) {
      loss_row_log_sum_exp(xr, cols, mx, s, static_cast<T*>(nullptr));
      double const ls = ::log(s);
      for (index_t j = threadIdx.x; j < cols; j += blockDim.x)
        yr[j] = static_cast<T>(static_cast<double>(xr[j] - mx) - ls);
    } else {
      loss_row_log_sum_exp(xr, cols, mx, s, yr);
      T const inv = static_cast<T>(::exp(-::log(s)));  // as the CPU: exp(-log_sum), rounded to T
      for (index_t j = threadIdx.x; j < cols; j += blockDim.x) yr[j] *= inv;
    }
  }
}

/// softmax: dx += y * (dy - sum(dy * y)); log-softmax: dx += dy - exp(y) * sum(dy); per row.
template <class T>
__global__ void __launch_bounds__(1024)
    loss_softmax_backward_rows(T const* y, T const* dy, T* dx, index_t rows, index_t cols, bool log) {
  for (index_t r = blockIdx.x; r < rows; r += gridDim.x) {
    T const* yr = y + r * cols;
    T const* gr = dy + r * cols;
    T* o = dx + r * cols;
    double s = 0;
    if (log) {
      for (index_t j = threadIdx.x; j < cols; j += blockDim.x) s += static_cast<double>(gr[j]);
    } else {
      for (index_t j = threadIdx.x; j < cols; j += blockDim.x)
        s += static_cast<double>(gr[j]) * static_cast<double>(yr[j]);
    }
    T const st = static_cast<T>(block_reduce(s, sum_op<double>(), 0.0));
    if (log) {
      for (index_t j = threadIdx.x; j < cols; j += blockDim.x) o[j] += gr[j] - loss_exp(yr[j]) * st;
    } else {
      for (index_t j = threadIdx.x; j < cols; j += blockDim.x) o[j] += yr[j] * (gr[j] - st);
    }
  }
}

/// prob = softmax(x) and row_loss[i] = (1 - ls) (lse - x[i, t_i]) + ls (lse - mean_c x[i, c]),
/// one block per row; targets are in [0, cols) (checked by the facade).
template <class T>
__global__ void __launch_bounds__(1024)
    loss_cross_entropy_rows(T const* x, std::int64_t const* targets, double label_smoothing, T* prob, double* row_loss,
                            index_t rows, index_t cols) {
  for (index_t i = blockIdx.x; i < rows; i += gridDim.x) {
    T const* xr = x + i * cols;
    T* pr = prob + i * cols;
    // The target logit and the row sum, read before prob (should it alias x) is written.
    double const x_target = static_cast<double>(xr[static_cast<index_t>(targets[i])]);
    double sx = 0;
    for (index_t j = threadIdx.x; j < cols; j += blockDim.x) sx += static_cast<double>(xr[j]);
    T mx;
    double s;
    loss_row_log_sum_exp(xr, cols, mx, s, pr);
    double const sum_x = block_reduce(sx, sum_op<double>(), 0.0);
    double const ls = ::log(s);
    double const lse = static_cast<double>(mx) + ls;
    T const inv = static_cast<T>(::exp(-ls));
    for (index_t j = threadIdx.x; j < cols; j += blockDim.x) pr[j] *= inv;
    if (threadIdx.x == 0) {
      double const nll = lse - x_target;
      double const smooth = lse - sum_x / static_cast<double>(cols);
      row_loss[i] = (1 - label_smoothing) * nll + label_smoothing * smooth;
    }
  }
}

/// loss[0] = sum(row_loss) / rows, by one block: a fixed order, so reproducible run to run.
template <class T>
__global__ void __launch_bounds__(1024) loss_mean_of_rows(double const* row_loss, index_t rows, T* loss) {
  double s = 0;
  for (index_t i = threadIdx.x; i < rows; i += blockDim.x) s += row_loss[i];
  s = block_reduce(s, sum_op<double>(), 0.0);
  if (threadIdx.x == 0) loss[0] = static_cast<T>(s / static_cast<double>(rows));
}

/// dlogits += scale * (prob - uniform), and -= scale * hit at the target of each row, with
/// scale = dy[0] / rows read on the device (no wait for the host).
template <class T>
__global__ void loss_cross_entropy_backward(T const* prob, std::int64_t const* targets, T const* dy, T uniform, T hit,
                                            T* dlogits, index_t rows, index_t cols) {
  T const scale = static_cast<T>(static_cast<double>(dy[0]) / static_cast<double>(rows));
  index_t const n = rows * cols;
  for (index_t k = blockIdx.x * index_t(blockDim.x) + threadIdx.x; k < n; k += index_t(gridDim.x) * blockDim.x) {
    index_t const i = k / cols, j = k - i * cols;
    T v = dlogits[k] + scale * (prob[k] - uniform);
    if (j == static_cast<index_t>(targets[i])) v -= scale * hit;  // two steps, as the CPU rounds them
    dlogits[k] = v;
  }
}

}  // namespace cuda_kernels

template <>
struct loss_impl<cuda> {
  /// y = softmax(x) (or log_softmax when log) over rows of length cols.
  template <class T>
  static void softmax(tensor<T, cuda> const& x, tensor<T, cuda>& y, index_t rows, index_t cols, bool log) {
    if (rows <= 0 || cols <= 0) return;
    ARCNET_CUDA_KERNEL(cuda_kernels::loss_row_blocks(rows), cuda_kernels::loss_row_threads(cols), 0, gpu::stream(),
                       cuda_kernels::loss_softmax_rows)(
        x.data(), y.data(), rows, cols, log);
    ARCNET_CUDA_LAUNCH_CHECK("loss_softmax_rows");
  }

  /// softmax: dx += y * (dy - sum(dy * y)); log-softmax: dx += dy - exp(y) * sum(dy).
  template <class T>
  static void softmax_backward(tensor<T, cuda> const& y, tensor<T, cuda> const& dy, tensor<T, cuda>& dx, index_t rows,
                               index_t cols, bool log) {
    if (rows <= 0 || cols <= 0) return;
    ARCNET_CUDA_KERNEL(cuda_kernels::loss_row_blocks(rows), cuda_kernels::loss_row_threads(cols), 0, gpu::stream(),
                       cuda_kernels::loss_softmax_backward_rows)(
        y.data(), dy.data(), dx.data(), rows, cols, log);
    ARCNET_CUDA_LAUNCH_CHECK("loss_softmax_backward_rows");
  }

  /// loss = mean_i [(1 - ls) (lse_i - x[i, t_i]) + ls (lse_i - mean_c x[i, c])], prob = softmax(x).
  template <class T>
  static void cross_entropy(tensor<T, cuda> const& logits, std::vector<std::int64_t> const& targets,
                            double label_smoothing, tensor<T, cuda>& prob, tensor<T, cuda>& loss) {
    index_t const n = logits.size(0), c = logits.size(1);
    if (n <= 0 || c <= 0) return;  // the facade rejects both; never launch an empty grid
    auto t = device_targets(targets);
    auto row_loss = tensor<double, cuda>::uninitialized(shape{n});
    ARCNET_CUDA_KERNEL(cuda_kernels::loss_row_blocks(n), cuda_kernels::loss_row_threads(c), 0, gpu::stream(),
                       cuda_kernels::loss_cross_entropy_rows)(
        logits.data(), t.data(), label_smoothing, prob.data(), row_loss.data(), n, c);
    ARCNET_CUDA_LAUNCH_CHECK("loss_cross_entropy_rows");
    ARCNET_CUDA_KERNEL(1, 1024, 0, gpu::stream(), cuda_kernels::loss_mean_of_rows)(row_loss.data(), n, loss.data());
    ARCNET_CUDA_LAUNCH_CHECK("loss_mean_of_rows");
  }

  /// dlogits += dy * (prob - (1 - ls) onehot - ls / C) / N; dy (one element) stays on the device.
  template <class T>
  static void cross_entropy_backward(tensor<T, cuda> const& prob, std::vector<std::int64_t> const& targets,
                                     double label_smoothing, tensor<T, cuda> const& dy, tensor<T, cuda>& dlogits) {
    index_t const n = prob.size(0), c = prob.size(1);
    if (n <= 0 || c <= 0) return;
    auto t = device_targets(targets);
    T const uniform = static_cast<T>(label_smoothing / static_cast<double>(c));
    T const hit = static_cast<T>(1 - label_smoothing);
    ARCNET_CUDA_KERNEL(gpu::blocks_for(n * c), gpu::block_threads, 0, gpu::stream(),
                       cuda_kernels::loss_cross_entropy_backward)(
        prob.data(), t.data(), dy.data(), uniform, hit, dlogits.data(), n, c);
    ARCNET_CUDA_LAUNCH_CHECK("loss_cross_entropy_backward");
  }

 private:
  /// The targets on the device. A copy from pageable host memory has read the vector when it
  /// returns; the tensor's block goes back to the stream-ordered cache, safe for the kernel.
  static tensor<std::int64_t, cuda> device_targets(std::vector<std::int64_t> const& targets) {
    auto t = tensor<std::int64_t, cuda>::uninitialized(shape{static_cast<index_t>(targets.size())});
    gpu::copy(t.data(), targets.data(), static_cast<index_t>(targets.size()), cudaMemcpyHostToDevice);
    return t;
  }
};

}  // namespace arcnet::ops
