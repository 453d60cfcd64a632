// Writes the seed inputs of the fuzz targets (valid files, made by the library itself where it
// can write the format) into OUT/<target>/. The committed corpus tests/fuzz/corpus/ began as
// these seeds, plus tests/data/*.pth, examples/configs/*.cfg and tests/programs/*.cfg,
// minimised with libFuzzer's -merge=1 (see scripts/fuzz.sh, FUZZ_MERGE=1):
//   g++ -std=c++17 -O1 -Iinclude -I/usr/include/eigen3 tests/fuzz/make_seeds.cpp -o /tmp/make_seeds
//       -lturbojpeg -lpng -lz && /tmp/make_seeds /tmp/seeds
#include <zlib.h>

#include <turbojpeg.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <arcnet/data/encode.hpp>
#include <arcnet/io/safetensors.hpp>

namespace fs = std::filesystem;
using arcnet::data::image;

namespace {

fs::path out_root;

void put(std::string const& target, std::string const& name, std::string const& bytes) {
  fs::create_directories(out_root / target);
  std::ofstream(out_root / target / name, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}
void put(std::string const& target, std::string const& name, std::vector<std::uint8_t> const& bytes) {
  put(target, name, std::string(bytes.begin(), bytes.end()));
}

image pattern(int w, int h, int c) {
  image img = arcnet::data::make_image(w, h, c);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int k = 0; k < c; ++k) img.at(y, x, k) = static_cast<std::uint8_t>(x * 37 + y * 11 + k * 80);
  return img;
}

/// A JPEG through TurboJPEG with the given pixel format, subsampling and flags (progressive, CMYK).
std::string jpeg(image const& img, int pixel_format, int subsamp, int flags) {
  tjhandle tj = tjInitCompress();
  unsigned char* buf = nullptr;
  unsigned long size = 0;
  if (tjCompress2(tj, img.pixels.data(), img.width, static_cast<int>(img.stride()), img.height, pixel_format, &buf,
                  &size, subsamp, 75, flags) != 0) {
    std::cerr << "tjCompress2: " << tjGetErrorStr2(tj) << "\n";
    std::exit(1);
  }
  std::string out(reinterpret_cast<char*>(buf), size);
  tjFree(buf);
  tjDestroy(tj);
  return out;
}

/// A PNG through libpng's simplified writer in any of its formats (16-bit, colour map).
std::string png(std::uint32_t format, int w, int h) {
  png_image info{};
  info.version = PNG_IMAGE_VERSION;
  info.width = static_cast<png_uint_32>(w);
  info.height = static_cast<png_uint_32>(h);
  info.format = format;
  if (format & PNG_FORMAT_FLAG_COLORMAP) info.colormap_entries = 16;
  std::vector<std::uint8_t> pixels(PNG_IMAGE_SIZE(info));
  for (std::size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<std::uint8_t>(i * 7);
  std::vector<std::uint8_t> colormap(PNG_IMAGE_COLORMAP_SIZE(info));
  for (std::size_t i = 0; i < colormap.size(); ++i) colormap[i] = static_cast<std::uint8_t>(i * 13);
  for (std::size_t i = 0; i < pixels.size() && (format & PNG_FORMAT_FLAG_COLORMAP); ++i) pixels[i] %= 16;
  png_alloc_size_t size = 0;
  png_image_write_to_memory(&info, nullptr, &size, 0, pixels.data(), 0, colormap.data());
  std::string out(size, '\0');
  if (!png_image_write_to_memory(&info, out.data(), &size, 0, pixels.data(), 0, colormap.data())) {
    std::cerr << "png: " << info.message << "\n";
    std::exit(1);
  }
  out.resize(size);
  return out;
}

std::string idx(std::vector<std::uint32_t> const& dims) {
  std::string out{'\0', '\0', '\x08', static_cast<char>(dims.size())};
  std::size_t total = 1;
  for (auto d : dims) {
    for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<char>((d >> s) & 0xff));
    total *= d;
  }
  for (std::size_t i = 0; i < total; ++i) out.push_back(static_cast<char>(i * 5));
  return out;
}

std::string gzip(std::string const& data) {
  z_stream z{};
  deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&z, data.size()), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: make_seeds OUT_DIR\n";
    return 2;
  }
  out_root = argv[1];

  // safetensors: written by the library (F32, metadata, 0-d and empty tensors).
  {
    using arcnet::tensor;
    using arcnet::cpu;
    arcnet::io::state_dict sd;
    sd["w"] = tensor<float, cpu>::uninitialized(arcnet::shape{2, 3});
    for (int i = 0; i < 6; ++i) sd["w"].data()[i] = static_cast<float>(i) - 2.5f;
    sd["b"] = tensor<float, cpu>::uninitialized(arcnet::shape{3});
    for (int i = 0; i < 3; ++i) sd["b"].data()[i] = 0.25f * static_cast<float>(i);
    sd["scalar"] = tensor<float, cpu>::uninitialized(arcnet::shape{});
    sd["scalar"].data()[0] = 7;
    sd["empty"] = tensor<float, cpu>::uninitialized(arcnet::shape{0, 4});
    fs::create_directories(out_root / "safetensors");
    arcnet::io::save_safetensors((out_root / "safetensors" / "library.safetensors").string(), sd,
                                 {{"format", "pt"}, {"epoch", "3"}});
    arcnet::io::state_dict one;
    one["layer.weight"] = sd["w"];
    arcnet::io::save_safetensors((out_root / "safetensors" / "one.safetensors").string(), one);
  }

  // Images: every decoder path (grey, RGB, RGBA, 16-bit, palette, CMYK, progressive, ASCII PNM).
  put("image", "rgb.png", arcnet::data::encode_png(pattern(9, 7, 3)));
  put("image", "grey.png", arcnet::data::encode_png(pattern(5, 6, 1)));
  put("image", "rgba.png", arcnet::data::encode_png(pattern(4, 4, 4)));
  put("image", "grey16.png", png(PNG_FORMAT_LINEAR_Y, 5, 3));
  put("image", "rgba16.png", png(PNG_FORMAT_LINEAR_RGB_ALPHA, 3, 3));
  put("image", "palette.png", png(PNG_FORMAT_RGB_COLORMAP, 6, 4));
  put("image", "rgb.jpg", arcnet::data::encode_jpeg(pattern(16, 12, 3), 80));
  put("image", "grey.jpg", arcnet::data::encode_jpeg(pattern(9, 9, 1), 80));
  put("image", "rgb444.jpg", jpeg(pattern(8, 8, 3), TJPF_RGB, TJSAMP_444, 0));
  put("image", "progressive.jpg", jpeg(pattern(24, 16, 3), TJPF_RGB, TJSAMP_422, TJFLAG_PROGRESSIVE));
  put("image", "cmyk.jpg", jpeg(pattern(8, 8, 4), TJPF_CMYK, TJSAMP_444, 0));
  put("image", "big.jpg", arcnet::data::encode_jpeg(pattern(64, 48, 3), 50));  // decoded at 1/2 with the hint
  put("image", "rgb.ppm", arcnet::data::encode_pnm(pattern(4, 3, 3)));
  put("image", "grey.pgm", arcnet::data::encode_pnm(pattern(3, 3, 1)));
  put("image", "ascii.pgm", std::string("P2\n# a comment\n3 2\n15\n0 1 2\n13 14 15\n"));
  put("image", "ascii.ppm", std::string("P3 2 1 255 255 0 0 0 255 7\n"));
  put("image", "sixteen.pgm", std::string("P5 2 1 65535\n\x12\x34\xff\xff", 18));

  // In-Shop list_eval_partition.txt (mmpretrain's layout) and a list file.
  put("in_shop", "list_eval_partition.txt",
      std::string("8\nimage_name item_id evaluation_status\n"
                  "img/MEN/Denim/id_00000080/01_1_front.jpg id_00000080 train\n"
                  "img/MEN/Denim/id_00000080/01_2_side.jpg id_00000080 train\n"
                  "img/WOMEN/Dresses/id_00000002/02_1_front.jpg id_00000002 train\n"
                  "img/WOMEN/Skirts/id_00000001/02_1_front.jpg id_00000001 gallery\n"
                  "img/WOMEN/Skirts/id_00000001/02_2_side.jpg id_00000001 query\n"
                  "img/WOMEN/Blouses/id_00000007/01_1_front.jpg id_00000007 gallery\r\n"
                  "\n"
                  "img/WOMEN/Blouses/id_00000007/01_4_full.jpg    id_00000007   query\n"
                  "img/WOMEN/Blouses/id_00000007/01_3_back.jpg id_00000007 gallery\n"));
  put("in_shop", "list.txt", std::string("a/b c.jpg 0\nd.png 3\n\n/abs/e.jpg\t1\n"));

  // Verification pairs: LFW pairs.txt and the list format.
  put("pairs", "lfw.txt",
      std::string("2 2\nAaron 1 2\nBob 3 4\nAaron 1 Bob 2\nCarl 1 Dora 4\n"
                  "Eve 1 2\nEve 2 3\nFay 1 Gil 2\nGil 3 Hal 1\n"));
  {
    std::string list = "# path_a path_b same\n";
    for (int i = 0; i < 12; ++i)
      list += "p" + std::to_string(i) + "/a.jpg q" + std::to_string(i) + ".png " +
              (i % 3 == 0 ? "true" : i % 2 ? "1" : "0") + "\n";
    put("pairs", "list.txt", list);
  }

  // IDX: images (rank 3) and labels (rank 1), plain and gzip.
  put("idx", "images.idx3", idx({2, 3, 4}));
  put("idx", "labels.idx1", idx({5}));
  put("idx", "images.idx3.gz", gzip(idx({3, 2, 2})));
  std::cout << "seeds written to " << out_root << "\n";
  return 0;
}
