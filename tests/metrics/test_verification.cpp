#include "test_util.hpp"

#include <arcnet/metrics/verification.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <random>
#include <set>

using namespace arcnet;
using arcnet::testing::message_contains;
using arcnet::testing::scratch_dir;
using arcnet::testing::write_bytes;
namespace fs = std::filesystem;

namespace verification_test {

std::string joined(std::initializer_list<std::string> parts) {
  fs::path p;
  for (auto const& s : parts) p /= s;
  return p.string();
}

/// Brute force, independent of the sweep: every candidate threshold of the training pairs
/// (min - 1, midpoints of consecutive distinct scores, max + 1), each scored by a full loop.
double brute_threshold(std::vector<float> const& s, std::vector<bool> const& same, std::vector<bool> const& train) {
  std::set<double> values;
  for (std::size_t i = 0; i < s.size(); ++i)
    if (train[i]) values.insert(s[i]);
  std::vector<double> v(values.begin(), values.end()), cand{v.front() - 1};
  for (std::size_t k = 0; k + 1 < v.size(); ++k) cand.push_back((v[k] + v[k + 1]) / 2);
  cand.push_back(v.back() + 1);
  double best_t = 0;
  long best = -1;
  for (double t : cand) {  // ascending, so '>' keeps the smallest of the best
    long correct = 0;
    for (std::size_t i = 0; i < s.size(); ++i)
      if (train[i] && (double(s[i]) >= t) == same[i]) ++correct;
    if (correct > best) {
      best = correct;
      best_t = t;
    }
  }
  return best_t;
}

}  // namespace verification_test

