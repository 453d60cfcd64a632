#pragma once
// The CUDA runtime as arcnet uses it (nvcc only): status checks that throw arcnet::device_error,
// one stream per device that every op and copy runs on, the cuBLAS handle bound to that stream,
// launch sizes for grid-stride kernels, and a stream-ordered caching allocator.
//
// One stream per device keeps the ordering simple: a kernel sees everything enqueued before it,
// so a block the allocator hands out again after a tensor died is safe to reuse at once (every
// kernel that still reads the old tensor is ahead of the new writer on the same stream). Host
// code waits only where it reads results back (to<cpu>(), item()) or calls gpu::synchronize().
#include "arcnet/core/bfloat16.hpp"
#include "arcnet/core/error.hpp"
#include "arcnet/core/shape.hpp"

#if defined(__CUDACC__)
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdlib>
#include <map>
#include <mutex>
#include <vector>

namespace arcnet {

namespace detail {
inline void cuda_check(cudaError_t status, char const* call, char const* file, int line) {
  if (status != cudaSuccess)
    raise<device_error>(call, " failed at ", file, ":", line, ": ", cudaGetErrorName(status), ": ",
                        cudaGetErrorString(status));
}
inline void cublas_check(cublasStatus_t status, char const* call, char const* file, int line) {
  if (status != CUBLAS_STATUS_SUCCESS)
    raise<device_error>(call, " failed at ", file, ":", line, ": ", cublasGetStatusName(status), ": ",
                        cublasGetStatusString(status));
}
}  // namespace detail

}  // namespace arcnet

/// Throws arcnet::device_error naming the call, the place and CUDA's message unless it succeeded.
#define ARCNET_CUDA_CHECK(call) ::arcnet::detail::cuda_check((call), #call, __FILE__, __LINE__)
#define ARCNET_CUBLAS_CHECK(call) ::arcnet::detail::cublas_check((call), #call, __FILE__, __LINE__)
/// ARCNET_CUDA_KERNEL(grid, block, shared_bytes, stream, kernel)(args...) launches a kernel:
/// kernel<<<grid, block, shared_bytes, stream>>>(args...) written as a macro, so that the host
/// emulator of the tests (tests/cuda_emulator/) can run the same kernels on the CPU by defining
/// it first. The kernel comes last because a template argument list may hold commas.
#if !defined(ARCNET_CUDA_KERNEL)
#define ARCNET_CUDA_KERNEL(grid, block, shared_bytes, stream, ...) __VA_ARGS__<<<grid, block, shared_bytes, stream>>>
#endif
/// After a kernel launch: a bad configuration (or an earlier asynchronous fault) becomes an error
/// that names the kernel.
#define ARCNET_CUDA_LAUNCH_CHECK(kernel) \
  ::arcnet::detail::cuda_check(cudaGetLastError(), "launch of " kernel, __FILE__, __LINE__)

