#pragma once
// Image decoding: JPEG (libjpeg-turbo's TurboJPEG), PNG (libpng), PGM / PPM. The format is
// chosen from the content (magic bytes), never from the file name. Every result is 8-bit RGB:
// grey is replicated, alpha dropped, CMYK converted (mmpretrain's to_rgb, Pillow's convert("RGB")).
// EXIF orientation is not applied (as Pillow's Image.open and torchvision's loader).
// Every failure is an io_error naming the file; nothing aborts. Link arcnet::data.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "arcnet/core/error.hpp"
#include "arcnet/data/detail/image_file.hpp"
#include "arcnet/data/detail/jpeg_codec.hpp"
#include "arcnet/data/detail/png_codec.hpp"
#include "arcnet/data/detail/pnm_codec.hpp"
#include "arcnet/data/image.hpp"

namespace arcnet::data {

/// Decodes JPEG / PNG / PGM / PPM by content into an RGB image; `name` is used in messages only.
/// A JPEG much larger than min_width x min_height is decoded at 1/2, 1/4 or 1/8 scale
/// (TurboJPEG's DCT scaling), never below the hint; 0, 0 means full size. Other formats ignore it.
inline image decode_image(std::uint8_t const* bytes, std::size_t size, std::string const& name, int min_width,
                          int min_height) {
  if (size == 0 || bytes == nullptr) detail::raise<io_error>("cannot decode image '", name, "': empty file (0 bytes)");
  auto const format = detail::data_sniff_format(bytes, size);
  switch (format) {
    case detail::data_image_format::jpeg:
      return detail::data_decode_jpeg(bytes, size, name, min_width, min_height);
    case detail::data_image_format::png:
      return detail::data_decode_png(bytes, size, name);
    case detail::data_image_format::pnm:
      return detail::data_decode_pnm(bytes, size, name);
    case detail::data_image_format::unknown:
      detail::raise<io_error>("cannot decode image '", name,
                              "': unknown format (not JPEG, PNG, PGM or PPM; the file starts with ",
                              size < 4 ? size : 4, " bytes unlike any of their signatures)");
    default:
      detail::raise<io_error>("cannot decode image '", name, "': unsupported format ",
                              detail::data_format_name(format), " (arcnet reads JPEG, PNG, PGM and PPM)");
  }
}

/// Decodes JPEG / PNG / PGM / PPM by content (magic bytes), whatever the extension; `name` only for messages.
inline image decode_image(std::uint8_t const* bytes, std::size_t size, std::string const& name) {
  return decode_image(bytes, size, name, 0, 0);
}

/// Reads and decodes a file; io_error naming the file on a missing, empty, truncated, corrupt or unsupported file.
inline image read_image(std::string const& path) {
  auto const bytes = detail::data_read_file_bytes(path, "read_image");
  return decode_image(bytes.data(), bytes.size(), path, 0, 0);
}

/// Same, with a size hint: a JPEG much larger than min_width x min_height is decoded at 1/2,
/// 1/4 or 1/8 scale (TurboJPEG), never going below the hint.
inline image read_image(std::string const& path, int min_width, int min_height) {
  auto const bytes = detail::data_read_file_bytes(path, "read_image");
  return decode_image(bytes.data(), bytes.size(), path, min_width, min_height);
}

}  // namespace arcnet::data
