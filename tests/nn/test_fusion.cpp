#include "test_util.hpp"

#include <set>

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
  // With gradients on nothing is folded: the graph-recording forward fuses only exactly (batch
  // norm + ReLU, batch norm + add + ReLU), so it is the layer-by-layer one to the bit.
  auto recorded = net.forward(x).value();
  CHECK(relative_difference(recorded, apart) == 0);
  // In training mode batch statistics are used: no folding (only the exact add + ReLU fusion).
  net.train(true);
  auto train_apart = no_grad_forward(net, x, false);
  auto train_fused = no_grad_forward(net, x, true);
  CHECK(relative_difference(train_fused, train_apart) == 0);
}

namespace fusion_test {
/// One training step's loss, output, parameter gradients and running statistics of a fresh
/// resnet18 (same seed every call), with fusion on or off.
struct train_step_result {
  std::vector<float> out;
  std::vector<std::vector<float>> grads, buffers;
  std::size_t fused_nodes = 0, fused_add_nodes = 0;
};
inline train_step_result resnet_train_step(bool fuse) {
  nn::fusion::enabled() = fuse;
  generator g(23);
  models::resnet18::module<float, cpu> net(g);
  randomise_batch_norms(net, g);
  net.train(true);
  variable<float> x(randn<float>(shape{2, 32, 32, 3}, g));
  auto y = net.forward(x);
  train_step_result r;
  // Walk the tape from the output and count the fused batch norm + ReLU nodes.
  std::vector<autograd::node*> todo{y.grad_fn().get()};
  std::set<autograd::node*> seen;
  while (!todo.empty()) {
    auto* n = todo.back();
    todo.pop_back();
    if (!n || !seen.insert(n).second) continue;
    if (std::string(n->name) == "batch_norm_relu") ++r.fused_nodes;
    if (std::string(n->name) == "batch_norm_add_relu") ++r.fused_add_nodes;
    for (auto const& in : n->inputs) todo.push_back(in->grad_fn.get());
  }
  ops::sum(ops::mul(y, variable<float>(randn<float>(y.shape(), g)))).backward();
  r.out = y.value().to_vector();
  net.for_each_parameter([&](std::string const&, variable<float, cpu>& p, nn::param_layout) {
    r.grads.push_back(p.grad().to_vector());
  });
  net.for_each_buffer([&](std::string const&, tensor<float, cpu>& b) { r.buffers.push_back(b.to_vector()); });
  return r;
}
}  // namespace fusion_test

TEST_CASE("fusion: training with batch norm + (add +) ReLU fused gives exactly the layer-by-layer step",
          "[nn][fusion]") {
  using namespace fusion_test;
  restore_fusion restore;
  auto apart = resnet_train_step(false);
  auto fused = resnet_train_step(true);
  CHECK(apart.fused_nodes + apart.fused_add_nodes == 0);
  // resnet18: the stem's bn1 + relu and each of the 8 basic blocks' bn1 + relu, and each block's
  // bn2 + add + relu.
  CHECK(fused.fused_nodes == 9);
  CHECK(fused.fused_add_nodes == 8);
  CHECK(fused.out == apart.out);
  REQUIRE(fused.grads.size() == apart.grads.size());
  for (std::size_t i = 0; i < fused.grads.size(); ++i) CHECK(fused.grads[i] == apart.grads[i]);
  CHECK(fused.buffers == apart.buffers);  // running statistics and num_batches_tracked
}

TEST_CASE("fusion: a batch norm under a train-mode override is not fused, and its ReLU still follows", "[nn][fusion]") {
  using namespace fusion_test;
  restore_fusion restore;
  nn::fusion::enabled() = true;
  generator g(24);
  using block = nn::sequential<nn::conv2d<3, 4, 3, 1, 1>, nn::batch_norm<4>, nn::relu>;
  block::module<float, cpu> net(g);
  variable<float> x(randn<float>(shape{2, 5, 5, 3}, g));
  int calls = 0;
  bool saw_relu_flag = false;
  nn::batch_norm_train_override<float, cpu> over(
      [&](variable<float> const& in, variable<float> const& w, variable<float> const& b, tensor<float, cpu>& rm,
          tensor<float, cpu>& rv, ops::batch_norm_options o) {
        ++calls;
        saw_relu_flag = saw_relu_flag || o.relu;
        o.relu = false;
        return ops::batch_norm(in, w, b, rm, rv, o);
      });
  auto y = net.forward(x);
  CHECK(calls == 1);
  CHECK_FALSE(saw_relu_flag);  // an override is handed the plain batch norm
  CHECK(std::string(y.grad_fn()->name) == "relu");
  index_t negative = 0;
  for (float v : y.value().to_vector()) negative += v < 0;
  CHECK(negative == 0);
}
