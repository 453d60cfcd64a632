#include "test_util.hpp"

#include <arcnet/ops/pool.hpp>

using namespace arcnet;

namespace pool_test {

inline tensor<double> iota(shape s, double start = 0, double step = 1) {
  auto t = tensor<double>::uninitialized(std::move(s));
  for (index_t i = 0; i < t.numel(); ++i) t[i] = start + step * static_cast<double>(i);
  return t;
}

}  // namespace pool_test

TEST_CASE("max_pool2d: forward, argmax and backward on hand-computed values", "[ops][pool]") {
  auto x = pool_test::iota(shape{1, 4, 4, 1});  // x[i, j] = 4i + j
  tensor<index_t> arg;
  auto y = ops::max_pool2d_forward(x, {2, 2, 2, 2}, &arg);
  REQUIRE(y.shape() == shape{1, 2, 2, 1});
  CHECK(y.to_vector() == std::vector<double>{5, 7, 13, 15});
  CHECK(arg.to_vector() == std::vector<index_t>{5, 7, 13, 15});

  // padding counts as -inf, not 0: on negative inputs the corner window's max is x[0, 0]
  auto neg = pool_test::iota(shape{1, 4, 4, 1}, -1, -1);  // -1 .. -16
  auto yn = ops::max_pool2d_forward(neg, {3, 3, 2, 2, 1, 1}, &arg);
  CHECK(yn.to_vector() == std::vector<double>{-1, -2, -5, -6});
  CHECK(arg.to_vector() == std::vector<index_t>{0, 1, 4, 5});

  // the gradient goes to the argmax only; overlapping windows add up
  auto dy = tensor<double>::from_vector(shape{1, 2, 2, 1}, {1, 2, 3, 4});
  tensor<double> dx(neg.shape());
  ops::max_pool2d_backward(dy, arg, dx);
  std::vector<double> expect(16, 0.0);
  expect[0] = 1, expect[1] = 2, expect[4] = 3, expect[5] = 4;
  CHECK(dx.to_vector() == expect);
  ops::max_pool2d_backward(dy, arg, dx);  // accumulates
  CHECK(dx[5] == 8);
}

TEST_CASE("avg_pool2d: padding, count_include_pad and ceil_mode follow PyTorch", "[ops][pool]") {
  auto x = pool_test::iota(shape{1, 3, 3, 1}, 1);  // 1..9
  auto inc = ops::avg_pool2d_forward(x, {2, 2, 2, 2, 1, 1, true});
  CHECK(inc.to_vector() == std::vector<double>{1 / 4.0, 5 / 4.0, 11 / 4.0, 28 / 4.0});
  auto exc = ops::avg_pool2d_forward(x, {2, 2, 2, 2, 1, 1, false});
  CHECK(exc.to_vector() == std::vector<double>{1, 5 / 2.0, 11 / 2.0, 7});

  // ceil_mode adds a partial window on the right/bottom; it divides by its clipped size
  auto x5 = pool_test::iota(shape{1, 5, 5, 1});  // 5i + j
  CHECK(ops::avg_pool2d_forward(x5, {2, 2, 2, 2}).shape() == shape{1, 2, 2, 1});
  auto c = ops::avg_pool2d_forward(x5, {2, 2, 2, 2, 0, 0, true, true});
  REQUIRE(c.shape() == shape{1, 3, 3, 1});
  CHECK(c.at(0, 0, 2, 0) == Approx((4 + 9) / 2.0));
  CHECK(c.at(0, 2, 2, 0) == Approx(24.0));
  CHECK(c.at(0, 1, 1, 0) == Approx((12 + 13 + 17 + 18) / 4.0));

  // multi-channel: channels pool independently
  auto x2 = tensor<double>::from_vector(shape{1, 2, 2, 2}, {1, 10, 2, 20, 3, 30, 4, 40});
  CHECK(ops::avg_pool2d_forward(x2, {2, 2, 1, 1}).to_vector() == std::vector<double>{2.5, 25});
  CHECK(ops::max_pool2d_forward(x2, {2, 2, 1, 1}).to_vector() == std::vector<double>{4, 40});
}

TEST_CASE("pool: output sizes follow PyTorch's floor and ceil rules", "[ops][pool]") {
  using arcnet::detail::pool2d_output_size;
  CHECK(pool2d_output_size(112, 3, 2, 1, false) == 56);  // the ResNet stem's max pool
  CHECK(pool2d_output_size(6, 3, 2, 1, false) == 3);
  CHECK(pool2d_output_size(6, 3, 2, 1, true) == 4);
  CHECK(pool2d_output_size(5, 2, 2, 1, true) == 3);  // a fourth window would start in the padding
  CHECK(pool2d_output_size(5, 2, 2, 0, true) == 3);
  CHECK(pool2d_output_size(1, 3, 1, 0, false) <= 0);
}

TEST_CASE("global_avg_pool: forward and backward on hand-computed values", "[ops][pool]") {
  auto x = tensor<double>::from_vector(shape{2, 1, 2, 2}, {1, 10, 3, 30, 5, 50, 7, 70});
  auto y = ops::global_avg_pool_forward(x);
  REQUIRE(y.shape() == shape{2, 2});
  CHECK(y.to_vector() == std::vector<double>{2, 20, 6, 60});
  tensor<double> dx(x.shape());
  ops::global_avg_pool_backward(tensor<double>::from_vector(shape{2, 2}, {2, 4, 6, 8}), dx);
  CHECK(dx.to_vector() == std::vector<double>{1, 2, 1, 2, 3, 4, 3, 4});
}

