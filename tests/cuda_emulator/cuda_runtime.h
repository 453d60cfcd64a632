#pragma once
// The emulator's CUDA runtime API (see emulator.hpp): the calls arcnet makes, on devices whose
// memory is host memory, with streams that run their work when the host waits for it.
#include "emulator.hpp"

typedef struct arcnet_emu_stream* cudaStream_t;
typedef struct arcnet_emu_event* cudaEvent_t;
/// A recorded event: done once its stream has completed `ticket` tasks.
struct arcnet_emu_event {
  arcnet_emu_stream* stream = nullptr;
  std::uint64_t ticket = 0;
};

enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
};
enum cudaMemoryType {
  cudaMemoryTypeUnregistered = 0,
  cudaMemoryTypeHost = 1,
  cudaMemoryTypeDevice = 2,
  cudaMemoryTypeManaged = 3,
};
struct cudaPointerAttributes {
  cudaMemoryType type;
  int device;
  void* devicePointer;
  void* hostPointer;
};
enum cudaDeviceAttr { cudaDevAttrMaxThreadsPerBlock = 1, cudaDevAttrMultiProcessorCount = 16 };

#define cudaStreamDefault 0x00
#define cudaStreamNonBlocking 0x01
#define cudaEventDefault 0x00
#define cudaEventDisableTiming 0x02
#define cudaHostAllocDefault 0x00
#define cudaHostAllocPortable 0x01

namespace arcnet_emu {
/// Multiprocessors the emulated device reports: grid-stride kernels then launch few blocks.
inline constexpr int multiprocessors = 2;
/// Checks a copy's pointers against its direction (the copy itself is the caller's).
inline cudaError_t check_copy(void* dst, void const* src, std::size_t bytes, cudaMemcpyKind kind) {
  if (!dst || !src) return cudaErrorInvalidValue;
  bool const dst_device = is_device_pointer(dst), src_device = is_device_pointer(src);
  bool ok = true;
  switch (kind) {
    case cudaMemcpyHostToDevice: ok = !src_device && memory().device_range(dst, bytes); break;
    case cudaMemcpyDeviceToHost: ok = memory().device_range(src, bytes) && !dst_device; break;
    case cudaMemcpyDeviceToDevice: ok = memory().device_range(src, bytes) && memory().device_range(dst, bytes); break;
    case cudaMemcpyHostToHost: ok = !src_device && !dst_device; break;
    case cudaMemcpyDefault: ok = (!dst_device || memory().device_range(dst, bytes)) &&
                                 (!src_device || memory().device_range(src, bytes));
      break;
  }
  if (!ok) {
    report("cudaMemcpy of " + std::to_string(bytes) + " bytes, kind " + std::to_string(kind) +
                                    ": the pointers do not match the direction (or the range leaves its allocation)");
    return cudaErrorInvalidValue;
  }
  return cudaSuccess;
}

/// Whether p is pinned memory (cudaHostAlloc) that holds `bytes` from p on.
inline bool pinned(void const* p, std::size_t bytes) { return memory().in_range(p, bytes, memory_kind::pinned); }

/// A queued copy that moves pinned host memory: at its run the block must still be allocated,
/// else a GPU would read or write memory the host has freed (and maybe handed out again).
inline task pinned_copy(void* dst, void const* src, std::size_t bytes, void const* host) {
  return [=] {
    if (!pinned(host, bytes))
      return fail(cudaErrorLaunchFailure, "a queued copy of " + std::to_string(bytes) +
                                              " bytes runs after its pinned host memory was freed");
    std::memmove(dst, src, bytes);
  };
}

/// The asynchronous fault of the work waited for, if any (reported once).
inline cudaError_t take_error() { return errors().sticky.exchange(cudaSuccess); }
}  // namespace arcnet_emu

inline cudaError_t cudaGetLastError() { return arcnet_emu::errors().sticky.exchange(cudaSuccess); }
inline cudaError_t cudaPeekAtLastError() { return arcnet_emu::errors().sticky; }
inline char const* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
  }
  return "cudaErrorUnknown";
}
inline char const* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorNotReady: return "device not ready";
    case cudaErrorLaunchFailure: return "unspecified launch failure (cuda emulator: see stderr)";
  }
  return "unknown error";
}

