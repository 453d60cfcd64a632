#pragma once
// Line plots for training reports (arcnet-train's loss and validation curves): a figure of
// panels side by side, each with a title, axis labels, auto-scaled axes with "nice" ticks, a
// legend and named series in distinct colours; saved as PNG or SVG by extension, atomically.
// Drawn with cairo. Link arcnet::viz.
//
//   viz::figure fig(1200, 450);
//   fig.add_panel("loss", "iteration", "loss").add_series("train", losses);
//   fig.add_panel("validation", "epoch", "%").add_series("Recall@1", r1).add_series("mAP@10", map10);
//   fig.save("curves.png");
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <deque>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "arcnet/core/error.hpp"
#include "arcnet/viz/canvas.hpp"
#include "arcnet/viz/detail/cairo_canvas.hpp"

namespace arcnet::viz {

/// An axis: its range [lo, hi] and the tick values inside it, multiples of step.
struct axis_ticks {
  double lo = 0, hi = 1, step = 1;
  std::vector<double> values;
};

/// Ticks inside [lo, hi] (finite, lo <= hi; lo == hi is widened): the smallest step of 1, 2 or
/// 5 x 10^k (at least 1 when `integer`) that makes at most 1.5 x target intervals.
/// E.g. (0, 0.87, 5) -> 0, 0.2, 0.4, 0.6, 0.8; (3.7, 142, 5) -> 20, 40, ..., 140.
inline axis_ticks nice_ticks(double lo, double hi, int target = 5, bool integer = false) {
  ARCNET_CHECK_AS(config_error, std::isfinite(lo) && std::isfinite(hi) && lo <= hi && target > 0,
                  "viz::nice_ticks: expected finite lo <= hi and target > 0, got [", lo, ", ", hi, "], ", target);
  if (hi == lo) {
    double const d = lo == 0 ? 1 : 0.1 * std::abs(lo);
    lo -= d, hi += d;
  }
  double const rough = (hi - lo) / target, mag = std::pow(10.0, std::floor(std::log10(rough)));
  double step = 10 * mag;  // < target intervals, since mag <= rough
  for (double m : {1.0, 2.0, 5.0})
    if ((hi - lo) / (m * mag) <= 1.5 * target + 1e-9) {
      step = m * mag;
      break;
    }
  if (integer) step = std::max(step, 1.0);
  axis_ticks t{lo, hi, step, {}};
  double const first = std::ceil(lo / step - 1e-9), last = std::floor(hi / step + 1e-9);
  for (double k = first; k <= last; ++k) t.values.push_back(k == 0 ? 0.0 : k * step);  // k == 0: no "-0"
  return t;
}

/// A tick label: value with the decimals that step needs ("0.6" for step 0.2, "150" for 50);
/// "%.3g" form beyond 1e6 or below 1e-4.
inline std::string format_tick(double value, double step) {
  char buf[64];
  if (std::abs(value) >= 1e6 || step < 1e-4) std::snprintf(buf, sizeof buf, "%.3g", value);
  else {
    int const decimals = std::max(0, -static_cast<int>(std::floor(std::log10(step) + 1e-9)));
    std::snprintf(buf, sizeof buf, "%.*f", decimals, std::abs(value) < step * 1e-9 ? 0.0 : value);
  }
  return buf;
}

/// One named line: points drawn in order; a point with a non-finite coordinate is skipped and
/// breaks the line. stroke: palette(index in the panel) when unset.
struct series {
  std::string name;
  std::vector<std::pair<double, double>> points;  // (x, y)
  std::optional<color> stroke;
};

/// One set of axes: title, axis labels, series and legend.
class panel {
 public:
  panel(std::string title, std::string x_label, std::string y_label)
      : title_(std::move(title)), x_label_(std::move(x_label)), y_label_(std::move(y_label)) {}
  /// Adds y[i] at x = i + 1 (epochs, iterations).
  panel& add_series(std::string name, std::vector<double> const& y, std::optional<color> stroke = {}) {
    std::vector<std::pair<double, double>> points;
    for (std::size_t i = 0; i < y.size(); ++i) points.emplace_back(double(i + 1), y[i]);
    return add_series_xy(std::move(name), std::move(points), stroke);
  }
  /// Adds (x, y) points, joined in the order given.
  panel& add_series_xy(std::string name, std::vector<std::pair<double, double>> points, std::optional<color> stroke = {}) {
    series_.push_back({std::move(name), std::move(points), stroke});
    return *this;
  }
  std::string const& title() const { return title_; }
  std::vector<series> const& all_series() const { return series_; }

  /// Draws into `area` (the panel); `plot` is the part inside the axes.
  void draw(cairo_t* cr, rect area, rect plot) const;

