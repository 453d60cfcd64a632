// Embedding inversion on a small network trained here for a few seconds: the reconstruction's
// embedding reaches the target, a random image's does not, and the batch-norm prior acts.
#include <catch2/catch.hpp>

#include <cmath>

#include "arcnet/engine/invert.hpp"
#include "arcnet/models/cifar_resnet.hpp"
#include "arcnet/models/retriever.hpp"
#include "arcnet/optim/sgd.hpp"
#include "test_util.hpp"

namespace {

using namespace arcnet;
using net = models::image_retriever<models::cifar_resnet<1, 8, 3>, models::embedding_neck<32, 32>>;
using model_t = net::module<float, cpu>;
constexpr index_t side = 12;

constexpr int classes = 8;

/// An image of class c: a blob in one of four places, light or dark in one colour channel,
/// plus noise.
tensor<float, cpu> make_image(int c, generator& g) {
  tensor<float, cpu> t(shape{side, side, 3});
  double const cy = 3 + 6 * ((c % 4) / 2), cx = 3 + 6 * (c % 2), sign = c < 4 ? 1 : -1;
  for (index_t y = 0; y < side; ++y)
    for (index_t x = 0; x < side; ++x) {
      double const blob = std::exp(-((y - cy) * (y - cy) + (x - cx) * (x - cx)) / 6.0);
      for (index_t ch = 0; ch < 3; ++ch) {
        double const tint = sign * (ch == c % 3 ? 1.5 : -0.5);
        t[(y * side + x) * 3 + ch] = static_cast<float>(tint * blob + 0.3 * g.normal());
      }
    }
  return t;
}

/// A batch of n images with labels cycling through the classes.
std::pair<tensor<float, cpu>, std::vector<std::int64_t>> make_batch(int n, generator& g) {
  tensor<float, cpu> x(shape{n, side, side, 3});
  std::vector<std::int64_t> y;
  for (int i = 0; i < n; ++i) {
    y.push_back(i % classes);
    auto img = make_image(i % classes, g);
    std::copy(img.data(), img.data() + img.numel(), x.data() + i * img.numel());
  }
  return {x, y};
}

/// Trained once for all test cases (about a second).
model_t& trained() {
  static model_t* m = [] {
    generator g(3);
    models::arcface_options head;
    head.num_classes = classes;
    head.scale = 16;
    head.margin = 0.2;
    auto* model = new model_t(head, g);
    std::vector<variable<float, cpu>> params;
    model->for_each_parameter([&](std::string const&, variable<float, cpu>& p, auto) { params.push_back(p); });
    optim::sgd<float, cpu> opt(params, optim::sgd_options{0.05, 0.9});
    model->train(true);
    for (int step = 0; step < 80; ++step) {
      auto [x, y] = make_batch(32, g);
      auto loss = model->loss(variable<float, cpu>(x), y);
      opt.zero_grad();
      loss.backward();
      opt.step();
    }
    opt.zero_grad();
    model->train(false);
    return model;
  }();
  return *m;
}

tensor<float, cpu> target_embedding(int c) {
  generator g(100 + c);
  auto img = make_image(c, g);
  return trained().extract_feat(img.view({1, side, side, 3})).view({-1});
}

}  // namespace

TEST_CASE("invert_embedding: the reconstruction reaches the target - noise does not", "[engine][invert]") {
  engine::inversion_options o;
  o.steps = 150;
  o.normalization = {{128, 128, 128}, {64, 64, 64}};
  // Every class's embedding is reached from the same noise. The noise image itself points
  // nowhere in particular: its cosine to the eight targets averages about 0 (the single values
  // spread from about -0.6 to 0.8, as an unrelated image's would).
  double initial_sum = 0;
  engine::inversion_result r;
  tensor<float, cpu> target;
  for (int c = 0; c < classes; ++c) {
    target = target_embedding(c);
    r = engine::invert_embedding(trained(), target, shape{side, side, 3}, o);
    INFO("class " << c << ": initial cosine " << r.initial_cosine << ", final " << r.cosine);
    CHECK(r.cosine >= 0.9);
    CHECK(r.cosine > r.initial_cosine + 0.1);
    initial_sum += r.initial_cosine;
  }
  CHECK(std::abs(initial_sum / classes) < 0.2);
  REQUIRE(r.history.size() == 150);
  CHECK(r.history.front().cosine == Approx(r.initial_cosine).margin(1e-5));
  // Pixels stay within what 0..255 normalises to.
  for (index_t i = 0; i < r.image.numel(); ++i) {
    REQUIRE(r.image[i] >= -2.0f);
    REQUIRE(r.image[i] <= 127.f / 64.f + 1e-6f);
  }
  // Snapshots: evenly spaced, the last is the result.
  REQUIRE(r.snapshots.size() == 6);
  CHECK(r.snapshots.front().first == 0);
  CHECK(r.snapshots.back().first == 150);
  CHECK(r.snapshots.back().second.shape() == shape{side, side, 3});
  // Parameters require gradients again and got none.
  trained().for_each_parameter([](std::string const& name, variable<float, cpu>& p, auto) {
    INFO(name);
    CHECK(p.requires_grad());
    CHECK_FALSE(p.grad().defined());
  });
  // The result's embedding, recomputed independently, matches the reported cosine.
  auto e = trained().extract_feat(r.image.view({1, side, side, 3}));
  double dot = 0, nt = 0;
  for (index_t i = 0; i < target.numel(); ++i) dot += double(e[i]) * target[i], nt += double(target[i]) * target[i];
  CHECK(dot / std::sqrt(nt) == Approx(r.cosine).margin(1e-4));
}

