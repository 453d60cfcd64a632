#pragma once
// Retrieval metrics as mmpretrain defines them (RetrievalRecall, RetrievalAveragePrecision):
// Recall@k counts a query when any of its top k gallery items is relevant; AP@k sums, over the
// relevant items in the top k, the precision at their rank ("IR" mode) or the mean of the
// precisions just before and at their rank ("integrate", the Oxford/Paris convention), and
// divides by the query's total number of relevant items. Results are percentages.
#include <algorithm>
#include <numeric>
#include <unordered_set>
#include <vector>

#include "arcnet/core/tensor.hpp"

namespace arcnet::metrics {

using ranking = std::vector<std::vector<index_t>>;  // per query: gallery indices, best first

enum class ap_mode { ir, integrate };

/// Indices of the k largest scores of each row of scores (N, M), best first; ties keep the
/// lower index first. k is clipped to M.
template <class T>
ranking top_k(tensor<T, cpu> const& scores, int k) {
  check_rank("top_k", "the scores", scores, 2);
  ARCNET_CHECK_AS(shape_error, k > 0, "top_k: k must be positive, got ", k);
  index_t n = scores.size(0), m = scores.size(1), kk = std::min<index_t>(k, m);
  ranking out(static_cast<size_t>(n));
  std::vector<index_t> idx(static_cast<size_t>(m));
  for (index_t i = 0; i < n; ++i) {
    T const* row = scores.data() + i * m;
    std::iota(idx.begin(), idx.end(), index_t(0));
    std::partial_sort(idx.begin(), idx.begin() + kk, idx.end(),
                      [&](index_t a, index_t b) { return row[a] > row[b] || (row[a] == row[b] && a < b); });
    out[static_cast<size_t>(i)].assign(idx.begin(), idx.begin() + kk);
  }
  return out;
}

namespace detail_metrics {
inline void check_sizes(char const* op, ranking const& ranked, ranking const& relevant, int k) {
  ARCNET_CHECK_AS(shape_error, k > 0, op, ": k must be positive, got ", k);
  if (ranked.size() != relevant.size())
    arcnet::detail::raise<shape_error>(op, ": ", ranked.size(), " rankings for ", relevant.size(),
                                       " queries' relevant sets; expected one per query");
}
}  // namespace detail_metrics

/// Recall@k in percent over all queries.
inline double recall_at_k(ranking const& ranked, ranking const& relevant, int k) {
  detail_metrics::check_sizes("recall_at_k", ranked, relevant, k);
  if (ranked.empty()) return 0;
  std::size_t hits = 0;
  for (std::size_t q = 0; q < ranked.size(); ++q) {
    std::unordered_set<index_t> rel(relevant[q].begin(), relevant[q].end());
    auto end = ranked[q].begin() + std::min<std::ptrdiff_t>(k, static_cast<std::ptrdiff_t>(ranked[q].size()));
    hits += std::any_of(ranked[q].begin(), end, [&](index_t g) { return rel.count(g) != 0; });
  }
  return 100.0 * static_cast<double>(hits) / static_cast<double>(ranked.size());
}

/// AP@k of one query in percent; 0 when it has no relevant item.
inline double average_precision(std::vector<index_t> const& ranked, std::vector<index_t> const& relevant, int k,
                                ap_mode mode = ap_mode::ir) {
  ARCNET_CHECK_AS(shape_error, k > 0, "average_precision: k must be positive, got ", k);
  if (relevant.empty()) return 0;
  std::unordered_set<index_t> rel(relevant.begin(), relevant.end());
  double ap = 0;
  std::size_t found = 0, n = std::min<std::size_t>(static_cast<std::size_t>(k), ranked.size());
  for (std::size_t rank = 0; rank < n; ++rank) {
    if (!rel.count(ranked[rank])) continue;
    double current = double(found + 1) / double(rank + 1);
    if (mode == ap_mode::ir) {
      ap += current;
    } else {
      double before = rank > 0 ? double(found) / double(rank) : 1.0;
      ap += (before + current) / 2;
    }
    ++found;
  }
  return 100.0 * ap / static_cast<double>(rel.size());
}

/// mAP@k in percent: the mean of average_precision over the queries.
inline double mean_average_precision(ranking const& ranked, ranking const& relevant, int k, ap_mode mode = ap_mode::ir) {
  detail_metrics::check_sizes("mean_average_precision", ranked, relevant, k);
  if (ranked.empty()) return 0;
  double sum = 0;
  for (std::size_t q = 0; q < ranked.size(); ++q) sum += average_precision(ranked[q], relevant[q], k, mode);
  return sum / static_cast<double>(ranked.size());
}

}  // namespace arcnet::metrics
