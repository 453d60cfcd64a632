// End to end against PyTorch: tests/fixtures/arcface_parity.py builds torchvision's ResNet-50
// and an ArcFace head, and writes its weights and reference outputs; this test loads them,
// runs the same batch in double precision and compares. Hidden ([.parity]): the ctest test
// `models.torch_parity` runs it after the script, and reports it skipped without Python.
#include "test_util.hpp"

#include <cstdio>
#include <cstdlib>

#include <arcnet/io/checkpoint.hpp>
#include <arcnet/models/resnet.hpp>
#include <arcnet/models/retriever.hpp>

using namespace arcnet;

namespace parity_test {
tensor<double, cpu> as_double(tensor<float, cpu> const& t) { return t.cast<double>(); }

void require_close(char const* what, tensor<double, cpu> const& ours, tensor<float, cpu> const& ref_f, double tol = 1e-4) {
  auto ref = as_double(ref_f);
  REQUIRE(ours.numel() == ref.numel());
  double scale = 0;
  for (index_t i = 0; i < ref.numel(); ++i) scale = std::max(scale, std::abs(ref[i]));
  double worst = 0;
  for (index_t i = 0; i < ref.numel(); ++i)
    worst = std::max(worst, std::abs(ours[i] - ref[i]) / std::max(std::abs(ref[i]), 1e-3 * scale));
  std::printf("parity %-28s max relative difference %.3g over %lld values\n", what, worst,
              static_cast<long long>(ref.numel()));
  INFO(what << ": max relative difference " << worst);
  CHECK(worst < tol);
}
}  // namespace parity_test

TEST_CASE("parity: ResNet-50 + ArcFace (k = 3, per-class margins) matches PyTorch", "[.parity]") {
  char const* dir_env = std::getenv("ARCNET_PARITY_DIR");
  REQUIRE(dir_env != nullptr);
  std::string dir = dir_env;

  models::arcface_options head;
  head.num_classes = 40;
  head.num_subcenters = 3;
  head.scale = 64;
  head.margins = models::read_margins(dir + "/margins.txt");
  using model_t = models::image_retriever<models::resnet50>;
  model_t::module<double, cpu> model(head);
  auto loaded = io::load_checkpoint(dir + "/model.pth", model, /*strict=*/true);
  CHECK(loaded.ok());
  CHECK(loaded.loaded == 159 + 159 + 1);  // backbone parameters, batch-norm buffers, the head
  io::save_checkpoint(dir + "/arcnet.safetensors", model);        // checked by the script, in PyTorch

  auto ref = io::load_pth(dir + "/reference.pth");
  variable<double> x(parity_test::as_double(ref.at("input_nhwc")));
  std::vector<std::int64_t> target;
  for (index_t i = 0; i < ref.at("target").numel(); ++i) target.push_back(std::llround(ref.at("target")[i]));

  model.train(true);
  auto feats = model.features(x);
  auto logits = model.head().forward(feats, target);
  auto loss = ops::cross_entropy(logits, target);
  loss.backward();
  parity_test::require_close("train embeddings", ops::l2_normalize(feats, 1).value(), ref.at("train_embeddings"));
  parity_test::require_close("train logits", logits.value(), ref.at("train_logits"));
  parity_test::require_close("loss", loss.value(), ref.at("loss"));

  std::map<std::string, tensor<double, cpu>> grads;
  model.for_each_parameter([&](std::string const& n, auto& p, nn::param_layout l) {
    if (!p.grad().defined()) return;
    grads[n] = l == nn::param_layout::conv_hwio ? ops::conv_weight_to_oihw(p.grad()) : p.grad();
  });
  parity_test::require_close("grad conv1", grads.at("backbone.conv1.weight"), ref.at("grad_conv1"));
  parity_test::require_close("grad layer3.2.bn2.weight", grads.at("backbone.layer3.2.bn2.weight"),
                             ref.at("grad_layer3_2_bn2_weight"));
  parity_test::require_close("grad layer3.2.bn2.bias", grads.at("backbone.layer3.2.bn2.bias"),
                             ref.at("grad_layer3_2_bn2_bias"));
  parity_test::require_close("grad layer1.0.downsample.0", grads.at("backbone.layer1.0.downsample.0.weight"),
                             ref.at("grad_layer1_0_downsample_0"));
  parity_test::require_close("grad head", grads.at("head.norm_product.weight"), ref.at("grad_head"));

  model.train(false);
  autograd::no_grad guard;
  auto emb = model.extract_feat(x.value());
  parity_test::require_close("eval embeddings", emb, ref.at("eval_embeddings"));
  parity_test::require_close("eval logits", model.logits(x).value(), ref.at("eval_logits"));
}
