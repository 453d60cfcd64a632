#pragma once
// CPU backend of ops/conv2d.hpp: im2col + GEMM (Eigen through matmul_impl<cpu>, threaded by
// OpenMP). NHWC makes every im2col copy a contiguous run of channels, and a 1x1, stride-1,
// unpadded convolution a GEMM on the input as stored, with no copy at all.
#include <algorithm>
#include <cstddef>
#include <cstring>
#include <deque>

#include "arcnet/core/tensor.hpp"
#include "arcnet/ops/cpu/matmul.hpp"

#include "arcnet/core/threads.hpp"

namespace arcnet::ops {

template <>
struct conv2d_impl<cpu> {
  /// Size in bytes of one im2col buffer, or 0 (the default) for automatic sizing, about 1 MiB
  /// per thread (see forward_chunk_rows, backward_images_per_chunk, chunk_rows). The batch is
  /// processed in chunks of output rows whose columns fit, so memory stays bounded and the
  /// columns are still in cache when the GEMM reads them. A process-wide setting, for tests
  /// and tuning.
  static std::size_t& column_budget_bytes() {
    static std::size_t bytes = 0;
    return bytes;
  }
  /// Convolutions with fewer multiply-adds (M*K*Cout) than this run on one thread: waking the
  /// others costs more than they would save. A process-wide setting, for tests and tuning.
  static index_t& parallel_work_threshold() {
    static index_t madds = index_t(1) << 20;
    return madds;
  }
  /// Whether "same" convolutions run as shifted GEMMs (forward_shifted) instead of im2col + GEMM:
  /// -1 (the default) where that pays, 0 never, 1 wherever it applies. A process-wide setting,
  /// for tests and benchmarks.
  static int& shifted_mode() {
    static int mode = -1;
    return mode;
  }
  static index_t threads() { return arcnet::max_threads(); }
  /// Threads for the chunk-per-thread paths: 1 for small convolutions.
  static index_t threads_for(detail::conv2d_geometry const& g) {
    return g.rows() * g.depth() * g.cout < parallel_work_threshold() ? 1 : threads();
  }
  static index_t thread_index() { return arcnet::thread_index(); }
  static index_t team_size() { return arcnet::team_size(); }

  /// y = conv(x, w) + bias, all NHWC / (KH, KW, Cin, Cout) row-major; bias may be null; then
  /// max(y, 0) when relu. Assigns y.
  /// A pointwise convolution is one GEMM on x as stored. Otherwise each thread takes whole
  /// chunks of output rows and runs im2col and a single-threaded GEMM on them: the columns go
  /// from im2col to the GEMM through that core's cache, with no barrier in between, and a
  /// thread that falls behind (a busy machine) just takes fewer chunks.
  template <class T>
  static void forward(detail::conv2d_geometry const& g, T const* x, T const* w, T const* bias, T* y,
                      bool relu = false) {
    index_t const m = g.rows(), k = g.depth();
    if (m == 0 || g.cout == 0) return;
    if (g.is_pointwise()) {
      matmul_impl<cpu>::gemm(false, false, m, g.cout, k, T(1), x, w, T(0), y);
      if (bias || relu) add_bias(y, bias, m, g.cout, relu);
      return;
    }
    if (uses_shifted(g)) return forward_shifted(g, x, w, bias, y, relu);
    index_t team = threads_for(g);
    index_t const chunk = forward_chunk_rows(g, sizeof(T), team);
    index_t const chunks = (m + chunk - 1) / chunk;
    team = std::min(team, chunks);
    typename matmul_impl<cpu>::template prepared_rhs<T> const weight(false, k, g.cout, w);  // packed once
    // With one chunk (team == 1) the region is inactive, so im2col and the GEMM use every thread.
#pragma omp parallel num_threads(static_cast<int>(team)) if (team > 1)
    {
      auto col = tensor<T, cpu>::uninitialized(shape{chunk, k});
#pragma omp for schedule(dynamic, 1)
      for (index_t c = 0; c < chunks; ++c) {
        index_t m0 = c * chunk, m1 = std::min(m, m0 + chunk);
        im2col(g, x, m0, m1, col.data());
        T* yc = y + m0 * g.cout;
        weight.gemm(false, m1 - m0, T(1), col.data(), T(0), yc);
        if (bias || relu) add_bias(yc, bias, m1 - m0, g.cout, relu);  // while the chunk is still in cache
      }
    }
  }

