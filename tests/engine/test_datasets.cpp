// image_set: narrowing to classes (the open-set protocol), truncation, and the loader over it.
#include <catch2/catch.hpp>

#include <arcnet/data/encode.hpp>
#include <arcnet/engine/datasets.hpp>

#include "test_util.hpp"

using namespace arcnet;

namespace {
/// Six 2x2 grey-as-RGB images whose pixels hold their index; labels 0 1 2 0 1 2.
engine::image_set six() {
  auto read = [](index_t i) {
    data::image img;
    img.width = img.height = 2;
    img.pixels.assign(12, static_cast<std::uint8_t>(i));
    return img;
  };
  return engine::image_set("six", read, {0, 1, 2, 0, 1, 2}, {}, 3);
}
}  // namespace

TEST_CASE("image_set: only_classes keeps or renumbers labels", "[engine]") {
  auto s = six();
  auto kept = s.only_classes({2, 0}, false, "eval.classes");
  CHECK(kept.size() == 4);
  CHECK(kept.labels() == std::vector<std::int64_t>{0, 2, 0, 2});
  CHECK(kept.num_classes() == 3);
  CHECK(kept.image(1).pixels[0] == 2);  // the second kept image is base image 2
  auto renum = s.only_classes({1, 2}, true, "data.train-classes");
  CHECK(renum.labels() == std::vector<std::int64_t>{0, 1, 0, 1});
  CHECK(renum.num_classes() == 2);
  CHECK(renum.image(2).pixels[0] == 4);
  CHECK(renum.class_counts() == std::vector<std::int64_t>{2, 2});
  CHECK_THROWS_MATCHES(s.only_classes({7}, true, "data.train-classes"), config_error,
                       testing::message_contains("data.train-classes"));
  CHECK(s.first(2).size() == 2);
  CHECK(s.first(0).size() == 6);
  CHECK_THROWS_AS(s.image(6), error);
}

TEST_CASE("image_set: the loader yields the set's images and labels", "[engine]") {
  auto s = six().only_classes({1}, true, "k");
  data::loader_options lo;
  lo.batch_size = 4;
  lo.workers = 1;
  auto loader = s.loader(data::pipeline("normalize=none"), lo);
  loader->begin_epoch(0);
  data::batch b;
  REQUIRE(loader->next(b));
  REQUIRE(b.size() == 2);
  CHECK(b.labels == std::vector<std::int64_t>{0, 0});
  CHECK(b.images.shape() == shape{2, 2, 2, 3});
  CHECK(b.images[0] == 1.0f);   // base image 1
  CHECK(b.images[12] == 4.0f);  // base image 4
  CHECK_FALSE(loader->next(b));
}

TEST_CASE("open_splits: data.kind = folder trains on some people and evaluates on the others", "[engine]") {
  namespace fs = std::filesystem;
  auto root = testing::scratch_dir("engine_folder_kind");
  // ROOT/<person>/<image>: s1 (2 images), s2 (3), s10 (1); sorted names s1, s10, s2 -> labels 0, 1, 2.
  std::vector<std::pair<std::string, int>> people{{"s1", 2}, {"s2", 3}, {"s10", 1}};
  for (auto const& [name, n] : people) {
    fs::create_directories(root / name);
    for (int i = 1; i <= n; ++i) {
      auto img = data::make_image(3, 2, 1);
      img.pixels.assign(6, static_cast<std::uint8_t>(i));
      auto bytes = data::encode_pnm(img);
      testing::write_bytes(root / name / (std::to_string(i) + ".pgm"), std::string(bytes.begin(), bytes.end()));
    }
  }
  engine::data_options d;
  d.kind = "folder";
  d.root = root.string();
  d.train_classes = "0-1";
  engine::eval_options e;
  e.protocol = "leave-one-out";
  e.classes = "2";
  auto s = engine::open_splits(d, e, true, true);
  CHECK(s.train.size() == 3);  // s1 and s10
  CHECK(s.train.labels() == std::vector<std::int64_t>{0, 0, 1});
  CHECK(s.train.num_classes() == 2);
  CHECK(s.query.size() == 3);  // s2, never trained on
  CHECK(s.query.labels() == std::vector<std::int64_t>{2, 2, 2});
  CHECK(s.leave_one_out);
  CHECK(s.gallery.size() == 3);
  CHECK(fs::path(s.query.path(0)).parent_path().filename() == "s2");
  CHECK(s.query.image(0).width == 3);
  e.protocol = "gallery";
  CHECK_THROWS_MATCHES(engine::open_splits(d, e, false, true), config_error,
                       testing::message_contains("use leave-one-out"));
  d.root = (root / "missing").string();
  CHECK_THROWS_AS(engine::open_splits(d, e, true, false), io_error);
}
