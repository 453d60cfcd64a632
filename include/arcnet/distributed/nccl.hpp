#pragma once
// The collectives of data-parallel training on CUDA device buffers, through NCCL (nvcc only, and
// only where CMake found NCCL: it defines ARCNET_WITH_NCCL on arcnet::nccl; elsewhere this header
// is empty). One ncclComm per process, on one device per process: local rank (OpenMPI's
// OMPI_COMM_WORLD_LOCAL_RANK, MPICH's MPI_LOCALRANKID; else the rank) modulo the device count.
//
//   distributed::mpi_communicator world;              // the ranks, and the host collectives
//   distributed::nccl_communicator gpus(world);       // sets this rank's device: before any CUDA tensor
//   gpus.all_reduce(t);                               // t: tensor<float, cuda>, summed in place
//
// A separate class, not a communicator implementation. communicator's collectives take host
// memory, and its users rely on that (the engine's broadcast_state and average_buffers pack
// host vectors; all_gather_uneven, sync batch norm and Partial FC exchange host counts and
// statistics): a communicator whose float* meant device memory would type-check there and
// crash. So the host communicator stays what the run's ranks are (MPI), and this one is made
// from it: rank 0's ncclUniqueId goes to the others through its broadcast (MPI_Ibcast on
// MPI_COMM_WORLD, under its timeout), which also needs no MPI header here. The reducer needs
// only all_reduce on a stream and a wait, which this class gives directly.
//
// Ordering: each collective is enqueued on a stream (gpu::stream() unless one is given), after
// the kernels enqueued there before it, and returns without waiting for the device. wait() and
// synchronize() are the host waits: they poll the event (and NCCL's asynchronous error state)
// until it completes or timeout() passes; then the communicator is aborted (ncclCommAbort, which
// also ends the NCCL kernels left waiting for a dead peer) and distributed_error says "did not
// complete within N s: another rank has failed or stalled", as the MPI path does. The
// communicator is non-blocking (ncclConfig_t::blocking = 0), so that the calls which wait for
// the other ranks on the host (initialisation, and the first collective, which connects the
// peers) return ncclInProgress and are polled under the same timeout instead of hanging.
// Every ncclResult_t is checked: a failure aborts the communicator (the ranks are out of step
// after it) and throws device_error naming the call and NCCL's message.
#include "arcnet/core/cuda.hpp"
#include "arcnet/distributed/communicator.hpp"

#if defined(__CUDACC__) && defined(ARCNET_WITH_NCCL)
#include <nccl.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <initializer_list>
#include <string>
#include <thread>

namespace arcnet::distributed {

namespace detail_nccl {
/// The first of the environment variables that is set, as a number; -1 when none is.
inline int env_int(std::initializer_list<char const*> names) {
  for (char const* v : names)
    if (char const* s = std::getenv(v)) return std::atoi(s);
  return -1;
}
}  // namespace detail_nccl

/// This process's rank on its node (launcher's environment; else the rank in `host`).
inline int local_rank(communicator const& host) {
  int const r = detail_nccl::env_int({"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID"});
  return r >= 0 ? r : host.rank();
}

/// Makes this thread's current CUDA device the one of this rank (local rank modulo the device
/// count) and returns it. Call it before creating any CUDA tensor: they live on the device that
/// was current when they were made. The nccl_communicator constructor calls it too (the same
/// device again).
inline int use_local_device(communicator const& host) {
  int count = 0;
  ARCNET_CUDA_CHECK(cudaGetDeviceCount(&count));
  ARCNET_CHECK_AS(device_error, count > 0, "rank ", host.rank(), ": no CUDA device");
  int const on_node = detail_nccl::env_int({"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"});
  ARCNET_CHECK_AS(config_error, on_node <= count, "rank ", host.rank(), ": ", on_node,
                  " ranks were started on this node but it has ", count,
                  " CUDA device(s); NCCL needs a device of its own for each rank (start at most ", count,
                  " per node)");
  int const device = local_rank(host) % count;
  ARCNET_CUDA_CHECK(cudaSetDevice(device));
  return device;
}

class nccl_communicator {
 public:
  /// Sets this rank's device and joins the ranks of `host` (collective: every rank of `host`
  /// constructs one, in the same order relative to host's other collectives). Takes host's
  /// timeout.
  explicit nccl_communicator(communicator& host)
      : rank_(host.rank()), size_(host.size()), timeout_(host.timeout()) {
    device_ = use_local_device(host);
    ARCNET_CUDA_CHECK(cudaEventCreateWithFlags(&event_, cudaEventDisableTiming));
    try {
      ncclUniqueId id;
      std::memset(&id, 0, sizeof id);
      if (rank_ == 0) check(ncclGetUniqueId(&id), "ncclGetUniqueId");
      static_assert(sizeof(ncclUniqueId) % sizeof(std::int64_t) == 0, "ncclUniqueId: not a whole number of words");
      std::int64_t words[sizeof(ncclUniqueId) / sizeof(std::int64_t)];
      std::memcpy(words, &id, sizeof id);
      host.broadcast(words, sizeof words / sizeof words[0], 0);
      std::memcpy(&id, words, sizeof id);
      ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
      config.blocking = 0;
      settle(ncclCommInitRankConfig(&comm_, size_, id, rank_, &config), "ncclCommInitRankConfig");
    } catch (...) {  // the destructor does not run after a throwing constructor
      if (comm_) ncclCommAbort(comm_);
      cudaEventDestroy(event_);
      throw;
    }
  }
  nccl_communicator(nccl_communicator const&) = delete;
  nccl_communicator& operator=(nccl_communicator const&) = delete;