  /// dx += dL/dx, dw += dL/dw, db += dL/db from dy; any output pointer may be null.
  template <class T>
  static void backward(detail::conv2d_geometry const& g, T const* x, T const* w, T const* dy, T* dx, T* dw, T* db) {
    index_t m = g.rows(), k = g.depth();
    if (m == 0 || g.cout == 0) return;
    if (db) bias_backward(dy, m, g.cout, db);
    if (!dx && !dw) return;
    if (g.is_pointwise()) {
      index_t team = threads_for(g);
      if (team > 1 && (team - 1) * k * g.cout * static_cast<index_t>(sizeof(T)) <= (index_t(64) << 20)) {
        backward_by_chunks(g, x, w, dy, dx, dw, forward_chunk_rows(g, sizeof(T), team));
      } else {
        if (dw) matmul_impl<cpu>::gemm(true, false, k, g.cout, m, T(1), x, dy, T(1), dw);  // x^T dy
        if (dx) matmul_impl<cpu>::gemm(false, true, m, k, g.cout, T(1), dy, w, T(1), dx);  // dy w^T
      }
      return;
    }
    if (uses_shifted(g)) return backward_shifted(g, x, w, dy, dx, dw);
    index_t images = backward_images_per_chunk(g, sizeof(T), dw != nullptr);
    if (images > 0) {
      backward_by_chunks(g, x, w, dy, dx, dw, images * g.ho * g.wo);
      return;
    }
    // One chunk at a time, each GEMM and col2im_add using every thread.
    index_t chunk = chunk_rows(g, sizeof(T));
    auto col = tensor<T, cpu>::uninitialized(shape{chunk, k});
    for_each_chunk(g, chunk, [&](index_t m0, index_t m1) {
      T const* dyc = dy + m0 * g.cout;
      if (dw) {  // dw += col^T dy
        im2col(g, x, m0, m1, col.data());
        matmul_impl<cpu>::gemm(true, false, k, g.cout, m1 - m0, T(1), col.data(), dyc, T(1), dw);
      }
      if (dx) {  // dcol = dy w^T, then scattered back onto the input pixels it came from
        matmul_impl<cpu>::gemm(false, true, m1 - m0, k, g.cout, T(1), dyc, w, T(0), col.data());
        col2im_add(g, col.data(), m0, m1, dx);
      }
    });
  }

  /// Backward with chunks of output rows divided among the threads (a static schedule): each
  /// thread runs im2col, single-threaded GEMMs and col2im_add on its own chunks. Chunks are
  /// whole images, whose input pixels no other chunk touches, unless the convolution is
  /// pointwise (then dx rows are dy rows, and the GEMMs read x as stored). dw is summed per
  /// thread (thread 0 straight into dw), then reduced in thread order, so the result does not
  /// depend on timing. Without this, a small dw (64 x 64 from 25088 rows) is one GEMM that
  /// Eigen can only split along its 64 rows.
  template <class T>
  static void backward_by_chunks(detail::conv2d_geometry const& g, T const* x, T const* w, T const* dy, T* dx, T* dw,
                                 index_t rows) {
    index_t const m = g.rows(), k = g.depth(), kn = k * g.cout;
    index_t const chunks = (m + rows - 1) / rows, team = threads_for(g);
    bool const pointwise = g.is_pointwise();
    auto partial = dw ? tensor<T, cpu>::uninitialized(shape{team - 1, kn}) : tensor<T, cpu>();
    typename matmul_impl<cpu>::template prepared_rhs<T> const weight_t(true, g.cout, k, dx ? w : nullptr);  // w^T
#pragma omp parallel num_threads(static_cast<int>(team))
    {
      index_t t = thread_index();
      auto col = pointwise ? tensor<T, cpu>() : tensor<T, cpu>::uninitialized(shape{rows, k});
      T* dwt = t == 0 ? dw : (dw ? partial.data() + (t - 1) * kn : nullptr);
      bool fresh = t != 0;  // a private partial is assigned by its first GEMM (beta = 0)
#pragma omp for schedule(static)
      for (index_t c = 0; c < chunks; ++c) {
        index_t m0 = c * rows, m1 = std::min(m, m0 + rows);
        T const* dyc = dy + m0 * g.cout;
        if (dw) {
          T const* a = pointwise ? x + m0 * k : col.data();
          if (!pointwise) im2col(g, x, m0, m1, col.data());
          matmul_impl<cpu>::gemm(true, false, k, g.cout, m1 - m0, T(1), a, dyc, fresh ? T(0) : T(1), dwt);
          fresh = false;
        }
        if (dx && pointwise) {
          weight_t.gemm(false, m1 - m0, T(1), dyc, T(1), dx + m0 * k);
        } else if (dx) {
          weight_t.gemm(false, m1 - m0, T(1), dyc, T(0), col.data());
          col2im_add(g, col.data(), m0, m1, dx);
        }
      }
      if (dw) {
        if (fresh) std::fill(dwt, dwt + kn, T(0));  // a thread that got no chunk
#pragma omp barrier
        index_t actual = team_size();  // may be below team under OMP_DYNAMIC
#pragma omp for schedule(static)
        for (index_t e = 0; e < kn; ++e) {
          T sum = dw[e];
          for (index_t u = 1; u < actual; ++u) sum += partial.data()[(u - 1) * kn + e];
          dw[e] = sum;
        }
      }
    }
  }

