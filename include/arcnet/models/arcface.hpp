#pragma once
// The ArcFace head of mmpretrain's ArcFaceClsHead (with sub-centers, per-class margins,
// easy_margin, and the CosFace / combined variant), plus margin helpers and sub-center analysis.
//
// Training:   logits = s * margin(cos),  cos = max over the k sub-centers of <x/|x|, w/|w|>
// Evaluation: logits = s * cos
// The class weights are one (C * k, D) matrix: class c owns rows c*k .. c*k + k - 1
// ("head.norm_product.weight" in mmpretrain checkpoints). The head computes in T (use float).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "arcnet/nn/init.hpp"
#include "arcnet/nn/layer.hpp"
#include "arcnet/ops/loss.hpp"
#include "arcnet/ops/margin.hpp"
#include "arcnet/ops/matmul.hpp"
#include "arcnet/ops/normalize.hpp"
#include "arcnet/ops/reduce.hpp"
#include "arcnet/ops/reshape.hpp"

namespace arcnet::models {

struct arcface_options {
  int num_classes = 0;
  int in_features = 2048;
  int num_subcenters = 1;        // k
  double scale = 64.0;           // s
  double margin = 0.5;           // m, for every class unless `margins` is given
  std::vector<double> margins;   // one per class (empty: `margin` everywhere)
  bool easy_margin = false;
  double m1 = 1.0;               // combined margin cos(m1 * theta + m) - m3; m1 = 1, m3 = 0 is ArcFace,
  double m3 = 0.0;               // m1 = 1, m = 0, m3 > 0 is CosFace
};

/// Reads per-class margins from a text file, one number per line (blank lines skipped), as
/// mmpretrain's `margins="file.txt"`; throws io_error naming the file and line.
inline std::vector<double> read_margins(std::string const& path) {
  std::ifstream in(path);
  if (!in) detail::raise<io_error>("read_margins: cannot open '", path, "'");
  std::vector<double> m;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    auto first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos) continue;
    std::istringstream ls(line);
    double v;
    std::string rest;
    if (!(ls >> v) || (ls >> rest) || !std::isfinite(v))
      detail::raise<io_error>("read_margins: '", path, "' line ", n, ": expected one number, got '", line, "'");
    m.push_back(v);
  }
  return m;
}

/// Adaptive margins from per-class training counts (mmpretrain's SetAdaptiveMarginsHook):
/// count^-1/4, min-max normalised into [lo, hi]; rare classes get the larger margin.
inline std::vector<double> adaptive_margins(std::vector<std::int64_t> const& counts, double lo = 0.05, double hi = 0.5) {
  ARCNET_CHECK_AS(config_error, !counts.empty(), "adaptive_margins: no class counts given");
  std::vector<double> m(counts.size());
  for (size_t c = 0; c < counts.size(); ++c) {
    if (counts[c] <= 0)
      detail::raise<config_error>("adaptive_margins: class ", c, " has ", counts[c], " training samples; need >= 1");
    m[c] = std::pow(static_cast<double>(counts[c]), -0.25);
  }
  auto [mn, mx] = std::minmax_element(m.begin(), m.end());
  double lo_v = *mn, span = *mx - *mn;
  for (auto& v : m) v = span > 0 ? (v - lo_v) / span * (hi - lo) + lo : hi;
  return m;
}

template <class T, class D>
class arcface_head {
 public:
  explicit arcface_head(arcface_options o, generator& g = default_generator()) : opt_(std::move(o)) {
    if (opt_.num_classes <= 0 || opt_.in_features <= 0 || opt_.num_subcenters <= 0)
      detail::raise<config_error>("arcface_head: need num_classes, in_features and num_subcenters >= 1, got ",
                                  opt_.num_classes, ", ", opt_.in_features, ", ", opt_.num_subcenters);
    if (opt_.margins.empty()) opt_.margins.assign(static_cast<size_t>(opt_.num_classes), opt_.margin);
    set_margins(opt_.margins);
    weight_ = detail::make_parameter<T, D>(shape{index_t(opt_.num_classes) * opt_.num_subcenters, opt_.in_features},
                                           [&](auto& w) { nn::init::uniform_fan_in(w, opt_.in_features, g); });
  }

  /// Per-class margins; throws shape_error unless there is one per class.
  void set_margins(std::vector<double> m) {
    if (static_cast<int>(m.size()) != opt_.num_classes)
      detail::raise<shape_error>("arcface_head: expected ", opt_.num_classes, " margins (one per class), got ", m.size());
    opt_.margins = std::move(m);
  }
  std::vector<double> const& margins() const { return opt_.margins; }
  arcface_options const& options() const { return opt_; }

  /// (N, in_features) -> (N, C): the cosine to each class's nearest sub-center.
  variable<T, D> cosine(variable<T, D> const& feats) {
    if (feats.rank() != 2 || feats.size(1) != opt_.in_features)
      detail::raise<shape_error>("arcface_head: expected features (N, ", opt_.in_features, "), got ", feats.shape());
    ops::matmul_options const o{false, true, true};  // W^T, in fp32 whatever the precision policy
    auto all = ops::matmul(ops::l2_normalize(feats, 1), ops::l2_normalize(weight_, 1), o);
    if (opt_.num_subcenters == 1) return all;
    auto grouped = ops::reshape(all, {feats.size(0), opt_.num_classes, opt_.num_subcenters});
    return ops::max(grouped, 2);
  }
  /// Training logits (N, C): s * margin(cos) at the targets, s * cos elsewhere.
  variable<T, D> forward(variable<T, D> const& feats, std::vector<std::int64_t> const& targets) {
    ops::margin_options mo;
    mo.scale = opt_.scale;
    mo.m1 = opt_.m1;
    mo.m3 = opt_.m3;
    mo.easy_margin = opt_.easy_margin;
    return ops::angular_margin(cosine(feats), targets, opt_.margins, mo);
  }
  /// Evaluation logits (N, C) = s * cos.
  variable<T, D> forward(variable<T, D> const& feats) { return cosine(feats) * static_cast<T>(opt_.scale); }
  /// Mean softmax cross-entropy of the training logits.
  variable<T, D> loss(variable<T, D> const& feats, std::vector<std::int64_t> const& targets) {
    return ops::cross_entropy(forward(feats, targets), targets);
  }

