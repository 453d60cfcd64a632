// Transforms, normalisation and the pipeline (data/transforms.hpp), against values computed by
// hand or independently (resampled gradients, crop windows on coordinate-coded images).
#include "test_util.hpp"

#include <arcnet/data/transforms.hpp>

#include <set>
#include <tuple>

namespace transforms_test {

using arcnet::generator;
using arcnet::data::image;
using arcnet::data::interpolation;

/// Channel 0 = x + 1, channel 1 = y + 1 (0 marks padding), channel 2 = 7: any window says where it came from.
inline image coordinates(int w, int h) {
  image img = arcnet::data::make_image(w, h, 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      img.at(y, x, 0) = static_cast<std::uint8_t>(x + 1);
      img.at(y, x, 1) = static_cast<std::uint8_t>(y + 1);
      img.at(y, x, 2) = 7;
    }
  return img;
}
inline image constant(int w, int h, int c, std::uint8_t v) {
  image img = arcnet::data::make_image(w, h, c);
  std::fill(img.pixels.begin(), img.pixels.end(), v);
  return img;
}
/// Requires out to be the window of `coords` (from coordinates()) at (left, top); 0 outside.
inline void require_window(image const& out, int left, int top, int src_w, int src_h) {
  for (int y = 0; y < out.height; ++y)
    for (int x = 0; x < out.width; ++x) {
      int const sx = left + x, sy = top + y;
      bool const inside = sx >= 0 && sx < src_w && sy >= 0 && sy < src_h;
      REQUIRE(int(out.at(y, x, 0)) == (inside ? sx + 1 : 0));
      REQUIRE(int(out.at(y, x, 1)) == (inside ? sy + 1 : 0));
      REQUIRE(int(out.at(y, x, 2)) == (inside ? 7 : 0));
    }
}
/// The window's (left, top) in the source, read from its first pixel.
inline std::pair<int, int> origin(image const& window) { return {window.at(0, 0, 0) - 1, window.at(0, 0, 1) - 1}; }

// The test cases live in the namespace too: the unity build puts several test files in one
// translation unit, where file-level using-directives could collide.


TEST_CASE("resample: a constant image stays constant", "[data][transforms]") {
  for (auto how : {interpolation::bilinear, interpolation::bicubic})
    for (int c : {1, 3, 4})
      for (auto [w, h] : {std::pair{7, 5}, std::pair{64, 3}, std::pair{13, 41}, std::pair{1, 1}}) {
        image const out = arcnet::data::resample(constant(29, 17, c, 173), w, h, how);
        REQUIRE((out.width == w && out.height == h && out.channels == c));
        for (auto v : out.pixels) REQUIRE(int(v) == 173);
      }
}

TEST_CASE("resample: hand-computed bilinear values (Pillow's triangle filter, widened when shrinking)",
          "[data][transforms]") {
  image in = arcnet::data::make_image(4, 1, 1);
  in.pixels = {0, 70, 140, 210};
  // Shrink 4 -> 2: scale 2, support 2. Output 0: centre 1, taps x = 0, 1, 2 with weights
  // tri((x - 1 + 0.5) / 2) = 0.75, 0.75, 0.25 -> (0 * .75 + 70 * .75 + 140 * .25) / 1.75 = 50;
  // output 1: centre 3, taps 1, 2, 3 -> (70 * .25 + 140 * .75 + 210 * .75) / 1.75 = 160.
  CHECK(arcnet::data::resample(in, 2, 1).pixels == std::vector<std::uint8_t>{50, 160});
  // Enlarge 2 -> 4: support 1, centres 0.25, 0.75, 1.25, 1.75: 0, .75 * 0 + .25 * 100, ... (edges clamp).
  image two = arcnet::data::make_image(2, 1, 1);
  two.pixels = {0, 100};
  CHECK(arcnet::data::resample(two, 4, 1).pixels == std::vector<std::uint8_t>{0, 25, 75, 100});
  // Vertical pass alone: the same numbers down a column.
  image column = arcnet::data::make_image(1, 4, 1);
  column.pixels = {0, 70, 140, 210};
  CHECK(arcnet::data::resample(column, 1, 2).pixels == std::vector<std::uint8_t>{50, 160});
}

TEST_CASE("resample: a linear gradient becomes the gradient at the output pixel centres", "[data][transforms]") {
  // in[x] = round(a (x + 0.5) + b): a symmetric filter reproduces a linear function, so away from the
  // borders out[i] = a * centre(i) + b, centre(i) = (i + 0.5) * in_w / out_w, within rounding.
  for (auto how : {interpolation::bilinear, interpolation::bicubic})
    for (auto [in_w, out_w] : {std::pair{301, 97}, std::pair{40, 97}, std::pair{800, 512}, std::pair{64, 63}}) {
      double const a = 200.0 / in_w, b = 20;
      image h = arcnet::data::make_image(in_w, 3, 3), v = arcnet::data::make_image(3, in_w, 1);
      for (int x = 0; x < in_w; ++x) {
        auto const value = static_cast<std::uint8_t>(std::lround(a * (x + 0.5) + b));
        for (int y = 0; y < 3; ++y) {
          for (int c = 0; c < 3; ++c) h.at(y, x, c) = value;
          v.at(x, y, 0) = value;
        }
      }
      image const oh = arcnet::data::resample(h, out_w, 3, how);
      image const ov = arcnet::data::resample(v, 3, out_w, how);
      double const scale = double(in_w) / out_w;
      double const margin = (how == interpolation::bicubic ? 2.0 : 1.0) * std::max(scale, 1.0) + 1;
      int checked = 0;
      for (int i = 0; i < out_w; ++i) {
        double const centre = (i + 0.5) * scale;
        if (centre < margin || centre > in_w - margin) continue;
        double const expected = a * centre + b;
        INFO("in " << in_w << " out " << out_w << " i " << i);
        REQUIRE(std::abs(oh.at(1, i, 2) - expected) <= 1.0);
        REQUIRE(std::abs(ov.at(i, 1, 0) - expected) <= 1.0);
        ++checked;
      }
      CHECK(checked > out_w / 2);
    }
}

TEST_CASE("resample: box and shape errors", "[data][transforms]") {
  image const img = coordinates(10, 8);
  // An integer box at the output size is an exact crop (weights 1, 0).
  require_window(arcnet::data::resample(img, 2, 3, 7, 8, 5, 5), 2, 3, 10, 8);
  CHECK_THROWS_AS(arcnet::data::resample(img, 0, 5), arcnet::shape_error);
  CHECK_THROWS_AS(arcnet::data::resample(img, 0, 0, 11, 8, 4, 4), arcnet::shape_error);
}

TEST_CASE("crop and center_crop: known offsets, zero outside the image", "[data][transforms]") {
  image const img = coordinates(10, 9);
  require_window(arcnet::data::crop(img, 3, 2, 4, 5), 3, 2, 10, 9);
  require_window(arcnet::data::crop(img, -2, 7, 5, 4), -2, 7, 10, 9);  // partly outside: zeros
  generator g(1);
  // (10 - 5) / 2 = 2.5 and (9 - 4) / 2 = 2.5 round half to even: 2, 2 (torchvision's round()).
  require_window(arcnet::data::center_crop(5, 4)(img, g), 2, 2, 10, 9);
  // (10 - 3) / 2 = 3.5 -> 4; (9 - 3) / 2 = 3.
  require_window(arcnet::data::center_crop(3)(img, g), 4, 3, 10, 9);
  // Larger than the image: padded with zeros around it, offsets (10 - 12) / 2 = -1, (9 - 13) / 2 = -2.
  require_window(arcnet::data::center_crop(12, 13)(img, g), -1, -2, 10, 9);
}

TEST_CASE("random_crop: a window at a uniformly drawn offset - padding adds zero borders", "[data][transforms]") {
  image const img = coordinates(12, 9);
  std::set<std::pair<int, int>> seen;
  for (std::uint64_t seed = 0; seed < 400; ++seed) {
    generator g(seed);
    image const out = arcnet::data::random_crop(5, 4, 0)(img, g);
    REQUIRE((out.width == 5 && out.height == 4));
    auto const [left, top] = origin(out);
    REQUIRE((left >= 0 && left <= 7 && top >= 0 && top <= 5));
    require_window(out, left, top, 12, 9);
    seen.insert({left, top});
  }
  CHECK(seen.size() == 8 * 6);  // every offset is reached

  int padded = 0;
  for (std::uint64_t seed = 0; seed < 200; ++seed) {
    generator g(seed);
    image const out = arcnet::data::random_crop(12, 9, 2)(img, g);  // the full size, padding 2
    // Find the offset from any inside pixel.
    int left = 99, top = 99;
    for (int y = 0; y < out.height && left == 99; ++y)
      for (int x = 0; x < out.width; ++x)
        if (out.at(y, x, 2) == 7) {
          left = out.at(y, x, 0) - 1 - x;
          top = out.at(y, x, 1) - 1 - y;
          break;
        }
    REQUIRE((left >= -2 && left <= 2 && top >= -2 && top <= 2));
    require_window(out, left, top, 12, 9);
    padded += (left != 0 || top != 0);
  }
  CHECK(padded > 150);
  generator g(0);
  CHECK_THROWS_AS(arcnet::data::random_crop(13)(img, g), arcnet::shape_error);
}

TEST_CASE("random_horizontal_flip: p = 1 mirrors, p = 0 keeps, p = 0.5 flips about half", "[data][transforms]") {
  image const img = coordinates(7, 3);
  generator g(3);
  image const f = arcnet::data::random_horizontal_flip(1.0)(img, g);
  for (int y = 0; y < 3; ++y)
    for (int x = 0; x < 7; ++x)
      for (int c = 0; c < 3; ++c) REQUIRE(f.at(y, x, c) == img.at(y, 6 - x, c));
  CHECK(arcnet::data::random_horizontal_flip(0.0)(img, g).pixels == img.pixels);
  int flipped = 0;
  for (int i = 0; i < 1000; ++i) flipped += arcnet::data::random_horizontal_flip(0.5)(img, g).pixels != img.pixels;
  CHECK(flipped > 430);
  CHECK(flipped < 570);
}

TEST_CASE("random_resized_crop: regions within torchvision's ranges, then resized - central fallback",
          "[data][transforms]") {
  arcnet::data::random_resized_crop const rrc(24);
  for (std::uint64_t seed = 0; seed < 300; ++seed) {
    generator g(seed);
    auto const r = rrc.region(200, 150, g);
    REQUIRE((r[0] >= 0 && r[1] >= 0 && r[0] + r[2] <= 200 && r[1] + r[3] <= 150));
    double const area = double(r[2]) * r[3] / (200.0 * 150.0);
    double const aspect = double(r[2]) / r[3];
    CHECK(area >= 0.07);
    CHECK(area <= 1.01);
    if (r[2] > 10 && r[3] > 10) CHECK((aspect > 0.75 * 0.9 && aspect < 4.0 / 3.0 * 1.1));
  }
  generator g(5);
  image const out = rrc(constant(200, 150, 3, 91), g);
  REQUIRE((out.width == 24 && out.height == 24));
  for (auto v : out.pixels) REQUIRE(int(v) == 91);

  // 100 x 10 with scale (0.99, 1): every try is taller than 10, so the fallback: the ratio is
  // clamped to 4/3: h = 10, w = round(13.33) = 13, left = (100 - 13) / 2 = 43, top = 0.
  arcnet::data::random_resized_crop const wide(13, 10, interpolation::bilinear, {0.99, 1.0});
  image const strip = coordinates(100, 10);
  generator g2(9);
  require_window(wide(strip, g2), 43, 0, 100, 10);
}

TEST_CASE("color_jitter: identity at zero, brightness scales, contrast and saturation keep fixed points",
          "[data][transforms]") {
  image const img = coordinates(20, 10);
  generator g(11);
  CHECK(arcnet::data::color_jitter(0, 0, 0)(img, g).pixels == img.pixels);

  // Brightness alone: every value becomes trunc(v * f) for one f in [0.5, 1.5].
  image bright = constant(4, 4, 3, 0);
  for (std::size_t i = 0; i < bright.pixels.size(); ++i) bright.pixels[i] = static_cast<std::uint8_t>(10 + 9 * i);
  image const b = arcnet::data::color_jitter(0.5, 0, 0)(bright, g);
  double const f = double(b.pixels.back()) / bright.pixels.back();
  CHECK((f > 0.49 && f < 1.51));
  for (std::size_t i = 0; i < b.pixels.size(); ++i)
    CHECK(std::abs(b.pixels[i] - std::min(255.0, bright.pixels[i] * f)) <= 2.0);

  image const flat = constant(5, 5, 3, 77);  // contrast blends with the mean: a flat image is a fixed point
  CHECK(arcnet::data::color_jitter(0, 0.9, 0)(flat, g).pixels == flat.pixels);
  image grey = constant(5, 5, 3, 0);  // saturation blends with the grey level: a grey image is a fixed point
  for (std::size_t i = 0; i < grey.pixels.size(); ++i) grey.pixels[i] = static_cast<std::uint8_t>(30 * (i / 3 % 8));
  CHECK(arcnet::data::color_jitter(0, 0, 0.9)(grey, g).pixels == grey.pixels);
  CHECK(arcnet::data::color_jitter::luma(std::array<std::uint8_t, 3>{255, 255, 255}.data()) == 255);
}

TEST_CASE("to_tensor: (H, W, C) floats, (x - mean) / std on 0..255 values", "[data][transforms]") {
  image img = arcnet::data::make_image(2, 1, 3);
  img.pixels = {0, 128, 255, 10, 20, 30};
  auto const t = arcnet::data::to_tensor(img, arcnet::data::normalization::imagenet());
  REQUIRE(t.shape() == arcnet::shape{1, 2, 3});
  CHECK(t.at(0, 0, 0) == Approx((0 - 123.675) / 58.395).epsilon(1e-6));
  CHECK(t.at(0, 0, 1) == Approx((128 - 116.28) / 57.12).epsilon(1e-6));
  CHECK(t.at(0, 0, 2) == Approx((255 - 103.53) / 57.375).epsilon(1e-6));
  CHECK(t.at(0, 1, 2) == Approx((30 - 103.53) / 57.375).epsilon(1e-6));
  auto const raw = arcnet::data::to_tensor(img);
  CHECK(raw.at(0, 0, 2) == 255.f);
  CHECK(raw.at(0, 1, 0) == 10.f);
  auto const custom = arcnet::data::to_tensor(img, {1, 2, 3}, {2, 4, 8});
  CHECK(custom.at(0, 1, 2) == Approx((30 - 3) / 8.0));
  image grey = arcnet::data::make_image(1, 2, 1);
  grey.pixels = {50, 100};
  auto const g = arcnet::data::to_tensor(grey, {50, 0, 0}, {25, 1, 1});
  REQUIRE(g.shape() == arcnet::shape{2, 1, 1});
  CHECK(g.at(1, 0, 0) == 2.f);
  CHECK_THROWS_AS(arcnet::data::to_tensor(img, {0, 0, 0}, {1, 0, 1}), arcnet::config_error);
}

TEST_CASE("pipeline: parses specs into steps and prints them back", "[data][transforms]") {
  auto const p = arcnet::data::pipeline::parse("resize=512x512, random_crop=448,flip=0.5,normalize=imagenet");
  CHECK(p.size() == 3);
  CHECK(p.spec() == "resize=512x512,random_crop=448,flip=0.5,normalize=imagenet");
  CHECK(p.decode_hint().width == 512);
  auto const t = p(constant(60, 80, 3, 100), 42);
  REQUIRE(t.shape() == arcnet::shape{448, 448, 3});
  CHECK(t.at(200, 100, 0) == Approx((100 - 123.675) / 58.395).epsilon(1e-6));

  std::string const all =
      "resize_short=256:bicubic,center_crop=224x200,random_resized_crop=32:bicubic:scale=0.5/1:ratio=0.5/2,"
      "random_crop=28:pad=4,color_jitter=0.4/0.3/0.2,flip=1,normalize=1/2/3:4/5/6";
  auto const q = arcnet::data::pipeline(all);
  CHECK(q.size() == 6);
  CHECK(q.spec() == all);
  CHECK(arcnet::data::pipeline::parse(q.spec()).spec() == all);
  CHECK(q(constant(300, 200, 3, 50), 1).shape() == arcnet::shape{28, 28, 3});
  CHECK(arcnet::data::pipeline::parse("color_jitter=0.4").spec() == "color_jitter=0.4/0.4/0.4,normalize=none");
  CHECK(arcnet::data::pipeline::parse("").size() == 0);
  CHECK(arcnet::data::pipeline::parse("center_crop=4").decode_hint().width == 0);

  std::vector<std::pair<std::string, std::string>> const bad{
      {"resize=512,flip=0.5", "resize=512"},
      {"resize=512x,flip=0.5", "resize=512x"},
      {"resize=0x4", "resize=0x4"},
      {"resize=4x4:lanczos", "resize=4x4:lanczos"},
      {"random_crop=448,flip=1.5", "flip=1.5"},
      {"flip=abc", "flip=abc"},
      {"blur=3", "blur=3"},
      {"random_crop", "random_crop"},
      {"random_crop=32:pad=-1", "random_crop=32:pad=-1"},
      {"center_crop=8,,flip=0.5", ""},
      {"color_jitter=0.1/0.2", "color_jitter=0.1/0.2"},
      {"normalize=imagenet,flip=0.5", "flip=0.5"},
      {"normalize=1/2:3/4/5", "normalize=1/2:3/4/5"},
      {"normalize=1/2/3:1/0/1", "normalize=1/2/3:1/0/1"},
      {"random_resized_crop=8:scale=0.5/2", "random_resized_crop=8:scale=0.5/2"},
  };
  for (auto const& [spec, token] : bad) {
    INFO(spec);
    try {
      (void)arcnet::data::pipeline::parse(spec);
      FAIL("no config_error");
    } catch (arcnet::config_error const& e) {
      std::string const what = e.what();
      INFO(what);
      CHECK(what.find("bad token '" + token + "'") != std::string::npos);
    }
  }
}

TEST_CASE("pipeline: the same seed gives the same output, different seeds different crops", "[data][transforms]") {
  arcnet::data::pipeline p;
  p.add(arcnet::data::resize(40, 30))
      .add(arcnet::data::random_crop(24))
      .add(arcnet::data::random_horizontal_flip(0.5))
      .add(arcnet::data::color_jitter(0.2, 0.2, 0.2))
      .normalize(arcnet::data::normalization::imagenet());
  image img = coordinates(50, 37);
  for (std::size_t i = 0; i < img.pixels.size(); i += 3) img.pixels[i + 2] = static_cast<std::uint8_t>(i % 251);
  auto const a = p(img, arcnet::data::sample_seed(1, 0, 5));
  auto const b = p(img, arcnet::data::sample_seed(1, 0, 5));
  REQUIRE(a.shape() == arcnet::shape{24, 24, 3});
  CHECK(std::equal(a.data(), a.data() + a.numel(), b.data()));
  std::set<std::vector<std::uint8_t>> distinct;
  for (std::uint64_t i = 0; i < 8; ++i) distinct.insert(p.transform(img, arcnet::data::sample_seed(1, 0, i)).pixels);
  CHECK(distinct.size() >= 7);
  // A user transform without spec() is accepted and printed as "custom".
  arcnet::data::pipeline c;
  c.add([](image const& in, arcnet::generator&) { return arcnet::data::flip_horizontal(in); });
  CHECK(c.spec() == "custom,normalize=none");
  CHECK(c.transform(img, 0).pixels == arcnet::data::flip_horizontal(img).pixels);
}

TEST_CASE("sample_seed: deterministic, and distinct across base, epoch and index", "[data][transforms]") {
  using arcnet::data::sample_seed;
  CHECK(sample_seed(1, 2, 3) == sample_seed(1, 2, 3));
  std::set<std::uint64_t> seeds;
  for (std::uint64_t base = 0; base < 4; ++base)
    for (std::uint64_t epoch = 0; epoch < 8; ++epoch)
      for (std::uint64_t index = 0; index < 64; ++index) seeds.insert(sample_seed(base, epoch, index));
  CHECK(seeds.size() == 4 * 8 * 64);
}

TEST_CASE("resample: the SSE4.1 and AVX2 passes equal the portable ones", "[data][transforms]") {
#if ARCNET_DATA_RESAMPLE_X86
  if (!arcnet::detail::data_cpu_has_sse41() || !arcnet::detail::data_cpu_has_avx2()) {
    WARN("no SSE4.1 or no AVX2 on this CPU");
    return;
  }
  generator g(17);
  for (int C : {3, 4})
    for (auto [in_w, out_w, bicubic] : {std::tuple{600, 512, false}, std::tuple{97, 301, true}, std::tuple{64, 7, true},
                                        std::tuple{300, 19, false}, std::tuple{5, 5, false}, std::tuple{33, 32, false},
                                        std::tuple{2, 9, true}}) {
      std::size_t const stride = static_cast<std::size_t>(in_w) * C;
      auto const c = arcnet::detail::data_resample_precompute(in_w, 0.25, in_w - 0.5, out_w, bicubic);
      // Rows with 0, a few and many bytes after them: the loads past a row must stay in the buffer.
      for (std::size_t after : {std::size_t{0}, std::size_t{5}, stride}) {
        std::vector<std::uint8_t> src(stride + after);
        for (auto& v : src) v = static_cast<std::uint8_t>(g.below(256));
        std::vector<std::uint8_t> a(static_cast<std::size_t>(out_w) * C), b(a.size());
        if (C == 3) {
          arcnet::detail::data_resample_row_scalar<3>(src.data(), a.data(), out_w, c);
          arcnet::detail::data_resample_row_sse41<3>(src.data(), src.size(), b.data(), out_w, c);
        } else {
          arcnet::detail::data_resample_row_scalar<4>(src.data(), a.data(), out_w, c);
          arcnet::detail::data_resample_row_sse41<4>(src.data(), src.size(), b.data(), out_w, c);
        }
        INFO("C " << C << " " << in_w << " -> " << out_w << ", " << after << " bytes after the row");
        CHECK(a == b);
      }
    }
  // The vertical pass.
  for (auto [in_h, out_h, bicubic] : {std::tuple{61, 17, true}, std::tuple{17, 40, false}}) {
    std::size_t const row_bytes = 37 * 3;
    std::vector<std::uint8_t> src(row_bytes * static_cast<std::size_t>(in_h));
    for (auto& v : src) v = static_cast<std::uint8_t>(g.below(256));
    auto const c = arcnet::detail::data_resample_precompute(in_h, 0, in_h, out_h, bicubic);
    std::vector<std::uint8_t> a(row_bytes * static_cast<std::size_t>(out_h)), b(a.size());
    std::vector<std::int32_t> acc(row_bytes);
    for (int yy = 0; yy < out_h; ++yy) {
      std::vector<std::uint8_t const*> rows;
      for (int t = 0; t < c.count[static_cast<std::size_t>(yy)]; ++t)
        rows.push_back(src.data() + static_cast<std::size_t>(c.first[static_cast<std::size_t>(yy)] + t) * row_bytes);
      auto const* k = &c.weights[static_cast<std::size_t>(yy) * c.ksize];
      int const n = static_cast<int>(rows.size());
      std::size_t const at = static_cast<std::size_t>(yy) * row_bytes;
      arcnet::detail::data_resample_column_portable(rows.data(), k, n, row_bytes, a.data() + at, acc.data());
      arcnet::detail::data_resample_column_avx2(rows.data(), k, n, row_bytes, b.data() + at, acc.data());
    }
    CHECK(a == b);
  }
#else
  WARN("not an x86 build: only the portable passes exist");
#endif
}

TEST_CASE("resample: equals a plain two-pass resize of the whole image, windows and tiny sizes too",
          "[data][transforms]") {
  // The reference: Pillow's two passes over whole images, straight from the coefficients, with
  // an intermediate image of every row (no ring, no SIMD, no window).
  auto reference = [](image const& img, double x0, double y0, double x1, double y1, int w, int h, bool bicubic) {
    using arcnet::detail::data_resample_clip8;
    int const C = img.channels;
    auto const ch = arcnet::detail::data_resample_precompute(img.width, x0, x1, w, bicubic);
    auto const cv = arcnet::detail::data_resample_precompute(img.height, y0, y1, h, bicubic);
    std::int32_t const half = 1 << (arcnet::detail::data_resample_bits - 1);
    image mid = arcnet::data::make_image(w, img.height, C), out = arcnet::data::make_image(w, h, C);
    for (int y = 0; y < img.height; ++y)
      for (int x = 0; x < w; ++x)
        for (int c = 0; c < C; ++c) {
          std::int32_t s = half;
          for (int t = 0; t < ch.count[static_cast<std::size_t>(x)]; ++t)
            s += img.at(y, ch.first[static_cast<std::size_t>(x)] + t, c) *
                 ch.weights[static_cast<std::size_t>(x * ch.ksize + t)];
          mid.at(y, x, c) = data_resample_clip8(s);
        }
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x)
        for (int c = 0; c < C; ++c) {
          std::int32_t s = half;
          for (int t = 0; t < cv.count[static_cast<std::size_t>(y)]; ++t)
            s += mid.at(cv.first[static_cast<std::size_t>(y)] + t, x, c) *
                 cv.weights[static_cast<std::size_t>(y * cv.ksize + t)];
          out.at(y, x, c) = data_resample_clip8(s);
        }
    return out;
  };
  generator g(29);
  for (int C : {1, 3, 4})
    for (auto [in_w, in_h, w, h, bicubic] :
         {std::tuple{60, 80, 51, 51, false}, std::tuple{37, 23, 90, 11, true}, std::tuple{1, 1, 3, 2, false},
          std::tuple{2, 3, 1, 1, true}, std::tuple{3, 50, 3, 7, false}, std::tuple{41, 2, 5, 2, true}}) {
      image img = arcnet::data::make_image(in_w, in_h, C);
      for (auto& v : img.pixels) v = static_cast<std::uint8_t>(g.below(256));
      INFO("C " << C << ", " << in_w << "x" << in_h << " -> " << w << "x" << h << (bicubic ? " bicubic" : ""));
      auto const full = reference(img, 0, 0, in_w, in_h, w, h, bicubic);
      CHECK(arcnet::detail::data_resample(img, 0, 0, in_w, in_h, w, h, bicubic).pixels == full.pixels);
      // A window of the output: the same pixels as cropping the whole.
      int const wx = w / 3, wy = h / 4, ww = w - wx - w / 5, wh = h - wy;
      auto const win = arcnet::detail::data_resample(img, 0, 0, in_w, in_h, w, h, bicubic, wx, wy, ww, wh);
      CHECK(win.pixels == arcnet::data::crop(full, wx, wy, ww, wh).pixels);
      // A fractional box.
      double const bx0 = 0.3 * in_w, by0 = 0.2 * in_h, bx1 = in_w - 0.1, by1 = in_h;
      CHECK(arcnet::detail::data_resample(img, bx0, by0, bx1, by1, w, h, bicubic).pixels ==
            reference(img, bx0, by0, bx1, by1, w, h, bicubic).pixels);
    }
}

