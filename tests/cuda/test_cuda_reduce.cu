// CUDA tests of ops/reduce.hpp against the CPU backend, float and double: sum and mean over any
// axes (the row kernel, the column kernel, and both two-pass chunked forms for long reductions
// into few outputs), their raw and differentiable backward, sum_to, and max with its argmax
// (ties, NaN and -inf rows included: the indices must be exactly the CPU's).
#include "cuda/cuda_test_util.hpp"

#include <arcnet/ops/reduce.hpp>

#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

using namespace arcnet;

namespace cuda_reduce_test {
using cuda_testing::max_difference;
using cuda_testing::random_tensor;
using cuda_testing::tolerance;

template <class T>
void check_close(tensor<T, cpu> const& expected, tensor<T, cuda> const& got, char const* what) {
  INFO(what);
  REQUIRE(got.defined());
  CHECK(max_difference(expected, got) <= tolerance<T>());
}

struct sum_case {
  shape s;
  std::vector<int> axes;
  bool keepdim;
};
inline std::vector<sum_case> sum_cases() {
  return {
      {shape{}, {}, false},                   // rank 0: only the scale applies
      {shape{1}, {0}, false},                 //
      {shape{3, 7}, {1}, false},              // short rows: the column kernel with inner 1
      {shape{3, 7}, {0}, true},               // columns
      {shape{3, 0}, {1}, false},              // an empty axis: zeros
      {shape{257, 5, 3}, {1}, false},         // a middle axis
      {shape{2, 3, 4, 5}, {0, 2}, true},      // two axes, one pass each
      {shape{128, 4000}, {1}, false},         // long rows: a block per row
      {shape{128, 4000}, {0}, false},         // columns
      {shape{12544, 64}, {0}, false},         // a bias gradient: columns in two chunked passes
      {shape{3, 100000}, {1}, true},          // few long rows: rows in two chunked passes
      {shape{1000003}, {}, false},            // everything into one value
      {shape{4, 56, 56, 64}, {0, 1, 2}, false},  // activations to per-channel sums
      {shape{4, 56, 56, 128}, {}, false},     // everything, > one grid of threads in the first pass
  };
}

/// The CPU's sum (scaled). For float the CPU reference runs in double on the same values and
/// is rounded back: the CPU's own float sum adds up to a million values in order, with an error
/// (~sqrt(n) eps relative) above the float tolerance, while the GPU's tree / chunked sums are
/// far more accurate; the double reference measures the GPU's error alone.
template <class T>
tensor<T, cpu> sum_reference(tensor<T, cpu> const& x, std::vector<int> axes, bool keepdim, T scale) {
  if constexpr (std::is_same_v<T, float>)
    return ops::sum_forward(x.template cast<double>(), std::move(axes), keepdim, static_cast<double>(scale))
        .template cast<float>();
  else
    return ops::sum_forward(x, std::move(axes), keepdim, scale);
}

struct max_case {
  shape s;
  int axis;
};
inline std::vector<max_case> max_cases() {
  return {
      {shape{5}, 0},           {shape{3, 7}, 1},        {shape{3, 7}, 0},         {shape{257, 5, 3}, 1},
      {shape{128, 4000}, 1},   // rows: a block per row
      {shape{128, 4000}, 0},   // columns
      {shape{70000, 65}, -1},  // many rows just long enough for the row kernel
      {shape{1, 100000}, 1},   // one long row
      {shape{4, 56, 56, 64}, 3},
  };
}
/// Small integers, so that many values tie; for the row kernel a NaN, and a row of -inf.
template <class T>
tensor<T, cpu> max_input(shape const& s, std::uint64_t seed) {
  auto x = random_tensor<T>(s, seed, -4, 4);
  for (index_t i = 0; i < x.numel(); ++i) x[i] = static_cast<T>(static_cast<int>(x[i]));
  if (x.numel() > 20) x[3] = std::numeric_limits<T>::quiet_NaN();
  return x;
}
}  // namespace cuda_reduce_test