TEST_CASE("verification: hand-computed fold thresholds, accuracy, best threshold and AUC", "[metrics]") {
  // 12 pairs in 3 folds (S same, D different); scores are dyadic, so every midpoint is exact.
  //   fold 0: 0.875 S, 0.5 S,   0.25 D,  0.625 D
  //   fold 1: 0.75 S,  0.375 S, 0.125 D, 0.5 D
  //   fold 2: 0.625 S, 0.25 S,  0 D,    -0.25 D
  // Fold 0 is scored with the threshold chosen on folds 1+2, sorted: -0.25D 0D 0.125D 0.25S 0.375S
  //   0.5D 0.625S 0.75S. Correct (of 8) for the candidates -1.25, -0.125, 0.0625, 0.1875, 0.3125,
  //   0.4375, 0.5625, 0.6875, 1.75: 4 5 6 7 6 5 6 5 4 -> t = 0.1875. On fold 0 the two S are
  //   accepted, and so are 0.25 D and 0.625 D: 2/4 = 50%.
  // Fold 1, trained on folds 0+2: -0.25D 0D {0.25D 0.25S} 0.5S {0.625D 0.625S} 0.875S. Candidates
  //   -1.25 -0.125 0.125 0.375 0.5625 0.75 1.875 give 4 5 6 6 5 5 4: a tie between 0.125 and 0.375,
  //   the smaller wins. On fold 1: 0.75 S, 0.375 S right; 0.125 D >= 0.125 accepted (wrong);
  //   0.5 D wrong: 50% (0.375 would have given 75%).
  // Fold 2, trained on folds 0+1: 0.125D 0.25D 0.375S {0.5S 0.5D} 0.625D 0.75S 0.875S. Candidates
  //   -0.875 0.1875 0.3125 0.4375 0.5625 0.6875 0.8125 1.875 give 4 5 6 5 5 6 5 4 -> 0.3125. On
  //   fold 2: 0.625 S right, 0.25 S rejected (wrong), 0 D and -0.25 D right: 75%.
  // Accuracy = (50 + 50 + 75) / 3 = 58.333..; population std = sqrt((2 (25/3)^2 + (50/3)^2) / 3)
  //   = 25 sqrt(2) / 3.
  // All pairs: -0.25D 0D 0.125D {0.25D 0.25S} 0.375S {0.5S 0.5D} {0.625D 0.625S} 0.75S 0.875S;
  //   candidates -1.25 -0.125 0.0625 0.1875 0.3125 0.4375 0.5625 0.6875 0.8125 1.875 give
  //   6 7 8 9 9 8 8 8 7 6 (of 12) -> 0.1875, 75%.
  // AUC: negatives below (+1/2 per tie) each positive: 0.25 S 3.5, 0.375 S 4, 0.5 S 4.5, 0.625 S 5.5,
  //   0.75 S 6, 0.875 S 6 -> 29.5 / 36.
  // TAR@FAR: 6 negatives allow no false accept at 1e-1 (0.1 x 6 < 1), nor at 1e-2 and 1e-3 (always
  //   reported): the threshold is the highest negative, 0.625, and only 0.875 S and 0.75 S are above.
  std::vector<float> scores{0.875f, 0.5f, 0.25f, 0.625f, 0.75f, 0.375f, 0.125f, 0.5f, 0.625f, 0.25f, 0.0f, -0.25f};
  std::vector<bool> same{true, true, false, false, true, true, false, false, true, true, false, false};
  std::vector<int> folds{0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2};
  auto r = metrics::evaluate_verification(scores, same, folds);
  CHECK(r.num_pairs == 12);
  CHECK(r.num_positive == 6);
  CHECK(r.num_negative == 6);
  CHECK(r.num_folds == 3);
  CHECK(r.fold_thresholds == std::vector<double>{0.1875, 0.125, 0.3125});
  CHECK(r.fold_accuracies == std::vector<double>{50.0, 50.0, 75.0});
  CHECK(r.accuracy == Approx(175.0 / 3).epsilon(1e-14));
  CHECK(r.accuracy_std == Approx(25 * std::sqrt(2.0) / 3).epsilon(1e-14));
  CHECK(r.best_threshold == 0.1875);
  CHECK(r.best_accuracy == 75.0);
  CHECK(r.auc == Approx(29.5 / 36).epsilon(1e-15));
  REQUIRE(r.tar.size() == 3);
  for (auto const& t : r.tar) {
    CHECK(t.threshold == 0.625);
    CHECK(t.tar == Approx(1.0 / 3).epsilon(1e-15));
    CHECK(t.far == 0);
  }
  CHECK(r.tar[2].far_target == 1e-3);

  // The pair_list overload reads same and fold from the list.
  metrics::pair_list pl;
  for (std::size_t i = 0; i < scores.size(); ++i) pl.pairs.push_back({"a", "b", same[i], folds[i]});
  auto r2 = metrics::evaluate_verification(scores, pl);
  CHECK(r2.fold_thresholds == r.fold_thresholds);
  CHECK(r2.auc == r.auc);

  auto table = r.str();
  CHECK(table.find("12 pairs (6 same identity, 6 different), 3 folds") != std::string::npos);
  CHECK(table.find("58.333 +- 11.785 %") != std::string::npos);
  CHECK(table.find("75.000 %   at threshold 0.18750") != std::string::npos);
  CHECK(table.find("0.819444") != std::string::npos);
}

