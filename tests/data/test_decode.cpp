// Decoders and writers (data/decode.hpp, data/encode.hpp): fixture images written by the test,
// decoded pixels against the source, and damaged files that must give io_error naming the file.
#include "test_util.hpp"

#include <arcnet/data/decode.hpp>
#include <arcnet/data/encode.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <turbojpeg.h>
#include <unistd.h>
#include <zlib.h>

namespace decode_test {

using arcnet::data::image;
using arcnet::data::read_image;
namespace fs = std::filesystem;

/// A fresh directory for one test case, removed at scope exit.
struct temp_dir {
  fs::path path;
  explicit temp_dir(std::string const& tag) {
    path = fs::temp_directory_path() / ("arcnet_decode_" + tag + "_" + std::to_string(::getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string file(std::string const& name) const { return (path / name).string(); }
};

/// Values that differ from pixel to pixel and channel to channel, exact in lossless formats.
inline image pattern(int w, int h, int c) {
  image img = arcnet::data::make_image(w, h, c);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int k = 0; k < c; ++k) img.at(y, x, k) = static_cast<std::uint8_t>((x * 37 + y * 101 + k * 59 + x * y) % 256);
  return img;
}
/// A smooth image (gradients), which JPEG keeps within a few grey levels.
inline image smooth(int w, int h, int c) {
  image img = arcnet::data::make_image(w, h, c);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int k = 0; k < c; ++k)
        img.at(y, x, k) = static_cast<std::uint8_t>(
            std::lround(40 + 170.0 * (k == 0 ? x / double(w) : k == 1 ? y / double(h) : (x + y) / double(w + h))));
  return img;
}
inline double mean_abs_diff(image const& a, image const& b) {
  REQUIRE(a.pixels.size() == b.pixels.size());
  double s = 0;
  for (std::size_t i = 0; i < a.pixels.size(); ++i) s += std::abs(int(a.pixels[i]) - int(b.pixels[i]));
  return s / static_cast<double>(a.pixels.size());
}
inline int max_abs_diff(image const& a, image const& b) {
  REQUIRE(a.pixels.size() == b.pixels.size());
  int m = 0;
  for (std::size_t i = 0; i < a.pixels.size(); ++i) m = std::max(m, std::abs(int(a.pixels[i]) - int(b.pixels[i])));
  return m;
}
inline void write_bytes(std::string const& path, std::vector<std::uint8_t> const& b) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<char const*>(b.data()), static_cast<std::streamsize>(b.size()));
  REQUIRE(f.good());
}
inline void write_text(std::string const& path, std::string const& s) {
  write_bytes(path, std::vector<std::uint8_t>(s.begin(), s.end()));
}
/// read_image(path) throws io_error whose message names the file and contains `words`.
inline void require_io_error(std::string const& path, std::string const& words) {
  try {
    (void)arcnet::data::read_image(path);
    FAIL("read_image('" << path << "') did not throw");
  } catch (arcnet::io_error const& e) {
    std::string const what = e.what();
    INFO(what);
    CHECK(what.find(path) != std::string::npos);
    CHECK(what.find(words) != std::string::npos);
  }
}

// The test cases live in the namespace too: the unity build puts several test files in one
// translation unit, where file-level using-directives could collide.


TEST_CASE("decode: PNG RGB round trip is exact", "[data][decode]") {
  temp_dir dir("png_rgb");
  image const src = pattern(13, 7, 3);
  arcnet::data::write_png(dir.file("a.png"), src);
  image const got = read_image(dir.file("a.png"));
  REQUIRE(got.width == 13);
  REQUIRE(got.height == 7);
  REQUIRE(got.channels == 3);
  CHECK(got.pixels == src.pixels);
  auto const bytes = arcnet::data::encode_png(src);
  CHECK(arcnet::data::decode_image(bytes.data(), bytes.size(), "memory").pixels == src.pixels);
}

