#pragma once
// CUDA backend of ops/conv2d.hpp, on gpu::stream(). A pointwise convolution (1x1, stride 1, no
// padding) is one cuBLAS GEMM on the NHWC input as stored. The others run on one of two
// backends (backend(), set_backend(), or ARCNET_CONV_BACKEND=gemm|cudnn in the environment):
//
// - cudnn (the default when the build found cuDNN; float and bf16): ops/cuda/conv2d_cudnn.cuh;
// - gemm (otherwise, and for double): im2col + cuBLAS GEMM (through matmul_impl<cuda>). The
//   output rows are processed in chunks whose im2col columns fit a bounded buffer (256 MiB by
//   default), so memory does not grow with the batch. The input gradient goes through
//   dcol = dy w^T and col2im, written as a gather (one thread per input element summing the taps
//   that read it, in a fixed order) rather than atomics.
//
// The bias gradient is a two-stage column sum in double. Every path gives the same bits on every
// run (cuDNN's algorithms are restricted to deterministic ones). bf16 tensors (the activations of
// bf16 mode) take the same paths with bf16 operands and fp32 accumulation: cuDNN on bf16
// tensors, cuBLAS GEMMs on bf16 operands, and the element-wise kernels compute in float.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <type_traits>

#include "arcnet/core/cuda.hpp"
#include "arcnet/core/tensor.hpp"
#include "arcnet/ops/cuda/conv2d_cudnn.cuh"
#include "arcnet/ops/cuda/matmul.cuh"  // matmul_impl<cuda>::gemm (the facade has included ops/matmul.hpp)

