// CUDA tests of ops/conv2d.hpp: forward (with and without bias, with the fused ReLU of the impl),
// the raw backward (which accumulates; with some gradients not asked for) and the differentiable
// form, each against the CPU backend on the same input, float and double. Shapes: pointwise
// 1x1, strided 1x1 (ResNet's downsample), 3x3 stride 1 and 2, the 7x7 stride-2 stem, dilated and
// asymmetric kernels, Cin / Cout of 1 and 3, a ResNet-like 8 x 28 x 28 x 64 -> 64 3x3 and a
// 4 x 56 x 56 x 64 -> 256 pointwise one (many blocks). Every case also runs with small column
// budgets, so that the im2col path goes through many chunks, some of them part of one image.
#include "cuda/cuda_test_util.hpp"

#include <arcnet/ops/conv2d.hpp>

#include <cstddef>
#include <cstdint>
#include <vector>

using namespace arcnet;

namespace cuda_conv_test {
using cuda_testing::random_tensor;
using cuda_testing::tolerance;

struct conv_case {
  shape x;  // (N, H, W, Cin)
  index_t kh, kw, cout;
  ops::conv2d_options o;
  bool bias;
};

inline std::vector<conv_case> cases() {
  return {
      {shape{2, 7, 5, 3}, 1, 1, 4, {}, true},                        // pointwise: one GEMM
      {shape{2, 7, 5, 3}, 1, 1, 1, {2, 2}, false},                   // 1x1 stride 2 (downsample)
      {shape{3, 7, 9, 1}, 3, 3, 3, {1, 1, 1, 1}, true},              // 3x3 s1 p1, Cin 1
      {shape{2, 8, 7, 3}, 3, 3, 1, {2, 2, 1, 1}, false},             // 3x3 s2 p1, Cout 1
      {shape{2, 15, 13, 3}, 7, 7, 3, {2, 2, 3, 3}, true},            // the stem: 7x7 s2 p3
      {shape{2, 9, 10, 3}, 3, 3, 3, {1, 1, 2, 2, 2, 2}, true},       // dilated
      {shape{1, 11, 9, 2}, 3, 2, 5, {2, 1, 1, 0, 2, 3}, false},      // asymmetric everything
      {shape{8, 28, 28, 64}, 3, 3, 64, {1, 1, 1, 1}, false},         // ResNet-like 3x3
      {shape{4, 56, 56, 64}, 1, 1, 256, {}, true},                   // ResNet-like pointwise
  };
}

/// The deviation of got from expected, relative to the largest |expected|: a GEMM's rounding
/// scales with the size of its terms, not of each result, and the two backends sum the K
/// products in different orders, so an output near 0 is compared at the scale of the whole
/// output rather than at its own (which would need a looser tolerance for no real error).
template <class T>
double scaled_difference(tensor<T, cpu> const& expected, tensor<T, cuda> const& got) {
  double largest = 1e-2;
  for (index_t i = 0; i < expected.numel(); ++i)
    largest = std::max(largest, std::abs(static_cast<double>(expected[i])));
  return cuda_testing::max_difference(expected, got, largest);
}

template <class T>
void check_close(tensor<T, cpu> const& expected, tensor<T, cuda> const& got, char const* what) {
  INFO(what);
  CHECK(scaled_difference(expected, got) <= tolerance<T>());
}

/// Sets conv2d_impl<cuda>::column_budget_bytes for a scope.
struct budget_scope {
  std::size_t saved;
  explicit budget_scope(std::size_t bytes) : saved(ops::conv2d_impl<cuda>::column_budget_bytes()) {
    ops::conv2d_impl<cuda>::column_budget_bytes() = bytes;
  }
  ~budget_scope() { ops::conv2d_impl<cuda>::column_budget_bytes() = saved; }
};

template <class T>
void run_case(conv_case const& c, std::uint64_t seed) {
  index_t const cin = c.x[3];
  auto x = random_tensor<T>(c.x, seed);
  auto w = random_tensor<T>(shape{c.kh, c.kw, cin, c.cout}, seed + 1);
  auto b = c.bias ? random_tensor<T>(shape{c.cout}, seed + 2) : tensor<T, cpu>();
  auto g = detail::conv2d_geometry_of("test", x, w, c.o);
  shape const ys{g.n, g.ho, g.wo, g.cout};
  auto dy = random_tensor<T>(ys, seed + 3);
  // gradients start from random values: backward must add to them
  auto dx0 = random_tensor<T>(x.shape(), seed + 4), dw0 = random_tensor<T>(w.shape(), seed + 5);
  auto db0 = random_tensor<T>(shape{c.cout}, seed + 6);

  // the CPU reference, once
  auto y = ops::conv2d_forward(x, w, b, c.o);
  auto y_relu = tensor<T, cpu>::uninitialized(ys);
  ops::conv2d_impl<cpu>::forward(g, x.data(), w.data(), c.bias ? b.data() : nullptr, y_relu.data(), true);
  auto dx = dx0.clone(), dw = dw0.clone(), db = db0.clone();
  ops::conv2d_backward(x, w, dy, c.o, &dx, &dw, c.bias ? &db : nullptr);
  auto dw_only = dw0.clone();
  ops::conv2d_backward(x, w, dy, c.o, nullptr, &dw_only, nullptr);
  auto dx_only = dx0.clone();
  ops::conv2d_backward(x, w, dy, c.o, &dx_only, nullptr, nullptr);
  variable<T, cpu> xv(x, true), wv(w, true), bv = c.bias ? variable<T, cpu>(b, true) : variable<T, cpu>();
  ops::conv2d(xv, wv, bv, c.o).backward(dy);

  auto xd = x.template to<cuda>(), wd = w.template to<cuda>(), dyd = dy.template to<cuda>();
  auto bd = c.bias ? b.template to<cuda>() : tensor<T, cuda>();
  index_t const row_bytes = g.depth() * static_cast<index_t>(sizeof(T));
  // 0: the default (one chunk here); 5 and 37 rows: many chunks, parts of images and whole images
  for (index_t budget_rows : {index_t(0), index_t(5), index_t(37)}) {
    INFO("column budget of " << budget_rows << " rows");
    budget_scope scope(static_cast<std::size_t>(budget_rows * row_bytes));
    check_close(y, ops::conv2d_forward(xd, wd, bd, c.o), "forward");
    auto y_relu_d = tensor<T, cuda>::uninitialized(ys);
    ops::conv2d_impl<cuda>::forward(g, xd.data(), wd.data(), c.bias ? bd.data() : nullptr, y_relu_d.data(), true);
    check_close(y_relu, y_relu_d, "forward + relu");

    auto dxd = dx0.template to<cuda>(), dwd = dw0.template to<cuda>(), dbd = db0.template to<cuda>();
    ops::conv2d_backward(xd, wd, dyd, c.o, &dxd, &dwd, c.bias ? &dbd : nullptr);
    check_close(dx, dxd, "backward dx");
    check_close(dw, dwd, "backward dw");
    check_close(c.bias ? db : db0, dbd, "backward db");
    auto dw_only_d = dw0.template to<cuda>();
    ops::conv2d_backward(xd, wd, dyd, c.o, nullptr, &dw_only_d, nullptr);
    check_close(dw_only, dw_only_d, "backward dw alone");
    auto dx_only_d = dx0.template to<cuda>();
    ops::conv2d_backward(xd, wd, dyd, c.o, &dx_only_d, nullptr, nullptr);
    check_close(dx_only, dx_only_d, "backward dx alone");

    variable<T, cuda> xvd(xd, true), wvd(wd, true), bvd = c.bias ? variable<T, cuda>(bd, true) : variable<T, cuda>();
    ops::conv2d(xvd, wvd, bvd, c.o).backward(dyd);
    check_close(xv.grad(), xvd.grad(), "variable dx");
    check_close(wv.grad(), wvd.grad(), "variable dw");
    if (c.bias) check_close(bv.grad(), bvd.grad(), "variable db");
  }
}
}  // namespace cuda_conv_test

