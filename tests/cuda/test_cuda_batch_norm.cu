// CUDA tests of ops/batch_norm.hpp: the forward (train, eval, eval without running statistics),
// the running-statistics update, the raw backward (which accumulates) and the differentiable
// form, with and without the fused ReLU, each against the CPU backend on the same input, float
// and double, on awkward sizes and on one ResNet-sized NHWC activation (64 x 28 x 28 x 64: 50176
// rows, 1024 blocks per sum).
// Both backends sum the statistics in double, so the default tolerances hold even for the
// 50176-row reductions.
#include "cuda/cuda_test_util.hpp"

#include <arcnet/ops/activation.hpp>
#include <arcnet/ops/batch_norm.hpp>
#include <arcnet/ops/cast.hpp>

#include <cstdint>
#include <vector>

using namespace arcnet;

namespace cuda_bn_test {
using cuda_testing::max_difference;
using cuda_testing::random_tensor;
using cuda_testing::tolerance;

/// (m, c) from (1, 1) up to (64*28*28, 64), some as rank-4 NHWC.
inline std::vector<shape> shapes() {
  return {shape{1, 1}, shape{3, 7}, shape{257, 5}, shape{2, 3, 5, 7}, shape{4, 9, 9, 33}, shape{64, 28, 28, 64}};
}

template <class T>
tensor<T, cuda> to_device(tensor<T, cpu> const& t) {
  return t.defined() ? t.template to<cuda>() : tensor<T, cuda>();
}

/// CHECKs that a CUDA result matches the CPU one; undefined on both sides also matches.
template <class T>
void check_close(tensor<T, cpu> const& expected, tensor<T, cuda> const& got, char const* what) {
  INFO(what);
  REQUIRE(expected.defined() == got.defined());
  if (expected.defined()) CHECK(max_difference(expected, got) <= tolerance<T>());
}

/// The inputs of one case: x (with a mean far from 0, so the shifted sums matter), an affine
/// pair and running statistics (variance positive).
template <class T>
struct inputs {
  tensor<T, cpu> x, weight, bias, running_mean, running_var, dy;
  inputs(shape const& s, std::uint64_t seed) {
    index_t const c = s[s.rank() - 1];
    x = random_tensor<T>(s, seed, 1.0, 4.0);
    weight = random_tensor<T>(shape{c}, seed + 1, 0.5, 1.5);
    bias = random_tensor<T>(shape{c}, seed + 2);
    running_mean = random_tensor<T>(shape{c}, seed + 3);
    running_var = random_tensor<T>(shape{c}, seed + 4, 0.5, 2.0);
    dy = random_tensor<T>(s, seed + 5);
  }
};
}  // namespace cuda_bn_test

TEMPLATE_TEST_CASE("cuda batch_norm: forward, saved statistics and running update match the CPU", "[cuda][batch_norm]",
                   float, double) {
  ARCNET_REQUIRE_CUDA_DEVICE();
  using namespace cuda_bn_test;
  using T = TestType;
  std::uint64_t seed = 1000;
  for (auto const& s : shapes()) {
    index_t const m = s.numel() / s[s.rank() - 1];
    for (int mode = 0; mode < 3; ++mode) {  // 0: train, 1: eval, 2: eval without running statistics
      for (bool affine : {true, false}) {
        if (mode == 0 && m <= 1) continue;  // an error on both devices, see the last test case
        INFO("shape " << s << ", mode " << mode << ", affine " << affine);
        inputs<T> in(s, seed += 10);
        ops::batch_norm_options o;
        o.training = mode == 0;
        o.momentum = 0.3;
        tensor<T, cpu> w = affine ? in.weight : tensor<T, cpu>(), b = affine ? in.bias : tensor<T, cpu>();
        tensor<T, cpu> rm = mode == 2 ? tensor<T, cpu>() : in.running_mean.clone();
        tensor<T, cpu> rv = mode == 2 ? tensor<T, cpu>() : in.running_var.clone();
        tensor<T, cuda> rm_d = to_device(rm), rv_d = to_device(rv);
        tensor<T, cpu> mean, invstd;
        tensor<T, cuda> mean_d, invstd_d;
        auto y = ops::batch_norm_forward(in.x, w, b, rm, rv, o, mean, invstd);
        auto y_d = ops::batch_norm_forward(to_device(in.x), to_device(w), to_device(b), rm_d, rv_d, o, mean_d,
                                           invstd_d);
        check_close(y, y_d, "y");
        check_close(mean, mean_d, "save_mean");
        check_close(invstd, invstd_d, "save_invstd");
        check_close(rm, rm_d, "running_mean");
        check_close(rv, rv_d, "running_var");
      }
    }
  }
}

