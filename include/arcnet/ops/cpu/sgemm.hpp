#pragma once
// Float GEMM for x86-64 CPUs with AVX-512 or AVX2 + FMA: C = alpha op(A) op(B) + beta C on
// row-major matrices. matmul_impl<cpu> sends float products here and everything else (double,
// other CPUs, translation units compiled by nvcc, products too thin for the kernel) to Eigen.
//
// Why not Eigen for float: its 48x4 kernel reaches 60-70 % of an AVX-512 core's peak on the
// convolution shapes of ResNet-50; this 14x32 kernel reaches 75-90 % (benchmarks/ops/NOTES.md),
// and its 14x16 form does the same for a B of 16 columns (a 16-channel convolution).
// The kernels are compiled with target attributes and picked at run time, so a library built
// for plain x86-64 (no -march flag) still uses the vector units the machine has.
//
// The structure is GotoBLAS / BLIS: B is packed whole into panels of NR columns (once per
// product, or once for many products: packed_b); A is read in place (the kernel broadcasts
// from it, so rows of a row-major A or columns of a transposed one serve as they are) unless
// its stride aliases in the cache; the kernel keeps an MR x NR tile of C in registers for KC
// steps. Each element of C is summed over k in the same order whatever the thread count, so
// results do not depend on it.
#include <algorithm>
#include <vector>

#include "arcnet/core/error.hpp"
#include "arcnet/core/shape.hpp"
#include "arcnet/core/storage.hpp"
#include "arcnet/core/threads.hpp"

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__)) && !defined(__CUDACC__)
#define ARCNET_SGEMM_X86 1
#include <immintrin.h>
#else
#define ARCNET_SGEMM_X86 0
#endif

