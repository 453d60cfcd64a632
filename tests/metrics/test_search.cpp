#include "test_util.hpp"

#include <arcnet/metrics/report.hpp>
#include <arcnet/metrics/search.hpp>

#include <cmath>
#include <limits>
#if defined(_OPENMP)
#include <omp.h>
#endif

using namespace arcnet;

namespace search_test {

/// Uniform features in [-1, 1); with `levels` > 0 rounded to {-levels..levels}/levels, so that
/// every dot product is exact (identical for any GEMM blocking) and ties are frequent.
template <class T>
tensor<T> features(index_t n, index_t d, std::uint64_t seed, int levels = 0) {
  generator g(seed);
  auto t = tensor<T>::uninitialized(shape{n, d});
  g.fill_uniform(t, -1, 1);
  if (levels > 0)
    for (index_t i = 0; i < t.numel(); ++i) t[i] = T(std::round(double(t[i]) * levels)) / T(levels);
  return t;
}

/// The reference: the full (Q, G) score matrix, top_k of retrieval.hpp, and its scores.
template <class T>
void brute_force(tensor<T> const& q, tensor<T> const& g, int k, metrics::ranking& idx,
                 std::vector<std::vector<T>>& scores) {
  auto s = ops::matmul_forward(q, g, ops::transpose_rhs);
  idx = metrics::top_k(s, k);
  scores.assign(idx.size(), {});
  for (std::size_t i = 0; i < idx.size(); ++i)
    for (index_t j : idx[i]) scores[i].push_back(s.at(index_t(i), j));
}

/// The data of tests/metrics/test_search.cpp's Python reference (see below).
tensor<double> formula_features(index_t n, index_t d, int offset, std::vector<std::int64_t>& labels) {
  auto x = tensor<double>::uninitialized(shape{n, d});
  labels.resize(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i) {
    labels[static_cast<std::size_t>(i)] = (i * 7 + offset) % 4;
    for (index_t j = 0; j < d; ++j)
      x.at(i, j) = std::sin(1.3 * double(i) + 0.7 * double(j * j) + 0.1) +
                   0.8 * std::cos(double(labels[static_cast<std::size_t>(i)]) * 1.9 + double(j));
  }
  return x;
}

/// `list` without the entry `drop`.
inline std::vector<index_t> all_but(std::vector<index_t> list, index_t drop) {
  list.erase(std::remove(list.begin(), list.end(), drop), list.end());
  return list;
}

}  // namespace search_test

TEST_CASE("search_topk: equals the full score matrix + top_k for any chunk sizes", "[metrics]") {
  auto q = search_test::features<double>(37, 16, 1);
  auto g = search_test::features<double>(203, 16, 2);
  std::pair<index_t, index_t> const chunks[] = {{1024, 65536}, {5, 3}, {1, 1}, {37, 203}, {8, 64}, {3, 1}, {36, 202}};
  for (int k : {1, 7, 50, 203, 500}) {
    metrics::ranking want;
    std::vector<std::vector<double>> want_scores;
    search_test::brute_force(q, g, k, want, want_scores);
    for (auto [qc, gc] : chunks) {
      INFO("k " << k << ", query_chunk " << qc << ", gallery_chunk " << gc);
      metrics::search_options o;
      o.query_chunk = qc;
      o.gallery_chunk = gc;
      auto r = metrics::search_topk(q, g, k, o);
      REQUIRE(r.indices.size() == 37);
      CHECK(r.indices[0].size() == std::size_t(std::min(k, 203)));
      CHECK(r.indices == want);  // continuous data: no ties, the GEMM's rounding cannot reorder
      for (std::size_t i = 0; i < want.size(); ++i)
        for (std::size_t j = 0; j < want[i].size(); ++j)
          REQUIRE(r.scores[i][j] == Approx(want_scores[i][j]).epsilon(1e-12).margin(1e-14));
    }
  }
}