namespace arcnet::ops {

namespace cuda_kernels {

/// Element e of the im2col chunk that starts at output row m0: col[e / K, e % K] with the
/// column (a, b, c) = tap (a, b), channel c, as conv2d_impl<cpu>::im2col; 0 in the padding.
/// Host and device, so that the index math can be checked on the host against the CPU.
template <class T>
__host__ __device__ inline T conv2d_im2col_item(detail::conv2d_geometry const& g, T const* x, index_t m0,
                                                index_t e) {
  index_t const k = g.kh * g.kw * g.cin;
  index_t const r = e / k, j = e - r * k;
  index_t const tap = j / g.cin, c = j - tap * g.cin;
  index_t const a = tap / g.kw, b = tap - a * g.kw;
  index_t const m = m0 + r, per_image = g.ho * g.wo;
  index_t const n = m / per_image, rem = m - n * per_image;
  index_t const oh = rem / g.wo, ow = rem - oh * g.wo;
  index_t const ih = oh * g.stride_h - g.pad_h + a * g.dilation_h;
  index_t const iw = ow * g.stride_w - g.pad_w + b * g.dilation_w;
  if (ih < 0 || ih >= g.h || iw < 0 || iw >= g.w) return T(0);
  return x[((n * g.h + ih) * g.w + iw) * g.cin + c];
}

/// The adjoint of im2col for one input element: dx[i] plus every entry of the dcol chunk (output
/// rows [m0, m1)) that im2col copied from input element i, in the CPU's tap order (a, then b).
/// i runs over images [n0, ...) and, within each, input rows [ih_lo, ih_lo + nrows).
template <class T>
__host__ __device__ inline void conv2d_col2im_item(detail::conv2d_geometry const& g, T const* dcol, index_t m0,
                                                   index_t m1, index_t n0, index_t ih_lo, index_t nrows, index_t i,
                                                   T* dx) {
  index_t const cin = g.cin, k = g.kh * g.kw * cin, per_image = g.ho * g.wo;
  index_t const c = i % cin, pixel = i / cin;
  index_t const iw = pixel % g.w, t = pixel / g.w;
  index_t const ih = ih_lo + t % nrows, n = n0 + t / nrows;
  index_t const mbase = n * per_image;
  T* d = dx + ((n * g.h + ih) * g.w + iw) * cin + c;
  using C = compute_t<T>;  // float for bf16: the sum is rounded once
  C acc = convert<C>(*d);
  for (index_t a = 0; a < g.kh; ++a) {
    index_t const th = ih + g.pad_h - a * g.dilation_h;
    if (th < 0) break;  // th only decreases with a
    if (th % g.stride_h != 0 || th / g.stride_h >= g.ho) continue;
    index_t const oh = th / g.stride_h;
    for (index_t b = 0; b < g.kw; ++b) {
      index_t const tw = iw + g.pad_w - b * g.dilation_w;
      if (tw < 0) break;
      if (tw % g.stride_w != 0 || tw / g.stride_w >= g.wo) continue;
      index_t const mm = mbase + oh * g.wo + tw / g.stride_w;
      if (mm < m0 || mm >= m1) continue;
      acc += convert<C>(dcol[(mm - m0) * k + (a * g.kw + b) * cin + c]);
    }
  }
  *d = convert<T>(acc);
}

template <class T>
__global__ void conv2d_im2col(detail::conv2d_geometry g, T const* x, index_t m0, index_t count, T* col) {
  for (index_t e = blockIdx.x * index_t(blockDim.x) + threadIdx.x; e < count; e += index_t(gridDim.x) * blockDim.x)
    col[e] = conv2d_im2col_item(g, x, m0, e);
}

template <class T>
__global__ void conv2d_col2im(detail::conv2d_geometry g, T const* dcol, index_t m0, index_t m1, index_t n0,
                              index_t ih_lo, index_t nrows, index_t count, T* dx) {
  for (index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x; i < count; i += index_t(gridDim.x) * blockDim.x)
    conv2d_col2im_item(g, dcol, m0, m1, n0, ih_lo, nrows, i, dx);
}

/// y[r, c] += bias[c] (bias may be null), then max(y, 0) when relu; rows of cout.
template <class T>
__global__ void conv2d_bias_relu(T* y, T const* bias, index_t count, index_t cout, bool relu) {
  using C = compute_t<T>;
  for (index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x; i < count; i += index_t(gridDim.x) * blockDim.x) {
    C v = convert<C>(y[i]);
    if (bias) v += convert<C>(bias[i % cout]);
    if (relu) v = v > C(0) ? v : C(0);
    y[i] = convert<T>(v);
  }
}

inline constexpr int conv2d_sum_cols = 32;  // columns per block of conv2d_column_partials (one warp)
inline constexpr int conv2d_sum_rows = 8;   // rows read at once per block

/// Stage 1 of db = column sums of dy (rows x cols): block (x, s) sums, in double, the rows of
/// segment s for 32 consecutive columns (a warp reads 32 contiguous values), each thread a
/// strided subset of the rows, then adds the 8 threads' sums in a fixed order.
template <class T>
__global__ void conv2d_column_partials(T const* a, index_t rows, index_t cols, index_t seg_rows, double* partial) {
  __shared__ double sums[conv2d_sum_rows][conv2d_sum_cols];
  index_t const col = index_t(blockIdx.x) * conv2d_sum_cols + threadIdx.x;
  index_t const r0 = index_t(blockIdx.y) * seg_rows, r1 = r0 + seg_rows < rows ? r0 + seg_rows : rows;
  double acc = 0;
  if (col < cols)
    for (index_t r = r0 + threadIdx.y; r < r1; r += conv2d_sum_rows) acc += convert<double>(a[r * cols + col]);
  sums[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && col < cols) {
    double s = 0;
    for (int t = 0; t < conv2d_sum_rows; ++t) s += sums[t][threadIdx.x];
    partial[index_t(blockIdx.y) * cols + col] = s;
  }
}

/// Stage 2: out[c] += (T) sum over the segments, in segment order.
template <class T>
__global__ void conv2d_column_finish(double const* partial, index_t segments, index_t cols, T* out) {
  for (index_t c = blockIdx.x * index_t(blockDim.x) + threadIdx.x; c < cols; c += index_t(gridDim.x) * blockDim.x) {
    double s = 0;
    for (index_t t = 0; t < segments; ++t) s += partial[t * cols + c];
    out[c] = element_add(out[c], convert<T>(s));
  }
}

}  // namespace cuda_kernels

template <>
struct conv2d_impl<cuda> {
  /// Size in bytes of the im2col buffer, or 0 (the default) for 256 MiB: the output rows are
  /// processed in chunks whose columns fit. A process-wide setting, for tests (small values
  /// force many chunks, including chunks of part of an image) and tuning. It bounds cuDNN's
  /// workspace too.
  static std::size_t& column_budget_bytes() {
    static std::size_t bytes = 0;
    return bytes;
  }
  static std::size_t budget_bytes() {
    return column_budget_bytes() > 0 ? column_budget_bytes() : std::size_t(256) << 20;
  }

