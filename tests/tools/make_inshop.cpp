// Writes a small In-Shop tree of generated JPEG images for the end-to-end test of the programs:
//   arcnet_make_inshop ROOT
// 10 items, each a colour and a pattern (stripes, checks, rings, ...) drawn with a random phase,
// brightness and noise per image. Items 0-5 are the training split (8 images each); items 6-9
// have 2 query and 3 gallery images each, so a random ranking has Recall@1 of about 25%.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <arcnet/core/random.hpp>
#include <arcnet/data/encode.hpp>

namespace {

arcnet::data::image draw(int item, arcnet::generator& g) {
  static const int palette[10][3] = {{220, 40, 40},  {40, 180, 60},  {50, 80, 220}, {230, 200, 40}, {180, 60, 200},
                                     {40, 200, 200}, {240, 140, 30}, {120, 120, 120}, {250, 100, 160}, {90, 50, 20}};
  arcnet::data::image img;
  img.width = img.height = 40;
  img.channels = 3;
  img.pixels.resize(40 * 40 * 3);
  double const phase = g.uniform(0, 6.28), gain = g.uniform(0.8, 1.1);
  int const pattern = item % 5;
  for (int y = 0; y < 40; ++y)
    for (int x = 0; x < 40; ++x) {
      double v = 0;
      switch (pattern) {
        case 0: v = std::sin(x * 0.8 + phase); break;                                  // vertical stripes
        case 1: v = std::sin(y * 0.8 + phase); break;                                  // horizontal stripes
        case 2: v = std::sin(x * 0.7 + phase) * std::sin(y * 0.7 + phase); break;     // checks
        case 3: v = std::sin(std::hypot(x - 20, y - 20) * 0.9 + phase); break;         // rings
        default: v = std::sin((x + y) * 0.6 + phase); break;                           // diagonals
      }
      double const on = v > 0 ? 1.0 : 0.25;
      for (int c = 0; c < 3; ++c) {
        double px = palette[item][c] * on * gain + g.uniform(-20, 20);
        img.at(y, x, c) = static_cast<std::uint8_t>(std::max(0.0, std::min(255.0, px)));
      }
    }
  return img;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s ROOT\n", argv[0]);
    return 2;
  }
  namespace fs = std::filesystem;
  fs::path root = argv[1];
  arcnet::generator g(7);
  std::vector<std::string> lines;
  auto add = [&](int item, int n, char const* status) {
    char id[32];
    std::snprintf(id, sizeof id, "id_%08d", item + 1);
    fs::create_directories(root / "Img" / "img" / id);
    for (int k = 0; k < n; ++k) {
      std::string name = std::string("img/") + id + "/" + std::to_string(lines.size()) + "_" + status + ".jpg";
      arcnet::data::write_jpeg((root / "Img" / name).string(), draw(item, g), 95);
      lines.push_back(name + " " + id + " " + status);
    }
  };
  for (int item = 0; item < 6; ++item) add(item, 8, "train");
  for (int item = 6; item < 10; ++item) {
    add(item, 2, "query");
    add(item, 3, "gallery");
  }
  fs::create_directories(root / "Eval");
  std::ofstream out(root / "Eval" / "list_eval_partition.txt");
  out << lines.size() << "\nimage_name item_id evaluation_status\n";
  for (auto const& l : lines) out << l << "\n";
  return out ? 0 : 1;
}