TEST_CASE("search_topk: ties go to the lower gallery index, across chunk boundaries too", "[metrics]") {
  // The scores of retrieval's top_k test: 0.5 0.9 0.5 0.1 0.9 -> 1, 4, 0, 2, 3.
  auto q = tensor<float>::from_vector(shape{1, 1}, {1.f});
  auto g = tensor<float>::from_vector(shape{5, 1}, {0.5f, 0.9f, 0.5f, 0.1f, 0.9f});
  for (index_t gc : {1, 2, 3, 5}) {
    metrics::search_options o;
    o.gallery_chunk = gc;
    CHECK(metrics::search_topk(q, g, 3, o).indices[0] == std::vector<index_t>{1, 4, 0});
    CHECK(metrics::search_topk(q, g, 5, o).indices[0] == std::vector<index_t>{1, 4, 0, 2, 3});
    CHECK(metrics::search_topk(q, g, 5, o).scores[0] == std::vector<float>{0.9f, 0.9f, 0.5f, 0.5f, 0.1f});
  }
  // -0 and +0 are equal scores: the final sort orders them by index (a GEMM may return either).
  std::vector<metrics::detail_search::candidate<float>> zeros{{-0.f, 5}, {0.f, 2}, {0.25f, 7}, {-0.f, 1}, {0.f, 0}};
  std::vector<metrics::detail_search::candidate<float>> tmp(zeros.size());
  metrics::detail_search::sort_best_first(zeros.data(), zeros.size(), tmp.data());
  std::vector<index_t> order;
  for (auto const& c : zeros) order.push_back(c.index);
  CHECK(order == std::vector<index_t>{7, 0, 1, 2, 5});
  // Many ties: features on a grid of 3 levels make every score exact, so the order must match
  // top_k's exactly, scores included.
  auto qt = search_test::features<float>(29, 4, 3, 1);
  auto gt = search_test::features<float>(150, 4, 4, 1);
  for (int k : {1, 10, 40, 150}) {
    metrics::ranking want;
    std::vector<std::vector<float>> want_scores;
    search_test::brute_force(qt, gt, k, want, want_scores);
    for (auto [qc, gc] : {std::pair<index_t, index_t>{1024, 65536}, {4, 7}, {2, 1}, {29, 33}}) {
      metrics::search_options o;
      o.query_chunk = qc;
      o.gallery_chunk = gc;
      auto r = metrics::search_topk(qt, gt, k, o);
      INFO("k " << k << ", chunks " << qc << " x " << gc);
      CHECK(r.indices == want);
      CHECK(r.scores == want_scores);
    }
  }
}

TEST_CASE("search_topk: large blocks (sampled selection bound) equal top_k, ties included", "[metrics]") {
  // A block of >= 4096 items with k <= block / 4 first filters the scores by a bound from a
  // sample of the block; the results must not change.
  auto q = search_test::features<float>(6, 8, 12);
  auto g = search_test::features<float>(5000, 8, 13);
  auto qt = search_test::features<float>(6, 3, 14, 1);  // ties
  auto gt = search_test::features<float>(5000, 3, 15, 1);
  for (int k : {1, 10, 1000, 1250}) {
    for (auto [qq, gg] : {std::pair<tensor<float>*, tensor<float>*>{&q, &g}, {&qt, &gt}}) {
      metrics::ranking want;
      std::vector<std::vector<float>> want_scores;
      search_test::brute_force(*qq, *gg, k, want, want_scores);
      for (index_t gc : {65536, 4096}) {
        metrics::search_options o;
        o.gallery_chunk = gc;
        auto r = metrics::search_topk(*qq, *gg, k, o);
        INFO("k " << k << ", gallery_chunk " << gc << ", width " << qq->size(1));
        CHECK(r.indices == want);
        CHECK(r.scores == want_scores);
      }
    }
  }
}

TEST_CASE("search_topk: a sample that overestimates the k-th score falls back to the exact selection",
          "[metrics]") {
  // White box: give exactly the block positions that the sample reads (the same fixed sequence
  // as running_top_k::sample_bound) the score 1, all others 0. The bound is then 1, which fewer
  // than k = 1024 items reach (the 1024 draws repeat some positions), so the selection must run
  // again without it: the result is every 1 in index order, then the lowest-index 0s.
  index_t const n = 4096, k = 1024;
  std::vector<float> values(static_cast<std::size_t>(n), 0.f);
  std::uint64_t state = 0x9E3779B97F4A7C15ull;
  for (int i = 0; i < 1024; ++i) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    values[static_cast<std::size_t>((state >> 33) % std::uint64_t(n))] = 1.f;
  }
  auto ones = std::count(values.begin(), values.end(), 1.f);
  REQUIRE(ones < k);
  REQUIRE(ones > 800);
  auto g = tensor<float>::from_vector(shape{n, 1}, values);
  auto q = tensor<float>::from_vector(shape{1, 1}, {1.f});
  auto r = metrics::search_topk(q, g, k);
  std::vector<index_t> want;
  for (index_t i = 0; i < n; ++i)
    if (values[static_cast<std::size_t>(i)] == 1.f) want.push_back(i);
  for (index_t i = 0; static_cast<index_t>(want.size()) < k; ++i)
    if (values[static_cast<std::size_t>(i)] == 0.f) want.push_back(i);
  CHECK(r.indices[0] == want);
  CHECK(r.scores[0][static_cast<std::size_t>(ones) - 1] == 1.f);
  CHECK(r.scores[0][static_cast<std::size_t>(ones)] == 0.f);
}