TEST_CASE("decode: grey and RGBA PNG become RGB (grey replicated, alpha dropped)", "[data][decode]") {
  temp_dir dir("png_grey_rgba");
  image const grey = pattern(9, 11, 1);
  arcnet::data::write_png(dir.file("grey.png"), grey);
  image const g = read_image(dir.file("grey.png"));
  REQUIRE((g.width == 9 && g.height == 11 && g.channels == 3));
  for (int y = 0; y < 11; ++y)
    for (int x = 0; x < 9; ++x)
      for (int c = 0; c < 3; ++c) REQUIRE(g.at(y, x, c) == grey.at(y, x, 0));

  image rgba = pattern(6, 5, 4);
  rgba.at(0, 0, 3) = 0;  // fully transparent: its colour must survive, as Pillow's convert("RGB")
  arcnet::data::write_png(dir.file("rgba.png"), rgba);
  image const r = read_image(dir.file("rgba.png"));
  REQUIRE((r.width == 6 && r.height == 5 && r.channels == 3));
  for (int y = 0; y < 5; ++y)
    for (int x = 0; x < 6; ++x)
      for (int c = 0; c < 3; ++c) REQUIRE(r.at(y, x, c) == rgba.at(y, x, c));
}

TEST_CASE("decode: PGM and PPM, binary and ASCII, 8 and 16 bits", "[data][decode]") {
  temp_dir dir("pnm");
  image const grey = pattern(7, 3, 1), rgb = pattern(5, 4, 3);
  arcnet::data::write_pnm(dir.file("a.pgm"), grey);
  arcnet::data::write_pnm(dir.file("a.ppm"), rgb);
  image const g = read_image(dir.file("a.pgm"));
  REQUIRE((g.width == 7 && g.height == 3 && g.channels == 3));
  for (int i = 0; i < 21; ++i)
    for (int c = 0; c < 3; ++c) REQUIRE(g.pixels[3 * i + c] == grey.pixels[i]);
  CHECK(read_image(dir.file("a.ppm")).pixels == rgb.pixels);

  // ASCII with a comment and maxval 15: v -> round(v * 255 / 15) = 17 v.
  write_text(dir.file("ascii.pgm"), "P2\n# made by hand\n3 2\n15\n0 1 2\n13 14 15\n");
  image const a = read_image(dir.file("ascii.pgm"));
  REQUIRE((a.width == 3 && a.height == 2));
  std::vector<int> const expected{0, 17, 34, 221, 238, 255};
  for (int i = 0; i < 6; ++i) CHECK(int(a.pixels[3 * i]) == expected[static_cast<std::size_t>(i)]);
  write_text(dir.file("ascii.ppm"), "P3 1 1 255 10 20 30");
  image const p = read_image(dir.file("ascii.ppm"));
  CHECK(p.pixels == std::vector<std::uint8_t>{10, 20, 30});

  // 16-bit big-endian samples, maxval 65535: 0 -> 0, 65535 -> 255, 32768 -> 128.
  std::string s = "P5\n3 1\n65535\n";
  s += std::string("\x00\x00\xff\xff\x80\x00", 6);
  write_text(dir.file("deep.pgm"), s);
  image const d = read_image(dir.file("deep.pgm"));
  CHECK(int(d.pixels[0]) == 0);
  CHECK(int(d.pixels[3]) == 255);
  CHECK(int(d.pixels[6]) == 128);
}

