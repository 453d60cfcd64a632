#include "test_util.hpp"

#include <cstdio>

#include <arcnet/io/checkpoint.hpp>
#include <arcnet/models/resnet.hpp>
#include <arcnet/models/retriever.hpp>

using namespace arcnet;

namespace checkpoint_test {
using model = models::image_retriever<models::resnet18>;
models::arcface_options head(int classes = 5) {
  models::arcface_options o;
  o.num_classes = classes;
  o.num_subcenters = 2;
  return o;
}
}  // namespace checkpoint_test

TEST_CASE("checkpoint: arcnet -> safetensors -> arcnet is bit-exact, in PyTorch layouts", "[io]") {
  generator g1(1), g2(2);
  checkpoint_test::model::module<float, cpu> a(checkpoint_test::head(), g1), b(checkpoint_test::head(), g2);
  a.train(true);
  variable<float> x(randn<float>(shape{2, 32, 32, 3}, g1));
  (void)a.features(x);  // moves the batch-norm running statistics away from their initial values
  auto sd = io::get_state_dict(a);
  CHECK(sd.at("backbone.conv1.weight").shape() == shape{64, 3, 7, 7});  // OIHW on disk
  CHECK(sd.at("head.norm_product.weight").shape() == shape{10, 512});
  CHECK(sd.count("backbone.layer2.0.downsample.1.running_var") == 1);
  std::string path = "checkpoint_test_roundtrip.safetensors";
  io::save_checkpoint(path, a, {{"arch", "resnet18"}});
  auto r = io::load_checkpoint(path, b);
  CHECK(r.ok());
  CHECK(r.loaded == sd.size());
  auto sb = io::get_state_dict(b);
  REQUIRE(sb.size() == sd.size());
  for (auto const& [k, v] : sd) {
    INFO(k);
    REQUIRE(sb.at(k).shape() == v.shape());
    CHECK(std::memcmp(sb.at(k).data(), v.data(), sizeof(float) * v.numel()) == 0);
  }
  a.train(false);
  b.train(false);
  auto ea = a.extract_feat(x.value()), eb = b.extract_feat(x.value());
  CHECK(std::memcmp(ea.data(), eb.data(), sizeof(float) * ea.numel()) == 0);
  std::remove(path.c_str());
}

TEST_CASE("checkpoint: strict loading reports every problem at once and changes nothing", "[io]") {
  checkpoint_test::model::module<float, cpu> m(checkpoint_test::head());
  auto sd = io::get_state_dict(m);
  auto before = sd.at("backbone.bn1.weight").clone();
  sd.erase("backbone.layer1.0.conv1.weight");
  sd["backbone.fc.weight"] = tensor<float>(shape{3, 3});
  sd["head.norm_product.weight"] = tensor<float>(shape{7, 512});
  sd["backbone.bn1.weight"].fill(5.0f);
  try {
    io::load_state_dict(m, sd, true);
    FAIL("expected an io_error");
  } catch (io_error const& e) {
    std::string msg = e.what();
    CHECK_THAT(msg, Catch::Contains("1 missing keys") && Catch::Contains("backbone.layer1.0.conv1.weight"));
    CHECK_THAT(msg, Catch::Contains("1 unexpected keys") && Catch::Contains("backbone.fc.weight"));
    CHECK_THAT(msg, Catch::Contains("head.norm_product.weight: checkpoint (7, 512) vs model (10, 512)"));
  }
  CHECK(m.backbone().get<1>().weight().value()[0] == before[0]);  // untouched
  auto r = io::load_state_dict(m, sd, false);  // lenient: loads the rest, reports the problems
  CHECK(r.missing.size() == 1);
  CHECK(r.unexpected.size() == 1);
  CHECK(r.mismatched.size() == 1);
  CHECK(m.backbone().get<1>().weight().value()[0] == 5.0f);
}

TEST_CASE("checkpoint: torchvision and mmpretrain key names map onto ours", "[io]") {
  checkpoint_test::model::module<float, cpu> m(checkpoint_test::head());
  auto names = io::state_names(m);
  auto ours = io::get_state_dict(m);
  io::state_dict torchvision, retriever, dataparallel;
  for (auto const& [k, v] : ours) {
    if (k.rfind("backbone.", 0) == 0) torchvision[k.substr(9)] = v;
    retriever[k.rfind("backbone.", 0) == 0 ? "image_encoder.0." + k.substr(9) : k] = v;
    dataparallel["module." + k] = v;
  }
  torchvision["fc.weight"] = tensor<float>(shape{1000, 512});
  auto t = io::adapt_keys(torchvision, names);
  CHECK(t.count("backbone.layer4.1.bn2.running_mean") == 1);
  auto r = io::load_state_dict(m, t, false);  // an ImageNet backbone: the head stays as it is
  CHECK(r.missing == std::vector<std::string>{"head.norm_product.weight"});
  CHECK(r.unexpected == std::vector<std::string>{"backbone.fc.weight"});
  CHECK(io::load_state_dict(m, io::adapt_keys(retriever, names), true).ok());
  CHECK(io::load_state_dict(m, io::adapt_keys(dataparallel, names), true).ok());
}

TEST_CASE("checkpoint: a failed save keeps the existing file intact", "[io]") {
  checkpoint_test::model::module<float, cpu> m(checkpoint_test::head());
  std::string path = "checkpoint_test_keep.safetensors";
  io::save_checkpoint(path, m);
  auto before = testing::read_bytes(path);
  REQUIRE(before.size() > 1000);
  CHECK_THROWS_AS(io::save_checkpoint("no/such/dir/model.safetensors", m), io_error);
  checkpoint_test::model::module<float, cpu> other(checkpoint_test::head(7));
  CHECK_THROWS_AS(io::load_checkpoint(path, other), io_error);  // shapes do not fit: nothing written
  CHECK(testing::read_bytes(path) == before);
  std::remove(path.c_str());
}