TEST_CASE("search_topk: results do not depend on the number of OpenMP threads", "[metrics]") {
#if defined(_OPENMP)
  int const before = omp_get_max_threads();
  auto qt = search_test::features<float>(64, 8, 5, 2);  // ties
  auto gt = search_test::features<float>(300, 8, 6, 2);
  auto qc = search_test::features<float>(64, 8, 7);  // continuous
  auto gcn = search_test::features<float>(300, 8, 8);
  metrics::search_options o;
  o.query_chunk = 64;
  o.gallery_chunk = 150;  // 64 x 150 scores per block: above the threshold of the parallel merge
  REQUIRE(64 * 150 >= metrics::detail_search::parallel_threshold);
  omp_set_num_threads(1);
  auto t1 = metrics::search_topk(qt, gt, 25, o);
  auto c1 = metrics::search_topk(qc, gcn, 25, o);
  omp_set_num_threads(2);
  auto t2 = metrics::search_topk(qt, gt, 25, o);
  auto c2 = metrics::search_topk(qc, gcn, 25, o);
  omp_set_num_threads(before);
  CHECK(t1.indices == t2.indices);
  CHECK(t1.scores == t2.scores);
  CHECK(c1.indices == c2.indices);
  CHECK(c1.scores == c2.scores);
  metrics::ranking want;
  std::vector<std::vector<float>> want_scores;
  search_test::brute_force(qt, gt, 25, want, want_scores);
  CHECK(t2.indices == want);
#else
  WARN("built without OpenMP");
#endif
}

TEST_CASE("search_topk: exclude_self and query_gallery_index leave the query out of its results", "[metrics]") {
  auto g = search_test::features<double>(30, 5, 9);
  // Brute force: the full matrix with the diagonal at -inf; for k < G it never reaches a top k.
  auto s = ops::matmul_forward(g, g, ops::transpose_rhs);
  for (index_t i = 0; i < 30; ++i) s.at(i, i) = -std::numeric_limits<double>::infinity();
  auto want = metrics::top_k(s, 12);
  for (index_t gc : {65536, 7, 1}) {
    metrics::search_options o;
    o.exclude_self = true;
    o.gallery_chunk = gc;
    o.query_chunk = 4;
    auto r = metrics::search_topk(g, g, 12, o);
    CHECK(r.indices == want);
    CHECK(r.query_gallery_index.size() == 30);
    CHECK(r.query_gallery_index[29] == 29);
    auto all = metrics::search_topk(g, g, 30, o);  // k = G: G - 1 items, never the query
    for (std::size_t i = 0; i < 30; ++i) {
      CHECK(all.indices[i].size() == 29);
      CHECK(std::find(all.indices[i].begin(), all.indices[i].end(), index_t(i)) == all.indices[i].end());
    }
  }
  // Queries that are a subset of the gallery (rows 3, 10, 17), plus one from outside it.
  auto q = tensor<double>::uninitialized(shape{4, 5});
  for (index_t j = 0; j < 5; ++j) {
    q.at(0, j) = g.at(3, j);
    q.at(1, j) = g.at(10, j);
    q.at(2, j) = g.at(17, j);
    q.at(3, j) = 0.25 * double(j) - 0.5;
  }
  metrics::search_options o;
  o.query_gallery_index = {3, 10, 17, -1};
  o.gallery_chunk = 8;
  auto r = metrics::search_topk(q, g, 30, o);
  auto full = metrics::top_k(ops::matmul_forward(q, g, ops::transpose_rhs), 30);
  CHECK(r.indices[0] == search_test::all_but(full[0], 3));
  CHECK(r.indices[1] == search_test::all_but(full[1], 10));
  CHECK(r.indices[2] == search_test::all_but(full[2], 17));
  CHECK(r.indices[3] == full[3]);  // not in the gallery: all 30 items
  CHECK(r.indices[2].size() == 29);
}

