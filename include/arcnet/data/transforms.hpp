#pragma once
// Image transforms for training and evaluation pipelines, each a small type with
//   image operator()(image const& img, generator& g) const
// (random ones draw from g, deterministic ones ignore it), the final conversion to a float
// tensor (H, W, C) normalised per channel, and `pipeline`: a list of transforms plus the
// normalisation, built in code or parsed from a text spec such as
//   "resize=512x512,random_crop=448,flip=0.5,normalize=imagenet".
// Semantics follow torchvision / mmpretrain on PIL images: resampling is Pillow's (antialiased
// when shrinking, bit-identical results), crops use the same offsets and random algorithms.
// Sizes are written width x height. Pure C++ over arcnet::core: no codec library needed.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "arcnet/core/error.hpp"
#include "arcnet/core/random.hpp"
#include "arcnet/core/tensor.hpp"
#include "arcnet/data/detail/resample.hpp"
#include "arcnet/data/image.hpp"

namespace arcnet::data {

/// The resampling filter of a resize (Pillow's BILINEAR and BICUBIC, antialiased when shrinking).
enum class interpolation { bilinear, bicubic };

/// "bilinear" or "bicubic", as in specs.
inline char const* interpolation_name(interpolation how) {
  return how == interpolation::bicubic ? "bicubic" : "bilinear";
}

/// A seed for one sample: a splitmix64 mix of (base seed, epoch, sample index), so that a
/// sample's random transforms do not depend on which thread runs them or in which order.
inline std::uint64_t sample_seed(std::uint64_t base, std::uint64_t epoch, std::uint64_t index) {
  auto mix = [](std::uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
  };
  return mix(mix(mix(base) ^ epoch) ^ index);
}

/// Resamples the region [x0, x1) x [y0, y1) of img (pixel edges, fractional allowed) to
/// width x height, as Pillow's Image.resize(size, filter, box), bit for bit. 1, 3 or 4 channels.
inline image resample(image const& img, double x0, double y0, double x1, double y1, int width, int height,
                      interpolation how = interpolation::bilinear) {
  detail::data_check_image(img, "resample");
  if (width <= 0 || height <= 0 || img.empty())
    detail::raise<shape_error>("resample: cannot resize a ", img.width, "x", img.height, " image to ", width, "x",
                               height);
  if (!(x0 >= 0 && y0 >= 0 && x1 <= img.width && y1 <= img.height && x0 < x1 && y0 < y1))
    detail::raise<shape_error>("resample: box (", x0, ", ", y0, ", ", x1, ", ", y1, ") is not inside the ",
                               img.width, "x", img.height, " image");
  return detail::data_resample(img, x0, y0, x1, y1, width, height, how == interpolation::bicubic);
}
/// The whole of img resampled to width x height (Pillow's Image.resize).
inline image resample(image const& img, int width, int height, interpolation how = interpolation::bilinear) {
  return resample(img, 0, 0, img.width, img.height, width, height, how);
}

/// The width x height window of img whose top-left corner is (x, y); parts outside img are 0
/// (as Pillow's crop), so a window larger than the image pads it.
inline image crop(image const& img, int x, int y, int width, int height) {
  detail::data_check_image(img, "crop");
  if (width < 0 || height < 0) detail::raise<shape_error>("crop: negative size ", width, "x", height);
  int const C = img.channels;
  if (x >= 0 && y >= 0 && x + width <= img.width && y + height <= img.height) {  // inside: copy rows, no fill
    image out{width, height, C, {}};
    out.pixels.reserve(static_cast<std::size_t>(width) * height * C);
    for (int yy = y; yy < y + height; ++yy)
      out.pixels.insert(out.pixels.end(), img.row(yy) + static_cast<std::size_t>(x) * C,
                        img.row(yy) + static_cast<std::size_t>(x + width) * C);
    return out;
  }
  image out = make_image(width, height, C);
  int const xa = std::max(x, 0), xb = std::min(x + width, img.width);  // source columns inside
  if (xa >= xb) return out;
  for (int yy = 0; yy < height; ++yy) {
    int const sy = y + yy;
    if (sy < 0 || sy >= img.height) continue;
    std::copy(img.row(sy) + static_cast<std::size_t>(xa) * C, img.row(sy) + static_cast<std::size_t>(xb) * C,
              out.row(yy) + static_cast<std::size_t>(xa - x) * C);
  }
  return out;
}

}  // namespace arcnet::data

