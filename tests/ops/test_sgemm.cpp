#include "test_util.hpp"

#include <limits>

#include <arcnet/ops/cpu/sgemm.hpp>
#include <arcnet/ops/matmul.hpp>

using namespace arcnet;

namespace sgemm_test {
/// Restores the selected kernel and the thread count when a test ends.
struct restore_kernel {
  ops::sgemm::kernel_isa isa = ops::sgemm::active();
  int threads = max_threads();
  ~restore_kernel() {
    ops::sgemm::select(isa);
    set_num_threads(threads);
  }
};

/// Our kernels this CPU runs (none on a CPU without AVX2 + FMA, or off x86-64).
template <class T>
double max_abs_difference(std::vector<T> const& a, std::vector<T> const& b) {
  double worst = a.size() == b.size() ? 0.0 : 1e300;
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i) worst = std::max(worst, double(std::abs(a[i] - b[i])));
  return worst;
}

inline std::vector<ops::sgemm::kernel_isa> runnable_kernels() {
  std::vector<ops::sgemm::kernel_isa> out;
  auto best = ops::sgemm::detected();
  if (best >= ops::sgemm::kernel_isa::avx2) out.push_back(ops::sgemm::kernel_isa::avx2);
  if (best >= ops::sgemm::kernel_isa::avx512) out.push_back(ops::sgemm::kernel_isa::avx512);
  return out;
}

struct product {
  index_t m, n, k;
  bool ta, tb;
  float alpha, beta;
};

/// Runs matmul_impl<cpu>::gemm on random A, B, C and returns the largest error against a
/// double-precision loop, relative to sum |alpha a b| + |beta c| of each element.
inline double worst_error(product p, generator& g, std::vector<float>* out = nullptr) {
  auto a = tensor<float, cpu>::uninitialized(p.ta ? shape{p.k, p.m} : shape{p.m, p.k});
  auto b = tensor<float, cpu>::uninitialized(p.tb ? shape{p.n, p.k} : shape{p.k, p.n});
  auto c = tensor<float, cpu>::uninitialized(shape{p.m, p.n});
  g.fill_uniform(a, -1, 1);
  g.fill_uniform(b, -1, 1);
  g.fill_uniform(c, -1, 1);
  std::vector<float> c0 = c.to_vector();
  if (p.beta == 0.f) std::fill(c.data(), c.data() + c.numel(), std::numeric_limits<float>::quiet_NaN());
  ops::matmul_impl<cpu>::gemm(p.ta, p.tb, p.m, p.n, p.k, p.alpha, a.data(), b.data(), p.beta, c.data());
  double worst = 0;
  for (index_t i = 0; i < p.m; ++i)
    for (index_t j = 0; j < p.n; ++j) {
      double sum = 0, scale = 0;
      for (index_t l = 0; l < p.k; ++l) {
        double x = p.ta ? a.at(l, i) : a.at(i, l), y = p.tb ? b.at(j, l) : b.at(l, j);
        sum += x * y;
        scale += std::abs(x * y);
      }
      double ref = p.alpha * sum + (p.beta == 0.f ? 0.0 : p.beta * double(c0[i * p.n + j]));
      scale = std::abs(p.alpha) * scale + std::abs(p.beta * double(c0[i * p.n + j])) + 1e-30;
      double got = c.at(i, j);
      if (!std::isfinite(got)) return std::numeric_limits<double>::infinity();
      worst = std::max(worst, std::abs(got - ref) / scale);
    }
  if (out) *out = c.to_vector();
  return worst;
}

// Edges of both tile sizes (14 x 32 and 6 x 16) and of their narrow forms (14 x 16, 6 x 8: a B
// of at most one vector's width), k across a KC block (256) and across NC
// columns (512), and strides of 4 KiB (k = 1024, or m = 1024 when A is transposed) that make the
// kernel pack A instead of reading it in place.
inline std::vector<product> shapes() {
  return {{14, 32, 1, false, false, 1.f, 0.f},    {15, 33, 7, false, false, 1.f, 0.f},
          {29, 65, 257, false, false, 1.f, 0.f},  {100, 130, 300, false, false, 0.5f, 1.f},
          {43, 600, 20, false, true, 1.f, 0.25f}, {337, 48, 64, true, false, 1.f, 1.f},
          {70, 40, 1024, false, false, 1.f, 0.f},  {64, 64, 513, true, true, -2.f, 0.f},
          {6, 8, 3, false, false, 1.f, 0.f},      {200, 17, 100, false, true, 1.f, 0.f},    {1024, 20, 16, false, false, 1.f, 0.5f},
          {47, 16, 300, true, false, 0.5f, 1.f},  {33, 16, 9, false, true, 1.f, 0.f},      {19, 8, 21, false, false, 1.f, 0.f}};
}
}  // namespace sgemm_test