TEST_CASE("search_topk: bad shapes, k, options and NaN are clear errors", "[metrics]") {
  auto q = search_test::features<float>(3, 4, 10);
  auto g = search_test::features<float>(6, 4, 11);
  CHECK_THROWS_AS(metrics::search_topk(q, search_test::features<float>(6, 5, 1), 2), shape_error);
  CHECK_THROWS_WITH(metrics::search_topk(q, search_test::features<float>(6, 5, 1), 2),
                    Catch::Contains("different feature widths (4 vs 5)"));
  CHECK_THROWS_AS(metrics::search_topk(q.view({12}), g, 2), shape_error);
  CHECK_THROWS_WITH(metrics::search_topk(q.view({12}), g, 2), Catch::Contains("the queries (Q, d) of rank 2"));
  CHECK_THROWS_AS(metrics::search_topk(q, tensor<float>(shape{0, 4}), 2), shape_error);
  CHECK_THROWS_WITH(metrics::search_topk(q, tensor<float>(shape{0, 4}), 2), Catch::Contains("the gallery is empty"));
  CHECK_THROWS_AS(metrics::search_topk(q, g, 0), config_error);
  CHECK_THROWS_WITH(metrics::search_topk(q, g, 0), Catch::Contains("k must be at least 1, got 0"));
  metrics::search_options o;
  o.gallery_chunk = 0;
  CHECK_THROWS_AS(metrics::search_topk(q, g, 2, o), config_error);
  o = {};
  o.exclude_self = true;
  CHECK_THROWS_WITH(metrics::search_topk(q, g, 2, o), Catch::Contains("3 queries and 6 gallery items"));
  o.query_gallery_index = {0, 1, 2};
  CHECK_THROWS_WITH(metrics::search_topk(q, g, 2, o), Catch::Contains("not both"));
  o.exclude_self = false;
  o.query_gallery_index = {0, 1};
  CHECK_THROWS_WITH(metrics::search_topk(q, g, 2, o), Catch::Contains("one entry per query (3), got 2"));
  o.query_gallery_index = {0, 6, -1};
  CHECK_THROWS_AS(metrics::search_topk(q, g, 2, o), config_error);
  CHECK_THROWS_WITH(metrics::search_topk(q, g, 2, o), Catch::Contains("query_gallery_index[1] = 6"));
  // No queries: an empty result.
  CHECK(metrics::search_topk(tensor<float>(shape{0, 4}), g, 2).indices.empty());
  // NaN in a feature: every score of that gallery item is NaN.
  g.at(4, 2) = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_WITH(metrics::search_topk(q, g, 2), Catch::Contains("query 0 and gallery item 4 is NaN"));
}

TEST_CASE("map_at_r and r_precision: hand-computed example - R = 0 skipped - short rankings refused", "[metrics]") {
  // Query 0: R = 4 relevant {7, 3, 9, 5}; ranking 7 1 3 9 | 5 -> rel = 1 0 1 1 in the top R:
  //   MAP@R = (1/4) (P(1) + P(3) + P(4)) = (1/4) (1 + 2/3 + 3/4) = 29/48; R-precision = 3/4.
  //   (AP would also credit the hit at rank 5; MAP@R stops at R.)
  // Query 1: R = 2 relevant {2, 4}; ranking 0 2 4 -> rel = 0 1 in the top R:
  //   MAP@R = (1/2) (1/2) = 1/4; R-precision = 1/2.
  // Query 2: R = 0: skipped by both.
  metrics::ranking ranked{{7, 1, 3, 9, 5}, {0, 2, 4}, {1}};
  metrics::ranking relevant{{7, 3, 9, 5}, {2, 4}, {}};
  CHECK(metrics::map_at_r(ranked, relevant) == Approx(100 * (29.0 / 48 + 0.25) / 2).epsilon(1e-12));
  CHECK(metrics::r_precision(ranked, relevant) == Approx(100 * (0.75 + 0.5) / 2).epsilon(1e-12));
  CHECK(metrics::map_at_r({{7, 3, 9, 5}}, {{5, 7, 9, 3}}) == Approx(100.0));
  CHECK(metrics::map_at_r({{1}}, {{}}) == 0.0);
  // A ranking shorter than R would silently lower MAP@R: refused, naming the k to search with.
  CHECK_THROWS_AS(metrics::map_at_r({{7, 1, 3}, {0, 2}}, {{7, 3, 9, 5}, {2, 4}}), config_error);
  CHECK_THROWS_WITH(metrics::map_at_r({{7, 1, 3}, {0, 2}}, {{7, 3, 9, 5}, {2, 4}}),
                    Catch::Contains("query 0 has R = 4") && Catch::Contains("k >= the largest R (4)"));
  CHECK_THROWS_WITH(metrics::r_precision({{0}}, {{0}, {1}}), Catch::Contains("1 rankings for 2 queries"));
}

