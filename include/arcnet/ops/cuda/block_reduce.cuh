#pragma once
// Block-wide reductions for the CUDA kernels (nvcc only): a warp-shuffle tree inside each warp,
// then the same tree over the warps' results. The order is fixed for a given blockDim, so a
// kernel gives the same bits on every run (no atomics).
namespace arcnet::ops::cuda_kernels {

template <class V>
struct sum_op {
  __device__ V operator()(V a, V b) const { return a + b; }
};
template <class V>
struct max_op {
  // std::max(a, b) of the CPU: b only when a < b, so a NaN never replaces the running maximum.
  __device__ V operator()(V a, V b) const { return a < b ? b : a; }
};

/// The reduction of v over the block with op (identity for the missing lanes), returned to every
/// thread. Every thread of the block must call it; blockDim.x is a multiple of 32, at most 1024.
template <class V, class Op>
__device__ V block_reduce(V v, Op op, V identity) {
  __shared__ V partial[32];
  unsigned const lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_down_sync(0xffffffffu, v, o));
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < (blockDim.x >> 5) ? partial[lane] : identity;
    for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_down_sync(0xffffffffu, v, o));
    if (lane == 0) partial[0] = v;
  }
  __syncthreads();
  V const result = partial[0];
  __syncthreads();  // partial may be written again by the next call
  return result;
}

/// The sum of v over the block, returned to every thread (see block_reduce).
template <class V>
__device__ V block_sum(V v) {
  return block_reduce(v, sum_op<V>(), V(0));
}

}  // namespace arcnet::ops::cuda_kernels
