#pragma once
// Samplers decide which dataset indices an epoch visits and in what order: sequential,
// shuffled per epoch, class-balanced (P classes x K images per batch), and a distributed
// wrapper that gives each rank a disjoint shard. An order depends only on (seed, epoch), never on
// threads or timing, so a run is reproducible.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <numeric>
#include <vector>

#include "arcnet/core/error.hpp"
#include "arcnet/core/random.hpp"
#include "arcnet/core/shape.hpp"

namespace arcnet::detail {
/// splitmix64 finaliser: decorrelates nearby (seed, epoch) pairs before they seed a generator.
inline std::uint64_t sampler_mix(std::uint64_t seed, std::uint64_t epoch) {
  std::uint64_t z = seed + 0x9e3779b97f4a7c15ull * (epoch + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
/// Fisher-Yates shuffle of v with g.
inline void sampler_shuffle(std::vector<index_t>& v, generator& g) {
  for (std::size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[g.below(i)]);
}
}  // namespace arcnet::detail

namespace arcnet::data {

/// The order in which an epoch visits dataset indices.
class sampler {
 public:
  virtual ~sampler() = default;
  /// The dataset indices of epoch `epoch`, in visiting order (a pure function of epoch).
  virtual std::vector<index_t> order(std::uint64_t epoch) const = 0;
};

/// 0, 1, ..., n-1 every epoch.
class sequential_sampler : public sampler {
 public:
  explicit sequential_sampler(index_t n) : n_(n) {
    ARCNET_CHECK_AS(config_error, n >= 0, "sequential_sampler: size must be >= 0, got ", n);
  }
  std::vector<index_t> order(std::uint64_t) const override {
    std::vector<index_t> v(static_cast<std::size_t>(n_));
    std::iota(v.begin(), v.end(), index_t(0));
    return v;
  }

 private:
  index_t n_;
};

/// A permutation of 0..n-1 per epoch: the same for the same (seed, epoch), a new one each epoch.
class shuffle_sampler : public sampler {
 public:
  shuffle_sampler(index_t n, std::uint64_t seed) : n_(n), seed_(seed) {
    ARCNET_CHECK_AS(config_error, n >= 0, "shuffle_sampler: size must be >= 0, got ", n);
  }
  std::vector<index_t> order(std::uint64_t epoch) const override {
    auto v = sequential_sampler(n_).order(epoch);
    generator g(detail::sampler_mix(seed_, epoch));
    detail::sampler_shuffle(v, g);
    return v;
  }

 private:
  index_t n_;
  std::uint64_t seed_;
};

/// Class-balanced batches for metric learning: each consecutive run of P*K indices holds P
/// distinct classes (drawn uniformly among the classes that have samples) and K images of each.
/// A class with >= K images gives K distinct ones, cycling through a per-class shuffle so that
/// every image is seen; a class with fewer than K is sampled with replacement. An epoch has
/// `batches_per_epoch` batches (default: number of samples / (P*K), at least 1).
class class_balanced_sampler : public sampler {
 public:
  class_balanced_sampler(std::vector<std::int64_t> const& labels, index_t classes_per_batch,
                         index_t images_per_class, std::uint64_t seed, index_t batches_per_epoch = 0)
      : p_(classes_per_batch), k_(images_per_class), seed_(seed) {
    ARCNET_CHECK_AS(config_error, p_ > 0 && k_ > 0, "class_balanced_sampler: P (classes per batch) and K (images ",
                    "per class) must be positive, got P=", p_, ", K=", k_);
    for (std::size_t i = 0; i < labels.size(); ++i) {
      ARCNET_CHECK_AS(config_error, labels[i] >= 0, "class_balanced_sampler: label of sample ", i, " is negative (",
                      labels[i], ")");
      auto c = static_cast<std::size_t>(labels[i]);
      if (c >= members_.size()) members_.resize(c + 1);
      members_[c].push_back(static_cast<index_t>(i));
    }
    members_.erase(std::remove_if(members_.begin(), members_.end(), [](auto const& m) { return m.empty(); }),
                   members_.end());
    ARCNET_CHECK_AS(config_error, static_cast<index_t>(members_.size()) >= p_, "class_balanced_sampler: P=", p_,
                    " classes per batch, but the labels have only ", members_.size(), " non-empty classes");
    batches_ = batches_per_epoch > 0
                   ? batches_per_epoch
                   : std::max<index_t>(1, static_cast<index_t>(labels.size()) / (p_ * k_));
  }
  index_t batch_size() const { return p_ * k_; }
  index_t batches_per_epoch() const { return batches_; }

  std::vector<index_t> order(std::uint64_t epoch) const override {
    generator g(detail::sampler_mix(seed_, epoch));
    std::size_t const nc = members_.size();
    std::vector<std::vector<index_t>> pool(members_);  // per-class shuffled queues
    std::vector<std::size_t> cursor(nc, 0);
    for (auto& m : pool) detail::sampler_shuffle(m, g);
    std::vector<index_t> classes(nc);
    std::iota(classes.begin(), classes.end(), index_t(0));
    std::vector<index_t> out;
    out.reserve(static_cast<std::size_t>(batches_ * p_ * k_));
    for (index_t b = 0; b < batches_; ++b) {
      for (index_t j = 0; j < p_; ++j) {  // partial Fisher-Yates: P distinct classes
        auto r = static_cast<std::size_t>(j) + g.below(nc - static_cast<std::size_t>(j));
        std::swap(classes[static_cast<std::size_t>(j)], classes[r]);
        auto c = static_cast<std::size_t>(classes[static_cast<std::size_t>(j)]);
        auto& m = pool[c];
        if (static_cast<index_t>(m.size()) < k_) {
          for (index_t t = 0; t < k_; ++t) out.push_back(m[g.below(m.size())]);
        } else {
          if (cursor[c] + static_cast<std::size_t>(k_) > m.size()) {  // used up: reshuffle
            detail::sampler_shuffle(m, g);
            cursor[c] = 0;
          }
          for (index_t t = 0; t < k_; ++t) out.push_back(m[cursor[c]++]);
        }
      }
    }
    return out;
  }

 private:
  index_t p_, k_;
  std::uint64_t seed_;
  index_t batches_ = 0;
  std::vector<std::vector<index_t>> members_;  // dataset indices of each non-empty class
};

/// One rank's shard of another sampler's order, like PyTorch's DistributedSampler: the order is
/// cut into groups of `chunk` consecutive indices (1, or P*K to keep class-balanced batches
/// whole), padded by repeating groups from its start to a multiple of world_size (or, with
/// drop_last, truncated to one), and rank r takes groups r, r + world_size, ... Every rank gets
/// the same number of indices; together they cover the whole order.
class distributed_sampler : public sampler {
 public:
  distributed_sampler(std::shared_ptr<sampler const> base, int rank, int world_size, index_t chunk = 1,
                      bool drop_last = false)
      : base_(std::move(base)), rank_(rank), world_(world_size), chunk_(chunk), drop_last_(drop_last) {
    ARCNET_CHECK_AS(config_error, base_ != nullptr, "distributed_sampler: the base sampler is null");
    ARCNET_CHECK_AS(config_error, world_ >= 1 && rank_ >= 0 && rank_ < world_, "distributed_sampler: rank ", rank_,
                    " is out of range for world size ", world_);
    ARCNET_CHECK_AS(config_error, chunk_ >= 1, "distributed_sampler: chunk must be >= 1, got ", chunk_);
  }
  std::vector<index_t> order(std::uint64_t epoch) const override {
    auto all = base_->order(epoch);
    auto const n = static_cast<index_t>(all.size());
    index_t groups = (n + chunk_ - 1) / chunk_;
    index_t per_rank = drop_last_ ? groups / world_ : (groups + world_ - 1) / world_;
    std::vector<index_t> out;
    if (groups == 0) return out;
    out.reserve(static_cast<std::size_t>(per_rank * chunk_));
    for (index_t k = 0; k < per_rank; ++k) {
      index_t g = (k * world_ + rank_) % groups;  // wraps around: padding repeats the first groups
      for (index_t i = g * chunk_; i < std::min(n, (g + 1) * chunk_); ++i) out.push_back(all[static_cast<std::size_t>(i)]);
    }
    return out;
  }

 private:
  std::shared_ptr<sampler const> base_;
  int rank_, world_;
  index_t chunk_;
  bool drop_last_;
};

}  // namespace arcnet::data
