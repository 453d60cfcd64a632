#pragma once
// Cairo machinery shared by viz/plot.hpp and viz/grid.hpp: owning handles, text placement, an
// arcnet::data::image as a cairo surface, and saving: the picture is rendered to PNG or SVG bytes
// in memory, then written atomically (io/detail/atomic_file.hpp: a temporary file renamed over
// the target), so a failed save never leaves a half-written file. Private to arcnet/viz.
#include <cairo-svg.h>
#include <cairo.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "arcnet/core/error.hpp"
#include "arcnet/data/image.hpp"
#include "arcnet/io/detail/atomic_file.hpp"
#include "arcnet/viz/canvas.hpp"

namespace arcnet::detail {

struct viz_cairo_deleter {
  void operator()(cairo_t* cr) const { cairo_destroy(cr); }
  void operator()(cairo_surface_t* s) const { cairo_surface_destroy(s); }
};
using viz_context = std::unique_ptr<cairo_t, viz_cairo_deleter>;
using viz_surface = std::unique_ptr<cairo_surface_t, viz_cairo_deleter>;

/// Largest canvas side cairo's image surfaces accept.
inline constexpr int viz_max_side = 32767;

inline void viz_set_color(cairo_t* cr, viz::color c) { cairo_set_source_rgb(cr, c.r / 255.0, c.g / 255.0, c.b / 255.0); }

inline void viz_set_font(cairo_t* cr, double size, bool bold) {
  cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size(cr, size);
}

/// Advance width of s in the current font.
inline double viz_text_width(cairo_t* cr, std::string const& s) {
  cairo_text_extents_t e;
  cairo_text_extents(cr, s.c_str(), &e);
  return e.x_advance;
}

/// Shows s in the current font and source with its box anchored at (x, y): ax, ay in [0, 1] pick
/// the anchor (0 = left / top, 0.5 = centre, 1 = right / bottom); angle (radians) turns about it.
inline void viz_text(cairo_t* cr, std::string const& s, double x, double y, double ax, double ay, double angle = 0) {
  cairo_font_extents_t f;
  cairo_font_extents(cr, &f);  // ascent + descent: lines of different glyphs share a baseline
  cairo_save(cr);
  cairo_translate(cr, x, y);
  cairo_rotate(cr, angle);
  cairo_move_to(cr, -ax * viz_text_width(cr, s), f.ascent - ay * (f.ascent + f.descent));
  cairo_show_text(cr, s.c_str());
  cairo_restore(cr);
}

/// img (1, 3 or 4 channels; alpha ignored) as an opaque cairo image surface.
inline viz_surface viz_image_surface(data::image const& img) {
  viz_surface s(cairo_image_surface_create(CAIRO_FORMAT_RGB24, img.width, img.height));
  if (cairo_surface_status(s.get()) != CAIRO_STATUS_SUCCESS)
    raise<shape_error>("viz: cannot make a ", img.width, "x", img.height, " cairo surface: ",
                       cairo_status_to_string(cairo_surface_status(s.get())));
  cairo_surface_flush(s.get());
  unsigned char* base = cairo_image_surface_get_data(s.get());
  int const stride = cairo_image_surface_get_stride(s.get());
  int const grey = img.channels == 1 ? 0 : 1;  // offset of green and twice that of blue
  for (int y = 0; y < img.height; ++y) {
    auto* out = reinterpret_cast<std::uint32_t*>(base + static_cast<std::ptrdiff_t>(y) * stride);
    for (int x = 0; x < img.width; ++x)
      out[x] = std::uint32_t(img.at(y, x, 0)) << 16 | std::uint32_t(img.at(y, x, grey)) << 8 | img.at(y, x, 2 * grey);
  }
  cairo_surface_mark_dirty(s.get());
  return s;
}

/// The lower-case extension of path (".png"), or "" when it has none.
inline std::string viz_extension(std::string const& path) {
  std::string ext = std::filesystem::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return ext;
}

/// Renders draw(cairo_t*) on a width x height canvas (white is the caller's job) and writes it
/// to path as SVG (svg) or PNG, atomically; io_error naming path and `op` on any failure.
template <class Draw>
void viz_save(std::string const& path, bool svg, int width, int height, char const* op, Draw&& draw) {
  auto check = [&](cairo_status_t st, char const* what) {
    if (st != CAIRO_STATUS_SUCCESS)
      raise<io_error>(op, ": '", path, "': cairo cannot ", what, ": ", cairo_status_to_string(st),
                      "; the file was not changed");
  };
  std::string bytes;
  cairo_write_func_t sink = [](void* closure, unsigned char const* data, unsigned int n) {
    static_cast<std::string*>(closure)->append(reinterpret_cast<char const*>(data), n);
    return CAIRO_STATUS_SUCCESS;
  };
  viz_surface surface(svg ? cairo_svg_surface_create_for_stream(sink, &bytes, width, height)
                          : cairo_image_surface_create(CAIRO_FORMAT_RGB24, width, height));
  check(cairo_surface_status(surface.get()), "create the canvas");
  {
    viz_context cr(cairo_create(surface.get()));
    draw(cr.get());
    check(cairo_status(cr.get()), "draw (is every caption valid UTF-8?)");
  }
  if (svg) cairo_surface_finish(surface.get());
  else check(cairo_surface_write_to_png_stream(surface.get(), sink, &bytes), "encode the PNG");
  check(cairo_surface_status(surface.get()), "finish the file");
  io_atomic_writer out(path, op);
  out.write(bytes);
  out.commit();
}

}  // namespace arcnet::detail