namespace arcnet::ops::sgemm {

/// The kernel family: Eigen's GEMM (portable), or one of ours.
enum class kernel_isa { eigen, avx2, avx512 };

inline char const* name(kernel_isa k) {
  switch (k) {
    case kernel_isa::avx512: return "avx512";
    case kernel_isa::avx2: return "avx2";
    default: return "eigen";
  }
}

/// The best kernel this CPU runs.
inline kernel_isa detected() {
#if ARCNET_SGEMM_X86
  static kernel_isa const isa = [] {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return kernel_isa::avx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return kernel_isa::avx2;
    return kernel_isa::eigen;
  }();
  return isa;
#else
  return kernel_isa::eigen;
#endif
}

namespace detail {
inline kernel_isa& selected() {
  static kernel_isa k = detected();
  return k;
}
}  // namespace detail

/// The kernel float products use from now on (process-wide; for tests and benchmarks).
inline kernel_isa active() { return detail::selected(); }
/// Selects a kernel; one the CPU cannot run is an error.
inline void select(kernel_isa k) {
  kernel_isa best = detected();
  if (static_cast<int>(k) > static_cast<int>(best))
    arcnet::detail::raise<error>("sgemm::select: this CPU (or build) cannot run the ", name(k), " kernel; best: ",
                                 name(best));
  detail::selected() = k;
}

namespace detail {

/// A read-only strided matrix view: element (i, j) is p[i * rs + j * cs].
struct view {
  float const* p;
  index_t rs, cs;
  float const* at(index_t i, index_t j) const { return p + i * rs + j * cs; }
};

/// Register tile of C: MR rows (each broadcast from A) x NR columns (vectors loaded from B).
/// NR is two vectors (the wide tile), or one (the narrow tile) when all of B is that narrow:
/// a product with 16 columns, a 16-channel convolution, would leave half of a wide tile idle.
template <kernel_isa K>
struct tile;
template <>
struct tile<kernel_isa::avx512> {
  static constexpr index_t mr = 14, lanes = 16;  // 28 accumulators + 2 of B + 1 broadcast = 31 of 32 zmm
};
template <>
struct tile<kernel_isa::avx2> {
  static constexpr index_t mr = 6, lanes = 8;  // 12 accumulators + 2 of B + 1 broadcast = 15 of 16 ymm
};

// Blocking: KC steps of k per kernel call (an A micro-panel of MR x KC floats, 14 KiB, stays
// in L1 while the kernel runs along the row band); NC columns of B at a time (KC x NC floats,
// 512 KiB, in L2 while the band is swept); MC rows of A per block.
constexpr index_t kc_block = 256, nc_block = 512, mc_block = 14 * 6 * 4;

/// Writes an MR x NR register tile into C (mr x nr of it at the edges): C = alpha acc + beta C,
/// with C not read when beta == 0 (so NaN in a fresh buffer does not leak into the result).
inline void store_edge(float const* acc, index_t ld_acc, float* c, index_t ldc, float alpha, float beta, index_t mr,
                       index_t nr) {
  for (index_t i = 0; i < mr; ++i)
    for (index_t j = 0; j < nr; ++j) {
      float v = alpha * acc[i * ld_acc + j];
      c[i * ldc + j] = beta == 0.f ? v : v + beta * c[i * ldc + j];
    }
}

#if ARCNET_SGEMM_X86
/// C tile (mr x nr of MR x NR, NR = 16 NV) = alpha * sum_k A(i, k) B(k, j) + beta C. A: element
/// (i, k) at a[i * ars + k * acs]; B: packed, NR floats per k. An edge tile is written with
/// masked stores.
template <int NV>
__attribute__((target("avx512f"))) inline void kernel_avx512(index_t kc, float const* a, index_t ars, index_t acs,
                                                             float const* b, float* c, index_t ldc, float alpha,
                                                             float beta, index_t mr, index_t nr) {
  constexpr int MR = 14, NR = 16 * NV;
  __m512 acc[NV][MR];
  for (int i = 0; i < MR; ++i) {
    for (int v = 0; v < NV; ++v) acc[v][i] = _mm512_setzero_ps();
    // C's tile is read or written only at the end: fetch it now (5 % on the GEMMs of ResNet-50)
    for (int v = 0; v < NV; ++v) _mm_prefetch(reinterpret_cast<char const*>(c + i * ldc + 16 * v), _MM_HINT_T0);
  }
  for (index_t p = 0; p < kc; ++p) {
    __m512 bv[NV];
    for (int v = 0; v < NV; ++v) bv[v] = _mm512_loadu_ps(b + 16 * v);
#pragma GCC unroll 14
    for (int i = 0; i < MR; ++i) {
      __m512 ai = _mm512_set1_ps(a[i * ars]);
      for (int v = 0; v < NV; ++v) acc[v][i] = _mm512_fmadd_ps(ai, bv[v], acc[v][i]);
    }
    a += acs;
    b += NR;
  }
  __m512 const va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  if (mr == MR && nr == NR) {
    for (int i = 0; i < MR; ++i) {
      float* ci = c + i * ldc;
      for (int v = 0; v < NV; ++v) {
        __m512 r = _mm512_mul_ps(va, acc[v][i]);
        if (beta != 0.f) r = _mm512_fmadd_ps(vb, _mm512_loadu_ps(ci + 16 * v), r);
        _mm512_storeu_ps(ci + 16 * v, r);
      }
    }
    return;
  }
  alignas(64) float t[MR * NR];
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) _mm512_store_ps(t + i * NR + 16 * v, acc[v][i]);
  for (index_t i = 0; i < mr; ++i) {
    float* ci = c + i * ldc;
    for (index_t v = 0; v < NV && 16 * v < nr; ++v) {
      index_t const cols = std::min<index_t>(16, nr - 16 * v);
      __mmask16 const keep = static_cast<__mmask16>((1u << cols) - 1u);
      __m512 r = _mm512_mul_ps(va, _mm512_load_ps(t + i * NR + 16 * v));
      if (beta != 0.f) r = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(keep, ci + 16 * v), r);
      _mm512_mask_storeu_ps(ci + 16 * v, keep, r);
    }
  }
}

