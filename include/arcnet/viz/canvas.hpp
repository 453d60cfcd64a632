#pragma once
// Shared vocabulary of arcnet::viz (plots and image grids drawn with cairo): an 8-bit colour,
// a pixel rectangle (where a plot area or grid cell lies, so callers and tests can find it),
// and the default series palette. Link arcnet::viz.
#include <cstddef>
#include <cstdint>

namespace arcnet::viz {

/// An 8-bit sRGB colour.
struct color {
  std::uint8_t r = 0, g = 0, b = 0;
  friend bool operator==(color a, color b) { return a.r == b.r && a.g == b.g && a.b == b.b; }
  friend bool operator!=(color a, color b) { return !(a == b); }
};

/// A rectangle in pixels: columns [x, x + w), rows [y, y + h).
struct rect {
  int x = 0, y = 0, w = 0, h = 0;
  bool contains(int px, int py) const { return px >= x && px < x + w && py >= y && py < y + h; }
};

/// The i-th default series colour (matplotlib's "tab10", repeating after 10).
inline color palette(std::size_t i) {
  static constexpr color tab10[] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44},  {214, 39, 40},
                                    {148, 103, 189}, {140, 86, 75},  {227, 119, 194}, {127, 127, 127},
                                    {188, 189, 34},  {23, 190, 207}};
  return tab10[i % 10];
}

}  // namespace arcnet::viz