TEST_CASE("verification: TAR@FAR accepts strictly above the (k+1)-th highest negative", "[metrics]") {
  // 20 negatives: FAR 1e-1 allows k = 2 false accepts, the threshold is the 3rd highest negative.
  std::vector<float> pos{1.0f, 0.75f, 0.6875f, 0.625f, 0.5f};
  auto run = [&](std::vector<float> const& neg) {
    std::vector<float> s = pos;
    s.insert(s.end(), neg.begin(), neg.end());
    std::vector<bool> same(s.size(), false);
    std::fill(same.begin(), same.begin() + long(pos.size()), true);
    std::vector<int> folds(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) folds[i] = int(i % 2);
    return metrics::evaluate_verification(s, same, folds);
  };
  // No tie: negatives 0.875, 0.8125, 0.625, 17 x 0.25 -> t = 0.625; accepted: 2 negatives (0.1),
  // positives 1, 0.75, 0.6875 (3/5); 0.625 is not above t.
  std::vector<float> neg{0.875f, 0.8125f, 0.625f};
  neg.resize(20, 0.25f);
  auto r = run(neg);
  // 1e-2 and 1e-3 allow no false accept: the threshold is the highest negative, 0.875 (TAR 1/5).
  auto no_false_accept = [](metrics::verification_report const& v) {
    REQUIRE(v.tar.size() == 3);
    for (std::size_t e = 1; e < 3; ++e) {
      CHECK(v.tar[e].threshold == 0.875);
      CHECK(v.tar[e].tar == 0.2);
      CHECK(v.tar[e].far == 0);
    }
  };
  no_false_accept(r);
  CHECK(r.tar[0].far_target == 1e-1);
  CHECK(r.tar[0].threshold == 0.625);
  CHECK(r.tar[0].far == 0.1);
  CHECK(r.tar[0].tar == 0.6);
  // A tie at the threshold: 0.875, 0.625, 0.625, 0.625, 16 x 0.25 -> t = 0.625 again, but only one
  // negative is above it: FAR 0.05 < 0.1 rather than 4 accepted.
  std::vector<float> tied{0.875f, 0.625f, 0.625f, 0.625f};
  tied.resize(20, 0.25f);
  r = run(tied);
  no_false_accept(r);
  CHECK(r.tar[0].threshold == 0.625);
  CHECK(r.tar[0].far == 0.05);
  CHECK(r.tar[0].tar == 0.6);
  // 19 negatives: k = floor(1.9) = 1, t = the 2nd highest (0.8125): TAR 1/5 (only 1.0), FAR 1/19.
  neg.resize(19);
  r = run(neg);
  no_false_accept(r);
  CHECK(r.tar[0].threshold == 0.8125);
  CHECK(r.tar[0].tar == 0.2);
  CHECK(r.tar[0].far == Approx(1.0 / 19).epsilon(1e-15));
  // 9 negatives: 0.1 x 9 < 1, no false accept allowed at any FAR reported.
  neg.resize(9);
  r = run(neg);
  no_false_accept(r);
  CHECK(r.tar[0].threshold == 0.875);
  CHECK(r.tar[0].far == 0);

  // 10000 distinct negatives i / 16384: FARs 1e-1..1e-4 allow 1000, 100, 10, 1 false accepts;
  // with 9999 the last one disappears.
  std::vector<float> many(10000);
  for (std::size_t i = 0; i < many.size(); ++i) many[i] = float(i) / 16384;
  r = run(many);
  REQUIRE(r.tar.size() == 4);
  std::vector<double> targets{1e-1, 1e-2, 1e-3, 1e-4};
  std::vector<std::size_t> allowed{1000, 100, 10, 1};
  for (std::size_t e = 0; e < 4; ++e) {
    CHECK(r.tar[e].far_target == targets[e]);
    CHECK(r.tar[e].threshold == double(9999 - allowed[e]) / 16384);
    CHECK(r.tar[e].far == double(allowed[e]) / 10000);
    CHECK(r.tar[e].tar == 0.8);  // 0.625 and up are above 9998 / 16384, 0.5 is below 8999 / 16384
  }
  CHECK(r.str().find("TAR @ FAR 1e-04") != std::string::npos);
  many.pop_back();
  CHECK(run(many).tar.size() == 3);
}