 private:
  std::string title_, x_label_, y_label_;
  std::vector<series> series_;
};

/// Panels side by side under an optional title.
class figure {
 public:
  /// A width x height figure in pixels (points for SVG).
  explicit figure(int width = 1200, int height = 450, std::string title = "")
      : width_(width), height_(height), title_(std::move(title)) {
    ARCNET_CHECK_AS(config_error, width > 0 && height > 0 && width <= detail::viz_max_side && height <= detail::viz_max_side,
                    "viz::figure: expected a size within 1..", detail::viz_max_side, ", got ", width, "x", height);
  }
  /// Adds a panel right of the others; the reference stays valid while the figure lives.
  panel& add_panel(std::string title, std::string x_label, std::string y_label) {
    return panels_.emplace_back(std::move(title), std::move(x_label), std::move(y_label));
  }
  int width() const { return width_; }
  int height() const { return height_; }
  std::size_t panel_count() const { return panels_.size(); }
  panel const& operator[](std::size_t i) const { return panels_.at(i); }

  /// Where panel i lies, in pixels.
  rect panel_area(std::size_t i) const {
    ARCNET_CHECK_AS(config_error, i < panels_.size(), "viz::figure: panel ", i, " requested, the figure has ", panels_.size());
    int const n = static_cast<int>(panels_.size()), k = static_cast<int>(i), top = title_.empty() ? 0 : title_band;
    return {k * width_ / n, top, (k + 1) * width_ / n - k * width_ / n, height_ - top};
  }
  /// Where panel i's axes lie (the data area), in pixels.
  rect plot_area(std::size_t i) const {
    rect const p = panel_area(i);
    return {p.x + 72, p.y + 36, p.w - 72 - 18, p.h - 36 - 78};
  }

  /// Draws the figure on a cairo context whose user space is this figure's pixels.
  void draw(cairo_t* cr) const {
    ARCNET_CHECK_AS(config_error, !panels_.empty(), "viz::figure: nothing to draw; add a panel with add_panel()");
    for (std::size_t i = 0; i < panels_.size(); ++i)
      ARCNET_CHECK_AS(config_error, plot_area(i).w >= 40 && plot_area(i).h >= 40, "viz::figure: ", width_, "x", height_,
                      " is too small for ", panels_.size(), " panels; each needs about 130x160 pixels or more");
    detail::viz_set_color(cr, {255, 255, 255});
    cairo_paint(cr);
    if (!title_.empty()) {
      detail::viz_set_color(cr, {0, 0, 0});
      detail::viz_set_font(cr, 17, true);
      detail::viz_text(cr, title_, width_ / 2.0, title_band / 2.0, 0.5, 0.5);
    }
    for (std::size_t i = 0; i < panels_.size(); ++i) panels_[i].draw(cr, panel_area(i), plot_area(i));
  }
  /// Writes the figure as PNG or SVG, chosen by path's extension (.png / .svg, any case), via a
  /// temporary file renamed over path; io_error naming path for another extension or a failed
  /// write, and then an existing file at path is left as it was.
  void save(std::string const& path) const {
    std::string const ext = detail::viz_extension(path);
    if (ext != ".png" && ext != ".svg")
      detail::raise<io_error>("viz::figure::save: '", path, "': unsupported extension '", ext,
                              "'; expected .png or .svg; nothing was written");
    detail::viz_save(path, ext == ".svg", width_, height_, "viz::figure::save", [&](cairo_t* cr) { draw(cr); });
  }