namespace arcnet::gpu {

inline constexpr int max_devices = 64;

/// The device the calling thread works on (cudaGetDevice).
inline int current_device() {
  int d = 0;
  ARCNET_CUDA_CHECK(cudaGetDevice(&d));
  return d;
}

namespace detail {
/// The stream and cuBLAS handle of one device, made on first use and kept for the process.
struct device_context {
  cudaStream_t stream = nullptr;
  cublasHandle_t blas = nullptr;
  int multiprocessors = 0;
};
inline device_context& context(int device) {
  static std::array<device_context*, max_devices> contexts{};
  static std::mutex mutex;
  if (device < 0 || device >= max_devices)
    arcnet::detail::raise<device_error>("CUDA device ", device, " is out of range [0, ", max_devices, ")");
  std::lock_guard<std::mutex> lock(mutex);
  if (!contexts[static_cast<std::size_t>(device)]) {
    auto* c = new device_context();  // never destroyed: tensors may outlive main()
    // A blocking stream (not cudaStreamNonBlocking): it also orders against the legacy default
    // stream, so a user's own cudaMemcpy next to arcnet code stays correct.
    ARCNET_CUDA_CHECK(cudaStreamCreate(&c->stream));
    ARCNET_CUBLAS_CHECK(cublasCreate(&c->blas));
    ARCNET_CUBLAS_CHECK(cublasSetStream(c->blas, c->stream));
    ARCNET_CUDA_CHECK(cudaDeviceGetAttribute(&c->multiprocessors, cudaDevAttrMultiProcessorCount, device));
    contexts[static_cast<std::size_t>(device)] = c;
  }
  return *contexts[static_cast<std::size_t>(device)];
}
}  // namespace detail

/// The stream every arcnet kernel, GEMM and copy on the current device is enqueued on.
inline cudaStream_t stream() { return detail::context(current_device()).stream; }
/// The cuBLAS handle of the current device, bound to stream().
inline cublasHandle_t blas() { return detail::context(current_device()).blas; }
/// Waits until everything enqueued on stream() has run; reports an asynchronous fault.
inline void synchronize() { ARCNET_CUDA_CHECK(cudaStreamSynchronize(stream())); }

/// Threads per block of the element-wise kernels.
inline constexpr int block_threads = 256;
/// Blocks for a grid-stride loop over n items: enough to fill the device, never more than needed.
inline unsigned blocks_for(index_t n, int threads = block_threads) {
  index_t const wanted = (n + threads - 1) / threads;
  index_t const cap = index_t(detail::context(current_device()).multiprocessors) * 32;
  return static_cast<unsigned>(std::max<index_t>(1, std::min(wanted, std::max<index_t>(cap, 1))));
}

/// Usage counters of the caching allocator, for tests and benchmarks.
struct allocator_stats {
  std::size_t in_use = 0;        // bytes handed out and not yet released
  std::size_t cached = 0;        // bytes kept for reuse
  std::size_t peak_in_use = 0;   // high-water mark of in_use
  std::size_t device_mallocs = 0;  // cudaMalloc calls so far (steady state: none per step)
  std::size_t reuses = 0;        // requests served from the cache
};

/// Device memory without a cudaMalloc / cudaFree per tensor. Sizes are rounded (to 512 bytes
/// below 1 MiB, to 2 MiB above) and freed blocks wait in per-(device, size) lists for the next
/// request of that size: a training step asks for the same sizes every iteration, so after the
/// first step every request is a reuse. When cudaMalloc runs out of memory the cache is
/// returned to the driver and the call retried once. ARCNET_CUDA_CACHE=0 turns caching off, so
/// that compute-sanitizer sees every use after free.
class caching_allocator {
 public:
  static caching_allocator& instance() {
    static caching_allocator* a = new caching_allocator();  // never destroyed, as the contexts
    return *a;
  }
  static std::size_t round_size(std::size_t bytes) {
    constexpr std::size_t small = 512, large = std::size_t(2) << 20;
    std::size_t const unit = bytes < (std::size_t(1) << 20) ? small : large;
    return (bytes + unit - 1) / unit * unit;
  }

  void* allocate(std::size_t bytes) {
    if (bytes == 0) return nullptr;
    std::size_t const size = round_size(bytes);
    int const device = current_device();
    std::lock_guard<std::mutex> lock(mutex_);
    if (enabled_) {
      auto it = free_.find(key{device, size});
      if (it != free_.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        stats_.cached -= size;
        ++stats_.reuses;
        note_use(size);
        return p;
      }
    }
    void* p = nullptr;
    cudaError_t status = cudaMalloc(&p, size);
    if (status == cudaErrorMemoryAllocation) {
      cudaGetLastError();  // clear it, give the cache back and try once more
      release_cached_locked();
      status = cudaMalloc(&p, size);
    }
    if (status != cudaSuccess) {
      cudaGetLastError();
      arcnet::detail::raise<device_error>("cudaMalloc of ", size, " bytes on device ", device, " failed: ",
                                          cudaGetErrorString(status), " (arcnet holds ", stats_.in_use,
                                          " bytes in tensors on all devices)");
    }
    ++stats_.device_mallocs;
    sizes_[p] = block{device, size};
    note_use(size);
    return p;
  }

  void release(void* p) {
    if (!p) return;
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = sizes_.find(p);
    if (it == sizes_.end()) return;  // not ours; never throw on a destructor's path
    block const b = it->second;
    stats_.in_use -= b.size;
    if (enabled_) {
      free_[key{b.device, b.size}].push_back(p);
      stats_.cached += b.size;
    } else {
      sizes_.erase(it);
      cudaFree(p);  // no throw from a destructor path; a fault shows at the next checked call
    }
  }

  /// Returns every cached block to the driver (waits for the device first).
  void empty_cache() {
    std::lock_guard<std::mutex> lock(mutex_);
    release_cached_locked();
  }
  allocator_stats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }
  bool caching() const { return enabled_; }