  /// The backend of the convolutions that are not pointwise (see the top of this file).
  enum class backend_kind { gemm, cudnn };
  /// Whether this translation unit was built with cuDNN (ARCNET_WITH_CUDNN).
  static constexpr bool cudnn_built() {
#if defined(ARCNET_WITH_CUDNN)
    return true;
#else
    return false;
#endif
  }
  static char const* name(backend_kind b) { return b == backend_kind::cudnn ? "cudnn" : "gemm"; }
  /// "gemm" or "cudnn" (the latter only when built with cuDNN); anything else is a config_error.
  static backend_kind parse_backend(std::string const& s) {
    if (s == "gemm") return backend_kind::gemm;
    if (s == "cudnn") return require_cudnn();
    arcnet::detail::raise<config_error>("conv2d backend: expected gemm or cudnn, got '", s, "'");
  }
  static backend_kind backend() { return backend_setting(); }
  /// How many cuDNN convolution calls this process has made, and how many cuDNN turned down (they
  /// ran on im2col instead); 0 without cuDNN.
  static std::uint64_t cudnn_runs() {
#if defined(ARCNET_WITH_CUDNN)
    return cudnn_conv::runs();
#else
    return 0;
#endif
  }
  static std::uint64_t cudnn_refusals() {
#if defined(ARCNET_WITH_CUDNN)
    return cudnn_conv::refusals();
#else
    return 0;
#endif
  }
  static void set_backend(backend_kind b) { backend_setting() = b == backend_kind::cudnn ? require_cudnn() : b; }

  /// y = conv(x, w) + bias (bias may be null), then max(y, 0) when relu; device pointers, NHWC /
  /// (KH, KW, Cin, Cout) row-major. Assigns y.
  template <class T>
  static void forward(detail::conv2d_geometry const& g, T const* x, T const* w, T const* bias, T* y,
                      bool relu = false) {
    index_t const m = g.rows(), k = g.depth();
    if (m == 0 || g.cout == 0) return;
    if (g.is_pointwise()) {
      matmul_impl<cuda>::gemm(false, false, m, g.cout, k, T(1), x, w, T(0), y);
    } else if (!cudnn_forward(g, x, w, y)) {
      index_t const chunk = chunk_rows(g, sizeof(T));
      auto col = tensor<T, cuda>::uninitialized(shape{chunk, k});
      for_each_chunk(g, chunk, [&](index_t m0, index_t m1) {
        im2col(g, x, m0, m1, col.data());
        matmul_impl<cuda>::gemm(false, false, m1 - m0, g.cout, k, T(1), col.data(), w, T(0), y + m0 * g.cout);
      });
    }
    if (bias || relu) {
      index_t const count = m * g.cout;
      ARCNET_CUDA_KERNEL(gpu::blocks_for(count), gpu::block_threads, 0, gpu::stream(), cuda_kernels::conv2d_bias_relu)(
          y, bias, count, g.cout, relu);
      ARCNET_CUDA_LAUNCH_CHECK("conv2d_bias_relu");
    }
  }

