#pragma once
// What arcnet-train needs to run as N ranks under `mpirun -np N` (mmpretrain's --launcher mpi):
// the communicator that dist.launcher names, the start of a run (every parameter and buffer
// broadcast from rank 0, as DistributedDataParallel does at construction), and mmpretrain's
// SyncBuffersHook (batch-norm running statistics averaged over ranks before validation and
// saving). The collectives themselves live in include/arcnet/distributed/.
//
// Built with MPI (the CMake target arcnet::mpi, linked by arcnet::engine when libopenmpi-dev is
// installed) the programs can run under mpirun; without it they refuse to, with an error,
// rather than train N independent copies.
#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "arcnet/distributed/communicator.hpp"
#include "arcnet/distributed/reducer.hpp"
#include "arcnet/engine/model_zoo.hpp"
#include "arcnet/engine/options.hpp"
#if defined(ARCNET_WITH_MPI)
#include "arcnet/distributed/mpi.hpp"
#endif

namespace arcnet::engine {

/// The communicator for dist.launcher: "none" (or "auto" outside mpirun) a world of one,
/// "mpi" (or "auto" under mpirun) MPI_COMM_WORLD with dist.timeout.
inline std::unique_ptr<distributed::communicator> make_communicator(dist_options const& o) {
  int const launched = distributed::launched_world_size();
  bool const mpi = o.launcher == "mpi" || (o.launcher == "auto" && launched > 0);
  if (!mpi) return std::make_unique<distributed::single_process>();
#if defined(ARCNET_WITH_MPI)
  auto c = std::make_unique<distributed::mpi_communicator>();
  c->set_timeout(std::chrono::milliseconds(static_cast<long long>(o.timeout * 1000)));
  return c;
#else
  if (launched > 1)
    detail::raise<config_error>("dist.launcher: started by mpirun as one of ", launched,
                                " processes, but this program was built without MPI, so each would train alone; "
                                "install libopenmpi-dev and rebuild, or run one process");
  if (o.launcher == "mpi")
    detail::raise<config_error>("dist.launcher: mpi, but this program was built without MPI (install "
                                "libopenmpi-dev and rebuild)");
  return std::make_unique<distributed::single_process>();
#endif
}

namespace detail_distributed {
/// Packs every tensor that `visit` reaches into one host buffer, runs `collective` on it, and
/// unpacks: one collective call for the whole model instead of one per tensor.
template <class D, class Visit, class Collective>
void over_flat(Visit&& visit, Collective&& collective) {
  std::vector<float> flat;
  visit([&](tensor<float, D>& t) {
    auto h = t.template to<cpu>();
    flat.insert(flat.end(), h.data(), h.data() + h.numel());
  });
  collective(flat);
  std::size_t at = 0;
  visit([&](tensor<float, D>& t) {
    auto h = tensor<float, cpu>::uninitialized(t.shape());
    std::copy(flat.begin() + static_cast<std::ptrdiff_t>(at), flat.begin() + static_cast<std::ptrdiff_t>(at + h.numel()),
              h.data());
    at += static_cast<std::size_t>(h.numel());
    if constexpr (std::is_same_v<D, cpu>) std::copy(h.data(), h.data() + h.numel(), t.data());
    else t.copy_from(h.template to<D>());
  });
}
}  // namespace detail_distributed

/// Every parameter and buffer of `model` becomes rank 0's (DDP's broadcast at start).
template <class D>
void broadcast_state(distributed::communicator& comm, any_retriever<float, D>& model) {
  if (comm.size() == 1) return;
  detail_distributed::over_flat<D>(
      [&](auto&& f) {
        model.for_each_parameter([&](std::string const&, variable<float, D>& p, nn::param_layout) { f(p.value_mut()); });
        model.for_each_buffer([&](std::string const&, tensor<float, D>& t) { f(t); });
      },
      [&](std::vector<float>& flat) { comm.broadcast(flat.data(), flat.size(), 0); });
}

/// Every buffer (batch-norm running mean, variance, batch count) becomes its mean over the
/// ranks: mmpretrain's SyncBuffersHook, before validation and saving.
template <class D>
void average_buffers(distributed::communicator& comm, any_retriever<float, D>& model) {
  if (comm.size() == 1) return;
  detail_distributed::over_flat<D>(
      [&](auto&& f) { model.for_each_buffer([&](std::string const&, tensor<float, D>& t) { f(t); }); },
      [&](std::vector<float>& flat) {
        comm.all_reduce(flat.data(), flat.size(), distributed::reduce_op::sum);
        float const inv = 1.0f / static_cast<float>(comm.size());
        for (auto& v : flat) v *= inv;
      });
}

/// The parameters that the gradient reducer averages: all of them but `left_out` (Partial FC's
/// sharded class centers, whose gradients belong to their rank alone).
template <class D>
std::vector<std::pair<std::string, variable<float, D>>> averaged_parameters(any_retriever<float, D>& model,
                                                                            std::string const& left_out = "") {
  std::vector<std::pair<std::string, variable<float, D>>> params;
  model.for_each_parameter([&](std::string const& n, variable<float, D>& p, nn::param_layout) {
    if (n != left_out) params.emplace_back(n, p);
  });
  return params;
}

}  // namespace arcnet::engine
