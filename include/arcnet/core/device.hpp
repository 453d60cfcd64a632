#pragma once
// Device tags. Tensors, ops and layers are templates on the tag; a backend is chosen by
// specialising on it, never by a runtime `if`.
#include <string>
#include <type_traits>

#if defined(__CUDACC__)
#include <cuda_runtime.h>
#endif

namespace arcnet {

struct cpu {
  static constexpr char const* name = "cpu";
};
struct cuda {
  static constexpr char const* name = "cuda";
};

template <class D>
inline constexpr bool is_device_v = std::is_same_v<D, cpu> || std::is_same_v<D, cuda>;

namespace detail {
template <class...>
inline constexpr bool always_false = false;
}  // namespace detail

#if defined(__CUDACC__)
/// Why no CUDA device can be used here ("" when one can): CUDA's own message (no driver, a
/// driver older than the runtime, ...) or "no CUDA device found"; the error is cleared so that
/// later calls do not report it. Only in translation units compiled by nvcc.
inline std::string cuda_device_problem() {
  int count = 0;
  cudaError_t const status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    cudaGetLastError();
    return std::string(cudaGetErrorName(status)) + ": " + cudaGetErrorString(status);
  }
  return count > 0 ? std::string() : std::string("no CUDA device found");
}
/// True when the CUDA runtime sees at least one usable device.
inline bool cuda_device_available() { return cuda_device_problem().empty(); }
#endif

}  // namespace arcnet
