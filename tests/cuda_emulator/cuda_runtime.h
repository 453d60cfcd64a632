#pragma once
// The emulator's CUDA runtime API (see emulator.hpp): the calls arcnet makes, on one device
// whose memory is host memory, with every operation complete when the call returns.
#include "emulator.hpp"

typedef struct arcnet_emu_stream* cudaStream_t;
typedef struct arcnet_emu_event* cudaEvent_t;

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
inline int& current_device() {
  static thread_local int d = 0;
  return d;
}
inline cudaError_t check_copy(void* dst, void const* src, std::size_t bytes, cudaMemcpyKind kind) {
  if (bytes == 0) return cudaSuccess;
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
  std::memmove(dst, src, bytes);
  return cudaSuccess;
}
}  // namespace arcnet_emu

inline cudaError_t cudaGetLastError() {
  cudaError_t const e = arcnet_emu::errors().sticky;
  arcnet_emu::errors().sticky = cudaSuccess;
  return e;
}
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
  *n = 1;
  return cudaSuccess;
}
inline cudaError_t cudaGetDevice(int* d) {
  *d = arcnet_emu::current_device();
  return cudaSuccess;
}
inline cudaError_t cudaSetDevice(int d) {
  if (d != 0) return arcnet_emu::errors().sticky = cudaErrorInvalidDevice;
  arcnet_emu::current_device() = d;
  return cudaSuccess;
}
inline cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  if (device != 0) return cudaErrorInvalidDevice;
  switch (attr) {
    case cudaDevAttrMultiProcessorCount: *value = arcnet_emu::multiprocessors; return cudaSuccess;
    case cudaDevAttrMaxThreadsPerBlock: *value = 1024; return cudaSuccess;
  }
  return cudaErrorInvalidValue;
}
inline cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }

// ---- memory ----
inline cudaError_t cudaMalloc(void** p, std::size_t bytes) {
  return arcnet_emu::allocate(p, bytes, arcnet_emu::memory_kind::device);
}
template <class T>
cudaError_t cudaMalloc(T** p, std::size_t bytes) {
  return cudaMalloc(reinterpret_cast<void**>(p), bytes);
}
inline cudaError_t cudaFree(void* p) { return arcnet_emu::release(p, arcnet_emu::memory_kind::device); }
inline cudaError_t cudaHostAlloc(void** p, std::size_t bytes, unsigned) {
  return arcnet_emu::allocate(p, bytes, arcnet_emu::memory_kind::pinned);
}
inline cudaError_t cudaFreeHost(void* p) { return arcnet_emu::release(p, arcnet_emu::memory_kind::pinned); }
inline cudaError_t cudaPointerGetAttributes(cudaPointerAttributes* a, void const* p) {
  arcnet_emu::memory_kind k;
  *a = cudaPointerAttributes{cudaMemoryTypeUnregistered, -1, nullptr, nullptr};
  if (arcnet_emu::memory().find(p, &k)) {
    a->device = 0;
    a->type = k == arcnet_emu::memory_kind::device ? cudaMemoryTypeDevice : cudaMemoryTypeHost;
    (k == arcnet_emu::memory_kind::device ? a->devicePointer : a->hostPointer) = const_cast<void*>(p);
  }
  return cudaSuccess;
}
inline cudaError_t cudaMemcpy(void* dst, void const* src, std::size_t bytes, cudaMemcpyKind kind) {
  return arcnet_emu::check_copy(dst, src, bytes, kind);
}
inline cudaError_t cudaMemcpyAsync(void* dst, void const* src, std::size_t bytes, cudaMemcpyKind kind,
                                   cudaStream_t = nullptr) {
  return arcnet_emu::check_copy(dst, src, bytes, kind);
}
inline cudaError_t cudaMemset(void* p, int value, std::size_t bytes) {
  if (bytes && !arcnet_emu::memory().device_range(p, bytes)) return cudaErrorInvalidValue;
  std::memset(p, value, bytes);
  return cudaSuccess;
}
inline cudaError_t cudaMemsetAsync(void* p, int value, std::size_t bytes, cudaStream_t = nullptr) {
  return cudaMemset(p, value, bytes);
}

// ---- streams and events: everything has completed when the call that enqueued it returns ----
struct arcnet_emu_stream {};
struct arcnet_emu_event {};
inline cudaError_t cudaStreamCreate(cudaStream_t* s) {
  *s = new arcnet_emu_stream();
  return cudaSuccess;
}
inline cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) { return cudaStreamCreate(s); }
inline cudaError_t cudaStreamDestroy(cudaStream_t s) {
  delete s;
  return cudaSuccess;
}
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
inline cudaError_t cudaStreamQuery(cudaStream_t) { return cudaSuccess; }
inline cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t, unsigned = 0) { return cudaSuccess; }
inline cudaError_t cudaEventCreate(cudaEvent_t* e) {
  *e = new arcnet_emu_event();
  return cudaSuccess;
}
inline cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned) { return cudaEventCreate(e); }
inline cudaError_t cudaEventDestroy(cudaEvent_t e) {
  delete e;
  return cudaSuccess;
}
inline cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t = nullptr) {
  return e ? cudaSuccess : cudaErrorInvalidValue;
}
inline cudaError_t cudaEventQuery(cudaEvent_t) { return cudaSuccess; }
inline cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
inline cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t, cudaEvent_t) {
  *ms = 0;
  return cudaSuccess;
}
