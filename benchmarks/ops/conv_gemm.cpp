// Convolution vs GEMM on the CPU: the ResNet-50 convolution shapes at batch 8, 224x224 input.
// For each shape: check the output (and sampled gradients) against a direct convolution, then
// time forward, backward (dx + dweight) and a plain GEMM of the same M = N*Ho*Wo, N = Cout,
// K = KH*KW*Cin; report GFLOP/s and the forward/GEMM ratio (target >= 0.70).
//
// CPU tensors are plain 64-byte-aligned heap allocations. When a big one is requested while a
// block of the same size is still alive (the previous output), glibc hands out fresh pages, and
// first touching a 12 MB output costs ~3000 page faults: in a VM, as much as the GEMM of a 1x1
// convolution. So the benchmark frees the previous output before each call, and replaces the
// aligned operator new with a cache of freed blocks by size (what a caching allocator does), so
// that the numbers measure the kernels; --system-malloc measures without the cache.
//
//   build-*/benchmarks/arcnet_bench_conv [--column-budget-mb MB] [--only SUBSTRING] [--system-malloc]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include <arcnet/core/random.hpp>
#include <arcnet/ops/conv2d.hpp>
#if defined(_OPENMP)
#include <omp.h>
#endif

// ---- a caching allocator for the aligned allocations of tensor storage -----------------------
namespace block_cache {
bool enabled = false;
std::mutex mutex;
std::multimap<std::size_t, void*>& free_blocks() {
  static auto* m = new std::multimap<std::size_t, void*>;  // never destroyed: used until exit
  return *m;
}
}  // namespace block_cache

void* operator new(std::size_t n, std::align_val_t a) {
  if (block_cache::enabled) {
    std::lock_guard<std::mutex> lock(block_cache::mutex);
    auto& blocks = block_cache::free_blocks();
    auto it = blocks.upper_bound(n);  // the block of this size freed last: likely still in cache
    if (it != blocks.begin() && (--it)->first == n) {
      void* p = it->second;
      blocks.erase(it);
      return p;
    }
  }
  // a header before the block remembers its size (for the cache) and the malloc'd address
  std::size_t align = std::max<std::size_t>(static_cast<std::size_t>(a), 2 * sizeof(std::size_t));
  void* raw = std::malloc(n + align + 2 * sizeof(std::size_t));
  if (!raw) throw std::bad_alloc();
  auto addr = (reinterpret_cast<std::uintptr_t>(raw) + 2 * sizeof(std::size_t) + align - 1) & ~(align - 1);
  auto* header = reinterpret_cast<std::size_t*>(addr) - 2;
  header[0] = n;
  header[1] = reinterpret_cast<std::uintptr_t>(raw);
  return reinterpret_cast<void*>(addr);
}
void operator delete(void* p, std::align_val_t) noexcept {
  if (!p) return;
  auto* header = static_cast<std::size_t*>(p) - 2;
  if (block_cache::enabled) {
    std::lock_guard<std::mutex> lock(block_cache::mutex);
    block_cache::free_blocks().emplace(header[0], p);
    return;
  }
  std::free(reinterpret_cast<void*>(header[1]));
}
void operator delete(void* p, std::size_t, std::align_val_t a) noexcept { operator delete(p, a); }

