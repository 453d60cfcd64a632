#pragma once
// PNG through libpng. Decoding uses the classic API for Pillow's semantics (16-bit samples keep
// their high byte, gamma chunks are ignored, alpha and tRNS are dropped by convert("RGB")).
// libpng reports errors by longjmp: the only frames it jumps over are libpng's own and two small
// functions below that hold no object with a destructor, so nothing is skipped.
#include <csetjmp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <png.h>

#include "arcnet/core/error.hpp"
#include "arcnet/data/detail/image_file.hpp"
#include "arcnet/data/image.hpp"

namespace arcnet::detail {

/// libpng's structures and the in-memory source; destroys the structures on scope exit.
struct data_png_reader {
  png_structp png = nullptr;
  png_infop info = nullptr;
  std::uint8_t const* data = nullptr;
  std::size_t size = 0, pos = 0;
  int source_bits_per_pixel = 0;  // as stored in the file, before the conversion to 8-bit RGB(A)
  char message[200] = {};

  data_png_reader(std::uint8_t const* d, std::size_t n) : data(d), size(n) {}
  data_png_reader(data_png_reader const&) = delete;
  data_png_reader& operator=(data_png_reader const&) = delete;
  ~data_png_reader() {
    if (png) png_destroy_read_struct(&png, info ? &info : nullptr, nullptr);
  }
};

inline void data_png_on_error(png_structp png, png_const_charp message) {
  auto* r = static_cast<data_png_reader*>(png_get_error_ptr(png));
  std::snprintf(r->message, sizeof r->message, "%s", message ? message : "unknown libpng error");
  png_longjmp(png, 1);
}
inline void data_png_on_warning(png_structp, png_const_charp) {}  // e.g. bad ancillary CRC: ignored, as Pillow does

inline void data_png_on_read(png_structp png, png_bytep out, png_size_t n) {
  auto* r = static_cast<data_png_reader*>(png_get_io_ptr(png));
  if (n > r->size - r->pos) png_error(png, "unexpected end of data (truncated file)");
  std::memcpy(out, r->data + r->pos, n);
  r->pos += n;
}

/// Reads the header and sets up the conversion to 8-bit RGB or RGBA; false on a libpng error.
/// Holds no object with a destructor: png_longjmp returns here.
inline bool data_png_read_header(data_png_reader& r) {
  if (setjmp(png_jmpbuf(r.png))) return false;
  png_read_info(r.png, r.info);
  int const color_type = png_get_color_type(r.png, r.info);
  int const bit_depth = png_get_bit_depth(r.png, r.info);
  r.source_bits_per_pixel = bit_depth * png_get_channels(r.png, r.info);
  if (bit_depth == 16) png_set_strip_16(r.png);  // high byte, as Pillow
  if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(r.png);
  if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(r.png);
  if (color_type == PNG_COLOR_TYPE_GRAY || color_type == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(r.png);
  png_set_interlace_handling(r.png);
  png_read_update_info(r.png, r.info);
  return true;
}

/// Reads all rows and the chunks after them (their CRCs are checked); false on a libpng error.
inline bool data_png_read_rows(data_png_reader& r, png_bytepp rows) {
  if (setjmp(png_jmpbuf(r.png))) return false;
  png_read_image(r.png, rows);
  png_read_end(r.png, nullptr);
  return true;
}

/// Decodes a PNG to RGB (alpha dropped). `name` only for messages.
inline data::image data_decode_png(std::uint8_t const* bytes, std::size_t size, std::string const& name) {
  auto fail = [&](char const* what) {
    raise<io_error>("cannot decode image '", name, "': ", what, " PNG");
  };
  data_png_reader r(bytes, size);
  r.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &r, data_png_on_error, data_png_on_warning);
  if (!r.png) fail("out of memory reading");
  r.info = png_create_info_struct(r.png);
  if (!r.info) fail("out of memory reading");
  png_set_read_fn(r.png, &r, data_png_on_read);
  if (!data_png_read_header(r)) raise<io_error>("cannot decode image '", name, "': corrupt PNG (", r.message, ")");
  png_uint_32 const width = png_get_image_width(r.png, r.info), height = png_get_image_height(r.png, r.info);
  int const channels = png_get_channels(r.png, r.info);
  std::size_t const rowbytes = png_get_rowbytes(r.png, r.info);
  if (width == 0 || height == 0 || static_cast<std::size_t>(width) * height > data_max_image_pixels)
    raise<io_error>("cannot decode image '", name, "': PNG of ", width, "x", height,
                    " pixels is empty or larger than the limit of ", data_max_image_pixels, " pixels");
  // Deflate compresses at most 1032:1, so the file must hold at least 1/1032 of the image's
  // packed samples (before the expansion to 8-bit RGB). A header that claims more is truncated or
  // corrupt: check before allocating the rows, so that a few bytes cannot claim a huge buffer.
  std::uint64_t const packed = static_cast<std::uint64_t>(width) * height * r.source_bits_per_pixel / 8;
  if (packed / 1032 > size)
    raise<io_error>("cannot decode image '", name, "': truncated or corrupt PNG: the header says ", width, "x", height,
                    " pixels, which need more than the ", size, " bytes of the file");
  if ((channels != 3 && channels != 4) || rowbytes != static_cast<std::size_t>(width) * channels)
    raise<io_error>("cannot decode image '", name, "': unsupported PNG layout (", channels, " channels, ", rowbytes,
                    " bytes per row)");
  std::vector<std::uint8_t> pixels(rowbytes * height);
  std::vector<png_bytep> rows(height);
  for (png_uint_32 y = 0; y < height; ++y) rows[y] = pixels.data() + y * rowbytes;
  if (!data_png_read_rows(r, rows.data()))
    raise<io_error>("cannot decode image '", name, "': corrupt PNG (", r.message, ")");
  int const w = static_cast<int>(width), h = static_cast<int>(height);
  if (channels == 3) return data::image{w, h, 3, std::move(pixels)};
  std::size_t const n = static_cast<std::size_t>(width) * height;  // RGBA -> RGB in place
  for (std::size_t i = 0; i < n; ++i) {
    pixels[3 * i + 0] = pixels[4 * i + 0];
    pixels[3 * i + 1] = pixels[4 * i + 1];
    pixels[3 * i + 2] = pixels[4 * i + 2];
  }
  pixels.resize(n * 3);
  return data::image{w, h, 3, std::move(pixels)};
}

/// A PNG of img (1, 3 or 4 channels, 8-bit), through libpng's simplified writer (no longjmp).
inline std::vector<std::uint8_t> data_encode_png(data::image const& img, char const* op) {
  data_check_image(img, op);
  if (img.empty()) raise<shape_error>(op, ": cannot write an empty ", img.width, "x", img.height, " image as PNG");
  png_image info;
  std::memset(&info, 0, sizeof info);
  info.version = PNG_IMAGE_VERSION;
  info.width = static_cast<png_uint_32>(img.width);
  info.height = static_cast<png_uint_32>(img.height);
  info.format = img.channels == 1 ? PNG_FORMAT_GRAY : img.channels == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_RGBA;
  png_alloc_size_t size = 0;
  auto const stride = static_cast<png_int_32>(img.stride());
  if (!png_image_write_to_memory(&info, nullptr, &size, 0, img.pixels.data(), stride, nullptr))
    raise<io_error>(op, ": PNG encoding failed: ", info.message);
  std::vector<std::uint8_t> out(size);
  if (!png_image_write_to_memory(&info, out.data(), &size, 0, img.pixels.data(), stride, nullptr))
    raise<io_error>(op, ": PNG encoding failed: ", info.message);
  out.resize(size);
  png_image_free(&info);
  return out;
}

}  // namespace arcnet::detail
