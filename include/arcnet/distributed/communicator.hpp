#pragma once
// The collectives that data-parallel training needs, behind one interface: all-reduce, broadcast,
// all-gather and barrier over the ranks of a job, on host memory. Implementations: this file's
// single_process (a world of one; every collective is a copy or nothing), distributed/mpi.hpp
// (processes started by mpirun). Every blocking collective of a multi-rank communicator gives up
// after timeout() with distributed_error, so that a rank that died or stalled makes the others
// stop with a message instead of waiting forever (PyTorch's process-group timeout).
//
// MPI's rule holds for every implementation: all ranks call the same collectives in the same order.
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "arcnet/core/error.hpp"
#include "arcnet/core/tensor.hpp"

namespace arcnet {
/// A collective failed or timed out: another rank died, stalled or disagreed.
class distributed_error : public error {
 public:
  using error::error;
};
}  // namespace arcnet

namespace arcnet::distributed {

enum class reduce_op { sum, max };

/// A handle to a started non-blocking all-reduce (see communicator::start_all_reduce).
using request_id = int;

class communicator {
 public:
  virtual ~communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  /// "single process", "MPI (OpenMPI 4.1.4)", ...
  virtual std::string name() const = 0;

  /// In place: every rank ends with the element-wise reduction over all ranks.
  virtual void all_reduce(float* data, std::size_t n, reduce_op op) = 0;
  virtual void all_reduce(double* data, std::size_t n, reduce_op op) = 0;
  virtual void all_reduce(std::int64_t* data, std::size_t n, reduce_op op) = 0;
  /// In place: every rank ends with root's n values.
  virtual void broadcast(float* data, std::size_t n, int root) = 0;
  virtual void broadcast(std::int64_t* data, std::size_t n, int root) = 0;
  /// recv (size() * n values) receives every rank's n values, in rank order.
  virtual void all_gather(float const* send, std::size_t n, float* recv) = 0;
  virtual void all_gather(std::int64_t const* send, std::size_t n, std::int64_t* recv) = 0;
  virtual void barrier() = 0;

  /// Starts an in-place sum over ranks of data[0..n) and returns at once; data must stay alive
  /// and untouched until wait(id). Ranks must start their all-reduces in the same order.
  virtual request_id start_all_reduce(float* data, std::size_t n) = 0;
  /// Lets started all-reduces progress (MPI progresses only inside its calls); true when `id` is done.
  virtual bool test(request_id id) = 0;
  /// Blocks until `id` is done (or the timeout passes: distributed_error).
  virtual void wait(request_id id) = 0;

  /// Ends the whole job at once, every rank (MPI_Abort): what a rank calls after an error so
  /// that the others do not wait for it.
  [[noreturn]] virtual void abort(int code) = 0;

  std::chrono::milliseconds timeout() const { return timeout_; }
  void set_timeout(std::chrono::milliseconds t) { timeout_ = t; }

 private:
  std::chrono::milliseconds timeout_{std::chrono::minutes(30)};  // PyTorch's default
};

/// A world of one rank: reductions and broadcasts leave the data as it is, a gather copies.
class single_process final : public communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string name() const override { return "single process"; }
  void all_reduce(float*, std::size_t, reduce_op) override {}
  void all_reduce(double*, std::size_t, reduce_op) override {}
  void all_reduce(std::int64_t*, std::size_t, reduce_op) override {}
  void broadcast(float*, std::size_t, int root) override { check_root(root); }
  void broadcast(std::int64_t*, std::size_t, int root) override { check_root(root); }
  void all_gather(float const* send, std::size_t n, float* recv) override { copy(send, n, recv); }
  void all_gather(std::int64_t const* send, std::size_t n, std::int64_t* recv) override { copy(send, n, recv); }
  void barrier() override {}
  request_id start_all_reduce(float*, std::size_t) override { return 0; }
  bool test(request_id) override { return true; }
  void wait(request_id) override {}
  [[noreturn]] void abort(int code) override { std::exit(code); }

 private:
  static void check_root(int root) {
    ARCNET_CHECK_AS(config_error, root == 0, "broadcast: root rank ", root, " does not exist in a world of 1");
  }
  template <class T>
  static void copy(T const* send, std::size_t n, T* recv) {
    if (n > 0 && send != recv) std::memcpy(recv, send, n * sizeof(T));
  }
};

/// The number of processes mpirun / mpiexec started this one among (OpenMPI, MPICH and PMI
/// launchers set it in the environment); 0 when not started by one. Needs no MPI library.
inline int launched_world_size() {
  for (char const* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MPI_LOCALNRANKS"})
    if (char const* s = std::getenv(v)) return std::max(1, std::atoi(s));
  return 0;
}

/// The tensor forms of the collectives, on contiguous CPU tensors.
inline void all_reduce(communicator& c, tensor<float, cpu>& t, reduce_op op = reduce_op::sum) {
  c.all_reduce(t.data(), static_cast<std::size_t>(t.numel()), op);
}
inline void broadcast(communicator& c, tensor<float, cpu>& t, int root = 0) {
  c.broadcast(t.data(), static_cast<std::size_t>(t.numel()), root);
}
/// Every rank's t concatenated along axis 0, rank 0's first: ranks must pass tensors of the
/// same shape; the result has size() * t.size(0) rows.
inline tensor<float, cpu> all_gather(communicator& c, tensor<float, cpu> const& t) {
  ARCNET_CHECK_AS(shape_error, t.rank() >= 1, "all_gather: expected a tensor with at least one axis, got a scalar");
  shape s = t.shape();
  s[0] *= c.size();
  auto out = tensor<float, cpu>::uninitialized(s);
  c.all_gather(t.data(), static_cast<std::size_t>(t.numel()), out.data());
  return out;
}

/// Every rank's rows of `t` concatenated along axis 0 in rank order, where ranks may hold
/// different row counts (not different row shapes): padded to the largest for one all-gather.
inline tensor<float, cpu> all_gather_uneven(communicator& c, tensor<float, cpu> const& t) {
  ARCNET_CHECK_AS(shape_error, t.rank() >= 1, "all_gather_uneven: expected a tensor with at least one axis, got a scalar");
  std::vector<std::int64_t> rows(static_cast<std::size_t>(c.size()));
  std::int64_t const mine = t.size(0);
  c.all_gather(&mine, 1, rows.data());
  index_t width = 1;  // values per row
  for (int axis = 1; axis < t.rank(); ++axis) width *= t.size(axis);
  std::int64_t const most = *std::max_element(rows.begin(), rows.end());
  std::vector<float> padded(static_cast<std::size_t>(most * width), 0.0f), all(padded.size() * rows.size());
  std::copy_n(t.data(), t.numel(), padded.begin());
  c.all_gather(padded.data(), padded.size(), all.data());
  shape s = t.shape();
  s[0] = 0;
  for (auto r : rows) s[0] += r;
  auto out = tensor<float, cpu>::uninitialized(s);
  float* o = out.data();
  for (std::size_t r = 0; r < rows.size(); ++r)
    o = std::copy_n(all.begin() + static_cast<std::ptrdiff_t>(r * padded.size()), rows[r] * width, o);
  return out;
}

}  // namespace arcnet::distributed