TEST_CASE("decode: JPEG within a few grey levels of its source", "[data][decode]") {
  temp_dir dir("jpeg");
  image const rgb = smooth(64, 48, 3);
  arcnet::data::write_jpeg(dir.file("a.jpg"), rgb, 95);
  image const got = read_image(dir.file("a.jpg"));
  REQUIRE((got.width == 64 && got.height == 48 && got.channels == 3));
  INFO("mean " << mean_abs_diff(got, rgb) << " max " << max_abs_diff(got, rgb));
  CHECK(mean_abs_diff(got, rgb) < 1.5);
  CHECK(max_abs_diff(got, rgb) <= 12);

  image const grey = smooth(33, 17, 1);  // odd sizes, greyscale JPEG
  arcnet::data::write_jpeg(dir.file("g.jpg"), grey, 95);
  image const g = read_image(dir.file("g.jpg"));
  REQUIRE((g.width == 33 && g.height == 17 && g.channels == 3));
  double err = 0;
  for (int i = 0; i < 33 * 17; ++i) {
    REQUIRE(g.pixels[3 * i] == g.pixels[3 * i + 1]);
    REQUIRE(g.pixels[3 * i] == g.pixels[3 * i + 2]);
    err += std::abs(int(g.pixels[3 * i]) - int(grey.pixels[i]));
  }
  CHECK(err / (33 * 17) < 1.0);
}

TEST_CASE("decode: CMYK JPEG (Adobe, inverted) converts as Pillow", "[data][decode]") {
  // Stored bytes c' = 200 (C = 55), k' = 128 (K = 127): R = k' - k' (255 - c') / 255 = 128 - 27.6.
  std::vector<std::uint8_t> cmyk(16 * 16 * 4);
  for (std::size_t i = 0; i < 16 * 16; ++i) {
    cmyk[4 * i + 0] = 200;
    cmyk[4 * i + 1] = 128;
    cmyk[4 * i + 2] = 255;
    cmyk[4 * i + 3] = 128;
  }
  tjhandle tj = tjInitCompress();
  REQUIRE(tj != nullptr);
  unsigned char* jpeg = nullptr;
  unsigned long size = 0;
  int const rc = tjCompress2(tj, cmyk.data(), 16, 16 * 4, 16, TJPF_CMYK, &jpeg, &size, TJSAMP_444, 100, 0);
  tjDestroy(tj);
  REQUIRE(rc == 0);
  std::vector<std::uint8_t> bytes(jpeg, jpeg + size);
  tjFree(jpeg);
  image const got = arcnet::data::decode_image(bytes.data(), bytes.size(), "cmyk.jpg");
  REQUIRE((got.width == 16 && got.height == 16 && got.channels == 3));
  CHECK(std::abs(int(got.at(8, 8, 0)) - 100) <= 2);  // 200 * 128 / 255 = 100.4
  CHECK(std::abs(int(got.at(8, 8, 1)) - 64) <= 2);   // 128 * 128 / 255 = 64.3
  CHECK(std::abs(int(got.at(8, 8, 2)) - 128) <= 2);  // 255 * 128 / 255
}

TEST_CASE("decode: the format comes from the content, not the extension", "[data][decode]") {
  temp_dir dir("by_content");
  image const src = pattern(8, 8, 3);
  arcnet::data::write_png(dir.file("really_png.jpg"), src);
  CHECK(read_image(dir.file("really_png.jpg")).pixels == src.pixels);
  arcnet::data::write_pnm(dir.file("really_ppm.png"), src);
  CHECK(read_image(dir.file("really_ppm.png")).pixels == src.pixels);
  arcnet::data::write_jpeg(dir.file("really_jpeg.pgm"), smooth(8, 8, 3));
  CHECK(read_image(dir.file("really_jpeg.pgm")).width == 8);
}

