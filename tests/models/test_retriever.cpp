#include "test_util.hpp"

#include <arcnet/models/resnet.hpp>
#include <arcnet/models/retriever.hpp>

using namespace arcnet;

TEST_CASE("image_retriever: ResNet-50 + ArcFace has the published 31,693,888 parameters", "[models]") {
  models::arcface_options head;
  head.num_classes = 3997;
  models::image_retriever<models::resnet50>::module<float, cpu> m(head);
  CHECK(nn::count_parameters(m) == 31693888);
  CHECK(m.head().weight().shape() == shape{3997, 2048});
}

TEST_CASE("image_retriever: embeddings are unit length - an embedding neck sets their width", "[models]") {
  generator g(9);
  models::arcface_options head;
  head.num_classes = 6;
  head.num_subcenters = 3;
  using with_neck = models::image_retriever<models::resnet18, models::embedding_neck<512, 128>>;
  static_assert(with_neck::embedding_dim == 128, "the neck's output width");
  with_neck::module<float, cpu> m(head, g);
  std::vector<std::string> names;
  m.for_each_parameter([&](std::string const& n, auto&, nn::param_layout) { names.push_back(n); });
  CHECK(std::find(names.begin(), names.end(), "neck.fc.weight") != names.end());
  CHECK(std::find(names.begin(), names.end(), "neck.bn.bias") != names.end());
  CHECK(names.back() == "head.norm_product.weight");
  CHECK(m.head().weight().shape() == shape{18, 128});

  auto x = randn<float>(shape{3, 32, 32, 3}, g);
  m.train(false);
  auto e = m.extract_feat(x);
  REQUIRE(e.shape() == shape{3, 128});
  for (index_t i = 0; i < 3; ++i) {
    double n = 0;
    for (index_t j = 0; j < 128; ++j) n += double(e.at(i, j)) * e.at(i, j);
    CHECK(n == Approx(1.0).epsilon(1e-5));
  }
  auto logits = m.logits(variable<float>(x));
  CHECK(logits.shape() == shape{3, 6});
  for (index_t i = 0; i < logits.numel(); ++i) CHECK(std::abs(logits.value()[i]) <= 64.0f + 1e-3f);

  m.train(true);
  auto loss = m.loss(variable<float>(x), {0, 5, 2});
  CHECK(std::isfinite(loss.value().item()));
  loss.backward();
  CHECK(m.head().weight().grad().defined());
  CHECK_THROWS_WITH(m.loss(variable<float>(x), {0, 6, 2}), Catch::Contains("out of range"));
}
