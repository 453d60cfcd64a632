#pragma once
// IDX files (MNIST, Fashion-MNIST): a big-endian header (two zero bytes, the element type
// 0x08 = unsigned byte, the number of dimensions, then each dimension as a 32-bit integer)
// followed by the data. Read whole into memory, gzip-compressed (".gz", as Debian's
// dataset-fashion-mnist installs them under /usr/share/datasets/fashion-mnist/) or plain.
#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "arcnet/core/error.hpp"
#include "arcnet/core/shape.hpp"
#include "arcnet/core/tensor.hpp"
#include "arcnet/data/image.hpp"

namespace arcnet::detail {
/// Bytes as hexadecimal digits, for messages.
inline std::string idx_hex(std::uint8_t const* p, int n) {
  static char const digits[] = "0123456789abcdef";
  std::string s;
  for (int i = 0; i < n; ++i) {
    s += digits[p[i] >> 4];
    s += digits[p[i] & 15];
  }
  return s;
}
}  // namespace arcnet::detail

namespace arcnet::data {

/// The contents of one unsigned-byte IDX file: its dimensions and its bytes, row-major.
struct idx_array {
  std::vector<index_t> dims;
  std::vector<std::uint8_t> data;
};

/// Reads an IDX file of unsigned bytes with `expected_rank` dimensions (0: any), gzip or plain.
/// io_error naming the file for a bad magic number, another element type or rank, or data that
/// is shorter or longer than the dimensions say (a truncated download).
inline idx_array read_idx(std::string const& path, int expected_rank = 0) {
  gzFile f = gzopen(path.c_str(), "rb");  // reads plain files too ("transparent" mode)
  if (!f) detail::raise<io_error>("idx: cannot open '", path, "'");
  std::vector<std::uint8_t> bytes;
  constexpr unsigned chunk = 1u << 20;
  for (;;) {
    std::size_t old = bytes.size();
    bytes.resize(old + chunk);
    int got = gzread(f, bytes.data() + old, chunk);
    if (got < 0) {
      int errnum = 0;
      std::string msg = gzerror(f, &errnum);
      gzclose(f);
      detail::raise<io_error>("idx: '", path, "': cannot decompress: ", msg);
    }
    bytes.resize(old + static_cast<std::size_t>(got));
    if (got == 0) break;
  }
  int errnum = 0;
  std::string msg = gzerror(f, &errnum);
  gzclose(f);
  // A gzip stream cut short reads as a clean end of file plus Z_BUF_ERROR.
  if (errnum != Z_OK && errnum != Z_STREAM_END)
    detail::raise<io_error>("idx: '", path, "': corrupt or truncated gzip stream: ", msg);

  if (bytes.size() < 4)
    detail::raise<io_error>("idx: '", path, "': file of ", bytes.size(), " bytes is too short for an IDX header");
  if (bytes[0] != 0 || bytes[1] != 0)
    detail::raise<io_error>("idx: '", path, "': bad magic number 0x", detail::idx_hex(bytes.data(), 4),
                            " (expected 0x00000801 or 0x00000803); not an IDX file");
  if (bytes[2] != 0x08)
    detail::raise<io_error>("idx: '", path, "': element type 0x", detail::idx_hex(bytes.data() + 2, 1),
                            " is not supported (expected 0x08, unsigned byte)");
  int rank = bytes[3];
  if (rank == 0 || (expected_rank > 0 && rank != expected_rank))
    detail::raise<io_error>("idx: '", path, "': expected ", expected_rank, " dimensions (magic 0x0000080",
                            expected_rank, "), got ", rank);
  std::size_t header = 4 + 4 * static_cast<std::size_t>(rank);
  if (bytes.size() < header)
    detail::raise<io_error>("idx: '", path, "': truncated header (", bytes.size(), " bytes, need ", header, ")");
  idx_array out;
  std::uint64_t total = 1;
  for (int d = 0; d < rank; ++d) {
    std::uint8_t const* p = bytes.data() + 4 + 4 * d;
    std::uint32_t v = std::uint32_t(p[0]) << 24 | std::uint32_t(p[1]) << 16 | std::uint32_t(p[2]) << 8 | p[3];
    if (v > 0x7fffffffu) detail::raise<io_error>("idx: '", path, "': dimension ", d, " = ", v, " is too large");
    out.dims.push_back(static_cast<index_t>(v));
    total *= v;
    if (total > (std::uint64_t(1) << 40)) detail::raise<io_error>("idx: '", path, "': dimensions are too large");
  }
  std::size_t have = bytes.size() - header;
  if (have != total)
    detail::raise<io_error>("idx: '", path, "': the header's dimensions need ", total, " data bytes, the file has ",
                            have, have < total ? " (truncated)" : " (trailing bytes)");
  bytes.erase(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(header));
  bytes.shrink_to_fit();
  out.data = std::move(bytes);
  return out;
}

/// An image-classification set from two IDX files: images (N, rows, cols) of grey bytes and
/// labels (N). Fashion-MNIST: idx_dataset(".../train-images-idx3-ubyte.gz",
/// ".../train-labels-idx1-ubyte.gz"), 60000 images of 28x28, 10 classes. Held in memory and
/// shared by copies (copying is cheap). io_error naming the files when the counts differ.
class idx_dataset {
 public:
  idx_dataset(std::string const& images_path, std::string const& labels_path) {
    auto images = read_idx(images_path, 3);
    auto labels = read_idx(labels_path, 1);
    if (images.dims[0] != labels.dims[0])
      detail::raise<io_error>("idx_dataset: '", images_path, "' holds ", images.dims[0], " images but '",
                              labels_path, "' holds ", labels.dims[0], " labels");
    auto d = std::make_shared<contents>();
    d->count = images.dims[0];
    d->rows = static_cast<int>(images.dims[1]);
    d->cols = static_cast<int>(images.dims[2]);
    d->pixels = std::move(images.data);
    d->labels.assign(labels.data.begin(), labels.data.end());
    for (auto l : d->labels) d->num_classes = std::max<index_t>(d->num_classes, l + 1);
    data_ = std::move(d);
  }

