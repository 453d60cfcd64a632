// Parity with PyTorch (float64 references from tests/fixtures/make_conv_pool_fixtures.py):
// relative error below 1e-5 in double; in float below 1e-4, relative to max(|reference|, 1e-2).
#include "test_util.hpp"

#include <arcnet/ops/conv2d.hpp>
#include <arcnet/ops/pool.hpp>

#include "fixture.hpp"

using namespace arcnet;

namespace conv_parity_test {

template <class T>
struct tolerance {
  static constexpr double rel = std::is_same_v<T, double> ? 1e-5 : 1e-4;
  static constexpr double floor = std::is_same_v<T, double> ? 1e-6 : 1e-2;
};

template <class T>
void check_close(char const* what, tensor<T> const& ours, tensor<double> const& ref) {
  INFO(what << ": ours " << ours.shape() << ", PyTorch " << ref.shape());
  REQUIRE(ours.shape() == ref.shape());
  double d = testing::max_relative_difference(ours, ref, tolerance<T>::floor);
  INFO(what << ": max relative difference " << d);
  CHECK(d < tolerance<T>::rel);
}

template <class T>
void check_conv(std::string const& file, ops::conv2d_options o) {
  testing::fixture f(file);
  variable<T> x(f["x"].cast<T>(), true), w(f["weight"].cast<T>(), true), b(f["bias"].cast<T>(), true);
  auto y = ops::conv2d(x, w, b, o);
  check_close("y", y.value(), f["y"]);
  y.backward(f["dy"].cast<T>());
  check_close("dx", x.grad(), f["dx"]);
  check_close("dweight", w.grad(), f["dweight"]);
  check_close("dbias", b.grad(), f["dbias"]);
}

template <class T>
void check_max_pool(std::string const& file, ops::pool2d_options o) {
  testing::fixture f(file);
  tensor<index_t> arg;
  auto y0 = ops::max_pool2d_forward(f["x"].cast<T>(), o, &arg);
  check_close("y (raw)", y0, f["y"]);
  auto const& idx = f["indices"];
  REQUIRE(arg.shape() == idx.shape());
  index_t mismatches = 0;
  for (index_t i = 0; i < arg.numel(); ++i) mismatches += arg[i] != static_cast<index_t>(idx[i]);
  CHECK(mismatches == 0);

  variable<T> x(f["x"].cast<T>(), true);
  auto y = ops::max_pool2d(x, o);
  check_close("y", y.value(), f["y"]);
  y.backward(f["dy"].cast<T>());
  check_close("dx", x.grad(), f["dx"]);
}

template <class T>
void check_avg_pool(std::string const& file, ops::pool2d_options o) {
  testing::fixture f(file);
  variable<T> x(f["x"].cast<T>(), true);
  auto y = ops::avg_pool2d(x, o);
  check_close("y", y.value(), f["y"]);
  y.backward(f["dy"].cast<T>());
  check_close("dx", x.grad(), f["dx"]);
}

}  // namespace conv_parity_test

TEMPLATE_TEST_CASE("conv2d: matches PyTorch (output and gradients)", "[ops][conv2d][parity]", double, float) {
  SECTION("3x3 stride 2 pad 1") { conv_parity_test::check_conv<TestType>("conv_pool_conv3x3_s2_p1.txt", {2, 2, 1, 1, 1, 1}); }
  SECTION("1x1") { conv_parity_test::check_conv<TestType>("conv_pool_conv1x1.txt", {}); }
  SECTION("7x7 stride 2 pad 3") { conv_parity_test::check_conv<TestType>("conv_pool_conv7x7_s2_p3.txt", {2, 2, 3, 3, 1, 1}); }
}

TEMPLATE_TEST_CASE("max_pool2d: matches PyTorch (output, indices and gradient)", "[ops][pool][parity]", double,
                   float) {
  conv_parity_test::check_max_pool<TestType>("conv_pool_maxpool3x3_s2_p1.txt", {3, 3, 2, 2, 1, 1});
}

TEMPLATE_TEST_CASE("avg_pool2d: matches PyTorch with ceil_mode, with and without count_include_pad",
                   "[ops][pool][parity]", double, float) {
  SECTION("count_include_pad") {
    conv_parity_test::check_avg_pool<TestType>("conv_pool_avgpool3x3_s2_p1_ceil.txt", {3, 3, 2, 2, 1, 1, true, true});
  }
  SECTION("exclude padding") {
    conv_parity_test::check_avg_pool<TestType>("conv_pool_avgpool3x3_s2_p1_ceil_nopad.txt",
                                               {3, 3, 2, 2, 1, 1, false, true});
  }
}
