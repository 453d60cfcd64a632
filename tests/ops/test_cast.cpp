#include "test_util.hpp"

#include <arcnet/ops/cast.hpp>
#include <arcnet/ops/elementwise.hpp>
#include <arcnet/ops/reduce.hpp>

#include <cmath>
#include <limits>

using namespace arcnet;

namespace cast_test {
using ftensor = tensor<float, cpu>;
using fvar = variable<float, cpu>;
/// v rounded to bf16 and back: the value a bf16 tensor holds for v.
inline float bf16_value(float v) { return static_cast<float>(bfloat16(v)); }
}  // namespace cast_test

TEST_CASE("bfloat16: rounding to nearest even, exact widening, NaN kept", "[ops][cast]") {
  using namespace cast_test;
  CHECK(bf16_value(1.0f) == 1.0f);
  CHECK(bf16_value(1.0f + 0x1p-8f) == 1.0f);                 // halfway: to the even mantissa (0)
  CHECK(bf16_value(1.0f + 3 * 0x1p-8f) == 1.0f + 0x1p-6f);   // halfway: to the even mantissa (2)
  CHECK(bf16_value(1.0f + 0x1p-8f + 0x1p-20f) == 1.0f + 0x1p-7f);  // above halfway: up
  CHECK(bf16_value(-3.140625f) == -3.140625f);               // representable: unchanged
  CHECK(std::isfinite(bf16_value(3e38f)));                   // fp32's exponent range
  CHECK(std::abs(bf16_value(3e38f) - 3e38f) <= 3e38f * 0x1p-8f);
  CHECK(std::isnan(bf16_value(std::numeric_limits<float>::quiet_NaN())));
  CHECK(bfloat16(2.0f) == bfloat16(2.0f));
  CHECK(bfloat16(2.0f) != bfloat16(-2.0f));
  CHECK(convert<double>(bfloat16(0.5f)) == 0.5);
  CHECK(element_add(bfloat16(1.0f), bfloat16(0x1p-9f)) == bfloat16(1.0f));  // the sum is rounded
}

TEST_CASE("bf16 tensors: zeros, full, clone and tensor::cast", "[ops][cast]") {
  tensor<bfloat16, cpu> z(shape{3});
  for (index_t i = 0; i < 3; ++i) CHECK(static_cast<float>(z[i]) == 0.0f);
  auto f = tensor<bfloat16, cpu>::full(shape{2, 2}, bfloat16(1.5f));
  auto c = f.clone();
  CHECK(static_cast<float>(c.at(1, 1)) == 1.5f);
  CHECK(f.cast<float>().to_vector() == std::vector<float>{1.5f, 1.5f, 1.5f, 1.5f});
}

TEST_CASE("cast: float -> bf16 -> float rounds each value once, double -> float too", "[ops][cast]") {
  using namespace cast_test;
  std::vector<float> v{0.1f, -2.7182817f, 1e-30f, 65504.0f, 1.0f + 0x1p-8f, 0.0f};
  auto x = ftensor::from_vector(shape{2, 3}, v);
  auto b = ops::cast_forward<bfloat16>(x);
  auto back = ops::cast_forward<float>(b);
  REQUIRE(back.shape() == x.shape());
  for (std::size_t i = 0; i < v.size(); ++i) {
    CHECK(back[index_t(i)] == bf16_value(v[i]));
    CHECK(std::abs(back[index_t(i)] - v[i]) <= std::abs(v[i]) * 0x1p-8f);  // half a bf16 ulp at most
  }
  auto d = tensor<double, cpu>::from_vector(shape{2}, {0.1, -1e300});
  auto df = ops::cast_forward<float>(d);
  CHECK(df[0] == 0.1f);
  CHECK(std::isinf(df[1]));
}

TEST_CASE("cast: the gradient is converted back and accumulated", "[ops][cast]") {
  using namespace cast_test;
  fvar x(ftensor::from_vector(shape{4}, {1, 2, 3, 4}), true);
  // loss = sum(cast<float>(cast<bf16>(x)) * w): dloss/dx = w, rounded to bf16 on its way through
  // the bf16 value; used twice, the two gradients add.
  std::vector<float> w{0.1f, -0.3f, 1.0f + 0x1p-8f + 0x1p-12f, 7.0f};
  fvar wv(ftensor::from_vector(shape{4}, w));
  auto b = ops::cast<bfloat16>(x);
  static_assert(std::is_same_v<decltype(b), variable<bfloat16, cpu>>);
  CHECK(b.requires_grad());
  auto loss = ops::sum(ops::mul(ops::cast<float>(b), wv)) + ops::sum(ops::mul(ops::cast<float>(ops::cast<bfloat16>(x)), wv));
  loss.backward();
  REQUIRE(x.grad().defined());
  for (index_t i = 0; i < 4; ++i) CHECK(x.grad()[i] == 2 * bf16_value(w[std::size_t(i)]));
  // The bf16 variable itself accumulated in bf16 (its gradient is kept: retain_grad is not
  // needed to read a leaf's, so check through a second, explicit backward of a bf16 leaf).
  variable<bfloat16, cpu> leaf(ops::cast_forward<bfloat16>(ftensor::from_vector(shape{2}, {1, 1})), true);
  auto l2 = ops::sum(ops::mul(ops::cast<float>(leaf), fvar(ftensor::from_vector(shape{2}, {0.5f, 0x1p-10f}))));
  l2.backward();
  l2 = ops::sum(ops::mul(ops::cast<float>(leaf), fvar(ftensor::from_vector(shape{2}, {0.5f, 1.0f}))));
  l2.backward();
  CHECK(static_cast<float>(leaf.grad()[0]) == 1.0f);
  CHECK(static_cast<float>(leaf.grad()[1]) == 1.0f);  // 2^-10 + 1 rounds to 1 in bf16
}

TEST_CASE("cast: to the same type is the variable itself, and bad shapes are refused", "[ops][cast]") {
  using namespace cast_test;
  fvar x(ftensor::from_vector(shape{2}, {1, 2}), true);
  auto same = ops::cast<float>(x);
  CHECK(same.impl() == x.impl());
  auto dx = ftensor::zeros(shape{3});
  CHECK_THROWS_AS(ops::cast_backward(tensor<bfloat16, cpu>(shape{2}), dx), shape_error);
  {
    autograd::no_grad off;
    CHECK_FALSE(ops::cast<bfloat16>(x).requires_grad());
  }
}