 private:
  static constexpr int title_band = 32;
  int width_, height_;
  std::string title_;
  std::deque<panel> panels_;  // deque: add_panel's references stay valid
};

inline void panel::draw(cairo_t* cr, rect area, rect plot) const {
  using detail::viz_set_color;
  using detail::viz_text;
  double const pi = 3.14159265358979323846, left = plot.x, right = plot.x + plot.w, top = plot.y, bottom = plot.y + plot.h;
  cairo_save(cr);
  cairo_rectangle(cr, area.x, area.y, area.w, area.h);
  cairo_clip(cr);
  viz_set_color(cr, {0, 0, 0});
  detail::viz_set_font(cr, 15, true);
  viz_text(cr, title_, left + plot.w / 2.0, area.y + 10, 0.5, 0);
  viz_set_color(cr, {40, 40, 40});
  detail::viz_set_font(cr, 12, false);
  viz_text(cr, x_label_, left + plot.w / 2.0, bottom + 26, 0.5, 0);
  viz_text(cr, y_label_, area.x + 8, top + plot.h / 2.0, 0.5, 0, -pi / 2);

  // Data range over the finite points; integer-valued axes (epochs) get integer ticks.
  double inf = std::numeric_limits<double>::infinity(), x0 = inf, x1 = -inf, y0 = inf, y1 = -inf;
  bool x_int = true, y_int = true;
  for (auto const& s : series_)
    for (auto [x, y] : s.points)
      if (std::isfinite(x) && std::isfinite(y)) {
        x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
        x_int = x_int && x == std::round(x), y_int = y_int && y == std::round(y);
      }
  if (x0 > x1) {
    viz_text(cr, "no data", left + plot.w / 2.0, top + plot.h / 2.0, 0.5, 0.5);
  } else {
    double const dx = 0.04 * (x1 - x0), dy = 0.04 * (y1 - y0);  // a margin: points on the edge stay whole
    axis_ticks const tx = nice_ticks(x0 - dx, x1 + dx, 6, x_int), ty = nice_ticks(y0 - dy, y1 + dy, 5, y_int);
    auto px = [&](double x) { return left + (x - tx.lo) / (tx.hi - tx.lo) * plot.w; };
    auto py = [&](double y) { return bottom - (y - ty.lo) / (ty.hi - ty.lo) * plot.h; };
    detail::viz_set_font(cr, 11, false);
    cairo_set_line_width(cr, 1);
    for (double v : tx.values) {  // grid lines on pixel centres, labels outside the axes
      viz_set_color(cr, {228, 228, 228});
      cairo_move_to(cr, std::round(px(v)) + 0.5, top), cairo_line_to(cr, std::round(px(v)) + 0.5, bottom), cairo_stroke(cr);
      viz_set_color(cr, {70, 70, 70});
      viz_text(cr, format_tick(v, tx.step), px(v), bottom + 5, 0.5, 0);
    }
    for (double v : ty.values) {
      viz_set_color(cr, {228, 228, 228});
      cairo_move_to(cr, left, std::round(py(v)) + 0.5), cairo_line_to(cr, right, std::round(py(v)) + 0.5), cairo_stroke(cr);
      viz_set_color(cr, {70, 70, 70});
      viz_text(cr, format_tick(v, ty.step), left - 6, py(v), 1, 0.5);
    }
    cairo_save(cr);  // the lines stay inside the axes
    cairo_rectangle(cr, left, top, plot.w, plot.h);
    cairo_clip(cr);
    cairo_set_line_width(cr, 2);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    for (std::size_t i = 0; i < series_.size(); ++i) {
      auto const& pts = series_[i].points;
      viz_set_color(cr, series_[i].stroke.value_or(palette(i)));
      bool const markers = pts.size() <= 40;  // few points (epochs): show each one
      for (std::size_t j = 0; j < pts.size(); ++j) {
        auto [x, y] = pts[j];
        if (!std::isfinite(x) || !std::isfinite(y)) continue;
        bool const joined = j > 0 && std::isfinite(pts[j - 1].first) && std::isfinite(pts[j - 1].second);
        if (joined) cairo_line_to(cr, px(x), py(y));
        else cairo_move_to(cr, px(x), py(y));
      }
      cairo_stroke(cr);
      for (auto [x, y] : pts)
        if (markers && std::isfinite(x) && std::isfinite(y)) cairo_arc(cr, px(x), py(y), 3, 0, 2 * pi), cairo_fill(cr);
    }
    cairo_restore(cr);
  }
  viz_set_color(cr, {60, 60, 60});
  cairo_set_line_width(cr, 1);
  cairo_rectangle(cr, left + 0.5, top + 0.5, plot.w - 1, plot.h - 1);
  cairo_stroke(cr);

  // Legend: one row under the x label, centred: a short line in the series' colour, then its name.
  detail::viz_set_font(cr, 12, false);
  double total = 0;
  for (auto const& s : series_) total += 24 + 6 + detail::viz_text_width(cr, s.name) + 18;
  double x = std::max<double>(area.x + 4, left + (plot.w - (total - 18)) / 2), y = std::round(bottom + 56) + 0.5;
  cairo_set_line_width(cr, 3);
  for (std::size_t i = 0; i < series_.size(); ++i) {
    viz_set_color(cr, series_[i].stroke.value_or(palette(i)));
    cairo_move_to(cr, x, y), cairo_line_to(cr, x + 24, y), cairo_stroke(cr);
    viz_set_color(cr, {30, 30, 30});
    viz_text(cr, series_[i].name, x + 30, y, 0, 0.5);
    x += 24 + 6 + detail::viz_text_width(cr, series_[i].name) + 18;
  }
  cairo_restore(cr);
}

}  // namespace arcnet::viz
