// CUDA tests of ops/loss.hpp: softmax, log-softmax and cross-entropy on the cuda tag against the
// CPU backend, forward and backward (raw and through autograd), float and double, on rows from
// one element to 100k classes.
#include "cuda/cuda_test_util.hpp"

#include <cstring>
#include <vector>

#include <arcnet/ops/loss.hpp>

using namespace arcnet;

namespace cuda_loss_test {

using cuda_testing::random_targets;

/// Backward of log-softmax in float: dx = dy - exp(y) sum(dy) subtracts O(1) terms, and y (a
/// log-probability near -10, float ulp ~1e-6) comes back through exp with that relative error, so
/// elements that cancel below the 1e-2 floor of max_difference can differ by ~1e-5 relative
/// between two correct backends (expf is 2 ulp on the device, fused multiply-adds round once).
template <class T>
constexpr double backward_tolerance() {
  return sizeof(T) == sizeof(float) ? 2e-4 : cuda_testing::tolerance<double>();
}

std::vector<shape> const row_shapes{shape{1, 1},     shape{3, 7},      shape{8, 3997},
                                    shape{64, 4000}, shape{2, 3, 257}, shape{2, 100003}};

}  // namespace cuda_loss_test

TEMPLATE_TEST_CASE("cuda loss: softmax and log_softmax match the CPU, forward and backward", "[cuda]", float, double) {
  ARCNET_REQUIRE_CUDA_DEVICE();
  using namespace cuda_loss_test;
  using T = TestType;
  using cuda_testing::max_difference;
  double const tol = cuda_testing::tolerance<T>();
  std::uint64_t seed = 100;
  for (shape const& s : row_shapes) {
    for (bool log : {false, true}) {
      INFO("shape " << s << (log ? " log_softmax" : " softmax"));
      // Logits far from 0 in one shape: exp would overflow in float without the max shift.
      bool const far = s.rank() == 3;
      auto x = cuda_testing::random_tensor<T>(s, ++seed, far ? 90.0 : -8.0, far ? 100.0 : 8.0);
      auto dy = cuda_testing::random_tensor<T>(s, ++seed);
      auto dx0 = cuda_testing::random_tensor<T>(s, ++seed);  // backward accumulates into it
      auto xd = x.template to<cuda>();

      auto y = log ? ops::log_softmax_forward(x) : ops::softmax_forward(x);
      auto yd = log ? ops::log_softmax_forward(xd) : ops::softmax_forward(xd);
      CHECK(max_difference(y, yd) <= tol);

      // In place (y aliasing x), as loss_impl must allow.
      auto inplace = x.template to<cuda>();  // a fresh copy: xd is used again below
      index_t const cols = s[-1], rows = s.numel() / cols;
      ops::loss_impl<cuda>::softmax(inplace, inplace, rows, cols, log);
      CHECK(max_difference(y, inplace) <= tol);

      // Raw backward from the same y on both devices.
      auto dx = dx0.clone();
      auto dxd = dx0.template to<cuda>();
      auto y_on_device = y.template to<cuda>();
      auto dyd = dy.template to<cuda>();
      if (log) {
        ops::log_softmax_backward(y, dy, dx);
        ops::log_softmax_backward(y_on_device, dyd, dxd);
      } else {
        ops::softmax_backward(y, dy, dx);
        ops::softmax_backward(y_on_device, dyd, dxd);
      }
      double const tol_backward = log ? backward_tolerance<T>() : tol;
      CHECK(max_difference(dx, dxd) <= tol_backward);

      // Differentiable form: each device's own y, seeded with dy.
      variable<T, cpu> v(x, true);
      variable<T, cuda> vd(xd, true);
      (log ? ops::log_softmax(v) : ops::softmax(v)).backward(dy);
      (log ? ops::log_softmax(vd) : ops::softmax(vd)).backward(dyd);
      REQUIRE(vd.grad().defined());
      CHECK(max_difference(v.grad(), vd.grad()) <= tol_backward);
    }
  }
}

TEMPLATE_TEST_CASE("cuda loss: cross_entropy matches the CPU, with and without label smoothing", "[cuda]", float,
                   double) {
  ARCNET_REQUIRE_CUDA_DEVICE();
  using namespace cuda_loss_test;
  using T = TestType;
  using cuda_testing::max_difference;
  double const tol = cuda_testing::tolerance<T>();
  std::uint64_t seed = 200;
  for (shape const& s :
       {shape{1, 1}, shape{3, 7}, shape{8, 3997}, shape{64, 4000}, shape{128, 4000}, shape{2, 100003}}) {
    for (double ls : {0.0, 0.1, 1.0}) {
      INFO("logits " << s << ", label_smoothing " << ls);
      auto x = cuda_testing::random_tensor<T>(s, ++seed, -8.0, 8.0);
      auto targets = random_targets(s[0], s[1], ++seed);
      auto dx0 = cuda_testing::random_tensor<T>(s, ++seed);
      auto xd = x.template to<cuda>();

      tensor<T, cpu> prob;
      tensor<T, cuda> probd;
      auto loss = ops::cross_entropy_forward(x, targets, prob, ls);
      auto lossd = ops::cross_entropy_forward(xd, targets, probd, ls);
      REQUIRE(lossd.shape() == shape{});
      CHECK(max_difference(loss, lossd) <= tol);
      CHECK(max_difference(prob, probd) <= tol);

      // The mean is a fixed-order sum: a second run gives the same bits.
      tensor<T, cuda> probd2;
      T const again = ops::cross_entropy_forward(xd, targets, probd2, ls).item(), first = lossd.item();
      CHECK(std::memcmp(&again, &first, sizeof(T)) == 0);

      // Raw backward from the same probabilities, dy != 1, accumulating into dx0.
      auto dy = tensor<T, cpu>::scalar(T(0.75));
      auto dx = dx0.clone();
      auto dxd = dx0.template to<cuda>();
      ops::cross_entropy_backward(prob, targets, dy, dx, ls);
      ops::cross_entropy_backward(prob.template to<cuda>(), targets, dy.template to<cuda>(), dxd, ls);
      CHECK(max_difference(dx, dxd) <= tol);

      // Differentiable form.
      variable<T, cpu> v(x, true);
      variable<T, cuda> vd(xd, true);
      ops::cross_entropy(v, targets, ls).backward(dy);
      ops::cross_entropy(vd, targets, ls).backward(dy.template to<cuda>());
      REQUIRE(vd.grad().defined());
      CHECK(max_difference(v.grad(), vd.grad()) <= tol);
    }
  }
}

TEST_CASE("cuda loss: bad input on the cuda tag throws", "[cuda]") {
  ARCNET_REQUIRE_CUDA_DEVICE();
  auto xd = cuda_testing::random_tensor<float>(shape{2, 3}, 1).to<cuda>();
  tensor<float, cuda> prob;
  CHECK_THROWS_AS(ops::cross_entropy_forward(xd, {0, 3}, prob), error);       // target out of range
  CHECK_THROWS_AS(ops::cross_entropy_forward(xd, {0}, prob), error);          // one target for two rows
  CHECK_THROWS_AS(ops::cross_entropy_forward(xd, {0, 1}, prob, 1.5), error);  // label smoothing > 1
  auto dx = tensor<float, cuda>(shape{3, 2});
  CHECK_THROWS_AS(ops::softmax_backward(xd, xd, dx), error);  // shapes differ
}
