// CUDA tests of ops/normalize.hpp (l2_normalize): forward (y and the clamped norms), the raw
// backward (which accumulates) and the differentiable form against the CPU backend, float and
// double, along the last axis (the row kernels: features (128, 512), class weights (128, 4000))
// and along other axes (the column kernels), on awkward sizes and on rows clamped to eps.
#include "cuda/cuda_test_util.hpp"

#include <arcnet/ops/normalize.hpp>

#include <cstdint>
#include <vector>

using namespace arcnet;

namespace cuda_normalize_test {
using cuda_testing::max_difference;
using cuda_testing::random_tensor;
using cuda_testing::tolerance;

struct normalize_case {
  shape s;
  int axis;
  double eps;
  double lo, hi;       // range of the random entries
  index_t zero_at;     // >= 0 (2-D only): this slice along the normalised axis is all 0 (clamped norm)
};

inline std::vector<normalize_case> cases() {
  return {
      {shape{1, 1}, -1, 1e-12, -1, 1, -1},
      {shape{3, 7}, 1, 1e-12, -1, 1, -1},
      {shape{3, 7}, 0, 1e-12, -1, 1, -1},        // columns: inner 7
      {shape{257, 5, 3}, 1, 1e-12, -1, 1, -1},   // a middle axis: outer 257, r 5, inner 3
      {shape{2, 3, 4}, 0, 1e-12, -1, 1, -1},     // outer 1, inner 12
      {shape{5, 9}, -1, 1e-12, -1, 1, 2},        // a zero row: norm clamped to eps, dx = dy / eps
      {shape{9, 5}, 0, 1e-12, -1, 1, 4},         // a zero column of a column-normalised matrix
      {shape{6, 5}, -1, 1.0, -1e-3, 1e-3, -1},   // every norm below eps
      {shape{128, 512}, -1, 1e-12, -1, 1, -1},   // ArcFace features
      {shape{128, 4000}, 1, 1e-12, -1, 1, -1},   // a long row op
      {shape{70000, 3}, -1, 1e-12, -1, 1, -1},   // more rows than the row kernels' grid (65536)
      {shape{1000, 300}, 0, 1e-12, -1, 1, -1},   // class weights per column
  };
}

template <class T>
tensor<T, cpu> input(normalize_case const& k, std::uint64_t seed) {
  auto x = random_tensor<T>(k.s, seed, k.lo, k.hi);
  if (k.zero_at >= 0) {  // row zero_at when normalising rows, column zero_at when normalising columns
    index_t const rows = k.s[0], cols = k.s[1];
    bool const along_rows = k.axis == -1 || k.axis == 1;
    for (index_t i = 0; i < (along_rows ? cols : rows); ++i)
      x[along_rows ? k.zero_at * cols + i : i * cols + k.zero_at] = T(0);
  }
  return x;
}

template <class T>
void check_close(tensor<T, cpu> const& expected, tensor<T, cuda> const& got, char const* what) {
  INFO(what);
  REQUIRE(got.defined());
  CHECK(max_difference(expected, got) <= tolerance<T>());
}
}  // namespace cuda_normalize_test

TEMPLATE_TEST_CASE("cuda l2_normalize: forward and raw backward match the CPU", "[cuda][normalize]", float, double) {
  ARCNET_REQUIRE_CUDA_DEVICE();
  using namespace cuda_normalize_test;
  using T = TestType;
  std::uint64_t seed = 500;
  for (auto const& k : cases()) {
    INFO("shape " << k.s << ", axis " << k.axis << ", eps " << k.eps);
    auto x = input<T>(k, seed += 10);
    tensor<T, cpu> norms;
    tensor<T, cuda> norms_d;
    auto y = ops::l2_normalize_forward(x, k.axis, k.eps, norms);
    auto y_d = ops::l2_normalize_forward(x.template to<cuda>(), k.axis, k.eps, norms_d);
    check_close(y, y_d, "y");
    check_close(norms, norms_d, "norms");
    REQUIRE(norms_d.shape() == norms.shape());

    // The backward from the CPU's y and norms on both devices, into a non-zero dx (it accumulates).
    auto dy = random_tensor<T>(k.s, seed + 1);
    auto dx = random_tensor<T>(k.s, seed + 2);
    auto dx_d = dx.template to<cuda>();
    ops::l2_normalize_backward(y, norms, dy, dx, k.axis, k.eps);
    ops::l2_normalize_backward(y.template to<cuda>(), norms.template to<cuda>(), dy.template to<cuda>(), dx_d, k.axis,
                               k.eps);
    check_close(dx, dx_d, "dx");
  }
}

TEMPLATE_TEST_CASE("cuda l2_normalize: the differentiable form gives the CPU's gradient", "[cuda][normalize]", float,
                   double) {
  ARCNET_REQUIRE_CUDA_DEVICE();
  using namespace cuda_normalize_test;
  using T = TestType;
  std::uint64_t seed = 700;
  for (auto const& k : cases()) {
    INFO("shape " << k.s << ", axis " << k.axis << ", eps " << k.eps);
    auto x = input<T>(k, seed += 10);
    auto dy = random_tensor<T>(k.s, seed + 1);
    variable<T, cpu> xv(x, true);
    variable<T, cuda> xv_d(x.template to<cuda>(), true);
    auto y = ops::l2_normalize(xv, k.axis, k.eps);
    auto y_d = ops::l2_normalize(xv_d, k.axis, k.eps);
    check_close(y.value(), y_d.value(), "y");
    y.backward(dy);
    y_d.backward(dy.template to<cuda>());
    check_close(xv.grad(), xv_d.grad(), "x.grad");
  }
}

TEST_CASE("cuda l2_normalize: bad input on the cuda tag throws arcnet::error", "[cuda][normalize]") {
  ARCNET_REQUIRE_CUDA_DEVICE();
  using namespace cuda_normalize_test;
  auto x = random_tensor<float>(shape{4, 3}, 1).to<cuda>();
  tensor<float, cuda> norms;
  CHECK_THROWS_AS(ops::l2_normalize_forward(x, 2, 1e-12, norms), arcnet::error);   // no axis 2
  CHECK_THROWS_AS(ops::l2_normalize_forward(x, -1, 0.0, norms), arcnet::error);    // eps must be positive
}
