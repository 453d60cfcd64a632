// CUDA tests of ops/elementwise.hpp against the CPU backend, float and double: every unary kind
// (forward, raw backward, differentiable), the binary ops with and without broadcasting (both
// backward kernels: one thread per gradient element and one block per element), where,
// broadcast_accumulate and axpy, and the in-place calls the optimizers make (output aliasing an
// input). Shapes: awkward sizes, rank 0, and activations large enough for a grid-stride loop.
#include "cuda/cuda_test_util.hpp"

#include <arcnet/ops/elementwise.hpp>

#include <cstdint>
#include <vector>

using namespace arcnet;

namespace cuda_elementwise_test {
using cuda_testing::max_difference;
using cuda_testing::random_tensor;
using cuda_testing::tolerance;
using ops::binary_kind;
using ops::unary_kind;

/// Gradients summed over many broadcast positions (up to 4 * 56 * 56 here): the CPU adds them in
/// order in T, the GPU in a tree, so float results differ by a few eps times the size of the
/// partial sums, about sqrt(n) for n terms of size 1, however small the result. So the
/// difference is measured relative to max(|expected|, sqrt(n)) (see sum_floor), and 1e-4 covers
/// float; double stays far below its 1e-11.
template <class T>
constexpr double sum_tolerance() {
  return sizeof(T) == sizeof(float) ? 1e-4 : 1e-11;
}
/// The floor of max_difference for the gradient of an operand of `operand` elements broadcast
/// to `full` elements: the typical size of a sum of full / operand random terms.
inline double sum_floor(shape const& operand, shape const& full) {
  double const terms = double(full.numel()) / double(std::max<index_t>(1, operand.numel()));
  return std::max(1e-2, std::sqrt(terms));
}

template <class T>
void check_close(tensor<T, cpu> const& expected, tensor<T, cuda> const& got, char const* what,
                 double tol = tolerance<T>(), double floor = 1e-2) {
  INFO(what);
  REQUIRE(got.defined());
  CHECK(max_difference(expected, got, floor) <= tol);
}

struct unary_case {
  unary_kind kind;
  char const* name;
  double lo, hi;  // input range (log, sqrt, pow and p / x need positive inputs)
  double p, q;
};
inline std::vector<unary_case> unary_cases() {
  return {
      {unary_kind::neg, "neg", -1, 1, 0, 0},           {unary_kind::exp, "exp", -1, 1, 0, 0},
      {unary_kind::log, "log", 0.5, 2, 0, 0},          {unary_kind::sqrt, "sqrt", 0.5, 2, 0, 0},
      {unary_kind::abs, "abs", -1, 1, 0, 0},           {unary_kind::cos, "cos", -1, 1, 0, 0},
      {unary_kind::acos, "acos", -1, 1, 0, 0},         {unary_kind::relu, "relu", -1, 1, 0, 0},
      {unary_kind::pow, "pow", 0.5, 2, 1.7, 0},        {unary_kind::pow, "pow 0", 0.5, 2, 0, 0},
      {unary_kind::clamp, "clamp", -1, 1, -0.5, 0.5},  {unary_kind::add_scalar, "add_scalar", -1, 1, 0.3, 0},
      {unary_kind::mul_scalar, "mul_scalar", -1, 1, -1.5, 0}, {unary_kind::rdiv_scalar, "rdiv_scalar", 0.5, 2, 2, 0},
  };
}
inline std::vector<shape> unary_shapes() {
  return {shape{}, shape{1}, shape{3, 7}, shape{257}, shape{4, 56, 56, 128}};  // the last: > one grid
}

struct binary_case {
  shape a, b;
};
inline std::vector<binary_case> binary_cases() {
  return {
      {shape{3, 7}, shape{3, 7}},                 // same shape
      {shape{1}, shape{7}},                       // rank 1 broadcast
      {shape{3, 7}, shape{7}},                    // a row vector
      {shape{3, 1}, shape{1, 7}},                 // both broadcast
      {shape{}, shape{5, 3}},                     // a scalar
      {shape{257, 3}, shape{1}},                  //
      {shape{2, 3, 4, 5}, shape{3, 1, 5}},        // broadcast in the middle and in front
      {shape{128, 4000}, shape{128, 1}},          // per-row scale: a block per row of db
      {shape{4, 56, 56, 64}, shape{64}},          // a bias: 12544 positions per element of db
      {shape{4, 1, 1, 64}, shape{4, 56, 56, 64}}, // a per-image channel scale, as `a`
  };
}

/// Forward, raw backward (both, either gradient) and the differentiable form of one binary op.
template <class T>
void check_binary(binary_kind k, char const* name, binary_case const& c, std::uint64_t seed) {
  INFO(name << ": a " << c.a << ", b " << c.b);
  double const lo = k == binary_kind::div ? 0.5 : -1.0;  // divisors away from 0
  auto a = random_tensor<T>(c.a, seed, -1, 1), b = random_tensor<T>(c.b, seed + 1, lo, 2);
  auto a_d = a.template to<cuda>(), b_d = b.template to<cuda>();
  auto y = ops::binary_forward(k, a, b);
  auto y_d = ops::binary_forward(k, a_d, b_d);
  check_close(y, y_d, "y");

  auto dy = random_tensor<T>(y.shape(), seed + 2);
  auto dy_d = dy.template to<cuda>();
  auto da = random_tensor<T>(c.a, seed + 3), db = random_tensor<T>(c.b, seed + 4);  // it accumulates
  for (int which = 0; which < 3; ++which) {  // both, da only, db only
    INFO("gradients " << (which == 0 ? "da, db" : which == 1 ? "da" : "db"));
    auto da_c = da.clone(), db_c = db.clone();
    auto da_d = da.template to<cuda>(), db_d = db.template to<cuda>();
    ops::binary_backward(k, a, b, dy, which != 2 ? &da_c : nullptr, which != 1 ? &db_c : nullptr);
    ops::binary_backward(k, a_d, b_d, dy_d, which != 2 ? &da_d : nullptr, which != 1 ? &db_d : nullptr);
    check_close(da_c, da_d, "da", sum_tolerance<T>(), sum_floor(c.a, y.shape()));
    check_close(db_c, db_d, "db", sum_tolerance<T>(), sum_floor(c.b, y.shape()));
  }

  variable<T, cpu> av(a, true), bv(b, true);
  variable<T, cuda> av_d(a_d, true), bv_d(b_d, true);
  auto f = [k](auto const& u, auto const& v) {
    switch (k) {
      case binary_kind::add: return u + v;
      case binary_kind::sub: return u - v;
      case binary_kind::mul: return u * v;
      default: return u / v;
    }
  };
  auto z = f(av, bv);
  auto z_d = f(av_d, bv_d);
  check_close(z.value(), z_d.value(), "variable y");
  z.backward(dy);
  z_d.backward(dy_d);
  check_close(av.grad(), av_d.grad(), "a.grad", sum_tolerance<T>(), sum_floor(c.a, y.shape()));
  check_close(bv.grad(), bv_d.grad(), "b.grad", sum_tolerance<T>(), sum_floor(c.b, y.shape()));
}
}  // namespace cuda_elementwise_test

