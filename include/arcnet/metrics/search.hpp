#pragma once
// Exact k-nearest-neighbour search of queries against a gallery by dot product (cosine when the
// caller has L2-normalised both): the gallery search behind evaluation and retrieval. It scores a
// block of queries against a block of the gallery with a GEMM on the tensors' device, copies the
// block's scores to the host, and merges them into a running top k per query, so that a large
// gallery never needs the full Q x G score matrix. Order: score descending, ties by the lower
// gallery index, exactly as metrics::top_k over the full matrix.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <type_traits>
#include <vector>

#include "arcnet/core/tensor.hpp"
#include "arcnet/core/threads.hpp"
#include "arcnet/metrics/retrieval.hpp"
#include "arcnet/ops/matmul.hpp"

namespace arcnet::metrics {

/// How search_topk blocks its work and which results it leaves out.
struct search_options {
  /// Queries scored per GEMM. Memory besides the Q x k results: query_chunk * gallery_chunk
  /// scores (on the device, plus a host copy off the CPU; 256 MiB in float by default),
  /// query_chunk * k candidates, and per thread k + gallery_chunk scratch scores; on the CPU,
  /// Eigen's GEMM also packs the gallery block into about min(d, 320) * gallery_chunk floats
  /// (80 MiB by default; measured in benchmarks/search/NOTES.md).
  index_t query_chunk = 1024;
  /// Gallery items scored per GEMM. Blocks of at least 4k items are cheapest per item (the
  /// selection then starts from a sampled bound).
  index_t gallery_chunk = 65536;
  /// Leave-self-out when the queries are the gallery itself: query i is gallery item i
  /// (requires Q == G). Shorthand for query_gallery_index = 0, 1, ..., Q-1.
  bool exclude_self = false;
  /// Empty, or one entry per query: the gallery index of that query (-1: not in the gallery),
  /// which is then left out of the query's results. Not combined with exclude_self.
  std::vector<index_t> query_gallery_index;
};

/// What search_topk returns: per query, up to k gallery indices and their scores, best first.
template <class T>
struct search_result {
  /// (Q) lists of min(k, G - 1 if the query is excluded from the gallery else G) gallery indices.
  ranking indices;
  /// The dot products matching `indices`.
  std::vector<std::vector<T>> scores;
  /// As searched: the gallery index of each query (-1: none), or empty when nothing was excluded.
  /// evaluate_retrieval reads it to leave the query out of its relevant set too.
  std::vector<index_t> query_gallery_index;
  /// The k that was asked for (each list may be shorter; see `indices`).
  index_t k = 0;
};

namespace detail_search {

inline int max_threads() { return arcnet::max_threads(); }
inline std::size_t thread_id() { return static_cast<std::size_t>(arcnet::thread_index()); }

/// Below this many scores per block the merge runs on one thread (a parallel region costs more).
inline constexpr index_t parallel_threshold = 8192;

template <class T>
struct candidate {
  T score;
  index_t index;
};

/// Per-thread work space of the merge, sized once before the parallel loops (which must not
/// allocate: an exception cannot leave an OpenMP region).
template <class T>
struct merge_scratch {
  std::vector<T> vals;               // k + gallery_chunk scores
  std::vector<candidate<T>> sorted;  // k candidates
};

/// An unsigned key with the order of the scores (-0 just below +0); not for NaN.
template <class T>
auto order_key(T v) {
  using key = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
  static_assert(sizeof(T) == sizeof(key), "arcnet::metrics::search_topk: features must be float or double");
  key u;
  std::memcpy(&u, &v, sizeof u);
  key const sign = key(1) << (8 * sizeof(key) - 1);
  return (u & sign) ? key(~u) : key(u | sign);
}

/// Sorts items[0, n) best first (higher score, then lower index): an LSD radix sort on the
/// score key, then each run of equal scores (-0 and +0 included) by index. tmp holds n candidates.
template <class T>
void sort_best_first(candidate<T>* items, std::size_t n, candidate<T>* tmp) {
  candidate<T>* src = items;
  candidate<T>* dst = tmp;
  for (unsigned shift = 0; shift < 8 * sizeof(T); shift += 8) {
    std::size_t count[257] = {};
    for (std::size_t i = 0; i < n; ++i) ++count[((~order_key(src[i].score)) >> shift & 0xff) + 1];
    if (std::any_of(count + 1, count + 257, [n](std::size_t c) { return c == n; })) continue;  // one digit
    for (int b = 0; b < 256; ++b) count[b + 1] += count[b];
    for (std::size_t i = 0; i < n; ++i) dst[count[(~order_key(src[i].score)) >> shift & 0xff]++] = src[i];
    std::swap(src, dst);
  }
  if (src != items) std::copy(src, src + n, items);
  for (std::size_t i = 0; i < n;) {
    std::size_t j = i + 1;
    while (j < n && items[j].score == items[i].score) ++j;
    if (j - i > 1)
      std::sort(items + i, items + j, [](auto const& a, auto const& b) { return a.index < b.index; });
    i = j;
  }
}

/// Running top k of one query, fed a gallery block at a time in increasing gallery order. Each
/// block costs one selection over plain scores: the k-th largest score t of (kept set, block),
/// then the items above t, and of those equal to t the lowest gallery indices (the kept ones
/// first, as every kept index precedes the block). The set kept is the exact top k so far.
template <class T>
class running_top_k {
 public:
  void reset(index_t k) {
    k_ = static_cast<std::size_t>(k);
    items_.clear();
    items_.reserve(k_);  // never more than k items: merge() does not reallocate, so it does not throw
  }

