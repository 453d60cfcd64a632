#pragma once
// Image writers (PNG, JPEG, binary PGM / PPM), for fixtures, tools and saving results. Each
// accepts 1-channel (grey) and 3-channel (RGB) images, PNG also 4-channel (RGBA). Link arcnet::data.
#include <cstdint>
#include <string>
#include <vector>

#include "arcnet/data/detail/image_file.hpp"
#include "arcnet/data/detail/jpeg_codec.hpp"
#include "arcnet/data/detail/png_codec.hpp"
#include "arcnet/data/detail/pnm_codec.hpp"
#include "arcnet/data/image.hpp"

namespace arcnet::data {

/// The bytes of a PNG file holding img (1, 3 or 4 channels).
inline std::vector<std::uint8_t> encode_png(image const& img) { return detail::data_encode_png(img, "encode_png"); }
/// The bytes of a JPEG file holding img (1 or 3 channels; RGB with 4:2:0 chroma), quality 1..100.
inline std::vector<std::uint8_t> encode_jpeg(image const& img, int quality = 90) {
  return detail::data_encode_jpeg(img, quality, "encode_jpeg");
}
/// The bytes of a binary PNM: P5 for 1 channel, P6 for 3.
inline std::vector<std::uint8_t> encode_pnm(image const& img) { return detail::data_encode_pnm(img, "encode_pnm"); }

/// Writes img as PNG to path (replacing the file); io_error naming it on failure.
inline void write_png(std::string const& path, image const& img) {
  auto const bytes = detail::data_encode_png(img, "write_png");
  detail::data_write_file_bytes(path, bytes.data(), bytes.size(), "write_png");
}
/// Writes img as JPEG (1 or 3 channels) at quality 1..100.
inline void write_jpeg(std::string const& path, image const& img, int quality = 90) {
  auto const bytes = detail::data_encode_jpeg(img, quality, "write_jpeg");
  detail::data_write_file_bytes(path, bytes.data(), bytes.size(), "write_jpeg");
}
/// Writes img as binary PNM: P5 for 1 channel, P6 for 3.
inline void write_pnm(std::string const& path, image const& img) {
  auto const bytes = detail::data_encode_pnm(img, "write_pnm");
  detail::data_write_file_bytes(path, bytes.data(), bytes.size(), "write_pnm");
}

}  // namespace arcnet::data