  // ---- "same" convolutions without im2col ---------------------------------------------------
  //
  // A stride-1, undilated convolution with an odd kernel and padding (k - 1) / 2 keeps the
  // image's size. Pad the input once into xp (N, H + KH - 1, W + KW - 1, C), Wp = W + KW - 1
  // wide, and number the output pixels of an image along the padded width: i = oh * Wp + ow,
  // ow in [0, Wp), of which the first W are real and the last KW - 1 are discarded. Then the
  // input run that kernel row a reads for pixel i (KW * Cin values) starts at xp[(i + a * Wp) * Cin]:
  // row i of a matrix whose rows are Cin apart. So the convolution is KH GEMMs that read the
  // padded input as it is stored (y += A_a w[a]), with no im2col copy (nine times the input for a
  // 3x3 kernel) and no col2im: the input gradient is the same construction on the padded output
  // gradient with the kernel flipped, and the weight gradient is w[a] += A_a^T dy', where dy' (dy
  // along the padded width, zero in the discarded columns) is a view of that padded gradient.
  // The price is the KW - 1 discarded columns per row, so the path is taken where they are at
  // most an eighth of the row.

  /// Whether the convolution is "same" (see above) and not pointwise.
  static bool shifted_applies(detail::conv2d_geometry const& g) {
    return g.stride_h == 1 && g.stride_w == 1 && g.dilation_h == 1 && g.dilation_w == 1 && g.kh % 2 == 1 &&
           g.kw % 2 == 1 && 2 * g.pad_h == g.kh - 1 && 2 * g.pad_w == g.kw - 1 && !g.is_pointwise();
  }
  static bool uses_shifted(detail::conv2d_geometry const& g) {
    if (shifted_mode() == 0 || !shifted_applies(g)) return false;
    return shifted_mode() == 1 || 8 * (g.kw - 1) <= g.wo;
  }

  /// src (N, H, W, C) into (N, H + KH - 1, W + KW - 1, C), zero around the image, followed by
  /// (KW - 1) * C zeros: the last image's discarded columns read that far.
  template <class T>
  static tensor<T, cpu> pad_same(detail::conv2d_geometry const& g, T const* src, index_t c) {
    index_t const hp = g.h + g.kh - 1, wp = g.w + g.kw - 1, image = hp * wp * c;
    auto out = tensor<T, cpu>::uninitialized(shape{g.n * image + (g.kw - 1) * c});
    T* d = out.data();
#pragma omp parallel for schedule(static) if (g.n * image > (1 << 15))
    for (index_t r = 0; r < g.n * hp; ++r) {
      index_t const n = r / hp, y = r % hp - g.pad_h;
      T* row = d + r * wp * c;
      if (y < 0 || y >= g.h) {
        std::fill(row, row + wp * c, T(0));
        continue;
      }
      std::fill(row, row + g.pad_w * c, T(0));
      std::memcpy(row + g.pad_w * c, src + (n * g.h + y) * g.w * c, sizeof(T) * static_cast<std::size_t>(g.w * c));
      std::fill(row + (g.pad_w + g.w) * c, row + wp * c, T(0));
    }
    std::fill(d + g.n * image, d + out.numel(), T(0));
    return out;
  }

