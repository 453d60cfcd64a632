#pragma once
// The retrieval report of the evaluation programs: Recall@1/5/10, mAP@10 (mmpretrain's IR and
// integrate modes), MAP@R and R-precision (Musgrave et al. 2020), computed from one search's
// rankings and the labels, where an item is relevant to a query when their labels are equal.
// Relevance is read from the labels rather than from per-query relevant sets: with Fashion-MNIST
// those sets would hold 10,000 x 6,000 indices.
//
// One search serves every metric: MAP@R needs the top R of each query, R = the number of gallery
// items sharing its label (6,000 for Fashion-MNIST), so search with k = required_k(...), which
// is max(10, largest R). A second, separate search for MAP@R would redo the whole GEMM; a
// shorter ranking is refused (config_error) rather than silently truncating MAP@R, and a caller
// that cannot afford Q x k results passes with_map_at_r = false and searches with k = 10.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <string>
#include <unordered_map>
#include <vector>

#include "arcnet/metrics/retrieval.hpp"
#include "arcnet/metrics/search.hpp"

namespace arcnet::metrics {

/// The metrics of one evaluation, in percent.
struct retrieval_report {
  index_t num_queries = 0;
  /// Queries with at least one relevant gallery item (R > 0): MAP@R and R-precision average
  /// over these only; Recall and mAP@10 over all queries (a query without any counts 0).
  index_t num_queries_with_relevant = 0;
  /// The largest R over the queries.
  index_t max_r = 0;
  double recall_at_1 = 0, recall_at_5 = 0, recall_at_10 = 0;
  double map_at_10 = 0;            ///< IR mode, mmpretrain's default
  double map_at_10_integrate = 0;  ///< integrate mode
  double map_at_r = std::numeric_limits<double>::quiet_NaN();     ///< NaN when not computed
  double r_precision = std::numeric_limits<double>::quiet_NaN();  ///< NaN when not computed