namespace arcnet::detail {
template <int C>
void data_flip_rows(data::image const& img, data::image& out) {
  for (int y = 0; y < img.height; ++y) {
    std::uint8_t const* in = img.row(y);
    std::uint8_t* o = out.row(y) + static_cast<std::size_t>(img.width - 1) * C;
    for (int x = 0; x < img.width; ++x, in += C, o -= C)
      for (int c = 0; c < C; ++c) o[c] = in[c];
  }
}
}  // namespace arcnet::detail

namespace arcnet::data {

/// img mirrored left to right.
inline image flip_horizontal(image const& img) {
  detail::data_check_image(img, "flip_horizontal");
  image out{img.width, img.height, img.channels, std::vector<std::uint8_t>(img.pixels.size())};
  switch (img.channels) {
    case 1: detail::data_flip_rows<1>(img, out); break;
    case 3: detail::data_flip_rows<3>(img, out); break;
    default: detail::data_flip_rows<4>(img, out); break;
  }
  return out;
}

/// Width and height a decoder may stop at (0, 0: no hint); see read_image(path, w, h).
struct size_hint {
  int width = 0, height = 0;
};

/// Resize to exactly width x height (mmpretrain's Resize(scale=(w, h)); torchvision's Resize((h, w))).
struct resize {
  int width, height;
  interpolation how = interpolation::bilinear;

  resize(int w, int h, interpolation i = interpolation::bilinear) : width(w), height(h), how(i) {
    if (w <= 0 || h <= 0) detail::raise<config_error>("resize: size must be positive, got ", w, "x", h);
  }
  image operator()(image const& img, generator&) const { return resample(img, width, height, how); }
  /// (width, height) of the output, whatever the input.
  std::pair<int, int> output_size(int, int) const { return {width, height}; }
  std::string spec() const {
    return detail::concat("resize=", width, "x", height, how == interpolation::bilinear ? "" : ":bicubic");
  }
  data::size_hint decode_hint() const { return {width, height}; }
};

/// Resize so that the shorter side is `size`, keeping the aspect ratio; the longer side is
/// int(size * long / short) (torchvision's Resize(size), mmpretrain's ResizeEdge(edge="short")).
struct resize_short {
  int size;
  interpolation how = interpolation::bilinear;

  explicit resize_short(int s, interpolation i = interpolation::bilinear) : size(s), how(i) {
    if (s <= 0) detail::raise<config_error>("resize_short: size must be positive, got ", s);
  }
  /// (width, height) of the output for a w x h input.
  std::pair<int, int> output_size(int w, int h) const {
    if (w <= h) return {size, static_cast<int>(static_cast<long long>(size) * h / w)};
    return {static_cast<int>(static_cast<long long>(size) * w / h), size};
  }
  image operator()(image const& img, generator&) const {
    if (img.empty()) detail::raise<shape_error>("resize_short: empty ", img.width, "x", img.height, " image");
    auto const [w, h] = output_size(img.width, img.height);
    return resample(img, w, h, how);
  }
  std::string spec() const {
    return detail::concat("resize_short=", size, how == interpolation::bilinear ? "" : ":bicubic");
  }
  data::size_hint decode_hint() const { return {size, size}; }
};

/// A width x height window at a uniformly random offset (torchvision's RandomCrop), after
/// padding every side with `padding` zero pixels. An image smaller than the window is an error.
struct random_crop {
  int width, height, padding = 0;

