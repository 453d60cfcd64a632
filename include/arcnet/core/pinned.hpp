#pragma once
// to_device_async: a host-to-device copy that returns at once (PyTorch's
// `.to(device, non_blocking=True)`), the other half of the loader's pin_memory.
//
// From pinned memory (tensor::uninitialized_pinned, the loader's batches with pin_memory) the
// copy is queued with cudaMemcpyAsync on gpu::stream() and the host goes on: it enqueues the
// step's kernels, which run after the copy on the same stream, and the loader's workers fill the
// next batches meanwhile. The source must then stay unchanged until the copy has run; its memory
// is protected by the pinned cache (core/cuda.hpp): an event recorded after the copy keeps the
// block from being handed to another tensor until the copy has completed, even when the source
// tensor dies first (as the loader's previous batch does in the next next() call). Writing into
// the same tensor before the stream has reached the copy is the caller's error, as in PyTorch.
//
// From pageable memory the copy waits (it is staged through the driver): the result is the same,
// only without the overlap. In a program without nvcc only to_device_async<cpu> exists.
#include <type_traits>

#include "arcnet/core/device.hpp"
#include "arcnet/core/tensor.hpp"

namespace arcnet {

/// `host` on device D. D = cpu: `host` itself (no copy). D = cuda: a new device tensor whose copy
/// is queued on gpu::stream(); from pinned memory it returns before the copy has run (later work
/// on the stream sees the values), from pageable memory after.
template <class D, class T>
tensor<T, D> to_device_async(tensor<T, cpu> const& host) {
  static_assert(is_device_v<D>, "arcnet::to_device_async<D>: D must be arcnet::cpu or arcnet::cuda");
  if constexpr (std::is_same_v<D, cpu>) {
    return host;
  } else {
#if defined(__CUDACC__)
    auto t = tensor<T, cuda>::uninitialized(host.shape());
    if (host.numel() == 0) return t;
    if (host.is_pinned()) {
      ARCNET_CUDA_CHECK(cudaMemcpyAsync(t.data(), host.data(), static_cast<std::size_t>(host.numel()) * sizeof(T),
                                        cudaMemcpyHostToDevice, gpu::stream()));
      gpu::pinned_host_cache::instance().record_use(host.data(), gpu::stream());
    } else {
      // The synchronous path: whatever kind of host memory this is (pageable, or registered by
      // someone else), the source is free again on return.
      gpu::copy(t.data(), host.data(), host.numel(), cudaMemcpyHostToDevice);
      gpu::synchronize();
    }
    return t;
#else
    static_assert(detail::always_false<D>,
                  "arcnet::to_device_async<cuda> copies through CUDA: compile this translation unit with nvcc");
    return {};
#endif
  }
}

}  // namespace arcnet