  /// Output rows (oh) per chunk of the shifted path: about `target` GEMM rows (oh * Wp), evened
  /// out over the image.
  static index_t shifted_chunk_rows(detail::conv2d_geometry const& g, index_t target) {
    index_t const wp = g.w + g.kw - 1, blocks = std::max<index_t>(1, (g.ho * wp + target - 1) / target);
    return (g.ho + blocks - 1) / blocks;
  }

  /// y = conv(x, w) + bias (then ReLU) through KH shifted GEMMs per chunk of output rows.
  template <class T>
  static void forward_shifted(detail::conv2d_geometry const& g, T const* x, T const* w, T const* bias, T* y,
                              bool relu) {
    index_t const hp = g.h + g.kh - 1, wp = g.w + g.kw - 1, run = g.kw * g.cin;
    tensor<T, cpu> const xp = pad_same(g, x, g.cin);
    index_t const rows = shifted_chunk_rows(g, 1024), per_image = (g.ho + rows - 1) / rows, chunks = g.n * per_image;
    std::deque<typename matmul_impl<cpu>::template prepared_rhs<T>> weight;  // w[a]: (KW * Cin) x Cout (not movable)
    for (index_t a = 0; a < g.kh; ++a) weight.emplace_back(false, run, g.cout, w + a * run * g.cout);
    index_t const team = std::min(threads_for(g), chunks);
#pragma omp parallel num_threads(static_cast<int>(team)) if (team > 1)
    {
      auto part = tensor<T, cpu>::uninitialized(shape{rows * wp, g.cout});
#pragma omp for schedule(dynamic, 1)
      for (index_t c = 0; c < chunks; ++c) {
        index_t const n = c / per_image, oh0 = c % per_image * rows, oh1 = std::min(g.ho, oh0 + rows);
        T const* base = xp.data() + (n * hp + oh0) * wp * g.cin;
        for (index_t a = 0; a < g.kh; ++a)
          weight[a].gemm(false, (oh1 - oh0) * wp, T(1), base + a * wp * g.cin, a == 0 ? T(0) : T(1), part.data(),
                         g.cin);
        T* yc = y + (n * g.ho + oh0) * g.wo * g.cout;
        for (index_t oh = oh0; oh < oh1; ++oh)  // the real columns of each row
          std::memcpy(yc + (oh - oh0) * g.wo * g.cout, part.data() + (oh - oh0) * wp * g.cout,
                      sizeof(T) * static_cast<std::size_t>(g.wo * g.cout));
        if (bias || relu) add_bias(yc, bias, (oh1 - oh0) * g.wo, g.cout, relu);
      }
    }
  }