// Reference numbers: /usr/bin/python3 with numpy, the literal definitions on the same data:
//   def feats(n, d, off):
//       i = np.arange(n)[:, None].astype(float); j = np.arange(d)[None, :].astype(float)
//       lab = (np.arange(n) * 7 + off) % 4
//       return np.sin(1.3*i + 0.7*j*j + 0.1) + 0.8*np.cos(lab[:, None]*1.9 + j), lab
//   g, gl = feats(120, 6, 0); q, ql = feats(40, 6, 2); q = q*0.9 + 0.05; ql[-2:] = 9
//   ranking of query q: np.lexsort((np.arange(G), -scores[q])), less q itself when excluded
//   hit = gl[order] == ql[q]; R = (gl == ql[q]).sum() - excluded
//   Recall@k: hit[:k].any(); AP@10: IR and integrate as mmpretrain, / R (0 when R = 0)
//   MAP@R: (np.cumsum(hit[:R]) / np.arange(1, R+1) * hit[:R]).sum() / R; R-precision hit[:R].sum() / R,
//   both averaged over the queries with R > 0.
TEST_CASE("evaluate_retrieval: matches a Python reference, query vs gallery and leave-self-out", "[metrics]") {
  std::vector<std::int64_t> gl, ql;
  auto g = search_test::formula_features(120, 6, 0, gl);
  auto q = search_test::formula_features(40, 6, 2, ql);
  for (index_t i = 0; i < q.numel(); ++i) q[i] = q[i] * 0.9 + 0.05;
  ql[38] = ql[39] = 9;  // no gallery item has label 9: R = 0

  CHECK(metrics::max_relevant(ql, gl) == 30);
  CHECK(metrics::required_k(ql, gl) == 30);
  CHECK(metrics::required_k(ql, gl, {}, false) == 10);
  metrics::search_options o;
  o.gallery_chunk = 50;
  auto r = metrics::search_topk(q, g, metrics::required_k(ql, gl), o);
  auto rep = metrics::evaluate_retrieval(r, ql, gl);
  CHECK(rep.num_queries == 40);
  CHECK(rep.num_queries_with_relevant == 38);
  CHECK(rep.max_r == 30);
  CHECK(rep.recall_at_1 == Approx(65.0).epsilon(1e-12));
  CHECK(rep.recall_at_5 == Approx(72.5).epsilon(1e-12));
  CHECK(rep.recall_at_10 == Approx(92.5).epsilon(1e-12));
  CHECK(rep.map_at_10 == Approx(17.373544973545).epsilon(1e-12));
  CHECK(rep.map_at_10_integrate == Approx(17.1715277777778).epsilon(1e-12));
  CHECK(rep.map_at_r == Approx(31.380525485435).epsilon(1e-12));
  CHECK(rep.r_precision == Approx(45.0).epsilon(1e-12));
  CHECK_THAT(rep.str(), Catch::Contains("Recall@1 65.00") && Catch::Contains("MAP@R 31.38"));

  // The same numbers from the ranking-based metrics with explicit relevant sets.
  metrics::ranking relevant(40);
  for (std::size_t i = 0; i < 40; ++i)
    for (std::size_t j = 0; j < 120; ++j)
      if (gl[j] == ql[i]) relevant[i].push_back(index_t(j));
  CHECK(metrics::recall_at_k(r.indices, relevant, 5) == Approx(rep.recall_at_5));
  CHECK(metrics::mean_average_precision(r.indices, relevant, 10) == Approx(rep.map_at_10));
  CHECK(metrics::mean_average_precision(r.indices, relevant, 10, metrics::ap_mode::integrate) ==
        Approx(rep.map_at_10_integrate));
  CHECK(metrics::map_at_r(r.indices, relevant) == Approx(rep.map_at_r));
  CHECK(metrics::r_precision(r.indices, relevant) == Approx(rep.r_precision));

  // Leave-self-out: the gallery queries itself; R = 29 for everyone.
  metrics::search_options self;
  self.exclude_self = true;
  self.query_chunk = 16;
  auto rs = metrics::search_topk(g, g, 29, self);
  auto reps = metrics::evaluate_retrieval(rs, gl, gl);
  CHECK(reps.num_queries_with_relevant == 120);
  CHECK(reps.max_r == 29);
  CHECK(reps.recall_at_1 == Approx(70.0).epsilon(1e-12));
  CHECK(reps.recall_at_5 == Approx(77.5).epsilon(1e-12));
  CHECK(reps.recall_at_10 == Approx(96.6666666666667).epsilon(1e-12));
  CHECK(reps.map_at_10 == Approx(18.1163451012589).epsilon(1e-12));
  CHECK(reps.map_at_10_integrate == Approx(17.9098932676519).epsilon(1e-12));
  CHECK(reps.map_at_r == Approx(30.0820811924555).epsilon(1e-12));
  CHECK(reps.r_precision == Approx(43.448275862069).epsilon(1e-12));
}

