#pragma once
// Netpbm grey and colour maps: P2 / P5 (PGM) and P3 / P6 (PPM), maxval 1..65535.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "arcnet/core/error.hpp"
#include "arcnet/data/detail/image_file.hpp"
#include "arcnet/data/image.hpp"

namespace arcnet::detail {

/// A cursor over a PNM file's header tokens (decimal numbers, whitespace, '#' comments).
struct data_pnm_cursor {
  std::uint8_t const* b;
  std::size_t n, pos;

  static bool space(std::uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
  void skip_space_and_comments() {
    while (pos < n) {
      if (space(b[pos])) {
        ++pos;
      } else if (b[pos] == '#') {
        while (pos < n && b[pos] != '\n' && b[pos] != '\r') ++pos;
      } else {
        break;
      }
    }
  }
  /// The next unsigned number, or -1 when there is none (end of data or another character).
  long long number() {
    skip_space_and_comments();
    if (pos >= n || b[pos] < '0' || b[pos] > '9') return -1;
    long long v = 0;
    while (pos < n && b[pos] >= '0' && b[pos] <= '9') {
      v = v * 10 + (b[pos++] - '0');
      if (v > (1LL << 40)) return -1;
    }
    return v;
  }
};

/// Decodes a PGM or PPM to RGB (grey replicated); samples are scaled to 0..255 when maxval != 255.
inline data::image data_decode_pnm(std::uint8_t const* bytes, std::size_t size, std::string const& name) {
  auto fail = [&](auto const&... what) { raise<io_error>("cannot decode image '", name, "': ", what...); };
  char const kind = static_cast<char>(bytes[1]);
  if (kind != '2' && kind != '3' && kind != '5' && kind != '6')
    fail("unsupported PNM type P", kind, " (only P2, P3, P5 and P6 are read)");
  bool const ascii = kind == '2' || kind == '3';
  int const in_channels = (kind == '3' || kind == '6') ? 3 : 1;
  data_pnm_cursor cur{bytes, size, 2};
  long long const width = cur.number(), height = cur.number(), maxval = cur.number();
  if (width <= 0 || height <= 0 || maxval <= 0 || maxval > 65535)
    fail("corrupt PNM header (expected width, height and maxval in 1..65535)");
  if (static_cast<unsigned long long>(width) * static_cast<unsigned long long>(height) > data_max_image_pixels)
    fail("PNM of ", width, "x", height, " pixels is larger than the limit of ", data_max_image_pixels, " pixels");
  std::size_t const samples = static_cast<std::size_t>(width) * static_cast<std::size_t>(height) * in_channels;
  int const sample_bytes = maxval > 255 ? 2 : 1;
  auto const scale = [maxval](long long v) {
    if (v > maxval) v = maxval;  // out-of-range samples are clamped, not trusted
    return static_cast<std::uint8_t>(maxval == 255 ? v : (v * 255 + maxval / 2) / maxval);
  };
  // ASCII samples take at least two bytes each (a digit and a separator, the last one's optional):
  // check before allocating, so that a few header bytes cannot claim a huge buffer.
  if (ascii && (cur.pos >= size || (size - cur.pos + 1) / 2 < samples))
    fail("truncated PNM: the header says ", width, "x", height, "x", in_channels, " samples, but the ",
         cur.pos >= size ? 0 : size - cur.pos, " bytes after it hold fewer");
  std::vector<std::uint8_t> grey_or_rgb(samples);
  if (ascii) {
    for (std::size_t i = 0; i < samples; ++i) {
      long long const v = cur.number();
      if (v < 0) fail("truncated or corrupt PNM data (sample ", i, " of ", samples, " missing)");
      grey_or_rgb[i] = scale(v);
    }
  } else {
    if (cur.pos >= size || !data_pnm_cursor::space(bytes[cur.pos])) fail("corrupt PNM header (no whitespace after maxval)");
    std::size_t const start = cur.pos + 1, need = samples * sample_bytes;
    if (size - start < need)
      fail("truncated PNM: the header says ", width, "x", height, "x", in_channels, " samples of ", sample_bytes,
           " byte(s) (", need, " bytes), the file has ", size - start);
    std::uint8_t const* d = bytes + start;
    for (std::size_t i = 0; i < samples; ++i)
      grey_or_rgb[i] = scale(sample_bytes == 1 ? d[i] : (d[2 * i] << 8 | d[2 * i + 1]));  // 16-bit: big-endian
  }
  int const w = static_cast<int>(width), h = static_cast<int>(height);
  if (in_channels == 3) return data::image{w, h, 3, std::move(grey_or_rgb)};
  std::vector<std::uint8_t> rgb(samples * 3);
  for (std::size_t i = 0; i < samples; ++i) rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = grey_or_rgb[i];
  return data::image{w, h, 3, std::move(rgb)};
}

/// A binary PNM of img: P5 for 1 channel, P6 for 3.
inline std::vector<std::uint8_t> data_encode_pnm(data::image const& img, char const* op) {
  data_check_image(img, op);
  if (img.channels == 4) raise<shape_error>(op, ": PNM holds 1 (P5) or 3 (P6) channels, got an image with 4");
  std::string const header = std::string(img.channels == 1 ? "P5" : "P6") + "\n" + std::to_string(img.width) + " " +
                             std::to_string(img.height) + "\n255\n";
  std::vector<std::uint8_t> out(header.begin(), header.end());
  out.insert(out.end(), img.pixels.begin(), img.pixels.end());
  return out;
}

}  // namespace arcnet::detail
