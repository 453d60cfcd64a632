// IDX (MNIST / Fashion-MNIST) files: small ones written here (gzip and plain, valid and corrupt),
// and Debian's Fashion-MNIST when it is installed.
#include "test_util.hpp"

#include <zlib.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

#include <arcnet/data/idx.hpp>

namespace idx_test {

namespace fs = std::filesystem;
using namespace arcnet;

struct temp_dir {
  fs::path path;
  temp_dir() {
    static std::atomic<int> counter{0};
    path = fs::temp_directory_path() /
           ("arcnet_idx_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string str(std::string const& name) const { return (path / name).string(); }
};

/// The bytes of an IDX file: magic 0x0000 <type> <rank>, big-endian dims, then data.
inline std::vector<std::uint8_t> idx_bytes(std::vector<std::uint32_t> const& dims, std::vector<std::uint8_t> const& data,
                                           std::uint8_t type = 0x08) {
  std::vector<std::uint8_t> b{0, 0, type, static_cast<std::uint8_t>(dims.size())};
  for (auto d : dims)
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<std::uint8_t>(d >> s));
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

inline void write_gz(std::string const& path, std::vector<std::uint8_t> const& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  REQUIRE(f != nullptr);
  REQUIRE(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) == static_cast<int>(bytes.size()));
  REQUIRE(gzclose(f) == Z_OK);
}

inline void write_plain(std::string const& path, std::vector<std::uint8_t> const& bytes) {
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<char const*>(bytes.data()),
                                              static_cast<std::streamsize>(bytes.size()));
}

/// n images of 3x2 pixels, pixel k of image i = 10 * i + k; labels i % 3.
inline std::vector<std::uint8_t> small_images(std::uint32_t n) {
  std::vector<std::uint8_t> px;
  for (std::uint32_t i = 0; i < n; ++i)
    for (std::uint32_t k = 0; k < 6; ++k) px.push_back(static_cast<std::uint8_t>(10 * i + k));
  return idx_bytes({n, 3, 2}, px);
}
inline std::vector<std::uint8_t> small_labels(std::uint32_t n) {
  std::vector<std::uint8_t> l;
  for (std::uint32_t i = 0; i < n; ++i) l.push_back(static_cast<std::uint8_t>(i % 3));
  return idx_bytes({n}, l);
}

template <class F>
void require_io_error(F&& f, std::vector<std::string> const& parts) {
  bool threw = false;
  try {
    f();
  } catch (io_error const& e) {
    threw = true;
    std::string what = e.what();
    INFO("message: " << what);
    for (auto const& p : parts) CHECK(what.find(p) != std::string::npos);
  }
  CHECK(threw);
}

}  // namespace idx_test

TEST_CASE("idx_dataset: gzip and plain IDX files", "[data]") {
  using namespace idx_test;
  temp_dir dir;
  write_gz(dir.str("img.gz"), small_images(5));
  write_gz(dir.str("lab.gz"), small_labels(5));
  write_plain(dir.str("img.idx"), small_images(5));
  write_plain(dir.str("lab.idx"), small_labels(5));
  for (auto [images, labels] : {std::pair<std::string, std::string>{"img.gz", "lab.gz"}, {"img.idx", "lab.idx"}}) {
    data::idx_dataset ds(dir.str(images), dir.str(labels));
    REQUIRE(ds.size() == 5);
    CHECK(ds.rows() == 3);
    CHECK(ds.cols() == 2);
    CHECK(ds.num_classes() == 3);
    CHECK(ds.class_counts() == std::vector<index_t>{2, 2, 1});
    CHECK(ds.labels() == std::vector<std::int64_t>{0, 1, 2, 0, 1});
    CHECK(ds.label(4) == 1);
    CHECK(ds.raw(2)[5] == 25);
    auto img = ds.image(3);
    REQUIRE(img.width == 2);
    REQUIRE(img.height == 3);
    REQUIRE(img.channels == 3);
    for (int y = 0; y < 3; ++y)
      for (int x = 0; x < 2; ++x)
        for (int c = 0; c < 3; ++c) CHECK(img.at(y, x, c) == 30 + 2 * y + x);
    auto t = ds.grey_tensor(1);
    CHECK(t.shape() == shape{3, 2, 1});
    CHECK(t.at(2, 1, 0) == Approx(15.0 / 255.0));
    CHECK_THROWS_AS(ds.raw(5), arcnet::error);
  }
  auto arr = data::read_idx(dir.str("img.gz"));
  CHECK(arr.dims == std::vector<index_t>{5, 3, 2});
  CHECK(arr.data.size() == 30);
}

