// Line plots (viz/plot.hpp): tick choice against hand-computed values; PNGs read back with
// arcnet's own decoder, where a series drawn in a known colour must appear inside its panel's
// axes and nowhere else but its legend; SVG output; failed saves that leave files untouched.
#include "test_util.hpp"

#include <arcnet/data/decode.hpp>
#include <arcnet/viz/plot.hpp>

#include <cmath>
#include <limits>
#include <unistd.h>

namespace viz_plot_test {

using namespace arcnet;
using arcnet::testing::message_contains;
using arcnet::testing::read_bytes;
using arcnet::testing::scratch_dir;
using arcnet::testing::write_bytes;

constexpr viz::color magenta{255, 0, 255}, cyan{0, 255, 255};
constexpr double not_a_number = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();

/// Pixels of colour c in img, counted where keep(x, y) holds; box gets their bounding box.
template <class Keep>
int count(data::image const& img, viz::color c, Keep keep, viz::rect* box = nullptr) {
  int n = 0, x0 = img.width, y0 = img.height, x1 = -1, y1 = -1;
  for (int y = 0; y < img.height; ++y)
    for (int x = 0; x < img.width; ++x)
      if (img.at(y, x, 0) == c.r && img.at(y, x, 1) == c.g && img.at(y, x, 2) == c.b && keep(x, y)) {
        ++n;
        x0 = std::min(x0, x), y0 = std::min(y0, y), x1 = std::max(x1, x), y1 = std::max(y1, y);
      }
  if (box) *box = {x0, y0, x1 - x0 + 1, y1 - y0 + 1};
  return n;
}

}  // namespace viz_plot_test

using namespace viz_plot_test;

TEST_CASE("viz::nice_ticks: 1-2-5 steps inside the range", "[viz]") {
  auto t = viz::nice_ticks(0, 0.87, 5);  // 0.1 would make 8.7 intervals > 7.5; 0.2 makes 4.35
  CHECK(t.step == Approx(0.2));
  CHECK(t.lo == 0);
  CHECK(t.hi == 0.87);
  REQUIRE(t.values.size() == 5);
  for (int i = 0; i < 5; ++i) CHECK(t.values[i] == Approx(0.2 * i).margin(1e-12));

  t = viz::nice_ticks(3.7, 142, 5);  // 10 -> 13.8 intervals, 20 -> 6.9
  CHECK(t.step == Approx(20));
  REQUIRE(t.values.size() == 7);
  CHECK(t.values.front() == Approx(20));
  CHECK(t.values.back() == Approx(140));

  t = viz::nice_ticks(0.8, 6.2, 6, true);  // epochs: 0.5 would do, integer axes step by 1
  CHECK(t.step == 1);
  CHECK(t.values == std::vector<double>{1, 2, 3, 4, 5, 6});

  t = viz::nice_ticks(-0.3, 0.25, 5);
  CHECK(t.step == Approx(0.1));
  REQUIRE(t.values.size() == 6);
  CHECK(t.values[0] == Approx(-0.3));
  CHECK(t.values[3] == 0.0);
  CHECK_FALSE(std::signbit(t.values[3]));  // no "-0.0" label

  t = viz::nice_ticks(1, 1, 5);  // a constant is widened by 10 %: [0.9, 1.1] in steps of 0.05
  CHECK(t.lo == Approx(0.9));
  CHECK(t.hi == Approx(1.1));
  CHECK(t.step == Approx(0.05));
  CHECK(t.values.size() == 5);

  CHECK_THROWS_AS(viz::nice_ticks(1, 0), config_error);
  CHECK_THROWS_MATCHES(viz::nice_ticks(not_a_number, 1), config_error, message_contains("finite lo <= hi"));
  CHECK_THROWS_AS(viz::nice_ticks(0, inf), config_error);
}

TEST_CASE("viz::format_tick: as many decimals as the step needs", "[viz]") {
  CHECK(viz::format_tick(0.6000000000000001, 0.2) == "0.6");
  CHECK(viz::format_tick(150, 50) == "150");
  CHECK(viz::format_tick(0.05, 0.05) == "0.05");
  CHECK(viz::format_tick(-1e-17, 0.2) == "0.0");
  CHECK(viz::format_tick(2.5e6, 5e5) == "2.5e+06");
}

