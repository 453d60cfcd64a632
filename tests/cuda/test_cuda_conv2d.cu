// CUDA tests of ops/conv2d.hpp: forward (with and without bias, with the fused ReLU of the impl),
// the raw backward (which accumulates; with some gradients not asked for) and the differentiable
// form, each against the CPU backend on the same input, float and double. Shapes: pointwise
// 1x1, strided 1x1 (ResNet's downsample), 3x3 stride 1 and 2, the 7x7 stride-2 stem, dilated and
// asymmetric kernels, Cin / Cout of 1 and 3, a ResNet-like 8 x 28 x 28 x 64 -> 64 3x3 and a
// 4 x 56 x 56 x 64 -> 256 pointwise one (many blocks). Every case also runs with small column
// budgets, so that the im2col path goes through many chunks, some of them part of one image.
// Float cases run on both backends of the non-pointwise convolutions (im2col + cuBLAS, and cuDNN
// when built with it; the emulator stands in for cuDNN, where a small budget makes it choose an
// algorithm without workspace).
#include "cuda/cuda_test_util.hpp"

#include <arcnet/core/precision.hpp>
#include <arcnet/ops/cast.hpp>
#include <arcnet/ops/conv2d.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
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

using conv_impl = ops::conv2d_impl<cuda>;

