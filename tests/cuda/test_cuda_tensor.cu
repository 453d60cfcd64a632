// CUDA tests of core/tensor.hpp, compiled by nvcc. Only core has a CUDA backend so far.
#include <catch2/catch.hpp>

#include <arcnet/core/tensor.hpp>

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