TEST_CASE("decode: scaled JPEG decoding picks 1/2, 1/4 or 1/8 without going below the hint", "[data][decode]") {
  temp_dir dir("scaled");
  image flat = arcnet::data::make_image(64, 48, 3);
  for (std::size_t i = 0; i < flat.pixels.size(); ++i) flat.pixels[i] = static_cast<std::uint8_t>(i % 3 == 0 ? 200 : 90);
  arcnet::data::write_jpeg(dir.file("a.jpg"), flat, 95);
  auto size_for = [&](int w, int h) {
    image const img = read_image(dir.file("a.jpg"), w, h);
    return std::make_pair(img.width, img.height);
  };
  CHECK(size_for(0, 0) == std::make_pair(64, 48));
  CHECK(size_for(16, 12) == std::make_pair(16, 12));  // 1/4 exactly meets the hint
  CHECK(size_for(8, 6) == std::make_pair(8, 6));      // 1/8
  CHECK(size_for(17, 1) == std::make_pair(32, 24));   // 1/4 would be 16 < 17
  CHECK(size_for(1, 13) == std::make_pair(32, 24));
  CHECK(size_for(100, 100) == std::make_pair(64, 48));  // never upscaled
  image const small = read_image(dir.file("a.jpg"), 8, 6);
  for (int y = 0; y < 6; ++y)
    for (int x = 0; x < 8; ++x) {
      CHECK(std::abs(int(small.at(y, x, 0)) - 200) <= 3);
      CHECK(std::abs(int(small.at(y, x, 1)) - 90) <= 3);
    }
  // Other formats ignore the hint.
  arcnet::data::write_png(dir.file("a.png"), flat);
  CHECK(read_image(dir.file("a.png"), 8, 6).width == 64);
}

TEST_CASE("decode: missing, empty, truncated, corrupt and unsupported files give io_error naming the file",
          "[data][decode]") {
  temp_dir dir("corrupt");
  auto const jpeg = arcnet::data::encode_jpeg(pattern(120, 80, 3), 90);  // mostly entropy-coded data
  auto const png = arcnet::data::encode_png(pattern(40, 30, 3));

  require_io_error(dir.file("missing.jpg"), "cannot open");
  write_bytes(dir.file("empty.jpg"), {});
  require_io_error(dir.file("empty.jpg"), "empty file");

  write_bytes(dir.file("truncated.jpg"), std::vector<std::uint8_t>(jpeg.begin(), jpeg.begin() + jpeg.size() / 2));
  require_io_error(dir.file("truncated.jpg"), "truncated JPEG");
  write_bytes(dir.file("header_only.jpg"), std::vector<std::uint8_t>(jpeg.begin(), jpeg.begin() + 20));
  require_io_error(dir.file("header_only.jpg"), "JPEG");

  // The first IDAT chunk: a wrong CRC (data intact), then a flipped data byte (zlib's check fails).
  std::size_t idat = 8, idat_len = 0;
  for (;;) {
    REQUIRE(idat + 12 < png.size());
    idat_len = (std::size_t(png[idat]) << 24) | (std::size_t(png[idat + 1]) << 16) |
               (std::size_t(png[idat + 2]) << 8) | png[idat + 3];
    if (std::memcmp(&png[idat + 4], "IDAT", 4) == 0) break;
    idat += 12 + idat_len;
  }
  auto bad_crc = png;
  bad_crc[idat + 8 + idat_len] ^= 0x55;
  write_bytes(dir.file("bad_crc.png"), bad_crc);
  require_io_error(dir.file("bad_crc.png"), "CRC error");
  auto bad_data = png;
  bad_data[idat + 8 + idat_len / 2] ^= 0x55;
  write_bytes(dir.file("bad_data.png"), bad_data);
  require_io_error(dir.file("bad_data.png"), "corrupt PNG");
  write_bytes(dir.file("truncated.png"), std::vector<std::uint8_t>(png.begin(), png.begin() + png.size() * 2 / 3));
  require_io_error(dir.file("truncated.png"), "PNG");

  write_text(dir.file("short.pgm"), "P5\n100 100\n255\n" + std::string(50, '\x7f'));
  require_io_error(dir.file("short.pgm"), "truncated PNM");
  write_text(dir.file("bad_header.ppm"), "P6\n100\n");
  require_io_error(dir.file("bad_header.ppm"), "corrupt PNM header");
  write_text(dir.file("huge.pgm"), "P5\n100000 100000\n255\n");
  require_io_error(dir.file("huge.pgm"), "limit");
  // ASCII maps too are checked against the bytes left before the samples are allocated: this
  // 22-byte file would otherwise claim 507 MB (13000 x 13000 x 3).
  write_text(dir.file("ascii_bomb.ppm"), "P3 13000 13000 255 1 2");
  require_io_error(dir.file("ascii_bomb.ppm"), "truncated PNM: the header says 13000x13000x3 samples");
  write_text(dir.file("ascii_short.pgm"), "P2 2 2 255 1 2 3");
  require_io_error(dir.file("ascii_short.pgm"), "truncated PNM");
  write_text(dir.file("ascii_missing.pgm"), "P2 2 2 255 1 2 3 x");
  require_io_error(dir.file("ascii_missing.pgm"), "sample 3 of 4 missing");

  write_text(dir.file("garbage.png"), "this is not an image at all");
  require_io_error(dir.file("garbage.png"), "unknown format");
  write_text(dir.file("anim.gif"), "GIF89a\x01\x00\x01\x00");
  require_io_error(dir.file("anim.gif"), "unsupported format GIF");
}