TEST_CASE("idx_dataset: corrupt files give io_error naming the file", "[data]") {
  using namespace idx_test;
  temp_dir dir;
  std::string const img = dir.str("img.gz"), lab = dir.str("lab.gz");
  write_gz(lab, small_labels(5));

  auto bad_magic = small_images(5);
  bad_magic[0] = 0x12;
  write_gz(img, bad_magic);
  require_io_error([&] { data::idx_dataset(img, lab); }, {img, "bad magic"});

  write_gz(img, idx_bytes({5, 3, 2}, std::vector<std::uint8_t>(30, 0), 0x0D));  // float elements
  require_io_error([&] { data::idx_dataset(img, lab); }, {img, "element type 0x0d"});

  write_gz(img, small_images(5));
  require_io_error([&] { data::idx_dataset(lab, lab); }, {lab, "expected 3 dimensions"});  // swapped files

  auto truncated = small_images(5);
  truncated.resize(truncated.size() - 7);  // half an image short
  write_gz(img, truncated);
  require_io_error([&] { data::idx_dataset(img, lab); }, {img, "need 30 data bytes", "has 23", "truncated"});

  auto trailing = small_images(5);
  trailing.push_back(1);
  write_gz(img, trailing);
  require_io_error([&] { data::idx_dataset(img, lab); }, {img, "trailing"});

  auto header_only = small_images(5);
  header_only.resize(9);
  write_gz(img, header_only);
  require_io_error([&] { data::idx_dataset(img, lab); }, {img, "truncated header"});

  // The compressed stream itself cut short (an interrupted download).
  write_gz(img, small_images(200));
  auto const full = fs::file_size(img);
  fs::resize_file(img, full / 2);
  require_io_error([&] { data::idx_dataset(img, lab); }, {img});

  write_gz(img, small_images(6));  // 6 images, 5 labels
  require_io_error([&] { data::idx_dataset(img, lab); }, {img, "6 images", lab, "5 labels"});

  require_io_error([&] { data::idx_dataset(dir.str("none.gz"), lab); }, {dir.str("none.gz"), "cannot open"});
  write_plain(img, {0, 0});
  require_io_error([&] { data::idx_dataset(img, lab); }, {img, "too short"});
}

TEST_CASE("idx_dataset: Debian's Fashion-MNIST", "[data]") {
  std::string const root = "/usr/share/datasets/fashion-mnist/";
  if (!std::filesystem::exists(root + "t10k-images-idx3-ubyte.gz")) {
    WARN("Fashion-MNIST is not installed (apt install dataset-fashion-mnist); skipping");
    return;
  }
  using namespace arcnet;
  struct expected {
    char const* prefix;
    index_t count;
    std::vector<std::int64_t> first_labels;
    long first_image_sum;
    double mean;
  };
  for (auto const& e : {expected{"train", 60000, {9, 0, 0, 3, 0, 2, 7, 2, 5, 5, 0, 9}, 76247, 72.94035223214286},
                        expected{"t10k", 10000, {9, 2, 1, 1, 6, 1, 4, 6, 5, 7, 4, 5}, 33456, 73.14656658163265}}) {
    INFO(e.prefix);
    data::idx_dataset ds(root + e.prefix + "-images-idx3-ubyte.gz", root + e.prefix + "-labels-idx1-ubyte.gz");
    REQUIRE(ds.size() == e.count);
    CHECK(ds.rows() == 28);
    CHECK(ds.cols() == 28);
    CHECK(ds.num_classes() == 10);
    CHECK(ds.class_counts() == std::vector<index_t>(10, e.count / 10));  // balanced: 6000 / 1000 each
    for (std::size_t i = 0; i < e.first_labels.size(); ++i) CHECK(ds.label(static_cast<index_t>(i)) == e.first_labels[i]);
    long first_sum = 0;
    for (int k = 0; k < 784; ++k) first_sum += ds.raw(0)[k];
    CHECK(first_sum == e.first_image_sum);  // (reference values from Python's gzip module)
    int lo = 255, hi = 0;
    double total = 0;
    std::uint8_t const* px = ds.raw(0);
    for (index_t k = 0; k < ds.size() * 784; ++k) {
      lo = std::min<int>(lo, px[k]);
      hi = std::max<int>(hi, px[k]);
      total += px[k];
    }
    CHECK(lo == 0);
    CHECK(hi == 255);
    CHECK(total / static_cast<double>(ds.size() * 784) == Approx(e.mean).epsilon(1e-12));
  }
}