  template <class F>
  void for_each_parameter(F&& f, std::string const& prefix = "") {
    f(detail::join_name(prefix, "norm_product.weight"), weight_, nn::param_layout::plain);
  }
  template <class F>
  void for_each_buffer(F&&, std::string const& = "") {}
  void train(bool) {}
  variable<T, D>& weight() { return weight_; }

  // ---- sub-center analysis (Sub-center ArcFace, Deng et al. 2020) ----------------------------

  /// For each class, the sub-center (0..k-1) nearest to most of its samples. feats (M, in_features), CPU.
  std::vector<int> dominant_subcenters(tensor<T, cpu> const& feats, std::vector<std::int64_t> const& labels) {
    auto cos = subcenter_cosines(feats, labels);
    int k = opt_.num_subcenters;
    std::vector<std::int64_t> votes(static_cast<size_t>(opt_.num_classes) * k, 0);
    for (size_t i = 0; i < labels.size(); ++i) {
      T const* row = cos.data() + (index_t(i) * opt_.num_classes + labels[i]) * k;
      votes[static_cast<size_t>(labels[i] * k + (std::max_element(row, row + k) - row))]++;
    }
    std::vector<int> dominant(static_cast<size_t>(opt_.num_classes));
    for (int c = 0; c < opt_.num_classes; ++c) {
      auto b = votes.begin() + std::ptrdiff_t(c) * k;
      dominant[static_cast<size_t>(c)] = static_cast<int>(std::max_element(b, b + k) - b);
    }
    return dominant;
  }
  /// Indices of samples whose angle (degrees) to their class's dominant sub-center exceeds
  /// `threshold_degrees`: the likely noisy labels (the paper uses 75 degrees).
  std::vector<index_t> noisy_samples(tensor<T, cpu> const& feats, std::vector<std::int64_t> const& labels,
                                     std::vector<int> const& dominant, double threshold_degrees) {
    auto cos = subcenter_cosines(feats, labels);
    int k = opt_.num_subcenters;
    std::vector<index_t> noisy;
    for (size_t i = 0; i < labels.size(); ++i) {
      double c = cos.data()[(index_t(i) * opt_.num_classes + labels[i]) * k + dominant[static_cast<size_t>(labels[i])]];
      double deg = std::acos(std::clamp(c, -1.0, 1.0)) * 180.0 / M_PI;
      if (deg > threshold_degrees) noisy.push_back(static_cast<index_t>(i));
    }
    return noisy;
  }
  /// Keeps only each class's dominant sub-center: afterwards k = 1 (the paper's final step).
  void drop_non_dominant(std::vector<int> const& dominant) {
    if (static_cast<int>(dominant.size()) != opt_.num_classes)
      detail::raise<shape_error>("arcface_head::drop_non_dominant: expected ", opt_.num_classes, " indices, got ",
                                 dominant.size());
    auto w = weight_.value().template to<cpu>();
    auto kept = tensor<T, cpu>::uninitialized(shape{opt_.num_classes, opt_.in_features});
    for (int c = 0; c < opt_.num_classes; ++c) {
      int d = dominant[static_cast<size_t>(c)];
      ARCNET_CHECK_AS(shape_error, d >= 0 && d < opt_.num_subcenters, "arcface_head::drop_non_dominant: sub-center ",
                      d, " of class ", c, " is out of range for k = ", opt_.num_subcenters);
      std::copy_n(w.data() + (index_t(c) * opt_.num_subcenters + d) * opt_.in_features, opt_.in_features,
                  kept.data() + index_t(c) * opt_.in_features);
    }
    opt_.num_subcenters = 1;
    if constexpr (std::is_same_v<D, cpu>) weight_ = variable<T, D>(kept, true);
    else weight_ = variable<T, D>(kept.template to<D>(), true);
  }

 private:
  /// (M, C * k) cosines of every sample to every sub-center, without recording a graph.
  tensor<T, cpu> subcenter_cosines(tensor<T, cpu> const& feats, std::vector<std::int64_t> const& labels) {
    if (feats.rank() != 2 || feats.size(1) != opt_.in_features || feats.size(0) != index_t(labels.size()))
      detail::raise<shape_error>("arcface_head: expected features (", labels.size(), ", ", opt_.in_features,
                                 ") for ", labels.size(), " labels, got ", feats.shape());
    for (auto l : labels)
      ARCNET_CHECK_AS(shape_error, l >= 0 && l < opt_.num_classes, "arcface_head: label ", l,
                      " is out of range for ", opt_.num_classes, " classes");
    autograd::no_grad guard;
    variable<T, cpu> f(feats);
    variable<T, cpu> w(weight_.value().template to<cpu>());
    return ops::matmul(ops::l2_normalize(f, 1), ops::l2_normalize(w, 1), ops::transpose_rhs).value();
  }

  arcface_options opt_;
  variable<T, D> weight_;  // (C * k, in_features)
};

}  // namespace arcnet::models
