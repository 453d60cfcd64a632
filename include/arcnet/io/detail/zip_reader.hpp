#pragma once
// A minimal ZIP reader for torch.save archives: central directory (ZIP64 included), stored
// entries only, CRC-32 verified. Every offset and size is checked against the file before use.
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "arcnet/io/detail/binary.hpp"

namespace arcnet::detail {

struct zip_entry {
  std::string name;
  std::uint64_t local_header = 0;  // offset of the local file header
  std::uint64_t size = 0;          // uncompressed size
  std::uint64_t compressed_size = 0;
  std::uint32_t crc = 0;
  std::uint16_t method = 0;  // 0 = stored
  std::uint16_t flags = 0;
};

class zip_archive {
 public:
  /// Parses the central directory of `file`; throws io_error when the file is no ZIP archive or
  /// its directory is damaged.
  explicit zip_archive(io_file& file) : file_(file) { read_directory(); }

  std::vector<zip_entry> const& entries() const { return entries_; }
  /// The entry called `name`, or nullptr.
  zip_entry const* find(std::string const& name) const {
    auto it = index_.find(name);
    return it == index_.end() ? nullptr : &entries_[it->second];
  }
  /// The contents of a stored entry, checked against its CRC-32.
  std::vector<unsigned char> read(zip_entry const& e) {
    if (e.flags & 1u) file_.fail("zip entry '", e.name, "' is encrypted");
    if (e.method != 0)
      file_.fail("zip entry '", e.name, "' is compressed (method ", e.method, e.method == 8 ? ", deflate" : "",
                 "); torch.save writes stored (uncompressed) entries: re-save the checkpoint with torch.save");
    if (e.compressed_size != e.size)
      file_.fail("zip entry '", e.name, "' is stored but its sizes differ (", e.compressed_size, " and ", e.size,
                 " bytes)");
    unsigned char local[30];
    file_.read(e.local_header, local, 30, "zip local header");
    if (io_load_le<std::uint32_t>(local) != 0x04034b50u)
      file_.fail("zip entry '", e.name, "': no local header signature at byte ", e.local_header);
    std::uint64_t const start = e.local_header + 30 + io_load_le<std::uint16_t>(local + 26) +
                                io_load_le<std::uint16_t>(local + 28);
    if (start > directory_offset_ || e.size > directory_offset_ - start)
      file_.fail("zip entry '", e.name, "': its ", e.size, " bytes at byte ", start,
                 " run into the central directory at byte ", directory_offset_, " (truncated or damaged file)");
    auto bytes = file_.read(start, e.size, "zip entry");
    auto crc = io_crc32(bytes.data(), bytes.size());
    if (crc != e.crc)
      file_.fail("zip entry '", e.name, "' is damaged: CRC-32 ", crc, " does not match the recorded ", e.crc);
    return bytes;
  }

