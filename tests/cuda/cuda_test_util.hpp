#pragma once
// Helpers of the CUDA tests (compiled by nvcc): the skip without a device, random host tensors,
// and how far a CUDA result is from the CPU backend's result for the same input. Every CUDA op
// test runs the op on both devices and compares; the CPU backend is tested against PyTorch in
// tests/ops, so agreement with it is agreement with the reference.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include <arcnet/core/cuda.hpp>
#include <arcnet/core/random.hpp>
#include <arcnet/core/tensor.hpp>

/// First line of every CUDA test case: without a device the case says so and returns.
#define ARCNET_REQUIRE_CUDA_DEVICE()                \
  do {                                              \
    if (!::arcnet::cuda_device_available()) {       \
      WARN("no CUDA device: skipped");              \
      return;                                       \
    }                                               \
  } while (0)

namespace arcnet::cuda_testing {

/// A host tensor with entries drawn uniformly from [lo, hi), reproducible from the seed.
template <class T>
tensor<T, cpu> random_tensor(shape s, std::uint64_t seed, double lo = -1.0, double hi = 1.0) {
  generator g(seed);
  auto t = tensor<T, cpu>::uninitialized(std::move(s));
  g.fill_uniform(t, lo, hi);
  return t;
}

/// n class labels drawn uniformly from [0, c), reproducible from the seed.
inline std::vector<std::int64_t> random_targets(index_t n, index_t c, std::uint64_t seed) {
  generator g(seed);
  std::vector<std::int64_t> t;
  for (index_t i = 0; i < n; ++i) t.push_back(static_cast<std::int64_t>(g.below(static_cast<std::uint64_t>(c))));
  return t;
}

/// max_i |got_i - expected_i| / max(|expected_i|, floor): relative where values are large,
/// absolute (scaled by 1/floor) near zero. Shapes must match.
template <class T>
double max_difference(tensor<T, cpu> const& expected, tensor<T, cuda> const& got, double floor = 1e-2) {
  REQUIRE(expected.shape() == got.shape());
  auto g = got.template to<cpu>();
  double worst = 0;
  for (index_t i = 0; i < expected.numel(); ++i) {
    double const e = static_cast<double>(expected[i]), x = static_cast<double>(g[i]);
    if (!std::isfinite(x)) return INFINITY;
    worst = std::max(worst, std::abs(x - e) / std::max(std::abs(e), floor));
  }
  return worst;
}

/// The agreement expected between the two backends: summation orders differ, so not bitwise.
template <class T>
constexpr double tolerance() {
  return sizeof(T) == sizeof(float) ? 2e-5 : 1e-11;
}

// A stream kept busy, to show that work is queued without the host waiting for it. On the
// emulator (tests/cuda_emulator) a hold stands in for the spin: the stream's later work waits
// until the host waits for it.
#if defined(ARCNET_CUDA_EMULATOR)
/// Keeps gpu::stream() busy until the host waits for it.
inline void spin_stream(double) { arcnet_emu::hold(gpu::stream()); }
#else
template <int = 0>  // a template, so that every test file may include this header
__global__ void spin_kernel(unsigned long long ns) {
  unsigned long long start = 0, now = 0;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(start));
  do {
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
  } while (now - start < ns);
}

/// Keeps gpu::stream() busy for about `ms` milliseconds from now.
inline void spin_stream(double ms) {
  ARCNET_CUDA_KERNEL(1, 1, 0, gpu::stream(), spin_kernel<>)(static_cast<unsigned long long>(ms * 1e6));
  ARCNET_CUDA_LAUNCH_CHECK("cuda_testing::spin_kernel");
}
#endif

/// Whether gpu::stream() still has work queued (clears the "not ready" status).
inline bool stream_busy() {
  cudaError_t const status = cudaStreamQuery(gpu::stream());
  if (status == cudaErrorNotReady) {
    cudaGetLastError();
    return true;
  }
  ARCNET_CUDA_CHECK(status);
  return false;
}

}  // namespace arcnet::cuda_testing
