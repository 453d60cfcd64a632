#pragma once
// The emulator's NCCL (see emulator.hpp): the calls of arcnet/distributed/nccl.hpp, so that
// nccl_communicator and gradient_reducer<cuda> (its buckets, its side stream and the events
// between the streams) run on machines without a GPU. A collective is queued on its stream like
// any other work; when the stream runs it, one rank copies its send buffer to its receive buffer,
// and several ranks (processes started by mpirun, with ARCNET_WITH_MPI) exchange the device
// buffers, which are host memory here, through MPI_COMM_WORLD. Since queued work runs only when
// the host waits, a rank's collective runs at its next wait, and the other ranks' at theirs. As
// with NCCL, a non-blocking communicator (ncclConfig_t::blocking = 0) answers ncclInProgress to
// its initialisation, its first collective and its finalisation, and ncclCommGetAsyncError
// reports the state until it settles. Unknown ids, a world that is not MPI's, foreign buffers and
// calls on a finished communicator are errors with a message, as NCCL's.
#include <cstddef>
#include <cstring>
#include <string>

#if defined(ARCNET_WITH_MPI)
#include <mpi.h>
#endif

#include "cuda_runtime.h"

typedef enum {
  ncclSuccess = 0,
  ncclUnhandledCudaError = 1,
  ncclSystemError = 2,
  ncclInternalError = 3,
  ncclInvalidArgument = 4,
  ncclInvalidUsage = 5,
  ncclRemoteError = 6,
  ncclInProgress = 7,
} ncclResult_t;
typedef enum { ncclFloat32 = 7, ncclFloat = 7 } ncclDataType_t;
typedef enum { ncclSum = 0 } ncclRedOp_t;

#define NCCL_UNIQUE_ID_BYTES 128
typedef struct {
  char internal[NCCL_UNIQUE_ID_BYTES];
} ncclUniqueId;

typedef struct {
  std::size_t size;
  int blocking;
} ncclConfig_t;
#define NCCL_CONFIG_INITIALIZER {sizeof(ncclConfig_t), 1}

/// The emulator reports version 0.0.0, so that nothing mistakes it for a real NCCL.
#define NCCL_VERSION_CODE 0

struct arcnet_emu_nccl {
  int ranks = 1, rank = 0;
  bool blocking = true;
  int pending_polls = 0;  // a non-blocking call's ncclInProgress lasts this many more polls
  bool connected = false; // the first collective "connects the peers"
  bool finalized = false;
};
typedef arcnet_emu_nccl* ncclComm_t;

namespace arcnet_emu {
inline constexpr char nccl_id_tag[] = "arcnet cuda emulator: ncclUniqueId";
inline std::string& nccl_last_error() {
  static std::string e;
  return e;
}
inline ncclResult_t nccl_fail(ncclResult_t rc, std::string what) {
  nccl_last_error() = std::move(what);
  report("nccl: " + nccl_last_error());
  return rc;
}
/// A non-blocking communicator's answer to a call that NCCL finishes in its own threads.
inline ncclResult_t nccl_in_progress(ncclComm_t comm) {
  if (comm->blocking) return ncclSuccess;
  comm->pending_polls = 1;
  return ncclInProgress;
}
enum class collective { all_reduce, broadcast, all_gather };
/// Checks a collective's communicator and buffers (recv holds recv_count floats), then queues it.
inline ncclResult_t nccl_collective(char const* call, collective kind, void const* send, void* recv, std::size_t count,
                                    int root, ncclDataType_t type, ncclComm_t comm, cudaStream_t stream) {
  if (!comm || comm->finalized) return nccl_fail(ncclInvalidUsage, std::string(call) + ": no live communicator");
  if (type != ncclFloat) return nccl_fail(ncclInvalidArgument, std::string(call) + ": only ncclFloat is emulated");
  if (root < 0 || root >= comm->ranks)
    return nccl_fail(ncclInvalidArgument, std::string(call) + ": root " + std::to_string(root) + " in a world of " +
                                              std::to_string(comm->ranks));
  std::size_t const recv_count = kind == collective::all_gather ? count * std::size_t(comm->ranks) : count;
  if (count > 0 && (!memory().device_range(send, count * sizeof(float)) ||
                    !memory().device_range(recv, recv_count * sizeof(float))))
    return nccl_fail(ncclInvalidArgument, std::string(call) + ": a buffer is not inside one device allocation");
  if (count > 0) {
    int const ranks = comm->ranks, rank = comm->rank;
    enqueue(stream, [=] {
      auto const* in = static_cast<float const*>(send);
      auto* out = static_cast<float*>(recv);
      // One rank's part of the result: its own data, where the others' go too.
      float* mine = kind == collective::all_gather ? out + std::size_t(rank) * count : out;
      if (mine != in) std::memmove(mine, in, count * sizeof(float));
      if (ranks == 1) return;
#if defined(ARCNET_WITH_MPI)
      int const n = static_cast<int>(count);
      switch (kind) {
        case collective::all_reduce: MPI_Allreduce(MPI_IN_PLACE, out, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD); break;
        case collective::broadcast: MPI_Bcast(out, n, MPI_FLOAT, root, MPI_COMM_WORLD); break;
        case collective::all_gather:
          MPI_Allgather(MPI_IN_PLACE, n, MPI_FLOAT, out, n, MPI_FLOAT, MPI_COMM_WORLD);
          break;
      }
#endif
    });
  }
  if (comm->connected) return ncclSuccess;
  comm->connected = true;
  return nccl_in_progress(comm);
}
}  // namespace arcnet_emu

