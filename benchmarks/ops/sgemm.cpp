// Our float GEMM kernel (ops/cpu/sgemm.hpp) beside Eigen's, in the same run, on the GEMMs a
// ResNet-50 training step at batch 8 and 224x224 makes: forward (im2col rows x weight),
// dweight (columns^T x dy) and dx (dy x weight^T). For each: check the two agree, time both
// alternately (median of 5), report GFLOP/s and ours / Eigen.
//
//   build-*/benchmarks/arcnet_bench_sgemm [REPEATS]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include <arcnet/core/random.hpp>
#include <arcnet/core/threads.hpp>
#include <arcnet/ops/matmul.hpp>

using namespace arcnet;

namespace {
struct product {
  char const* name;
  index_t m, n, k;
  bool ta, tb;
};

double seconds_of(void (*f)(void*), void* ctx) {
  auto t0 = std::chrono::steady_clock::now();
  f(ctx);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

int main(int argc, char** argv) {
  int const repeats = argc > 1 ? std::max(1, std::atoi(argv[1])) : 5;
  auto const ours = ops::sgemm::detected();
  if (ours == ops::sgemm::kernel_isa::eigen) {
    std::printf("this CPU has neither AVX-512 nor AVX2 + FMA: float products use Eigen; nothing to compare\n");
    return 0;
  }
  std::vector<product> const products = {
      {"s1 3x3 64->64 fwd", 25088, 64, 576, false, false},      {"s1 3x3 64->64 dw", 576, 64, 25088, true, false},
      {"s1 3x3 64->64 dx", 25088, 576, 64, false, true},        {"s1 1x1 64->256 fwd", 25088, 256, 64, false, false},
      {"s1 1x1 256->64 fwd", 25088, 64, 256, false, false},     {"s2 3x3 128->128 fwd", 6272, 128, 1152, false, false},
      {"s2 1x1 128->512 fwd", 6272, 512, 128, false, false},    {"s3 3x3 256->256 fwd", 1568, 256, 2304, false, false},
      {"s3 3x3 256->256 dw", 2304, 256, 1568, true, false},     {"s3 3x3 256->256 dx", 1568, 2304, 256, false, true},
      {"s3 1x1 1024->256 fwd", 1568, 256, 1024, false, false},  {"s4 3x3 512->512 fwd", 392, 512, 4608, false, false},
      {"s4 1x1 512->2048 fwd", 392, 2048, 512, false, false},   {"s4 1x1 2048->512 fwd", 392, 512, 2048, false, false},
      {"head 64 x 3997 x 512", 64, 3997, 512, false, true},     {"square 1024", 1024, 1024, 1024, false, false},
  };
  std::printf("float GEMM, ours (%s) vs Eigen, %d threads, median of %d\n", ops::sgemm::name(ours), max_threads(),
              repeats);
  std::printf("%-24s %6s %6s %6s %2s | %12s %12s | %6s %10s\n", "product", "M", "N", "K", "T", "Eigen GFLOP/s",
              "ours GFLOP/s", "ratio", "max diff");
  generator g(3);
  double log_sum = 0;
  for (auto const& p : products) {
    auto a = tensor<float, cpu>::uninitialized(p.ta ? shape{p.k, p.m} : shape{p.m, p.k});
    auto b = tensor<float, cpu>::uninitialized(p.tb ? shape{p.n, p.k} : shape{p.k, p.n});
    g.fill_uniform(a, -1, 1);
    g.fill_uniform(b, -1, 1);
    auto c_eigen = tensor<float, cpu>::uninitialized(shape{p.m, p.n});
    auto c_ours = tensor<float, cpu>::uninitialized(shape{p.m, p.n});
    struct call {
      product const* p;
      float const *a, *b;
      float* c;
      ops::sgemm::kernel_isa isa;
    } e{&p, a.data(), b.data(), c_eigen.data(), ops::sgemm::kernel_isa::eigen},
        o{&p, a.data(), b.data(), c_ours.data(), ours};
    auto run = [](void* ctx) {
      auto* x = static_cast<call*>(ctx);
      ops::sgemm::select(x->isa);
      ops::matmul_impl<cpu>::gemm(x->p->ta, x->p->tb, x->p->m, x->p->n, x->p->k, 1.f, x->a, x->b, 0.f, x->c);
    };
    std::vector<double> te, to;
    run(&e), run(&o);  // warm-up, and the results to compare
    double diff = 0, scale = 0;
    for (index_t i = 0; i < c_eigen.numel(); ++i) {
      diff = std::max(diff, double(std::abs(c_eigen.data()[i] - c_ours.data()[i])));
      scale = std::max(scale, double(std::abs(c_eigen.data()[i])));
    }
    if (!(diff <= 1e-5 * scale * std::sqrt(double(p.k)))) {
      std::printf("%s: the kernels disagree (max diff %g, max |C| %g)\n", p.name, diff, scale);
      return 1;
    }
    for (int r = 0; r < repeats; ++r) {
      te.push_back(seconds_of(run, &e));
      to.push_back(seconds_of(run, &o));
    }
    std::sort(te.begin(), te.end());
    std::sort(to.begin(), to.end());
    double flop = 2.0 * double(p.m) * double(p.n) * double(p.k);
    double ge = flop / te[te.size() / 2] * 1e-9, go = flop / to[to.size() / 2] * 1e-9;
    log_sum += std::log(go / ge);
    std::printf("%-24s %6ld %6ld %6ld %d%d | %12.1f %12.1f | %6.2f %10.2e\n", p.name, static_cast<long>(p.m),
                static_cast<long>(p.n), static_cast<long>(p.k), p.ta, p.tb, ge, go, go / ge, diff);
  }
  ops::sgemm::select(ours);
  std::printf("geometric mean of ours / Eigen: %.2f\n", std::exp(log_sum / double(products.size())));
  return 0;
}