 private:
  struct key {
    int device;
    std::size_t size;
    bool operator<(key const& o) const { return device != o.device ? device < o.device : size < o.size; }
  };
  struct block {
    int device;
    std::size_t size;
  };

  caching_allocator() {
    char const* env = std::getenv("ARCNET_CUDA_CACHE");
    enabled_ = !(env && env[0] == '0' && env[1] == '\0');
  }
  void note_use(std::size_t size) {
    stats_.in_use += size;
    stats_.peak_in_use = std::max(stats_.peak_in_use, stats_.in_use);
  }
  void release_cached_locked() {
    cudaDeviceSynchronize();
    for (auto& [k, list] : free_) {
      for (void* p : list) {
        sizes_.erase(p);
        cudaFree(p);
      }
      list.clear();
    }
    free_.clear();
    stats_.cached = 0;
  }

  std::mutex mutex_;
  bool enabled_ = true;
  std::map<key, std::vector<void*>> free_;
  std::map<void*, block> sizes_;
  allocator_stats stats_;
};

inline allocator_stats memory_stats() { return caching_allocator::instance().stats(); }
inline void empty_cache() { caching_allocator::instance().empty_cache(); }

namespace kernels {
template <class T>
__global__ void fill(T* p, index_t n, T value) {
  for (index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x; i < n; i += index_t(gridDim.x) * blockDim.x)
    p[i] = value;
}
template <class T>
__global__ void add(T* dst, T const* src, index_t n) {
  for (index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x; i < n; i += index_t(gridDim.x) * blockDim.x)
    dst[i] = element_add(dst[i], src[i]);
}
template <class T>
__global__ void add_scalar(T* dst, index_t n, T value) {
  for (index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x; i < n; i += index_t(gridDim.x) * blockDim.x)
    dst[i] += value;
}
template <class T>
__global__ void gather_rows(T* dst, T const* src, index_t const* rows, index_t n, index_t d) {
  for (index_t k = blockIdx.x * index_t(blockDim.x) + threadIdx.x; k < n * d; k += index_t(gridDim.x) * blockDim.x)
    dst[k] = src[rows[k / d] * d + k % d];
}
template <class T>
__global__ void add_rows(T* dst, index_t const* rows, T const* src, index_t n, index_t d) {
  for (index_t k = blockIdx.x * index_t(blockDim.x) + threadIdx.x; k < n * d; k += index_t(gridDim.x) * blockDim.x)
    dst[rows[k / d] * d + k % d] += src[k];
}
}  // namespace kernels

/// dst[i] += src[i] for i in [0, n), on stream(); for core code below ops/ (autograd's seed).
template <class T>
void add(T* dst, T const* src, index_t n) {
  if (n <= 0) return;
  ARCNET_CUDA_KERNEL(blocks_for(n), block_threads, 0, stream(), kernels::add)(dst, src, n);
  ARCNET_CUDA_LAUNCH_CHECK("gpu::kernels::add");
}
/// dst[i] += value for i in [0, n), on stream() (a counter kept on the device).
template <class T>
void add_scalar(T* dst, index_t n, T value) {
  if (n <= 0) return;
  ARCNET_CUDA_KERNEL(blocks_for(n), block_threads, 0, stream(), kernels::add_scalar)(dst, n, value);
  ARCNET_CUDA_LAUNCH_CHECK("gpu::kernels::add_scalar");
}

/// dst (n, d) = rows rows[0..n) of src (., d), on stream(); rows is a device array.
template <class T>
void gather_rows(T* dst, T const* src, index_t const* rows, index_t n, index_t d) {
  if (n <= 0 || d <= 0) return;
  ARCNET_CUDA_KERNEL(blocks_for(n * d), block_threads, 0, stream(), kernels::gather_rows)(dst, src, rows, n, d);
  ARCNET_CUDA_LAUNCH_CHECK("gpu::kernels::gather_rows");
}
/// Rows rows[0..n) of dst (., d) += src (n, d), on stream(); the rows must be distinct (no atomics).
template <class T>
void add_rows(T* dst, index_t const* rows, T const* src, index_t n, index_t d) {
  if (n <= 0 || d <= 0) return;
  ARCNET_CUDA_KERNEL(blocks_for(n * d), block_threads, 0, stream(), kernels::add_rows)(dst, rows, src, n, d);
  ARCNET_CUDA_LAUNCH_CHECK("gpu::kernels::add_rows");
}