TEST_CASE("verification: 10-fold accuracy, best threshold, AUC and TAR match a brute force", "[metrics]") {
  std::mt19937_64 rng(7);
  std::size_t const n = 600;
  std::vector<float> s(n);
  std::vector<bool> same(n);
  std::vector<int> folds(n);
  for (std::size_t i = 0; i < n; ++i) {
    same[i] = (rng() >> 11) % 2 == 0;
    // Scores on a grid of 1/64 (many ties), positives shifted up.
    double u = double(rng() >> 11) * 0x1.0p-53;
    s[i] = float(std::round((u + (same[i] ? 0.5 : 0.0)) * 64) / 64);
    folds[i] = int(i * 10 / n);
  }
  auto r = metrics::evaluate_verification(s, same, folds);
  REQUIRE(r.fold_thresholds.size() == 10);
  std::vector<double> acc;
  for (int f = 0; f < 10; ++f) {
    std::vector<bool> train(n);
    for (std::size_t i = 0; i < n; ++i) train[i] = folds[i] != f;
    double t = verification_test::brute_threshold(s, same, train);
    CHECK(r.fold_thresholds[std::size_t(f)] == t);
    double correct = 0, size = 0;
    for (std::size_t i = 0; i < n; ++i)
      if (!train[i]) {
        size += 1;
        correct += (double(s[i]) >= t) == same[i] ? 1 : 0;
      }
    acc.push_back(100 * correct / size);
  }
  double mean = 0, var = 0;
  for (double a : acc) mean += a / 10;
  for (double a : acc) var += (a - mean) * (a - mean) / 10;
  CHECK(r.accuracy == Approx(mean).epsilon(1e-12));
  CHECK(r.accuracy_std == Approx(std::sqrt(var)).epsilon(1e-12));
  CHECK(r.accuracy > 70);  // the classes are separable enough for the check to mean something

  std::vector<bool> all(n, true);
  double bt = verification_test::brute_threshold(s, same, all);
  CHECK(r.best_threshold == bt);
  double best = 0;
  for (std::size_t i = 0; i < n; ++i) best += (double(s[i]) >= bt) == same[i] ? 1 : 0;
  CHECK(r.best_accuracy == Approx(100 * best / n).epsilon(1e-14));

  double wins = 0, p = 0, q = 0;
  for (std::size_t i = 0; i < n; ++i) (same[i] ? p : q) += 1;
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < n; ++j)
      if (same[i] && !same[j]) wins += s[i] > s[j] ? 1.0 : s[i] == s[j] ? 0.5 : 0.0;
  CHECK(r.auc == Approx(wins / (p * q)).epsilon(1e-14));

  // TAR@FAR: the smallest negative score t with at most floor(f N) negatives above it.
  REQUIRE(q >= 100);
  REQUIRE(q < 1000);
  REQUIRE(r.tar.size() == 3);  // 1e-1, 1e-2, and 1e-3 with no false accept allowed
  for (std::size_t e = 0; e < 3; ++e) {
    std::size_t const k = std::size_t(q) / (e == 0 ? 10 : e == 1 ? 100 : 1000);
    double t = std::numeric_limits<double>::infinity();
    for (std::size_t i = 0; i < n; ++i) {
      if (same[i]) continue;
      std::size_t above = 0;
      for (std::size_t j = 0; j < n; ++j) above += !same[j] && s[j] > s[i] ? 1 : 0;
      if (above <= k) t = std::min(t, double(s[i]));
    }
    double tp = 0, fp = 0;
    for (std::size_t i = 0; i < n; ++i)
      if (s[i] > t) (same[i] ? tp : fp) += 1;
    CHECK(r.tar[e].threshold == t);
    CHECK(r.tar[e].tar == tp / p);
    CHECK(r.tar[e].far == fp / q);
    CHECK(fp <= double(k));
  }
}

TEST_CASE("verification: bad scores, flags or folds are errors that say what was found", "[metrics]") {
  std::vector<float> s{0.9f, 0.1f, 0.8f, 0.2f};
  std::vector<bool> same{true, false, true, false};
  std::vector<int> folds{0, 0, 1, 1};
  CHECK_NOTHROW(metrics::evaluate_verification(s, same, folds));
  CHECK_THROWS_MATCHES(metrics::evaluate_verification(s, same, {0, 1, 0}), config_error,
                       message_contains("4 scores, 4 same flags and 3 folds"));
  auto bad = s;
  bad[2] = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_MATCHES(metrics::evaluate_verification(bad, same, folds), config_error,
                       message_contains("score of pair 2 is nan"));
  bad[2] = std::numeric_limits<float>::infinity();
  CHECK_THROWS_MATCHES(metrics::evaluate_verification(bad, same, folds), config_error,
                       message_contains("score of pair 2 is inf"));
  CHECK_THROWS_MATCHES(metrics::evaluate_verification(s, same, {0, -1, 1, 1}), config_error,
                       message_contains("pair 1 has fold -1"));
  CHECK_THROWS_MATCHES(metrics::evaluate_verification(s, same, {0, 0, 2, 2}), config_error,
                       message_contains("fold 1 has no pairs"));
  CHECK_THROWS_MATCHES(metrics::evaluate_verification(s, same, {0, 0, 0, 0}), config_error,
                       message_contains("at least 2 folds"));
  CHECK_THROWS_MATCHES(metrics::evaluate_verification(s, {true, true, true, true}, folds), config_error,
                       message_contains("got 4 same-identity and 0 different-identity pairs"));
  CHECK_THROWS_MATCHES(metrics::evaluate_verification({}, {}, {}), config_error,
                       message_contains("got 0 same-identity and 0 different-identity"));
}

