#pragma once
// Face verification as the LFW protocol and insightface evaluate it: pairs of images that
// show the same identity or not, split into cross-validation folds; a pair is accepted as
// "same" when the similarity of its embeddings reaches a threshold. This file reads and writes
// pairs files (LFW's pairs.txt and a plain list), draws balanced pairs from a labelled face
// folder reproducibly on every platform, and computes the usual numbers from pair scores:
// k-fold accuracy with the threshold chosen on the other folds, the best threshold, ROC AUC
// and TAR at fixed FAR.
#include <algorithm>
#include <charconv>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <random>
#include <sstream>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "arcnet/core/error.hpp"
#include "arcnet/core/shape.hpp"  // index_t
#include "arcnet/io/detail/atomic_file.hpp"

namespace arcnet::detail::verification {

inline std::string quoted_line(std::string const& text) {
  constexpr std::size_t max_shown = 120;
  if (text.size() <= max_shown) return "'" + text + "'";
  return "'" + text.substr(0, max_shown) + "...' (" + std::to_string(text.size()) + " characters)";
}

/// A strictly positive decimal integer (no sign, no spaces) that fits in int, or -1.
inline long long positive_int(std::string const& s) {
  long long v = 0;
  auto const* end = s.data() + s.size();
  auto r = std::from_chars(s.data(), end, v);
  if (r.ec != std::errc() || r.ptr != end || v <= 0 || v > 2147483647LL) return -1;
  return v;
}

inline std::string lfw_image(std::string const& root, std::string const& name, long long i) {
  char number[32];
  std::snprintf(number, sizeof number, "_%04lld.jpg", i);
  return (std::filesystem::path(root) / name / (name + number)).string();
}

inline std::string join_root(std::string const& root, std::string const& p) {
  if (root.empty() || std::filesystem::path(p).is_absolute()) return p;
  return (std::filesystem::path(root) / p).string();
}

/// A non-blank, non-comment line of a pairs file: its 1-based number, text and tokens.
struct pairs_line {
  std::size_t number = 0;
  std::string text;
  std::vector<std::string> tokens;
};

/// Unbiased draw in [0, n) from the raw 64-bit outputs (identical on every platform, unlike
/// std::uniform_int_distribution); n > 0.
inline std::uint64_t draw_below(std::mt19937_64& g, std::uint64_t n) {
  std::uint64_t const limit = ~std::uint64_t(0) - (~std::uint64_t(0) % n);
  std::uint64_t r;
  do r = g(); while (r >= limit);
  return r % n;
}

/// Image indices grouped by label: order (indices sorted by label, then index) and, per label,
/// the start of its run in order and its size.
struct label_groups {
  std::vector<std::size_t> order, start, count;
};
inline label_groups group_by_label(std::vector<std::int64_t> const& labels) {
  label_groups g;
  g.order.resize(labels.size());
  for (std::size_t i = 0; i < labels.size(); ++i) g.order[i] = i;
  std::stable_sort(g.order.begin(), g.order.end(),
                   [&](std::size_t x, std::size_t y) { return labels[x] < labels[y]; });
  for (std::size_t i = 0; i < g.order.size(); ++i) {
    if (i == 0 || labels[g.order[i]] != labels[g.order[i - 1]]) {
      g.start.push_back(i);
      g.count.push_back(0);
    }
    ++g.count.back();
  }
  return g;
}

/// Draws `needed` distinct unordered pairs (image indices, lower first) of one kind: `same`
/// pairs share a label, the others do not. `possible` is the exact number of such pairs.
/// When more than half of them are needed, all are listed and a partial Fisher-Yates shuffle
/// picks them; otherwise a uniform random pair is drawn (label weighted by its number of
/// ordered pairs, then the two images) and duplicates are redrawn (under 2 draws per pair).
inline std::vector<std::pair<std::size_t, std::size_t>> draw_pairs(label_groups const& g, bool same,
                                                                   std::uint64_t needed, std::uint64_t possible,
                                                                   std::mt19937_64& rng) {
  using pair_t = std::pair<std::size_t, std::size_t>;
  std::size_t const n = g.order.size();
  auto ordered = [&](std::size_t x, std::size_t y) { return x < y ? pair_t{x, y} : pair_t{y, x}; };
  std::vector<pair_t> out;
  out.reserve(static_cast<std::size_t>(needed));
  if (needed * 2 > possible) {
    std::vector<pair_t> all;
    all.reserve(static_cast<std::size_t>(possible));
    for (std::size_t l = 0; l < g.start.size(); ++l)
      for (std::size_t i = g.start[l]; i < g.start[l] + g.count[l]; ++i)
        for (std::size_t j = same ? i + 1 : g.start[l] + g.count[l]; j < (same ? g.start[l] + g.count[l] : n); ++j)
          all.push_back(ordered(g.order[i], g.order[j]));
    ARCNET_ASSERT(all.size() == possible);
    for (std::size_t t = 0; t < needed; ++t) {
      auto j = t + static_cast<std::size_t>(draw_below(rng, all.size() - t));
      std::swap(all[t], all[j]);
    }
    all.resize(static_cast<std::size_t>(needed));
    return all;
  }
  std::vector<std::uint64_t> cumulative;  // ordered pairs of each label, summed
  std::uint64_t total = 0;
  for (std::size_t l = 0; l < g.start.size(); ++l) {
    std::uint64_t c = g.count[l];
    total += same ? c * (c - 1) : c * (n - c);
    cumulative.push_back(total);
  }
  std::unordered_set<std::uint64_t> seen;
  while (out.size() < needed) {
    std::uint64_t r = draw_below(rng, total);
    auto l = static_cast<std::size_t>(std::upper_bound(cumulative.begin(), cumulative.end(), r) - cumulative.begin());
    std::size_t const s = g.start[l], c = g.count[l];
    std::size_t const i = static_cast<std::size_t>(draw_below(rng, c));
    std::size_t j;
    if (same) {
      j = static_cast<std::size_t>(draw_below(rng, c - 1));
      if (j >= i) ++j;
      j += s;
    } else {
      j = static_cast<std::size_t>(draw_below(rng, n - c));
      if (j >= s) j += c;
    }
    pair_t p = ordered(g.order[s + i], g.order[j]);
    if (seen.insert(std::uint64_t(p.first) * n + p.second).second) out.push_back(p);
  }
  return out;
}

/// Over the pairs i with include(i): the candidate threshold (min - 1, the midpoints between
/// consecutive distinct scores, max + 1) with the most correct predictions (score >= t means
/// same), the smallest one on ties, in one sweep. order sorts all pairs by score, ascending.
struct threshold_choice {
  double threshold = 0;
  std::uint64_t correct = 0, total = 0;
};
template <class Include>
threshold_choice choose_threshold(std::vector<std::size_t> const& order, std::vector<float> const& scores,
                                  std::vector<bool> const& same, Include include) {
  std::size_t const m = order.size();
  std::uint64_t positives = 0, negatives = 0;
  for (std::size_t i : order)
    if (include(i)) ++(same[i] ? positives : negatives);
  auto next = [&](std::size_t from) {
    while (from < m && !include(order[from])) ++from;
    return from;
  };
  threshold_choice best;
  best.total = positives + negatives;
  std::size_t k = next(0);
  if (k == m) return best;
  best.threshold = double(scores[order[k]]) - 1;  // accept every pair
  best.correct = positives;
  std::uint64_t pos_below = 0, neg_below = 0;  // pairs with score <= the current value
  while (k < m) {
    float const v = scores[order[k]];
    std::size_t j = k;
    for (; j < m && scores[order[j]] == v; ++j)
      if (include(order[j])) ++(same[order[j]] ? pos_below : neg_below);
    k = next(j);
    double const t = k < m ? (double(v) + double(scores[order[k]])) / 2 : double(v) + 1;
    std::uint64_t const correct = positives - pos_below + neg_below;
    if (correct > best.correct) {
      best.correct = correct;
      best.threshold = t;
    }
  }
  return best;
}

}  // namespace arcnet::detail::verification

