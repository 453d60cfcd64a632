#include "test_util.hpp"

#include <arcnet/metrics/retrieval.hpp>

using namespace arcnet;

TEST_CASE("retrieval metrics: Recall@1 of mmpretrain's RetrievalRecall example", "[metrics]") {
  metrics::ranking pred{{0}, {1}, {2}, {3}};
  metrics::ranking truth{{0, 1}, {2}, {1}, {0, 3}};
  CHECK(metrics::recall_at_k(pred, truth, 1) == Approx(50.0));
}

TEST_CASE("retrieval metrics: mAP@10 of mmpretrain's RetrievalAveragePrecision examples", "[metrics]") {
  std::vector<index_t> all(100);
  std::iota(all.begin(), all.end(), index_t(0));
  metrics::ranking pred{all, all, all};
  metrics::ranking truth{{0, 3, 6, 8, 35}, {1, 2, 54, 105}, {2, 42, 205}};
  CHECK(metrics::mean_average_precision(pred, truth, 10) == Approx(29.246031746031747).epsilon(1e-12));

  // Scores linspace(0.95, 0.05, 10) with relevant positions 0, 2, 5, 8, 9: 62.2222...
  auto scores = tensor<double>::uninitialized(shape{2, 10});
  for (index_t i = 0; i < 2; ++i)
    for (index_t j = 0; j < 10; ++j) scores.at(i, j) = 0.95 - 0.1 * double(j);
  auto ranked = metrics::top_k(scores, 10);
  CHECK(ranked[0] == std::vector<index_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  metrics::ranking rel{{0, 2, 5, 8, 9}, {0, 2, 5, 8, 9}};
  CHECK(metrics::mean_average_precision(ranked, rel, 10) == Approx(62.222222222222214).epsilon(1e-12));
}

TEST_CASE("retrieval metrics: integrate mode averages the precision before and at each hit", "[metrics]") {
  // Hits at ranks 0 and 2 of 2 relevant: IR = (1 + 2/3) / 2; integrate = ((1 + 1) / 2 + (1/2 + 2/3) / 2) / 2.
  std::vector<index_t> ranked{7, 1, 4, 9};
  CHECK(metrics::average_precision(ranked, {7, 4}, 10) == Approx(100 * (1 + 2.0 / 3) / 2));
  CHECK(metrics::average_precision(ranked, {7, 4}, 10, metrics::ap_mode::integrate) ==
        Approx(100 * (1.0 + (0.5 + 2.0 / 3) / 2) / 2));
  CHECK(metrics::average_precision(ranked, {4}, 2) == 0.0);  // the hit is outside the top 2
  CHECK(metrics::average_precision(ranked, {}, 10) == 0.0);
}

TEST_CASE("retrieval metrics: top_k breaks ties by index - bad sizes are errors", "[metrics]") {
  auto s = tensor<float>::from_vector(shape{1, 5}, {0.5f, 0.9f, 0.5f, 0.1f, 0.9f});
  CHECK(metrics::top_k(s, 3)[0] == std::vector<index_t>{1, 4, 0});
  CHECK(metrics::top_k(s, 9)[0].size() == 5);
  CHECK_THROWS_AS(metrics::top_k(s, 0), shape_error);
  CHECK_THROWS_WITH(metrics::recall_at_k({{0}}, {{0}, {1}}, 1), Catch::Contains("1 rankings for 2 queries"));
}
