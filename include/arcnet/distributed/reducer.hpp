#pragma once
// Gradient averaging for data-parallel training, as PyTorch's DistributedDataParallel does it:
// the parameters are grouped into buckets (about 25 MiB each, the first 1 MiB so that reduction
// starts early) in the reverse of their registration order, which is about the order in which
// the backward pass finishes their gradients. During backward (autograd::leaf_gradient_observer)
// each bucket is copied into one flat buffer and its all-reduce started as soon as every
// gradient in it is final, so communication overlaps the rest of the backward pass; finish()
// waits for the buckets, divides by the world size and writes the averages back.
//
//   distributed::gradient_reducer<cpu> reducer(comm, params);
//   { auto scope = reducer.observe(); loss.backward(); }
//   reducer.finish();   // every rank now holds the same averaged gradients
//
// Buckets are started strictly in order, so all ranks issue the same collectives in the same
// order whatever the timing. A parameter that got no gradient on a rank this step contributes
// zeros. Parameters can be left out (Partial FC's sharded class centers, whose gradients are
// local to their rank).
//
// The bucket layout and the per-step bookkeeping (which buckets are ready, which started) are
// one piece of code for both devices (detail_reducer::reducer_core); a device supplies how a
// bucket is started and finished. On the CPU: host buffers and the communicator's MPI
// all-reduces. On the GPU (gradient_reducer<cuda>, nvcc with NCCL: ARCNET_WITH_NCCL): flat
// device buffers and NCCL (distributed/nccl.hpp). There a bucket's gradients are copied in on
// gpu::stream(), after the backward kernels that produced them, and its all-reduce runs on a
// communication stream of its own that waits for that copy through an event; a single stream
// would queue the all-reduce in front of the rest of the backward pass and nothing would
// overlap. finish() makes gpu::stream() wait for the communication stream (an event, no host
// wait), scales and writes the averages back with a kernel per parameter, and then waits on the
// host, with the communicator's timeout, until the all-reduces are done: the wait that turns a
// dead or stalled rank into an error instead of a hang at the next read-back.
#include <algorithm>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "arcnet/autograd/backward.hpp"
#include "arcnet/autograd/variable.hpp"
#include "arcnet/distributed/communicator.hpp"
#if defined(__CUDACC__) && defined(ARCNET_WITH_NCCL)
#include "arcnet/distributed/nccl.hpp"
#endif

namespace arcnet::distributed {

struct reducer_options {
  std::size_t bucket_bytes = std::size_t(25) << 20;       // PyTorch's bucket_cap_mb = 25
  std::size_t first_bucket_bytes = std::size_t(1) << 20;  // PyTorch's first bucket: 1 MiB
};

namespace detail_reducer {

/// The bucketing and the order of starts, shared by the devices. Derived supplies
/// start_bucket(k) (copy bucket k's gradients in and start its all-reduce) and progress()
/// (called after each ready gradient during backward).
template <class D, class Derived>
class reducer_core {
 public:
  using named_parameter = std::pair<std::string, variable<float, D>>;

  /// Starts buckets as their gradients become final during the backward passes run while the
  /// returned observer is alive.
  autograd::leaf_gradient_observer observe() {
    begin_step();
    return autograd::leaf_gradient_observer([this](autograd::value_node* leaf) { ready(leaf); });
  }

  std::size_t bucket_count() const { return buckets_.size(); }
  /// How many buckets were started during backward (before finish) in the last step: a measure
  /// of overlap.
  std::size_t started_during_backward() const { return started_early_; }

 protected:
  struct bucket {
    std::vector<std::size_t> members;  // indices into params_
    std::vector<std::size_t> offsets;  // element offsets in the bucket's flat buffer
    std::size_t bytes = 0;
    std::size_t ready = 0;  // members whose gradient is final this step
    std::size_t numel() const { return bytes / sizeof(float); }
  };

