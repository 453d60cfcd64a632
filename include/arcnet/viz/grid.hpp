#pragma once
// Picture grids for retrieval results (arcnet-retrieve): rows of cells, each an image scaled to
// a common height (aspect kept), one or two caption lines below it ("query", "0.873  #1532", a
// file name) and an optional coloured frame (green = same class, red = another). Saved as PNG,
// atomically. Drawn with cairo; the images are arcnet::data::image. Link arcnet::viz.
//
//   viz::grid g(160);
//   g.add(query_img, "query", "img_00017.jpg", viz::color{0, 0, 255});
//   for (auto& m : matches) g.add(m.img, format_score(m), m.file, m.same ? green : red);
//   g.new_row();  ...  g.save_png("top5.png");
#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "arcnet/core/error.hpp"
#include "arcnet/data/image.hpp"
#include "arcnet/viz/canvas.hpp"
#include "arcnet/viz/detail/cairo_canvas.hpp"

namespace arcnet::viz {

/// One picture of a grid, its caption lines (empty ones stay blank) and an optional frame.
struct grid_cell {
  data::image picture;  // 1 (grey), 3 (RGB) or 4 channels (alpha ignored); empty: a grey box
  std::string caption, caption2;
  std::optional<color> frame;
};

/// Rows of cells on a white page; every cell slot is as wide as the widest scaled picture.
class grid {
 public:
  /// Pictures are scaled to cell_height pixels high (at most 4 x cell_height wide), keeping aspect.
  explicit grid(int cell_height = 160) : cell_height_(cell_height) {
    ARCNET_CHECK_AS(config_error, cell_height >= 8 && cell_height <= 4096,
                    "viz::grid: expected a cell height within 8..4096 pixels, got ", cell_height);
  }
  /// Ends the current row; the next add() starts a new one.
  grid& new_row() {
    row_ended_ = true;
    return *this;
  }
  /// Appends a cell to the current row; shape_error for a malformed picture.
  grid& add(data::image picture, std::string caption = "", std::string caption2 = "", std::optional<color> frame = {}) {
    detail::data_check_image(picture, "viz::grid::add");
    if (rows_.empty() || row_ended_) rows_.emplace_back(), row_ended_ = false;
    rows_.back().push_back({std::move(picture), std::move(caption), std::move(caption2), frame});
    return *this;
  }
  std::size_t rows() const { return rows_.size(); }

  /// Size of the page in pixels.
  int width() const {
    std::size_t cols = 0;
    for (auto const& r : rows_) cols = std::max(cols, r.size());
    return 2 * margin + int(cols) * (slot_width() + 2 * frame_width) + std::max(0, int(cols) - 1) * gap;
  }
  int height() const { return 2 * margin + int(rows_.size()) * row_height() - (rows_.empty() ? 0 : gap); }

  /// Where the picture of cell (row, col) lies, in pixels (its frame surrounds this rectangle).
  rect image_area(std::size_t row, std::size_t col) const {
    ARCNET_CHECK_AS(config_error, row < rows_.size() && col < rows_[row].size(), "viz::grid: no cell (", row, ", ",
                    col, ") in a grid of ", rows_.size(), " rows");
    auto const [w, h] = scaled(rows_[row][col].picture);
    int const slot_x = margin + int(col) * (slot_width() + 2 * frame_width + gap) + frame_width;
    int const slot_y = margin + int(row) * row_height() + frame_width;
    return {slot_x + (slot_width() - w) / 2, slot_y + (cell_height_ - h) / 2, w, h};
  }

  /// Draws the grid on a cairo context whose user space is this grid's pixels.
  void draw(cairo_t* cr) const {
    detail::viz_set_color(cr, {255, 255, 255});
    cairo_paint(cr);
    for (std::size_t r = 0; r < rows_.size(); ++r)
      for (std::size_t c = 0; c < rows_[r].size(); ++c) draw_cell(cr, rows_[r][c], image_area(r, c), r, c);
  }
  /// Writes the grid as PNG (path must end in .png, any case) via a temporary file renamed over
  /// path; io_error naming path otherwise or on a failed write, leaving an existing file as it was.
  void save_png(std::string const& path) const {
    if (detail::viz_extension(path) != ".png")
      detail::raise<io_error>("viz::grid::save_png: '", path, "': expected a .png file name, got extension '",
                              detail::viz_extension(path), "'; nothing was written");
    ARCNET_CHECK_AS(config_error, !rows_.empty(), "viz::grid::save_png: '", path, "': the grid is empty; add() cells first");
    ARCNET_CHECK_AS(config_error, width() <= detail::viz_max_side && height() <= detail::viz_max_side,
                    "viz::grid::save_png: '", path, "': the page would be ", width(), "x", height(),
                    " pixels, more than ", detail::viz_max_side, "; use fewer cells or a smaller cell height");
    detail::viz_save(path, false, width(), height(), "viz::grid::save_png", [&](cairo_t* cr) { draw(cr); });
  }