TEST_CASE("sgemm: every kernel this CPU runs matches a double-precision loop, edges and transposes included",
          "[ops][matmul][sgemm]") {
  using namespace sgemm_test;
  restore_kernel restore;
  auto kernels = runnable_kernels();
  if (kernels.empty()) WARN("no AVX2 / AVX-512 on this CPU: only Eigen's path is checked");
  kernels.push_back(ops::sgemm::kernel_isa::eigen);
  for (auto isa : kernels) {
    ops::sgemm::select(isa);
    REQUIRE(ops::sgemm::active() == isa);
    generator g(5);
    for (auto p : shapes())
      for (bool ta : {false, true})
        for (bool tb : {false, true}) {
          p.ta = ta, p.tb = tb;
          INFO(ops::sgemm::name(isa) << ": m " << p.m << " n " << p.n << " k " << p.k << " ta " << ta << " tb " << tb
                                     << " alpha " << p.alpha << " beta " << p.beta);
          CHECK(worst_error(p, g) < 2e-6);
        }
  }
}

TEST_CASE("sgemm: results are bitwise the same on one thread, two threads and inside a parallel region",
          "[ops][matmul][sgemm]") {
  using namespace sgemm_test;
  restore_kernel restore;
  for (auto isa : runnable_kernels()) {
    ops::sgemm::select(isa);
    INFO(ops::sgemm::name(isa));
    // Wide (split by rows) and short (split by columns) products, large enough to be split.
    for (product p : {product{300, 200, 180, false, false, 1.f, 0.f}, product{20, 900, 300, true, false, 1.f, 0.f}}) {
      std::vector<float> one, two;
      set_num_threads(1);
      generator g1(9);
      CHECK(worst_error(p, g1, &one) < 2e-6);
      set_num_threads(2);
      generator g2(9);
      CHECK(worst_error(p, g2, &two) < 2e-6);
      CHECK(max_abs_difference(one, two) == 0);
      std::vector<float> nested;
#pragma omp parallel num_threads(2)
      {
        if (thread_index() == 0) {
          generator g3(9);
          worst_error(p, g3, &nested);
        }
      }
      CHECK(max_abs_difference(nested, one) == 0);
    }
  }
}

TEST_CASE("sgemm: selecting a kernel the CPU cannot run is an error that names it", "[ops][matmul][sgemm]") {
  using namespace sgemm_test;
  restore_kernel restore;
  ops::sgemm::select(ops::sgemm::kernel_isa::eigen);
  CHECK(ops::sgemm::active() == ops::sgemm::kernel_isa::eigen);
  if (ops::sgemm::detected() == ops::sgemm::kernel_isa::avx512) {
    ops::sgemm::select(ops::sgemm::kernel_isa::avx512);
    CHECK(ops::sgemm::active() == ops::sgemm::kernel_isa::avx512);
  } else {
    CHECK_THROWS_WITH(ops::sgemm::select(ops::sgemm::kernel_isa::avx512),
                      Catch::Contains("cannot run the avx512 kernel"));
  }
}

TEST_CASE("sgemm: a right operand packed once gives, chunk by chunk, the same product as gemm",
          "[ops][matmul][sgemm]") {
  using namespace sgemm_test;
  restore_kernel restore;
  auto kernels = runnable_kernels();
  kernels.push_back(ops::sgemm::kernel_isa::eigen);
  index_t const m = 100, n = 70, k = 45;
  generator g(12);
  for (auto isa : kernels) {
    ops::sgemm::select(isa);
    for (bool tb : {false, true}) {
      INFO(ops::sgemm::name(isa) << " transpose_b " << tb);
      auto a = tensor<float, cpu>::uninitialized(shape{m, k});
      auto b = tensor<float, cpu>::uninitialized(tb ? shape{n, k} : shape{k, n});
      g.fill_uniform(a, -1, 1);
      g.fill_uniform(b, -1, 1);
      std::vector<float> whole(static_cast<std::size_t>(m * n)), chunked(whole.size(), 7.f);
      ops::matmul_impl<cpu>::gemm(false, tb, m, n, k, 1.f, a.data(), b.data(), 0.f, whole.data());
      ops::matmul_impl<cpu>::prepared_rhs<float> const rhs(tb, k, n, b.data());
      for (index_t m0 = 0; m0 < m; m0 += 30)  // chunks of 30, 30, 30 and 10 rows
        rhs.gemm(false, std::min<index_t>(30, m - m0), 1.f, a.data() + m0 * k, 0.f, chunked.data() + m0 * n);
      // ours: bitwise (each element's sum runs in the same order); Eigen blocks by size
      double worst = max_abs_difference(chunked, whole);
      if (isa == ops::sgemm::kernel_isa::eigen) CHECK(worst < 1e-5);
      else CHECK(worst == 0);
    }
  }
  // double goes through Eigen, prepared or not
  auto a = tensor<double, cpu>::uninitialized(shape{3, 4});
  auto b = tensor<double, cpu>::uninitialized(shape{4, 5});
  g.fill_uniform(a, -1, 1);
  g.fill_uniform(b, -1, 1);
  std::vector<double> whole(15), prepared(15);
  ops::matmul_impl<cpu>::gemm(false, false, 3, 5, 4, 2.0, a.data(), b.data(), 0.0, whole.data());
  ops::matmul_impl<cpu>::prepared_rhs<double>(false, 4, 5, b.data()).gemm(false, 3, 2.0, a.data(), 0.0, prepared.data());
  CHECK(max_abs_difference(prepared, whole) < 1e-15);
}