TEST_CASE("verification: read_pairs parses an LFW pairs.txt into paths, flags and folds", "[metrics]") {
  auto dir = scratch_dir("verif_lfw");
  auto file = (dir / "pairs.txt").string();
  write_bytes(file,
              "2\t3\n"
              "Abel_Pacheco\t1\t4\n"
              "Akhmed_Zakayev\t1\t3\n"
              "Akhmed_Zakayev\t2\t3\n"
              "Abdel_Madi_Shabneh\t1\tDean_Barker\t1\n"
              "Abdel_Madi_Shabneh\t1\tGiancarlo_Fisichella\t1\n"
              "Abdul_Majeed_Shobokshi\t1\tGary_Condit\t1\n"
              "Aaron_Peirsol 1 2\r\n"  // CRLF and spaces are accepted too
              "Ahmed_Chalabi 1 5\n"
              "Ai_Sugiyama 2 4\n"
              "AJ_Cook 1 Marsha_Thomason 1\n"
              "Aaron_Sorkin 2 Frank_Pallone 12\n"
              "Abdoulaye_Wade 4 Bertie_Ahern 10\n"
              "\n");
  auto pl = metrics::read_pairs(file, "/data/lfw");
  CHECK(pl.format == "lfw");
  CHECK(pl.num_folds == 2);
  REQUIRE(pl.pairs.size() == 12);
  using verification_test::joined;
  CHECK(pl.pairs[0].a == joined({"/data/lfw", "Abel_Pacheco", "Abel_Pacheco_0001.jpg"}));
  CHECK(pl.pairs[0].b == joined({"/data/lfw", "Abel_Pacheco", "Abel_Pacheco_0004.jpg"}));
  CHECK(pl.pairs[3].a == joined({"/data/lfw", "Abdel_Madi_Shabneh", "Abdel_Madi_Shabneh_0001.jpg"}));
  CHECK(pl.pairs[3].b == joined({"/data/lfw", "Dean_Barker", "Dean_Barker_0001.jpg"}));
  CHECK(pl.pairs[10].b == joined({"/data/lfw", "Frank_Pallone", "Frank_Pallone_0012.jpg"}));
  std::vector<bool> same;
  std::vector<int> folds;
  for (auto const& p : pl.pairs) {
    same.push_back(p.same);
    folds.push_back(p.fold);
  }
  CHECK(same == std::vector<bool>{1, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 0});
  CHECK(folds == std::vector<int>{0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1});
  // Without a root the paths are relative to nothing.
  CHECK(metrics::read_pairs(file).pairs[6].a == joined({"Aaron_Peirsol", "Aaron_Peirsol_0001.jpg"}));
}

TEST_CASE("verification: read_pairs names the file, line and expected form of bad LFW lines", "[metrics]") {
  auto dir = scratch_dir("verif_lfw_bad");
  auto file = (dir / "pairs.txt").string();
  std::string const pos = "A 1 2\n", neg = "A 1 B 2\n";
  auto with = [&](std::string const& text) {
    write_bytes(file, text);
    return file;
  };
  // A negative line where a positive one belongs (line 3).
  CHECK_THROWS_MATCHES(metrics::read_pairs(with("1 2\n" + pos + neg + neg + neg)), io_error,
                       message_contains(file + "' line 3: expected a same-identity pair 'name i j'"));
  CHECK_THROWS_MATCHES(metrics::read_pairs(with("1 2\n" + pos + neg + neg + neg)), io_error,
                       message_contains("found 'A 1 B 2'"));
  // Index 0 and a non-number.
  CHECK_THROWS_MATCHES(metrics::read_pairs(with("1 2\n" + pos + "A 0 2\n" + neg + neg)), io_error,
                       message_contains("line 3: expected a same-identity pair"));
  CHECK_THROWS_MATCHES(metrics::read_pairs(with("1 2\n" + pos + pos + neg + "A 1 B x\n")), io_error,
                       message_contains("line 5: expected a different-identity pair 'name1 i name2 j'"));
  CHECK_THROWS_MATCHES(metrics::read_pairs(with("1 2\n" + pos + pos + neg + "A 1 A 2\n")), io_error,
                       message_contains("line 5: a different-identity pair names the same person twice"));
  // Too few and too many lines.
  CHECK_THROWS_MATCHES(metrics::read_pairs(with("2 2\n" + pos + pos + neg + neg + pos)), io_error,
                       message_contains("ends at line 6 after 5 pair lines; its header '2 2' (line 1) announces "
                                        "2 folds x 2 x 2 = 8"));
  CHECK_THROWS_MATCHES(metrics::read_pairs(with("1 1\n" + pos + neg + "\n" + pos)), io_error,
                       message_contains("line 5: found 'A 1 2' after the 2 pair lines"));
  // A header that is not two positive integers.
  CHECK_THROWS_MATCHES(metrics::read_pairs(with("10 0\n" + pos)), io_error,
                       message_contains("line 1: expected the LFW header 'folds pairs_per_fold'"));
}