  /// dx += dL/dx and dw += dL/dw through shifted GEMMs on the padded output gradient. Chunks of
  /// output rows are divided among the threads statically; dw is summed per thread and reduced
  /// in thread order, as in backward_by_chunks.
  template <class T>
  static void backward_shifted(detail::conv2d_geometry const& g, T const* x, T const* w, T const* dy, T* dx, T* dw) {
    index_t const hp = g.h + g.kh - 1, wp = g.w + g.kw - 1, kn = g.depth() * g.cout;
    index_t const run_in = g.kw * g.cin, run_out = g.kw * g.cout;
    tensor<T, cpu> const dyp = pad_same(g, dy, g.cout);  // the output has the input's height and width
    tensor<T, cpu> const xp = dw ? pad_same(g, x, g.cin) : tensor<T, cpu>();
    // the flipped kernel: wf[q, r, o, c] = w[KH-1-q, KW-1-r, c, o], so dx = sum_q A_q(dyp) wf[q]
    auto wf = dx ? tensor<T, cpu>::uninitialized(shape{g.kh, g.kw, g.cout, g.cin}) : tensor<T, cpu>();
    std::deque<typename matmul_impl<cpu>::template prepared_rhs<T>> flipped;
    if (dx) {
      for (index_t q = 0; q < g.kh; ++q)
        for (index_t r = 0; r < g.kw; ++r)
          for (index_t c = 0; c < g.cin; ++c)
            for (index_t o = 0; o < g.cout; ++o)
              wf.data()[((q * g.kw + r) * g.cout + o) * g.cin + c] =
                  w[(((g.kh - 1 - q) * g.kw + g.kw - 1 - r) * g.cin + c) * g.cout + o];
      for (index_t q = 0; q < g.kh; ++q) flipped.emplace_back(false, run_out, g.cin, wf.data() + q * run_out * g.cin);
    }
    index_t const rows = shifted_chunk_rows(g, 2048), per_image = (g.ho + rows - 1) / rows, chunks = g.n * per_image;
    index_t const team = std::min(threads_for(g), chunks);
    auto partial = dw && team > 1 ? tensor<T, cpu>::uninitialized(shape{team - 1, kn}) : tensor<T, cpu>();
#pragma omp parallel num_threads(static_cast<int>(team)) if (team > 1)
    {
      index_t const t = thread_index();
      T* dwt = t == 0 ? dw : (dw ? partial.data() + (t - 1) * kn : nullptr);
      bool fresh = t != 0;  // a private partial is assigned by its first GEMMs (beta = 0)
      auto part = dx ? tensor<T, cpu>::uninitialized(shape{rows * wp, g.cin}) : tensor<T, cpu>();
#pragma omp for schedule(static)
      for (index_t c = 0; c < chunks; ++c) {
        index_t const n = c / per_image, oh0 = c % per_image * rows, oh1 = std::min(g.ho, oh0 + rows);
        index_t const m = (oh1 - oh0) * wp;
        if (dw) {  // w[a] += A_a^T dy', dy' = dy along the padded width (zero in the discarded columns)
          T const* dyv = dyp.data() + ((n * hp + oh0 + g.pad_h) * wp + g.pad_w) * g.cout;
          typename matmul_impl<cpu>::template prepared_rhs<T> const dyb(false, m, g.cout, dyv);
          T const* base = xp.data() + (n * hp + oh0) * wp * g.cin;
          for (index_t a = 0; a < g.kh; ++a)
            dyb.gemm(true, run_in, T(1), base + a * wp * g.cin, fresh ? T(0) : T(1), dwt + a * run_in * g.cout, g.cin);
          fresh = false;
        }
        if (dx) {  // the input rows oh0 .. oh1 (same size): sum_q A_q(dyp) wf[q], real columns added to dx
          T const* base = dyp.data() + (n * hp + oh0) * wp * g.cout;
          for (index_t q = 0; q < g.kh; ++q)
            flipped[q].gemm(false, m, T(1), base + q * wp * g.cout, q == 0 ? T(0) : T(1), part.data(), g.cout);
          for (index_t ih = oh0; ih < oh1; ++ih) {
            T* d = dx + ((n * g.h + ih) * g.w) * g.cin;
            T const* s = part.data() + (ih - oh0) * wp * g.cin;
            for (index_t e = 0; e < g.w * g.cin; ++e) d[e] += s[e];
          }
        }
      }
      if (dw && team > 1) {
        if (fresh && t != 0) std::fill(dwt, dwt + kn, T(0));  // a thread that got no chunk
#pragma omp barrier
        index_t const actual = team_size();  // may be below team under OMP_DYNAMIC
#pragma omp for schedule(static)
        for (index_t e = 0; e < kn; ++e) {
          T sum = dw[e];
          for (index_t u = 1; u < actual; ++u) sum += partial.data()[(u - 1) * kn + e];
          dw[e] = sum;
        }
      }
    }
  }

  // ---- pieces, public for tests and benchmarks ----------------------------------------------