  explicit random_crop(int size, int pad = 0) : random_crop(size, size, pad) {}
  random_crop(int w, int h, int pad) : width(w), height(h), padding(pad) {
    if (w <= 0 || h <= 0 || pad < 0)
      detail::raise<config_error>("random_crop: size must be positive and padding >= 0, got ", w, "x", h,
                                  " padding ", pad);
  }
  image operator()(image const& img, generator& g) const {
    int const pw = img.width + 2 * padding, ph = img.height + 2 * padding;
    if (pw < width || ph < height)
      detail::raise<shape_error>("random_crop: the ", width, "x", height, " window is larger than the ", pw, "x", ph,
                                 " image", padding ? " (after padding)" : "");
    int const top = static_cast<int>(g.below(static_cast<std::uint64_t>(ph - height + 1)));
    int const left = static_cast<int>(g.below(static_cast<std::uint64_t>(pw - width + 1)));
    return crop(img, left - padding, top - padding, width, height);
  }
  /// The window (left, top, width, height) operator() would cut from a w x h image, drawing the
  /// same numbers from g; none, and no draw, when it needs padding or does not fit (lets a
  /// pipeline compute only the window of a preceding resize).
  std::optional<std::array<int, 4>> crop_window(int w, int h, generator& g) const {
    if (padding != 0 || w < width || h < height) return std::nullopt;
    int const top = static_cast<int>(g.below(static_cast<std::uint64_t>(h - height + 1)));
    int const left = static_cast<int>(g.below(static_cast<std::uint64_t>(w - width + 1)));
    return std::array<int, 4>{left, top, width, height};
  }
  std::string spec() const {
    std::string s = detail::concat("random_crop=", width == height ? std::to_string(width)
                                                                   : detail::concat(width, "x", height));
    return padding ? detail::concat(s, ":pad=", padding) : s;
  }
};

/// The central width x height window (torchvision's CenterCrop: offsets round((W - w) / 2)
/// half to even, zero padding when the window is larger than the image).
struct center_crop {
  int width, height;

  explicit center_crop(int size) : center_crop(size, size) {}
  center_crop(int w, int h) : width(w), height(h) {
    if (w <= 0 || h <= 0) detail::raise<config_error>("center_crop: size must be positive, got ", w, "x", h);
  }
  image operator()(image const& img, generator&) const {
    // Python's round() rounds half to even, like nearbyint in the default rounding mode.
    int const left = static_cast<int>(std::nearbyint((img.width - width) / 2.0));
    int const top = static_cast<int>(std::nearbyint((img.height - height) / 2.0));
    return crop(img, left, top, width, height);
  }
  /// The window operator() would cut from a w x h image; none when it does not fit.
  std::optional<std::array<int, 4>> crop_window(int w, int h, generator&) const {
    if (w < width || h < height) return std::nullopt;
    return std::array<int, 4>{static_cast<int>(std::nearbyint((w - width) / 2.0)),
                              static_cast<int>(std::nearbyint((h - height) / 2.0)), width, height};
  }
  std::string spec() const {
    return width == height ? detail::concat("center_crop=", width) : detail::concat("center_crop=", width, "x", height);
  }
};

/// A random region of random area (fraction `scale` of the image) and aspect ratio (log-uniform
/// in `ratio`), resized to width x height: torchvision's RandomResizedCrop, 10 tries, then the
/// central crop clamped to the ratio range.
struct random_resized_crop {
  int width, height;
  std::array<double, 2> scale{0.08, 1.0};
  std::array<double, 2> ratio{3.0 / 4.0, 4.0 / 3.0};
  interpolation how = interpolation::bilinear;