 private:
  void read_directory() {
    std::uint64_t const size = file_.size();
    if (size < 22) file_.fail("not a ZIP archive or truncated: ", size, " bytes, no end-of-central-directory record");
    // The end record is the last 22 bytes plus a comment of at most 65535 bytes.
    std::uint64_t const tail_size = size < 22 + 65535 ? size : 22 + 65535;
    auto tail = file_.read(size - tail_size, tail_size, "zip end record");
    std::uint64_t eocd = 0;
    bool found = false;
    for (std::uint64_t i = tail_size - 22 + 1; i-- > 0;) {
      if (io_load_le<std::uint32_t>(&tail[i]) == 0x06054b50u &&
          i + 22 + io_load_le<std::uint16_t>(&tail[i + 20]) <= tail_size) {
        eocd = size - tail_size + i;
        found = true;
        break;
      }
    }
    if (!found) file_.fail("not a ZIP archive or truncated: no end-of-central-directory record");
    unsigned char const* e = &tail[eocd - (size - tail_size)];
    std::uint64_t count = io_load_le<std::uint16_t>(e + 10);
    std::uint64_t dir_size = io_load_le<std::uint32_t>(e + 12);
    std::uint64_t dir_offset = io_load_le<std::uint32_t>(e + 16);
    std::uint64_t dir_end_limit = eocd;
    if (count == 0xffffu || dir_size == 0xffffffffu || dir_offset == 0xffffffffu) {
      // ZIP64: a locator right before the end record points at the ZIP64 end record.
      if (eocd < 20) file_.fail("zip: ZIP64 end-of-central-directory locator is missing");
      unsigned char loc[20];
      file_.read(eocd - 20, loc, 20, "zip64 locator");
      if (io_load_le<std::uint32_t>(loc) != 0x07064b50u)
        file_.fail("zip: ZIP64 end-of-central-directory locator is missing");
      std::uint64_t const rec = io_load_le<std::uint64_t>(loc + 8);
      if (rec > eocd - 20 || eocd - 20 - rec < 56) file_.fail("zip: ZIP64 end record offset ", rec, " is invalid");
      unsigned char z[56];
      file_.read(rec, z, 56, "zip64 end record");
      if (io_load_le<std::uint32_t>(z) != 0x06064b50u) file_.fail("zip: no ZIP64 end record at byte ", rec);
      count = io_load_le<std::uint64_t>(z + 32);
      dir_size = io_load_le<std::uint64_t>(z + 40);
      dir_offset = io_load_le<std::uint64_t>(z + 48);
      dir_end_limit = rec;
    }
    if (dir_offset > dir_end_limit || dir_size > dir_end_limit - dir_offset)
      file_.fail("zip: central directory [", dir_offset, ", +", dir_size, ") lies outside the file (truncated?)");
    if (count > dir_size / 46) file_.fail("zip: ", count, " entries cannot fit a central directory of ", dir_size, " bytes");
    directory_offset_ = dir_offset;
    auto dir = file_.read(dir_offset, dir_size, "zip central directory");
    std::uint64_t p = 0;
    entries_.reserve(static_cast<std::size_t>(count));
    for (std::uint64_t n = 0; n < count; ++n) {
      if (dir_size - p < 46 || io_load_le<std::uint32_t>(&dir[p]) != 0x02014b50u)
        file_.fail("zip: central directory entry ", n, " is damaged");
      unsigned char const* h = &dir[p];
      zip_entry z;
      z.flags = io_load_le<std::uint16_t>(h + 8);
      z.method = io_load_le<std::uint16_t>(h + 10);
      z.crc = io_load_le<std::uint32_t>(h + 16);
      z.compressed_size = io_load_le<std::uint32_t>(h + 20);
      z.size = io_load_le<std::uint32_t>(h + 24);
      std::uint64_t const name_len = io_load_le<std::uint16_t>(h + 28), extra_len = io_load_le<std::uint16_t>(h + 30),
                          comment_len = io_load_le<std::uint16_t>(h + 32);
      z.local_header = io_load_le<std::uint32_t>(h + 42);
      if (dir_size - p - 46 < name_len + extra_len + comment_len)
        file_.fail("zip: central directory entry ", n, " runs past the directory");
      z.name.assign(reinterpret_cast<char const*>(h + 46), static_cast<std::size_t>(name_len));
      read_zip64_extra(z, h + 46 + name_len, extra_len);
      if (!index_.emplace(z.name, entries_.size()).second) file_.fail("zip: entry '", z.name, "' appears twice");
      entries_.push_back(std::move(z));
      p += 46 + name_len + extra_len + comment_len;
    }
  }

  // ZIP64 extended information (id 0x0001) holds, in order, the fields whose 32-bit value is 0xFFFFFFFF.
  void read_zip64_extra(zip_entry& z, unsigned char const* extra, std::uint64_t len) {
    bool const need_size = z.size == 0xffffffffu, need_csize = z.compressed_size == 0xffffffffu,
               need_offset = z.local_header == 0xffffffffu;
    if (!need_size && !need_csize && !need_offset) return;
    for (std::uint64_t q = 0; q + 4 <= len;) {
      std::uint16_t const id = io_load_le<std::uint16_t>(extra + q);
      std::uint64_t const field = io_load_le<std::uint16_t>(extra + q + 2);
      if (field > len - q - 4) break;
      if (id == 0x0001u) {
        unsigned char const* f = extra + q + 4;
        std::uint64_t left = field;
        auto take = [&](std::uint64_t& v) {
          if (left < 8) file_.fail("zip: entry '", z.name, "' has a short ZIP64 extra field");
          v = io_load_le<std::uint64_t>(f);
          f += 8;
          left -= 8;
        };
        if (need_size) take(z.size);
        if (need_csize) take(z.compressed_size);
        if (need_offset) take(z.local_header);
        return;
      }
      q += 4 + field;
    }
    file_.fail("zip: entry '", z.name, "' has 32-bit sizes of 0xFFFFFFFF but no ZIP64 extra field");
  }

  io_file& file_;
  std::vector<zip_entry> entries_;
  std::unordered_map<std::string, std::size_t> index_;
  std::uint64_t directory_offset_ = 0;
};

}  // namespace arcnet::detail