TEMPLATE_TEST_CASE("cuda reduce: sum and mean match the CPU, forward and backward", "[cuda][reduce]", float,
                   double) {
  ARCNET_REQUIRE_CUDA_DEVICE();
  using namespace cuda_reduce_test;
  using T = TestType;
  std::uint64_t seed = 100;
  for (auto const& c : sum_cases()) {
    INFO("shape " << c.s << ", " << c.axes.size() << " axes, keepdim " << c.keepdim);
    // Positive values: sums of long rows do not cancel, so relative errors stay meaningful.
    auto x = random_tensor<T>(c.s, seed += 10, 0, 1);
    auto x_d = x.template to<cuda>();
    T const scale = T(0.375);
    auto y_d = ops::sum_forward(x_d, c.axes, c.keepdim, scale);
    check_close(sum_reference(x, c.axes, c.keepdim, scale), y_d, "sum_forward");

    // The raw backward into a non-zero dx (it accumulates), dy without the kept dims.
    auto dy = random_tensor<T>(ops::sum_forward(x, c.axes, false).shape(), seed + 1);
    auto dx = random_tensor<T>(c.s, seed + 2);
    auto dx_d = dx.template to<cuda>();
    ops::sum_backward(dy, dx, c.axes, scale);
    ops::sum_backward(dy.template to<cuda>(), dx_d, c.axes, scale);
    check_close(dx, dx_d, "sum_backward");

    // The differentiable forms.
    variable<T, cpu> xv(x, true);
    variable<T, cuda> xv_d(x_d, true);
    auto s = ops::sum(xv, c.axes, c.keepdim);
    auto s_d = ops::sum(xv_d, c.axes, c.keepdim);
    check_close(sum_reference(x, c.axes, c.keepdim, T(1)), s_d.value(), "sum");
    auto ds = random_tensor<T>(s.shape(), seed + 3);
    s.backward(ds);
    s_d.backward(ds.template to<cuda>());
    check_close(xv.grad(), xv_d.grad(), "sum x.grad");
    if (x.numel() == 0) continue;  // mean over an empty axis is an error (tested below)

    variable<T, cpu> mv(x, true);
    variable<T, cuda> mv_d(x_d, true);
    auto m = ops::mean(mv, c.axes, c.keepdim);
    auto m_d = ops::mean(mv_d, c.axes, c.keepdim);
    index_t count = x.numel() / std::max<index_t>(m.value().numel(), 1);
    check_close(sum_reference(x, c.axes, c.keepdim, T(1) / static_cast<T>(count)), m_d.value(), "mean");
    m.backward(ds.view(m.shape()));
    m_d.backward(ds.view(m.shape()).template to<cuda>());
    check_close(mv.grad(), mv_d.grad(), "mean x.grad");
  }

  // sum_to (the gradient of a broadcast) and a sum of a sum (the chained passes).
  auto x = random_tensor<T>(shape{6, 4, 5}, 7, 0, 1);
  auto x_d = x.template to<cuda>();
  for (auto const& target : {shape{4, 5}, shape{6, 1, 5}, shape{1}, shape{}, shape{6, 4, 5}}) {
    INFO("sum_to " << target);
    check_close(ops::sum_to(x, target), ops::sum_to(x_d, target), "sum_to");
  }
}

TEMPLATE_TEST_CASE("cuda reduce: max and its argmax match the CPU exactly", "[cuda][reduce]", float, double) {
  ARCNET_REQUIRE_CUDA_DEVICE();
  using namespace cuda_reduce_test;
  using T = TestType;
  std::uint64_t seed = 900;
  for (auto const& c : max_cases()) {
#if defined(ARCNET_CUDA_EMULATOR)
    // 70000 blocks of 256 threads, each thread a fiber: minutes on the CPU. The GPU runs it.
    if (c.s == shape{70000, 65}) continue;
#endif
    for (bool keepdim : {false, true}) {
      INFO("shape " << c.s << ", axis " << c.axis << ", keepdim " << keepdim);
      auto x = max_input<T>(c.s, seed += 10);
      if (c.s == shape{128, 4000}) {  // a row of -inf (index 0) and a row of NaN and -inf
        for (index_t i = 0; i < 4000; ++i) x[5 * 4000 + i] = -std::numeric_limits<T>::infinity();
        for (index_t i = 0; i < 4000; ++i)
          x[6 * 4000 + i] = i % 2 ? -std::numeric_limits<T>::infinity() : std::numeric_limits<T>::quiet_NaN();
      }
      auto x_d = x.template to<cuda>();
      tensor<index_t, cpu> arg;
      tensor<index_t, cuda> arg_d;
      auto y = ops::max_forward(x, c.axis, arg, keepdim);
      auto y_d = ops::max_forward(x_d, c.axis, arg_d, keepdim);
      REQUIRE(y_d.shape() == y.shape());
      CHECK(y_d.to_vector() == y.to_vector());  // no arithmetic: bitwise (and -inf compares equal)
      REQUIRE(arg_d.shape() == y.shape());
      CHECK(arg_d.to_vector() == arg.to_vector());

      // The raw backward, into a non-zero dx, from the CPU's indices.
      auto const& s = x.shape();
      int const a = s.normalize(c.axis);
      index_t const outer = s.prod(0, a), r = s[a], inner = s.prod(a + 1, s.rank());
      auto dy = random_tensor<T>(y.shape(), seed + 1);
      auto dx = random_tensor<T>(s, seed + 2);
      auto dx_d = dx.template to<cuda>();
      ops::reduce_impl<cpu>::max_backward(dy, arg, dx, outer, r, inner);
      ops::reduce_impl<cuda>::max_backward(dy.template to<cuda>(), arg.template to<cuda>(), dx_d, outer, r, inner);
      check_close(dx, dx_d, "max_backward");

      variable<T, cpu> xv(x, true);
      variable<T, cuda> xv_d(x_d, true);
      auto m = ops::max(xv, c.axis, keepdim);
      auto m_d = ops::max(xv_d, c.axis, keepdim);
      m.backward(dy);
      m_d.backward(dy.template to<cuda>());
      check_close(xv.grad(), xv_d.grad(), "max x.grad");
    }
  }
}

