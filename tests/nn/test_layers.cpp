#include "test_util.hpp"

#include <arcnet/nn/batch_norm.hpp>
#include <arcnet/nn/conv2d.hpp>
#include <arcnet/nn/linear.hpp>
#include <arcnet/nn/residual.hpp>
#include <arcnet/nn/sequential.hpp>
#include <arcnet/nn/stateless.hpp>
#include <arcnet/nn/summary.hpp>

using namespace arcnet;

namespace layers_test {
inline constexpr char stem[] = "stem";
inline constexpr char head[] = "head";

template <class Module>
std::vector<std::string> parameter_names(Module& m) {
  std::vector<std::string> n;
  m.for_each_parameter([&](std::string const& s, auto&, nn::param_layout) { n.push_back(s); });
  return n;
}
template <class Module>
std::vector<variable<double, cpu>> parameters(Module& m) {
  std::vector<variable<double, cpu>> p;
  m.for_each_parameter([&](std::string const&, auto& v, nn::param_layout) { p.push_back(v); });
  return p;
}
}  // namespace layers_test

TEST_CASE("nn::conv2d: shape, parameters, names, gradients", "[nn]") {
  generator g(1);
  nn::conv2d<3, 4, 3, 2, -1, true>::module<double, cpu> conv(g);
  auto x = testing::random_variable(shape{2, 7, 6, 3}, g);
  CHECK(conv.forward(x).shape() == shape{2, 4, 3, 4});
  CHECK(nn::count_parameters(conv) == 3 * 3 * 3 * 4 + 4);
  CHECK(layers_test::parameter_names(conv) == std::vector<std::string>{"weight", "bias"});
  auto params = layers_test::parameters(conv);
  params.push_back(x);
  testing::require_gradients_match([&] { return conv.forward(x); }, params);
  CHECK_THROWS_WITH(conv.forward(testing::random_variable(shape{2, 7, 6, 5}, g)),
                    Catch::Contains("expected 3 input channels, got 5"));
}

TEST_CASE("nn::conv2d: torchvision's initialisation, kaiming normal with fan_out", "[nn]") {
  generator g(2);
  nn::conv2d<64, 128, 3>::module<double, cpu> conv(g);
  auto const& w = conv.weight().value();
  double s = 0;
  for (index_t i = 0; i < w.numel(); ++i) s += w[i] * w[i];
  double std = std::sqrt(s / w.numel());
  CHECK(std == Approx(std::sqrt(2.0 / (128 * 9))).epsilon(0.02));
}

TEST_CASE("nn::batch_norm: train and eval modes, buffers, gradients", "[nn]") {
  generator g(3);
  nn::batch_norm<3>::module<double, cpu> bn(g);
  auto x = testing::random_variable(shape{4, 3, 2, 3}, g);
  auto y = bn.forward(x).value();
  // Training mode: each channel of the output has mean 0 and (biased) variance ~1.
  for (int c = 0; c < 3; ++c) {
    double m = 0, v = 0;
    for (index_t i = 0; i < 24; ++i) m += y[i * 3 + c];
    m /= 24;
    for (index_t i = 0; i < 24; ++i) v += (y[i * 3 + c] - m) * (y[i * 3 + c] - m);
    CHECK(std::abs(m) < 1e-12);
    CHECK(v / 24 == Approx(1.0).epsilon(1e-4));
  }
  std::vector<std::string> buffers;
  bn.for_each_buffer([&](std::string const& n, auto&) { buffers.push_back(n); });
  CHECK(buffers == std::vector<std::string>{"running_mean", "running_var", "num_batches_tracked"});
  CHECK(bn.running_mean()[0] != 0.0);  // updated by the training step
  bn.train(false);
  auto params = layers_test::parameters(bn);
  params.push_back(x);
  testing::require_gradients_match([&] { return bn.forward(x); }, params);
  bn.train(true);
  testing::require_gradients_match([&] { return bn.forward(x); }, params);
}

TEST_CASE("nn::linear: PyTorch layout and initialisation bounds", "[nn]") {
  generator g(4);
  nn::linear<5, 3>::module<double, cpu> fc(g);
  CHECK(fc.weight().shape() == shape{3, 5});
  double bound = 1 / std::sqrt(5.0);
  for (index_t i = 0; i < 15; ++i) CHECK(std::abs(fc.weight().value()[i]) <= bound);
  auto x = testing::random_variable(shape{4, 5}, g);
  auto params = layers_test::parameters(fc);
  params.push_back(x);
  testing::require_gradients_match([&] { return fc.forward(x); }, params);
}

TEST_CASE("nn: stateless layers keep or reduce shapes", "[nn]") {
  generator g(5);
  auto x = testing::random_variable(shape{2, 7, 7, 3}, g);
  CHECK(nn::max_pool<3, 2, 1>::module<double, cpu>().forward(x).shape() == shape{2, 4, 4, 3});
  CHECK(nn::avg_pool<2>::module<double, cpu>().forward(x).shape() == shape{2, 3, 3, 3});
  CHECK(nn::global_avg_pool::module<double, cpu>().forward(x).shape() == shape{2, 3});
  CHECK(nn::flatten::module<double, cpu>().forward(x).shape() == shape{2, 147});
  CHECK(nn::identity::module<double, cpu>().forward(x).value().shares_storage_with(x.value()));
  nn::flatten::module<double, cpu> flat;
  testing::require_gradients_match([&] { return flat.forward(x); }, {x});
}

TEST_CASE("nn::sequential and nn::residual: composition, names, gradients", "[nn]") {
  using block = nn::residual<nn::sequential<nn::conv2d<4, 4, 3>, nn::batch_norm<4>, nn::relu, nn::conv2d<4, 4, 3>,
                                            nn::batch_norm<4>>>;
  using proj = nn::residual<nn::sequential<nn::conv2d<4, 6, 3, 2>, nn::batch_norm<6>>, nn::projection<4, 6, 2>>;
  using net = nn::sequential<nn::named<layers_test::stem, nn::conv2d<2, 4, 3>>, block, proj, nn::global_avg_pool,
                             nn::named<layers_test::head, nn::linear<6, 3>>>;
  static_assert(net::in_channels == 2 && net::out_channels == 3, "channels flow through the composition");
  generator g(6);
  net::module<double, cpu> m(g);
  auto names = layers_test::parameter_names(m);
  CHECK(names.front() == "stem.weight");
  CHECK(std::find(names.begin(), names.end(), "1.0.weight") != names.end());      // block body, positional
  CHECK(std::find(names.begin(), names.end(), "2.downsample.0.weight") != names.end());
  CHECK(names.back() == "head.bias");
  auto s = nn::summarize(m, shape{1, 6, 6, 2});
  CHECK(s.output == shape{1, 3});
  CHECK(s.total_params == nn::count_parameters(m));
  auto x = testing::random_variable(shape{2, 6, 6, 2}, g);
  m.train(false);  // eval mode: batch norm is affine, so every parameter's gradient is checked smoothly
  auto params = layers_test::parameters(m);
  params.push_back(x);
  testing::require_gradients_match([&] { return m.forward(x); }, params);
}
