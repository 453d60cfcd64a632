// arcnet_decode_dump: decodes an image with arcnet::data and writes its raw RGB bytes (HWC),
// optionally resized, for tests/fixtures/compare_pillow.py. Prints "width height" on stdout.
//   arcnet_decode_dump decode IN OUT
//   arcnet_decode_dump resize IN WIDTH HEIGHT bilinear|bicubic OUT
//   arcnet_decode_dump resize_box IN X0 Y0 X1 Y1 WIDTH HEIGHT bilinear|bicubic OUT   (Pillow's box=)
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include <arcnet/data/decode.hpp>
#include <arcnet/data/transforms.hpp>

namespace {
int usage() {
  std::fprintf(stderr,
               "usage: arcnet_decode_dump decode IN OUT\n"
               "       arcnet_decode_dump resize IN WIDTH HEIGHT bilinear|bicubic OUT\n"
               "       arcnet_decode_dump resize_box IN X0 Y0 X1 Y1 WIDTH HEIGHT bilinear|bicubic OUT\n");
  return 2;
}
}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc < 2) return usage();
    std::string const mode = argv[1];
    std::string out_path;
    arcnet::data::image img;
    if (mode == "decode" && argc == 4) {
      img = arcnet::data::read_image(argv[2]);
      out_path = argv[3];
    } else if (mode == "resize" && argc == 7) {
      std::string const how = argv[5];
      if (how != "bilinear" && how != "bicubic") return usage();
      img = arcnet::data::resample(arcnet::data::read_image(argv[2]), std::atoi(argv[3]), std::atoi(argv[4]),
                                   how == "bicubic" ? arcnet::data::interpolation::bicubic
                                                    : arcnet::data::interpolation::bilinear);
      out_path = argv[6];
    } else if (mode == "resize_box" && argc == 11) {
      std::string const how = argv[9];
      if (how != "bilinear" && how != "bicubic") return usage();
      img = arcnet::data::resample(arcnet::data::read_image(argv[2]), std::atof(argv[3]), std::atof(argv[4]),
                                   std::atof(argv[5]), std::atof(argv[6]), std::atoi(argv[7]), std::atoi(argv[8]),
                                   how == "bicubic" ? arcnet::data::interpolation::bicubic
                                                    : arcnet::data::interpolation::bilinear);
      out_path = argv[10];
    } else {
      return usage();
    }
    std::FILE* f = std::fopen(out_path.c_str(), "wb");
    if (!f || std::fwrite(img.pixels.data(), 1, img.pixels.size(), f) != img.pixels.size() || std::fclose(f) != 0) {
      std::fprintf(stderr, "arcnet_decode_dump: cannot write '%s'\n", out_path.c_str());
      return 1;
    }
    std::printf("%d %d\n", img.width, img.height);
    return 0;
  } catch (std::exception const& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