namespace arcnet::metrics {

/// Two face images to compare, whether they show the same identity, and the cross-validation
/// fold (0-based) the pair belongs to.
struct verification_pair {
  std::string a, b;
  bool same = false;
  int fold = 0;
};

/// Verification pairs and their folds. format says where they came from: "lfw" (LFW
/// pairs.txt), "list" (the list format), "generated" (make_pairs).
struct pair_list {
  std::vector<verification_pair> pairs;
  int num_folds = 0;
  std::string format;
};

/// Reads verification pairs from `file`, in one of two formats told apart by the first line
/// that is neither blank nor a '#' comment (such lines are skipped in both formats; line
/// numbers in messages count every line):
///  - LFW pairs.txt: a header "F N" (F folds of N same-identity and N different-identity
///    pairs), then for each fold N lines "name i j" and N lines "name1 i name2 j"; the images
///    are root/name/name_%04d.jpg (i, j >= 1). Exactly 2*F*N pair lines must follow.
///  - list: lines "path_a path_b same" with same 1/0 or true/false; relative paths are joined
///    to root when root is non-empty. The pairs are split into 10 contiguous folds as
///    sklearn's KFold(10) does (the first n % 10 folds hold one pair more), so at least 10
///    pairs are needed.
/// Tokens are separated by white space, so paths cannot contain any. Throws io_error naming
/// the file, the line, the expected form and the text found; io_error too when the file cannot
/// be opened or lacks same-identity or different-identity pairs.
inline pair_list read_pairs(std::string const& file, std::string const& root = "") {
  namespace v = arcnet::detail::verification;
  using arcnet::detail::raise;
  std::ifstream in(file, std::ios::binary);
  if (!in) raise<io_error>("read_pairs: cannot open the pairs file '", file, "'");
  std::vector<v::pairs_line> lines;
  std::string text;
  for (std::size_t number = 1; std::getline(in, text); ++number) {
    if (!text.empty() && text.back() == '\r') text.pop_back();
    std::istringstream words(text);
    v::pairs_line line{number, text, {}};
    for (std::string w; words >> w;) line.tokens.push_back(w);
    if (line.tokens.empty() || line.tokens[0][0] == '#') continue;
    lines.push_back(std::move(line));
  }
  if (in.bad()) raise<io_error>("read_pairs: error while reading '", file, "'");
  if (lines.empty())
    raise<io_error>("read_pairs: '", file, "' holds no pairs (expected an LFW pairs.txt or lines "
                    "'path_a path_b same')");
  auto where = [&](v::pairs_line const& l) { return arcnet::detail::concat("'", file, "' line ", l.number); };

  pair_list out;
  auto const& first = lines.front();
  if (first.tokens.size() == 2) {  // LFW header
    long long const folds = v::positive_int(first.tokens[0]), per = v::positive_int(first.tokens[1]);
    if (folds < 0 || per < 0)
      raise<io_error>("read_pairs: ", where(first), ": expected the LFW header 'folds pairs_per_fold' (two "
                      "positive integers, e.g. '10 300') or a list line 'path_a path_b same', found ",
                      v::quoted_line(first.text));
    out.format = "lfw";
    out.num_folds = static_cast<int>(folds);
    long long const expected = folds * 2 * per;
    std::size_t const found = lines.size() - 1;
    if (static_cast<long long>(found) < expected)
      raise<io_error>("read_pairs: '", file, "' ends at line ", lines.back().number, " after ", found,
                      " pair lines; its header ", v::quoted_line(first.text), " (line ", first.number,
                      ") announces ", folds, " folds x 2 x ", per, " = ", expected);
    if (static_cast<long long>(found) > expected)
      raise<io_error>("read_pairs: ", where(lines[static_cast<std::size_t>(expected) + 1]), ": found ",
                      v::quoted_line(lines[static_cast<std::size_t>(expected) + 1].text), " after the ", expected,
                      " pair lines that the header ", v::quoted_line(first.text), " announces (", folds,
                      " folds x 2 x ", per, ")");
    out.pairs.reserve(static_cast<std::size_t>(expected));
    for (long long k = 0; k < expected; ++k) {
      auto const& l = lines[static_cast<std::size_t>(k) + 1];
      int const fold = static_cast<int>(k / (2 * per));
      bool const same = k % (2 * per) < per;
      auto const& t = l.tokens;
      if (same) {
        long long i = t.size() == 3 ? v::positive_int(t[1]) : -1, j = t.size() == 3 ? v::positive_int(t[2]) : -1;
        if (i < 0 || j < 0)
          raise<io_error>("read_pairs: ", where(l), ": expected a same-identity pair 'name i j' (i, j >= 1; "
                          "fold ", fold + 1, " of ", folds, "), found ", v::quoted_line(l.text));
        out.pairs.push_back({v::lfw_image(root, t[0], i), v::lfw_image(root, t[0], j), true, fold});
      } else {
        long long i = t.size() == 4 ? v::positive_int(t[1]) : -1, j = t.size() == 4 ? v::positive_int(t[3]) : -1;
        if (i < 0 || j < 0)
          raise<io_error>("read_pairs: ", where(l), ": expected a different-identity pair 'name1 i name2 j' (i, "
                          "j >= 1; fold ", fold + 1, " of ", folds, "), found ", v::quoted_line(l.text));
        if (t[0] == t[2])
          raise<io_error>("read_pairs: ", where(l), ": a different-identity pair names the same person twice: ",
                          v::quoted_line(l.text));
        out.pairs.push_back({v::lfw_image(root, t[0], i), v::lfw_image(root, t[2], j), false, fold});
      }
    }
  } else {
    out.format = "list";
    out.num_folds = 10;
    for (auto const& l : lines) {
      auto const& t = l.tokens;
      int same = -1;
      if (t.size() == 3) {
        std::string s = t[2];
        std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::tolower(c)); });
        if (s == "1" || s == "true") same = 1;
        if (s == "0" || s == "false") same = 0;
      }
      if (same < 0)
        raise<io_error>("read_pairs: ", where(l), ": expected 'path_a path_b same' with same 1 or 0 (or true/"
                        "false), found ", v::quoted_line(l.text));
      out.pairs.push_back({v::join_root(root, t[0]), v::join_root(root, t[1]), same == 1, 0});
    }
    std::size_t const n = out.pairs.size();
    if (n < 10)
      raise<io_error>("read_pairs: '", file, "' holds ", n, " pairs; 10-fold evaluation needs at least 10");
    std::size_t k = 0;
    for (int f = 0; f < 10; ++f)
      for (std::size_t c = 0; c < n / 10 + (std::size_t(f) < n % 10 ? 1 : 0); ++c) out.pairs[k++].fold = f;
  }
  std::size_t positives = 0;
  for (auto const& p : out.pairs) positives += p.same ? 1 : 0;
  if (positives == 0 || positives == out.pairs.size())
    raise<io_error>("read_pairs: '", file, "' holds ", positives, " same-identity and ", out.pairs.size() - positives,
                    " different-identity pairs; verification needs both");
  return out;
}