/// p[0, n) = value, on stream().
template <class T>
void fill(T* p, index_t n, T value) {
  if (n <= 0) return;
  ARCNET_CUDA_KERNEL(blocks_for(n), block_threads, 0, stream(), kernels::fill)(p, n, value);
  ARCNET_CUDA_LAUNCH_CHECK("gpu::kernels::fill");
}

/// Copies n elements between host and device or device and device, ordered on stream(). A copy
/// to the host waits for it, so the host may read the values at once.
template <class T>
void copy(T* dst, T const* src, index_t n, cudaMemcpyKind kind) {
  if (n <= 0 || dst == src) return;
  ARCNET_CUDA_CHECK(cudaMemcpyAsync(dst, src, static_cast<std::size_t>(n) * sizeof(T), kind, stream()));
  if (kind == cudaMemcpyDeviceToHost) synchronize();
}

}  // namespace arcnet::gpu


// ---- Pinned (page-locked) host memory ----------------------------------------------------------
namespace arcnet::gpu {

/// Usage counters of the pinned host cache, for tests and benchmarks.
struct pinned_stats {
  std::size_t in_use = 0;      // bytes held by live tensors
  std::size_t cached = 0;      // bytes kept for reuse (some may still be read by a copy)
  std::size_t host_allocs = 0; // cudaHostAlloc calls so far (steady state: none per batch)
  std::size_t reuses = 0;      // requests served from the cache
};

/// Page-locked host blocks for tensor<T, cpu>::uninitialized_pinned (the loader's batches with
/// pin_memory). cudaHostAlloc costs milliseconds (it pins every page), so freed blocks wait in
/// per-size lists for the next request of that size, like host_block_cache does for pageable
/// memory. Unlike device blocks, a host block cannot be handed out again as soon as its tensor
/// dies: an asynchronous copy from it (to_device_async, core/pinned.hpp) may still be queued on
/// the stream, and the next owner's host writes are not ordered after it. So every such copy
/// records a CUDA event on the block (record_use), and a freed block is reused only once all its
/// events have completed; until then a request of that size gets another block. This is
/// PyTorch's CachingHostAllocator scheme; the number of blocks stays bounded by the batches in
/// flight. Sizes are rounded up to whole 4 KiB pages. At most ARCNET_PINNED_CACHE_MB (default
/// 2048) MiB of idle blocks are kept. Never destroyed, as the other caches.
class pinned_host_cache {
 public:
  static pinned_host_cache& instance() {
    static pinned_host_cache* c = new pinned_host_cache();
    return *c;
  }
  static std::size_t round_size(std::size_t bytes) {
    constexpr std::size_t page = 4096;
    return (bytes + page - 1) / page * page;
  }

  /// A block of at least `bytes` page-locked bytes (portable: pinned for every device).
  void* allocate(std::size_t bytes) {
    if (bytes == 0) return nullptr;
    std::size_t const size = round_size(bytes);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto range = free_.equal_range(size);
      for (auto it = range.first; it != range.second; ++it) {
        block& b = blocks_.at(it->second);
        if (!copies_done_locked(b, true)) continue;  // still the source of a queued copy
        char* p = it->second;
        free_.erase(it);
        b.free = false;
        stats_.cached -= size;
        stats_.in_use += size;
        ++stats_.reuses;
        return p;
      }
    }
    // cudaHostAlloc is slow and takes no lock of ours: other threads keep allocating and freeing.
    void* p = nullptr;
    cudaError_t status = cudaHostAlloc(&p, size, cudaHostAllocPortable);
    if (status == cudaErrorMemoryAllocation) {
      cudaGetLastError();  // clear it, give the idle blocks back and try once more
      {
        std::lock_guard<std::mutex> lock(mutex_);
        trim_locked(0);
      }
      status = cudaHostAlloc(&p, size, cudaHostAllocPortable);
    }
    if (status != cudaSuccess) {
      cudaGetLastError();
      std::lock_guard<std::mutex> lock(mutex_);
      arcnet::detail::raise<device_error>("cudaHostAlloc of ", size, " bytes of pinned host memory failed: ",
                                          cudaGetErrorString(status), " (arcnet holds ", stats_.in_use,
                                          " pinned bytes in tensors and ", stats_.cached, " cached)");
    }
    std::lock_guard<std::mutex> lock(mutex_);
    blocks_[static_cast<char*>(p)] = block{size, false, {}};
    stats_.in_use += size;
    ++stats_.host_allocs;
    return p;
  }

