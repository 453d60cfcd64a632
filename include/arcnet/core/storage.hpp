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

#include "arcnet/core/cuda.hpp"

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

/// Page-locked (pinned) host memory comes from cudaHostAlloc, which only translation units
/// compiled by nvcc can call, while storage<T, cpu> is compiled by both compilers. So the CPU
/// storage reaches it through these hooks, which every nvcc translation unit fills in at start-up
/// (the end of this file; the cache is gpu::pinned_host_cache in core/cuda.hpp). A program built
/// by g++ alone has none, and asking it for pinned memory is a config_error. Hooks rather than
/// `#if __CUDACC__` inside storage<T, cpu> keep the class identical for both compilers, as the
/// one-definition rule requires of a program that mixes g++ and nvcc translation units.
struct pinned_host_hooks {
  void* (*allocate)(std::size_t bytes) = nullptr;  // throws device_error
  void (*release)(void* p) = nullptr;              // never throws
  int (*current_device)() = nullptr;               // the calling thread's CUDA device
  void (*bind_thread)(int device) = nullptr;       // makes `device` current in the calling thread
};
inline pinned_host_hooks& pinned_hooks() {
  static pinned_host_hooks hooks;
  return hooks;
}
/// Whether this program can allocate pinned host memory (it has an nvcc translation unit).
inline bool pinned_memory_available() { return pinned_hooks().allocate != nullptr; }
inline constexpr char const* pinned_memory_needs_cuda =
    "pinned (page-locked) host memory needs the CUDA build: it comes from cudaHostAlloc, which arcnet "
    "calls only in a program with a translation unit compiled by nvcc (.cu); in a CPU-only build "
    "leave pin_memory off (it only speeds up copies to a GPU)";
}  // namespace detail

/// Tag of storage<T, cpu>'s page-locked constructor.
struct pinned_memory_t {
  explicit pinned_memory_t() = default;
};
inline constexpr pinned_memory_t pinned_memory{};

/// Host memory, 64-byte aligned so that Eigen and the vectorised loops get aligned rows;
/// large blocks are recycled through detail::host_block_cache. With pinned_memory it is
/// page-locked instead (see pinned_host_hooks), so that the GPU copies it by DMA, asynchronously.
template <class T>
class storage<T, cpu> {
 public:
  static constexpr std::size_t alignment = detail::host_block_cache::alignment;
  explicit storage(index_t n) : size_(n) {
    if (n > 0)
      data_ = static_cast<T*>(detail::host_block_cache::instance().allocate(static_cast<std::size_t>(n) * sizeof(T)));
  }
  /// n elements of page-locked memory (page-aligned); config_error without the CUDA build.
  storage(index_t n, pinned_memory_t) : size_(n), pinned_(true) {
    auto const& hooks = detail::pinned_hooks();
    if (!hooks.allocate) detail::raise<config_error>(detail::pinned_memory_needs_cuda);
    if (n > 0) data_ = static_cast<T*>(hooks.allocate(static_cast<std::size_t>(n) * sizeof(T)));
  }
  ~storage() {
    if (!data_) return;
    if (pinned_) detail::pinned_hooks().release(data_);
    else detail::host_block_cache::instance().release(data_, static_cast<std::size_t>(size_) * sizeof(T));
  }
  storage(storage const&) = delete;
  storage& operator=(storage const&) = delete;
  T* data() { return data_; }
  T const* data() const { return data_; }
  index_t size() const { return size_; }
  /// Whether the memory is page-locked (cudaHostAlloc).
  bool pinned() const { return pinned_; }

 private:
  T* data_ = nullptr;
  index_t size_ = 0;
  bool pinned_ = false;
};

#if defined(__CUDACC__)
/// Device memory from gpu::caching_allocator (core/cuda.hpp): no cudaMalloc per tensor once a
/// training step has run.
template <class T>
class storage<T, cuda> {
 public:
  explicit storage(index_t n) : size_(n) {
    if (n > 0)
      data_ = static_cast<T*>(gpu::caching_allocator::instance().allocate(static_cast<std::size_t>(n) * sizeof(T)));
  }
  ~storage() { gpu::caching_allocator::instance().release(data_); }
  storage(storage const&) = delete;
  storage& operator=(storage const&) = delete;
  T* data() { return data_; }
  T const* data() const { return data_; }
  index_t size() const { return size_; }

 private:
  T* data_ = nullptr;
  index_t size_ = 0;
};

namespace detail {
/// Fills in pinned_hooks() with gpu::pinned_host_cache, once per program, before main().
inline bool register_pinned_hooks() {
  auto& hooks = pinned_hooks();
  hooks.allocate = [](std::size_t bytes) { return gpu::pinned_host_cache::instance().allocate(bytes); };
  hooks.release = [](void* p) { gpu::pinned_host_cache::instance().release(p); };
  hooks.current_device = [] { return gpu::current_device(); };
  hooks.bind_thread = [](int device) {
    // No throw on a worker thread: with a bad device the thread stays on its default one.
    if (cudaSetDevice(device) != cudaSuccess) cudaGetLastError();
  };
  return true;
}
inline bool const pinned_hooks_registered = register_pinned_hooks();
}  // namespace detail
#endif

}  // namespace arcnet