TEMPLATE_TEST_CASE("cuda batch_norm: raw backward accumulates dx, dweight and dbias like the CPU",
                   "[cuda][batch_norm]", float, double) {
  ARCNET_REQUIRE_CUDA_DEVICE();
  using namespace cuda_bn_test;
  using T = TestType;
  std::uint64_t seed = 2000;
  for (auto const& s : shapes()) {
    index_t const c = s[s.rank() - 1];
    inputs<T> in(s, seed += 10);
    // Statistics from the CPU forward (batch statistics), shared by both backends.
    ops::batch_norm_options o;
    o.training = false;
    tensor<T, cpu> none, mean, invstd;
    ops::batch_norm_forward(in.x, in.weight, in.bias, none, none, o, mean, invstd);
    for (bool batch_stats : {true, false})
      for (bool affine : {true, false})
        for (int outputs = 0; outputs < 3; ++outputs) {  // 0: dx, dweight, dbias; 1: dx; 2: dweight, dbias
          INFO("shape " << s << ", batch_stats " << batch_stats << ", affine " << affine << ", outputs " << outputs);
          tensor<T, cpu> w = affine ? in.weight : tensor<T, cpu>();
          // Non-zero starting gradients: the backward must add to them.
          auto dx = random_tensor<T>(s, seed + 7), dw = random_tensor<T>(shape{c}, seed + 8),
               db = random_tensor<T>(shape{c}, seed + 9);
          auto dx_d = dx.template to<cuda>(), dw_d = dw.template to<cuda>(), db_d = db.template to<cuda>();
          bool const want_dx = outputs != 2, want_params = outputs != 1;
          ops::batch_norm_backward(in.x, w, mean, invstd, in.dy, batch_stats, want_dx ? &dx : nullptr,
                                   want_params ? &dw : nullptr, want_params ? &db : nullptr);
          ops::batch_norm_backward(to_device(in.x), to_device(w), to_device(mean), to_device(invstd),
                                   to_device(in.dy), batch_stats, want_dx ? &dx_d : nullptr,
                                   want_params ? &dw_d : nullptr, want_params ? &db_d : nullptr);
          check_close(dx, dx_d, "dx");
          check_close(dw, dw_d, "dweight");
          check_close(db, db_d, "dbias");
        }
  }
}

TEMPLATE_TEST_CASE("cuda batch_norm: the differentiable form gives the CPU's gradients", "[cuda][batch_norm]", float,
                   double) {
  ARCNET_REQUIRE_CUDA_DEVICE();
  using namespace cuda_bn_test;
  using T = TestType;
  std::uint64_t seed = 3000;
  for (auto const& s : shapes()) {
    index_t const m = s.numel() / s[s.rank() - 1];
    for (bool training : {true, false}) {
      if (training && m <= 1) continue;
      INFO("shape " << s << ", training " << training);
      inputs<T> in(s, seed += 10);
      ops::batch_norm_options o;
      o.training = training;
      auto rm = in.running_mean.clone(), rv = in.running_var.clone();
      auto rm_d = to_device(rm), rv_d = to_device(rv);
      variable<T, cpu> x(in.x, true), w(in.weight, true), b(in.bias, true);
      variable<T, cuda> x_d(to_device(in.x), true), w_d(to_device(in.weight), true), b_d(to_device(in.bias), true);
      auto y = ops::batch_norm(x, w, b, rm, rv, o);
      auto y_d = ops::batch_norm(x_d, w_d, b_d, rm_d, rv_d, o);
      check_close(y.value(), y_d.value(), "y");
      check_close(rm, rm_d, "running_mean");
      check_close(rv, rv_d, "running_var");
      y.backward(in.dy);
      y_d.backward(to_device(in.dy));
      check_close(x.grad(), x_d.grad(), "x.grad");
      check_close(w.grad(), w_d.grad(), "weight.grad");
      check_close(b.grad(), b_d.grad(), "bias.grad");
    }
  }
}

