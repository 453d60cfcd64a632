#pragma once
// CUDA backend of ops/cast.hpp (nvcc only): one grid-stride kernel per direction; each element
// is read and written by one thread.
#include "arcnet/core/cuda.hpp"
#include "arcnet/core/tensor.hpp"

namespace arcnet::ops {

namespace cuda_kernels {
template <class T, class U>
__global__ void cast_forward(T const* x, U* y, index_t n) {
  for (index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x; i < n; i += index_t(gridDim.x) * blockDim.x)
    y[i] = convert<U>(x[i]);
}
template <class U, class T>
__global__ void cast_backward(U const* dy, T* dx, index_t n) {
  using C = compute_t<T>;
  for (index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x; i < n; i += index_t(gridDim.x) * blockDim.x)
    dx[i] = convert<T>(convert<C>(dx[i]) + convert<C>(dy[i]));
}
}  // namespace cuda_kernels

template <>
struct cast_impl<cuda> {
  template <class T, class U>
  static void forward(tensor<T, cuda> const& x, tensor<U, cuda>& y) {
    index_t const n = x.numel();
    if (n == 0) return;
    ARCNET_CUDA_KERNEL(gpu::blocks_for(n), gpu::block_threads, 0, gpu::stream(), cuda_kernels::cast_forward<T, U>)(
        x.data(), y.data(), n);
    ARCNET_CUDA_LAUNCH_CHECK("cast_forward");
  }
  template <class U, class T>
  static void backward(tensor<U, cuda> const& dy, tensor<T, cuda>& dx) {
    index_t const n = dx.numel();
    if (n == 0) return;
    ARCNET_CUDA_KERNEL(gpu::blocks_for(n), gpu::block_threads, 0, gpu::stream(), cuda_kernels::cast_backward<U, T>)(
        dy.data(), dx.data(), n);
    ARCNET_CUDA_LAUNCH_CHECK("cast_backward");
  }
};

}  // namespace arcnet::ops