TEMPLATE_TEST_CASE("cuda elementwise: every unary kind, forward and backward, matches the CPU",
                   "[cuda][elementwise]", float, double) {
  ARCNET_REQUIRE_CUDA_DEVICE();
  using namespace cuda_elementwise_test;
  using T = TestType;
  std::uint64_t seed = 100;
  for (auto const& s : unary_shapes())
    for (auto const& c : unary_cases()) {
      INFO(c.name << " on " << s);
      T const p = static_cast<T>(c.p), q = static_cast<T>(c.q);
      auto x = random_tensor<T>(s, seed += 10, c.lo, c.hi);
      auto x_d = x.template to<cuda>();
      auto y = ops::unary_forward(c.kind, x, p, q);
      auto y_d = ops::unary_forward(c.kind, x_d, p, q);
      check_close(y, y_d, "y");

      // The raw backward from the CPU's y on both devices, into a non-zero dx (it accumulates).
      auto dy = random_tensor<T>(s, seed + 1);
      auto dx = random_tensor<T>(s, seed + 2);
      auto dx_d = dx.template to<cuda>();
      ops::unary_backward(c.kind, x, y, dy, dx, p, q);
      ops::unary_backward(c.kind, x_d, y.template to<cuda>(), dy.template to<cuda>(), dx_d, p, q);
      check_close(dx, dx_d, "dx");

      variable<T, cpu> xv(x, true);
      variable<T, cuda> xv_d(x_d, true);
      auto z = detail::record_unary(c.name, c.kind, xv, p, q);
      auto z_d = detail::record_unary(c.name, c.kind, xv_d, p, q);
      check_close(z.value(), z_d.value(), "variable y");
      z.backward(dy);
      z_d.backward(dy.template to<cuda>());
      check_close(xv.grad(), xv_d.grad(), "x.grad");

      // In place, as the optimizers call it: y aliases x.
      auto w = x.clone();
      auto w_d = x_d.clone();
      ops::elementwise_impl<cpu>::unary_forward(c.kind, w, w, p, q);
      ops::elementwise_impl<cuda>::unary_forward(c.kind, w_d, w_d, p, q);
      check_close(w, w_d, "in place");
    }
}