  index_t size() const { return data_->count; }
  int rows() const { return data_->rows; }
  int cols() const { return data_->cols; }
  index_t num_classes() const { return data_->num_classes; }
  std::int64_t label(index_t i) const { return data_->labels[check(i)]; }
  std::vector<std::int64_t> const& labels() const { return data_->labels; }
  std::vector<index_t> class_counts() const {
    std::vector<index_t> counts(static_cast<std::size_t>(num_classes()), 0);
    for (auto l : data_->labels) ++counts[static_cast<std::size_t>(l)];
    return counts;
  }
  /// The rows*cols grey bytes of image i, row-major (0 = background on MNIST / Fashion-MNIST).
  std::uint8_t const* raw(index_t i) const {
    return data_->pixels.data() + check(i) * static_cast<std::size_t>(data_->rows) * data_->cols;
  }
  /// Image i as 3-channel RGB (grey copied to R, G, B), so that any pipeline applies.
  data::image image(index_t i) const {
    std::uint8_t const* src = raw(i);
    data::image img;
    img.width = data_->cols;
    img.height = data_->rows;
    img.channels = 3;
    std::size_t n = static_cast<std::size_t>(data_->rows) * data_->cols;
    img.pixels.resize(3 * n);
    for (std::size_t k = 0; k < n; ++k) img.pixels[3 * k] = img.pixels[3 * k + 1] = img.pixels[3 * k + 2] = src[k];
    return img;
  }
  /// Image i as a (rows, cols, 1) float tensor of pixel / 255 (values in [0, 1]).
  tensor<float, cpu> grey_tensor(index_t i) const {
    auto t = tensor<float, cpu>::uninitialized(shape{data_->rows, data_->cols, 1});
    std::uint8_t const* src = raw(i);
    for (index_t k = 0; k < t.numel(); ++k) t[k] = static_cast<float>(src[k]) * (1.0f / 255.0f);
    return t;
  }

 private:
  struct contents {
    index_t count = 0;
    int rows = 0, cols = 0;
    index_t num_classes = 0;
    std::vector<std::uint8_t> pixels;
    std::vector<std::int64_t> labels;
  };
  std::size_t check(index_t i) const {
    if (i < 0 || i >= data_->count)
      detail::raise<error>("idx_dataset: sample index ", i, " is out of range for ", data_->count, " samples");
    return static_cast<std::size_t>(i);
  }
  std::shared_ptr<contents const> data_;
};

}  // namespace arcnet::data
