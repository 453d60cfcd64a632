#pragma once
// The communicator of processes started by mpirun (Debian's OpenMPI; any MPI-3 library works).
// Link arcnet::mpi (CMake: found when libopenmpi-dev is installed). Every collective is issued as
// MPI-3 non-blocking (MPI_Iallreduce, ...) and completed by polling MPI_Test against the
// timeout, so a dead or stalled rank ends in distributed_error rather than a hang. MPI is called
// from the thread that created the communicator only (MPI_THREAD_FUNNELED).
#if !__has_include(<mpi.h>)
#error "arcnet/distributed/mpi.hpp needs MPI: install libopenmpi-dev and link arcnet::mpi"
#endif
#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1  // the C API only: not the MPI-2 C++ bindings (removed from MPI-3)
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <unordered_map>

#include "arcnet/distributed/communicator.hpp"

namespace arcnet::distributed {

class mpi_communicator final : public communicator {
 public:
  /// Initialises MPI (unless the program already did) on MPI_COMM_WORLD.
  mpi_communicator() {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
      int provided = 0;
      check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
      owns_mpi_ = true;
    }
    // Errors come back as codes (reported as distributed_error) instead of aborting in MPI.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
  }
  mpi_communicator(mpi_communicator const&) = delete;
  mpi_communicator& operator=(mpi_communicator const&) = delete;
  ~mpi_communicator() override {
    if (!owns_mpi_) return;
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string name() const override {
    char version[MPI_MAX_LIBRARY_VERSION_STRING] = {};
    int len = 0;
    MPI_Get_library_version(version, &len);
    std::string v(version, static_cast<std::size_t>(std::max(0, len)));
    v = v.substr(0, v.find_first_of(",\n"));
    return "MPI (" + v + ")";
  }

  void all_reduce(float* d, std::size_t n, reduce_op op) override { reduce(d, n, MPI_FLOAT, op, "all-reduce"); }
  void all_reduce(double* d, std::size_t n, reduce_op op) override { reduce(d, n, MPI_DOUBLE, op, "all-reduce"); }
  void all_reduce(std::int64_t* d, std::size_t n, reduce_op op) override {
    reduce(d, n, MPI_INT64_T, op, "all-reduce");
  }
  void broadcast(float* d, std::size_t n, int root) override { bcast(d, n, MPI_FLOAT, root); }
  void broadcast(std::int64_t* d, std::size_t n, int root) override { bcast(d, n, MPI_INT64_T, root); }
  void all_gather(float const* s, std::size_t n, float* r) override { gather(s, n, r, MPI_FLOAT); }
  void all_gather(std::int64_t const* s, std::size_t n, std::int64_t* r) override { gather(s, n, r, MPI_INT64_T); }
  void barrier() override {
    MPI_Request q;
    check(MPI_Ibarrier(MPI_COMM_WORLD, &q), "MPI_Ibarrier");
    complete(q, "barrier");
  }

  request_id start_all_reduce(float* data, std::size_t n) override {
    MPI_Request q;
    check(MPI_Iallreduce(MPI_IN_PLACE, data, count(n), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &q), "MPI_Iallreduce");
    pending_[next_id_] = q;
    return next_id_++;
  }
  bool test(request_id id) override {
    auto it = pending_.find(id);
    if (it == pending_.end() || it->second == MPI_REQUEST_NULL) return true;  // waited for, or done
    int done = 0;
    check(MPI_Test(&it->second, &done, MPI_STATUS_IGNORE), "MPI_Test");
    return done != 0;
  }
  void wait(request_id id) override {
    auto it = pending_.find(id);
    ARCNET_CHECK(it != pending_.end(), "mpi_communicator::wait: request ", id, " was not started or already waited for");
    complete(it->second, "gradient all-reduce");
    pending_.erase(it);
  }

  [[noreturn]] void abort(int code) override {
    MPI_Abort(MPI_COMM_WORLD, code);
    std::exit(code);  // not reached
  }

 private:
  int rank_ = 0, size_ = 1;
  bool owns_mpi_ = false;
  std::unordered_map<request_id, MPI_Request> pending_;  // started, not yet waited for
  request_id next_id_ = 0;

  static MPI_Op op_of(reduce_op op) { return op == reduce_op::max ? MPI_MAX : MPI_SUM; }
  static int count(std::size_t n) {
    ARCNET_CHECK_AS(config_error, n <= static_cast<std::size_t>(INT32_MAX), "MPI collective: ", n,
                    " elements exceed MPI's int count; split the buffer");
    return static_cast<int>(n);
  }
  void check(int rc, char const* what) const {
    if (rc == MPI_SUCCESS) return;
    char msg[MPI_MAX_ERROR_STRING] = {};
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    detail::raise<distributed_error>("rank ", rank_, ": ", what, " failed: ",
                                     std::string(msg, static_cast<std::size_t>(std::max(0, len))));
  }
  /// Polls q until it completes or the timeout passes. Sleeps between polls (from 20 us up to
  /// 1 ms) so that a waiting rank leaves the cores to the ranks still computing.
  void complete(MPI_Request& q, char const* what) {
    auto const deadline = std::chrono::steady_clock::now() + timeout();
    auto nap = std::chrono::microseconds(20);
    for (;;) {
      int done = 0;
      check(MPI_Test(&q, &done, MPI_STATUS_IGNORE), what);
      if (done) return;
      if (std::chrono::steady_clock::now() > deadline)
        detail::raise<distributed_error>(
            "rank ", rank_, " of ", size_, ": ", what, " did not complete within ",
            std::chrono::duration<double>(timeout()).count(),
            " s: another rank has failed or stalled (see its output); stopping this one");
      std::this_thread::sleep_for(nap);
      nap = std::min(nap * 2, std::chrono::microseconds(1000));
    }
  }
  template <class T>
  void reduce(T* d, std::size_t n, MPI_Datatype type, reduce_op op, char const* what) {
    MPI_Request q;
    check(MPI_Iallreduce(MPI_IN_PLACE, d, count(n), type, op_of(op), MPI_COMM_WORLD, &q), "MPI_Iallreduce");
    complete(q, what);
  }
  template <class T>
  void bcast(T* d, std::size_t n, MPI_Datatype type, int root) {
    ARCNET_CHECK_AS(config_error, root >= 0 && root < size_, "broadcast: root rank ", root,
                    " does not exist in a world of ", size_);
    MPI_Request q;
    check(MPI_Ibcast(d, count(n), type, root, MPI_COMM_WORLD, &q), "MPI_Ibcast");
    complete(q, "broadcast");
  }
  template <class T>
  void gather(T const* s, std::size_t n, T* r, MPI_Datatype type) {
    MPI_Request q;
    check(MPI_Iallgather(s, count(n), type, r, count(n), type, MPI_COMM_WORLD, &q), "MPI_Iallgather");
    complete(q, "all-gather");
  }
};

}  // namespace arcnet::distributed