  /// Flushes and frees the communicator (under the timeout, else aborts it). During unwinding
  /// from an exception it aborts at once: the other ranks may be gone.
  ~nccl_communicator() {
    if (event_) cudaEventDestroy(event_);
    if (!comm_) return;
    if (std::uncaught_exceptions() > 0) {
      ncclCommAbort(comm_);
      return;
    }
    ncclResult_t rc = ncclCommFinalize(comm_);
    auto const deadline = std::chrono::steady_clock::now() + timeout_;
    while (rc == ncclInProgress && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      ncclResult_t state = ncclSuccess;
      rc = ncclCommGetAsyncError(comm_, &state);
      if (rc == ncclSuccess) rc = state;
    }
    if (rc == ncclSuccess) ncclCommDestroy(comm_);
    else ncclCommAbort(comm_);
  }

  int rank() const { return rank_; }
  int size() const { return size_; }
  /// The CUDA device of this rank (current on the constructing thread).
  int device() const { return device_; }
  /// "NCCL 2.28.9"
  std::string name() const {
    int v = 0;
    if (ncclGetVersion(&v) != ncclSuccess) return "NCCL";
    return "NCCL " + std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." + std::to_string(v % 100);
  }
  /// The raw communicator (null after an abort).
  ncclComm_t handle() const { return comm_; }

  std::chrono::milliseconds timeout() const { return timeout_; }
  void set_timeout(std::chrono::milliseconds t) { timeout_ = t; }

  /// In place: every rank ends with the sum over ranks of data[0, n) (device memory). Enqueued
  /// on `s` after its earlier work; returns without waiting for the device.
  void all_reduce(float* data, std::size_t n, cudaStream_t s = gpu::stream()) {
    if (n == 0) return;
    alive("all-reduce");
    settle(ncclAllReduce(data, data, n, ncclFloat, ncclSum, comm_, s), "ncclAllReduce");
  }
  /// In place: every rank ends with root's data[0, n).
  void broadcast(float* data, std::size_t n, int root, cudaStream_t s = gpu::stream()) {
    ARCNET_CHECK_AS(config_error, root >= 0 && root < size_, "broadcast: root rank ", root,
                    " does not exist in a world of ", size_);
    if (n == 0) return;
    alive("broadcast");
    settle(ncclBroadcast(data, data, n, ncclFloat, root, comm_, s), "ncclBroadcast");
  }
  /// recv (size() * n values, device memory) receives every rank's send[0, n), in rank order.
  void all_gather(float const* send, std::size_t n, float* recv, cudaStream_t s = gpu::stream()) {
    if (n == 0) return;
    alive("all-gather");
    settle(ncclAllGather(send, recv, n, ncclFloat, comm_, s), "ncclAllGather");
  }