TEMPLATE_TEST_CASE("cuda elementwise: binary ops with broadcasting match the CPU, forward and backward",
                   "[cuda][elementwise]", float, double) {
  ARCNET_REQUIRE_CUDA_DEVICE();
  using namespace cuda_elementwise_test;
  using T = TestType;
  std::uint64_t seed = 2000;
  char const* names[] = {"add", "sub", "mul", "div"};
  for (auto const& c : binary_cases())
    for (int k = 0; k < 4; ++k) check_binary<T>(static_cast<binary_kind>(k), names[k], c, seed += 10);

  // A formula mixing ops and broadcasts, through the operators: one gradient per input.
  auto a = random_tensor<T>(shape{6, 1, 5}, 1), b = random_tensor<T>(shape{4, 5}, 2);
  auto c = random_tensor<T>(shape{6, 4, 5}, 3, 0.5, 2);
  variable<T, cpu> av(a, true), bv(b, true), cv(c, true);
  variable<T, cuda> av_d(a.template to<cuda>(), true), bv_d(b.template to<cuda>(), true),
      cv_d(c.template to<cuda>(), true);
  auto f = [](auto const& u, auto const& v, auto const& w) { return (u * v + T(2)) / w - ops::exp(u) * T(0.5); };
  auto z = f(av, bv, cv);
  auto z_d = f(av_d, bv_d, cv_d);
  check_close(z.value(), z_d.value(), "formula");
  auto dy = random_tensor<T>(z.shape(), 4);
  z.backward(dy);
  z_d.backward(dy.template to<cuda>());
  check_close(av.grad(), av_d.grad(), "formula a.grad");
  check_close(bv.grad(), bv_d.grad(), "formula b.grad");
  check_close(cv.grad(), cv_d.grad(), "formula c.grad");

  // x * x: both gradients land in one tensor (da and db alias).
  variable<T, cpu> xv(c, true);
  variable<T, cuda> xv_d(c.template to<cuda>(), true);
  auto sq = xv * xv;
  auto sq_d = xv_d * xv_d;
  sq.backward(dy);
  sq_d.backward(dy.template to<cuda>());
  check_close(xv.grad(), xv_d.grad(), "x * x x.grad");
}

TEMPLATE_TEST_CASE("cuda elementwise: in-place binary ops and where, as AdamW calls them", "[cuda][elementwise]",
                   float, double) {
  ARCNET_REQUIRE_CUDA_DEVICE();
  using namespace cuda_elementwise_test;
  using T = TestType;
  using cpu_impl = ops::elementwise_impl<cpu>;
  using cuda_impl = ops::elementwise_impl<cuda>;
  for (auto const& s : {shape{7}, shape{3, 257}, shape{4, 56, 56, 128}}) {
    INFO("shape " << s);
    auto g = random_tensor<T>(s, 11), m = random_tensor<T>(s, 12), den = random_tensor<T>(s, 13, 0.5, 2);
    auto g_d = g.template to<cuda>(), m_d = m.template to<cuda>(), den_d = den.template to<cuda>();
    // y aliases a: g2 = g2 * g
    auto g2 = g.clone();
    auto g2_d = g_d.clone();
    cpu_impl::binary_forward(binary_kind::mul, g2, g, g2);
    cuda_impl::binary_forward(binary_kind::mul, g2_d, g_d, g2_d);
    check_close(g2, g2_d, "y aliases a");
    // y aliases b: den = m / den
    cpu_impl::binary_forward(binary_kind::div, m, den, den);
    cuda_impl::binary_forward(binary_kind::div, m_d, den_d, den_d);
    check_close(den, den_d, "y aliases b");
    // vmax = where(relu(v - vmax) != 0, v, vmax), y aliasing b; half of v above vmax
    auto v = random_tensor<T>(s, 14), vmax = random_tensor<T>(s, 15);
    auto v_d = v.template to<cuda>(), vmax_d = vmax.template to<cuda>();
    auto greater = ops::binary_forward(binary_kind::sub, v, vmax);
    auto greater_d = ops::binary_forward(binary_kind::sub, v_d, vmax_d);
    cpu_impl::unary_forward(unary_kind::relu, greater, greater, T(0), T(0));
    cuda_impl::unary_forward(unary_kind::relu, greater_d, greater_d, T(0), T(0));
    cpu_impl::where_forward(greater, v, vmax, vmax);
    cuda_impl::where_forward(greater_d, v_d, vmax_d, vmax_d);
    check_close(vmax, vmax_d, "where, y aliases b");
    // axpy into itself: y += 0.5 y
    ops::axpy(T(0.5), v, v);
    ops::axpy(T(0.5), v_d, v_d);
    check_close(v, v_d, "axpy in place");
  }
}