TEMPLATE_TEST_CASE("cuda conv2d: forward, backward and the differentiable form match the CPU", "[cuda][conv2d]",
                   float, double) {
  ARCNET_REQUIRE_CUDA_DEVICE();
  using T = TestType;
  std::uint64_t seed = 3000;
  for (auto const& c : cuda_conv_test::cases()) {
    INFO("x " << c.x << ", kernel " << c.kh << "x" << c.kw << " -> " << c.cout << ", stride (" << c.o.stride_h << ", "
              << c.o.stride_w << "), pad (" << c.o.pad_h << ", " << c.o.pad_w << "), dilation (" << c.o.dilation_h
              << ", " << c.o.dilation_w << "), bias " << c.bias);
    cuda_conv_test::run_case<T>(c, seed += 10);
  }
}

TEST_CASE("cuda conv2d: repeated backward gives the same bits", "[cuda][conv2d]") {
  ARCNET_REQUIRE_CUDA_DEVICE();
  // the col2im gather and the bias column sums use no atomics
  auto x = cuda_testing::random_tensor<float>(shape{2, 9, 8, 5}, 41).to<cuda>();
  auto w = cuda_testing::random_tensor<float>(shape{3, 3, 5, 6}, 42).to<cuda>();
  auto dy = cuda_testing::random_tensor<float>(shape{2, 5, 4, 6}, 43).to<cuda>();
  ops::conv2d_options o{2, 2, 1, 1};
  std::vector<std::vector<float>> runs;
  for (int r = 0; r < 2; ++r) {
    tensor<float, cuda> dx(x.shape()), db(shape{6});
    ops::conv2d_backward(x, w, dy, o, &dx, nullptr, &db);
    auto v = dx.to_vector();
    auto vb = db.to_vector();
    v.insert(v.end(), vb.begin(), vb.end());
    runs.push_back(v);
  }
  CHECK(runs[0] == runs[1]);
}

TEST_CASE("cuda conv2d: bad input throws arcnet::error", "[cuda][conv2d]") {
  ARCNET_REQUIRE_CUDA_DEVICE();
  tensor<float, cuda> x(shape{1, 5, 5, 3}), w(shape{3, 3, 4, 2});  // 3 input channels, weight wants 4
  CHECK_THROWS_AS(ops::conv2d_forward(x, w, tensor<float, cuda>()), arcnet::error);
  tensor<float, cuda> w3(shape{3, 3, 3, 2}), bias(shape{3});
  CHECK_THROWS_AS(ops::conv2d_forward(x, w3, bias), arcnet::error);
}
