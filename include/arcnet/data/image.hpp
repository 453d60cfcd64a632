#pragma once
// image: an 8-bit picture in host memory, HWC (interleaved channels), row-major. Decoders
// always produce 3 channels (RGB); transforms and writers also accept 1 (grey) and 4 (RGBA).
// An aggregate: image{w, h, c, std::move(pixels)} works.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "arcnet/core/error.hpp"

namespace arcnet::data {

/// An 8-bit image, (height, width, channels) row-major; channels = 3 (RGB) after decoding.
struct image {
  int width = 0, height = 0, channels = 3;
  std::vector<std::uint8_t> pixels;  // height * width * channels bytes

  bool empty() const { return width == 0 || height == 0; }
  /// Bytes per row.
  std::size_t stride() const { return static_cast<std::size_t>(width) * static_cast<std::size_t>(channels); }
  std::uint8_t* row(int y) { return pixels.data() + static_cast<std::size_t>(y) * stride(); }
  std::uint8_t const* row(int y) const { return pixels.data() + static_cast<std::size_t>(y) * stride(); }
  /// Channel c of the pixel in row y, column x (unchecked).
  std::uint8_t& at(int y, int x, int c) { return row(y)[static_cast<std::size_t>(x) * channels + c]; }
  std::uint8_t at(int y, int x, int c) const { return row(y)[static_cast<std::size_t>(x) * channels + c]; }
};

/// A black image of width x height with 1, 3 or 4 channels.
inline image make_image(int width, int height, int channels = 3) {
  if (width < 0 || height < 0 || (channels != 1 && channels != 3 && channels != 4))
    detail::raise<shape_error>("make_image: expected a non-negative size and 1, 3 or 4 channels, got ", width,
                               "x", height, "x", channels);
  image img{width, height, channels, {}};
  img.pixels.assign(img.stride() * static_cast<std::size_t>(height), 0);
  return img;
}

}  // namespace arcnet::data

namespace arcnet::detail {
/// Throws shape_error unless img has 1, 3 or 4 channels and pixels.size() == w * h * c.
inline void data_check_image(arcnet::data::image const& img, char const* op) {
  if (img.width < 0 || img.height < 0 || (img.channels != 1 && img.channels != 3 && img.channels != 4) ||
      img.pixels.size() != img.stride() * static_cast<std::size_t>(img.height))
    raise<shape_error>(op, ": expected an image with 1, 3 or 4 channels and width * height * channels bytes, got ",
                       img.width, "x", img.height, "x", img.channels, " with ", img.pixels.size(), " bytes");
}
}  // namespace arcnet::detail