inline ncclResult_t ncclGetVersion(int* version) {
  if (!version) return ncclInvalidArgument;
  *version = NCCL_VERSION_CODE;
  return ncclSuccess;
}
inline char const* ncclGetErrorString(ncclResult_t rc) {
  switch (rc) {
    case ncclSuccess: return "no error";
    case ncclUnhandledCudaError: return "unhandled cuda error";
    case ncclSystemError: return "unhandled system error";
    case ncclInternalError: return "internal error";
    case ncclInvalidArgument: return "invalid argument";
    case ncclInvalidUsage: return "invalid usage";
    case ncclRemoteError: return "remote process exited or there was a network error";
    case ncclInProgress: return "NCCL operation in progress";
  }
  return "unknown result code";
}
inline char const* ncclGetLastError(ncclComm_t) { return arcnet_emu::nccl_last_error().c_str(); }
inline ncclResult_t ncclGetUniqueId(ncclUniqueId* id) {
  if (!id) return ncclInvalidArgument;
  std::memset(id, 0, sizeof *id);
  std::memcpy(id->internal, arcnet_emu::nccl_id_tag, sizeof arcnet_emu::nccl_id_tag);
  return ncclSuccess;
}
inline ncclResult_t ncclCommInitRankConfig(ncclComm_t* comm, int nranks, ncclUniqueId id, int rank,
                                           ncclConfig_t* config) {
  if (!comm) return ncclInvalidArgument;
  *comm = nullptr;
  if (std::memcmp(id.internal, arcnet_emu::nccl_id_tag, sizeof arcnet_emu::nccl_id_tag) != 0)
    return arcnet_emu::nccl_fail(ncclInvalidArgument, "ncclCommInitRankConfig: the id was not made by ncclGetUniqueId");
  int world = 1, me = 0;
#if defined(ARCNET_WITH_MPI)
  int mpi_up = 0;
  MPI_Initialized(&mpi_up);
  if (mpi_up) {
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    MPI_Comm_rank(MPI_COMM_WORLD, &me);
  }
#endif
  if (nranks != world || rank != me)
    return arcnet_emu::nccl_fail(ncclInvalidUsage, "ncclCommInitRankConfig: rank " + std::to_string(rank) + " of " +
                                                       std::to_string(nranks) + ", but the emulator's NCCL works on " +
                                                       "MPI_COMM_WORLD, where this is rank " + std::to_string(me) +
                                                       " of " + std::to_string(world));
  *comm = new arcnet_emu_nccl();
  (*comm)->ranks = nranks;
  (*comm)->rank = rank;
  (*comm)->blocking = !config || config->blocking != 0;
  return arcnet_emu::nccl_in_progress(*comm);
}
inline ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t* state) {
  if (!comm || !state) return ncclInvalidArgument;
  *state = comm->pending_polls > 0 ? ncclInProgress : ncclSuccess;
  if (comm->pending_polls > 0) --comm->pending_polls;
  return ncclSuccess;
}
inline ncclResult_t ncclCommFinalize(ncclComm_t comm) {
  if (!comm || comm->finalized) return ncclInvalidUsage;
  comm->finalized = true;
  return arcnet_emu::nccl_in_progress(comm);
}
inline ncclResult_t ncclCommDestroy(ncclComm_t comm) {
  delete comm;
  return ncclSuccess;
}
inline ncclResult_t ncclCommAbort(ncclComm_t comm) {
  delete comm;
  return ncclSuccess;
}
inline ncclResult_t ncclAllReduce(void const* send, void* recv, std::size_t count, ncclDataType_t type, ncclRedOp_t op,
                                  ncclComm_t comm, cudaStream_t stream) {
  if (op != ncclSum) return arcnet_emu::nccl_fail(ncclInvalidArgument, "ncclAllReduce: only ncclSum is emulated");
  return arcnet_emu::nccl_collective("ncclAllReduce", arcnet_emu::collective::all_reduce, send, recv, count, 0, type,
                                     comm, stream);
}
inline ncclResult_t ncclBroadcast(void const* send, void* recv, std::size_t count, ncclDataType_t type, int root,
                                  ncclComm_t comm, cudaStream_t stream) {
  return arcnet_emu::nccl_collective("ncclBroadcast", arcnet_emu::collective::broadcast, send, recv, count, root, type,
                                     comm, stream);
}
inline ncclResult_t ncclAllGather(void const* send, void* recv, std::size_t count, ncclDataType_t type,
                                  ncclComm_t comm, cudaStream_t stream) {
  return arcnet_emu::nccl_collective("ncclAllGather", arcnet_emu::collective::all_gather, send, recv, count, 0, type,
                                     comm, stream);
}