TEST_CASE("verification: read_pairs splits a list into 10 contiguous folds like KFold", "[metrics]") {
  auto dir = scratch_dir("verif_list");
  auto file = (dir / "pairs.txt").string();
  std::string text = "# a comment\n\n";
  for (int i = 0; i < 23; ++i)
    text += "img" + std::to_string(i) + "a.jpg /abs/img" + std::to_string(i) + "b.jpg " +
            (i % 3 == 0 ? "1" : i % 3 == 1 ? "0" : i % 2 ? "true" : "False") + "\n";
  write_bytes(file, text);
  auto pl = metrics::read_pairs(file, "faces");
  CHECK(pl.format == "list");
  CHECK(pl.num_folds == 10);
  REQUIRE(pl.pairs.size() == 23);
  std::vector<int> folds, expected{0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9};
  for (auto const& p : pl.pairs) folds.push_back(p.fold);
  CHECK(folds == expected);  // sizes 3, 3, 3, 2, 2, 2, 2, 2, 2, 2
  CHECK(pl.pairs[4].a == verification_test::joined({"faces", "img4a.jpg"}));
  CHECK(pl.pairs[4].b == "/abs/img4b.jpg");  // absolute paths are kept
  CHECK(pl.pairs[0].same);
  CHECK_FALSE(pl.pairs[1].same);
  CHECK_FALSE(pl.pairs[2].same);  // "False"
  CHECK(pl.pairs[5].same);        // "true"
  CHECK(metrics::read_pairs(file).pairs[4].a == "img4a.jpg");

  // 20 pairs: ten folds of 2.
  write_bytes(file, "a b 1\nc d 0\na b 1\nc d 0\na b 1\nc d 0\na b 1\nc d 0\na b 1\nc d 0\n"
                    "a b 1\nc d 0\na b 1\nc d 0\na b 1\nc d 0\na b 1\nc d 0\na b 1\nc d 0\n");
  pl = metrics::read_pairs(file);
  for (std::size_t i = 0; i < 20; ++i) CHECK(pl.pairs[i].fold == int(i / 2));
}

TEST_CASE("verification: read_pairs reports bad list lines, too few pairs and a missing file", "[metrics]") {
  auto dir = scratch_dir("verif_list_bad");
  auto file = (dir / "pairs.txt").string();
  std::string ten;
  for (int i = 0; i < 10; ++i) ten += i % 2 ? "a b 0\n" : "a b 1\n";
  write_bytes(file, "# header\n" + ten + "x.jpg y.jpg 2\n");
  CHECK_THROWS_MATCHES(metrics::read_pairs(file), io_error,
                       message_contains(file + "' line 12: expected 'path_a path_b same' with same 1 or 0 (or "
                                        "true/false), found 'x.jpg y.jpg 2'"));
  write_bytes(file, ten + "x.jpg y.jpg\n");
  CHECK_THROWS_MATCHES(metrics::read_pairs(file), io_error, message_contains("line 11: expected 'path_a path_b same'"));
  write_bytes(file, "x.jpg y.jpg\n" + ten);
  CHECK_THROWS_MATCHES(metrics::read_pairs(file), io_error,
                       message_contains("line 1: expected the LFW header 'folds pairs_per_fold' (two positive "
                                        "integers, e.g. '10 300') or a list line 'path_a path_b same', found "
                                        "'x.jpg y.jpg'"));
  write_bytes(file, "a b 1\nc d 0\n");
  CHECK_THROWS_MATCHES(metrics::read_pairs(file), io_error,
                       message_contains("holds 2 pairs; 10-fold evaluation needs at least 10"));
  std::string positives;
  for (int i = 0; i < 10; ++i) positives += "a b 1\n";
  write_bytes(file, positives);
  CHECK_THROWS_MATCHES(metrics::read_pairs(file), io_error,
                       message_contains("holds 10 same-identity and 0 different-identity pairs"));
  write_bytes(file, "\n# nothing\n");
  CHECK_THROWS_MATCHES(metrics::read_pairs(file), io_error, message_contains("holds no pairs"));
  CHECK_THROWS_MATCHES(metrics::read_pairs((dir / "missing.txt").string()), io_error,
                       message_contains("cannot open the pairs file '" + (dir / "missing.txt").string()));
}