TEST_CASE("viz::figure: a series in its colour inside its axes, elsewhere only in its legend", "[viz]") {
  auto const dir = scratch_dir("viz_plot_colour");
  viz::figure fig(900, 400, "training");
  std::vector<std::pair<double, double>> diagonal;
  for (int i = 0; i <= 10; ++i) diagonal.emplace_back(i, 10.0 * i);
  fig.add_panel("loss", "iteration", "loss").add_series_xy("train", diagonal, magenta);
  fig.add_panel("validation", "epoch", "%").add_series("Recall@1", {50, 60, 70});
  auto const path = (dir / "curves.png").string();
  fig.save(path);

  auto const img = data::read_image(path);
  REQUIRE(img.width == 900);
  REQUIRE(img.height == 400);
  viz::rect const plot0 = fig.plot_area(0), plot1 = fig.plot_area(1), panel0 = fig.panel_area(0);
  CHECK(panel0.x == 0);
  CHECK(panel0.w == 450);
  CHECK(panel0.y > 0);  // under the figure title
  CHECK(fig.panel_area(1).x == 450);

  viz::rect box;
  CHECK(count(img, magenta, [&](int x, int y) { return plot0.contains(x, y); }, &box) > 300);
  // Auto-scaled: the rising line spans the axes (less the 4 % margins), lowest at the left.
  CHECK(box.w > 0.85 * plot0.w);
  CHECK(box.h > 0.85 * plot0.h);
  CHECK(box.x < plot0.x + 0.1 * plot0.w);
  CHECK(count(img, magenta, [&](int x, int y) { return x < box.x + 5 && y > plot0.y + plot0.h / 2; }) > 0);
  CHECK(count(img, magenta, [&](int x, int y) { return x < box.x + 5 && y < plot0.y + plot0.h / 2; }) == 0);
  // Outside the axes: only the legend, in the same panel, below the axes.
  int const outside = count(img, magenta, [&](int x, int y) { return !plot0.contains(x, y); }, &box);
  CHECK(outside > 20);
  CHECK(box.y >= plot0.y + plot0.h);
  CHECK(box.y + box.h <= panel0.y + panel0.h);
  CHECK(box.x >= panel0.x);
  CHECK(box.x + box.w <= panel0.x + panel0.w);
  CHECK(count(img, magenta, [&](int x, int y) { return plot1.contains(x, y); }) == 0);
  // A series without a colour gets the palette's first.
  CHECK(count(img, viz::palette(0), [&](int x, int y) { return plot1.contains(x, y); }) > 50);
  CHECK(count(img, viz::palette(0), [&](int x, int y) { return panel0.contains(x, y); }) == 0);
}

TEST_CASE("viz::figure: non-finite values are skipped, empty series allowed, no data said so", "[viz]") {
  auto const dir = scratch_dir("viz_plot_nonfinite");
  viz::figure fig(800, 360);
  auto& p = fig.add_panel("broken", "x", "y");
  p.add_series_xy("flat", {{0, 0}, {1, 0}, {2, not_a_number}, {3, 0}, {4, 0}}, magenta);  // a gap around x = 2
  p.add_series_xy("spikes", {{0, inf}, {not_a_number, 1}, {4, -inf}}, cyan);              // nothing finite
  p.add_series("empty", {});
  fig.add_panel("nothing", "epoch", "%").add_series("Recall@1", {not_a_number, not_a_number}, cyan);
  auto const path = (dir / "broken.png").string();
  fig.save(path);

  auto const img = data::read_image(path);
  REQUIRE(img.width == 800);
  REQUIRE(img.height == 360);
  viz::rect const plot0 = fig.plot_area(0), plot1 = fig.plot_area(1);
  // The y range ignores the infinities: the flat line sits in the middle row of the axes.
  viz::rect box;
  CHECK(count(img, magenta, [&](int x, int y) { return plot0.contains(x, y); }, &box) > 100);
  CHECK(std::abs(box.y + box.h / 2 - (plot0.y + plot0.h / 2)) <= 3);
  // x = 2 maps to the middle column (range [-0.16, 4.16]): the line is broken there.
  int const mid = plot0.x + plot0.w / 2, quarter = plot0.x + plot0.w * 15 / 100;
  CHECK(count(img, magenta, [&](int x, int y) { return x == mid && plot0.contains(x, y); }) == 0);
  CHECK(count(img, magenta, [&](int x, int y) { return x == quarter && plot0.contains(x, y); }) > 0);
  CHECK(count(img, cyan, [&](int x, int y) { return plot0.contains(x, y) || plot1.contains(x, y); }) == 0);
  CHECK(count(img, cyan, [](int, int) { return true; }) > 20);  // the legends still name them
  // "no data" in the middle of the empty axes: dark text pixels there.
  int dark = 0;
  for (int y = plot1.y + plot1.h / 3; y < plot1.y + 2 * plot1.h / 3; ++y)
    for (int x = plot1.x + plot1.w / 3; x < plot1.x + 2 * plot1.w / 3; ++x)
      dark += img.at(y, x, 0) < 100 && img.at(y, x, 1) < 100 && img.at(y, x, 2) < 100;
  CHECK(dark > 20);
}

