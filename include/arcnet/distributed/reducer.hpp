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
#include <algorithm>
#include <cstring>
#include <functional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "arcnet/autograd/backward.hpp"
#include "arcnet/autograd/variable.hpp"
#include "arcnet/distributed/communicator.hpp"

namespace arcnet::distributed {

struct reducer_options {
  std::size_t bucket_bytes = std::size_t(25) << 20;       // PyTorch's bucket_cap_mb = 25
  std::size_t first_bucket_bytes = std::size_t(1) << 20;  // PyTorch's first bucket: 1 MiB
};

template <class D = cpu>
class gradient_reducer {
  static_assert(std::is_same_v<D, cpu>, "gradient_reducer: the CUDA device reduces with NCCL (not built yet)");

 public:
  using named_parameter = std::pair<std::string, variable<float, D>>;

  gradient_reducer(communicator& comm, std::vector<named_parameter> params, reducer_options o = {})
      : comm_(comm), params_(std::move(params)) {
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
    for (auto& b : buckets_) b.flat.assign(b.bytes / sizeof(float), 0.0f);
  }

  /// Starts buckets as their gradients become final during the backward passes run while the
  /// returned observer is alive.
  autograd::leaf_gradient_observer observe() {
    begin_step();
    return autograd::leaf_gradient_observer([this](autograd::value_node* leaf) { ready(leaf); });
  }

  /// Starts the buckets not started yet, waits for all, and leaves every parameter's gradient
  /// equal to its average over the ranks. Without a preceding observe(), reduces everything now.
  void finish() {
    if (!in_step_) begin_step();
    for (auto& b : buckets_) b.ready = b.members.size();
    launch_ready_buckets();
    float const scale = 1.0f / static_cast<float>(comm_.size());
    for (auto& b : buckets_) {
      comm_.wait(b.request);
      for (std::size_t j = 0; j < b.members.size(); ++j) {
        auto& p = params_[b.members[j]].second;
        float* g = p.grad_for_accumulate().data();
        float const* src = b.flat.data() + b.offsets[j];
        for (index_t i = 0, n = p.numel(); i < n; ++i) g[i] = src[i] * scale;
      }
    }
    in_step_ = false;
  }

  std::size_t bucket_count() const { return buckets_.size(); }
  /// How many buckets were started during backward (before finish) in the last step: a measure
  /// of overlap.
  std::size_t started_during_backward() const { return started_early_; }

 private:
  struct bucket {
    std::vector<std::size_t> members;  // indices into params_
    std::vector<std::size_t> offsets;  // element offsets in flat
    std::size_t bytes = 0;
    std::vector<float> flat;
    std::size_t ready = 0;  // members whose gradient is final this step
    request_id request = 0;
  };
  communicator& comm_;
  std::vector<named_parameter> params_;
  std::vector<bucket> buckets_;
  std::unordered_map<autograd::value_node const*, std::size_t> bucket_of_;
  std::size_t next_ = 0;  // the next bucket to start
  std::size_t started_early_ = 0;
  bool in_step_ = false;

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
    for (std::size_t k = 0; k < next_; ++k) comm_.test(buckets_[k].request);  // let MPI progress
  }
  /// Starts, in order, every bucket whose gradients are all final.
  void launch_ready_buckets() {
    while (next_ < buckets_.size() && buckets_[next_].ready >= buckets_[next_].members.size()) {
      auto& b = buckets_[next_];
      for (std::size_t j = 0; j < b.members.size(); ++j) {
        auto const& p = params_[b.members[j]].second;
        float* dst = b.flat.data() + b.offsets[j];
        auto const n = static_cast<std::size_t>(p.numel());
        if (p.grad().defined()) std::memcpy(dst, p.grad().data(), n * sizeof(float));
        else std::fill(dst, dst + n, 0.0f);  // unused this step on this rank
      }
      b.request = comm_.start_all_reduce(b.flat.data(), b.flat.size());
      ++next_;
    }
  }
};

}  // namespace arcnet::distributed
