// Sampler orders: reproducible per (seed, epoch), distributed shards, P x K class balance.
#include "test_util.hpp"

#include <algorithm>
#include <map>
#include <memory>
#include <numeric>
#include <set>
#include <vector>

#include <arcnet/data/sampler.hpp>

namespace sampler_test {
using namespace arcnet;
inline std::vector<index_t> iota_vector(index_t n) {
  std::vector<index_t> v(static_cast<std::size_t>(n));
  std::iota(v.begin(), v.end(), index_t(0));
  return v;
}
}  // namespace sampler_test

TEST_CASE("sampler: sequential and shuffled orders", "[data]") {
  using namespace sampler_test;
  CHECK(data::sequential_sampler(5).order(3) == std::vector<index_t>{0, 1, 2, 3, 4});
  CHECK(data::sequential_sampler(0).order(0).empty());

  data::shuffle_sampler s(101, 7);
  auto e0 = s.order(0), e1 = s.order(1);
  CHECK(e0 == data::shuffle_sampler(101, 7).order(0));  // same (seed, epoch): same order
  CHECK(e0 != e1);                                      // a new permutation each epoch
  CHECK(e0 != data::shuffle_sampler(101, 8).order(0));  // another seed: another order
  CHECK(e0 != iota_vector(101));
  for (auto const& e : {e0, e1}) {
    auto sorted = e;
    std::sort(sorted.begin(), sorted.end());
    CHECK(sorted == iota_vector(101));  // a permutation
  }
  CHECK_THROWS_AS(data::shuffle_sampler(-1, 0), config_error);
}

TEST_CASE("sampler: distributed shards are disjoint, equal and cover the order", "[data]") {
  using namespace sampler_test;
  auto base = std::make_shared<data::shuffle_sampler>(10, 3);
  auto const all = base->order(2);
  // 10 indices over 3 ranks: each gets ceil(10 / 3) = 4, padded with the first 2 of the order.
  std::vector<index_t> merged;
  for (int r = 0; r < 3; ++r) {
    auto shard = data::distributed_sampler(base, r, 3).order(2);
    REQUIRE(shard.size() == 4);
    for (std::size_t k = 0; k < shard.size(); ++k) CHECK(shard[k] == all[(k * 3 + static_cast<std::size_t>(r)) % 10]);
    merged.insert(merged.end(), shard.begin(), shard.end());
  }
  std::sort(merged.begin(), merged.end());
  std::vector<index_t> expected = iota_vector(10);
  expected.push_back(all[0]);  // the padding (like PyTorch's DistributedSampler)
  expected.push_back(all[1]);
  std::sort(expected.begin(), expected.end());
  CHECK(merged == expected);

  // Divisible sizes: disjoint shards whose union is exactly the order; drop_last truncates.
  auto seq = std::make_shared<data::sequential_sampler>(12);
  std::set<index_t> seen;
  for (int r = 0; r < 4; ++r)
    for (index_t i : data::distributed_sampler(seq, r, 4).order(0)) CHECK(seen.insert(i).second);
  CHECK(seen.size() == 12);
  CHECK(data::distributed_sampler(base, 1, 3, 1, true).order(2) == std::vector<index_t>{all[1], all[4], all[7]});
  // Chunks stay whole: groups of 2 go round-robin to 2 ranks.
  CHECK(data::distributed_sampler(seq, 1, 2, 2).order(0) == std::vector<index_t>{2, 3, 6, 7, 10, 11});
  CHECK_THROWS_AS(data::distributed_sampler(seq, 2, 2), config_error);
}

TEST_CASE("sampler: class-balanced batches hold P distinct classes x K images", "[data]") {
  using namespace sampler_test;
  // Class c has c + 1 samples (class 0: one sample, class 5: six); labels interleaved.
  std::vector<std::int64_t> labels;
  for (int c = 0; c < 6; ++c)
    for (int k = 0; k <= c; ++k) labels.push_back(c);
  std::reverse(labels.begin(), labels.end());
  index_t const P = 3, K = 4;
  data::class_balanced_sampler s(labels, P, K, 11);
  CHECK(s.batch_size() == 12);
  CHECK(s.batches_per_epoch() == 1);  // 21 samples / 12
  data::class_balanced_sampler long_epoch(labels, P, K, 11, 50);
  auto order = long_epoch.order(4);
  REQUIRE(order.size() == 50 * 12);
  CHECK(order == data::class_balanced_sampler(labels, P, K, 11, 50).order(4));
  CHECK(order != long_epoch.order(5));
  std::map<std::int64_t, std::set<index_t>> distinct_per_class;
  std::set<std::int64_t> classes_seen;
  for (std::size_t b = 0; b < 50; ++b) {
    std::map<std::int64_t, std::vector<index_t>> by_class;
    for (std::size_t j = 0; j < 12; ++j) {
      index_t i = order[b * 12 + j];
      by_class[labels[static_cast<std::size_t>(i)]].push_back(i);
      // K consecutive indices share a class.
      CHECK(labels[static_cast<std::size_t>(i)] == labels[static_cast<std::size_t>(order[b * 12 + j / K * K])]);
    }
    REQUIRE(by_class.size() == static_cast<std::size_t>(P));
    for (auto const& [c, members] : by_class) {
      CHECK(members.size() == static_cast<std::size_t>(K));
      std::set<index_t> unique(members.begin(), members.end());
      // Classes with >= K samples give K distinct ones; smaller ones repeat (with replacement).
      if (c + 1 >= K) CHECK(unique.size() == static_cast<std::size_t>(K));
      else CHECK(unique.size() <= static_cast<std::size_t>(c + 1));
      distinct_per_class[c].insert(members.begin(), members.end());
      classes_seen.insert(c);
    }
  }
  CHECK(classes_seen.size() == 6);
  for (auto const& [c, members] : distinct_per_class) CHECK(members.size() == static_cast<std::size_t>(c + 1));
  CHECK_THROWS_AS(data::class_balanced_sampler(labels, 7, 2, 0), config_error);  // only 6 classes
  CHECK_THROWS_AS(data::class_balanced_sampler(labels, 2, 0, 0), config_error);
  CHECK_THROWS_AS(data::class_balanced_sampler({0, -1}, 1, 1, 0), config_error);
}