/// The AVX2 + FMA tile: MR = 6, NR = 8 NV.
template <int NV>
__attribute__((target("avx2,fma"))) inline void kernel_avx2(index_t kc, float const* a, index_t ars, index_t acs,
                                                            float const* b, float* c, index_t ldc, float alpha,
                                                            float beta, index_t mr, index_t nr) {
  constexpr int MR = 6, NR = 8 * NV;
  __m256 acc[NV][MR];
  for (int i = 0; i < MR; ++i) {
    for (int v = 0; v < NV; ++v) acc[v][i] = _mm256_setzero_ps();
    _mm_prefetch(reinterpret_cast<char const*>(c + i * ldc), _MM_HINT_T0);  // as in kernel_avx512
  }
  for (index_t p = 0; p < kc; ++p) {
    __m256 bv[NV];
    for (int v = 0; v < NV; ++v) bv[v] = _mm256_loadu_ps(b + 8 * v);
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      __m256 ai = _mm256_broadcast_ss(a + i * ars);
      for (int v = 0; v < NV; ++v) acc[v][i] = _mm256_fmadd_ps(ai, bv[v], acc[v][i]);
    }
    a += acs;
    b += NR;
  }
  if (mr == MR && nr == NR) {
    __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    for (int i = 0; i < MR; ++i) {
      float* ci = c + i * ldc;
      for (int v = 0; v < NV; ++v) {
        __m256 r = _mm256_mul_ps(va, acc[v][i]);
        if (beta != 0.f) r = _mm256_fmadd_ps(vb, _mm256_loadu_ps(ci + 8 * v), r);
        _mm256_storeu_ps(ci + 8 * v, r);
      }
    }
    return;
  }
  alignas(32) float t[MR * NR];
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) _mm256_store_ps(t + i * NR + 8 * v, acc[v][i]);
  store_edge(t, NR, c, ldc, alpha, beta, mr, nr);
}

template <kernel_isa K, index_t NR>
inline void kernel(index_t kc, float const* a, index_t ars, index_t acs, float const* b, float* c, index_t ldc,
                   float alpha, float beta, index_t mr, index_t nr) {
  constexpr int NV = static_cast<int>(NR / tile<K>::lanes);
  if constexpr (K == kernel_isa::avx512) kernel_avx512<NV>(kc, a, ars, acs, b, c, ldc, alpha, beta, mr, nr);
  else kernel_avx2<NV>(kc, a, ars, acs, b, c, ldc, alpha, beta, mr, nr);
}
#endif

/// B(k0 .. k0+kc, j0 .. j0+nc) into panels of NR columns, each kc x NR, zero-padded on the right.
/// Each source is read along its contiguous direction: rows of a row-major B, columns of a
/// transposed one (a gather across rows would touch a new cache line per element).
template <index_t NR>
void pack_b(view b, index_t k0, index_t kc, index_t j0, index_t nc, float* out) {
  for (index_t j = 0; j < nc; j += NR, out += kc * NR) {
    index_t w = std::min(NR, nc - j);
    if (b.cs == 1 && w == NR) {  // a fixed-size copy the compiler turns into vector moves (memcpy: a call per row)
      for (index_t p = 0; p < kc; ++p) {
        float const* src = b.at(k0 + p, j0 + j);
        for (index_t q = 0; q < NR; ++q) out[p * NR + q] = src[q];
      }
    } else if (b.cs == 1) {
      for (index_t p = 0; p < kc; ++p) {
        float const* src = b.at(k0 + p, j0 + j);
        for (index_t q = 0; q < NR; ++q) out[p * NR + q] = q < w ? src[q] : 0.f;
      }
    } else {
      for (index_t q = 0; q < w; ++q) {
        float const* src = b.at(k0, j0 + j + q);
        for (index_t p = 0; p < kc; ++p) out[p * NR + q] = src[p * b.rs];
      }
      for (index_t p = 0; p < kc; ++p) std::fill(out + p * NR + w, out + (p + 1) * NR, 0.f);
    }
  }
}

