#pragma once
// Retrieval metrics as mmpretrain defines them (RetrievalRecall, RetrievalAveragePrecision):
// Recall@k counts a query when any of its top k gallery items is relevant; AP@k sums, over the
// relevant items in the top k, the precision at their rank ("IR" mode) or the mean of the
// precisions just before and at their rank ("integrate", the Oxford/Paris convention), and
// divides by the query's total number of relevant items. MAP@R and R-precision are those of
// Musgrave et al. 2020, "A Metric Learning Reality Check". Results are percentages.
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
/// AP of one query, as a fraction: is_hit(rank) for ranks [0, n), r relevant items in all (r > 0).
template <class IsHit>
double average_precision_of(IsHit&& is_hit, std::size_t n, std::size_t r, ap_mode mode) {
  double ap = 0;
  std::size_t found = 0;
  for (std::size_t rank = 0; rank < n; ++rank) {
    if (!is_hit(rank)) continue;
    double current = double(found + 1) / double(rank + 1);
    if (mode == ap_mode::ir) {
      ap += current;
    } else {
      double before = rank > 0 ? double(found) / double(rank) : 1.0;
      ap += (before + current) / 2;
    }
    ++found;
  }
  return ap / static_cast<double>(r);
}
/// MAP@R and R-precision of one query, as fractions: is_hit(rank) for ranks [0, r), r > 0.
template <class IsHit>
void at_r_of(IsHit&& is_hit, std::size_t r, double& map_at_r, double& r_precision) {
  double sum = 0;
  std::size_t found = 0;
  for (std::size_t rank = 0; rank < r; ++rank) {
    if (!is_hit(rank)) continue;
    ++found;
    sum += double(found) / double(rank + 1);
  }
  map_at_r = sum / static_cast<double>(r);
  r_precision = double(found) / static_cast<double>(r);
}
/// Throws config_error unless a ranking holds its query's top R.
inline void check_holds_r(char const* op, std::size_t query, std::size_t held, std::size_t r, std::size_t max_r) {
  if (held < r)
    arcnet::detail::raise<config_error>(op, ": query ", query, " has R = ", r, " relevant gallery items but its "
                                        "ranking holds only ", held, "; MAP@R needs the top R of every query: "
                                        "search with k >= the largest R (", max_r, ")");
}

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
  std::size_t n = std::min<std::size_t>(static_cast<std::size_t>(k), ranked.size());
  return 100.0 * detail_metrics::average_precision_of([&](std::size_t i) { return rel.count(ranked[i]) != 0; }, n,
                                                      rel.size(), mode);
}

/// mAP@k in percent: the mean of average_precision over the queries.
inline double mean_average_precision(ranking const& ranked, ranking const& relevant, int k, ap_mode mode = ap_mode::ir) {
  detail_metrics::check_sizes("mean_average_precision", ranked, relevant, k);
  if (ranked.empty()) return 0;
  double sum = 0;
  for (std::size_t q = 0; q < ranked.size(); ++q) sum += average_precision(ranked[q], relevant[q], k, mode);
  return sum / static_cast<double>(ranked.size());
}

namespace detail_metrics {
/// MAP@R (what = 0) or R-precision (what = 1) in percent over the queries with R > 0.
inline double mean_at_r(char const* op, ranking const& ranked, ranking const& relevant, int what) {
  check_sizes(op, ranked, relevant, 1);
  std::vector<std::unordered_set<index_t>> rel(relevant.size());
  std::size_t max_r = 0;
  for (std::size_t q = 0; q < relevant.size(); ++q) {
    rel[q].insert(relevant[q].begin(), relevant[q].end());
    max_r = std::max(max_r, rel[q].size());
  }
  double sum = 0;
  std::size_t counted = 0;
  for (std::size_t q = 0; q < ranked.size(); ++q) {
    std::size_t r = rel[q].size();
    if (r == 0) continue;
    check_holds_r(op, q, ranked[q].size(), r, max_r);
    double map = 0, rp = 0;
    at_r_of([&](std::size_t i) { return rel[q].count(ranked[q][i]) != 0; }, r, map, rp);
    sum += what == 0 ? map : rp;
    ++counted;
  }
  return counted ? 100.0 * sum / static_cast<double>(counted) : 0.0;
}
}  // namespace detail_metrics

/// MAP@R in percent (Musgrave et al. 2020): per query, with R = |relevant| (distinct items),
/// (1/R) * sum over ranks i = 1..R of P(i) * rel(i), where P(i) is the precision of the top i;
/// then the mean over the queries. Queries with R = 0 are skipped (0 when none is left). Every
/// other ranking must hold at least R items (config_error otherwise: search with k >= max R).
/// When a query is itself in the gallery, leave it out of both its ranking and its relevant set.
inline double map_at_r(ranking const& ranked, ranking const& relevant) {
  return detail_metrics::mean_at_r("map_at_r", ranked, relevant, 0);
}

/// R-precision in percent: per query, the fraction of relevant items among its top R
/// (R = |relevant|), averaged over the queries with R > 0; the same requirements as map_at_r.
inline double r_precision(ranking const& ranked, ranking const& relevant) {
  return detail_metrics::mean_at_r("r_precision", ranked, relevant, 1);
}

}  // namespace arcnet::metrics