TEST_CASE("max_pool2d: gradients match finite differences", "[ops][pool]") {
  generator g(21);
  // random normal inputs: no ties, and a step of 1e-6 never changes an argmax
  for (ops::pool2d_options o : {ops::pool2d_options{3, 3, 2, 2, 1, 1}, ops::pool2d_options{2, 2, 2, 2, 0, 0, true, true},
                                ops::pool2d_options{3, 2, 2, 1, 1, 0}}) {
    INFO("kernel " << o.kernel_h << "x" << o.kernel_w << " ceil " << o.ceil_mode);
    auto x = testing::random_variable(shape{2, 7, 5, 3}, g);
    testing::require_gradients_match([&] { return ops::max_pool2d(x, o); }, {x}, 1e-6);
  }
}

TEST_CASE("avg_pool2d: gradients match finite differences", "[ops][pool]") {
  generator g(22);
  for (ops::pool2d_options o :
       {ops::pool2d_options{3, 3, 2, 2, 1, 1, true}, ops::pool2d_options{3, 3, 2, 2, 1, 1, false},
        ops::pool2d_options{2, 2, 2, 2, 1, 1, true, true}, ops::pool2d_options{3, 2, 2, 1, 1, 0, false, true},
        ops::pool2d_options{2, 2, 2, 2, 0, 0, true, true}}) {
    INFO("kernel " << o.kernel_h << "x" << o.kernel_w << " pad " << o.pad_h << " include pad "
                   << o.count_include_pad << " ceil " << o.ceil_mode);
    auto x = testing::random_variable(shape{2, 7, 5, 3}, g);
    testing::require_gradients_match([&] { return ops::avg_pool2d(x, o); }, {x}, 1e-6);
  }
}

TEST_CASE("global_avg_pool: gradients match finite differences", "[ops][pool]") {
  generator g(23);
  auto x = testing::random_variable(shape{2, 5, 3, 4}, g);
  testing::require_gradients_match([&] { return ops::global_avg_pool(x); }, {x}, 1e-6);
}

TEST_CASE("pool: float and double forward agree", "[ops][pool]") {
  generator g(24);
  auto x = randn<double>(shape{2, 9, 7, 5}, g);
  auto xf = x.cast<float>();
  ops::pool2d_options o{3, 3, 2, 2, 1, 1, false, true};
  CHECK(testing::max_relative_difference(ops::max_pool2d_forward(xf, o), ops::max_pool2d_forward(x, o)) < 1e-6);
  CHECK(testing::max_relative_difference(ops::avg_pool2d_forward(xf, o), ops::avg_pool2d_forward(x, o), 1.0) < 1e-6);
  CHECK(testing::max_relative_difference(ops::global_avg_pool_forward(xf), ops::global_avg_pool_forward(x), 1.0) <
        1e-6);
}

TEST_CASE("pool: bad shapes and options are reported clearly", "[ops][pool]") {
  tensor<float> x(shape{2, 8, 8, 3});
  CHECK_THROWS_WITH(ops::max_pool2d_forward(x, {3, 3, 2, 2, 2, 2}),
                    "arcnet: max_pool2d: padding must be at most half the kernel size, got padding (2, 2) for "
                    "kernel (3, 3)");
  CHECK_THROWS_AS(ops::avg_pool2d_forward(x, {2, 2, 2, 2, 0, 2}), config_error);
  CHECK_THROWS_AS(ops::max_pool2d_forward(x, {3, 3, 0, 2}), config_error);
  CHECK_THROWS_AS(ops::max_pool2d_forward(x, {0, 3, 1, 1}), config_error);
  CHECK_THROWS_AS(ops::avg_pool2d_forward(x, {3, 3, 1, 1, -1, 0}), config_error);
  CHECK_THROWS_WITH(ops::max_pool2d_forward(tensor<float>(shape{8, 8, 3}), {2, 2, 2, 2}),
                    "arcnet: max_pool2d: expected input of rank 4 (N, H, W, C), got shape (8, 8, 3)");
  CHECK_THROWS_AS(ops::avg_pool2d_forward(tensor<float>(shape{1, 2, 2, 3}), {3, 3, 1, 1}), shape_error);
  CHECK_THROWS_WITH(ops::avg_pool2d_forward(tensor<float>(shape{1, 2, 2, 3}), {3, 3, 1, 1}),
                    Catch::Contains("output would be empty"));
  CHECK_THROWS_AS(ops::global_avg_pool_forward(tensor<float>(shape{2, 3})), shape_error);
  // backward: gradient shapes
  tensor<float> dx(x.shape()), dy_bad(shape{2, 3, 3, 3});
  CHECK_THROWS_WITH(ops::avg_pool2d_backward(dy_bad, {2, 2, 2, 2}, dx),
                    "arcnet: avg_pool2d_backward: expected output gradient of shape (2, 4, 4, 3), got (2, 3, 3, 3)");
  tensor<index_t> arg(shape{2, 4, 4, 3});
  CHECK_THROWS_AS(ops::max_pool2d_backward(dy_bad, arg, dx), shape_error);
  CHECK_THROWS_AS(ops::global_avg_pool_backward(tensor<float>(shape{2, 4}), dx), shape_error);
}

TEST_CASE("max_pool2d: records the argmax only when a gradient is needed", "[ops][pool]") {
  generator g(25);
  variable<double> x(randn<double>(shape{1, 5, 5, 2}, g));
  auto y = ops::max_pool2d(x, {3, 3, 2, 2, 1, 1});
  CHECK_FALSE(y.requires_grad());
  x.set_requires_grad(true);
  auto y2 = ops::max_pool2d(x, {3, 3, 2, 2, 1, 1});
  REQUIRE(y2.requires_grad());
  ops::sum(y2).backward();
  double total = 0;
  for (index_t i = 0; i < x.grad().numel(); ++i) total += x.grad()[i];
  CHECK(total == Approx(static_cast<double>(y2.numel())));  // each output sends 1 to one input
}
