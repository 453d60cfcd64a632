#pragma once
// Whole-file reads and writes for the image codecs, format sniffing by magic bytes, and the
// decompression-bomb limit shared by the decoders. Private to arcnet/data.
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "arcnet/core/error.hpp"

namespace arcnet::detail {

#ifndef ARCNET_MAX_IMAGE_PIXELS
/// Largest pixel count a decoder accepts. Define it (on every translation unit) to lower it; the
/// fuzz targets do, so that one input stays well under a second.
#define ARCNET_MAX_IMAGE_PIXELS 178956970
#endif
/// Largest pixel count a decoder accepts (Pillow's DecompressionBombError threshold,
/// 2 x MAX_IMAGE_PIXELS): a corrupt header must not make us allocate gigabytes.
inline constexpr std::size_t data_max_image_pixels = ARCNET_MAX_IMAGE_PIXELS;

enum class data_image_format { unknown, jpeg, png, pnm, gif, bmp, webp, tiff };

/// The container format of `bytes`, from its first bytes only.
inline data_image_format data_sniff_format(std::uint8_t const* b, std::size_t n) {
  auto starts = [&](char const* magic, std::size_t m) { return n >= m && std::memcmp(b, magic, m) == 0; };
  if (n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return data_image_format::jpeg;
  if (starts("\x89PNG\r\n\x1a\n", 8)) return data_image_format::png;
  if (n >= 3 && b[0] == 'P' && b[1] >= '1' && b[1] <= '6' &&
      (b[2] == ' ' || b[2] == '\t' || b[2] == '\n' || b[2] == '\r' || b[2] == '#'))
    return data_image_format::pnm;
  if (starts("GIF87a", 6) || starts("GIF89a", 6)) return data_image_format::gif;
  if (starts("BM", 2)) return data_image_format::bmp;
  if (n >= 12 && starts("RIFF", 4) && std::memcmp(b + 8, "WEBP", 4) == 0) return data_image_format::webp;
  if (starts("II*\0", 4) || starts("MM\0*", 4)) return data_image_format::tiff;
  return data_image_format::unknown;
}

inline char const* data_format_name(data_image_format f) {
  switch (f) {
    case data_image_format::jpeg: return "JPEG";
    case data_image_format::png: return "PNG";
    case data_image_format::pnm: return "PNM";
    case data_image_format::gif: return "GIF";
    case data_image_format::bmp: return "BMP";
    case data_image_format::webp: return "WebP";
    case data_image_format::tiff: return "TIFF";
    default: return "unknown";
  }
}

/// Closes a FILE* on scope exit.
struct data_file_closer {
  std::FILE* f;
  ~data_file_closer() {
    if (f) std::fclose(f);
  }
};

/// The whole contents of `path`; io_error naming the file when it cannot be opened or read.
inline std::vector<std::uint8_t> data_read_file_bytes(std::string const& path, char const* op) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) raise<io_error>(op, ": cannot open '", path, "': ", std::strerror(errno));
  data_file_closer closer{f};
  std::vector<std::uint8_t> bytes;
  std::uint8_t chunk[1 << 16];
  for (;;) {
    std::size_t const got = std::fread(chunk, 1, sizeof chunk, f);
    bytes.insert(bytes.end(), chunk, chunk + got);
    if (got < sizeof chunk) break;
  }
  if (std::ferror(f)) raise<io_error>(op, ": cannot read '", path, "': ", std::strerror(errno));
  return bytes;
}

/// Writes `n` bytes to `path` (replacing it); io_error naming the file on failure.
inline void data_write_file_bytes(std::string const& path, void const* data, std::size_t n, char const* op) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) raise<io_error>(op, ": cannot create '", path, "': ", std::strerror(errno));
  data_file_closer closer{f};
  if (n > 0 && std::fwrite(data, 1, n, f) != n) raise<io_error>(op, ": cannot write '", path, "': ", std::strerror(errno));
  closer.f = nullptr;
  if (std::fclose(f) != 0) raise<io_error>(op, ": cannot write '", path, "': ", std::strerror(errno));
}

}  // namespace arcnet::detail
