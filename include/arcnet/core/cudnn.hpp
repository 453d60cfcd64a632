#pragma once
// cuDNN as arcnet uses it: the status check and one handle per device, bound to gpu::stream().
// Optional: compiled only by nvcc and only when the build found cuDNN (CMake defines
// ARCNET_WITH_CUDNN and links libcudnn; see cmake/arcnet_cuda.cmake). Without it the
// convolutions run on im2col + cuBLAS (ops/cuda/conv2d.cuh), which needs nothing but cuBLAS.
#include "arcnet/core/cuda.hpp"

#if defined(__CUDACC__) && defined(ARCNET_WITH_CUDNN)
#include <cudnn.h>

#include <array>
#include <cstddef>
#include <mutex>

namespace arcnet {
namespace detail {
inline void cudnn_check(cudnnStatus_t status, char const* call, char const* file, int line) {
  if (status != CUDNN_STATUS_SUCCESS)
    raise<device_error>(call, " failed at ", file, ":", line, ": ", cudnnGetErrorString(status));
}
}  // namespace detail
}  // namespace arcnet

/// Throws arcnet::device_error naming the call, the place and cuDNN's message unless it succeeded.
#define ARCNET_CUDNN_CHECK(call) ::arcnet::detail::cudnn_check((call), #call, __FILE__, __LINE__)

namespace arcnet::gpu {

/// The cuDNN handle of the current device, made on first use (never destroyed, as the stream it
/// is bound to) and bound to stream().
inline cudnnHandle_t dnn() {
  static std::array<cudnnHandle_t, max_devices> handles{};
  static std::mutex mutex;
  cudaStream_t const s = stream();  // checks the device number too
  int const device = current_device();
  std::lock_guard<std::mutex> lock(mutex);
  cudnnHandle_t& h = handles[static_cast<std::size_t>(device)];
  if (!h) {
    ARCNET_CUDNN_CHECK(cudnnCreate(&h));
    ARCNET_CUDNN_CHECK(cudnnSetStream(h, s));
  }
  return h;
}

}  // namespace arcnet::gpu

#endif
