// CUDA tests of ops/pool.hpp: max pooling (values, argmax, backward through the argmax with
// overlapping windows), average pooling (count_include_pad and ceil_mode variants) and global
// average pooling, raw and differentiable, each against the CPU backend on the same input, float
// and double, on awkward sizes and on ResNet's stem pool (4 x 112 x 112 x 64, 3x3 stride 2 pad 1).
// The forward kernels sum in the CPU's order and the backward gathers add in the CPU's order, so
// the default tolerances hold; the global average sums in double (the CPU in T), well within them.
#include "cuda/cuda_test_util.hpp"

#include <arcnet/ops/cast.hpp>
#include <arcnet/ops/pool.hpp>

#include <cmath>
#include <cstdint>
#include <vector>

using namespace arcnet;

namespace cuda_pool_test {
using cuda_testing::max_difference;
using cuda_testing::random_tensor;
using cuda_testing::tolerance;

struct pool_case {
  shape x;
  ops::pool2d_options o;
};

inline std::vector<pool_case> cases() {
  return {
      {shape{4, 112, 112, 64}, {3, 3, 2, 2, 1, 1}},               // ResNet's stem max pool
      {shape{2, 7, 5, 3}, {3, 3, 2, 2, 1, 1, true, false}},
      {shape{2, 7, 5, 3}, {3, 3, 2, 2, 1, 1, false, false}},      // padding not counted
      {shape{2, 7, 5, 3}, {2, 2, 2, 2, 0, 0, true, true}},        // ceil_mode: partial last windows
      {shape{2, 7, 5, 3}, {2, 2, 2, 2, 1, 1, true, true}},
      {shape{3, 9, 8, 1}, {3, 2, 2, 1, 1, 0, false, true}},
      {shape{1, 9, 8, 7}, {5, 4, 3, 1, 2, 2, false, true}},
      {shape{1, 1, 1, 257}, {1, 1, 1, 1}},
      {shape{2, 6, 6, 3}, {3, 3, 1, 1, 1, 1}},                    // stride 1: up to 9 windows per input
  };
}

template <class T>
void check_close(tensor<T, cpu> const& expected, tensor<T, cuda> const& got, char const* what) {
  INFO(what);
  CHECK(max_difference(expected, got) <= tolerance<T>());
}

template <class T>
void run_case(pool_case const& c, std::uint64_t seed, bool ties) {
  auto x = random_tensor<T>(c.x, seed);
  // ties: few distinct values, so windows hold several maxima and the first one must win
  if (ties)
    for (index_t i = 0; i < x.numel(); ++i) x[i] = std::floor(x[i] * T(2));
  auto xd = x.template to<cuda>();
  auto g = detail::pool2d_geometry_of("test", x, c.o);
  shape const ys{g.n, g.ho, g.wo, g.c};
  auto dy = random_tensor<T>(ys, seed + 1);
  auto dx0 = random_tensor<T>(x.shape(), seed + 2);  // backward must add to it
  auto dyd = dy.template to<cuda>();

  // max
  tensor<index_t, cpu> arg;
  tensor<index_t, cuda> arg_d;
  auto y = ops::max_pool2d_forward(x, c.o, &arg);
  auto y_d = ops::max_pool2d_forward(xd, c.o, &arg_d);
  check_close(y, y_d, "max forward");
  CHECK(arg.to_vector() == arg_d.to_vector());
  check_close(y, ops::max_pool2d_forward(xd, c.o), "max forward without argmax");
  auto dx = dx0.clone();
  auto dx_d = dx0.template to<cuda>();
  ops::max_pool2d_backward(dy, arg, dx);
  ops::max_pool2d_backward(dyd, arg_d, dx_d);
  check_close(dx, dx_d, "max backward");
  {
    variable<T, cpu> xv(x, true);
    variable<T, cuda> xvd(xd, true);
    ops::max_pool2d(xv, c.o).backward(dy);
    ops::max_pool2d(xvd, c.o).backward(dyd);
    check_close(xv.grad(), xvd.grad(), "max variable grad");
  }

  // average
  check_close(ops::avg_pool2d_forward(x, c.o), ops::avg_pool2d_forward(xd, c.o), "avg forward");
  dx = dx0.clone();
  dx_d = dx0.template to<cuda>();
  ops::avg_pool2d_backward(dy, c.o, dx);
  ops::avg_pool2d_backward(dyd, c.o, dx_d);
  check_close(dx, dx_d, "avg backward");
  {
    variable<T, cpu> xv(x, true);
    variable<T, cuda> xvd(xd, true);
    ops::avg_pool2d(xv, c.o).backward(dy);
    ops::avg_pool2d(xvd, c.o).backward(dyd);
    check_close(xv.grad(), xvd.grad(), "avg variable grad");
  }

  // global average
  check_close(ops::global_avg_pool_forward(x), ops::global_avg_pool_forward(xd), "global avg forward");
  auto gdy = random_tensor<T>(shape{g.n, g.c}, seed + 3);
  auto gdyd = gdy.template to<cuda>();
  dx = dx0.clone();
  dx_d = dx0.template to<cuda>();
  ops::global_avg_pool_backward(gdy, dx);
  ops::global_avg_pool_backward(gdyd, dx_d);
  check_close(dx, dx_d, "global avg backward");
  {
    variable<T, cpu> xv(x, true);
    variable<T, cuda> xvd(xd, true);
    ops::global_avg_pool(xv).backward(gdy);
    ops::global_avg_pool(xvd).backward(gdyd);
    check_close(xv.grad(), xvd.grad(), "global avg variable grad");
  }
}
}  // namespace cuda_pool_test