TEMPLATE_TEST_CASE("cuda batch_norm: relu (and a residual add) fused matches the CPU, and the unfused CUDA ops "
                   "exactly", "[cuda][batch_norm]", float, double) {
  ARCNET_REQUIRE_CUDA_DEVICE();
  using namespace cuda_bn_test;
  using T = TestType;
  std::uint64_t seed = 4000;
  for (auto const& s : shapes()) {
    index_t const m = s.numel() / s[s.rank() - 1];
    for (bool training : {true, false})
      for (bool add : {false, true}) {
        if (training && m <= 1) continue;
        INFO("shape " << s << ", training " << training << ", add " << add);
        inputs<T> in(s, seed += 10);
        auto residual = random_tensor<T>(s, seed + 7);
        ops::batch_norm_options o;
        o.training = training;
        o.relu = true;
        auto rm = in.running_mean.clone(), rv = in.running_var.clone();
        variable<T, cpu> x(in.x, true), w(in.weight, true), b(in.bias, true), r_cpu(residual, true);
        auto y = add ? ops::batch_norm_add(x, w, b, rm, rv, r_cpu, o) : ops::batch_norm(x, w, b, rm, rv, o);
        y.backward(in.dy);
        // On the device: fused, and batch_norm, add, relu one by one.
        struct device_run {
          tensor<T, cuda> rm, rv, y;
          variable<T, cuda> x, w, b, r;
        };
        auto run = [&](bool fused) {
          device_run r{to_device(in.running_mean), to_device(in.running_var), {},
                       variable<T, cuda>(to_device(in.x), true), variable<T, cuda>(to_device(in.weight), true),
                       variable<T, cuda>(to_device(in.bias), true), variable<T, cuda>(to_device(residual), true)};
          ops::batch_norm_options od = o;
          od.relu = fused;
          variable<T, cuda> yd;
          if (fused && add) {
            yd = ops::batch_norm_add(r.x, r.w, r.b, r.rm, r.rv, r.r, od);
          } else {
            yd = ops::batch_norm(r.x, r.w, r.b, r.rm, r.rv, od);
            if (add) yd = ops::add(yd, r.r);
            if (!fused) yd = ops::relu(yd);
          }
          yd.backward(to_device(in.dy));
          r.y = yd.value();
          return r;
        };
        auto f = run(true), a = run(false);
        check_close(y.value(), f.y, "y");
        check_close(rm, f.rm, "running_mean");
        check_close(rv, f.rv, "running_var");
        check_close(x.grad(), f.x.grad(), "x.grad");
        check_close(w.grad(), f.w.grad(), "weight.grad");
        check_close(b.grad(), f.b.grad(), "bias.grad");
        if (add) check_close(r_cpu.grad(), f.r.grad(), "residual.grad");
        auto same = [](tensor<T, cuda> const& p, tensor<T, cuda> const& q) {
          return p.template to<cpu>().to_vector() == q.template to<cpu>().to_vector();
        };
        CHECK(same(f.y, a.y));
        CHECK(same(f.rm, a.rm));
        CHECK(same(f.rv, a.rv));
        CHECK(same(f.x.grad(), a.x.grad()));
        CHECK(same(f.w.grad(), a.w.grad()));
        CHECK(same(f.b.grad(), a.b.grad()));
        if (add) CHECK(same(f.r.grad(), a.r.grad()));
      }
  }
}

TEST_CASE("cuda batch_norm: bad input on the cuda tag throws arcnet::error", "[cuda][batch_norm]") {
  ARCNET_REQUIRE_CUDA_DEVICE();
  using namespace cuda_bn_test;
  auto x = random_tensor<float>(shape{1, 4}, 1).to<cuda>();  // one value per channel: no batch variance
  tensor<float, cuda> none, mean, invstd;
  ops::batch_norm_options o;
  CHECK_THROWS_AS(ops::batch_norm_forward(x, none, none, none, none, o, mean, invstd), arcnet::error);
  auto bad_weight = random_tensor<float>(shape{3}, 2).to<cuda>();
  auto x2 = random_tensor<float>(shape{5, 4}, 3).to<cuda>();
  CHECK_THROWS_AS(ops::batch_norm_forward(x2, bad_weight, none, none, none, o, mean, invstd), arcnet::error);
}