  explicit random_resized_crop(int size, interpolation i = interpolation::bilinear) : random_resized_crop(size, size, i) {}
  random_resized_crop(int w, int h, interpolation i = interpolation::bilinear,
                      std::array<double, 2> area_scale = {0.08, 1.0},
                      std::array<double, 2> aspect = {3.0 / 4.0, 4.0 / 3.0})
      : width(w), height(h), scale(area_scale), ratio(aspect), how(i) {
    if (w <= 0 || h <= 0) detail::raise<config_error>("random_resized_crop: size must be positive, got ", w, "x", h);
    if (!(scale[0] > 0 && scale[0] <= scale[1]) || !(ratio[0] > 0 && ratio[0] <= ratio[1]))
      detail::raise<config_error>("random_resized_crop: expected 0 < scale[0] <= scale[1] and 0 < ratio[0] <= ratio[1], got scale (",
                                  scale[0], ", ", scale[1], ") ratio (", ratio[0], ", ", ratio[1], ")");
  }
  /// The crop (left, top, width, height) for a w x h image (torchvision's get_params).
  std::array<int, 4> region(int w, int h, generator& g) const {
    double const area = static_cast<double>(w) * h;
    double const log_lo = std::log(ratio[0]), log_hi = std::log(ratio[1]);
    for (int attempt = 0; attempt < 10; ++attempt) {
      double const target_area = area * g.uniform(scale[0], scale[1]);
      double const aspect = std::exp(g.uniform(log_lo, log_hi));
      // Python's round(): half to even.
      int const cw = static_cast<int>(std::nearbyint(std::sqrt(target_area * aspect)));
      int const chh = static_cast<int>(std::nearbyint(std::sqrt(target_area / aspect)));
      if (cw > 0 && cw <= w && chh > 0 && chh <= h) {
        int const top = static_cast<int>(g.below(static_cast<std::uint64_t>(h - chh + 1)));
        int const left = static_cast<int>(g.below(static_cast<std::uint64_t>(w - cw + 1)));
        return {left, top, cw, chh};
      }
    }
    double const in_ratio = static_cast<double>(w) / h;
    int cw = w, chh = h;
    if (in_ratio < ratio[0]) chh = static_cast<int>(std::nearbyint(w / ratio[0]));
    else if (in_ratio > ratio[1]) cw = static_cast<int>(std::nearbyint(h * ratio[1]));
    cw = std::clamp(cw, 1, w);
    chh = std::clamp(chh, 1, h);
    return {(w - cw) / 2, (h - chh) / 2, cw, chh};
  }
  image operator()(image const& img, generator& g) const {
    if (img.empty()) detail::raise<shape_error>("random_resized_crop: empty ", img.width, "x", img.height, " image");
    auto const r = region(img.width, img.height, g);
    return resample(img, r[0], r[1], r[0] + r[2], r[1] + r[3], width, height, how);
  }
  std::string spec() const {
    std::string s = width == height ? detail::concat("random_resized_crop=", width)
                                    : detail::concat("random_resized_crop=", width, "x", height);
    if (how == interpolation::bicubic) s += ":bicubic";
    if (scale[0] != 0.08 || scale[1] != 1.0) s += detail::concat(":scale=", scale[0], "/", scale[1]);
    if (ratio[0] != 3.0 / 4.0 || ratio[1] != 4.0 / 3.0) s += detail::concat(":ratio=", ratio[0], "/", ratio[1]);
    return s;
  }
};

/// Mirrors the image left to right with probability p.
struct random_horizontal_flip {
  double p = 0.5;

  explicit random_horizontal_flip(double prob = 0.5) : p(prob) {
    if (!(p >= 0 && p <= 1)) detail::raise<config_error>("random_horizontal_flip: p must be in [0, 1], got ", prob);
  }
  image operator()(image const& img, generator& g) const { return g.uniform() < p ? flip_horizontal(img) : img; }
  std::string spec() const { return detail::concat("flip=", p); }
};

/// Random brightness, contrast and saturation, each factor uniform in [max(0, 1 - v), 1 + v],
/// applied in a random order (torchvision's ColorJitter on PIL images, without hue): Pillow's
/// ImageEnhance blends with black, the mean grey level, and the grey image.
struct color_jitter {
  double brightness = 0, contrast = 0, saturation = 0;

  color_jitter(double b, double c, double s) : brightness(b), contrast(c), saturation(s) {
    if (!(b >= 0 && c >= 0 && s >= 0))
      detail::raise<config_error>("color_jitter: strengths must be >= 0, got ", b, "/", c, "/", s);
  }
  image operator()(image const& img, generator& g) const {
    detail::data_check_image(img, "color_jitter");
    int order[3] = {0, 1, 2};
    for (int i = 2; i > 0; --i) std::swap(order[i], order[g.below(static_cast<std::uint64_t>(i + 1))]);
    double const strength[3] = {brightness, contrast, saturation};
    double factor[3] = {1, 1, 1};
    for (int i = 0; i < 3; ++i)
      if (strength[i] > 0) factor[i] = g.uniform(std::max(0.0, 1 - strength[i]), 1 + strength[i]);
    image out = img;
    for (int k : order)
      if (strength[k] > 0) apply(out, k, static_cast<float>(factor[k]));
    return out;
  }
  std::string spec() const { return detail::concat("color_jitter=", brightness, "/", contrast, "/", saturation); }

  /// Pillow's grey level of an RGB pixel (ITU-R 601-2, fixed point as in Convert.c).
  static int luma(std::uint8_t const* p) { return (p[0] * 19595 + p[1] * 38470 + p[2] * 7471 + 0x8000) >> 16; }

