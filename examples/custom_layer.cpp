// Extending arcnet: a new layer (GeM pooling, examples/gem_pool.hpp) written from existing ops
// without any backward, composed into a small ResNet with the layer templates, and trained for
// a few steps on synthetic patterns.   Run: ./arcnet-custom-layer [steps]
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include <arcnet/arcnet.hpp>
#include <arcnet/models/resnet.hpp>
#include <arcnet/nn/linear.hpp>
#include <arcnet/nn/summary.hpp>
#include <arcnet/optim/sgd.hpp>

#include "gem_pool.hpp"

using namespace arcnet;

namespace example {
inline constexpr char gem[] = "gem";
inline constexpr char fc[] = "fc";

/// A two-stage ResNet for 1-channel 16x16 images whose pooling is the custom GeM layer.
struct gem_resnet : nn::sequential<nn::named<models::names::conv1, nn::conv2d<1, 16, 3>>,
                                   nn::named<models::names::bn1, nn::batch_norm<16>>, nn::relu,
                                   nn::named<models::names::layer1, models::stage<models::basic_block, 1, 16, 16, 1>>,
                                   nn::named<models::names::layer2, models::stage<models::basic_block, 1, 16, 32, 2>>,
                                   nn::named<gem, gem_pool>, nn::named<fc, nn::linear<32, 4>>> {};

/// Four classes of 16x16 patterns (horizontal stripes, vertical stripes, checkerboard, centre blob) plus noise.
void make_batch(generator& g, int n, tensor<float>& images, std::vector<std::int64_t>& labels) {
  images = tensor<float>(shape{n, 16, 16, 1});
  labels.assign(static_cast<size_t>(n), 0);
  for (int i = 0; i < n; ++i) {
    int c = static_cast<int>(g.below(4));
    labels[static_cast<size_t>(i)] = c;
    int phase = static_cast<int>(g.below(4));
    for (int y = 0; y < 16; ++y)
      for (int x = 0; x < 16; ++x) {
        float v = c == 0 ? float(((y + phase) / 2) % 2)
                : c == 1 ? float(((x + phase) / 2) % 2)
                : c == 2 ? float(((x + phase) / 2 + (y + phase) / 2) % 2)
                         : float((x - 8) * (x - 8) + (y - 8) * (y - 8) < 20);
        images.at(i, y, x, 0) = v + 0.3f * static_cast<float>(g.normal());
      }
  }
}
}  // namespace example

int main(int argc, char** argv) try {
  int steps = argc > 1 ? std::atoi(argv[1]) : 60;
  generator g(7);
  example::gem_resnet::module<float, cpu> net(g);
  std::cout << nn::summarize(net, shape{1, 16, 16, 1}).str();

  std::vector<std::pair<std::string, variable<float>>> params;
  net.for_each_parameter([&](std::string const& name, auto& p, nn::param_layout) { params.emplace_back(name, p); });
  optim::sgd<float> opt(params, optim::sgd_options{}.set_lr(0.05).set_momentum(0.9));

  tensor<float> images;
  std::vector<std::int64_t> labels;
  for (int step = 1; step <= steps; ++step) {
    example::make_batch(g, 32, images, labels);
    opt.zero_grad();
    auto loss = ops::cross_entropy(net.forward(variable<float>(images)), labels);
    loss.backward();
    opt.step();
    if (step % 10 == 0 || step == 1) std::printf("step %3d  loss %.4f\n", step, loss.value().item());
  }
  // Held-out accuracy, in eval mode.
  net.train(false);
  example::make_batch(g, 256, images, labels);
  autograd::no_grad guard;
  auto logits = net.forward(variable<float>(images)).value();
  int correct = 0;
  for (index_t i = 0; i < logits.size(0); ++i) {
    index_t best = 0;
    for (index_t c = 1; c < 4; ++c)
      if (logits.at(i, c) > logits.at(i, best)) best = c;
    correct += best == labels[static_cast<size_t>(i)];
  }
  float p = 0;
  net.for_each_parameter([&](std::string const& name, auto& v, nn::param_layout) {
    if (name == "gem.p") p = v.value()[0];
  });
  std::printf("held-out accuracy %.1f%% on 256 images; learned GeM p = %.3f\n", 100.0 * correct / 256, p);
  return 0;
} catch (arcnet::error const& e) {
  std::fprintf(stderr, "%s\n", e.what());
  return 1;
}