/// Draws balanced verification pairs from labelled images (paths[i] has labels[i]): folds x
/// pairs_per_fold distinct same-label pairs and as many distinct different-label pairs (an
/// unordered pair appears at most once; never an image with itself), pairs_per_fold of each
/// kind per fold, like LFW. The pairs are listed fold by fold, same-identity pairs first, each
/// with the lower image index as a. The draw depends only on the inputs and seed (a
/// mt19937_64 and platform-independent arithmetic), so a seed gives the same pairs
/// everywhere. Throws config_error for mismatched sizes, non-positive counts, or more pairs
/// asked of a kind than exist (sum over labels of n_l (n_l - 1) / 2 same-label pairs).
inline pair_list make_pairs(std::vector<std::string> const& paths, std::vector<std::int64_t> const& labels,
                            int pairs_per_fold, int folds, std::uint64_t seed) {
  namespace v = arcnet::detail::verification;
  ARCNET_CHECK_AS(config_error, paths.size() == labels.size(), "make_pairs: expected one label per image, got ",
                  paths.size(), " paths and ", labels.size(), " labels");
  ARCNET_CHECK_AS(config_error, pairs_per_fold > 0 && folds > 0,
                  "make_pairs: pairs_per_fold and folds must be positive, got ", pairs_per_fold, " and ", folds);
  ARCNET_CHECK_AS(config_error, paths.size() < (std::size_t(1) << 31), "make_pairs: at most 2^31 - 1 images, got ",
                  paths.size());
  auto const groups = v::group_by_label(labels);
  std::uint64_t const n = paths.size();
  std::uint64_t same_possible = 0;
  for (std::uint64_t c : groups.count) same_possible += c * (c - 1) / 2;
  std::uint64_t const all = n * (n - (n > 0 ? 1 : 0)) / 2, diff_possible = all - same_possible;
  std::uint64_t const needed = std::uint64_t(folds) * std::uint64_t(pairs_per_fold);
  ARCNET_CHECK_AS(config_error, needed <= same_possible, "make_pairs: asked for ", folds, " folds x ",
                  pairs_per_fold, " = ", needed, " distinct same-identity pairs, but the ", n, " images of ",
                  groups.count.size(), " labels allow only ", same_possible,
                  " (sum over labels of n(n-1)/2); lower pairs_per_fold or folds");
  ARCNET_CHECK_AS(config_error, needed <= diff_possible, "make_pairs: asked for ", folds, " folds x ",
                  pairs_per_fold, " = ", needed, " distinct different-identity pairs, but the ", n, " images of ",
                  groups.count.size(), " labels allow only ", diff_possible,
                  "; lower pairs_per_fold or folds, or add identities");
  std::mt19937_64 rng(seed);
  auto same = v::draw_pairs(groups, true, needed, same_possible, rng);
  auto diff = v::draw_pairs(groups, false, needed, diff_possible, rng);
  pair_list out;
  out.format = "generated";
  out.num_folds = folds;
  out.pairs.reserve(static_cast<std::size_t>(2 * needed));
  std::size_t const per = static_cast<std::size_t>(pairs_per_fold);
  for (int f = 0; f < folds; ++f) {
    for (std::size_t k = 0; k < per; ++k) {
      auto const& p = same[std::size_t(f) * per + k];
      out.pairs.push_back({paths[p.first], paths[p.second], true, f});
    }
    for (std::size_t k = 0; k < per; ++k) {
      auto const& p = diff[std::size_t(f) * per + k];
      out.pairs.push_back({paths[p.first], paths[p.second], false, f});
    }
  }
  return out;
}