TEST_CASE("invert_embedding: the batch-norm prior changes the result", "[engine][invert]") {
  auto target = target_embedding(2);
  engine::inversion_options with, without;
  with.steps = without.steps = 120;
  with.normalization = without.normalization = {{128, 128, 128}, {64, 64, 64}};
  with.bn_weight = 0.2;
  without.bn_weight = 0;
  auto a = engine::invert_embedding(trained(), target, shape{side, side, 3}, with);
  auto b = engine::invert_embedding(trained(), target, shape{side, side, 3}, without);
  // Same start, same target: only the prior differs.
  CHECK(a.initial_cosine == b.initial_cosine);
  // Without the prior nothing holds the statistics: the gap it measures ends larger.
  REQUIRE(a.history.front().bn_prior > 0);
  CHECK(b.history.back().bn_prior == 0);  // not computed when off
  double max_diff = 0;
  for (index_t i = 0; i < a.image.numel(); ++i) max_diff = std::max(max_diff, double(std::abs(a.image[i] - b.image[i])));
  CHECK(max_diff > 0.1);
  // Measure the gap of both final images the same way.
  auto gap_of = [&](tensor<float, cpu> const& img) {
    double gap = 0;
    nn::batch_norm_observer<float, cpu> observe(
        [&](variable<float, cpu> const& x, tensor<float, cpu> const& rm, tensor<float, cpu> const& rv) {
          auto d = engine::detail_invert::statistics_gap(x, rm, rv);
          if (d.defined()) gap += d.value()[0];
        });
    autograd::no_grad guard;
    trained().features(variable<float, cpu>(img.view({1, side, side, 3})));
    return gap;
  };
  double const ga = gap_of(a.image), gb = gap_of(b.image);
  INFO("statistics gap with the prior " << ga << ", without " << gb);
  CHECK(ga < 0.5 * gb);
  CHECK(a.cosine >= 0.8);
}

TEST_CASE("invert_embedding: a grey image for a network with colour input channels", "[engine][invert]") {
  engine::inversion_options o;
  o.steps = 150;
  o.grey = true;
  o.normalization = {{128, 120, 128}, {64, 64, 60}};
  auto r = engine::invert_embedding(trained(), target_embedding(3), shape{side, side, 3}, o);
  CHECK(r.cosine >= 0.9);
  REQUIRE(r.image.shape() == shape{side, side, 3});
  for (index_t i = 0; i < side * side; ++i) {
    REQUIRE(r.image[3 * i] == r.image[3 * i + 1]);
    REQUIRE(r.image[3 * i] == r.image[3 * i + 2]);
    // Within what 0..255 maps to in every channel: [max(-2, -1.875, -2.133), min(1.98, 2.1, 2.12)].
    REQUIRE(r.image[3 * i] >= -1.875f);
    REQUIRE(r.image[3 * i] <= 127.f / 64.f + 1e-6f);
  }
}

TEST_CASE("invert_embedding: bad arguments", "[engine][invert]") {
  auto target = target_embedding(0);
  engine::inversion_options o;
  CHECK_THROWS_WITH(engine::invert_embedding(trained(), target, shape{side, side}, o),
                    Catch::Contains("expected the input shape (H, W, C)"));
  o.steps = 0;
  CHECK_THROWS_WITH(engine::invert_embedding(trained(), target, shape{side, side, 3}, o), Catch::Contains("steps"));
  o.steps = 5;
  CHECK_THROWS_WITH(engine::invert_embedding(trained(), tensor<float, cpu>(shape{16}), shape{side, side, 3}, o),
                    Catch::Contains("zero or not finite"));
  CHECK_THROWS_AS(engine::invert_embedding(trained(), tensor<float, cpu>(shape{7}), shape{side, side, 3}, o), error);
}

TEST_CASE("to_image maps normalised values back to clamped 8-bit pixels", "[engine][invert]") {
  tensor<float, cpu> x(shape{1, 2, 3});
  float const v[] = {0.f, 1.f, -1.f, 10.f, -10.f, 0.5f};
  std::copy(v, v + 6, x.data());
  auto img = engine::to_image(x, data::normalization{{100, 50, 200}, {10, 20, 40}});
  REQUIRE(img.width == 2);
  REQUIRE(img.height == 1);
  // 0*10+100, 1*20+50, -1*40+200, 10*10+100 -> 200, -10*20+50 -> 0 (clamped), 0.5*40+200 = 220
  std::vector<int> px(img.pixels.begin(), img.pixels.end());
  CHECK(px == std::vector<int>{100, 70, 160, 200, 0, 220});
  CHECK_THROWS_AS(engine::to_image(tensor<float, cpu>(shape{2, 2}), data::normalization::none()), shape_error);
}