namespace {

using arcnet::index_t;
using arcnet::shape;
using tensor = arcnet::tensor<float, arcnet::cpu>;
using gemm_backend = arcnet::ops::matmul_impl<arcnet::cpu>;

struct conv_case {
  char const* name;
  index_t h, cin, cout, k, stride, pad;  // square input h x h, square kernel k x k
};

constexpr index_t batch = 8;

// The distinct convolutions of ResNet-50 ("pytorch" style: stride on the 3x3) at 224x224.
conv_case const cases[] = {
    {"stem 7x7/2 3->64 @224", 224, 3, 64, 7, 2, 3},
    {"s1 1x1 64->64 @56", 56, 64, 64, 1, 1, 0},
    {"s1 3x3 64->64 @56", 56, 64, 64, 3, 1, 1},
    {"s1 1x1 64->256 @56", 56, 64, 256, 1, 1, 0},
    {"s1 1x1 256->64 @56", 56, 256, 64, 1, 1, 0},
    {"s2 3x3/2 128->128 @56", 56, 128, 128, 3, 2, 1},
    {"s2 3x3 128->128 @28", 28, 128, 128, 3, 1, 1},
    {"s2 1x1 128->512 @28", 28, 128, 512, 1, 1, 0},
    {"s2 1x1 512->128 @28", 28, 512, 128, 1, 1, 0},
    {"s2 proj 1x1/2 256->512 @56", 56, 256, 512, 1, 2, 0},
    {"s3 3x3/2 256->256 @28", 28, 256, 256, 3, 2, 1},
    {"s3 3x3 256->256 @14", 14, 256, 256, 3, 1, 1},
    {"s3 1x1 256->1024 @14", 14, 256, 1024, 1, 1, 0},
    {"s3 1x1 1024->256 @14", 14, 1024, 256, 1, 1, 0},
    {"s3 proj 1x1/2 512->1024 @28", 28, 512, 1024, 1, 2, 0},
    {"s4 3x3/2 512->512 @14", 14, 512, 512, 3, 2, 1},
    {"s4 3x3 512->512 @7", 7, 512, 512, 3, 1, 1},
    {"s4 1x1 512->2048 @7", 7, 512, 2048, 1, 1, 0},
    {"s4 1x1 2048->512 @7", 7, 2048, 512, 1, 1, 0},
    {"s4 proj 1x1/2 1024->2048 @14", 14, 1024, 2048, 1, 2, 0},
};

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

/// Median seconds per call of f and of g, after one warm-up call of each; the calls alternate,
/// so that both see the same background load. Fewer repetitions for slow calls.
template <class F, class G>
std::pair<double, double> median_seconds(F&& f, G&& g) {
  auto time = [](auto& h) {
    double s = now_s();
    h();
    return now_s() - s;
  };
  double warm = time(f) + time(g);
  int reps = static_cast<int>(std::clamp(1.0 / std::max(warm, 1e-6), 5.0, 31.0));
  std::vector<double> tf, tg;
  for (int r = 0; r < reps; ++r) {
    tf.push_back(time(f));
    tg.push_back(time(g));
  }
  std::sort(tf.begin(), tf.end());
  std::sort(tg.begin(), tg.end());
  return {tf[tf.size() / 2], tg[tg.size() / 2]};
}

struct naive {
  conv_case c;
  index_t ho;
  tensor const &x, &w, &dy;
  float at(tensor const& t, index_t a, index_t b, index_t c2, index_t d) const {
    auto const& s = t.shape();
    return t.data()[((a * s[1] + b) * s[2] + c2) * s[3] + d];
  }
  // y[n, oh, ow, co] and the sum of |terms| (the scale of its rounding error)
  std::pair<double, double> y(index_t n, index_t oh, index_t ow, index_t co) const {
    double s = 0, mag = 0;
    for (index_t a = 0; a < c.k; ++a)
      for (index_t b = 0; b < c.k; ++b) {
        index_t ih = oh * c.stride - c.pad + a, iw = ow * c.stride - c.pad + b;
        if (ih < 0 || ih >= c.h || iw < 0 || iw >= c.h) continue;
        for (index_t ci = 0; ci < c.cin; ++ci) {
          double t = double(at(x, n, ih, iw, ci)) * double(at(w, a, b, ci, co));
          s += t, mag += std::abs(t);
        }
      }
    return {s, mag};
  }
  // dweight[a, b, ci, co] = sum over outputs of x[tap] * dy
  std::pair<double, double> dw(index_t a, index_t b, index_t ci, index_t co) const {
    double s = 0, mag = 0;
    for (index_t n = 0; n < batch; ++n)
      for (index_t oh = 0; oh < ho; ++oh)
        for (index_t ow = 0; ow < ho; ++ow) {
          index_t ih = oh * c.stride - c.pad + a, iw = ow * c.stride - c.pad + b;
          if (ih < 0 || ih >= c.h || iw < 0 || iw >= c.h) continue;
          double t = double(at(x, n, ih, iw, ci)) * double(at(dy, n, oh, ow, co));
          s += t, mag += std::abs(t);
        }
    return {s, mag};
  }
  // dx[n, ih, iw, ci] = sum over the outputs whose window covers (ih, iw)
  std::pair<double, double> dx(index_t n, index_t ih, index_t iw, index_t ci) const {
    double s = 0, mag = 0;
    for (index_t a = 0; a < c.k; ++a)
      for (index_t b = 0; b < c.k; ++b) {
        index_t th = ih + c.pad - a, tw = iw + c.pad - b;
        if (th < 0 || tw < 0 || th % c.stride || tw % c.stride || th / c.stride >= ho || tw / c.stride >= ho) continue;
        for (index_t co = 0; co < w.shape()[3]; ++co) {
          double t = double(at(dy, n, th / c.stride, tw / c.stride, co)) * double(at(w, a, b, ci, co));
          s += t, mag += std::abs(t);
        }
      }
    return {s, mag};
  }
};

bool close(float got, std::pair<double, double> ref) {
  return std::abs(double(got) - ref.first) <= 1e-5 * ref.second + 1e-6;
}

}  // namespace

int main(int argc, char** argv) {
  std::string only;
  bool cache_blocks = true;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--column-budget-mb") && i + 1 < argc)
      arcnet::ops::conv2d_impl<arcnet::cpu>::column_budget_bytes() =
          static_cast<std::size_t>(std::atof(argv[++i]) * (1 << 20));
    else if (!std::strcmp(argv[i], "--only") && i + 1 < argc)
      only = argv[++i];
    else if (!std::strcmp(argv[i], "--system-malloc"))
      cache_blocks = false;
    else {
      std::fprintf(stderr, "usage: %s [--column-budget-mb MB] [--only SUBSTRING] [--system-malloc]\n", argv[0]);
      return 2;
    }
  }
  block_cache::enabled = cache_blocks;
  int threads = 1;
