#pragma once
// Embedding inversion (ArcFace paper, section "inversion"; DeepInversion's priors): from noise,
// optimise an input image with Adam on its pixels so that the network's embedding of it turns
// toward a target embedding, while a prior pulls the batch mean and variance of every
// batch-norm layer's input toward that layer's running statistics, and a small total-variation
// prior smooths it. No generator and nothing new in the backward pass: the autograd's gradient
// with respect to the input, and nn::batch_norm_observer to see each layer's activations.
//
//   auto r = engine::invert_embedding(model, target, shape{112, 92, 3}, opts);
//   data::write_png("face.png", engine::to_image(r.image, pipeline.normalize()));
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "arcnet/autograd/no_grad.hpp"
#include "arcnet/core/error.hpp"
#include "arcnet/core/random.hpp"
#include "arcnet/data/image.hpp"
#include "arcnet/data/transforms.hpp"
#include "arcnet/nn/batch_norm.hpp"
#include "arcnet/ops/conv2d.hpp"
#include "arcnet/ops/elementwise.hpp"
#include "arcnet/ops/normalize.hpp"
#include "arcnet/ops/reduce.hpp"
#include "arcnet/ops/reshape.hpp"
#include "arcnet/optim/adamw.hpp"

namespace arcnet::engine {

struct inversion_options {
  int steps = 300;
  double lr = 0.05;          ///< Adam's step on the normalised pixels
  double bn_weight = 0.05;   ///< weight of the batch-norm statistics prior (0: off)
  double tv_weight = 0.01;   ///< weight of the total-variation prior (0: off)
  std::uint64_t seed = 0;    ///< of the starting noise
  int snapshots = 6;         ///< images kept along the way for a progress strip (0: none)
  /// Optimise one grey channel, copied into the C input channels: for a network trained on
  /// grey images (a face set such as ORL), whose embedding says nothing about colour.
  bool grey = false;
  /// The model's input normalisation: pixels are kept inside the values that 0..255 map to,
  /// and to_image() maps the result back.
  data::normalization normalization = data::normalization::none();
};

/// One optimisation step's numbers.
struct inversion_step {
  int step = 0;
  double cosine = 0;   ///< embedding's cosine similarity to the target
  double bn_prior = 0; ///< mean over batch-norm layers of statistics_gap (see below)
  double tv = 0;       ///< mean squared difference of neighbouring pixels
};

struct inversion_result {
  tensor<float, cpu> image;        ///< (H, W, C), in the model's normalised input space
  double initial_cosine = 0;       ///< of the starting noise
  double cosine = 0;               ///< reached at the end
  std::vector<inversion_step> history;  ///< every step
  std::vector<std::pair<int, tensor<float, cpu>>> snapshots;  ///< (step, image), the last one is the result
};

namespace detail_invert {

/// A (2, 2, C, 2C) kernel whose outputs are, per channel, x[i][j+1] - x[i][j] and x[i+1][j] - x[i][j].
inline tensor<float, cpu> difference_kernel(index_t c) {
  tensor<float, cpu> k(shape{2, 2, c, 2 * c});
  auto at = [&](index_t ky, index_t kx, index_t ci, index_t co) -> float& { return k[((ky * 2 + kx) * c + ci) * 2 * c + co]; };
  for (index_t ch = 0; ch < c; ++ch) {
    at(0, 0, ch, 2 * ch) = -1, at(0, 1, ch, 2 * ch) = 1;      // horizontal
    at(0, 0, ch, 2 * ch + 1) = -1, at(1, 0, ch, 2 * ch + 1) = 1;  // vertical
  }
  return k;
}

/// How far one layer's input (..., C) is from the statistics the layer saw in training, in
/// units that do not depend on the layer's scale: the RMS over channels of the batch mean's
/// distance from the running mean in running standard deviations, plus the RMS of the batch
/// variance's relative distance from the running variance. Undefined when the input has fewer
/// than two rows (no variance to compare).
template <class T>
variable<T, cpu> statistics_gap(variable<T, cpu> const& x, tensor<T, cpu> const& running_mean,
                                tensor<T, cpu> const& running_var) {
  index_t const c = x.size(-1);
  if (x.numel() / c < 2) return {};
  auto rows = ops::reshape(x, {-1, c});
  auto mean = ops::mean(rows, {0});
  auto centred = rows - mean;
  auto var = ops::mean(centred * centred, {0});
  auto inv_var = tensor<T, cpu>::uninitialized(shape{c}), inv_std = tensor<T, cpu>::uninitialized(shape{c});
  for (index_t i = 0; i < c; ++i) {
    inv_var[i] = T(1) / (running_var[i] + T(1e-5));
    inv_std[i] = std::sqrt(inv_var[i]);
  }
  auto rms = [](variable<T, cpu> const& d) { return ops::sqrt(ops::mean(d * d) + T(1e-12)); };
  return rms((mean - variable<T, cpu>(running_mean.clone())) * variable<T, cpu>(inv_std)) +
         rms(var * variable<T, cpu>(inv_var) - T(1));
}

}  // namespace detail_invert

/// Optimises an image of `input` = (H, W, C) from noise until model.features() of it points at
/// `target` (E values, or (1, E)). `Model` has features(variable (N, H, W, C)) -> (N, E) and
/// train(bool); it is left in eval mode, with its parameters' gradients untouched.
template <class Model>
inversion_result invert_embedding(Model& model, tensor<float, cpu> const& target, shape const& input,
                                  inversion_options const& o) {
  using var = variable<float, cpu>;
  if (input.rank() != 3 || input.numel() == 0)
    detail::raise<shape_error>("invert_embedding: expected the input shape (H, W, C), got ", input);
  if (o.steps < 1) detail::raise<config_error>("invert_embedding: steps must be >= 1, got ", o.steps);
  if (!(o.lr > 0) || o.bn_weight < 0 || o.tv_weight < 0 || !std::isfinite(o.bn_weight + o.tv_weight + o.lr))
    detail::raise<config_error>("invert_embedding: expected lr > 0 and priors >= 0, got lr ", o.lr, ", bn_weight ",
                                o.bn_weight, ", tv_weight ", o.tv_weight);
  index_t const H = input[0], W = input[1], C = input[2];
  if (C > 3) detail::raise<shape_error>("invert_embedding: expected 1 to 3 channels, got shape ", input);
  index_t const P = o.grey ? 1 : C;  // channels optimised

  // The target, unit length, as a constant (1, E).
  auto t = target.clone().view({1, -1});
  double norm = 0;
  for (index_t i = 0; i < t.numel(); ++i) norm += double(t[i]) * double(t[i]);
  if (!(norm > 0) || !std::isfinite(norm))
    detail::raise<error>("invert_embedding: the target embedding is zero or not finite");
  for (index_t i = 0; i < t.numel(); ++i) t[i] = static_cast<float>(t[i] / std::sqrt(norm));
  var const goal(t);

  // Parameters stop requiring gradients while we optimise the input only; restored on exit.
  struct frozen {
    std::vector<var> params;
    ~frozen() {
      for (auto& p : params) p.set_requires_grad(true);
    }
  } freeze;
  model.for_each_parameter([&](std::string const&, var& p, auto) {
    if (p.requires_grad()) {
      p.set_requires_grad(false);
      freeze.params.push_back(p);
    }
  });
  model.train(false);

  // Valid normalised values per optimised channel: what 0 and 255 map to (grey: the values
  // valid in every input channel).
  std::array<float, 3> lo{}, hi{};
  for (index_t c = 0; c < C; ++c) {
    auto const m = o.normalization.mean[static_cast<std::size_t>(c)], s = o.normalization.std[static_cast<std::size_t>(c)];
    auto const k = static_cast<std::size_t>(c % P);
    float const a = std::min((0.f - m) / s, (255.f - m) / s), b = std::max((0.f - m) / s, (255.f - m) / s);
    lo[k] = c < P ? a : std::max(lo[k], a);
    hi[k] = c < P ? b : std::min(hi[k], b);
  }
  tensor<float, cpu> start(shape{1, H, W, P});
  generator g(o.seed);
  for (index_t i = 0; i < start.numel(); ++i) {
    auto const c = static_cast<std::size_t>(i % P);
    start[i] = static_cast<float>(lo[c] + (hi[c] - lo[c]) * (0.5 + 0.15 * g.normal()));
    start[i] = std::clamp(start[i], lo[c], hi[c]);
  }
  var x(start, true);
  optim::adamw<float, cpu> adam(std::vector<var>{x}, optim::adamw_options().set_lr(o.lr).set_weight_decay(0));
  var const kernel(detail_invert::difference_kernel(P));
  // The network's input: x itself, or the grey channel broadcast to C channels.
  var const widen(tensor<float, cpu>(shape{1, 1, 1, C}));
  auto input_of = [&](var const& image) { return o.grey && C > 1 ? image + widen : image; };

  // Which steps to keep a snapshot of: evenly spaced, ending with the last.
  std::vector<int> keep;
  for (int k = 0; k < o.snapshots; ++k) keep.push_back(o.snapshots == 1 ? o.steps : k * o.steps / (o.snapshots - 1));

  inversion_result r;
  auto cosine_of = [&](var const& image) {
    return ops::sum(ops::l2_normalize(model.features(input_of(image)), 1) * goal);
  };
  {
    autograd::no_grad guard;
    r.initial_cosine = cosine_of(var(start)).value()[0];
  }
  for (int step = 0; step <= o.steps; ++step) {
    if (std::find(keep.begin(), keep.end(), step) != keep.end())
      r.snapshots.emplace_back(step, input_of(x).value().clone().view({H, W, C}));
    if (step == o.steps) break;
    var gap;
    int layers = 0;
    nn::batch_norm_observer<float, cpu> observe([&](var const& a, tensor<float, cpu> const& rm, tensor<float, cpu> const& rv) {
      if (o.bn_weight == 0) return;
      auto d = detail_invert::statistics_gap(a, rm, rv);
      if (!d.defined()) return;
      gap = gap.defined() ? gap + d : d;
      ++layers;
    });
    auto cosine = cosine_of(x);
    if (layers > 1) gap = gap / static_cast<float>(layers);
    auto diffs = ops::conv2d(x, kernel, var{});
    auto tv = ops::mean(diffs * diffs);
    auto loss = (1.f - cosine) + tv * static_cast<float>(o.tv_weight);
    if (gap.defined()) loss = loss + gap * static_cast<float>(o.bn_weight);
    r.history.push_back({step, cosine.value()[0], gap.defined() ? gap.value()[0] : 0.0, tv.value()[0]});
    if (!std::isfinite(loss.value()[0]))
      detail::raise<error>("invert_embedding: the loss is not finite at step ", step, " (try a smaller lr)");
    adam.zero_grad();
    loss.backward();
    adam.step();
    auto& v = x.value_mut();
    for (index_t i = 0; i < v.numel(); ++i) {
      auto const c = static_cast<std::size_t>(i % P);
      v[i] = std::clamp(v[i], lo[c], hi[c]);
    }
  }
  r.image = input_of(x).value().clone().view({H, W, C});
  {
    autograd::no_grad guard;
    r.cosine = cosine_of(var(x.value().clone())).value()[0];
  }
  return r;
}

/// An image (H, W, C) in normalised input space back to 8-bit pixels: x * std + mean, rounded
/// and clamped to 0..255.
inline data::image to_image(tensor<float, cpu> const& x, data::normalization const& n) {
  if (x.rank() != 3 || x.size(2) < 1 || x.size(2) > 3)
    detail::raise<shape_error>("to_image: expected (H, W, C) with C = 1 or 3, got shape ", x.shape());
  auto img = data::make_image(static_cast<int>(x.size(1)), static_cast<int>(x.size(0)), static_cast<int>(x.size(2)));
  index_t const C = x.size(2);
  for (index_t i = 0; i < x.numel(); ++i) {
    auto const c = static_cast<std::size_t>(i % C);
    double const v = double(x[i]) * n.std[c] + n.mean[c];
    img.pixels[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(std::clamp(std::nearbyint(v), 0.0, 255.0));
  }
  return img;
}

}  // namespace arcnet::engine