  /// dx += dL/dx, dw += dL/dw, db += dL/db from dy; any output pointer may be null.
  template <class T>
  static void backward(detail::conv2d_geometry const& g, T const* x, T const* w, T const* dy, T* dx, T* dw, T* db) {
    index_t const m = g.rows(), k = g.depth();
    if (m == 0 || g.cout == 0) return;
    if (db) bias_backward(dy, m, g.cout, db);
    if (!dx && !dw) return;
    if (g.is_pointwise()) {
      if (dw) matmul_impl<cuda>::gemm(true, false, k, g.cout, m, T(1), x, dy, T(1), dw);  // x^T dy
      if (dx) matmul_impl<cuda>::gemm(false, true, m, k, g.cout, T(1), dy, w, T(1), dx);  // dy w^T
      return;
    }
    cudnn_backward(g, x, w, dy, dx, dw);  // clears what cuDNN computed
    if (!dx && !dw) return;
    index_t const chunk = chunk_rows(g, sizeof(T));
    auto col = tensor<T, cuda>::uninitialized(shape{chunk, k});  // columns, then their gradient
    for_each_chunk(g, chunk, [&](index_t m0, index_t m1) {
      T const* dyc = dy + m0 * g.cout;
      if (dw) {  // dw += col^T dy
        im2col(g, x, m0, m1, col.data());
        matmul_impl<cuda>::gemm(true, false, k, g.cout, m1 - m0, T(1), col.data(), dyc, T(1), dw);
      }
      if (dx) {  // dcol = dy w^T, then gathered onto the input elements it came from
        matmul_impl<cuda>::gemm(false, true, m1 - m0, k, g.cout, T(1), dyc, w, T(0), col.data());
        col2im_add(g, col.data(), m0, m1, dx);
      }
    });
  }

  // ---- pieces, public for tests ---------------------------------------------------------------

  /// Rows per chunk: as many as the budget holds, whole images when one image fits (as the CPU's
  /// chunk_rows), at least 1.
  static index_t chunk_rows(detail::conv2d_geometry const& g, std::size_t elem_size) {
    std::size_t const budget = budget_bytes();
    index_t const per_image = g.ho * g.wo;
    index_t const row_bytes = std::max<index_t>(1, g.depth() * static_cast<index_t>(elem_size));
    index_t rows = std::max<index_t>(1, static_cast<index_t>(budget) / row_bytes);
    if (rows >= per_image) rows = rows / per_image * per_image;
    return std::max<index_t>(1, std::min(rows, g.rows()));
  }

  /// Calls f(m0, m1) for consecutive row ranges of at most `chunk` rows covering [0, rows());
  /// a chunk smaller than an image never straddles two images.
  template <class F>
  static void for_each_chunk(detail::conv2d_geometry const& g, index_t chunk, F&& f) {
    index_t const per_image = g.ho * g.wo, total = g.rows();
    for (index_t m0 = 0; m0 < total;) {
      index_t m1 = std::min(total, m0 + chunk);
      if (chunk < per_image) m1 = std::min(m1, (m0 / per_image + 1) * per_image);
      f(m0, m1);
      m0 = m1;
    }
  }

  /// col = the im2col rows of output rows [m0, m1) (every element written).
  template <class T>
  static void im2col(detail::conv2d_geometry const& g, T const* x, index_t m0, index_t m1, T* col) {
    index_t const count = (m1 - m0) * g.depth();
    if (count <= 0) return;
    ARCNET_CUDA_KERNEL(gpu::blocks_for(count), gpu::block_threads, 0, gpu::stream(), cuda_kernels::conv2d_im2col)(
        g, x, m0, count, col);
    ARCNET_CUDA_LAUNCH_CHECK("conv2d_im2col");
  }

  /// The input elements a chunk of output rows [m0, m1) reads: images [n0, n0 + images) and,
  /// within each, input rows [ih_lo, ih_lo + nrows) (only fewer than all when the chunk is part of
  /// one image), as the CPU's col2im_add.
  struct col2im_span {
    index_t n0, images, ih_lo, nrows;
  };
  static col2im_span col2im_span_of(detail::conv2d_geometry const& g, index_t m0, index_t m1) {
    index_t const per_image = g.ho * g.wo;
    index_t const n0 = m0 / per_image, n1 = (m1 - 1) / per_image + 1;
    index_t ih_lo = 0, ih_hi = g.h;
    if (n1 - n0 == 1) {  // possibly part of one image: only the input rows its outputs read
      index_t const oh_first = (m0 - n0 * per_image) / g.wo, oh_last = (m1 - 1 - n0 * per_image) / g.wo;
      ih_lo = std::max<index_t>(0, oh_first * g.stride_h - g.pad_h);
      ih_hi = std::min(g.h, oh_last * g.stride_h - g.pad_h + (g.kh - 1) * g.dilation_h + 1);
    }
    return {n0, n1 - n0, ih_lo, std::max<index_t>(0, ih_hi - ih_lo)};
  }