  /// Merges the scores row[0, gn) of gallery items g0, g0 + 1, ... leaving out `self`.
  /// Returns the offset of a NaN score (and merges nothing), or -1.
  index_t merge(T const* row, index_t gn, index_t g0, index_t self, merge_scratch<T>& scratch) {
    bool any_nan = false;
    for (index_t j = 0; j < gn; ++j) any_nan |= std::isnan(row[j]);
    if (any_nan) return std::find_if(row, row + gn, [](T v) { return std::isnan(v); }) - row;
    index_t const self_at = self - g0;  // outside [0, gn) when the query is not in this block
    bool const full = items_.size() == k_;
    // The selection works on the scores that can still enter: the kept ones, and those of the
    // block above the smallest kept (one equal to it loses the tie). In a large block a sample
    // first gives a bound that k scores most likely reach, which keeps the selection small; if
    // fewer than k scores pass it, the selection runs again without it.
    T const none = -std::numeric_limits<T>::infinity();
    T bound = sample_bound(row, gn);
    T* vals = scratch.vals.data();
    std::size_t nv = 0;
    for (int attempt = 0; attempt < 2; ++attempt, bound = none) {
      nv = 0;
      for (auto const& c : items_) vals[nv++] = c.score;
      for (index_t j = 0; j < gn; ++j) {  // branch-free compaction
        T const s = row[j];
        vals[nv] = s;
        nv += (!full || s > min_) && s >= bound && j != self_at;
      }
      if (bound == none || nv >= k_) break;
    }
    if (nv <= k_ && bound == none) {  // everything fits
      for (index_t j = 0; j < gn; ++j)
        if ((!full || row[j] > min_) && j != self_at) items_.push_back({row[j], g0 + j});
      if (items_.size() == k_ && !full)
        min_ = std::min_element(items_.begin(), items_.end(), [](auto& a, auto& b) { return a.score < b.score; })
                   ->score;
      return -1;
    }
    T* kth = vals + (k_ - 1);
    std::nth_element(vals, kth, vals + nv, std::greater<T>());
    T const t = *kth;
    // Everything above t now lies before kth; at least one slot is left for a score equal to t.
    std::size_t ties_left = k_ - static_cast<std::size_t>(std::count_if(vals, kth, [t](T v) { return v > t; }));
    auto mid = std::partition(items_.begin(), items_.end(), [t](auto const& c) { return c.score > t; });
    auto tie_end = std::partition(mid, items_.end(), [t](auto const& c) { return c.score == t; });
    if (static_cast<std::size_t>(tie_end - mid) > ties_left) {
      std::nth_element(mid, mid + static_cast<std::ptrdiff_t>(ties_left), tie_end,
                       [](auto const& a, auto const& b) { return a.index < b.index; });
      tie_end = mid + static_cast<std::ptrdiff_t>(ties_left);
    }
    ties_left -= static_cast<std::size_t>(tie_end - mid);
    items_.erase(tie_end, items_.end());
    for (index_t j = 0; j < gn; ++j) {
      T const s = row[j];
      if (s < t || j == self_at) continue;
      if (s > t) {
        items_.push_back({s, g0 + j});
      } else if (ties_left > 0) {
        items_.push_back({s, g0 + j});
        --ties_left;
      }
    }
    min_ = t;
    return -1;
  }

