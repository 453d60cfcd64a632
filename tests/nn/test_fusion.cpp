#include "test_util.hpp"

using namespace arcnet;

namespace fusion_test {
/// Largest |a - b| relative to the largest |b|.
inline double relative_difference(tensor<float, cpu> const& a, tensor<float, cpu> const& b) {
  REQUIRE(a.shape() == b.shape());
  double worst = 0, scale = 0;
  for (index_t i = 0; i < a.numel(); ++i) {
    worst = std::max(worst, double(std::abs(a.data()[i] - b.data()[i])));
    scale = std::max(scale, double(std::abs(b.data()[i])));
  }
  return worst / std::max(scale, 1e-30);
}
struct restore_fusion {
  bool was = nn::fusion::enabled();
  ~restore_fusion() { nn::fusion::enabled() = was; }
};
/// Running statistics and affine parameters away from their initial 0 / 1, so folding them matters.
template <class Net>
void randomise_batch_norms(Net& net, generator& g) {
  net.for_each_buffer([&](std::string const& name, tensor<float, cpu>& b) {
    if (name.find("running_mean") != std::string::npos) g.fill_uniform(b, -0.5, 0.5);
    if (name.find("running_var") != std::string::npos) g.fill_uniform(b, 0.5, 2.0);
  });
  net.for_each_parameter([&](std::string const& name, variable<float, cpu>& p, nn::param_layout) {
    if (name.find("bn") != std::string::npos || name.find("downsample.1") != std::string::npos) {
      tensor<float, cpu> shared = p.value();  // shares the parameter's storage
      g.fill_uniform(shared, name.find("weight") != std::string::npos ? 0.5 : -0.5, 1.5);
    }
  });
}
/// net's output with gradients off, fusion on or off.
template <class Net>
tensor<float, cpu> no_grad_forward(Net& net, variable<float> const& x, bool fuse) {
  nn::fusion::enabled() = fuse;
  autograd::no_grad guard;
  return net.forward(x).value();
}
}  // namespace fusion_test

TEST_CASE("fusion: conv2d_scale_shift_forward equals conv, per-channel affine and ReLU done apart",
          "[nn][fusion]") {
  using namespace fusion_test;
  generator g(21);
  for (bool relu : {false, true})
    for (int kernel : {1, 3}) {
      INFO("kernel " << kernel << " relu " << relu);
      auto x = randn<float>(shape{2, 9, 7, 5}, g);
      auto w = randn<float>(shape{kernel, kernel, 5, 6}, g);
      auto scale = tensor<float, cpu>::uninitialized(shape{6});
      auto shift = tensor<float, cpu>::uninitialized(shape{6});
      g.fill_uniform(scale, -2, 2);
      g.fill_uniform(shift, -1, 1);
      ops::conv2d_options o;
      o.pad_h = o.pad_w = kernel / 2;
      o.stride_h = o.stride_w = kernel == 3 ? 2 : 1;
      auto reference = ops::conv2d_forward(x, w, tensor<float, cpu>(), o);
      for (index_t i = 0; i < reference.numel(); ++i) {
        float v = reference.data()[i] * scale[i % 6] + shift[i % 6];
        reference.data()[i] = relu ? std::max(v, 0.f) : v;
      }
      auto fused = ops::conv2d_scale_shift_forward(x, w, scale, shift, o, relu);
      CHECK(relative_difference(fused, reference) < 1e-5);
      if (relu) CHECK(*std::min_element(fused.data(), fused.data() + fused.numel()) == 0.f);
    }
  auto x = randn<float>(shape{1, 4, 4, 5}, g);
  auto w = randn<float>(shape{1, 1, 5, 6}, g);
  CHECK_THROWS_WITH(ops::conv2d_scale_shift_forward(x, w, tensor<float, cpu>(), tensor<float, cpu>(), {}, false),
                    Catch::Contains("scale and shift must both be given"));
  CHECK_THROWS_WITH(ops::conv2d_scale_shift_forward(x, w, randn<float>(shape{5}, g), randn<float>(shape{6}, g), {}, false),
                    Catch::Contains("expected bias of shape (6,)"));
}

TEST_CASE("fusion: a ResNet in eval mode without gradients gives the layer-by-layer features, folded",
          "[nn][fusion]") {
  using namespace fusion_test;
  restore_fusion restore;
  generator g(22);
  models::resnet18::module<float, cpu> net(g);
  randomise_batch_norms(net, g);
  net.train(false);
  variable<float> x(randn<float>(shape{2, 40, 40, 3}, g));
  auto apart = no_grad_forward(net, x, false);
  auto fused = no_grad_forward(net, x, true);
  CHECK(relative_difference(fused, apart) < 1e-5);
  CHECK(relative_difference(fused, apart) > 0);  // the folded path really ran: rounding differs
  // With gradients on, nothing is fused: the graph-recording forward is the layer-by-layer one.
  auto recorded = net.forward(x).value();
  CHECK(relative_difference(recorded, apart) == 0);
  // In training mode batch statistics are used: no folding (only the exact add + ReLU fusion).
  net.train(true);
  auto train_apart = no_grad_forward(net, x, false);
  auto train_fused = no_grad_forward(net, x, true);
  CHECK(relative_difference(train_fused, train_apart) == 0);
}