  reducer_core(std::vector<named_parameter> params, reducer_options const& o) : params_(std::move(params)) {
    std::size_t cap = o.first_bucket_bytes;
    for (std::size_t k = params_.size(); k-- > 0;) {  // reverse registration order
      auto& p = params_[k].second;
      auto const bytes = static_cast<std::size_t>(p.numel()) * sizeof(float);
      if (buckets_.empty() || (buckets_.back().bytes > 0 && buckets_.back().bytes + bytes > cap)) {
        if (!buckets_.empty()) cap = o.bucket_bytes;
        buckets_.emplace_back();
      }
      auto& b = buckets_.back();
      bucket_of_[p.impl().get()] = buckets_.size() - 1;
      b.members.push_back(k);
      b.offsets.push_back(b.bytes / sizeof(float));
      b.bytes += bytes;
    }
  }

  /// finish()'s first part: every gradient is final now, so every bucket not started yet is
  /// started (in order). Without a preceding observe(), that is all of them.
  void start_remaining() {
    if (!in_step_) begin_step();
    for (auto& b : buckets_) b.ready = b.members.size();
    launch_ready_buckets();
  }
  void end_step() { in_step_ = false; }

  std::vector<named_parameter> params_;
  std::vector<bucket> buckets_;
  std::size_t next_ = 0;  // the next bucket to start

 private:
  std::unordered_map<autograd::value_node const*, std::size_t> bucket_of_;
  std::size_t started_early_ = 0;
  bool in_step_ = false;

  Derived& self() { return static_cast<Derived&>(*this); }
  void begin_step() {
    for (auto& b : buckets_) b.ready = 0;
    next_ = 0;
    started_early_ = 0;
    in_step_ = true;
  }
  void ready(autograd::value_node* leaf) {
    auto it = bucket_of_.find(leaf);
    if (it == bucket_of_.end()) return;  // not one of ours (an input, a left-out parameter)
    ++buckets_[it->second].ready;
    std::size_t const before = next_;
    launch_ready_buckets();
    started_early_ += next_ - before;
    self().progress();
  }
  /// Starts, in order, every bucket whose gradients are all final.
  void launch_ready_buckets() {
    while (next_ < buckets_.size() && buckets_[next_].ready >= buckets_[next_].members.size()) {
      self().start_bucket(next_);
      ++next_;
    }
  }
};

}  // namespace detail_reducer

/// The CPU reducer (the primary template); gradient_reducer<cuda> is the specialisation below.
template <class D = cpu>
class gradient_reducer : public detail_reducer::reducer_core<D, gradient_reducer<D>> {
  static_assert(std::is_same_v<D, cpu>,
                "gradient_reducer<cuda> reduces with NCCL: compile with nvcc and link arcnet::nccl "
                "(CMake defines ARCNET_WITH_NCCL when NCCL and MPI are found)");
  using core = detail_reducer::reducer_core<D, gradient_reducer<D>>;
  friend core;

 public:
  using typename core::named_parameter;

  gradient_reducer(communicator& comm, std::vector<named_parameter> params, reducer_options o = {})
      : core(std::move(params), o), comm_(comm) {
    for (auto const& b : this->buckets_) flat_.emplace_back(b.numel(), 0.0f);
    requests_.assign(this->buckets_.size(), 0);
  }

  /// Starts the buckets not started yet, waits for all, and leaves every parameter's gradient
  /// equal to its average over the ranks. Without a preceding observe(), reduces everything now.
  void finish() {
    this->start_remaining();
    float const scale = 1.0f / static_cast<float>(comm_.size());
    for (std::size_t k = 0; k < this->buckets_.size(); ++k) {
      auto const& b = this->buckets_[k];
      comm_.wait(requests_[k]);
      for (std::size_t j = 0; j < b.members.size(); ++j) {
        auto& p = this->params_[b.members[j]].second;
        float* g = p.grad_for_accumulate().data();
        float const* src = flat_[k].data() + b.offsets[j];
        for (index_t i = 0, n = p.numel(); i < n; ++i) g[i] = src[i] * scale;
      }
    }
    this->end_step();
  }

 private:
  communicator& comm_;
  std::vector<std::vector<float>> flat_;  // one flat buffer per bucket
  std::vector<request_id> requests_;      // each bucket's all-reduce of this step