  /// Takes a block back from its dying tensor. Never throws (a destructor's path).
  void release(void* p) noexcept {
    if (!p) return;
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = blocks_.find(static_cast<char*>(p));
    if (it == blocks_.end() || it->second.free) return;  // not ours
    it->second.free = true;
    free_.emplace(it->second.size, it->first);
    stats_.in_use -= it->second.size;
    stats_.cached += it->second.size;
    if (stats_.cached > limit_) trim_locked(limit_);
  }

  /// Whether p points into a block of this cache (allocated or cached).
  bool owns(void const* p) {
    std::lock_guard<std::mutex> lock(mutex_);
    return find_locked(p) != blocks_.end();
  }

  /// Records an event on `s` after the work enqueued so far (a copy that reads the block holding
  /// p): the block is not handed out again before that event has completed.
  void record_use(void const* p, cudaStream_t s) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = find_locked(p);
    if (it == blocks_.end())
      arcnet::detail::raise<error>("pinned_host_cache::record_use: ", p, " is not pinned memory of arcnet's cache");
    copies_done_locked(it->second, true);  // a tensor copied every step keeps few events
    cudaEvent_t e = nullptr;
    ARCNET_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    cudaError_t const status = cudaEventRecord(e, s);
    if (status != cudaSuccess) {
      cudaEventDestroy(e);
      arcnet::detail::cuda_check(status, "cudaEventRecord(copy from pinned memory)", __FILE__, __LINE__);
    }
    it->second.events.push_back(e);
  }

  /// Waits for the copies that still read idle blocks, then returns every idle block to the driver.
  void empty_cache() {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& [size, p] : free_) {
      block& b = blocks_.at(p);
      for (cudaEvent_t e : b.events) {
        cudaEventSynchronize(e);
        cudaEventDestroy(e);
      }
      b.events.clear();
    }
    trim_locked(0);
  }
  pinned_stats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }

 private:
  struct block {
    std::size_t size = 0;
    bool free = false;
    std::vector<cudaEvent_t> events;  // copies from the block that may not have completed
  };

  pinned_host_cache() {
    char const* env = std::getenv("ARCNET_PINNED_CACHE_MB");
    limit_ = static_cast<std::size_t>(env ? std::strtoull(env, nullptr, 10) : 2048ull) << 20;
  }

  std::map<char*, block>::iterator find_locked(void const* p) {
    auto const* c = static_cast<char const*>(p);
    auto it = blocks_.upper_bound(const_cast<char*>(c));
    if (it == blocks_.begin()) return blocks_.end();
    --it;
    return c < it->first + it->second.size ? it : blocks_.end();
  }

  // Drops the completed events of b, oldest first; true when none is left. A device fault seen by
  // the query throws when `raise` (allocate), else counts as "not done" (the destructor's path).
  bool copies_done_locked(block& b, bool raise) {
    while (!b.events.empty()) {
      cudaError_t const status = cudaEventQuery(b.events.front());
      if (status == cudaErrorNotReady) {
        cudaGetLastError();  // not an error: keep it out of the next launch check
        return false;
      }
      if (status != cudaSuccess) {
        cudaGetLastError();
        if (raise) arcnet::detail::cuda_check(status, "cudaEventQuery(copy from pinned memory)", __FILE__, __LINE__);
        return false;
      }
      cudaEventDestroy(b.events.front());
      b.events.erase(b.events.begin());
    }
    return true;
  }

  // Frees idle blocks whose copies have completed until at most `keep` bytes stay cached.
  void trim_locked(std::size_t keep) {
    for (auto it = free_.begin(); it != free_.end() && stats_.cached > keep;) {
      auto bit = blocks_.find(it->second);
      if (!copies_done_locked(bit->second, false)) {
        ++it;
        continue;
      }
      cudaFreeHost(it->second);  // no throw: this runs on a destructor's path too
      stats_.cached -= bit->second.size;
      blocks_.erase(bit);
      it = free_.erase(it);
    }
  }

  std::mutex mutex_;
  std::size_t limit_ = 0;
  std::map<char*, block> blocks_;          // every block, by address (owns() finds inner pointers)
  std::multimap<std::size_t, char*> free_; // idle blocks by size
  pinned_stats stats_;
};

inline pinned_stats pinned_memory_stats() { return pinned_host_cache::instance().stats(); }
/// Returns the idle pinned blocks to the driver (after the copies that read them).
inline void empty_pinned_cache() { pinned_host_cache::instance().empty_cache(); }

}  // namespace arcnet::gpu

#endif  // __CUDACC__