/// Writes pairs in the list format read_pairs reads ("path_a path_b 1|0" per line, after a '#'
/// comment line), fold by fold and within a fold same-identity pairs first, through a
/// temporary file renamed over `file`. Reading the file back gives the same folds when they
/// are 10 of equal size (as make_pairs(..., folds = 10, ...) draws); otherwise read_pairs
/// splits it into 10 folds of its own. Throws io_error when a path is empty, contains white
/// space or starts with '#' (it would not read back), or the file cannot be written (the file
/// at that path is then unchanged).
inline void write_pairs(pair_list const& p, std::string const& file) {
  auto check_path = [&](std::string const& s, std::size_t i) {
    bool ok = !s.empty() && s[0] != '#' &&
              std::none_of(s.begin(), s.end(), [](unsigned char c) { return std::isspace(c) != 0; });
    if (!ok)
      arcnet::detail::raise<io_error>("write_pairs: '", file, "': the path '", s, "' of pair ", i,
                                      " cannot be written in the list format (it is empty, contains white "
                                      "space or starts with '#')");
  };
  std::vector<std::size_t> order(p.pairs.size());
  for (std::size_t i = 0; i < order.size(); ++i) {
    order[i] = i;
    check_path(p.pairs[i].a, i);
    check_path(p.pairs[i].b, i);
  }
  std::stable_sort(order.begin(), order.end(), [&](std::size_t x, std::size_t y) {
    auto const &a = p.pairs[x], &b = p.pairs[y];
    return a.fold != b.fold ? a.fold < b.fold : (a.same && !b.same);
  });
  std::string out = "# arcnet verification pairs: path_a path_b same (1 same identity, 0 different), fold by "
                    "fold, " + std::to_string(p.num_folds) + " folds\n";
  for (std::size_t i : order) {
    auto const& q = p.pairs[i];
    out += q.a + ' ' + q.b + (q.same ? " 1\n" : " 0\n");
  }
  arcnet::detail::io_atomic_writer w(file, "write_pairs");
  w.write(out);
  w.commit();
}