/// A(i0 .. i0+mc, k0 .. k0+kc) into panels of MR rows, each kc x MR, zero-padded at the bottom;
/// read along A's contiguous direction, as pack_b.
template <index_t MR>
void pack_a(view a, index_t i0, index_t mc, index_t k0, index_t kc, float* out) {
  for (index_t i = 0; i < mc; i += MR, out += kc * MR) {
    index_t h = std::min(MR, mc - i);
    if (a.rs == 1 && h == MR) {
      for (index_t p = 0; p < kc; ++p) {
        float const* src = a.at(i0 + i, k0 + p);
        for (index_t r = 0; r < MR; ++r) out[p * MR + r] = src[r];
      }
    } else if (a.rs == 1) {
      for (index_t p = 0; p < kc; ++p) {
        float const* src = a.at(i0 + i, k0 + p);
        for (index_t r = 0; r < MR; ++r) out[p * MR + r] = r < h ? src[r] : 0.f;
      }
    } else {
      for (index_t r = 0; r < h; ++r) {
        float const* src = a.at(i0 + i + r, k0);
        for (index_t p = 0; p < kc; ++p) out[p * MR + r] = src[p * a.cs];
      }
      for (index_t p = 0; p < kc; ++p) std::fill(out + p * MR + h, out + (p + 1) * MR, 0.f);
    }
  }
}

/// Whether reading A in place would put the kernel's MR rows in one set of the L1 cache (a
/// stride that is a multiple of 4 KiB: a 1024 x 1024 product ran at 60 % of its packed speed),
/// in which case A is packed.
inline bool aliasing_stride(index_t stride) { return stride > 1 && (stride * index_t(sizeof(float))) % 4096 == 0; }

/// One thread's product on a block of C: m x n at c (row stride ldc), with op(B) packed whole
/// (bp: panels of NR columns, each k x NR; see packed_b).
template <kernel_isa K, index_t NR>
void serial(index_t m, index_t n, index_t k, float alpha, view a, float const* bp, float beta, float* c,
            index_t ldc) {
#if ARCNET_SGEMM_X86
  constexpr index_t MR = tile<K>::mr;
  thread_local std::vector<float> packed_a;  // per thread, kept between calls
  packed_a.resize(static_cast<std::size_t>(kc_block * (mc_block + MR)));
  // A is read in place (its MR x KC micro-panel stays in L1 while the kernel walks the row band)
  // except where the rows would alias in the cache, or at the bottom edge (fewer than MR rows).
  bool const pack_all = aliasing_stride(a.rs) || aliasing_stride(a.cs);
  for (index_t jc = 0; jc < n; jc += nc_block) {
    index_t nc = std::min(nc_block, n - jc);
    for (index_t pc = 0; pc < k; pc += kc_block) {
      index_t kc = std::min(kc_block, k - pc);
      float const beta_here = pc == 0 ? beta : 1.f;
      for (index_t ic = 0; ic < m; ic += mc_block) {
        index_t mc = std::min(mc_block, m - ic);
        index_t const in_place = pack_all ? 0 : mc / MR * MR;  // rows read from A as stored
        if (in_place < mc) pack_a<MR>(a, ic + in_place, mc - in_place, pc, kc, packed_a.data());
        for (index_t ir = 0; ir < mc; ir += MR) {
          bool const packed = ir >= in_place;
          float const* ap = packed ? packed_a.data() + (ir - in_place) * kc : a.at(ic + ir, pc);
          index_t const ars = packed ? 1 : a.rs, acs = packed ? MR : a.cs;
          for (index_t jr = 0; jr < nc; jr += NR)
            kernel<K, NR>(kc, ap, ars, acs, bp + (jc + jr) / NR * k * NR + pc * NR, c + (ic + ir) * ldc + jc + jr, ldc,
                      alpha, beta_here, std::min(MR, mc - ir), std::min(NR, nc - jr));
        }
      }
    }
  }
#else
  (void)m, (void)n, (void)k, (void)alpha, (void)a, (void)bp, (void)beta, (void)c, (void)ldc;
#endif
}