TEST_CASE("evaluate_retrieval: rankings too short, self in its own ranking, mismatched labels are errors",
          "[metrics]") {
  std::vector<std::int64_t> gl{0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1}, ql{0, 1};
  metrics::ranking ten{{0, 2, 4, 6, 8, 10, 1, 3, 5, 7}, {1, 3, 5, 7, 9, 11, 0, 2, 4, 6}};
  // R = 6 <= 10: MAP@R is exact from the top 10.
  auto rep = metrics::evaluate_retrieval(ten, ql, gl);
  CHECK(rep.map_at_r == Approx(100.0));
  CHECK(rep.recall_at_1 == Approx(100.0));
  CHECK(rep.map_at_10 == Approx(100.0));  // 6 hits in the top 6 of 6 relevant
  // Top 5 only: Recall@10 would be wrong.
  metrics::ranking five{{0, 2, 4, 6, 8}, {1, 3, 5, 7, 9}};
  CHECK_THROWS_AS(metrics::evaluate_retrieval(five, ql, gl), config_error);
  CHECK_THROWS_WITH(metrics::evaluate_retrieval(five, ql, gl, {}, false),
                    Catch::Contains("holds 5 gallery items; Recall@10 and mAP@10 need 10: search with k >= 10"));
  // A larger class: R = 12 > 10.
  std::vector<std::int64_t> big(24, 3);
  metrics::ranking short_r{{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}};
  CHECK_THROWS_WITH(metrics::evaluate_retrieval(short_r, {3}, big),
                    Catch::Contains("query 0 has R = 24") && Catch::Contains("k >= the largest R (24)"));
  CHECK(std::isnan(metrics::evaluate_retrieval(short_r, {3}, big, {}, false).map_at_r));
  CHECK(metrics::evaluate_retrieval(short_r, {3}, big, {}, false).map_at_10 == Approx(100.0 * 10 / 24));
  // Leave-self-out bookkeeping.
  CHECK_THROWS_WITH(metrics::evaluate_retrieval(ten, ql, gl, {0, -1}),
                    Catch::Contains("holds the query itself (gallery item 0)"));
  CHECK_THROWS_WITH(metrics::evaluate_retrieval(ten, ql, gl, {1, -1}),
                    Catch::Contains("query 0 is gallery item 1 but their labels differ (0 vs 1)"));
  CHECK_THROWS_WITH(metrics::evaluate_retrieval(ten, ql, gl, {-1}), Catch::Contains("1 entries for 2 queries"));
  CHECK_THROWS_AS(metrics::evaluate_retrieval(ten, {0}, gl), shape_error);
  CHECK_THROWS_WITH(metrics::evaluate_retrieval(ten, ql, {0, 1}),
                    Catch::Contains("holds gallery index 2, outside the 2"));
  CHECK(metrics::max_relevant(ql, gl, {2, 3}) == 5);
}
