#pragma once
// storage<T, Device>: one reference-counted buffer, shared by every tensor view of it.
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
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

namespace detail {
/// Keeps freed host blocks of 1 MiB and more for reuse by the next allocation of the same size.
/// A training step allocates the same activation sizes every iteration; fresh pages from the
/// system cost a page fault per 4 KiB, as much as the GEMM of a 1x1 convolution. At most
/// ARCNET_HOST_CACHE_MB (default 2048) MiB are kept; never destroyed, so tensors that outlive
/// main() can still free into it.
class host_block_cache {
 public:
  static constexpr std::size_t alignment = 64;
  static constexpr std::size_t min_cached = std::size_t(1) << 20;

  static host_block_cache& instance() {
    static host_block_cache* cache = new host_block_cache();
    return *cache;
  }
  void* allocate(std::size_t bytes) {
    if (bytes >= min_cached) {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = free_.find(bytes);
      if (it != free_.end()) {
        void* p = it->second;
        free_.erase(it);
        cached_ -= bytes;
        return p;
      }
    }
    return ::operator new(bytes, std::align_val_t(alignment));
  }
  void release(void* p, std::size_t bytes) {
    if (bytes >= min_cached) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (cached_ + bytes <= limit_) {
        free_.emplace(bytes, p);
        cached_ += bytes;
        return;
      }
    }
    ::operator delete(p, std::align_val_t(alignment));
  }
  /// Returns every cached block to the system.
  void trim() {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& [bytes, p] : free_) ::operator delete(p, std::align_val_t(alignment));
    free_.clear();
    cached_ = 0;
  }
  std::size_t cached_bytes() {
    std::lock_guard<std::mutex> lock(mutex_);
    return cached_;
  }

 private:
  host_block_cache() {
    char const* env = std::getenv("ARCNET_HOST_CACHE_MB");
    limit_ = (env ? std::strtoull(env, nullptr, 10) : 2048ull) << 20;
  }
  std::mutex mutex_;
  std::multimap<std::size_t, void*> free_;
  std::size_t cached_ = 0, limit_ = 0;
};
}  // namespace detail

/// Host memory, 64-byte aligned so that Eigen and the vectorised loops get aligned rows;
/// large blocks are recycled through detail::host_block_cache.
template <class T>
class storage<T, cpu> {
 public:
  static constexpr std::size_t alignment = detail::host_block_cache::alignment;
  explicit storage(index_t n) : size_(n) {
    if (n > 0)
      data_ = static_cast<T*>(detail::host_block_cache::instance().allocate(static_cast<std::size_t>(n) * sizeof(T)));
  }
  ~storage() {
    if (data_) detail::host_block_cache::instance().release(data_, static_cast<std::size_t>(size_) * sizeof(T));
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