TEST_CASE("cuda batch_norm on bf16 activations with float parameters: the float result rounded once",
          "[cuda][batch_norm]") {
  ARCNET_REQUIRE_CUDA_DEVICE();
  using cuda_bn_test::to_device;
  auto as_bf16 = [](tensor<float, cpu> const& t) { return ops::cast_forward<bfloat16>(t); };
  // |got - want| within one rounding to bf16 (half an ulp: 2^-8 relative) and float noise: the
  // statistics are summed in double from the same bf16 values on both sides.
  auto check_rounded_once = [](tensor<float, cpu> const& want, tensor<bfloat16, cuda> const& got, char const* what,
                               bool exact = false) {
    INFO(what);
    auto g = ops::cast_forward<float>(got).to<cpu>();
    REQUIRE(g.shape() == want.shape());
    std::size_t off = 0;
    double worst = 0;
    for (index_t i = 0; i < want.numel(); ++i) {
      double const e = want[i], d = std::abs(double(g[i]) - e);
      worst = std::max(worst, d / std::max(std::abs(e), 1e-3));
      off += d > std::abs(e) * 0x1p-8 * 1.01 + 1e-5;
    }
    CHECK(off == 0);
    if (exact) CHECK(worst == 0);
    else CHECK(worst > 0);  // really rounded: bf16 outputs cannot all equal the float ones
  };
  for (shape const& s : {shape{2, 5, 6, 33}, shape{64, 14, 14, 64}}) {
    for (bool relu : {false, true})
      for (bool add : {false, true}) {
        INFO("shape " << s << (relu ? ", relu" : "") << (add ? ", residual" : ""));
        cuda_bn_test::inputs<float> in(s, 4200 + s.numel() % 97);
        auto xb = as_bf16(in.x), dyb = as_bf16(in.dy), rb = as_bf16(cuda_testing::random_tensor<float>(s, 4300));
        ops::batch_norm_options o;
        o.relu = relu;
        // CPU reference in float on the bf16 values
        auto rm = in.running_mean.clone(), rv = in.running_var.clone();
        variable<float, cpu> x(xb.cast<float>(), true), w(in.weight, true), b(in.bias, true),
            r(rb.cast<float>(), true);
        auto y = add ? ops::batch_norm_add(x, w, b, rm, rv, r, o) : ops::batch_norm(x, w, b, rm, rv, o);
        y.backward(dyb.cast<float>());
        // the device: bf16 x, residual, output and gradients; float parameters and statistics
        auto rm_d = to_device(in.running_mean), rv_d = to_device(in.running_var);
        variable<bfloat16, cuda> xd(xb.to<cuda>(), true), rd(rb.to<cuda>(), true);
        variable<float, cuda> wd(to_device(in.weight), true), bd(to_device(in.bias), true);
        auto yd = add ? ops::batch_norm_add(xd, wd, bd, rm_d, rv_d, rd, o) : ops::batch_norm(xd, wd, bd, rm_d, rv_d, o);
        static_assert(std::is_same_v<decltype(yd), variable<bfloat16, cuda>>);
        yd.backward(dyb.to<cuda>());
        check_rounded_once(y.value(), yd.value(), "output");
        cuda_bn_test::check_close(rm, rm_d, "running mean");
        cuda_bn_test::check_close(rv, rv_d, "running var");
        cuda_bn_test::check_close(w.grad(), wd.grad(), "d weight (float, from bf16 dy and x)");
        cuda_bn_test::check_close(b.grad(), bd.grad(), "d bias");
        // dx's terms cancel (dy - mean(dy) - ...): compared at the scale of the whole tensor
        auto dx = ops::cast_forward<float>(xd.grad());
        double scale = 1e-3;
        for (index_t i = 0; i < x.grad().numel(); ++i) scale = std::max(scale, double(std::abs(x.grad()[i])));
        CHECK(cuda_testing::max_difference(x.grad(), dx, scale) <= 1e-2);
        if (add) check_rounded_once(r.grad(), rd.grad(), "residual gradient: dy (masked), exactly", true);
      }
  }
}