TEST_CASE("viz::figure: .svg writes SVG", "[viz]") {
  auto const dir = scratch_dir("viz_plot_svg");
  viz::figure fig(640, 320);
  fig.add_panel("loss", "iteration", "loss").add_series("train", {3, 2, 1.5, 1.2});
  fig.save((dir / "curves.SVG").string());
  auto const text = read_bytes(dir / "curves.SVG");
  bool const starts = text.rfind("<?xml", 0) == 0 || text.rfind("<svg", 0) == 0;
  CHECK(starts);
  CHECK(text.find("<svg") != std::string::npos);
  CHECK(text.find("640") != std::string::npos);
  CHECK(text.find("</svg>") != std::string::npos);
}

TEST_CASE("viz::figure: bad extension, unwritable directory and failed renames leave files as they were", "[viz]") {
  auto const dir = scratch_dir("viz_plot_errors");
  viz::figure fig(600, 300);
  fig.add_panel("loss", "iteration", "loss").add_series("train", {3, 2, 1});

  auto const jpg = (dir / "curves.jpg").string();
  write_bytes(jpg, "old plot");
  CHECK_THROWS_MATCHES(fig.save(jpg), io_error, message_contains("'" + jpg + "': unsupported extension '.jpg'"));
  CHECK(read_bytes(jpg) == "old plot");
  CHECK_THROWS_MATCHES(fig.save((dir / "curves").string()), io_error, message_contains("expected .png or .svg"));

  auto const missing = (dir / "no_such_dir" / "curves.png").string();
  CHECK_THROWS_MATCHES(fig.save(missing), io_error, message_contains(missing));
  CHECK_FALSE(std::filesystem::exists(missing));

  // The temporary file cannot be created (a directory holds its name): the old plot stays.
  auto const png = (dir / "curves.png").string();
  write_bytes(png, "old png");
  std::filesystem::create_directory(png + ".tmp-" + std::to_string(static_cast<long>(::getpid())));
  CHECK_THROWS_MATCHES(fig.save(png), io_error, message_contains(png));
  CHECK(read_bytes(png) == "old png");

  // The rename fails (a directory is in the way): no temporary file is left behind.
  auto const taken = dir / "taken.png";
  std::filesystem::create_directory(taken);
  std::filesystem::create_directory(taken / "inside");
  CHECK_THROWS_MATCHES(fig.save(taken.string()), io_error, message_contains(taken.string()));
  int entries = 0;
  for (auto const& e : std::filesystem::directory_iterator(dir))
    entries += e.path().filename().string().rfind("taken.png", 0) == 0;
  CHECK(entries == 1);
  CHECK(std::filesystem::is_directory(taken / "inside"));
}

TEST_CASE("viz::figure: bad sizes and empty figures are config errors", "[viz]") {
  CHECK_THROWS_MATCHES(viz::figure(0, 300), config_error, message_contains("0x300"));
  CHECK_THROWS_AS(viz::figure(40000, 300), config_error);
  auto const dir = scratch_dir("viz_plot_config");
  viz::figure empty(600, 300);
  CHECK_THROWS_MATCHES(empty.save((dir / "a.png").string()), config_error, message_contains("add_panel"));
  viz::figure tiny(200, 120);
  tiny.add_panel("a", "x", "y");
  tiny.add_panel("b", "x", "y");
  CHECK_THROWS_MATCHES(tiny.save((dir / "b.png").string()), config_error, message_contains("too small for 2 panels"));
  CHECK_FALSE(std::filesystem::exists(dir / "b.png"));
  CHECK_THROWS_AS(tiny.plot_area(2), config_error);
}
