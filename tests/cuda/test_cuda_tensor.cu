// CUDA tests of core/tensor.hpp, compiled by nvcc. Only core has a CUDA backend so far.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include <arcnet/core/tensor.hpp>
#include <arcnet/ops/cast.hpp>
#include <arcnet/ops/elementwise.hpp>
#include <arcnet/ops/reduce.hpp>

using namespace arcnet;

namespace cuda_test {
/// Whether arcnet_cuda_tests has a device to run on; main() (a g++ TU) asks before running.
bool device_available() { return cuda_device_available(); }
}  // namespace cuda_test

TEST_CASE("cuda tensor: cpu -> cuda -> cpu round trip keeps values and shape", "[cuda]") {
  if (!cuda_device_available()) {
    WARN("no CUDA device: skipped");
    return;
  }
  auto h = tensor<float, cpu>::from_vector(shape{2, 3}, {1.5f, -2.0f, 0.0f, 3.25f, 1e-7f, -1e7f});
  tensor<float, cuda> d = h.to<cuda>();
  CHECK(d.shape() == h.shape());
  CHECK(d.data() != nullptr);
  auto back = d.to<cpu>();
  CHECK(back.shape() == (shape{2, 3}));
  CHECK(back.to_vector() == h.to_vector());
  CHECK_FALSE(back.shares_storage_with(h));

  auto copy = d.clone();  // device-to-device
  CHECK(copy.to_vector() == h.to_vector());
  CHECK(d.view({3, 2}).to<cpu>().shape() == (shape{3, 2}));
}

TEST_CASE("cuda tensor: fill, zeros and full on the device", "[cuda]") {
  if (!cuda_device_available()) {
    WARN("no CUDA device: skipped");
    return;
  }
  tensor<double, cuda> t(shape{4, 5});  // zero-filled
  for (double v : t.to_vector()) CHECK(v == 0.0);
  t.fill(2.5);
  auto h = t.to<cpu>();
  REQUIRE(h.numel() == 20);
  for (index_t i = 0; i < h.numel(); ++i) CHECK(h[i] == 2.5);
  CHECK(tensor<float, cuda>::full(shape{3}, -1.0f).to_vector() == std::vector<float>{-1.0f, -1.0f, -1.0f});
  CHECK(tensor<float, cuda>::full(shape{}, 7.0f).item() == 7.0f);
}

TEST_CASE("cuda cast: float <-> bf16 as on the CPU, bit for bit, and its gradient", "[cuda]") {
  if (!cuda_device_available()) {
    WARN("no CUDA device: skipped");
    return;
  }
  std::vector<float> v;
  for (int i = 0; i < 1000; ++i) v.push_back(std::ldexp(std::sin(0.37f * i), (i % 41) - 20));
  v[7] = std::numeric_limits<float>::quiet_NaN();
  v[8] = std::numeric_limits<float>::infinity();
  v[9] = 1.0f + 0x1p-8f;  // a tie
  auto h = tensor<float, cpu>::from_vector(shape{10, 100}, v);
  auto bh = ops::cast_forward<bfloat16>(h);
  auto bd = ops::cast_forward<bfloat16>(h.to<cuda>());
  auto bd_host = bd.to<cpu>();
  std::size_t differ = 0;
  for (index_t i = 0; i < bh.numel(); ++i) differ += bh[i].bits != bd_host[i].bits;
  CHECK(differ == 0);
  auto back = ops::cast_forward<float>(bd).to<cpu>();
  CHECK(back[9] == 1.0f);
  CHECK(std::isnan(back[7]));
  CHECK(back[100] == static_cast<float>(bh[100]));

  // The gradient: through a bf16 value and back, d sum(cast(cast(x)) * w) / dx = bf16(w); twice.
  variable<float, cuda> x(h.to<cuda>(), true);
  variable<float, cuda> w(h.to<cuda>());
  for (int pass = 0; pass < 2; ++pass)
    ops::sum(ops::mul(ops::cast<float>(ops::cast<bfloat16>(x)), w)).backward();
  auto g = x.grad().to<cpu>();
  std::size_t wrong = 0;
  for (index_t i = 0; i < g.numel(); ++i) {
    float const want = 2 * static_cast<float>(bh[i]);
    if (!(g[i] == want || (std::isnan(g[i]) && std::isnan(want)))) ++wrong;
  }
  CHECK(wrong == 0);

  // A bf16 tensor on the device: fill, and the autograd seed accumulated into a bf16 gradient.
  auto t = tensor<bfloat16, cuda>::full(shape{5}, bfloat16(0.75f));
  CHECK(static_cast<float>(t.to<cpu>()[4]) == 0.75f);
  variable<bfloat16, cuda> leaf(t, true);
  leaf.backward(tensor<bfloat16, cuda>::full(shape{5}, bfloat16(1.0f)));
  leaf.backward(tensor<bfloat16, cuda>::full(shape{5}, bfloat16(0x1p-9f)));  // 1 + 2^-9 rounds to 1
  leaf.backward(tensor<bfloat16, cuda>::full(shape{5}, bfloat16(0.5f)));
  CHECK(static_cast<float>(leaf.grad().to<cpu>()[3]) == 1.5f);
}