// ---- devices ----
inline cudaError_t cudaGetDeviceCount(int* n) {
  *n = arcnet_emu::device_count();
  return cudaSuccess;
}
inline cudaError_t cudaGetDevice(int* d) {
  *d = arcnet_emu::current_device();
  return cudaSuccess;
}
inline cudaError_t cudaSetDevice(int d) {
  if (d < 0 || d >= arcnet_emu::device_count()) return arcnet_emu::errors().sticky = cudaErrorInvalidDevice;
  arcnet_emu::current_device() = d;
  return cudaSuccess;
}
inline cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  if (device < 0 || device >= arcnet_emu::device_count()) return cudaErrorInvalidDevice;
  switch (attr) {
    case cudaDevAttrMultiProcessorCount: *value = arcnet_emu::multiprocessors; return cudaSuccess;
    case cudaDevAttrMaxThreadsPerBlock: *value = 1024; return cudaSuccess;
  }
  return cudaErrorInvalidValue;
}
inline cudaError_t cudaDeviceSynchronize() {
  arcnet_emu::drain_all();
  return arcnet_emu::take_error();
}

// ---- memory ----
inline cudaError_t cudaMalloc(void** p, std::size_t bytes) {
  return arcnet_emu::allocate(p, bytes, arcnet_emu::memory_kind::device);
}
template <class T>
cudaError_t cudaMalloc(T** p, std::size_t bytes) {
  return cudaMalloc(reinterpret_cast<void**>(p), bytes);
}
// cudaFree waits for the device, as CUDA's does. cudaFreeHost does not: a copy still queued on
// the freed block is then reported when it runs, where a GPU might read reused memory.
inline cudaError_t cudaFree(void* p) {
  if (p) arcnet_emu::drain_all();
  return arcnet_emu::release(p, arcnet_emu::memory_kind::device);
}
inline cudaError_t cudaHostAlloc(void** p, std::size_t bytes, unsigned) {
  return arcnet_emu::allocate(p, bytes, arcnet_emu::memory_kind::pinned);
}
inline cudaError_t cudaFreeHost(void* p) { return arcnet_emu::release(p, arcnet_emu::memory_kind::pinned); }
inline cudaError_t cudaPointerGetAttributes(cudaPointerAttributes* a, void const* p) {
  arcnet_emu::memory_kind k;
  int device = 0;
  *a = cudaPointerAttributes{cudaMemoryTypeUnregistered, -1, nullptr, nullptr};
  if (arcnet_emu::memory().find(p, &k, &device)) {
    a->device = device;
    a->type = k == arcnet_emu::memory_kind::device ? cudaMemoryTypeDevice : cudaMemoryTypeHost;
    (k == arcnet_emu::memory_kind::device ? a->devicePointer : a->hostPointer) = const_cast<void*>(p);
  }
  return cudaSuccess;
}
// A synchronous copy waits for the legacy default stream, and so for every blocking stream.
inline cudaError_t cudaMemcpy(void* dst, void const* src, std::size_t bytes, cudaMemcpyKind kind) {
  if (bytes == 0) return cudaSuccess;
  if (cudaError_t e = arcnet_emu::check_copy(dst, src, bytes, kind)) return e;
  arcnet_emu::drain_blocking();
  std::memmove(dst, src, bytes);
  return arcnet_emu::take_error();
}
// As CUDA's: a copy to or from pinned memory is queued; from pageable memory the source is read at
// the call (staged), into pageable memory the call waits for the stream and copies.
inline cudaError_t cudaMemcpyAsync(void* dst, void const* src, std::size_t bytes, cudaMemcpyKind kind,
                                   cudaStream_t s = nullptr) {
  using namespace arcnet_emu;
  if (bytes == 0) return cudaSuccess;
  if (cudaError_t e = check_copy(dst, src, bytes, kind)) return e;
  bool const dst_device = is_device_pointer(dst), src_device = is_device_pointer(src);
  if (dst_device && src_device) {
    enqueue(s, [=] { std::memmove(dst, src, bytes); });
  } else if (dst_device) {
    if (pinned(src, bytes)) {
      enqueue(s, pinned_copy(dst, src, bytes, src));
    } else {
      auto staged = std::make_shared<std::vector<char>>(static_cast<char const*>(src),
                                                       static_cast<char const*>(src) + bytes);
      enqueue(s, [=] { std::memcpy(dst, staged->data(), bytes); });
    }
  } else if (src_device && pinned(dst, bytes)) {
    enqueue(s, pinned_copy(dst, src, bytes, dst));
  } else {
    drain(s);
    std::memmove(dst, src, bytes);
    return take_error();
  }
  return cudaSuccess;
}
inline cudaError_t cudaMemset(void* p, int value, std::size_t bytes) {
  if (bytes && !arcnet_emu::memory().device_range(p, bytes)) return cudaErrorInvalidValue;
  arcnet_emu::drain_blocking();
  std::memset(p, value, bytes);
  return arcnet_emu::take_error();
}
inline cudaError_t cudaMemsetAsync(void* p, int value, std::size_t bytes, cudaStream_t s = nullptr) {
  if (bytes && !arcnet_emu::memory().device_range(p, bytes)) return cudaErrorInvalidValue;
  arcnet_emu::enqueue(s, [=] { std::memset(p, value, bytes); });
  return cudaSuccess;
}