TEST_CASE("cuda reduce: max and its backward queue their work without waiting for the stream", "[cuda][reduce]") {
  ARCNET_REQUIRE_CUDA_DEVICE();
  // ArcFace's sub-center max (N, classes, k) -> (N, classes): its indices stay on the device, so
  // a training step does not stop here for a copy to the host and back.
  auto const x = cuda_testing::random_tensor<float>(shape{8, 50, 3}, 71);
  auto const dy = cuda_testing::random_tensor<float>(shape{8, 50}, 72);
  auto const x_d = x.to<cuda>();
  auto const dy_d = dy.to<cuda>();
  variable<float, cpu> xv(x, true);
  ops::max(xv, 2).backward(dy);
  for (int round = 0; round < 2; ++round) {  // the first round fills the allocator's cache
    variable<float, cuda> xv_d(x_d, true);
    cuda_testing::spin_stream(200);
    auto m_d = ops::max(xv_d, 2);
    m_d.backward(dy_d);
    if (round == 1) CHECK(cuda_testing::stream_busy());
    gpu::synchronize();
    CHECK(cuda_testing::max_difference(xv.grad(), xv_d.grad()) == 0);
    CHECK(cuda_testing::max_difference(ops::max(variable<float, cpu>(x), 2).value(), m_d.value()) == 0);
  }
}

TEMPLATE_TEST_CASE("cuda reduce: sum_of_squares equals the CPU's, written on the device", "[cuda][reduce]", float,
                   double) {
  ARCNET_REQUIRE_CUDA_DEVICE();
  using T = TestType;
  // 1, a block's worth, several chunks of the two-pass form (2^14 per chunk), many chunks.
  for (index_t n : {index_t(1), index_t(257), index_t(40000), index_t(3000001)}) {
    auto x = cuda_testing::random_tensor<T>(shape{n}, 17 + static_cast<std::uint64_t>(n), -3.0, 3.0);
    double expected = 0;
    ops::sum_of_squares(x, &expected);
    auto out = tensor<double, cuda>::full(shape{2}, -1.0);
    ops::sum_of_squares(x.template to<cuda>(), out.data() + 1);
    auto got = out.to_vector();
    INFO("n = " << n);
    CHECK(got[0] == -1.0);  // only the addressed slot is written
    CHECK(got[1] == Approx(expected).epsilon(1e-12));
  }
  auto bad = cuda_testing::random_tensor<T>(shape{1000}, 3);
  bad[500] = std::numeric_limits<T>::infinity();
  auto out = tensor<double, cuda>::zeros(shape{1});
  ops::sum_of_squares(bad.template to<cuda>(), out.data());
  CHECK(std::isinf(out.item()));
  ops::sum_of_squares(tensor<T, cuda>::zeros(shape{0}), out.data());
  CHECK(out.item() == 0.0);
}

TEST_CASE("cuda reduce: bad input on the cuda tag throws arcnet::error", "[cuda][reduce]") {
  ARCNET_REQUIRE_CUDA_DEVICE();
  using cuda_testing::random_tensor;
  auto x = random_tensor<float>(shape{3, 4}, 1).to<cuda>();
  tensor<index_t, cuda> arg;
  CHECK_THROWS_AS(ops::sum_forward(x, {1, 1}), arcnet::error);  // a repeated axis
  CHECK_THROWS_AS(ops::max_forward(x, 2, arg), arcnet::error);  // no axis 2
  CHECK_THROWS_AS(ops::max_forward(tensor<float, cuda>(shape{2, 0}), 1, arg), arcnet::error);  // empty axis
  CHECK_THROWS_AS(ops::mean(variable<float, cuda>(tensor<float, cuda>(shape{2, 0})), {1}), arcnet::error);
}