TEST_CASE("decode: damaged JPEG, PNG and PNM bytes decode or throw io_error, never crash", "[data][decode]") {
  std::vector<std::pair<std::string, std::vector<std::uint8_t>>> files{
      {"j.jpg", arcnet::data::encode_jpeg(smooth(24, 16, 3), 80)},
      {"p.png", arcnet::data::encode_png(pattern(24, 16, 3))},
      {"g.pgm", arcnet::data::encode_pnm(pattern(24, 16, 1))}};
  arcnet::generator gen(7);
  int decoded = 0, rejected = 0;
  for (auto const& [name, bytes] : files) {
    for (int trial = 0; trial < 60; ++trial) {
      std::vector<std::uint8_t> b = bytes;
      if (trial < 30) {
        b.resize(static_cast<std::size_t>(gen.below(b.size())));  // truncated anywhere, 0 bytes included
      } else {
        for (int k = 0; k < 3; ++k) b[gen.below(b.size())] ^= static_cast<std::uint8_t>(1 + gen.below(255));
      }
      try {
        image const img = arcnet::data::decode_image(b.data(), b.size(), name);
        CHECK(img.channels == 3);
        CHECK(img.pixels.size() == std::size_t(img.width) * img.height * 3);
        ++decoded;
      } catch (arcnet::io_error const& e) {
        CHECK(std::string(e.what()).find(name) != std::string::npos);
        ++rejected;
      }
    }
  }
  CHECK(rejected > 30);
  CHECK(decoded + rejected == 180);
}

TEST_CASE("decode: a JPEG that fails leaves this thread's decoder ready for the next one", "[data][decode]") {
  // Found by fuzzing: TurboJPEG 2.1 left the reused per-thread handle mid-header after a failed
  // header read, and the next valid JPEG then decoded as "0x0 pixels" or "Bogus DQT index".
  auto const good = arcnet::data::encode_jpeg(smooth(40, 24, 3), 90);
  image const expected = arcnet::data::decode_image(good.data(), good.size(), "good.jpg");
  std::vector<std::vector<std::uint8_t>> bad{
      std::vector<std::uint8_t>(good.begin(), good.begin() + good.size() / 2),  // truncated in the header
      std::vector<std::uint8_t>(good.begin(), good.begin() + 10),               // only SOI and part of APP0
      std::vector<std::uint8_t>(good.begin(), good.end() - 40)};                // truncated in the scan
  bad.push_back(good);
  bad.back()[20] ^= 0x55;  // a damaged marker
  for (auto const& b : bad) {
    CHECK_THROWS_AS(arcnet::data::decode_image(b.data(), b.size(), "bad.jpg"), arcnet::io_error);
    image const again = arcnet::data::decode_image(good.data(), good.size(), "good.jpg");
    CHECK(again.width == 40);
    CHECK(again.pixels == expected.pixels);
  }
}