TEMPLATE_TEST_CASE("cuda pool: max, average and global average pooling match the CPU", "[cuda][pool]", float,
                   double) {
  ARCNET_REQUIRE_CUDA_DEVICE();
  using T = TestType;
  std::uint64_t seed = 4000;
  for (auto const& c : cuda_pool_test::cases())
    for (bool ties : {false, true}) {
      INFO("x " << c.x << ", kernel (" << c.o.kernel_h << ", " << c.o.kernel_w << "), stride (" << c.o.stride_h
                << ", " << c.o.stride_w << "), pad (" << c.o.pad_h << ", " << c.o.pad_w << "), include pad "
                << c.o.count_include_pad << ", ceil " << c.o.ceil_mode << ", ties " << ties);
      cuda_pool_test::run_case<T>(c, seed += 10, ties);
    }
}

TEST_CASE("cuda pool: global average over many pixels and images, NaN in max pooling", "[cuda][pool]") {
  ARCNET_REQUIRE_CUDA_DEVICE();
  // 3136 pixels per image: many segments in the two-stage sum; 70 images, 2048 channels
  for (shape s : {shape{3, 56, 56, 33}, shape{70, 2, 3, 2048}}) {
    INFO("x " << s);
    auto x = cuda_testing::random_tensor<double>(s, 61);
    CHECK(cuda_testing::max_difference(ops::global_avg_pool_forward(x), ops::global_avg_pool_forward(x.to<cuda>())) <=
          cuda_testing::tolerance<double>());
  }
  // NaN wins the max, as on the CPU (and in PyTorch)
  auto x = cuda_testing::random_tensor<float>(shape{1, 4, 4, 2}, 51);
  x[5 * 2 + 1] = NAN;  // pixel (1, 1) = position 5, channel 1: in output (0, 0)'s window
  tensor<index_t, cuda> arg_d;
  auto y = ops::max_pool2d_forward(x.to<cuda>(), {2, 2, 2, 2}, &arg_d).to<cpu>();
  CHECK(std::isnan(y[1]));
  CHECK(arg_d.to_vector()[1] == 5);
}

TEST_CASE("cuda pool on bf16 tensors: max exact, averages rounded once", "[cuda][pool]") {
  ARCNET_REQUIRE_CUDA_DEVICE();
  ops::pool2d_options const stem{3, 3, 2, 2, 1, 1};
  auto xb = ops::cast_forward<bfloat16>(cuda_testing::random_tensor<float>(shape{2, 17, 15, 40}, 5100));
  auto x = xb.cast<float>();
  // the float reference on the same (bf16) values
  variable<float, cpu> xv(x, true);
  auto ym = ops::max_pool2d(xv, stem), ya = ops::avg_pool2d(xv, stem), yg = ops::global_avg_pool(xv);
  auto dym = ops::cast_forward<bfloat16>(cuda_testing::random_tensor<float>(ym.shape(), 5101));
  auto dyg = ops::cast_forward<bfloat16>(cuda_testing::random_tensor<float>(yg.shape(), 5102));
  ym.backward(dym.cast<float>());
  auto dx_max = xv.grad().clone();
  xv.zero_grad();
  yg.backward(dyg.cast<float>());
  auto dx_global = xv.grad().clone();

  variable<bfloat16, cuda> xd(xb.to<cuda>(), true);
  auto ymd = ops::max_pool2d(xd, stem);
  CHECK(ops::cast_forward<float>(ymd.value()).to_vector() == ym.value().to_vector());  // a max of bf16 values
  ymd.backward(dym.to<cuda>());
  // each input gathers at most 4 windows' dy here: their float sum, rounded to bf16 once
  auto within_rounding = [](tensor<float, cpu> const& want, tensor<bfloat16, cuda> const& got) {
    auto g = ops::cast_forward<float>(got).to<cpu>();
    std::size_t off = 0;
    for (index_t i = 0; i < want.numel(); ++i)
      off += std::abs(g[i] - want[i]) > std::abs(want[i]) * 0x1p-8f * 1.01f + 1e-6f;
    return off;
  };
  CHECK(within_rounding(dx_max, xd.grad()) == 0);
  CHECK(within_rounding(ya.value(), ops::avg_pool2d_forward(xd.value(), stem)) == 0);
  xd.zero_grad();
  auto ygd = ops::global_avg_pool(xd);
  CHECK(within_rounding(yg.value(), ygd.value()) == 0);
  ygd.backward(dyg.to<cuda>());
  CHECK(within_rounding(dx_global, xd.grad()) == 0);
}

TEST_CASE("cuda pool: bad input throws arcnet::error", "[cuda][pool]") {
  ARCNET_REQUIRE_CUDA_DEVICE();
  tensor<float, cuda> x(shape{1, 2, 2, 3});
  CHECK_THROWS_AS(ops::max_pool2d_forward(x, {3, 3, 1, 1}), arcnet::error);  // output would be empty
  tensor<float, cuda> dx(shape{1, 4, 4, 3}), dy(shape{1, 3, 3, 3});
  CHECK_THROWS_AS(ops::avg_pool2d_backward(dy, {2, 2, 2, 2}, dx), arcnet::error);  // dy should be 2x2
}