  /// Rows per forward chunk: a column buffer of about 1 MiB (the core's L2) but at least 256
  /// rows, so that packing the weight (K x Cout) once per GEMM stays cheap next to the GEMM
  /// itself (about 10/rows of it); then evened out so that every thread gets as many chunks.
  static index_t forward_chunk_rows(detail::conv2d_geometry const& g, std::size_t elem_size, index_t team) {
    index_t row_bytes = std::max<index_t>(1, g.depth() * static_cast<index_t>(elem_size));
    index_t rows = column_budget_bytes() > 0 ? static_cast<index_t>(column_budget_bytes()) / row_bytes
                                             : std::max<index_t>(256, (index_t(1) << 20) / row_bytes);
    rows = std::min(rows, (index_t(64) << 20) / (team * row_bytes));  // all buffers together <= 64 MiB
    rows = std::max<index_t>(rows, 1);
    index_t rounds = (g.rows() + team * rows - 1) / (team * rows);  // chunks per thread
    return std::max<index_t>(1, (g.rows() + team * rounds - 1) / (team * rounds));
  }

  /// Images per chunk of backward_by_chunks: chunks of about 256 rows or 1 MiB of columns (whole
  /// images, evened out over the threads), or 0 when that path does not apply: one thread, fewer
  /// images than threads, an image whose columns exceed the budget (8 MiB when automatic), or all
  /// buffers together above 64 MiB.
  static index_t backward_images_per_chunk(detail::conv2d_geometry const& g, std::size_t elem_size, bool with_dw) {
    index_t team = threads_for(g), per_image = g.ho * g.wo;
    if (team < 2 || g.n < team) return 0;
    index_t row_bytes = std::max<index_t>(1, g.depth() * static_cast<index_t>(elem_size));
    index_t budget = column_budget_bytes() > 0 ? static_cast<index_t>(column_budget_bytes()) : index_t(8) << 20;
    if (per_image * row_bytes > budget) return 0;
    index_t target = column_budget_bytes() > 0 ? budget / row_bytes : std::max<index_t>(256, (index_t(1) << 20) / row_bytes);
    index_t images = std::max<index_t>(1, std::min(target, budget / row_bytes) / per_image);
    index_t rounds = (g.n + team * images - 1) / (team * images);  // chunks per thread
    images = (g.n + team * rounds - 1) / (team * rounds);
    index_t bytes = team * images * per_image * row_bytes +
                    (with_dw ? (team - 1) * g.depth() * g.cout * static_cast<index_t>(elem_size) : 0);
    return bytes > (index_t(64) << 20) ? 0 : images;
  }

  /// Rows per chunk of the other backward path: whole images when one image's columns fit the
  /// budget, else a part of one image (chunks never straddle an image boundary then, which
  /// col2im_add relies on). Each GEMM and col2im_add of a chunk uses every thread, so the
  /// automatic budget is about 1 MiB per thread, at least 128 rows per thread (see
  /// forward_chunk_rows).
  static index_t chunk_rows(detail::conv2d_geometry const& g, std::size_t elem_size) {
    index_t per_image = g.ho * g.wo;
    index_t row_bytes = std::max<index_t>(1, g.depth() * static_cast<index_t>(elem_size));
    index_t rows = column_budget_bytes() > 0 ? static_cast<index_t>(column_budget_bytes()) / row_bytes
                                             : std::max((threads() << 20) / row_bytes, 128 * threads());
    rows = std::max<index_t>(rows, 1);
    if (rows >= per_image) rows = rows / per_image * per_image;
    return std::max<index_t>(1, std::min(rows, g.rows()));
  }

  /// Calls f(m0, m1) for consecutive row ranges of at most `chunk` rows covering [0, rows()).
  template <class F>
  static void for_each_chunk(detail::conv2d_geometry const& g, index_t chunk, F&& f) {
    index_t per_image = g.ho * g.wo, total = g.rows();
    for (index_t m0 = 0; m0 < total;) {
      index_t m1 = std::min(total, m0 + chunk);
      if (chunk < per_image) m1 = std::min(m1, (m0 / per_image + 1) * per_image);
      f(m0, m1);
      m0 = m1;
    }
  }