  void start_bucket(std::size_t k) {
    auto const& b = this->buckets_[k];
    for (std::size_t j = 0; j < b.members.size(); ++j) {
      auto const& p = this->params_[b.members[j]].second;
      float* dst = flat_[k].data() + b.offsets[j];
      auto const n = static_cast<std::size_t>(p.numel());
      if (p.grad().defined()) std::memcpy(dst, p.grad().data(), n * sizeof(float));
      else std::fill(dst, dst + n, 0.0f);  // unused this step on this rank
    }
    requests_[k] = comm_.start_all_reduce(flat_[k].data(), flat_[k].size());
  }
  /// MPI progresses only inside its calls: test the started buckets.
  void progress() {
    for (std::size_t k = 0; k < this->next_; ++k) comm_.test(requests_[k]);
  }
};

#if defined(__CUDACC__) && defined(ARCNET_WITH_NCCL)

namespace detail_reducer::kernels {
/// dst[i] = src[i] * scale: a bucket's sums written back as averages.
template <class T>
__global__ void scaled_copy(T* dst, T const* src, index_t n, T scale) {
  for (index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x; i < n; i += index_t(gridDim.x) * blockDim.x)
    dst[i] = src[i] * scale;
}
}  // namespace detail_reducer::kernels

/// The GPU reducer: flat device buffers, NCCL all-reduces on a communication stream of its own.
/// Build it after the model's parameters are on their device, on the thread that runs backward.
template <>
class gradient_reducer<cuda> : public detail_reducer::reducer_core<cuda, gradient_reducer<cuda>> {
  using core = detail_reducer::reducer_core<cuda, gradient_reducer<cuda>>;
  friend core;

 public:
  using core::named_parameter;

  /// Reduces through `nccl` (which must outlive the reducer).
  gradient_reducer(nccl_communicator& nccl, std::vector<named_parameter> params, reducer_options o = {})
      : gradient_reducer(nullptr, &nccl, std::move(params), o) {}
  /// Makes and owns an NCCL communicator bootstrapped over `world` (the same ranks): the
  /// constructor the CPU reducer has, so that code templated on the device builds either.
  gradient_reducer(communicator& world, std::vector<named_parameter> params, reducer_options o = {})
      : gradient_reducer(std::make_unique<nccl_communicator>(world), nullptr, std::move(params), o) {}

  gradient_reducer(gradient_reducer const&) = delete;
  gradient_reducer& operator=(gradient_reducer const&) = delete;

  ~gradient_reducer() {
    // The flat buffers go back to the caching allocator, whose next user runs on gpu::stream():
    // make that stream wait for any all-reduce still running on them (a step ended by an error).
    if (side_ && reduced_ && cudaEventRecord(reduced_, side_) == cudaSuccess)
      cudaStreamWaitEvent(compute_, reduced_, 0);
    if (copied_) cudaEventDestroy(copied_);
    if (reduced_) cudaEventDestroy(reduced_);
    if (side_) cudaStreamDestroy(side_);  // returns at once; released when its work is done
  }

  /// Starts the buckets not started yet, and leaves every parameter's gradient equal to its
  /// average over the ranks: the averages are written by kernels on gpu::stream() that wait for
  /// the all-reduces, and the host waits (with the timeout: distributed_error) until the
  /// all-reduces are done. Without a preceding observe(), reduces everything now.
  void finish() {
    start_remaining();
    ARCNET_CUDA_CHECK(cudaEventRecord(reduced_, side_));
    ARCNET_CUDA_CHECK(cudaStreamWaitEvent(compute_, reduced_, 0));
    float const scale = 1.0f / static_cast<float>(nccl_.size());
    for (std::size_t k = 0; k < buckets_.size(); ++k) {
      auto const& b = buckets_[k];
      for (std::size_t j = 0; j < b.members.size(); ++j) {
        auto& p = params_[b.members[j]].second;
        index_t const n = p.numel();
        if (n == 0) continue;
        float* g = p.grad_for_accumulate().data();
        ARCNET_CUDA_KERNEL(gpu::blocks_for(n), gpu::block_threads, 0, compute_, detail_reducer::kernels::scaled_copy)(
            g, flat_[k].data() + b.offsets[j], n, scale);
        ARCNET_CUDA_LAUNCH_CHECK("detail_reducer::kernels::scaled_copy");
      }
    }
    end_step();
    nccl_.wait(reduced_, "gradient all-reduce");
  }