// ---- streams and events (see emulator.hpp: work runs when the host waits for it) ----
inline cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned flags) {
  if (!s) return cudaErrorInvalidValue;
  *s = new arcnet_emu_stream();
  (*s)->blocking = (flags & cudaStreamNonBlocking) == 0;
  std::lock_guard<std::mutex> lock(arcnet_emu::device().mutex);
  arcnet_emu::device().streams.push_back(*s);
  return cudaSuccess;
}
inline cudaError_t cudaStreamCreate(cudaStream_t* s) { return cudaStreamCreateWithFlags(s, cudaStreamDefault); }
/// CUDA lets queued work finish after a destroy; here it runs first. The stream is kept (as
/// `retired`): another stream's queue may still hold a wait for it, which then passes.
inline cudaError_t cudaStreamDestroy(cudaStream_t s) {
  if (!s) return cudaErrorInvalidValue;
  arcnet_emu::drain(s);
  std::lock_guard<std::mutex> lock(arcnet_emu::device().mutex);
  auto& all = arcnet_emu::device().streams;
  all.erase(std::remove(all.begin(), all.end(), s), all.end());
  arcnet_emu::device().retired.push_back(s);
  return arcnet_emu::take_error();
}
inline cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  arcnet_emu::drain(s);
  return arcnet_emu::take_error();
}
inline cudaError_t cudaStreamQuery(cudaStream_t s) {
  s = arcnet_emu::resolve(s);
  arcnet_emu::drain(s, std::numeric_limits<std::uint64_t>::max(), arcnet_emu::until::polled);
  std::lock_guard<std::mutex> lock(arcnet_emu::device().mutex);
  return s->completed < s->enqueued ? cudaErrorNotReady : cudaSuccess;
}
inline cudaError_t cudaEventCreate(cudaEvent_t* e) {
  if (!e) return cudaErrorInvalidValue;
  *e = new arcnet_emu_event();
  return cudaSuccess;
}
inline cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned) { return cudaEventCreate(e); }
inline cudaError_t cudaEventDestroy(cudaEvent_t e) {
  delete e;
  return cudaSuccess;
}
inline cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s = nullptr) {
  if (!e) return cudaErrorInvalidValue;
  s = arcnet_emu::resolve(s);
  std::lock_guard<std::mutex> lock(arcnet_emu::device().mutex);
  e->stream = s;
  e->ticket = s->enqueued;
  return cudaSuccess;
}
/// Later work on s waits until e's stream has run what e was recorded after.
inline cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned = 0) {
  if (!e) return cudaErrorInvalidValue;
  if (e->stream) arcnet_emu::push(s, arcnet_emu::queued{{}, e->stream, e->ticket, false});
  return cudaSuccess;
}
inline cudaError_t cudaEventQuery(cudaEvent_t e) {
  if (!e) return cudaErrorInvalidValue;
  if (e->stream) arcnet_emu::drain(e->stream, e->ticket, arcnet_emu::until::polled);
  std::lock_guard<std::mutex> lock(arcnet_emu::device().mutex);
  return !e->stream || e->stream->completed >= e->ticket ? cudaSuccess : cudaErrorNotReady;
}
inline cudaError_t cudaEventSynchronize(cudaEvent_t e) {
  if (!e) return cudaErrorInvalidValue;
  if (e->stream) arcnet_emu::drain(e->stream, e->ticket, arcnet_emu::until::waited);
  return arcnet_emu::take_error();
}
inline cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t, cudaEvent_t) {
  *ms = 0;
  return cudaSuccess;
}