  /// The kernel columns b whose input column iw0 + b * dw lies inside [0, w): [*lo, *hi) (empty
  /// when none does). Division only for a dilated kernel.
  static void valid_taps(index_t iw0, index_t kw, index_t w, index_t dw, index_t* lo, index_t* hi) {
    if (dw == 1) {
      *lo = std::max<index_t>(0, -iw0);
      *hi = std::min(kw, w - iw0);
    } else {
      *lo = iw0 < 0 ? (-iw0 + dw - 1) / dw : 0;
      *hi = w - 1 - iw0 < 0 ? 0 : std::min(kw, (w - 1 - iw0) / dw + 1);
    }
    if (*hi < *lo) *hi = *lo;
  }

  /// Calls f(lo, hi) on this thread's share of [m0, m1): the whole range outside a parallel region.
  template <class F>
  static void thread_share(index_t m0, index_t m1, F&& f) {
    index_t const t = thread_index(), team = team_size(), rows = m1 - m0;
    index_t const lo = m0 + rows * t / team, hi = m0 + rows * (t + 1) / team;
    if (hi > lo) f(lo, hi);
  }

  /// col[m - m0, (a, b, c)] = x[n, oh*sh - ph + a*dh, ow*sw - pw + b*dw, c] for output rows
  /// m = (n, oh, ow) in [m0, m1), zero where the tap falls in the padding. Writes every element.
  /// Each thread walks its rows in order, so (n, oh, ow) is divided out once per thread, not per
  /// row (four integer divisions cost as much as copying a 16-channel row).
  template <class T>
  static void im2col(detail::conv2d_geometry const& g, T const* x, index_t m0, index_t m1, T* col) {
    index_t const k = g.depth(), per_image = g.ho * g.wo, run = g.kw * g.cin, cin = g.cin;
    index_t const dw = g.dilation_w;
#pragma omp parallel if ((m1 - m0) * k > (1 << 15))
    thread_share(m0, m1, [&](index_t lo, index_t hi) {
      index_t n = lo / per_image, r = lo % per_image, oh = r / g.wo, ow = r % g.wo;
      for (index_t m = lo; m < hi; ++m) {
        T* dst = col + (m - m0) * k;
        T const* xn = x + n * g.h * g.w * cin;
        index_t ih0 = oh * g.stride_h - g.pad_h, iw0 = ow * g.stride_w - g.pad_w;
        index_t b_lo, b_hi;  // taps b in [b_lo, b_hi) read input columns inside the image
        valid_taps(iw0, g.kw, g.w, dw, &b_lo, &b_hi);
        for (index_t a = 0; a < g.kh; ++a, dst += run) {
          index_t ih = ih0 + a * g.dilation_h;
          if (ih < 0 || ih >= g.h || b_lo == b_hi) {
            std::fill(dst, dst + run, T(0));
            continue;
          }
          T const* xrow = xn + ih * g.w * cin;
          std::fill(dst, dst + b_lo * cin, T(0));
          if (dw == 1) {  // the valid taps of this kernel row are one contiguous run of the input
            std::memcpy(dst + b_lo * cin, xrow + (iw0 + b_lo) * cin,
                        sizeof(T) * static_cast<std::size_t>((b_hi - b_lo) * cin));
          } else {
            for (index_t b = b_lo; b < b_hi; ++b)
              std::memcpy(dst + b * cin, xrow + (iw0 + b * dw) * cin, sizeof(T) * static_cast<std::size_t>(cin));
          }
          std::fill(dst + b_hi * cin, dst + run, T(0));
        }
        if (++ow == g.wo) {
          ow = 0;
          if (++oh == g.ho) oh = 0, ++n;
        }
      }
    });
  }