 private:
  static std::uint8_t blend(float degenerate, float value, float factor) {  // Pillow's ImagingBlend
    float const t = degenerate + factor * (value - degenerate);
    return t <= 0.f ? 0 : t >= 255.f ? 255 : static_cast<std::uint8_t>(t);
  }
  static void apply(image& img, int which, float f) {
    int const C = img.channels, colour = C >= 3 ? 3 : 1;  // a 4th (alpha) channel is left alone
    std::size_t const n = static_cast<std::size_t>(img.width) * img.height;
    std::uint8_t* p = img.pixels.data();
    if (which == 0) {  // brightness: blend with black
      for (std::size_t i = 0; i < n; ++i)
        for (int c = 0; c < colour; ++c) p[i * C + c] = blend(0.f, p[i * C + c], f);
    } else if (which == 1) {  // contrast: blend with the mean grey level, rounded
      double sum = 0;
      for (std::size_t i = 0; i < n; ++i) sum += colour == 3 ? luma(p + i * C) : p[i * C];
      float const mean = n ? static_cast<float>(static_cast<int>(sum / static_cast<double>(n) + 0.5)) : 0.f;
      for (std::size_t i = 0; i < n; ++i)
        for (int c = 0; c < colour; ++c) p[i * C + c] = blend(mean, p[i * C + c], f);
    } else if (colour == 3) {  // saturation: blend with the pixel's grey level (none for grey images)
      for (std::size_t i = 0; i < n; ++i) {
        float const l = static_cast<float>(luma(p + i * C));
        for (int c = 0; c < 3; ++c) p[i * C + c] = blend(l, p[i * C + c], f);
      }
    }
  }
};

/// Per-channel mean and standard deviation on 0..255 values: out = (x - mean) / std.
struct normalization {
  std::array<float, 3> mean{0.f, 0.f, 0.f};
  std::array<float, 3> std{1.f, 1.f, 1.f};

  /// mmpretrain's ImageNet statistics, RGB: mean (123.675, 116.28, 103.53), std (58.395, 57.12, 57.375).
  static normalization imagenet() { return {{123.675f, 116.28f, 103.53f}, {58.395f, 57.12f, 57.375f}}; }
  /// Identity: the float values 0..255.
  static normalization none() { return {}; }
  bool is_none() const { return mean == std::array<float, 3>{0, 0, 0} && std == std::array<float, 3>{1, 1, 1}; }
  std::string spec() const {
    if (is_none()) return "normalize=none";
    if (mean == imagenet().mean && std == imagenet().std) return "normalize=imagenet";
    return detail::concat("normalize=", mean[0], "/", mean[1], "/", mean[2], ":", std[0], "/", std[1], "/", std[2]);
  }
};

/// Writes (x - mean[c]) / std[c] (float arithmetic) for every byte of img into out (H * W * C
/// floats, HWC); a 1-channel image uses mean[0] and std[0]. out must not overlap img.
inline void normalize_into(image const& img, normalization const& n, float* out) {
  detail::data_check_image(img, "normalize_into");
  if (img.channels == 4)
    detail::raise<shape_error>("to_tensor: expected an image with 1 or 3 channels, got 4 (drop the alpha channel)");
  for (int c = 0; c < 3; ++c)
    if (!(n.std[static_cast<std::size_t>(c)] != 0.f))
      detail::raise<config_error>("to_tensor: std must be non-zero, got ", n.std[static_cast<std::size_t>(c)]);
  // Float arithmetic as the data preprocessor's (x - mean) / std in float32, in blocks of 8
  // pixels whose channel pattern repeats, so that the compiler vectorises the inner loop.
  std::size_t const count = img.pixels.size();
  std::uint8_t const* p = img.pixels.data();
  constexpr std::size_t block = 24;
  float mean[block], deviation[block];
  for (std::size_t j = 0; j < block; ++j) {
    std::size_t const c = img.channels == 1 ? 0 : j % 3;
    mean[j] = n.mean[c];
    deviation[j] = n.std[c];
  }
  std::size_t i = 0;
  for (; i + block <= count; i += block)
    for (std::size_t j = 0; j < block; ++j) out[i + j] = (static_cast<float>(p[i + j]) - mean[j]) / deviation[j];
  for (std::size_t j = 0; i < count; ++i, ++j) out[i] = (static_cast<float>(p[i]) - mean[j]) / deviation[j];
}

/// The float tensor (H, W, C) of img, normalised per channel: (x - mean) / std on 0..255 values
/// (mmpretrain's data preprocessor). C = 1 or 3.
inline tensor<float, cpu> to_tensor(image const& img, normalization const& n = normalization::none()) {
  detail::data_check_image(img, "to_tensor");
  auto t = tensor<float, cpu>::uninitialized(shape{img.height, img.width, img.channels});
  normalize_into(img, n, t.data());
  return t;
}
/// Same with explicit per-channel mean and std.
inline tensor<float, cpu> to_tensor(image const& img, std::array<float, 3> const& mean, std::array<float, 3> const& std) {
  return to_tensor(img, normalization{mean, std});
}

}  // namespace arcnet::data