TEST_CASE("pipeline: a resize followed by a crop gives the pixels of resizing then cropping", "[data][transforms]") {
  image img = coordinates(97, 61);
  generator noise(4);
  for (auto& v : img.pixels) v = static_cast<std::uint8_t>(v * 2 + noise.below(40));
  for (std::string const spec : {"resize=50x40,random_crop=33x21", "resize_short=30:bicubic,center_crop=28",
                                 "resize=40x40,center_crop=50", "resize=64x48,random_crop=64x48,flip=1"}) {
    auto const fused = arcnet::data::pipeline::parse(spec);
    for (std::uint64_t seed = 0; seed < 6; ++seed) {
      // Reference: the transforms called one by one on one generator, as an unfused pipeline would.
      generator g(seed);
      image expected = img;
      if (spec.rfind("resize=50x40", 0) == 0) {
        expected = arcnet::data::resize(50, 40)(expected, g);
        expected = arcnet::data::random_crop(33, 21, 0)(expected, g);
      } else if (spec.rfind("resize_short", 0) == 0) {
        expected = arcnet::data::resize_short(30, interpolation::bicubic)(expected, g);
        expected = arcnet::data::center_crop(28)(expected, g);
      } else if (spec.rfind("resize=40x40", 0) == 0) {
        expected = arcnet::data::resize(40, 40)(expected, g);
        expected = arcnet::data::center_crop(50)(expected, g);  // larger: padded, not fused
      } else {
        expected = arcnet::data::resize(64, 48)(expected, g);
        expected = arcnet::data::random_crop(64, 48, 0)(expected, g);
        expected = arcnet::data::random_horizontal_flip(1.0)(expected, g);
      }
      image const got = fused.transform(img, seed);
      INFO(spec << " seed " << seed);
      REQUIRE((got.width == expected.width && got.height == expected.height));
      CHECK(got.pixels == expected.pixels);
    }
  }
}

}  // namespace transforms_test