/// Splits C into one block of rows (or, when C is short, of columns: whole panels) per thread,
/// each a serial product; inside a parallel region (a convolution's chunk), runs on the calling
/// thread.
template <kernel_isa K, index_t NR>
void run(index_t m, index_t n, index_t k, float alpha, view a, float const* bp, float beta, float* c) {
  constexpr index_t MR = tile<K>::mr;
  index_t threads = team_size() > 1 ? 1 : max_threads();
  double const madds = double(m) * double(n) * double(k);
  threads = std::min<index_t>(threads, std::max<index_t>(1, static_cast<index_t>(madds / (1 << 20))));
  if (threads <= 1) return serial<K, NR>(m, n, k, alpha, a, bp, beta, c, n);
  bool const by_rows = m >= threads * 4 * MR || m >= n;
  index_t const unit = by_rows ? MR : NR, extent = by_rows ? m : n;
  index_t const units = (extent + unit - 1) / unit;
#pragma omp parallel num_threads(static_cast<int>(threads))
  {
    index_t const t = thread_index(), team = team_size();
    index_t const lo = std::min(extent, units * t / team * unit), hi = std::min(extent, units * (t + 1) / team * unit);
    if (hi > lo) {
      if (by_rows)
        serial<K, NR>(hi - lo, n, k, alpha, view{a.at(lo, 0), a.rs, a.cs}, bp, beta, c + lo * n, n);
      else
        serial<K, NR>(m, hi - lo, k, alpha, a, bp + lo / NR * k * NR, beta, c + lo, n);
    }
  }
}

/// Vector width of a kernel, in floats.
inline index_t lanes(kernel_isa isa) {
  return isa == kernel_isa::avx512 ? tile<kernel_isa::avx512>::lanes : tile<kernel_isa::avx2>::lanes;
}
/// Tile width (the packed panels' width) for a B of n columns: the narrow tile when B is no
/// wider than one vector, else the wide one.
inline index_t panel_width(kernel_isa isa, index_t n) { return n <= lanes(isa) ? lanes(isa) : 2 * lanes(isa); }
/// Fewest rows and columns worth our kernel; thinner products go to Eigen.
inline bool worth_it(kernel_isa isa, index_t m, index_t n) {
  return isa == kernel_isa::avx512 ? m >= tile<kernel_isa::avx512>::mr && n >= tile<kernel_isa::avx512>::lanes
                                   : isa == kernel_isa::avx2 && m >= tile<kernel_isa::avx2>::mr && n >= tile<kernel_isa::avx2>::lanes;
}

}  // namespace detail