namespace arcnet::detail {
template <class T, class = void>
struct data_has_spec : std::false_type {};
template <class T>
struct data_has_spec<T, std::void_t<decltype(std::declval<T const&>().spec())>> : std::true_type {};
template <class T, class = void>
struct data_has_decode_hint : std::false_type {};
template <class T>
struct data_has_decode_hint<T, std::void_t<decltype(std::declval<T const&>().decode_hint())>> : std::true_type {};
}  // namespace arcnet::detail

namespace arcnet::data {

/// Transforms applied in order, then the conversion to a normalised float tensor (H, W, C).
/// Each call seeds its own generator, so a result depends on the image and the seed only.
class pipeline {
 public:
  using transform_function = std::function<image(image const&, generator&)>;

  pipeline() = default;
  /// Parses a spec (see parse()).
  explicit pipeline(std::string const& spec) : pipeline(parse(spec)) {}

  /// Parses comma-separated steps: resize=WxH[:bicubic], resize_short=N[:bicubic],
  /// random_crop=N|WxH[:pad=P], center_crop=N|WxH, random_resized_crop=N|WxH[:bicubic]
  /// [:scale=a/b][:ratio=a/b], flip=P, color_jitter=B/C/S (or one value for all three),
  /// normalize=imagenet|none|m0/m1/m2:s0/s1/s2 (default none). config_error names a bad token.
  static pipeline parse(std::string const& spec);

  /// Appends a transform: any type with image operator()(image const&, generator&) const;
  /// its spec() and decode_hint() are used when it has them.
  template <class Transform>
  pipeline& add(Transform t) {
    static_assert(std::is_invocable_r_v<image, Transform const&, image const&, generator&>,
                  "arcnet::data::pipeline::add: a transform needs image operator()(image const&, generator&) const");
    step s;
    if constexpr (detail::data_has_spec<Transform>::value) s.spec = t.spec();
    else s.spec = "custom";
    if constexpr (detail::data_has_decode_hint<Transform>::value) s.hint = t.decode_hint();
    // A resize followed by a crop inside its result computes only the crop (same pixels, same draws).
    if constexpr (std::is_same_v<Transform, resize> || std::is_same_v<Transform, resize_short>) {
      s.resized_size = [t](int w, int h) { return t.output_size(w, h); };
      s.how = t.how;
    }
    if constexpr (std::is_same_v<Transform, random_crop> || std::is_same_v<Transform, center_crop>)
      s.window = [t](int w, int h, generator& g) { return t.crop_window(w, h, g); };
    s.run = [t = std::move(t)](image const& img, generator& g) -> image { return t(img, g); };
    steps_.push_back(std::move(s));
    return *this;
  }
  /// Sets the final normalisation (default: none, values 0..255).
  pipeline& normalize(normalization n) {
    norm_ = n;
    return *this;
  }
  normalization const& normalize() const { return norm_; }
  std::size_t size() const { return steps_.size(); }

  /// The transformed image (without the conversion to float).
  image transform(image const& img, std::uint64_t seed) const {
    generator g(seed);
    image out;
    image const* current = &img;
    for (std::size_t i = 0; i < steps_.size(); ++i) {
      step const& s = steps_[i];
      if (s.resized_size && i + 1 < steps_.size() && steps_[i + 1].window && !current->empty()) {
        detail::data_check_image(*current, "resize");
        auto const [w, h] = s.resized_size(current->width, current->height);
        if (auto const win = steps_[i + 1].window(w, h, g)) {
          out = detail::data_resample(*current, 0, 0, current->width, current->height, w, h,
                                      s.how == interpolation::bicubic, (*win)[0], (*win)[1], (*win)[2], (*win)[3]);
          current = &out;
          ++i;
          continue;
        }
      }
      out = s.run(*current, g);
      current = &out;
    }
    if (current == &img) return img;
    return out;
  }
  /// The transformed image as a normalised float tensor (H, W, C); seed usually sample_seed(base, epoch, index).
  tensor<float, cpu> operator()(image const& img, std::uint64_t seed) const { return to_tensor(transform(img, seed), norm_); }