  nccl_communicator& nccl() { return nccl_; }

 private:
  std::unique_ptr<nccl_communicator> owned_;  // before nccl_: initialised first
  nccl_communicator& nccl_;
  cudaStream_t compute_ = nullptr;  // gpu::stream() of the device at construction
  cudaStream_t side_ = nullptr;     // the all-reduces
  cudaEvent_t copied_ = nullptr;    // a bucket's gradients are in its flat buffer
  cudaEvent_t reduced_ = nullptr;   // every started all-reduce is done
  std::vector<tensor<float, cuda>> flat_;

  gradient_reducer(std::unique_ptr<nccl_communicator> owned, nccl_communicator* borrowed,
                   std::vector<named_parameter> params, reducer_options const& o)
      : core(std::move(params), o), owned_(std::move(owned)), nccl_(owned_ ? *owned_ : *borrowed) {
    ARCNET_CHECK_AS(device_error, gpu::current_device() == nccl_.device(),
                    "gradient_reducer<cuda>: the current device is ", gpu::current_device(),
                    " but the NCCL communicator works on device ", nccl_.device());
    for (auto const& [name, p] : params_) {
      ARCNET_CHECK_AS(config_error, p.defined(), "gradient_reducer<cuda>: parameter '", name, "' is undefined");
      if (p.numel() == 0) continue;
      // A model made before this rank's device was chosen sits on another device (see
      // use_local_device in nccl.hpp): say so here rather than fault in a kernel.
      cudaPointerAttributes where{};
      ARCNET_CUDA_CHECK(cudaPointerGetAttributes(&where, p.value().data()));
      ARCNET_CHECK_AS(device_error, where.type == cudaMemoryTypeDevice && where.device == nccl_.device(),
                      "gradient_reducer<cuda>: parameter '", name, "' is on device ", where.device,
                      " but this rank's device is ", nccl_.device(),
                      ": call distributed::use_local_device before creating the model");
    }
    compute_ = gpu::stream();
    try {
      ARCNET_CUDA_CHECK(cudaStreamCreateWithFlags(&side_, cudaStreamNonBlocking));
      ARCNET_CUDA_CHECK(cudaEventCreateWithFlags(&copied_, cudaEventDisableTiming));
      ARCNET_CUDA_CHECK(cudaEventCreateWithFlags(&reduced_, cudaEventDisableTiming));
    } catch (...) {  // the destructor does not run after a throwing constructor
      if (copied_) cudaEventDestroy(copied_);
      if (side_) cudaStreamDestroy(side_);
      throw;
    }
    for (auto const& b : buckets_) flat_.push_back(tensor<float, cuda>::uninitialized(shape{index_t(b.numel())}));
  }

  /// Copies bucket k's gradients in (zeros for a parameter without one this step) on
  /// gpu::stream(), after the kernels that produced them, and starts its all-reduce on the
  /// communication stream once the copies are done.
  void start_bucket(std::size_t k) {
    auto const& b = buckets_[k];
    for (std::size_t j = 0; j < b.members.size(); ++j) {
      auto const& p = params_[b.members[j]].second;
      float* dst = flat_[k].data() + b.offsets[j];
      index_t const n = p.numel();
      if (p.grad().defined()) gpu::copy(dst, p.grad().data(), n, cudaMemcpyDeviceToDevice);
      else gpu::fill(dst, n, 0.0f);  // unused this step on this rank
    }
    ARCNET_CUDA_CHECK(cudaEventRecord(copied_, compute_));
    ARCNET_CUDA_CHECK(cudaStreamWaitEvent(side_, copied_, 0));
    nccl_.all_reduce(flat_[k].data(), b.numel(), side_);
  }
  void progress() {}  // NCCL progresses on the device
};

#endif  // __CUDACC__ && ARCNET_WITH_NCCL

}  // namespace arcnet::distributed
