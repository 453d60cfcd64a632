// Picture grids (viz/grid.hpp): solid-colour pictures drawn into a grid, the PNG read back with
// arcnet's own decoder; each cell must hold its picture's colour at the hand-computed place and
// size, inside its frame colour; failed saves leave an existing file untouched.
#include "test_util.hpp"

#include <arcnet/data/decode.hpp>
#include <arcnet/viz/grid.hpp>

namespace viz_grid_test {

using namespace arcnet;
using arcnet::testing::message_contains;
using arcnet::testing::read_bytes;
using arcnet::testing::scratch_dir;
using arcnet::testing::write_bytes;

constexpr viz::color green{0, 200, 0}, red{220, 0, 0}, white{255, 255, 255};

/// A w x h picture with every pixel {r, g, b} (grey: r only; RGBA: alpha 0).
inline data::image solid(int w, int h, int channels, std::uint8_t r, std::uint8_t g = 0, std::uint8_t b = 0) {
  auto img = data::make_image(w, h, channels);
  std::uint8_t const px[4] = {r, g, b, 0};
  for (std::size_t i = 0; i < img.pixels.size(); ++i) img.pixels[i] = px[i % channels];
  return img;
}

/// Pixels of `img` inside `area` whose colour is not c.
inline int mismatches(data::image const& img, viz::rect area, viz::color c) {
  int n = 0;
  for (int y = area.y; y < area.y + area.h; ++y)
    for (int x = area.x; x < area.x + area.w; ++x)
      n += img.at(y, x, 0) != c.r || img.at(y, x, 1) != c.g || img.at(y, x, 2) != c.b;
  return n;
}

/// Pixels of the band `width` pixels wide just outside `area` whose colour is not c.
inline int ring_mismatches(data::image const& img, viz::rect area, int width, viz::color c) {
  viz::rect const outer{area.x - width, area.y - width, area.w + 2 * width, area.h + 2 * width};
  return mismatches(img, {outer.x, outer.y, outer.w, width}, c) +                         // top
         mismatches(img, {outer.x, area.y + area.h, outer.w, width}, c) +                 // bottom
         mismatches(img, {outer.x, area.y, width, area.h}, c) +                           // left
         mismatches(img, {area.x + area.w, area.y, width, area.h}, c);                    // right
}

inline bool same(viz::rect a, viz::rect b) { return a.x == b.x && a.y == b.y && a.w == b.w && a.h == b.h; }

}  // namespace viz_grid_test

using namespace viz_grid_test;

TEST_CASE("viz::grid: cells hold their pictures, scaled to the cell height, inside their frames", "[viz]") {
  auto const dir = scratch_dir("viz_grid_cells");
  viz::grid g(60);
  g.add(solid(40, 20, 3, 200, 30, 30), "query", "q_001.jpg", green);  // 2:1 -> 120 x 60
  g.add(solid(20, 40, 3, 30, 30, 200), "0.873  #1532", "m_1532.jpg", red);  // 1:2 -> 30 x 60
  g.add(solid(30, 30, 1, 77), "0.512  #7");  // grey, no frame -> 60 x 60
  g.new_row();
  g.add(solid(10, 10, 4, 250, 200, 0), "rgba");  // alpha ignored
  g.add(solid(1000, 10, 3, 0, 0, 0));            // at most 4 cell heights wide: 240 x 2
  g.new_row();                                   // a trailing new_row() adds no empty row
  REQUIRE(g.rows() == 2);

  // Slots are 240 wide (the widest picture); margin 12, frame 4, gap 16; a row is
  // 60 + 2 * 4 + 6 + 2 * 16 (captions) + 16 = 122 high.
  CHECK(same(g.image_area(0, 0), {12 + 4 + 60, 12 + 4, 120, 60}));
  CHECK(same(g.image_area(0, 1), {12 + 248 + 16 + 4 + 105, 16, 30, 60}));
  CHECK(same(g.image_area(0, 2), {12 + 2 * 264 + 4 + 90, 16, 60, 60}));
  CHECK(same(g.image_area(1, 0), {12 + 4 + 90, 12 + 122 + 4, 60, 60}));
  CHECK(same(g.image_area(1, 1), {12 + 264 + 4, 12 + 122 + 4 + 29, 240, 2}));
  CHECK(g.width() == 2 * 12 + 3 * 248 + 2 * 16);
  CHECK(g.height() == 2 * 12 + 2 * 122 - 16);

  auto const path = (dir / "top3.png").string();
  g.save_png(path);
  auto const img = data::read_image(path);
  REQUIRE(img.width == g.width());
  REQUIRE(img.height == g.height());
  CHECK(mismatches(img, g.image_area(0, 0), {200, 30, 30}) == 0);
  CHECK(mismatches(img, g.image_area(0, 1), {30, 30, 200}) == 0);
  CHECK(mismatches(img, g.image_area(0, 2), {77, 77, 77}) == 0);
  CHECK(mismatches(img, g.image_area(1, 0), {250, 200, 0}) == 0);
  CHECK(mismatches(img, g.image_area(1, 1), {0, 0, 0}) == 0);
  CHECK(ring_mismatches(img, g.image_area(0, 0), 4, green) == 0);
  CHECK(ring_mismatches(img, g.image_area(0, 1), 4, red) == 0);
  CHECK(ring_mismatches(img, g.image_area(0, 2), 4, white) == 0);  // no frame: the page shows
  CHECK(ring_mismatches(img, g.image_area(0, 0), 5, green) > 0);   // and the frame is 4 wide, not more

  // Captions: dark text under the first cell.
  viz::rect const a = g.image_area(0, 0);
  viz::rect const caption{a.x, a.y + a.h + 4, a.w, 36};
  CHECK(caption.w * caption.h - mismatches(img, caption, white) > 30);
}

TEST_CASE("viz::grid: bad file names, unwritable directories, bad pictures and empty grids", "[viz]") {
  auto const dir = scratch_dir("viz_grid_errors");
  viz::grid g(40);
  g.add(solid(8, 8, 3, 10, 20, 30), "query");

  auto const jpg = (dir / "grid.jpg").string();
  write_bytes(jpg, "old grid");
  CHECK_THROWS_MATCHES(g.save_png(jpg), io_error, message_contains("'" + jpg + "': expected a .png file name"));
  CHECK(read_bytes(jpg) == "old grid");

  auto const missing = (dir / "no_such_dir" / "grid.png").string();
  CHECK_THROWS_MATCHES(g.save_png(missing), io_error, message_contains(missing));
  CHECK_FALSE(std::filesystem::exists(missing));

  auto const png = (dir / "grid.png").string();
  write_bytes(png, "old png");
  std::filesystem::create_directory(png + ".tmp-" + std::to_string(static_cast<long>(::getpid())));
  CHECK_THROWS_MATCHES(g.save_png(png), io_error, message_contains(png));
  CHECK(read_bytes(png) == "old png");

  data::image bad{4, 4, 3, std::vector<std::uint8_t>(10)};
  CHECK_THROWS_MATCHES(g.add(bad), shape_error, message_contains("viz::grid::add"));
  CHECK_THROWS_AS(g.image_area(0, 1), config_error);
  CHECK_THROWS_AS(viz::grid(0), config_error);
  CHECK_THROWS_MATCHES(viz::grid(40).save_png((dir / "empty.png").string()), config_error, message_contains("empty"));
  CHECK_FALSE(std::filesystem::exists(dir / "empty.png"));
}