/// op(B) (k x n) packed for the active kernel: panels of NR columns, each k x NR floats,
/// zero-padded on the right. Packed once, it serves any number of products with different left
/// operands (a convolution's weight across its chunks and threads).
class packed_b {
 public:
  /// Nothing packed (empty()).
  packed_b() : isa_(kernel_isa::eigen), k_(0), n_(0), nr_(0), data_(0) {}
  /// Packs; the active kernel must be one of ours. Threads share the work outside a parallel region.
  packed_b(bool trans_b, index_t k, index_t n, float const* b)
      : isa_(active()), k_(k), n_(n), nr_(detail::panel_width(isa_, n)),
        data_(k * ((n + nr_ - 1) / nr_) * nr_) {
    if (isa_ == kernel_isa::eigen)
      arcnet::detail::raise<error>("sgemm::packed_b: the active kernel is Eigen's, which packs for itself");
    detail::view const vb{b, trans_b ? 1 : n, trans_b ? k : 1};
    index_t const panels = (n + nr_ - 1) / nr_;
    float* out = data_.data();
    index_t const nr = nr_;
#pragma omp parallel for schedule(static) if (team_size() == 1 && k * n >= (index_t(1) << 16))
    for (index_t q = 0; q < panels; ++q) {
      index_t const j = q * nr, w = std::min(nr, n - j);
      if (nr == 32) detail::pack_b<32>(vb, 0, k, j, w, out + q * k * nr);
      else if (nr == 16) detail::pack_b<16>(vb, 0, k, j, w, out + q * k * nr);
      else detail::pack_b<8>(vb, 0, k, j, w, out + q * k * nr);
    }
  }
  bool empty() const { return isa_ == kernel_isa::eigen; }
  kernel_isa isa() const { return isa_; }
  index_t rows() const { return k_; }
  index_t cols() const { return n_; }
  /// Width of the packed panels (the kernel's NR).
  index_t panel() const { return nr_; }
  float const* data() const { return data_.data(); }

 private:
  kernel_isa isa_;
  index_t k_, n_, nr_;
  storage<float, cpu> data_;  // large blocks are recycled by the host block cache
};

/// C(m, n) = alpha op(A) B + beta C with B packed; beta = 0 ignores C's contents. B must have
/// been packed for the kernel that is still active. lda: the row stride of A as stored (m x k,
/// or k x m when trans_a); 0 for rows stored back to back.
inline void gemm(bool trans_a, index_t m, float alpha, float const* a, packed_b const& b, float beta, float* c,
                 index_t lda = 0) {
  index_t const n = b.cols(), k = b.rows();
  if (m == 0 || n == 0) return;
  if (b.isa() != active())
    arcnet::detail::raise<error>("sgemm::gemm: B was packed for the ", name(b.isa()), " kernel, but ",
                                 name(active()), " is active");
  if (lda == 0) lda = trans_a ? m : k;
  detail::view const va{a, trans_a ? 1 : lda, trans_a ? lda : 1};
#if ARCNET_SGEMM_X86
  bool const wide = b.panel() == 2 * detail::lanes(b.isa());
  if (b.isa() == kernel_isa::avx512) {
    if (wide) detail::run<kernel_isa::avx512, 32>(m, n, k, alpha, va, b.data(), beta, c);
    else detail::run<kernel_isa::avx512, 16>(m, n, k, alpha, va, b.data(), beta, c);
  } else {
    if (wide) detail::run<kernel_isa::avx2, 16>(m, n, k, alpha, va, b.data(), beta, c);
    else detail::run<kernel_isa::avx2, 8>(m, n, k, alpha, va, b.data(), beta, c);
  }
#else
  (void)alpha, (void)va, (void)beta, (void)c;
#endif
}

/// Whether a right operand of k x n is worth packing for our kernel (the active kernel is one of
/// ours and n is wide enough for its tile), whatever the left operand's rows.
inline bool packs(index_t k, index_t n) {
  kernel_isa const isa = active();
  return k > 0 && isa != kernel_isa::eigen && n >= detail::lanes(isa);
}

/// Whether our kernel takes a product of this size (the active kernel is one of ours and the
/// product is not too thin for its tile).
inline bool handles(index_t m, index_t n, index_t k) { return k > 0 && detail::worth_it(active(), m, n); }

/// C(m, n) = alpha op(A) op(B) + beta C with our kernel, if it handles the product; returns false
/// (nothing done) otherwise. Same arguments as matmul_impl<cpu>::gemm; beta = 0 ignores C's contents.
inline bool gemm(bool trans_a, bool trans_b, index_t m, index_t n, index_t k, float alpha, float const* a,
                 float const* b, float beta, float* c) {
  if (!handles(m, n, k)) return false;
  gemm(trans_a, m, alpha, a, packed_b(trans_b, k, n, b), beta, c);
  return true;
}

}  // namespace arcnet::ops::sgemm
