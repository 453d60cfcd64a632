#include "test_util.hpp"

#include <arcnet/ops/conv2d.hpp>

#if defined(_OPENMP)
#include <omp.h>
#endif

using namespace arcnet;

namespace conv_test {

/// Direct convolution from the definition (NHWC, (KH, KW, Cin, Cout)), in double.
template <class T>
tensor<double, cpu> naive_conv2d(tensor<T, cpu> const& x, tensor<T, cpu> const& w, tensor<T, cpu> const& b,
                                 ops::conv2d_options o) {
  index_t n = x.size(0), h = x.size(1), wd = x.size(2), ci = x.size(3);
  index_t kh = w.size(0), kw = w.size(1), co = w.size(3);
  index_t ho = (h + 2 * o.pad_h - o.dilation_h * (kh - 1) - 1) / o.stride_h + 1;
  index_t wo = (wd + 2 * o.pad_w - o.dilation_w * (kw - 1) - 1) / o.stride_w + 1;
  tensor<double, cpu> y(shape{n, ho, wo, co});
  for (index_t i = 0; i < n; ++i)
    for (index_t oh = 0; oh < ho; ++oh)
      for (index_t ow = 0; ow < wo; ++ow)
        for (index_t oc = 0; oc < co; ++oc) {
          double s = b.defined() ? static_cast<double>(b[oc]) : 0.0;
          for (index_t a = 0; a < kh; ++a)
            for (index_t c = 0; c < kw; ++c) {
              index_t ih = oh * o.stride_h - o.pad_h + a * o.dilation_h;
              index_t iw = ow * o.stride_w - o.pad_w + c * o.dilation_w;
              if (ih < 0 || ih >= h || iw < 0 || iw >= wd) continue;
              for (index_t ic = 0; ic < ci; ++ic) s += double(x.at(i, ih, iw, ic)) * double(w.at(a, c, ic, oc));
            }
          y.at(i, oh, ow, oc) = s;
        }
  return y;
}

/// Sets a process-wide setting of the CPU backend for one scope (the im2col budget, so that small
/// tests also run the chunked paths; the parallel work threshold, so that they run threaded).
template <class V>
class setting_scope {
 public:
  setting_scope(V& setting, V value) : setting_(setting), saved_(setting) { setting_ = value; }
  ~setting_scope() { setting_ = saved_; }
  setting_scope(setting_scope const&) = delete;
  setting_scope& operator=(setting_scope const&) = delete;

 private:
  V& setting_;
  V saved_;
};

class column_budget_scope : public setting_scope<std::size_t> {
 public:
  explicit column_budget_scope(std::size_t bytes)
      : setting_scope(ops::conv2d_impl<cpu>::column_budget_bytes(), bytes) {}
};

class parallel_threshold_scope : public setting_scope<index_t> {
 public:
  explicit parallel_threshold_scope(index_t madds)
      : setting_scope(ops::conv2d_impl<cpu>::parallel_work_threshold(), madds) {}
};

/// Runs "same" convolutions as shifted GEMMs (1), or never (0), for one scope.
class shifted_scope : public setting_scope<int> {
 public:
  explicit shifted_scope(int mode) : setting_scope(ops::conv2d_impl<cpu>::shifted_mode(), mode) {}
};

/// Like testing::require_gradients_match, with a finite-difference step of 1e-3: a convolution
/// is linear in each input element, so central differences are exact up to rounding, and a
/// larger step divides the rounding error (about 1e-16 * |L| / step) by a thousand.
template <class F>
void require_gradients_match(F&& f, std::vector<variable<double, cpu>> inputs, double tol = 1e-6) {
  autograd::grad_check_options opt;
  opt.eps = 1e-3;
  auto r = autograd::grad_check(std::forward<F>(f), std::move(inputs), opt);
  INFO("worst: " << r.worst << " (checked " << r.checked << " elements)");
  CHECK(r.checked > 0);
  REQUIRE(r.max_error < tol);
}

struct config {
  char const* name;
  index_t n, h, w, cin, cout, kh, kw;
  ops::conv2d_options o;
  bool bias;
};

// Odd sizes throughout; every path of the CPU backend appears at least once (the "same" ones,
// stride 1 with padding (k - 1) / 2, also take the shifted-GEMM path under shifted_scope(1)).
inline std::vector<config> const& configs() {
  static std::vector<config> const c = {
      {"3x3 stride 2 pad 1", 2, 7, 5, 3, 4, 3, 3, {2, 2, 1, 1, 1, 1}, true},
      {"1x1 (plain GEMM)", 2, 7, 5, 3, 4, 1, 1, {}, true},
      {"1x1 stride 2 (projection)", 2, 7, 5, 3, 4, 1, 1, {2, 2, 0, 0, 1, 1}, true},
      {"7x7 stride 2 pad 3", 1, 9, 8, 2, 3, 7, 7, {2, 2, 3, 3, 1, 1}, true},
      {"3x3 dilation 2 pad 2", 2, 7, 6, 3, 4, 3, 3, {1, 1, 2, 2, 2, 2}, true},
      {"3x3 no bias", 2, 7, 5, 3, 4, 3, 3, {1, 1, 1, 1, 1, 1}, false},
      {"3x2 kernel, stride (2, 1), pad (1, 0)", 2, 7, 5, 3, 4, 3, 2, {2, 1, 1, 0, 1, 1}, true},
      {"2x3 kernel, stride (1, 3), dilation (2, 1)", 1, 8, 9, 2, 3, 2, 3, {1, 3, 0, 1, 2, 1}, true},
      {"5x3 kernel, same padding", 2, 6, 7, 3, 4, 5, 3, {1, 1, 2, 1, 1, 1}, true},
      {"1x3 kernel, same padding", 2, 4, 6, 2, 3, 1, 3, {1, 1, 0, 1, 1, 1}, false},
  };
  return c;
}

}  // namespace conv_test