  /// The kept items, best first, written to indices and scores, which the caller has sized to
  /// their count.
  void finish(std::vector<index_t>& indices, std::vector<T>& scores, merge_scratch<T>& scratch) {
    sort_best_first(items_.data(), items_.size(), scratch.sorted.data());
    for (std::size_t i = 0; i < items_.size() && i < indices.size(); ++i) {
      indices[i] = items_[i].index;
      scores[i] = items_[i].score;
    }
  }

 private:
  /// A score that, by a sample of row[0, n), at least k of the row most likely reach (-inf
  /// when the row is small next to k): only a shortcut, never needed for exactness.
  T sample_bound(T const* row, index_t n) const {
    constexpr index_t m = 1024;
    auto const k = static_cast<index_t>(k_);
    if (n < 4 * m || n < 4 * k) return -std::numeric_limits<T>::infinity();
    // Positions from a fixed linear congruential sequence: a plain stride would alias with
    // galleries stored in a periodic order (labels 0..9, 0..9, ...).
    T sample[m];
    std::uint64_t state = 0x9E3779B97F4A7C15ull;
    for (index_t i = 0; i < m; ++i) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      sample[i] = row[static_cast<index_t>((state >> 33) % static_cast<std::uint64_t>(n))];
    }
    // The k-th largest of the row sits near position k m / n of the sample: aim at 1.25 times
    // that, plus 16, so that sampling noise rarely puts the bound above it.
    index_t at = std::min<index_t>(m - 1, (k * m * 5) / (n * 4) + 16);
    std::nth_element(sample, sample + at, sample + m, std::greater<T>());
    return sample[at];
  }

  std::size_t k_ = 0;
  std::vector<candidate<T>> items_;
  T min_ = T(0);  // the smallest kept score, once k are kept
};

/// Validates the options against Q and G; returns the query -> gallery index map (empty: none).
inline std::vector<index_t> self_index(search_options const& o, index_t q, index_t g) {
  if (o.exclude_self) {
    ARCNET_CHECK_AS(config_error, o.query_gallery_index.empty(),
                    "search_topk: set either exclude_self or query_gallery_index, not both");
    if (q != g)
      arcnet::detail::raise<config_error>("search_topk: exclude_self means query i is gallery item i, so it needs "
                                          "as many queries as gallery items; got ", q, " queries and ", g,
                                          " gallery items (use query_gallery_index for a subset)");
    std::vector<index_t> map(static_cast<std::size_t>(q));
    for (index_t i = 0; i < q; ++i) map[static_cast<std::size_t>(i)] = i;
    return map;
  }
  if (o.query_gallery_index.empty()) return {};
  if (static_cast<index_t>(o.query_gallery_index.size()) != q)
    arcnet::detail::raise<config_error>("search_topk: query_gallery_index needs one entry per query (", q,
                                        "), got ", o.query_gallery_index.size());
  for (std::size_t i = 0; i < o.query_gallery_index.size(); ++i) {
    index_t v = o.query_gallery_index[i];
    if (v < -1 || v >= g)
      arcnet::detail::raise<config_error>("search_topk: query_gallery_index[", i, "] = ", v,
                                          " is not a gallery index in [0, ", g, ") nor -1 (not in the gallery)");
  }
  return o.query_gallery_index;
}

}  // namespace detail_search