TEMPLATE_TEST_CASE("cuda elementwise: where, broadcast_accumulate and axpy match the CPU", "[cuda][elementwise]",
                   float, double) {
  ARCNET_REQUIRE_CUDA_DEVICE();
  using namespace cuda_elementwise_test;
  using T = TestType;
  std::uint64_t seed = 3000;
  for (auto const& s : {shape{}, shape{1}, shape{3, 7}, shape{257, 3}, shape{4, 56, 56, 128}}) {
    INFO("where on " << s);
    auto cond = random_tensor<T>(s, seed += 10);
    for (index_t i = 0; i < cond.numel(); ++i) cond[i] = cond[i] > T(0) ? T(1) : T(0);
    auto a = random_tensor<T>(s, seed + 1), b = random_tensor<T>(s, seed + 2), dy = random_tensor<T>(s, seed + 3);
    auto cond_d = cond.template to<cuda>();
    variable<T, cpu> av(a, true), bv(b, true);
    variable<T, cuda> av_d(a.template to<cuda>(), true), bv_d(b.template to<cuda>(), true);
    auto z = ops::where(cond, av, bv);
    auto z_d = ops::where(cond_d, av_d, bv_d);
    check_close(z.value(), z_d.value(), "where y");
    z.backward(dy);
    z_d.backward(dy.template to<cuda>());
    check_close(av.grad(), av_d.grad(), "where a.grad");
    check_close(bv.grad(), bv_d.grad(), "where b.grad");
    // The raw backward with one gradient, accumulating.
    auto db = random_tensor<T>(s, seed + 4);
    auto db_d = db.template to<cuda>();
    ops::elementwise_impl<cpu>::where_backward(cond, dy, static_cast<tensor<T, cpu>*>(nullptr), &db);
    ops::elementwise_impl<cuda>::where_backward(cond_d, dy.template to<cuda>(), static_cast<tensor<T, cuda>*>(nullptr),
                                                &db_d);
    check_close(db, db_d, "where db only");
  }

  struct accumulate_case {
    shape x, y;
  };
  for (auto const& c : {accumulate_case{shape{3, 7}, shape{3, 7}}, accumulate_case{shape{1, 7}, shape{3, 7}},
                        accumulate_case{shape{}, shape{257}}, accumulate_case{shape{3, 1, 5}, shape{2, 3, 4, 5}},
                        accumulate_case{shape{1, 1, 1, 64}, shape{4, 56, 56, 64}},
                        accumulate_case{shape{4, 1, 1, 64}, shape{4, 56, 56, 64}}}) {
    INFO("broadcast_accumulate " << c.x << " into " << c.y);
    auto x = random_tensor<T>(c.x, seed += 10), y = random_tensor<T>(c.y, seed + 1);
    auto y_d = y.template to<cuda>();
    ops::elementwise_impl<cpu>::broadcast_accumulate(x, y, T(-0.75));
    ops::elementwise_impl<cuda>::broadcast_accumulate(x.template to<cuda>(), y_d, T(-0.75));
    check_close(y, y_d, "y");
  }

  for (auto const& s : {shape{1}, shape{3, 7}, shape{4, 56, 56, 128}}) {
    INFO("axpy on " << s);
    auto x = random_tensor<T>(s, seed += 10), y = random_tensor<T>(shape{s.numel()}, seed + 1);  // same numel
    auto y_d = y.template to<cuda>();
    ops::axpy(T(1.25), x, y);
    ops::axpy(T(1.25), x.template to<cuda>(), y_d);
    check_close(y, y_d, "y");
  }
}

TEST_CASE("cuda elementwise: bad input on the cuda tag throws arcnet::error", "[cuda][elementwise]") {
  ARCNET_REQUIRE_CUDA_DEVICE();
  using cuda_testing::random_tensor;
  auto a = random_tensor<float>(shape{3, 4}, 1).to<cuda>();
  auto b = random_tensor<float>(shape{5}, 2).to<cuda>();
  auto dx = random_tensor<float>(shape{4, 3}, 3).to<cuda>();
  CHECK_THROWS_AS(ops::binary_forward(ops::binary_kind::add, a, b), arcnet::error);  // no broadcast
  CHECK_THROWS_AS(ops::unary_backward(ops::unary_kind::exp, a, a, a, dx), arcnet::error);  // dx's shape
  CHECK_THROWS_AS(ops::axpy(1.0f, a, b), arcnet::error);  // sizes differ
}