TEST_CASE("verification: make_pairs draws distinct, balanced, reproducible pairs", "[metrics]") {
  // 5 identities x 4 images + 3 singletons: 5 x 6 = 30 same-label pairs, C(23, 2) - 30 = 223 others.
  std::vector<std::string> paths;
  std::vector<std::int64_t> labels;
  for (int id = 0; id < 8; ++id)
    for (int k = 0; k < (id < 5 ? 4 : 1); ++k) {
      paths.push_back("id" + std::to_string(id) + "/" + std::to_string(k) + ".jpg");
      labels.push_back(100 - 7 * id);  // any int64 labels, not sorted
    }
  std::map<std::string, std::int64_t> label_of;
  for (std::size_t i = 0; i < paths.size(); ++i) label_of[paths[i]] = labels[i];

  auto check = [&](metrics::pair_list const& pl, int per, int folds) {
    CHECK(pl.format == "generated");
    CHECK(pl.num_folds == folds);
    REQUIRE(pl.pairs.size() == std::size_t(2 * per * folds));
    std::set<std::pair<std::string, std::string>> seen;
    std::map<std::pair<int, bool>, int> per_fold;
    for (std::size_t i = 0; i < pl.pairs.size(); ++i) {
      auto const& p = pl.pairs[i];
      CHECK(p.a != p.b);
      CHECK((label_of.at(p.a) == label_of.at(p.b)) == p.same);
      CHECK(seen.insert(std::minmax(p.a, p.b)).second);  // each unordered pair at most once
      ++per_fold[{p.fold, p.same}];
      CHECK(p.fold == int(i) / (2 * per));                    // fold by fold,
      CHECK(p.same == (int(i) % (2 * per) < per));            // positives first
    }
    for (int f = 0; f < folds; ++f) CHECK((per_fold[{f, true}] == per && per_fold[{f, false}] == per));
  };
  // 20 of 30 positives (listing + shuffle) and 20 of 223 negatives (rejection sampling).
  auto a = metrics::make_pairs(paths, labels, 2, 10, 42);
  check(a, 2, 10);
  auto b = metrics::make_pairs(paths, labels, 2, 10, 42);
  auto c = metrics::make_pairs(paths, labels, 2, 10, 43);
  auto same_pairs = [](metrics::pair_list const& x, metrics::pair_list const& y) {
    for (std::size_t i = 0; i < x.pairs.size(); ++i)
      if (x.pairs[i].a != y.pairs[i].a || x.pairs[i].b != y.pairs[i].b) return false;
    return x.pairs.size() == y.pairs.size();
  };
  CHECK(same_pairs(a, b));
  CHECK_FALSE(same_pairs(a, c));
  // The draw is a fixed function of the seed on every platform (mt19937_64 and integer
  // arithmetic only): pin the first positive and the first negative pair.
  CHECK(a.pairs[0].a + " " + a.pairs[0].b == "id3/0.jpg id3/1.jpg");
  CHECK(a.pairs[2].a + " " + a.pairs[2].b == "id1/2.jpg id2/3.jpg");
  // Every positive pair (listing) and few positives (rejection), 5 folds.
  check(metrics::make_pairs(paths, labels, 6, 5, 1), 6, 5);
  check(metrics::make_pairs(paths, labels, 1, 3, 1), 1, 3);
  // One big identity: 20 x 19 / 2 = 190 positives, 253 - 190 = 63 negatives; 40 of them (listing).
  std::vector<std::int64_t> big(20, 0);
  big.insert(big.end(), {1, 2, 3});
  for (std::size_t i = 0; i < paths.size(); ++i) label_of[paths[i]] = big[i];
  check(metrics::make_pairs(paths, big, 1, 40, 9), 1, 40);

}