/// The k best gallery items of each query by dot product: queries (Q, d), gallery (G, d), both
/// on device D; results on the host, best first, ties by the lower gallery index (as top_k).
/// k is clipped to the gallery size; an excluded query's own item is never returned. Results do
/// not depend on the number of OpenMP threads. Throws shape_error for inputs that are not 2-D, a
/// width mismatch or an empty gallery; config_error for k < 1 and bad options; error for a NaN
/// score (NaN or Inf in the features).
template <class T, class D>
search_result<T> search_topk(tensor<T, D> const& queries, tensor<T, D> const& gallery, index_t k,
                             search_options opts = {}) {
  static_assert(std::is_floating_point_v<T>, "arcnet::metrics::search_topk: features must be floating point");
  check_rank("search_topk", "the queries (Q, d)", queries, 2);
  check_rank("search_topk", "the gallery (G, d)", gallery, 2);
  index_t const nq = queries.size(0), ng = gallery.size(0), d = queries.size(1);
  if (gallery.size(1) != d)
    arcnet::detail::raise<shape_error>("search_topk: queries ", queries.shape(), " and gallery ", gallery.shape(),
                                       " have different feature widths (", d, " vs ", gallery.size(1), ")");
  if (ng == 0)
    arcnet::detail::raise<shape_error>("search_topk: the gallery is empty (shape ", gallery.shape(),
                                       "); there is nothing to search");
  ARCNET_CHECK_AS(config_error, k >= 1, "search_topk: k must be at least 1, got ", k);
  ARCNET_CHECK_AS(config_error, opts.query_chunk >= 1 && opts.gallery_chunk >= 1,
                  "search_topk: query_chunk and gallery_chunk must be at least 1, got ", opts.query_chunk, " and ",
                  opts.gallery_chunk);

  search_result<T> out;
  out.query_gallery_index = detail_search::self_index(opts, nq, ng);
  out.k = k;
  out.indices.resize(static_cast<std::size_t>(nq));
  out.scores.resize(static_cast<std::size_t>(nq));
  if (nq == 0) return out;

  index_t const kk = std::min(k, ng);
  index_t const qc = std::min(opts.query_chunk, nq), gc = std::min(opts.gallery_chunk, ng);
  auto block = tensor<T, D>::uninitialized(shape{qc * gc});  // scores of one block, (qn, gn) row-major
  std::vector<detail_search::running_top_k<T>> top(static_cast<std::size_t>(qc));
  std::vector<detail_search::merge_scratch<T>> scratch(static_cast<std::size_t>(detail_search::max_threads()));
  for (auto& w : scratch) {
    w.vals.resize(static_cast<std::size_t>(kk + gc));
    w.sorted.resize(static_cast<std::size_t>(kk));
  }
  bool const excluding = !out.query_gallery_index.empty();
  index_t nan_query = -1, nan_item = -1;

  for (index_t q0 = 0; q0 < nq; q0 += qc) {
    index_t const qn = std::min(qc, nq - q0);
    for (index_t i = 0; i < qn; ++i) top[static_cast<std::size_t>(i)].reset(kk);
    for (index_t g0 = 0; g0 < ng; g0 += gc) {
      index_t const gn = std::min(gc, ng - g0);
      ops::matmul_impl<D>::gemm(false, true, qn, gn, d, T(1), queries.data() + q0 * d, gallery.data() + g0 * d, T(0),
                                block.data());
      tensor<T, cpu> host;
      if constexpr (std::is_same_v<D, cpu>) host = block;
      else host = block.narrow(0, qn * gn).template to<cpu>();
      T const* scores = host.data();
#pragma omp parallel for schedule(static) if (qn * gn >= detail_search::parallel_threshold)
      for (index_t i = 0; i < qn; ++i) {
        T const* row = scores + i * gn;
        index_t const self = excluding ? out.query_gallery_index[static_cast<std::size_t>(q0 + i)] : -1;
        auto& work = scratch[detail_search::thread_id()];
        index_t const nan_at = top[static_cast<std::size_t>(i)].merge(row, gn, g0, self, work);
        if (nan_at >= 0) {
#pragma omp critical(arcnet_search_nan)
          if (nan_query < 0 || q0 + i < nan_query) nan_query = q0 + i, nan_item = g0 + nan_at;
        }
      }
      if (nan_query >= 0)
        arcnet::detail::raise<error>("search_topk: the score of query ", nan_query, " and gallery item ", nan_item,
                                     " is NaN; the features hold NaN or Inf");
    }
    for (index_t i = 0; i < qn; ++i) {  // sized here, outside the parallel loop, which must not throw
      auto q = static_cast<std::size_t>(q0 + i);
      bool self = excluding && out.query_gallery_index[q] >= 0;
      auto n = static_cast<std::size_t>(std::min(kk, ng - (self ? 1 : 0)));
      out.indices[q].resize(n);
      out.scores[q].resize(n);
    }
#pragma omp parallel for schedule(static) if (qn * kk >= detail_search::parallel_threshold)
    for (index_t i = 0; i < qn; ++i)
      top[static_cast<std::size_t>(i)].finish(out.indices[static_cast<std::size_t>(q0 + i)],
                                              out.scores[static_cast<std::size_t>(q0 + i)],
                                              scratch[detail_search::thread_id()]);
  }
  return out;
}

}  // namespace arcnet::metrics