/// Sets the convolution backend for a scope.
struct backend_scope {
  conv_impl::backend_kind saved;
  explicit backend_scope(conv_impl::backend_kind b) : saved(conv_impl::backend()) { conv_impl::set_backend(b); }
  ~backend_scope() { conv_impl::set_backend(saved); }
};
/// The backends a float convolution can run on in this build (double: im2col + cuBLAS only).
inline std::vector<conv_impl::backend_kind> backends() {
  if (conv_impl::cudnn_built()) return {conv_impl::backend_kind::gemm, conv_impl::backend_kind::cudnn};
  return {conv_impl::backend_kind::gemm};
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
  for (auto backend : backends())
  // 0: the default (one chunk here); 5 and 37 rows: many chunks, parts of images and whole images
  for (index_t budget_rows : {index_t(0), index_t(5), index_t(37)}) {
    INFO("backend " << conv_impl::name(backend) << ", column budget of " << budget_rows << " rows");
    backend_scope use(backend);
    budget_scope scope(static_cast<std::size_t>(budget_rows * row_bytes));
    // the cuDNN path must really run for a float convolution that is not pointwise (9 calls below)
    bool const expect_cudnn =
        backend == conv_impl::backend_kind::cudnn && std::is_same_v<T, float> && !g.is_pointwise();
    std::uint64_t const cudnn_before = conv_impl::cudnn_runs();
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
    // forward x2, backward (data + filter), dw alone, dx alone, and the variable's forward + 2
    CHECK(conv_impl::cudnn_runs() - cudnn_before == (expect_cudnn ? 9u : 0u));
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

TEST_CASE("cuda conv2d: repeated forward and backward give the same bits", "[cuda][conv2d]") {
  ARCNET_REQUIRE_CUDA_DEVICE();
  // the col2im gather and the bias column sums use no atomics; cuDNN's algorithms are restricted to
  // deterministic ones (the emulator's cuDNN ranks a non-deterministic one first)
  auto x = cuda_testing::random_tensor<float>(shape{2, 9, 8, 5}, 41).to<cuda>();
  auto w = cuda_testing::random_tensor<float>(shape{3, 3, 5, 6}, 42).to<cuda>();
  auto dy = cuda_testing::random_tensor<float>(shape{2, 5, 4, 6}, 43).to<cuda>();
  ops::conv2d_options o{2, 2, 1, 1};
  for (auto backend : cuda_conv_test::backends()) {
    INFO("backend " << cuda_conv_test::conv_impl::name(backend));
    cuda_conv_test::backend_scope use(backend);
    std::vector<std::vector<float>> runs;
    for (int r = 0; r < 3; ++r) {
      tensor<float, cuda> dx(x.shape()), dw(w.shape()), db(shape{6});
      ops::conv2d_backward(x, w, dy, o, &dx, &dw, &db);
      auto v = ops::conv2d_forward(x, w, tensor<float, cuda>(), o).to_vector();
      for (auto const* t : {&dx, &dw, &db}) {
        auto const part = t->to_vector();
        v.insert(v.end(), part.begin(), part.end());
      }
      runs.push_back(v);
    }
    CHECK(runs[0] == runs[1]);
    CHECK(runs[1] == runs[2]);
  }
}

TEST_CASE("cuda conv2d: tf32 and bf16 modes stay near the CPU on both backends", "[cuda][conv2d]") {
  ARCNET_REQUIRE_CUDA_DEVICE();
  using impl = cuda_conv_test::conv_impl;
  // a 3x3 s1, the stem's 7x7 s2, and a strided 1x1: K = 576, 147 and 64 products per output
  std::vector<cuda_conv_test::conv_case> const cases = {
      {shape{2, 10, 9, 64}, 3, 3, 32, {1, 1, 1, 1}, false},
      {shape{2, 15, 13, 3}, 7, 7, 16, {2, 2, 3, 3}, false},
      {shape{2, 8, 8, 64}, 1, 1, 48, {2, 2}, false},
  };
  std::uint64_t seed = 7100;
  for (auto const& c : cases) {
    auto x = cuda_testing::random_tensor<float>(c.x, seed += 10);
    auto w = cuda_testing::random_tensor<float>(shape{c.kh, c.kw, c.x[3], c.cout}, seed + 1);
    auto g = detail::conv2d_geometry_of("test", x, w, c.o);
    auto dy = cuda_testing::random_tensor<float>(shape{g.n, g.ho, g.wo, g.cout}, seed + 2);
    auto y = ops::conv2d_forward(x, w, tensor<float, cpu>(), c.o);
    tensor<float, cpu> dx(x.shape()), dw(w.shape());
    ops::conv2d_backward(x, w, dy, c.o, &dx, &dw, nullptr);
    auto xd = x.to<cuda>(), wd = w.to<cuda>(), dyd = dy.to<cuda>();
    for (auto mode : {precision::mode::tf32, precision::mode::bf16})
      for (auto backend : cuda_conv_test::backends()) {
        INFO("x " << c.x << ", kernel " << c.kh << "x" << c.kw << ", " << precision::name(mode) << ", backend "
                  << impl::name(backend));
        precision::scope const policy(mode);
        cuda_conv_test::backend_scope use(backend);
        std::uint64_t const before = impl::cudnn_runs();
        auto yd = ops::conv2d_forward(xd, wd, tensor<float, cuda>(), c.o);
        tensor<float, cuda> dxd(x.shape()), dwd(w.shape());
        ops::conv2d_backward(xd, wd, dyd, c.o, &dxd, &dwd, nullptr);
        bool const on_cudnn = backend == impl::backend_kind::cudnn;
        CHECK(impl::cudnn_runs() - before == (on_cudnn ? 3u : 0u));
        // tf32 operands: ~2^-11 relative each; bf16: ~2^-8, and on cuDNN a bf16-rounded result
        double const limit = mode == precision::mode::tf32 ? 4e-3 : 2e-2;
        double const dy_ = cuda_conv_test::scaled_difference(y, yd), dx_ = cuda_conv_test::scaled_difference(dx, dxd),
                     dw_ = cuda_conv_test::scaled_difference(dw, dwd);
        CHECK(dy_ <= limit);
        CHECK(dx_ <= limit);
        CHECK(dw_ <= limit);
        CHECK(dy_ > 1e-6);  // the mode really rounded (fp32 agrees to ~1e-7)
        if (on_cudnn && mode == precision::mode::bf16) {
          // cuDNN ran on bf16 tensors: every output is a bf16 value (low 16 bits zero)
          std::size_t not_bf16 = 0;
          for (float v : yd.to_vector()) {
            std::uint32_t u;
            std::memcpy(&u, &v, sizeof u);
            not_bf16 += (u & 0xffffu) != 0;
          }
          CHECK(not_bf16 == 0);
        }
      }
  }
}

TEST_CASE("cuda conv2d on bf16 tensors: fp32 accumulation of bf16 operands, on both backends", "[cuda][conv2d]") {
  ARCNET_REQUIRE_CUDA_DEVICE();
  using impl = cuda_conv_test::conv_impl;
  // pointwise (one bf16 GEMM), strided 1x1, 3x3 s1 and s2, the stem's 7x7 s2, with and without bias
  std::vector<cuda_conv_test::conv_case> const cases = {
      {shape{2, 6, 5, 48}, 1, 1, 40, {}, true},
      {shape{2, 8, 8, 64}, 1, 1, 48, {2, 2}, false},
      {shape{2, 10, 9, 64}, 3, 3, 32, {1, 1, 1, 1}, true},
      {shape{2, 9, 8, 32}, 3, 3, 16, {2, 2, 1, 1}, false},
      {shape{2, 15, 13, 3}, 7, 7, 16, {2, 2, 3, 3}, false},
  };
  // Every operand is a bf16 value, so the CPU's float result from the same values is the exact
  // product up to float rounding; the device's error is its bf16 output (2^-9 relative) plus
  // the order of its fp32 sums.
  auto as_bf16 = [](tensor<float, cpu> const& t) { return ops::cast_forward<bfloat16>(t); };
  std::uint64_t seed = 9100;
  for (auto const& c : cases) {
    auto x = as_bf16(cuda_testing::random_tensor<float>(c.x, seed += 10));
    auto w = as_bf16(cuda_testing::random_tensor<float>(shape{c.kh, c.kw, c.x[3], c.cout}, seed + 1));
    auto b = c.bias ? as_bf16(cuda_testing::random_tensor<float>(shape{c.cout}, seed + 2)) : tensor<bfloat16, cpu>();
    auto xf = x.cast<float>(), wf = w.cast<float>(), bf = c.bias ? b.cast<float>() : tensor<float, cpu>();
    auto g = detail::conv2d_geometry_of("test", xf, wf, c.o);
    shape const ys{g.n, g.ho, g.wo, g.cout};
    auto dy = as_bf16(cuda_testing::random_tensor<float>(ys, seed + 3));
    auto dx0 = as_bf16(cuda_testing::random_tensor<float>(c.x, seed + 4));  // gradients accumulate
    auto dw0 = as_bf16(cuda_testing::random_tensor<float>(wf.shape(), seed + 5));
    auto y = ops::conv2d_forward(xf, wf, bf, c.o);
    auto dx = dx0.cast<float>(), dw = dw0.cast<float>();
    tensor<float, cpu> db(shape{c.cout});
    ops::conv2d_backward(xf, wf, dy.cast<float>(), c.o, &dx, &dw, c.bias ? &db : nullptr);

    auto xd = x.to<cuda>(), wd = w.to<cuda>(), dyd = dy.to<cuda>();
    auto bd = c.bias ? b.to<cuda>() : tensor<bfloat16, cuda>();
    index_t const row_bytes = g.depth() * index_t(sizeof(bfloat16));
    for (auto backend : cuda_conv_test::backends())
      for (index_t budget_rows : {index_t(0), index_t(37)}) {  // one chunk; many, parts of images
        INFO("x " << c.x << ", kernel " << c.kh << "x" << c.kw << ", backend " << impl::name(backend)
                  << ", column budget of " << budget_rows << " rows");
        cuda_conv_test::backend_scope use(backend);
        cuda_conv_test::budget_scope budget(static_cast<std::size_t>(budget_rows * row_bytes));
        std::uint64_t const before = impl::cudnn_runs();
        auto yd = ops::conv2d_forward(xd, wd, bd, c.o);
        static_assert(std::is_same_v<decltype(yd), tensor<bfloat16, cuda>>);
        auto dxd = dx0.to<cuda>(), dwd = dw0.to<cuda>();
        tensor<bfloat16, cuda> dbd(shape{c.cout});
        ops::conv2d_backward(xd, wd, dyd, c.o, &dxd, &dwd, c.bias ? &dbd : nullptr);
        bool const on_cudnn = backend == impl::backend_kind::cudnn && !g.is_pointwise();
        CHECK(impl::cudnn_runs() - before == (on_cudnn ? 3u : 0u));  // no fallback to float plans
        CHECK(cuda_conv_test::scaled_difference(y, ops::cast_forward<float>(yd)) <= 1e-2);
        CHECK(cuda_conv_test::scaled_difference(dx, ops::cast_forward<float>(dxd)) <= 1e-2);
        CHECK(cuda_conv_test::scaled_difference(dw, ops::cast_forward<float>(dwd)) <= 1e-2);
        if (c.bias) CHECK(cuda_conv_test::scaled_difference(db, ops::cast_forward<float>(dbd)) <= 1e-2);
        // the rounding is bf16's, not a sign of a wrong index: far above fp32's, far below a wrong tap's
        CHECK(cuda_conv_test::scaled_difference(y, ops::cast_forward<float>(yd)) > 1e-5);
      }
    // the differentiable form, with the weight kept in fp32 and cast per use (as a layer does)
    variable<float, cuda> wv(wf.to<cuda>(), true);
    variable<bfloat16, cuda> xv(xd, true);
    auto out = ops::conv2d(xv, ops::cast<bfloat16>(wv), variable<bfloat16, cuda>(), c.o);
    ops::cast<float>(out).backward(dy.cast<float>().to<cuda>());
    tensor<float, cpu> dx1(c.x), dw1(wf.shape());
    ops::conv2d_backward(xf, wf, dy.cast<float>(), c.o, &dx1, &dw1, nullptr);
    CHECK(cuda_conv_test::scaled_difference(dw1, wv.grad()) <= 1e-2);
    CHECK(cuda_conv_test::scaled_difference(dx1, ops::cast_forward<float>(xv.grad())) <= 1e-2);
  }
}

#if defined(ARCNET_CUDA_EMULATOR)
TEST_CASE("cuda conv2d: a call cuDNN turns down runs on im2col, and so does that direction from then on",
          "[cuda][conv2d]") {
  using impl = cuda_conv_test::conv_impl;
  cuda_conv_test::backend_scope use(impl::backend_kind::cudnn);
  auto x = cuda_testing::random_tensor<float>(shape{2, 11, 7, 6}, 81);  // a geometry no other test uses
  auto w = cuda_testing::random_tensor<float>(shape{3, 3, 6, 5}, 82);
  auto dy = cuda_testing::random_tensor<float>(shape{2, 11, 7, 5}, 83);
  ops::conv2d_options const o{1, 1, 1, 1};
  auto y = ops::conv2d_forward(x, w, tensor<float, cpu>(), o);
  tensor<float, cpu> dx(x.shape()), dw(w.shape());
  ops::conv2d_backward(x, w, dy, o, &dx, &dw, nullptr);
  auto xd = x.to<cuda>(), wd = w.to<cuda>(), dyd = dy.to<cuda>();
  std::uint64_t const runs = impl::cudnn_runs(), refusals = impl::cudnn_refusals();

  arcnet_emu::dnn::refuse_calls() = 1;  // the forward is turned down
  cuda_conv_test::check_close(y, ops::conv2d_forward(xd, wd, tensor<float, cuda>(), o), "forward, turned down");
  CHECK(impl::cudnn_refusals() - refusals == 1);
  CHECK(impl::cudnn_runs() - runs == 0);
  cuda_conv_test::check_close(y, ops::conv2d_forward(xd, wd, tensor<float, cuda>(), o), "forward, again");
  CHECK(impl::cudnn_runs() - runs == 0);  // that direction stays on im2col

  arcnet_emu::dnn::refuse_calls() = 1;  // the data gradient is turned down, the filter gradient runs
  tensor<float, cuda> dxd(x.shape()), dwd(w.shape());
  ops::conv2d_backward(xd, wd, dyd, o, &dxd, &dwd, nullptr);
  cuda_conv_test::check_close(dx, dxd, "dx, turned down");
  cuda_conv_test::check_close(dw, dwd, "dw on cuDNN");
  CHECK(impl::cudnn_refusals() - refusals == 2);
  CHECK(impl::cudnn_runs() - runs == 1);
  CHECK(arcnet_emu::dnn::refuse_calls() == 0);

  // bf16 tensors (another geometry: the float plans above stay on im2col): a call on bf16 tensors
  // that cuDNN turns down runs on float copies of them
  auto xb = ops::cast_forward<bfloat16>(cuda_testing::random_tensor<float>(shape{2, 9, 7, 6}, 84));
  auto wb = ops::cast_forward<bfloat16>(w);
  auto dyb = ops::cast_forward<bfloat16>(cuda_testing::random_tensor<float>(shape{2, 9, 7, 5}, 85));
  auto yb = ops::conv2d_forward(xb.cast<float>(), wb.cast<float>(), tensor<float, cpu>(), o);
  tensor<float, cpu> dxb(xb.shape()), dwb(w.shape());
  ops::conv2d_backward(xb.cast<float>(), wb.cast<float>(), dyb.cast<float>(), o, &dxb, &dwb, nullptr);
  auto xbd = xb.to<cuda>(), wbd = wb.to<cuda>(), dybd = dyb.to<cuda>();
  std::uint64_t const runs_b = impl::cudnn_runs(), refusals_b = impl::cudnn_refusals();
  tensor<bfloat16, cuda> dxbd(xb.shape()), dwbd(w.shape());
  arcnet_emu::dnn::refuse_calls() = 1;  // each direction's bf16 call in turn
  auto ybd = ops::conv2d_forward(xbd, wbd, tensor<bfloat16, cuda>(), o);
  arcnet_emu::dnn::refuse_calls() = 1;
  ops::conv2d_backward(xbd, wbd, dybd, o, &dxbd, nullptr, nullptr);
  arcnet_emu::dnn::refuse_calls() = 1;
  ops::conv2d_backward(xbd, wbd, dybd, o, nullptr, &dwbd, nullptr);
  CHECK(impl::cudnn_refusals() - refusals_b == 3);
  CHECK(impl::cudnn_runs() - runs_b == 3);  // each direction then ran on float copies
  CHECK(cuda_conv_test::scaled_difference(yb, ops::cast_forward<float>(ybd)) <= 1e-2);
  CHECK(cuda_conv_test::scaled_difference(dxb, ops::cast_forward<float>(dxbd)) <= 1e-2);
  CHECK(cuda_conv_test::scaled_difference(dwb, ops::cast_forward<float>(dwbd)) <= 1e-2);
}
#endif

TEST_CASE("cuda conv2d: the backend setting", "[cuda][conv2d]") {
  using impl = ops::conv2d_impl<cuda>;
  CHECK(impl::parse_backend("gemm") == impl::backend_kind::gemm);
  CHECK_THROWS_AS(impl::parse_backend("cudnn8"), config_error);
  CHECK_THROWS_WITH(impl::parse_backend("winograd"), Catch::Matchers::Contains("expected gemm or cudnn, got 'winograd'"));
  if (impl::cudnn_built()) {
    CHECK(impl::parse_backend("cudnn") == impl::backend_kind::cudnn);
  } else {
    CHECK_THROWS_WITH(impl::parse_backend("cudnn"), Catch::Matchers::Contains("this build has no cuDNN"));
    CHECK_THROWS_AS(impl::set_backend(impl::backend_kind::cudnn), config_error);
    CHECK(impl::backend() == impl::backend_kind::gemm);
  }
}

TEST_CASE("cuda conv2d: bad input throws arcnet::error", "[cuda][conv2d]") {
  ARCNET_REQUIRE_CUDA_DEVICE();
  tensor<float, cuda> x(shape{1, 5, 5, 3}), w(shape{3, 3, 4, 2});  // 3 input channels, weight wants 4
  CHECK_THROWS_AS(ops::conv2d_forward(x, w, tensor<float, cuda>()), arcnet::error);
  tensor<float, cuda> w3(shape{3, 3, 3, 2}), bias(shape{3});
  CHECK_THROWS_AS(ops::conv2d_forward(x, w3, bias), arcnet::error);
}
