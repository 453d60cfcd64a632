#include "test_util.hpp"

#include <cstdio>
#include <cstring>

#include <arcnet/models/arcface.hpp>

using namespace arcnet;

namespace arcface_test {
/// A head over 2-D features whose class weights are set by hand.
models::arcface_head<double, cpu> make_head(int classes, int k, std::vector<double> weights, double m = 0.5) {
  models::arcface_options o;
  o.num_classes = classes;
  o.in_features = 2;
  o.num_subcenters = k;
  o.margin = m;
  o.scale = 64;
  models::arcface_head<double, cpu> h(o);
  h.weight().value_mut().copy_from(tensor<double>::from_vector(shape{classes * k, 2}, weights));
  return h;
}
}  // namespace arcface_test

TEST_CASE("arcface_head: logits on hand-made features and weights", "[models]") {
  // Class 0 along x, class 1 along y; the feature at 30 degrees from x, length 2 (normalised away).
  auto h = arcface_test::make_head(2, 1, {3, 0, 0, 5});
  double a = M_PI / 6;
  variable<double> f(tensor<double>::from_vector(shape{1, 2}, {2 * std::cos(a), 2 * std::sin(a)}));
  auto eval = h.forward(f);
  CHECK(eval.value().at(0, 0) == Approx(64 * std::cos(a)));
  CHECK(eval.value().at(0, 1) == Approx(64 * std::sin(a)));
  auto train = h.forward(f, {0});
  CHECK(train.value().at(0, 0) == Approx(64 * std::cos(a + 0.5)));
  CHECK(train.value().at(0, 1) == Approx(64 * std::sin(a)));
  auto loss = h.loss(f, {0});
  double l0 = 64 * std::cos(a + 0.5), l1 = 64 * std::sin(a);
  CHECK(loss.value().item() == Approx(-l0 + std::log(std::exp(l0) + std::exp(l1))));
}

TEST_CASE("arcface_head: sub-centers take the max over each class's k rows", "[models]") {
  // k = 2: class 0 rows (1,0) and (0,1); class 1 rows (-1,0) and (0,-1).
  auto h = arcface_test::make_head(2, 2, {1, 0, 0, 1, -1, 0, 0, -1});
  variable<double> f(tensor<double>::from_vector(shape{2, 2}, {0.2, 1.0, -1.0, 0.1}));
  auto cos = h.cosine(f).value();
  double n0 = std::sqrt(1.04), n1 = std::sqrt(1.01);
  CHECK(cos.at(0, 0) == Approx(1.0 / n0));    // nearest class-0 center is (0, 1)
  CHECK(cos.at(0, 1) == Approx(-0.2 / n0));   // (-1, 0) beats (0, -1)
  CHECK(cos.at(1, 0) == Approx(0.1 / n1));
  CHECK(cos.at(1, 1) == Approx(1.0 / n1));
}

TEST_CASE("arcface_head: gradients of the loss match finite differences", "[models]") {
  generator g(5);
  models::arcface_options o;
  o.num_classes = 4;
  o.in_features = 3;
  o.num_subcenters = 3;
  o.scale = 4;
  o.margins = {0.5, 0.2, 0.3, 0.1};
  models::arcface_head<double, cpu> h(o, g);
  auto f = testing::random_variable(shape{5, 3}, g);
  testing::require_gradients_match([&] { return h.loss(f, {0, 3, 1, 2, 0}); }, {f, h.weight()});
}

TEST_CASE("arcface_head: margins from a list, a file, or class counts", "[models]") {
  std::string path = "arcface_test_margins.txt";
  {
    std::FILE* fp = std::fopen(path.c_str(), "w");
    std::fputs("0.5\n0.25\n\n0.1\n", fp);
    std::fclose(fp);
  }
  CHECK(models::read_margins(path) == std::vector<double>{0.5, 0.25, 0.1});
  {
    std::FILE* fp = std::fopen(path.c_str(), "w");
    std::fputs("0.5\nhalf\n", fp);
    std::fclose(fp);
  }
  CHECK_THROWS_WITH(models::read_margins(path), Catch::Contains("line 2") && Catch::Contains("half"));
  std::remove(path.c_str());
  CHECK_THROWS_AS(models::read_margins("no/such/margins.txt"), io_error);

  auto m = models::adaptive_margins({1, 16, 81, 10000});
  CHECK(m[0] == Approx(0.5));   // rarest class: largest margin
  CHECK(m[3] == Approx(0.05));  // most frequent: smallest
  double lo = std::pow(10000.0, -0.25), hi = 1.0;
  CHECK(m[1] == Approx((0.5 - lo) / (hi - lo) * 0.45 + 0.05));
  CHECK_THROWS_AS(models::adaptive_margins({3, 0}), config_error);

  models::arcface_options o;
  o.num_classes = 3;
  o.in_features = 2;
  o.margins = {0.1, 0.2};
  CHECK_THROWS_WITH((models::arcface_head<float, cpu>(o)), Catch::Contains("expected 3 margins"));
}

