#include "test_util.hpp"

#include <arcnet/models/resnet.hpp>
#include <arcnet/nn/summary.hpp>

using namespace arcnet;

TEST_CASE("resnet: parameter counts equal torchvision's (without fc)", "[models]") {
  generator g(1);
  models::resnet50::module<float, cpu> r50(g);
  CHECK(nn::count_parameters(r50) == 23508032);
  models::resnet18::module<float, cpu> r18(g);
  CHECK(nn::count_parameters(r18) == 11176512);
  models::resnet34::module<float, cpu> r34(g);
  CHECK(nn::count_parameters(r34) == 21284672);
  CHECK(models::resnet50::feature_dim == 2048);
  CHECK(models::resnet18::feature_dim == 512);
}

TEST_CASE("resnet: parameter and buffer names follow torchvision", "[models]") {
  models::resnet50::module<float, cpu> net;
  std::vector<std::string> names;
  net.for_each_parameter([&](std::string const& n, auto&, nn::param_layout) { names.push_back(n); });
  REQUIRE(names.size() == 159);  // torchvision has 161 with fc.weight and fc.bias
  CHECK(names.front() == "conv1.weight");
  CHECK(names[1] == "bn1.weight");
  CHECK(std::find(names.begin(), names.end(), "layer1.0.downsample.0.weight") != names.end());
  CHECK(std::find(names.begin(), names.end(), "layer2.0.downsample.1.bias") != names.end());
  CHECK(std::find(names.begin(), names.end(), "layer4.2.bn3.weight") != names.end());
  CHECK(std::find(names.begin(), names.end(), "layer1.1.downsample.0.weight") == names.end());
  std::vector<std::string> buffers;
  net.for_each_buffer([&](std::string const& n, auto&) { buffers.push_back(n); });
  CHECK(buffers.size() == 53 * 3);
  CHECK(buffers[0] == "bn1.running_mean");
  CHECK(buffers[2] == "bn1.num_batches_tracked");
}

TEST_CASE("resnet: the counter reports ResNet-50's MACs at 448x448 and 224x224", "[models]") {
  models::resnet50::module<float, cpu> net;
  auto s448 = nn::summarize(net, shape{1, 448, 448, 3});
  CHECK(s448.output == shape{1, 2048});
  CHECK(s448.total_params == 23508032);
  INFO(s448.str());
  double head = 2048.0 * 3997;  // the ArcFace head of the In-Shop model
  CHECK(s448.total_macs + head > 16.40e9);
  CHECK(s448.total_macs + head < 16.60e9);
  auto s224 = nn::summarize(net, shape{1, 224, 224, 3});
  CHECK(s224.total_macs == Approx(s448.total_macs / 4).epsilon(0.01));
  // conv1 alone: 112*112*64 outputs x 7*7*3 MACs
  REQUIRE(!s224.layers.empty());
  CHECK(s224.layers[0].name == "conv1");
  CHECK(s224.layers[0].macs == Approx(112.0 * 112 * 64 * 147));
  CHECK_THROWS_AS(nn::summarize(net, shape{1, 224, 224, 1}), shape_error);
}

TEST_CASE("resnet: zero_init_residual zeroes the last batch norm of every block", "[models]") {
  models::resnet18::module<float, cpu> net;
  models::zero_init_residual<models::resnet18>(net);
  int zeroed = 0;
  net.for_each_parameter([&](std::string const& name, auto& p, nn::param_layout) {
    bool all_zero = true;
    for (index_t i = 0; i < p.numel(); ++i) all_zero = all_zero && p.value()[i] == 0.0f;
    if (all_zero && name.find("weight") != std::string::npos) ++zeroed;
  });
  CHECK(zeroed == 8);  // 8 basic blocks, bn2.weight each
}

TEST_CASE("resnet: ResNet-50 trains one step on a 2x32x32x3 batch", "[models][slow]") {
  generator g(3);
  models::resnet50::module<float, cpu> net(g);
  variable<float> x(randn<float>(shape{2, 32, 32, 3}, g));
  auto feat = net.forward(x);
  REQUIRE(feat.shape() == shape{2, 2048});
  auto loss = ops::mean(feat * feat);
  loss.backward();
  index_t with_grad = 0, total = 0;
  double norm = 0;
  net.for_each_parameter([&](std::string const&, auto& p, nn::param_layout) {
    ++total;
    if (!p.grad().defined()) return;
    ++with_grad;
    for (index_t i = 0; i < p.numel(); ++i) norm += double(p.grad()[i]) * p.grad()[i];
  });
  CHECK(with_grad == total);
  CHECK(norm > 0);
  CHECK(std::isfinite(norm));
}