TEST_CASE("decode: a header claiming more pixels than the file can hold is rejected before decoding", "[data][decode]") {
  // Found by fuzzing: a 770-byte JPEG or a 126-byte PNG whose header says 12000x12000 made the
  // decoder allocate (and libjpeg paint) the whole image: 0.5 to 1.2 GB and seconds per file.
  auto set_be = [](std::vector<std::uint8_t>& b, std::size_t at, std::uint32_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) b[at + i] = static_cast<std::uint8_t>(v >> (8 * (bytes - 1 - i)));
  };
  auto jpeg = arcnet::data::encode_jpeg(smooth(16, 16, 3), 80);
  std::size_t sof = 2;
  while (sof + 9 < jpeg.size() && !(jpeg[sof] == 0xFF && jpeg[sof + 1] == 0xC0)) ++sof;
  REQUIRE(sof + 9 < jpeg.size());
  set_be(jpeg, sof + 5, 12000, 2);  // height
  set_be(jpeg, sof + 7, 12000, 2);  // width
  CHECK_THROWS_WITH(arcnet::data::decode_image(jpeg.data(), jpeg.size(), "big.jpg"),
                    Catch::Contains("'big.jpg': truncated or corrupt JPEG: the header says 12000x12000 pixels") &&
                        Catch::Contains(std::to_string(jpeg.size()) + " bytes"));

  auto png = arcnet::data::encode_png(pattern(4, 4, 4));
  REQUIRE(std::string(png.begin() + 12, png.begin() + 16) == "IHDR");
  set_be(png, 16, 12000, 4);
  set_be(png, 20, 12000, 4);
  set_be(png, 29, static_cast<std::uint32_t>(crc32(0, png.data() + 12, 17)), 4);  // a valid IHDR: only the size is wrong
  CHECK_THROWS_WITH(arcnet::data::decode_image(png.data(), png.size(), "big.png"),
                    Catch::Contains("'big.png': truncated or corrupt PNG: the header says 12000x12000 pixels"));

  // Files at the formats' best compression still decode: a flat JPEG (about 85 pixels per
  // byte) and a PNG of zeros (deflate's ~1000:1), both past the 2^20 pixels checked.
  image flat = arcnet::data::make_image(2048, 1024, 3);
  auto const flat_jpeg = arcnet::data::encode_jpeg(flat, 90);
  CHECK(arcnet::data::decode_image(flat_jpeg.data(), flat_jpeg.size(), "flat.jpg").width == 2048);
  auto const zeros_png = arcnet::data::encode_png(arcnet::data::make_image(2000, 2000, 1));
  INFO("PNG of 2000x2000 zeros: " << zeros_png.size() << " bytes");
  CHECK(zeros_png.size() < 2000 * 2000 / 500);
  image const z = arcnet::data::decode_image(zeros_png.data(), zeros_png.size(), "zeros.png");
  CHECK(z.width == 2000);
  CHECK(z.pixels == std::vector<std::uint8_t>(2000 * 2000 * 3, 0));
}

TEST_CASE("encode: writers check their input and name the file on failure", "[data][decode]") {
  temp_dir dir("writers");
  CHECK_THROWS_AS(arcnet::data::encode_jpeg(pattern(4, 4, 4)), arcnet::shape_error);
  CHECK_THROWS_AS(arcnet::data::encode_jpeg(pattern(4, 4, 3), 0), arcnet::config_error);
  CHECK_THROWS_AS(arcnet::data::encode_pnm(pattern(4, 4, 4)), arcnet::shape_error);
  image broken = pattern(4, 4, 3);
  broken.pixels.pop_back();
  CHECK_THROWS_AS(arcnet::data::encode_png(broken), arcnet::shape_error);
  std::string const path = dir.file("no/such/dir/a.png");
  try {
    arcnet::data::write_png(path, pattern(4, 4, 3));
    FAIL("write_png into a missing directory did not throw");
  } catch (arcnet::io_error const& e) {
    CHECK(std::string(e.what()).find(path) != std::string::npos);
  }
}

}  // namespace decode_test