TEST_CASE("arcface_head: dominant sub-centers, noisy samples, and dropping the rest", "[models]") {
  // Class 0's sub-center 1 (0,1) attracts samples 0-2; sample 3 sits opposite: a noisy label.
  auto h = arcface_test::make_head(2, 2, {1, 0, 0, 1, -1, 0, 0, -1});
  auto feats = tensor<double>::from_vector(shape{5, 2}, {0.1, 1, -0.1, 1, 0, 1, 0, -1, -1, 0.05});
  std::vector<std::int64_t> labels{0, 0, 0, 0, 1};
  auto dom = h.dominant_subcenters(feats, labels);
  CHECK(dom == std::vector<int>{1, 0});
  auto noisy = h.noisy_samples(feats, labels, dom, 75.0);
  CHECK(noisy == std::vector<index_t>{3});
  h.drop_non_dominant(dom);
  CHECK(h.options().num_subcenters == 1);
  CHECK(h.weight().shape() == shape{2, 2});
  CHECK(h.weight().value().at(0, 1) == 1.0);
  CHECK(h.weight().value().at(1, 0) == -1.0);
}

namespace arcface_test {
/// Rounds to the nearest bfloat16 (ties to even): what a bf16 backbone hands the head. arcnet
/// has no bf16 tensor type yet; in bf16 mode the whole ArcFace head runs in fp32 (DESIGN.md), so
/// the bf16 case is the fp32 head fed bf16-representable features.
float round_to_bf16(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7f800000u) == 0x7f800000u) return x;
  u += 0x7fffu + ((u >> 16) & 1u);
  u &= 0xffff0000u;
  std::memcpy(&x, &u, 4);
  return x;
}
}  // namespace arcface_test

TEST_CASE("arcface_head: loss and gradients finite at cos = +-1 in fp32 and on bf16 features", "[models]") {
  // Features equal to their class's weight row (cos = 1 up to rounding, sometimes just above),
  // their negation (cos = -1), and a zero feature (a dead embedding); margins 0 to pi/2,
  // easy_margin on and off, and the combined / CosFace forms.
  int const classes = 4, width = 16;
  generator g(21);
  std::vector<float> w(static_cast<size_t>(classes * width));
  for (auto& v : w) v = static_cast<float>(g.normal());
  for (bool bf16 : {false, true}) {
    std::vector<float> feats;
    for (int sign : {1, -1})
      for (int c = 0; c < classes; ++c)
        for (int k = 0; k < width; ++k) {
          float v = w[static_cast<size_t>(c * width + k)];
          feats.push_back(sign * 2.0f * (bf16 ? arcface_test::round_to_bf16(v) : v));  // exactly parallel
        }
    feats.resize(feats.size() + width, 0.0f);
    std::vector<std::int64_t> targets{0, 1, 2, 3, 0, 1, 2, 3, 2};
    struct variant { double m, m1, m3; bool easy; };
    for (variant v : {variant{0, 1, 0, false}, {0.5, 1, 0, false}, {0.5, 1, 0, true}, {M_PI / 2, 1, 0, false},
                      {M_PI / 2, 1, 0, true}, {0, 1, 0.35, false}, {0.3, 1.2, 0.2, false}}) {
      CAPTURE(bf16, v.m, v.m1, v.m3, v.easy);
      models::arcface_options o;
      o.num_classes = classes;
      o.in_features = width;
      o.margin = v.m;
      o.m1 = v.m1;
      o.m3 = v.m3;
      o.easy_margin = v.easy;
      models::arcface_head<float, cpu> h(o);
      std::vector<float> wv = w;
      if (bf16) for (auto& x : wv) x = arcface_test::round_to_bf16(x);
      h.weight().value_mut().copy_from(tensor<float>::from_vector(shape{classes, width}, wv));
      variable<float> f(tensor<float>::from_vector(shape{9, width}, feats), true);
      auto cos = h.cosine(f).value();
      for (int i = 0; i < 4; ++i) {
        CHECK(cos.at(i, i) == Approx(1).margin(1e-6));
        CHECK(cos.at(i + 4, i) == Approx(-1).margin(1e-6));
      }
      auto loss = h.loss(f, targets);
      REQUIRE(std::isfinite(loss.value().item()));
      loss.backward();
      int bad = 0;
      for (index_t i = 0; i < f.grad().numel(); ++i) bad += !std::isfinite(f.grad()[i]);
      for (index_t i = 0; i < h.weight().grad().numel(); ++i) bad += !std::isfinite(h.weight().grad()[i]);
      CHECK(bad == 0);
      // The target logit of a feature on its class's weight: s * (cos(acos(cos) + m) - m3) for
      // m1 = 1 (about s * (cos(m) - m3); the slope is infinite at cos = 1, so use the computed cos).
      if (v.m1 == 1) {
        auto logits = h.forward(variable<float>(f.value()), targets).value();
        for (int i = 0; i < 4; ++i) {
          double c = std::min(1.0, static_cast<double>(cos.at(i, i)));
          CHECK(logits.at(i, i) == Approx(64 * (std::cos(std::acos(c) + v.m) - v.m3)).margin(1e-4));
        }
      }
    }
  }
}