/// TAR at one FAR target: far_target (e.g. 1e-3), the fraction of same-identity pairs
/// accepted (tar) and of different-identity pairs accepted (far, <= far_target) when a pair
/// is accepted for score > threshold.
struct tar_at_far {
  double far_target = 0;
  double tar = 0;
  double far = 0;
  double threshold = 0;
};

/// What evaluate_verification measures. Accuracies are percentages; auc, tar and far are
/// fractions in [0, 1] (str() prints them as percentages, except AUC).
struct verification_report {
  index_t num_pairs = 0, num_positive = 0, num_negative = 0;
  int num_folds = 0;
  /// Mean over folds of the accuracy on the fold with the threshold chosen on the other
  /// folds, and the population standard deviation (ddof = 0) of those accuracies.
  double accuracy = 0, accuracy_std = 0;
  /// The threshold chosen on all pairs, and its accuracy on all pairs.
  double best_threshold = 0, best_accuracy = 0;
  /// ROC AUC: the probability that a same-identity pair scores above a different-identity
  /// pair, ties counting 1/2 (Mann-Whitney U / (P N)).
  double auc = 0;
  /// At FAR 1e-1, 1e-2 and 1e-3 always (with fewer than 1/f different-identity pairs: the TAR
  /// with no false accept at all, far = 0), then 1e-4, ... while the target allows at least one.
  std::vector<tar_at_far> tar;
  /// Per fold: the threshold chosen on the other folds, and the accuracy (percent) it gives
  /// on this fold.
  std::vector<double> fold_thresholds, fold_accuracies;

