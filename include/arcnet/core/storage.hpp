#pragma once
// storage<T, Device>: one reference-counted buffer, shared by every tensor view of it.
#include <cstddef>
#include <cstring>
#include <new>

#include "arcnet/core/device.hpp"
#include "arcnet/core/error.hpp"
#include "arcnet/core/shape.hpp"

#if defined(__CUDACC__)
#include <cuda_runtime.h>
#endif

namespace arcnet {

template <class T, class Device>
class storage {
  static_assert(detail::always_false<Device>,
                "arcnet::storage: no backend for this device; CUDA storage exists only in "
                "translation units compiled by nvcc (.cu)");
};

/// Host memory, 64-byte aligned so that Eigen and the vectorised loops get aligned rows.
template <class T>
class storage<T, cpu> {
 public:
  static constexpr std::size_t alignment = 64;
  explicit storage(index_t n) : size_(n) {
    if (n > 0) {
      data_ = static_cast<T*>(::operator new(static_cast<std::size_t>(n) * sizeof(T),
                                             std::align_val_t(alignment)));
    }
  }
  ~storage() {
    if (data_) ::operator delete(data_, std::align_val_t(alignment));
  }
  storage(storage const&) = delete;
  storage& operator=(storage const&) = delete;
  T* data() { return data_; }
  T const* data() const { return data_; }
  index_t size() const { return size_; }

 private:
  T* data_ = nullptr;
  index_t size_ = 0;
};

#if defined(__CUDACC__)
namespace detail {
inline void cuda_check(cudaError_t status, char const* call, char const* file, int line) {
  if (status != cudaSuccess)
    raise<device_error>(call, " failed at ", file, ":", line, ": ", cudaGetErrorString(status));
}
}  // namespace detail
#define ARCNET_CUDA_CHECK(call) ::arcnet::detail::cuda_check((call), #call, __FILE__, __LINE__)

/// Device memory (plain cudaMalloc; the caching allocator replaces this in the CUDA backend).
template <class T>
class storage<T, cuda> {
 public:
  explicit storage(index_t n) : size_(n) {
    if (n > 0)
      ARCNET_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&data_),
                                   static_cast<std::size_t>(n) * sizeof(T)));
  }
  ~storage() {
    if (data_) cudaFree(data_);
  }
  storage(storage const&) = delete;
  storage& operator=(storage const&) = delete;
  T* data() { return data_; }
  T const* data() const { return data_; }
  index_t size() const { return size_; }

 private:
  T* data_ = nullptr;
  index_t size_ = 0;
};
#endif

}  // namespace arcnet