TEST_CASE("verification: make_pairs says how many pairs exist when too many are asked", "[metrics]") {
  std::vector<std::string> paths{"a0", "a1", "a2", "b0", "b1", "c0"};
  std::vector<std::int64_t> labels{0, 0, 0, 1, 1, 2};  // 3 + 1 = 4 positives, 15 - 4 = 11 negatives
  CHECK_NOTHROW(metrics::make_pairs(paths, labels, 2, 2, 0));
  CHECK_THROWS_MATCHES(metrics::make_pairs(paths, labels, 1, 5, 0), config_error,
                       message_contains("asked for 5 folds x 1 = 5 distinct same-identity pairs, but the 6 images "
                                        "of 3 labels allow only 4"));
  std::vector<std::int64_t> mostly_one{0, 0, 0, 0, 0, 1};  // 10 positives, 5 negatives
  CHECK_THROWS_MATCHES(metrics::make_pairs(paths, mostly_one, 3, 2, 0), config_error,
                       message_contains("6 distinct different-identity pairs, but the 6 images of 2 labels allow "
                                        "only 5"));
  CHECK_THROWS_MATCHES(metrics::make_pairs(paths, {0, 1}, 1, 1, 0), config_error,
                       message_contains("6 paths and 2 labels"));
  CHECK_THROWS_MATCHES(metrics::make_pairs(paths, labels, 0, 10, 0), config_error,
                       message_contains("must be positive, got 0 and 10"));
}

TEST_CASE("verification: write_pairs then read_pairs gives back the pairs and their folds", "[metrics]") {
  std::vector<std::string> paths;
  std::vector<std::int64_t> labels;
  for (int id = 0; id < 12; ++id)
    for (int k = 0; k < 3; ++k) {
      paths.push_back("faces/id" + std::to_string(id) + "/" + std::to_string(k) + ".jpg");
      labels.push_back(id);
    }
  auto pl = metrics::make_pairs(paths, labels, 3, 10, 5);
  auto dir = scratch_dir("verif_roundtrip");
  auto file = (dir / "pairs.txt").string();
  write_bytes(file, "old content");
  metrics::write_pairs(pl, file);
  auto back = metrics::read_pairs(file);
  CHECK(back.format == "list");
  CHECK(back.num_folds == 10);
  REQUIRE(back.pairs.size() == pl.pairs.size());
  for (std::size_t i = 0; i < pl.pairs.size(); ++i) {
    CHECK(back.pairs[i].a == pl.pairs[i].a);
    CHECK(back.pairs[i].b == pl.pairs[i].b);
    CHECK(back.pairs[i].same == pl.pairs[i].same);
    CHECK(back.pairs[i].fold == pl.pairs[i].fold);
  }
  CHECK(std::distance(fs::directory_iterator(dir), fs::directory_iterator()) == 1);  // no temporary left

  // Pairs out of order are written fold by fold, positives first.
  metrics::pair_list mixed{{{"n1", "n2", false, 1}, {"p1", "p2", true, 1}, {"q1", "q2", false, 0}}, 2, "list"};
  metrics::write_pairs(mixed, file);
  auto text = arcnet::testing::read_bytes(file);
  CHECK(text.substr(text.find('\n') + 1) == "q1 q2 0\np1 p2 1\nn1 n2 0\n");

  // Paths that would not read back, and a directory that does not exist.
  metrics::pair_list spaced{{{"my face.jpg", "b.jpg", true, 0}}, 1, "list"};
  CHECK_THROWS_MATCHES(metrics::write_pairs(spaced, file), io_error,
                       message_contains("the path 'my face.jpg' of pair 0 cannot be written"));
  CHECK(arcnet::testing::read_bytes(file) == text);  // unchanged
  auto missing = (dir / "no_such_dir" / "pairs.txt").string();
  CHECK_THROWS_MATCHES(metrics::write_pairs(pl, missing), io_error, message_contains("write_pairs: '" + missing));
}
