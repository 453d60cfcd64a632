#pragma once
// Byte-level machinery of the checkpoint readers: little-endian loads and stores, checked
// size arithmetic, CRC-32, and bounds-checked reads of one file.
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <system_error>
#include <vector>

#include "arcnet/core/error.hpp"

namespace arcnet::detail {

inline bool io_host_is_little_endian() {
  std::uint16_t const one = 1;
  unsigned char first = 0;
  std::memcpy(&first, &one, 1);
  return first == 1;
}

/// Reads an unsigned little-endian integer of sizeof(U) bytes at p.
template <class U>
U io_load_le(unsigned char const* p) {
  U v = 0;
  for (std::size_t i = 0; i < sizeof(U); ++i) v = static_cast<U>(v | (static_cast<U>(p[i]) << (8 * i)));
  return v;
}
/// Appends v as sizeof(U) little-endian bytes.
template <class U>
void io_store_le(std::string& out, U v) {
  for (std::size_t i = 0; i < sizeof(U); ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xffu));
}

/// a * b and a + b on sizes; false when the result would exceed `limit`.
inline bool io_checked_mul(std::uint64_t a, std::uint64_t b, std::uint64_t& out,
                           std::uint64_t limit = std::numeric_limits<std::uint64_t>::max()) {
  if (a != 0 && b > limit / a) return false;
  out = a * b;
  return true;
}
inline bool io_checked_add(std::uint64_t a, std::uint64_t b, std::uint64_t& out,
                           std::uint64_t limit = std::numeric_limits<std::uint64_t>::max()) {
  if (a > limit || b > limit - a) return false;
  out = a + b;
  return true;
}

/// CRC-32 (ISO-HDLC, the ZIP checksum), slicing by 4; pass the previous value to continue.
inline std::uint32_t io_crc32(unsigned char const* data, std::size_t n, std::uint32_t crc = 0) {
  using table = std::array<std::array<std::uint32_t, 256>, 4>;
  static table const t = [] {
    table r{};
    for (std::uint32_t i = 0; i < 256; ++i) {
      std::uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1u) ? 0xedb88320u ^ (c >> 1) : c >> 1;
      r[0][i] = c;
    }
    for (std::uint32_t i = 0; i < 256; ++i)
      for (int s = 1; s < 4; ++s) r[s][i] = (r[s - 1][i] >> 8) ^ r[0][r[s - 1][i] & 0xffu];
    return r;
  }();
  crc = ~crc;
  while (n >= 4) {
    crc ^= io_load_le<std::uint32_t>(data);
    crc = t[3][crc & 0xffu] ^ t[2][(crc >> 8) & 0xffu] ^ t[1][(crc >> 16) & 0xffu] ^ t[0][crc >> 24];
    data += 4;
    n -= 4;
  }
  while (n--) crc = t[0][(crc ^ *data++) & 0xffu] ^ (crc >> 8);
  return ~crc;
}

/// Read-only random access to one regular file; every read is checked against the file size,
/// and every error is an io_error that names the operation and the file.
class io_file {
 public:
  io_file(std::string path, std::string op) : path_(std::move(path)), op_(std::move(op)) {
    std::error_code ec;
    auto status = std::filesystem::status(path_, ec);
    if (ec || !std::filesystem::exists(status)) fail("cannot open: no such file");
    if (std::filesystem::is_directory(status)) fail("cannot open: it is a directory");
    if (!std::filesystem::is_regular_file(status)) fail("cannot open: not a regular file");
    in_.open(path_, std::ios::binary);
    if (!in_) fail("cannot open: ", std::strerror(errno));
    in_.seekg(0, std::ios::end);
    auto end = in_.tellg();
    if (!in_ || end < 0) fail("cannot determine the file size");
    size_ = static_cast<std::uint64_t>(end);
  }

  std::uint64_t size() const { return size_; }
  std::string const& path() const { return path_; }

  /// Copies bytes [offset, offset + n) into dst; throws when they are not all in the file.
  void read(std::uint64_t offset, void* dst, std::uint64_t n, char const* what) {
    if (offset > size_ || n > size_ - offset)
      fail(what, ": bytes [", offset, ", ", offset + n, ") lie past the end of the file (", size_, " bytes)");
    if (n == 0) return;
    in_.clear();
    in_.seekg(static_cast<std::streamoff>(offset));
    in_.read(static_cast<char*>(dst), static_cast<std::streamsize>(n));
    if (!in_ || static_cast<std::uint64_t>(in_.gcount()) != n) fail(what, ": read error at byte ", offset);
  }
  std::vector<unsigned char> read(std::uint64_t offset, std::uint64_t n, char const* what) {
    if (offset > size_ || n > size_ - offset)
      fail(what, ": bytes [", offset, ", ", offset + n, ") lie past the end of the file (", size_, " bytes)");
    std::vector<unsigned char> bytes(static_cast<std::size_t>(n));  // n <= file size: bounded
    read(offset, bytes.data(), n, what);
    return bytes;
  }

  /// Throws io_error "arcnet: <op>: '<path>': <parts>".
  template <class... Parts>
  [[noreturn]] void fail(Parts const&... parts) const {
    raise<io_error>(op_, ": '", path_, "': ", parts...);
  }

 private:
  std::string path_, op_;
  std::ifstream in_;
  std::uint64_t size_ = 0;
};

}  // namespace arcnet::detail