  /// A readable multi-line table of all of the above.
  std::string str() const {
    std::ostringstream os;
    os << "verification: " << num_pairs << " pairs (" << num_positive << " same identity, " << num_negative
       << " different), " << num_folds << " folds\n"
       << std::fixed;
    os << "  accuracy       " << std::setprecision(3) << std::setw(7) << accuracy << " +- " << accuracy_std
       << " %   threshold chosen on the other " << (num_folds - 1) << " folds\n";
    os << "  best accuracy  " << std::setw(7) << best_accuracy << " %   at threshold " << std::setprecision(5)
       << best_threshold << " (chosen on all pairs)\n";
    os << "  ROC AUC        " << std::setprecision(6) << auc << "\n";
    for (auto const& t : tar) {
      std::ostringstream label;
      label << std::scientific << std::setprecision(0) << t.far_target;
      os << "  TAR @ FAR " << std::left << std::setw(6) << label.str() << std::right << std::setprecision(3)
         << std::setw(8) << 100 * t.tar << " %   (FAR " << 100 * t.far << " %, threshold " << std::setprecision(5)
         << t.threshold << ")\n";
    }
    os << "  fold   threshold   accuracy %\n";
    for (std::size_t f = 0; f < fold_thresholds.size(); ++f)
      os << "  " << std::setw(4) << f << "  " << std::setprecision(5) << std::setw(10) << fold_thresholds[f] << "   "
         << std::setprecision(3) << std::setw(10) << fold_accuracies[f] << "\n";
    return os.str();
  }
};