  /// Waits on the host until `e` (recorded by the caller) has completed, under the timeout.
  void wait(cudaEvent_t e, char const* what) {
    alive(what);
    auto const deadline = std::chrono::steady_clock::now() + timeout_;
    auto nap = std::chrono::microseconds(10);
    for (;;) {
      cudaError_t const q = cudaEventQuery(e);
      if (q == cudaSuccess) return;
      if (q != cudaErrorNotReady) ::arcnet::detail::cuda_check(q, "cudaEventQuery", __FILE__, __LINE__);
      cudaGetLastError();  // not-ready is no error: do not leave it for the next launch check
      ncclResult_t state = ncclSuccess;
      check(ncclCommGetAsyncError(comm_, &state), "ncclCommGetAsyncError");
      if (state != ncclSuccess && state != ncclInProgress) fail(state, what);
      if (std::chrono::steady_clock::now() > deadline) timed_out(what);
      std::this_thread::sleep_for(nap);
      nap = std::min(nap * 2, std::chrono::microseconds(200));
    }
  }
  /// Waits on the host until everything enqueued on `s` so far has run, under the timeout.
  void synchronize(cudaStream_t s = gpu::stream()) {
    ARCNET_CUDA_CHECK(cudaEventRecord(event_, s));
    wait(event_, "NCCL collective");
  }

 private:
  int rank_ = 0, size_ = 1, device_ = 0;
  std::chrono::milliseconds timeout_;
  ncclComm_t comm_ = nullptr;
  cudaEvent_t event_ = nullptr;  // synchronize()'s marker

  void alive(char const* what) const {
    if (!comm_)
      ::arcnet::detail::raise<distributed_error>("rank ", rank_, " of ", size_, ": ", what,
                                                 ": the NCCL communicator was aborted after an earlier failure");
  }
  /// Throws device_error (after aborting the communicator) unless rc is ncclSuccess.
  void check(ncclResult_t rc, char const* call) {
    if (rc != ncclSuccess) fail(rc, call);
  }
  /// A call's result on a non-blocking communicator: ncclInProgress means it goes on in NCCL's
  /// threads; poll the communicator's state until it settles, under the timeout.
  void settle(ncclResult_t rc, char const* call) {
    if (rc == ncclInProgress) {
      auto const deadline = std::chrono::steady_clock::now() + timeout_;
      auto nap = std::chrono::microseconds(10);
      for (;;) {
        ncclResult_t state = ncclSuccess;
        check(ncclCommGetAsyncError(comm_, &state), "ncclCommGetAsyncError");
        if (state != ncclInProgress) {
          rc = state;
          break;
        }
        if (std::chrono::steady_clock::now() > deadline) timed_out(call);
        std::this_thread::sleep_for(nap);
        nap = std::min(nap * 2, std::chrono::microseconds(1000));
      }
    }
    check(rc, call);
  }
  [[noreturn]] void fail(ncclResult_t rc, char const* call) {
    std::string detail;
    char const* last = ncclGetLastError(comm_);  // comm_ may be null: NCCL's last error of any
    if (last && *last) detail = std::string(" (") + last + ")";
    if (comm_) {
      ncclCommAbort(comm_);
      comm_ = nullptr;
    }
    ::arcnet::detail::raise<device_error>("rank ", rank_, " of ", size_, ": ", call, " failed: ",
                                          ncclGetErrorString(rc), detail);
  }
  [[noreturn]] void timed_out(char const* what) {
    if (comm_) {
      ncclCommAbort(comm_);
      comm_ = nullptr;
    }
    ::arcnet::detail::raise<distributed_error>(
        "rank ", rank_, " of ", size_, ": ", what, " did not complete within ",
        std::chrono::duration<double>(timeout_).count(),
        " s: another rank has failed or stalled (see its output); stopping this one");
  }
};

/// The tensor forms, on contiguous CUDA tensors, enqueued on gpu::stream().
inline void all_reduce(nccl_communicator& c, tensor<float, cuda>& t) {
  c.all_reduce(t.data(), static_cast<std::size_t>(t.numel()));
}
inline void broadcast(nccl_communicator& c, tensor<float, cuda>& t, int root = 0) {
  c.broadcast(t.data(), static_cast<std::size_t>(t.numel()), root);
}
/// Every rank's t concatenated along axis 0, rank 0's first (same shape on every rank).
inline tensor<float, cuda> all_gather(nccl_communicator& c, tensor<float, cuda> const& t) {
  ARCNET_CHECK_AS(shape_error, t.rank() >= 1, "all_gather: expected a tensor with at least one axis, got a scalar");
  shape s = t.shape();
  s[0] *= c.size();
  auto out = tensor<float, cuda>::uninitialized(s);
  c.all_gather(t.data(), static_cast<std::size_t>(t.numel()), out.data());
  return out;
}

}  // namespace arcnet::distributed

#endif  // __CUDACC__ && ARCNET_WITH_NCCL