  /// The adjoint of im2col: dx[n, ih, iw, c] += every dcol entry that im2col copied from there,
  /// for output rows [m0, m1). A gather over input rows, so threads never write the same pixel:
  /// for each kernel row that reads input row ih, each output pixel of that row adds back the
  /// run im2col copied (one contiguous run of kw * cin values when the kernel is not dilated).
  template <class T>
  static void col2im_add(detail::conv2d_geometry const& g, T const* dcol, index_t m0, index_t m1, T* dx) {
    index_t const k = g.depth(), per_image = g.ho * g.wo, cin = g.cin, run = g.kw * cin, dw = g.dilation_w;
    index_t n0 = m0 / per_image, n1 = (m1 - 1) / per_image + 1;
    index_t ih_lo = 0, ih_hi = g.h;
    if (n1 - n0 == 1) {  // possibly part of one image: only the input rows its outputs read
      index_t oh_first = (m0 - n0 * per_image) / g.wo, oh_last = (m1 - 1 - n0 * per_image) / g.wo;
      ih_lo = std::max<index_t>(0, oh_first * g.stride_h - g.pad_h);
      ih_hi = std::min(g.h, oh_last * g.stride_h - g.pad_h + (g.kh - 1) * g.dilation_h + 1);
    }
    index_t nrows = ih_hi - ih_lo;
    if (nrows <= 0) return;
#pragma omp parallel for schedule(static) if ((n1 - n0) * nrows * g.w * k > (1 << 15))
    for (index_t t = 0; t < (n1 - n0) * nrows; ++t) {
      index_t n = n0 + t / nrows, ih = ih_lo + t % nrows;
      T* drow = dx + (n * g.h + ih) * g.w * cin;
      for (index_t a = 0; a < g.kh; ++a) {
        index_t th = ih + g.pad_h - a * g.dilation_h;
        if (th < 0) break;
        if (th % g.stride_h != 0 || th / g.stride_h >= g.ho) continue;
        index_t row0 = n * per_image + th / g.stride_h * g.wo;  // output row (n, oh)'s first m
        index_t ow_lo = std::max<index_t>(0, m0 - row0), ow_hi = std::min(g.wo, m1 - row0);
        for (index_t ow = ow_lo; ow < ow_hi; ++ow) {
          T const* src = dcol + (row0 + ow - m0) * k + a * run;
          index_t iw0 = ow * g.stride_w - g.pad_w, b_lo, b_hi;
          valid_taps(iw0, g.kw, g.w, dw, &b_lo, &b_hi);
          if (dw == 1) {
            T* d = drow + (iw0 + b_lo) * cin;
            T const* s = src + b_lo * cin;
            for (index_t j = 0, len = (b_hi - b_lo) * cin; j < len; ++j) d[j] += s[j];
          } else {
            for (index_t b = b_lo; b < b_hi; ++b) {
              T* d = drow + (iw0 + b * dw) * cin;
              for (index_t c = 0; c < cin; ++c) d[c] += src[b * cin + c];
            }
          }
        }
      }
    }
  }

  /// y[r, c] += bias[c] for r < m.
  /// y += bias (null: nothing), then max(y, 0) when relu; rows of cout.
  template <class T>
  static void add_bias(T* y, T const* bias, index_t m, index_t cout, bool relu = false) {
#pragma omp parallel for schedule(static) if (m * cout > (1 << 15))
    for (index_t r = 0; r < m; ++r) {
      T* yr = y + r * cout;
      if (bias)
        for (index_t c = 0; c < cout; ++c) yr[c] += bias[c];
      if (relu)
        for (index_t c = 0; c < cout; ++c) yr[c] = yr[c] > T(0) ? yr[c] : T(0);
    }
  }

  /// db[c] += sum_r dy[r, c], accumulated in double; threads own blocks of channels, so the
  /// result does not depend on the thread count.
  template <class T>
  static void bias_backward(T const* dy, index_t m, index_t cout, T* db) {
    constexpr index_t block = 16;
    index_t blocks = (cout + block - 1) / block;
#pragma omp parallel for schedule(static) if (m * cout > (1 << 15))
    for (index_t bi = 0; bi < blocks; ++bi) {
      index_t c0 = bi * block, c1 = std::min(cout, c0 + block);
      double acc[block] = {};
      for (index_t r = 0; r < m; ++r) {
        T const* row = dy + r * cout;
        for (index_t c = c0; c < c1; ++c) acc[c - c0] += static_cast<double>(row[c]);
      }
      for (index_t c = c0; c < c1; ++c) db[c] += static_cast<T>(acc[c - c0]);
    }
  }
};

}  // namespace arcnet::ops