#if defined(_OPENMP)
  threads = omp_get_max_threads();
#endif
  std::size_t budget = arcnet::ops::conv2d_impl<arcnet::cpu>::column_budget_bytes();
  std::string budget_text = budget ? std::to_string(double(budget) / (1 << 20)) + " MB" : std::string("auto");
  std::printf("conv2d (im2col + Eigen GEMM) vs plain GEMM, float, batch %ld, cpu, %d threads, Eigen %s, "
              "im2col budget %s, %s\n",
              static_cast<long>(batch), threads, Eigen::SimdInstructionSetsInUse(), budget_text.c_str(),
              cache_blocks ? "freed tensor memory cached by size" : "system malloc");
  std::printf("%-30s %6s %5s %5s | %8s %7s | %8s %7s | %8s %7s | %8s\n", "shape (NHWC in, KxK/stride)", "M", "N",
              "K", "fwd ms", "GFLOP/s", "bwd ms", "GFLOP/s", "gemm ms", "GFLOP/s", "fwd/gemm");

  arcnet::generator gen(1);
  bool all_ok = true;
  int below_target = 0;
  for (auto const& c : cases) {
    if (!only.empty() && std::string(c.name).find(only) == std::string::npos) continue;
    arcnet::ops::conv2d_options o{int(c.stride), int(c.stride), int(c.pad), int(c.pad), 1, 1};
    auto x = arcnet::randn<float>(shape{batch, c.h, c.h, c.cin}, gen);
    auto w = arcnet::randn<float>(shape{c.k, c.k, c.cin, c.cout}, gen, 0, 1.0 / std::sqrt(double(c.k * c.k * c.cin)));
    tensor none;
    auto y = arcnet::ops::conv2d_forward(x, w, none, o);
    index_t ho = y.size(1);
    auto dy = arcnet::randn<float>(y.shape(), gen);
    tensor dx(x.shape()), dw(w.shape());
    arcnet::ops::conv2d_backward(x, w, dy, o, &dx, &dw, nullptr);

    // correctness first: sampled outputs and gradients against the definition
    naive ref{c, ho, x, w, dy};
    int bad = 0;
    for (int s = 0; s < 12; ++s) {
      index_t n = index_t(gen.below(batch)), oh = index_t(gen.below(ho)), ow = index_t(gen.below(ho));
      index_t co = index_t(gen.below(c.cout)), ci = index_t(gen.below(c.cin));
      index_t a = index_t(gen.below(c.k)), b = index_t(gen.below(c.k));
      index_t ih = index_t(gen.below(c.h)), iw = index_t(gen.below(c.h));
      bad += !close(y.at(n, oh, ow, co), ref.y(n, oh, ow, co));
      bad += !close(dx.at(n, ih, iw, ci), ref.dx(n, ih, iw, ci));
      if (s < 4) bad += !close(dw.at(a, b, ci, co), ref.dw(a, b, ci, co));
    }
    if (bad) {
      std::printf("%-30s MISMATCH: %d sampled values differ from the direct convolution\n", c.name, bad);
      all_ok = false;
      continue;
    }

    index_t m = batch * ho * ho, n = c.cout, k = c.k * c.k * c.cin;
    double flop = 2.0 * double(m) * double(n) * double(k);
    auto a = arcnet::randn<float>(shape{m, k}, gen);
    auto cm = tensor::uninitialized(shape{m, n});
    auto [t_fwd, t_gemm] = median_seconds(
        [&] {
          y = tensor();  // the previous output is gone before the next, as in a training loop
          y = arcnet::ops::conv2d_forward(x, w, none, o);
        },
        [&] { gemm_backend::gemm(false, false, m, n, k, 1.0f, a.data(), w.data(), 0.0f, cm.data()); });
    double t_bwd = median_seconds([&] { arcnet::ops::conv2d_backward(x, w, dy, o, &dx, &dw, nullptr); }, [] {}).first;
    double ratio = t_gemm / t_fwd;
    below_target += ratio < 0.70;
    std::printf("%-30s %6ld %5ld %5ld | %8.2f %7.1f | %8.2f %7.1f | %8.2f %7.1f | %8.2f%s\n", c.name,
                static_cast<long>(m), static_cast<long>(n), static_cast<long>(k), 1e3 * t_fwd, flop / t_fwd * 1e-9,
                1e3 * t_bwd, 2 * flop / t_bwd * 1e-9, 1e3 * t_gemm, flop / t_gemm * 1e-9, ratio,
                ratio < 0.70 ? "  < 0.70" : "");
    std::fflush(stdout);
  }
  std::printf("%s; %d shape(s) below the 0.70 target\n", all_ok ? "all outputs checked" : "MISMATCHES", below_target);
  return all_ok ? 0 : 1;
}