  /// The pipeline as a spec that parse() reads back ("custom" for transforms without spec()).
  std::string spec() const {
    std::string s;
    for (auto const& st : steps_) s += st.spec + ",";
    return s + norm_.spec();
  }
  /// The size a JPEG may be decoded at without changing what the first step sees much: the first
  /// step's resize target, or none. Pass it to read_image(path, w, h) for faster decoding of large
  /// JPEGs (results then differ slightly from a full-size decode).
  data::size_hint decode_hint() const { return steps_.empty() ? data::size_hint{} : steps_.front().hint; }

 private:
  struct step {
    std::string spec;
    data::size_hint hint;
    transform_function run;
    std::function<std::pair<int, int>(int, int)> resized_size;  // resize steps: output size
    interpolation how = interpolation::bilinear;
    std::function<std::optional<std::array<int, 4>>(int, int, generator&)> window;  // crop steps
  };
  std::vector<step> steps_;
  normalization norm_;
};

}  // namespace arcnet::data

namespace arcnet::detail {

/// The parser of pipeline::parse; every failure names the token and the whole spec.
class data_spec_parser {
 public:
  explicit data_spec_parser(std::string spec) : spec_(std::move(spec)) {}

  data::pipeline parse() {
    data::pipeline p;
    bool normalized = false;
    if (trim(spec_).empty()) return p;  // no steps, no normalisation
    for (auto const& token : split(spec_, ',')) {
      token_ = token;
      if (token_.empty()) fail("empty step (a stray comma?)");
      auto const eq = token_.find('=');
      if (eq == std::string::npos) fail("expected name=value");
      std::string const name = trim(token_.substr(0, eq));
      auto parts = split(trim(token_.substr(eq + 1)), ':');
      if (parts.empty() || parts[0].empty()) fail("missing value");
      std::string const& value = parts[0];
      if (name == "normalize") {
        if (normalized) fail("normalize given twice");
        normalized = true;
        p.normalize(parse_normalization(parts));
        continue;
      }
      if (normalized) fail("normalize must be the last step");
      if (name == "resize") {
        if (value.find('x') == std::string::npos)
          fail("resize takes WxH (for the short side keeping the aspect ratio use resize_short=N)");
        auto const wh = parse_size(value);
        p.add(data::resize(wh[0], wh[1], parse_options(parts, true).how));
      } else if (name == "resize_short") {
        p.add(data::resize_short(parse_int(value), parse_options(parts, true).how));
      } else if (name == "random_crop") {
        auto const wh = parse_size(value);
        auto const o = parse_options(parts, false, true);
        p.add(data::random_crop(wh[0], wh[1], o.pad));
      } else if (name == "center_crop") {
        auto const wh = parse_size(value);
        parse_options(parts, false);
        p.add(data::center_crop(wh[0], wh[1]));
      } else if (name == "random_resized_crop") {
        auto const wh = parse_size(value);
        auto const o = parse_options(parts, true, false, true);
        p.add(data::random_resized_crop(wh[0], wh[1], o.how, o.scale, o.ratio));
      } else if (name == "flip") {
        no_options(parts);
        double const prob = parse_double(value);
        if (!(prob >= 0 && prob <= 1)) fail("flip probability must be in [0, 1]");
        p.add(data::random_horizontal_flip(prob));
      } else if (name == "color_jitter") {
        no_options(parts);
        auto const v = split(value, '/');
        if (v.size() != 1 && v.size() != 3) fail("color_jitter takes B/C/S or one value");
        double const b = parse_double(v[0]), c = v.size() == 3 ? parse_double(v[1]) : b,
                     s = v.size() == 3 ? parse_double(v[2]) : b;
        if (!(b >= 0 && c >= 0 && s >= 0)) fail("color_jitter strengths must be >= 0");
        p.add(data::color_jitter(b, c, s));
      } else {
        fail("unknown step '" + name +
             "' (known: resize, resize_short, random_crop, center_crop, random_resized_crop, flip, color_jitter, "
             "normalize)");
      }
    }
    return p;
  }

 private:
  struct options {
    data::interpolation how = data::interpolation::bilinear;
    int pad = 0;
    std::array<double, 2> scale{0.08, 1.0};
    std::array<double, 2> ratio{3.0 / 4.0, 4.0 / 3.0};
  };