/// Verification metrics from one similarity score per pair (higher = more similar, e.g. the
/// cosine of two embeddings), whether the pair is the same identity, and its fold (0..K-1,
/// K >= 2, every fold non-empty). A pair is predicted "same" when score >= threshold.
/// Threshold candidates are the midpoints between consecutive distinct scores of the pairs
/// considered, plus min - 1 (accept all) and max + 1 (reject all); the candidate with the
/// most correct predictions wins, the smallest one on ties. For fold k it is chosen on the
/// other folds and scored on fold k (insightface's LFW protocol, which scans a fixed grid
/// instead). TAR@FAR f: with N different-identity pairs, k = floor(f N) false accepts are
/// allowed; the threshold is the (k+1)-th highest different-identity score and a pair is
/// accepted when its score is strictly above it, so ties never push the FAR over f; f is
/// reported for 1e-1, 1e-2 and 1e-3 (k = 0 when f N < 1: no false accept), then for 1e-4,
/// ... while f N >= 1. Throws config_error for mismatched sizes,
/// a non-finite score, a bad fold, or no pair of a kind.
inline verification_report evaluate_verification(std::vector<float> const& scores, std::vector<bool> const& same,
                                                 std::vector<int> const& folds) {
  namespace v = arcnet::detail::verification;
  ARCNET_CHECK_AS(config_error, scores.size() == same.size() && scores.size() == folds.size(),
                  "evaluate_verification: expected one score, same flag and fold per pair, got ", scores.size(),
                  " scores, ", same.size(), " same flags and ", folds.size(), " folds");
  std::size_t const n = scores.size();
  int num_folds = 0;
  std::size_t positives = 0;
  for (std::size_t i = 0; i < n; ++i) {
    ARCNET_CHECK_AS(config_error, std::isfinite(scores[i]), "evaluate_verification: the score of pair ", i, " is ",
                    scores[i], "; scores must be finite");
    ARCNET_CHECK_AS(config_error, folds[i] >= 0, "evaluate_verification: pair ", i, " has fold ", folds[i],
                    "; folds are numbered from 0");
    num_folds = std::max(num_folds, folds[i] + 1);
    positives += same[i] ? 1 : 0;
  }
  std::size_t const negatives = n - positives;
  ARCNET_CHECK_AS(config_error, positives > 0 && negatives > 0, "evaluate_verification: got ", positives,
                  " same-identity and ", negatives, " different-identity pairs; verification needs both");
  ARCNET_CHECK_AS(config_error, num_folds >= 2, "evaluate_verification: every pair is in fold 0; choosing the "
                  "threshold on the other folds needs at least 2 folds");
  std::vector<std::size_t> fold_size(static_cast<std::size_t>(num_folds), 0);
  for (int f : folds) ++fold_size[static_cast<std::size_t>(f)];
  for (std::size_t f = 0; f < fold_size.size(); ++f)
    ARCNET_CHECK_AS(config_error, fold_size[f] > 0, "evaluate_verification: fold ", f, " has no pairs (the folds "
                    "run from 0 to ", num_folds - 1, ", the largest fold index given)");

  std::vector<std::size_t> order(n);
  for (std::size_t i = 0; i < n; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](std::size_t x, std::size_t y) { return scores[x] < scores[y]; });

  verification_report r;
  r.num_pairs = static_cast<index_t>(n);
  r.num_positive = static_cast<index_t>(positives);
  r.num_negative = static_cast<index_t>(negatives);
  r.num_folds = num_folds;

  for (int f = 0; f < num_folds; ++f) {
    auto c = v::choose_threshold(order, scores, same, [&](std::size_t i) { return folds[i] != f; });
    std::size_t correct = 0;
    for (std::size_t i = 0; i < n; ++i)
      if (folds[i] == f && (double(scores[i]) >= c.threshold) == same[i]) ++correct;
    r.fold_thresholds.push_back(c.threshold);
    r.fold_accuracies.push_back(100.0 * double(correct) / double(fold_size[static_cast<std::size_t>(f)]));
  }
  double sum = 0;
  for (double a : r.fold_accuracies) sum += a;
  r.accuracy = sum / num_folds;
  double squares = 0;
  for (double a : r.fold_accuracies) squares += (a - r.accuracy) * (a - r.accuracy);
  r.accuracy_std = std::sqrt(squares / num_folds);

  auto all = v::choose_threshold(order, scores, same, [](std::size_t) { return true; });
  r.best_threshold = all.threshold;
  r.best_accuracy = 100.0 * double(all.correct) / double(n);

  // AUC: over groups of equal scores, ascending; twice the Mann-Whitney U stays an integer.
  std::uint64_t twice_u = 0, neg_below = 0;
  for (std::size_t k = 0; k < n;) {
    std::uint64_t p = 0, q = 0;
    std::size_t j = k;
    for (; j < n && scores[order[j]] == scores[order[k]]; ++j) ++(same[order[j]] ? p : q);
    twice_u += 2 * p * neg_below + p * q;
    neg_below += q;
    k = j;
  }
  r.auc = double(twice_u) / (2.0 * double(positives) * double(negatives));

  std::vector<float> pos, neg;  // ascending, like order
  for (std::size_t i : order) (same[i] ? pos : neg).push_back(scores[i]);
  std::uint64_t denominator = 10;
  for (int e = 1; e <= 18 && (e <= 3 || negatives >= denominator); ++e, denominator *= 10) {
    std::uint64_t const allowed = negatives / denominator;  // = floor(f N), exactly
    tar_at_far t;
    t.far_target = 1.0 / double(denominator);
    float const th = neg[negatives - 1 - allowed];  // the (allowed + 1)-th highest; allowed < negatives
    auto above = [&](std::vector<float> const& s) {
      return double(s.end() - std::upper_bound(s.begin(), s.end(), th));
    };
    t.threshold = th;
    t.tar = above(pos) / double(positives);
    t.far = above(neg) / double(negatives);
    r.tar.push_back(t);
  }
  return r;
}

/// The same, for scores in the order of `pairs.pairs` (same flags and folds from the list).
inline verification_report evaluate_verification(std::vector<float> const& scores, pair_list const& pairs) {
  ARCNET_CHECK_AS(config_error, scores.size() == pairs.pairs.size(), "evaluate_verification: got ", scores.size(),
                  " scores for ", pairs.pairs.size(), " pairs");
  std::vector<bool> same;
  std::vector<int> folds;
  for (auto const& p : pairs.pairs) {
    same.push_back(p.same);
    folds.push_back(p.fold);
  }
  return evaluate_verification(scores, same, folds);
}

}  // namespace arcnet::metrics