TEST_CASE("conv2d: forward on hand-computed values", "[ops][conv2d]") {
  // x = 1..9 on a 3x3 single-channel image; a 2x2 kernel of ones sums each 2x2 window.
  auto x = tensor<double>::from_vector(shape{1, 3, 3, 1}, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  auto w = tensor<double>::full(shape{2, 2, 1, 1}, 1.0);
  auto b = tensor<double>::from_vector(shape{1}, {0.5});
  auto y = ops::conv2d_forward(x, w, b, {});
  REQUIRE(y.shape() == shape{1, 2, 2, 1});
  CHECK(y.to_vector() == std::vector<double>{12.5, 16.5, 24.5, 28.5});

  // 3x3 of ones, stride 2, pad 1: the corner windows see the 2x2 corners, zeros elsewhere.
  auto w3 = tensor<double>::full(shape{3, 3, 1, 1}, 1.0);
  auto y3 = ops::conv2d_forward(x, w3, tensor<double>(), {2, 2, 1, 1, 1, 1});
  REQUIRE(y3.shape() == shape{1, 2, 2, 1});
  CHECK(y3.to_vector() == std::vector<double>{1 + 2 + 4 + 5, 2 + 3 + 5 + 6, 4 + 5 + 7 + 8, 5 + 6 + 8 + 9});

  // Two input channels, two output channels: y[.., o] = sum_c x[.., c] * w[0, 0, c, o] (1x1).
  auto x2 = tensor<double>::from_vector(shape{1, 1, 2, 2}, {1, 10, 2, 20});
  auto w2 = tensor<double>::from_vector(shape{1, 1, 2, 2}, {1, 2, 3, 4});  // rows: input channel
  auto y2 = ops::conv2d_forward(x2, w2, tensor<double>(), {});
  CHECK(y2.to_vector() == std::vector<double>{1 + 30, 2 + 40, 2 + 60, 4 + 80});
}

TEST_CASE("conv2d: forward matches a direct convolution, whatever the chunking", "[ops][conv2d]") {
  generator g(11);
  for (auto const& c : conv_test::configs()) {
    auto x = randn<double>(shape{c.n, c.h, c.w, c.cin}, g);
    auto w = randn<double>(shape{c.kh, c.kw, c.cin, c.cout}, g);
    auto b = c.bias ? randn<double>(shape{c.cout}, g) : tensor<double>();
    auto ref = conv_test::naive_conv2d(x, w, b, c.o);
    // whole batch in one chunk; one image per chunk; a few rows per chunk (inside one image); one row
    std::size_t image_bytes = sizeof(double) * static_cast<std::size_t>(ref.size(1) * ref.size(2) * c.kh * c.kw * c.cin);
    for (std::size_t budget : {std::size_t(8) << 20, image_bytes, image_bytes * 3 / 2, std::size_t(1200), std::size_t(1)})
      for (int shifted : {0, 1}) {
      conv_test::column_budget_scope scope(budget);
      conv_test::shifted_scope path(shifted);
      INFO(c.name << ", column budget " << budget << ", shifted GEMMs " << shifted);
      auto y = ops::conv2d_forward(x, w, b, c.o);
      REQUIRE(y.shape() == ref.shape());
      CHECK(testing::max_relative_difference(y, ref, 1e-3) < 1e-10);
    }
  }
}

TEST_CASE("conv2d: gradients match finite differences", "[ops][conv2d]") {
  generator g(12);
  for (auto const& c : conv_test::configs())
    for (int shifted : {0, 1}) {
    conv_test::shifted_scope path(shifted);
    INFO(c.name << ", shifted GEMMs " << shifted);
    auto x = testing::random_variable(shape{c.n, c.h, c.w, c.cin}, g);
    auto w = testing::random_variable(shape{c.kh, c.kw, c.cin, c.cout}, g);
    auto b = c.bias ? testing::random_variable(shape{c.cout}, g) : variable<double>();
    std::vector<variable<double>> inputs{x, w};
    if (c.bias) inputs.push_back(b);
    conv_test::require_gradients_match([&] { return ops::conv2d(x, w, b, c.o); }, inputs, 1e-6);
  }
}

TEST_CASE("conv2d: gradients match finite differences with chunks inside one image", "[ops][conv2d]") {
  generator g(13);
  conv_test::column_budget_scope scope(sizeof(double) * 27 * 4);  // 4 rows of 27 columns per chunk
  auto x = testing::random_variable(shape{2, 7, 5, 3}, g);
  auto w = testing::random_variable(shape{3, 3, 3, 4}, g);
  auto b = testing::random_variable(shape{4}, g);
  conv_test::require_gradients_match([&] { return ops::conv2d(x, w, b, {1, 2, 1, 1, 1, 1}); }, {x, w, b}, 1e-6);
}

TEST_CASE("conv2d: forward and backward give the same result on 1, 2 and 3 threads", "[ops][conv2d]") {
  // 1 thread: one chunk at a time (whose gradients the finite-difference tests check); 2 and 3:
  // chunks per thread forward, images (or, for a 1x1 convolution, rows) per thread backward,
  // with per-thread weight-gradient partials reduced in thread order.
  generator g(18);
  conv_test::parallel_threshold_scope threaded(0);  // these sizes would run on one thread otherwise
  auto x = randn<double>(shape{6, 9, 7, 5}, g);
  for (int variant : {0, 1, 2}) {  // 3x3 stride (2, 1); 1x1; 3x3 "same" as shifted GEMMs
    index_t const kernel = variant == 1 ? 1 : 3;
    INFO(kernel << "x" << kernel << ", variant " << variant);
    conv_test::shifted_scope path(variant == 2 ? 1 : 0);
    auto w = randn<double>(shape{kernel, kernel, 5, 4}, g);
    auto b = randn<double>(shape{4}, g);
    ops::conv2d_options o = variant == 0   ? ops::conv2d_options{2, 1, 1, 1, 1, 1}
                            : variant == 1 ? ops::conv2d_options{}
                                           : ops::conv2d_options{1, 1, 1, 1, 1, 1};
    auto ref = conv_test::naive_conv2d(x, w, b, o);
    auto dy = randn<double>(ref.shape(), g);
    conv_test::column_budget_scope scope(sizeof(double) * 45 * 45);  // 45 rows: one image per chunk
    std::vector<std::vector<double>> results;
#if defined(_OPENMP)
    int saved = omp_get_max_threads();
    for (int threads : {1, 2, 3}) {
      omp_set_num_threads(threads);
#else
    for (int threads : {1}) {
#endif
      INFO(threads << " threads");
      auto y = ops::conv2d_forward(x, w, b, o);
      CHECK(testing::max_relative_difference(y, ref, 1e-3) < 1e-10);
      tensor<double> dx(x.shape()), dw(w.shape()), db(b.shape());
      ops::conv2d_backward(x, w, dy, o, &dx, &dw, &db);
      auto r = dx.to_vector();
      auto rw = dw.to_vector();
      r.insert(r.end(), rw.begin(), rw.end());
      results.push_back(r);
    }
#if defined(_OPENMP)
    omp_set_num_threads(saved);
#endif
    for (size_t i = 1; i < results.size(); ++i) {
      REQUIRE(results[i].size() == results[0].size());
      double worst = 0;
      for (size_t j = 0; j < results[0].size(); ++j)
        worst = std::max(worst, std::abs(results[i][j] - results[0][j]) / std::max(std::abs(results[0][j]), 1e-3));
      CHECK(worst < 1e-12);
    }
  }
}

TEST_CASE("conv2d: float and double forward agree", "[ops][conv2d]") {
  generator g(14);
  for (auto const& c : conv_test::configs()) {
    INFO(c.name);
    auto x = randn<double>(shape{c.n, c.h, c.w, c.cin}, g);
    auto w = randn<double>(shape{c.kh, c.kw, c.cin, c.cout}, g);
    auto b = randn<double>(shape{c.cout}, g);
    auto yd = ops::conv2d_forward(x, w, b, c.o);
    auto yf = ops::conv2d_forward(x.cast<float>(), w.cast<float>(), b.cast<float>(), c.o);
    CHECK(testing::max_relative_difference(yf, yd, 1.0) < 1e-5);  // relative above 1, absolute below
  }
}

TEST_CASE("conv2d: backward accumulates and skips null outputs", "[ops][conv2d]") {
  generator g(15);
  int const shifted = GENERATE(0, 1);
  conv_test::shifted_scope path(shifted);
  INFO("shifted GEMMs " << shifted);
  auto x = randn<double>(shape{2, 5, 5, 3}, g);
  auto w = randn<double>(shape{3, 3, 3, 2}, g);
  ops::conv2d_options o{1, 1, 1, 1, 1, 1};
  auto dy = randn<double>(shape{2, 5, 5, 2}, g);
  tensor<double> dx(x.shape()), dw(w.shape()), db(shape{2});
  ops::conv2d_backward(x, w, dy, o, &dx, &dw, &db);
  auto dx1 = dx.clone(), dw1 = dw.clone(), db1 = db.clone();
  ops::conv2d_backward(x, w, dy, o, &dx, nullptr, nullptr);
  ops::conv2d_backward(x, w, dy, o, nullptr, &dw, &db);
  for (index_t i = 0; i < dx.numel(); ++i) REQUIRE(dx[i] == Approx(2 * dx1[i]));
  for (index_t i = 0; i < dw.numel(); ++i) REQUIRE(dw[i] == Approx(2 * dw1[i]));
  // the bias gradient is the sum of dy over N, H, W
  double s0 = 0;
  for (index_t i = 0; i < dy.numel(); i += 2) s0 += dy[i];
  CHECK(db1[0] == Approx(s0));
  CHECK(db[0] == Approx(2 * s0));
}

TEST_CASE("conv2d: the shifted-GEMM path is taken for wide same convolutions and agrees with im2col in float",
          "[ops][conv2d]") {
  // The demo's stage-1 convolution (28x28, 16 -> 16) and a wider one, threaded: the default
  // (automatic) choice takes the shifted path; its forward and both gradients equal the im2col
  // path's up to float rounding (a wrong tap or a discarded column counted would be off by O(1)).
  generator g(19);
  for (index_t cin : {16, 24}) {
    INFO("channels " << cin);
    detail::conv2d_geometry geo;
    geo.n = 3, geo.h = 28, geo.w = 28, geo.cin = cin, geo.kh = 3, geo.kw = 3, geo.cout = cin, geo.ho = 28, geo.wo = 28;
    geo.pad_h = geo.pad_w = 1;
    CHECK(ops::conv2d_impl<cpu>::uses_shifted(geo));
    geo.w = geo.wo = 14;  // two discarded columns per row of 14: more than an eighth
    CHECK_FALSE(ops::conv2d_impl<cpu>::uses_shifted(geo));
    auto x = randn<float>(shape{3, 28, 28, cin}, g);
    auto w = randn<float>(shape{3, 3, cin, cin}, g);
    ops::conv2d_options o{1, 1, 1, 1, 1, 1};
    auto dy = randn<float>(shape{3, 28, 28, cin}, g);
    std::vector<tensor<float>> out[2];
    for (int shifted : {0, -1}) {
      conv_test::shifted_scope path(shifted);
      tensor<float> dx(x.shape()), dw(w.shape());
      ops::conv2d_backward(x, w, dy, o, &dx, &dw, nullptr);
      out[shifted == 0 ? 0 : 1] = {ops::conv2d_forward(x, w, tensor<float>(), o), dx, dw};
    }
    // sums of 144-216 (y, dx) and 2352 (dw) float products, in another order on each path
    for (int i = 0; i < 3; ++i) CHECK(testing::max_relative_difference(out[1][i], out[0][i], 1.0) < (i == 2 ? 1e-3 : 1e-4));
  }
}

TEST_CASE("conv2d: records nothing when no input requires grad", "[ops][conv2d]") {
  generator g(16);
  variable<double> x(randn<double>(shape{1, 4, 4, 2}, g)), w(randn<double>(shape{3, 3, 2, 2}, g));
  auto y = ops::conv2d(x, w, variable<double>(), {1, 1, 1, 1, 1, 1});
  CHECK_FALSE(y.requires_grad());
  CHECK(y.grad_fn() == nullptr);
  w.set_requires_grad(true);
  auto y2 = ops::conv2d(x, w, variable<double>(), {1, 1, 1, 1, 1, 1});
  CHECK(y2.requires_grad());
  ops::sum(y2).backward();
  CHECK(w.grad().defined());
  CHECK_FALSE(x.grad().defined());
}

TEST_CASE("conv2d: weight layout converts from and to PyTorch's OIHW", "[ops][conv2d]") {
  generator g(17);
  auto oihw = randn<double>(shape{4, 3, 2, 5}, g);  // (Cout, Cin, KH, KW)
  auto ours = ops::conv_weight_from_oihw(oihw);
  REQUIRE(ours.shape() == shape{2, 5, 3, 4});
  CHECK(ours.at(1, 4, 2, 3) == oihw.at(3, 2, 1, 4));
  CHECK(ours.at(0, 2, 1, 0) == oihw.at(0, 1, 0, 2));
  auto back = ops::conv_weight_to_oihw(ours);
  REQUIRE(back.shape() == oihw.shape());
  CHECK(back.to_vector() == oihw.to_vector());
  CHECK_THROWS_AS(ops::conv_weight_from_oihw(tensor<double>(shape{3, 3})), shape_error);
}

TEST_CASE("conv2d: bad shapes and options are reported clearly", "[ops][conv2d]") {
  tensor<float> x(shape{2, 56, 56, 32}), w(shape{3, 3, 64, 128}), none;
  CHECK_THROWS_WITH(ops::conv2d_forward(x, w, none, {}),
                    "arcnet: conv2d: expected input with 64 channels (weight (3, 3, 64, 128)), got input "
                    "(2, 56, 56, 32)");
  CHECK_THROWS_AS(ops::conv2d_forward(x, w, none, {}), shape_error);
  CHECK_THROWS_WITH(ops::conv2d_forward(tensor<float>(shape{2, 3}), w, none, {}),
                    "arcnet: conv2d: expected input of rank 4 (N, H, W, C), got shape (2, 3)");
  tensor<float> w2(shape{3, 3, 32, 8});
  CHECK_THROWS_WITH(ops::conv2d_forward(x, tensor<float>(shape{9, 32, 8}), none, {}),
                    Catch::Contains("expected weight of rank 4 (KH, KW, Cin, Cout)"));
  CHECK_THROWS_WITH(ops::conv2d_forward(x, w2, tensor<float>(shape{4}), {}),
                    "arcnet: conv2d: expected bias of shape (8,) for weight (3, 3, 32, 8), got bias (4,)");
  CHECK_THROWS_AS(ops::conv2d_forward(x, w2, tensor<float>(shape{1, 8}), {}), shape_error);
  // output size <= 0
  tensor<float> tiny(shape{1, 2, 2, 32});
  CHECK_THROWS_AS(ops::conv2d_forward(tiny, w2, none, {}), shape_error);
  CHECK_THROWS_WITH(ops::conv2d_forward(tiny, w2, none, {}), Catch::Contains("output would be empty"));
  CHECK_NOTHROW(ops::conv2d_forward(tiny, w2, none, {1, 1, 1, 1, 1, 1}));
  // options
  CHECK_THROWS_AS(ops::conv2d_forward(x, w2, none, {0, 1, 0, 0, 1, 1}), config_error);
  CHECK_THROWS_WITH(ops::conv2d_forward(x, w2, none, {1, 0, 0, 0, 1, 1}),
                    Catch::Contains("stride must be at least 1"));
  CHECK_THROWS_AS(ops::conv2d_forward(x, w2, none, {1, 1, 0, 0, 0, 1}), config_error);
  CHECK_THROWS_AS(ops::conv2d_forward(x, w2, none, {1, 1, -1, 0, 1, 1}), config_error);
  CHECK_THROWS_AS(ops::conv2d_forward(x, tensor<float>(shape{0, 3, 32, 8}), none, {}), shape_error);
  // backward: gradients must have the right shapes
  tensor<float> xs(shape{1, 5, 5, 32}), dy_bad(shape{1, 4, 4, 8}), dx(xs.shape()), dw(w2.shape()), db(shape{8});
  CHECK_THROWS_WITH(ops::conv2d_backward(xs, w2, dy_bad, {}, &dx, &dw, &db),
                    "arcnet: conv2d_backward: expected output gradient of shape (1, 3, 3, 8), got (1, 4, 4, 8)");
  tensor<float> dy(shape{1, 3, 3, 8}), db_bad(shape{4});
  CHECK_THROWS_AS(ops::conv2d_backward(xs, w2, dy, {}, &dx, &dw, &db_bad), shape_error);
  CHECK_NOTHROW(ops::conv2d_backward(xs, w2, dy, {}, &dx, &dw, &db));
}