 private:
  static constexpr int margin = 12, gap = 16, frame_width = 4, line_height = 16;
  int row_height() const { return cell_height_ + 2 * frame_width + 6 + 2 * line_height + gap; }
  /// A picture's size once scaled to the cell height (and at most 4 cell heights wide).
  std::pair<int, int> scaled(data::image const& img) const {
    if (img.empty()) return {cell_height_, cell_height_};
    double const s = std::min(double(cell_height_) / img.height, 4.0 * cell_height_ / img.width);
    return {std::max(1, int(std::lround(img.width * s))), std::max(1, int(std::lround(img.height * s)))};
  }
  int slot_width() const {
    int w = 0;
    for (auto const& r : rows_)
      for (auto const& c : r) w = std::max(w, scaled(c.picture).first);
    return w;
  }
  void draw_cell(cairo_t* cr, grid_cell const& cell, rect box, std::size_t row, std::size_t col) const {
    if (cell.picture.empty()) {
      detail::viz_set_color(cr, {210, 210, 210});
      cairo_rectangle(cr, box.x, box.y, box.w, box.h);
      cairo_fill(cr);
    } else {  // scale the picture into box; PAD: edge pixels keep their colour, no blend with the page
      auto const surface = detail::viz_image_surface(cell.picture);
      cairo_save(cr);
      cairo_rectangle(cr, box.x, box.y, box.w, box.h);
      cairo_clip(cr);
      cairo_translate(cr, box.x, box.y);
      cairo_scale(cr, double(box.w) / cell.picture.width, double(box.h) / cell.picture.height);
      cairo_set_source_surface(cr, surface.get(), 0, 0);
      cairo_pattern_set_extend(cairo_get_source(cr), CAIRO_EXTEND_PAD);
      cairo_pattern_set_filter(cairo_get_source(cr), CAIRO_FILTER_GOOD);
      cairo_paint(cr);
      cairo_restore(cr);
    }
    if (cell.frame) {  // a band of frame_width pixels just outside the picture
      detail::viz_set_color(cr, *cell.frame);
      cairo_set_line_width(cr, frame_width);
      cairo_rectangle(cr, box.x - frame_width / 2.0, box.y - frame_width / 2.0, box.w + frame_width, box.h + frame_width);
      cairo_stroke(cr);
    }
    // Captions, centred under the slot and clipped to it (a long file name does not run into the next cell).
    int const slot_x = margin + int(col) * (slot_width() + 2 * frame_width + gap);
    int const text_y = margin + int(row) * row_height() + cell_height_ + 2 * frame_width + 4;
    cairo_save(cr);
    cairo_rectangle(cr, slot_x, text_y, slot_width() + 2 * frame_width, 2 * line_height + 2);
    cairo_clip(cr);
    detail::viz_set_color(cr, {20, 20, 20});
    detail::viz_set_font(cr, 12, false);
    double const mid = slot_x + slot_width() / 2.0 + frame_width;
    for (auto [i, text] : {std::pair{0, &cell.caption}, std::pair{1, &cell.caption2}}) {
      double const w = detail::viz_text_width(cr, *text);
      double const x = w <= slot_width() + 2 * frame_width ? mid - w / 2 : slot_x;  // too long: left-aligned
      detail::viz_text(cr, *text, x, text_y + i * line_height, 0, 0);
    }
    cairo_restore(cr);
  }

  int cell_height_;
  bool row_ended_ = false;  // new_row() was called: the next add() opens a row
  std::vector<std::vector<grid_cell>> rows_;
};

}  // namespace arcnet::viz