  /// One line for a log, e.g. "queries 10000: Recall@1 85.31 Recall@5 ...".
  std::string str() const {
    char buf[320];
    std::snprintf(buf, sizeof buf,
                  "queries %lld: Recall@1 %.2f Recall@5 %.2f Recall@10 %.2f mAP@10 %.2f mAP@10(integrate) %.2f",
                  static_cast<long long>(num_queries), recall_at_1, recall_at_5, recall_at_10, map_at_10,
                  map_at_10_integrate);
    std::string s = buf;
    if (!std::isnan(map_at_r)) {
      std::snprintf(buf, sizeof buf, " MAP@R %.2f R-precision %.2f (%lld queries with R > 0, max R %lld)", map_at_r,
                    r_precision, static_cast<long long>(num_queries_with_relevant), static_cast<long long>(max_r));
      s += buf;
    }
    return s;
  }
};

namespace detail_report {

/// R of every query: gallery items with its label, less the query itself when it is in the gallery.
inline std::vector<index_t> relevant_counts(char const* op, std::vector<std::int64_t> const& query_labels,
                                            std::vector<std::int64_t> const& gallery_labels,
                                            std::vector<index_t> const& query_gallery_index) {
  if (!query_gallery_index.empty() && query_gallery_index.size() != query_labels.size())
    arcnet::detail::raise<config_error>(op, ": query_gallery_index has ", query_gallery_index.size(),
                                        " entries for ", query_labels.size(), " queries; expected one per query");
  std::unordered_map<std::int64_t, index_t> count;
  for (auto l : gallery_labels) ++count[l];
  std::vector<index_t> r(query_labels.size());
  for (std::size_t q = 0; q < query_labels.size(); ++q) {
    auto it = count.find(query_labels[q]);
    r[q] = it == count.end() ? 0 : it->second;
    index_t self = query_gallery_index.empty() ? -1 : query_gallery_index[q];
    if (self < 0) continue;
    if (self >= static_cast<index_t>(gallery_labels.size()))
      arcnet::detail::raise<config_error>(op, ": query ", q, " is gallery item ", self, ", but there are only ",
                                          gallery_labels.size(), " gallery labels");
    if (gallery_labels[static_cast<std::size_t>(self)] != query_labels[q])
      arcnet::detail::raise<config_error>(op, ": query ", q, " is gallery item ", self, " but their labels differ (",
                                          query_labels[q], " vs ", gallery_labels[static_cast<std::size_t>(self)],
                                          ")");
    --r[q];
  }
  return r;
}

}  // namespace detail_report

/// The largest R over the queries: the number of gallery items sharing a query's label, less
/// the query itself where query_gallery_index (one entry per query, -1: not in the gallery) says
/// it is in the gallery. MAP@R needs rankings at least this long.
inline index_t max_relevant(std::vector<std::int64_t> const& query_labels,
                            std::vector<std::int64_t> const& gallery_labels,
                            std::vector<index_t> const& query_gallery_index = {}) {
  auto r = detail_report::relevant_counts("max_relevant", query_labels, gallery_labels, query_gallery_index);
  return r.empty() ? 0 : *std::max_element(r.begin(), r.end());
}

/// The k to pass to search_topk so that evaluate_retrieval can compute every metric:
/// max(10, max_relevant(...)) with MAP@R, 10 without.
inline index_t required_k(std::vector<std::int64_t> const& query_labels,
                          std::vector<std::int64_t> const& gallery_labels,
                          std::vector<index_t> const& query_gallery_index = {}, bool with_map_at_r = true) {
  return with_map_at_r ? std::max<index_t>(10, max_relevant(query_labels, gallery_labels, query_gallery_index)) : 10;
}

/// Evaluates rankings (one per query, gallery indices best first, as search_topk returns) with
/// relevance = equal labels. query_gallery_index (empty, or one entry per query: the query's
/// own gallery index, -1 if none) takes the query out of its relevant set; its ranking must
/// not contain it. Each ranking must hold min(10, the gallery items it could hold) items, and
/// with MAP@R at least the query's R (config_error otherwise, naming the k to search with).
inline retrieval_report evaluate_retrieval(ranking const& ranked, std::vector<std::int64_t> const& query_labels,
                                           std::vector<std::int64_t> const& gallery_labels,
                                           std::vector<index_t> const& query_gallery_index = {},
                                           bool with_map_at_r = true) {
  char const* op = "evaluate_retrieval";
  if (ranked.size() != query_labels.size())
    arcnet::detail::raise<shape_error>(op, ": ", ranked.size(), " rankings for ", query_labels.size(),
                                       " query labels; expected one per query");
  auto r = detail_report::relevant_counts(op, query_labels, gallery_labels, query_gallery_index);
  index_t const ng = static_cast<index_t>(gallery_labels.size());
  retrieval_report rep;
  rep.num_queries = static_cast<index_t>(ranked.size());
  rep.max_r = r.empty() ? 0 : *std::max_element(r.begin(), r.end());
  index_t const needed_k = with_map_at_r ? std::max<index_t>(10, rep.max_r) : 10;
  double recall[3] = {0, 0, 0}, ap_ir = 0, ap_int = 0, map_r = 0, rp = 0;
  int const ks[3] = {1, 5, 10};
  for (std::size_t q = 0; q < ranked.size(); ++q) {
    auto const& list = ranked[q];
    bool const in_gallery = !query_gallery_index.empty() && query_gallery_index[q] >= 0;
    index_t const available = ng - (in_gallery ? 1 : 0);
    index_t const held = static_cast<index_t>(list.size());
    if (held < std::min<index_t>(10, available))
      arcnet::detail::raise<config_error>(op, ": the ranking of query ", q, " holds ", held, " gallery items; "
                                          "Recall@10 and mAP@10 need ", std::min<index_t>(10, available),
                                          ": search with k >= ", needed_k);
    for (index_t g : list) {
      if (g < 0 || g >= ng)
        arcnet::detail::raise<shape_error>(op, ": the ranking of query ", q, " holds gallery index ", g,
                                           ", outside the ", ng, " gallery labels");
      if (in_gallery && g == query_gallery_index[q])
        arcnet::detail::raise<config_error>(op, ": the ranking of query ", q, " holds the query itself (gallery item ",
                                            g, "); search with the same query_gallery_index to leave it out");
    }
    auto is_hit = [&](std::size_t i) { return gallery_labels[static_cast<std::size_t>(list[i])] == query_labels[q]; };
    for (int j = 0; j < 3; ++j) {
      std::size_t n = std::min<std::size_t>(static_cast<std::size_t>(ks[j]), list.size());
      for (std::size_t i = 0; i < n; ++i)
        if (is_hit(i)) {
          recall[j] += 1;
          break;
        }
    }
    std::size_t const rq = static_cast<std::size_t>(r[q]);
    if (rq == 0) continue;  // AP counts 0; MAP@R skips the query
    ++rep.num_queries_with_relevant;
    std::size_t n10 = std::min<std::size_t>(10, list.size());
    ap_ir += detail_metrics::average_precision_of(is_hit, n10, rq, ap_mode::ir);
    ap_int += detail_metrics::average_precision_of(is_hit, n10, rq, ap_mode::integrate);
    if (with_map_at_r) {
      detail_metrics::check_holds_r(op, q, list.size(), rq, static_cast<std::size_t>(rep.max_r));
      double m = 0, p = 0;
      detail_metrics::at_r_of(is_hit, rq, m, p);
      map_r += m;
      rp += p;
    }
  }
  if (rep.num_queries > 0) {
    double nq = static_cast<double>(rep.num_queries);
    rep.recall_at_1 = 100 * recall[0] / nq;
    rep.recall_at_5 = 100 * recall[1] / nq;
    rep.recall_at_10 = 100 * recall[2] / nq;
    rep.map_at_10 = 100 * ap_ir / nq;
    rep.map_at_10_integrate = 100 * ap_int / nq;
  }
  if (with_map_at_r) {
    double nr = static_cast<double>(rep.num_queries_with_relevant);
    rep.map_at_r = nr > 0 ? 100 * map_r / nr : 0.0;
    rep.r_precision = nr > 0 ? 100 * rp / nr : 0.0;
  }
  return rep;
}

/// The same for a search_topk result; the queries it left out of their own results are left
/// out of their relevant sets.
template <class T>
retrieval_report evaluate_retrieval(search_result<T> const& result, std::vector<std::int64_t> const& query_labels,
                                    std::vector<std::int64_t> const& gallery_labels, bool with_map_at_r = true) {
  return evaluate_retrieval(result.indices, query_labels, gallery_labels, result.query_gallery_index, with_map_at_r);
}

}  // namespace arcnet::metrics