  /// dx += the adjoint of im2col applied to dcol (output rows [m0, m1)). One thread per input
  /// element of col2im_span_of.
  template <class T>
  static void col2im_add(detail::conv2d_geometry const& g, T const* dcol, index_t m0, index_t m1, T* dx) {
    if (m1 <= m0) return;
    col2im_span const s = col2im_span_of(g, m0, m1);
    index_t const count = s.images * s.nrows * g.w * g.cin;
    if (count <= 0) return;
    ARCNET_CUDA_KERNEL(gpu::blocks_for(count), gpu::block_threads, 0, gpu::stream(), cuda_kernels::conv2d_col2im)(
        g, dcol, m0, m1, s.n0, s.ih_lo, s.nrows, count, dx);
    ARCNET_CUDA_LAUNCH_CHECK("conv2d_col2im");
  }

  /// db[c] += sum_r dy[r, c], summed in double (as the CPU) over fixed segments of rows, then
  /// over the segments in order: the same bits on every run.
  template <class T>
  static void bias_backward(T const* dy, index_t m, index_t cout, T* db) {
    using namespace cuda_kernels;
    if (m <= 0 || cout <= 0) return;
    index_t const seg_rows = std::max<index_t>(64, (m + 255) / 256);  // at most 256 segments
    index_t const segments = (m + seg_rows - 1) / seg_rows;
    auto partial = tensor<double, cuda>::uninitialized(shape{segments, cout});
    dim3 const grid(static_cast<unsigned>((cout + conv2d_sum_cols - 1) / conv2d_sum_cols),
                    static_cast<unsigned>(segments));
    ARCNET_CUDA_KERNEL(grid, dim3(conv2d_sum_cols, conv2d_sum_rows), 0, gpu::stream(), conv2d_column_partials)(
        dy, m, cout, seg_rows, partial.data());
    ARCNET_CUDA_LAUNCH_CHECK("conv2d_column_partials");
    ARCNET_CUDA_KERNEL(gpu::blocks_for(cout), gpu::block_threads, 0, gpu::stream(), conv2d_column_finish)(
        partial.data(), segments, cout, db);
    ARCNET_CUDA_LAUNCH_CHECK("conv2d_column_finish");
  }

 private:
  /// backend_kind::cudnn, or a config_error when this build has no cuDNN.
  static backend_kind require_cudnn() {
    if (!cudnn_built())
      arcnet::detail::raise<config_error>("conv2d backend 'cudnn': this build has no cuDNN (configure with cuDNN "
                                          "at /usr/local/cuda, or choose 'gemm')");
    return backend_kind::cudnn;
  }
  static backend_kind& backend_setting() {
    static backend_kind b = [] {
      char const* env = std::getenv("ARCNET_CONV_BACKEND");
      if (env && *env) return parse_backend(env);
      return cudnn_built() ? backend_kind::cudnn : backend_kind::gemm;
    }();
    return b;
  }
  /// The cuDNN path when it is chosen and takes g: true when it ran.
  template <class T>
  static bool cudnn_forward(detail::conv2d_geometry const& g, T const* x, T const* w, T* y) {
#if defined(ARCNET_WITH_CUDNN)
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, bfloat16>)
      if (backend() == backend_kind::cudnn) return cudnn_conv::forward(g, x, w, y, budget_bytes());
#endif
    (void)g, (void)x, (void)w, (void)y;
    return false;
  }
  /// The gradients the cuDNN path computes when it is chosen; it sets each one it computed to null.
  template <class T>
  static void cudnn_backward(detail::conv2d_geometry const& g, T const* x, T const* w, T const* dy, T*& dx, T*& dw) {
#if defined(ARCNET_WITH_CUDNN)
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, bfloat16>)
      if (backend() == backend_kind::cudnn) cudnn_conv::backward(g, x, w, dy, dx, dw, budget_bytes());
#endif
    (void)g, (void)x, (void)w, (void)dy, (void)dx, (void)dw;
  }
};

}  // namespace arcnet::ops