  [[noreturn]] void fail(std::string const& why) const {
    raise<config_error>("pipeline spec '", spec_, "': bad token '", token_, "': ", why);
  }
  static std::string trim(std::string s) {
    auto const a = s.find_first_not_of(" \t\r\n");
    if (a == std::string::npos) return "";
    auto const b = s.find_last_not_of(" \t\r\n");
    return s.substr(a, b - a + 1);
  }
  static std::vector<std::string> split(std::string const& s, char sep) {
    std::vector<std::string> out;
    std::size_t start = 0;
    for (;;) {
      auto const end = s.find(sep, start);
      out.push_back(trim(s.substr(start, end == std::string::npos ? std::string::npos : end - start)));
      if (end == std::string::npos) return out;
      start = end + 1;
    }
  }
  int parse_int(std::string const& s) const {
    if (s.empty() || s.size() > 9 || s.find_first_not_of("0123456789") != std::string::npos)
      fail("expected a positive integer, got '" + s + "'");
    int const v = std::stoi(s);
    if (v <= 0) fail("expected a positive integer, got '" + s + "'");
    return v;
  }
  double parse_double(std::string const& s) const {
    std::istringstream is(s);
    double v = 0;
    if (s.empty() || !(is >> v) || !is.eof() || !std::isfinite(v)) fail("expected a number, got '" + s + "'");
    return v;
  }
  /// "N" -> N x N, "WxH" -> W x H.
  std::array<int, 2> parse_size(std::string const& s) const {
    auto const x = s.find('x');
    if (x == std::string::npos) {
      int const n = parse_int(s);
      return {n, n};
    }
    return {parse_int(s.substr(0, x)), parse_int(s.substr(x + 1))};
  }
  std::array<double, 2> parse_range(std::string const& s) const {
    auto const v = split(s, '/');
    if (v.size() != 2) fail("expected a range lo/hi, got '" + s + "'");
    std::array<double, 2> r{parse_double(v[0]), parse_double(v[1])};
    if (!(r[0] > 0 && r[0] <= r[1])) fail("expected 0 < lo <= hi, got '" + s + "'");
    return r;
  }
  void no_options(std::vector<std::string> const& parts) const {
    if (parts.size() > 1) fail("unexpected option '" + parts[1] + "'");
  }
  options parse_options(std::vector<std::string> const& parts, bool interp, bool pad = false, bool rrc = false) const {
    options o;
    for (std::size_t i = 1; i < parts.size(); ++i) {
      std::string const& opt = parts[i];
      if (interp && opt == "bilinear") o.how = data::interpolation::bilinear;
      else if (interp && opt == "bicubic") o.how = data::interpolation::bicubic;
      else if (pad && opt.rfind("pad=", 0) == 0) {
        std::string const v = opt.substr(4);
        if (v == "0") o.pad = 0;
        else o.pad = parse_int(v);
      } else if (rrc && opt.rfind("scale=", 0) == 0) {
        o.scale = parse_range(opt.substr(6));
        if (o.scale[1] > 1) fail("scale must be within (0, 1]");
      } else if (rrc && opt.rfind("ratio=", 0) == 0) {
        o.ratio = parse_range(opt.substr(6));
      } else {
        fail("unexpected option '" + opt + "'");
      }
    }
    return o;
  }
  data::normalization parse_normalization(std::vector<std::string> const& parts) const {
    if (parts.size() == 1 && parts[0] == "imagenet") return data::normalization::imagenet();
    if (parts.size() == 1 && parts[0] == "none") return data::normalization::none();
    if (parts.size() != 2) fail("normalize takes imagenet, none or m0/m1/m2:s0/s1/s2");
    auto const m = split(parts[0], '/'), s = split(parts[1], '/');
    if (m.size() != 3 || s.size() != 3) fail("normalize takes imagenet, none or m0/m1/m2:s0/s1/s2");
    data::normalization n;
    for (std::size_t c = 0; c < 3; ++c) {
      n.mean[c] = static_cast<float>(parse_double(m[c]));
      n.std[c] = static_cast<float>(parse_double(s[c]));
      if (n.std[c] == 0.f) fail("std must be non-zero");
    }
    return n;
  }

  std::string spec_, token_;
};

}  // namespace arcnet::detail

namespace arcnet::data {
inline pipeline pipeline::parse(std::string const& spec) { return detail::data_spec_parser(spec).parse(); }
}  // namespace arcnet::data
