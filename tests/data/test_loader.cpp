// The threaded loader: deterministic batches for any worker count, order, drop_last, bad
// samples (skipped or raised), a bounded window, clean shutdown mid-epoch.
#include "test_util.hpp"

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include <arcnet/data/dataset.hpp>
#include <arcnet/data/encode.hpp>
#include <arcnet/data/idx.hpp>
#include <arcnet/data/loader.hpp>
#include <arcnet/data/sampler.hpp>
#include <arcnet/data/transforms.hpp>

namespace loader_test {

namespace fs = std::filesystem;
using namespace arcnet;
using clock_type = std::chrono::steady_clock;

/// Sample i under seed s: a (2, 3, 1) tensor whose values tell i and s apart; label i % 4.
/// Sleeps a little, differently per sample, so that workers finish out of order.
inline data::loaded_sample synthetic(index_t i, std::uint64_t seed) {
  std::this_thread::sleep_for(std::chrono::microseconds(50 * ((i * 7) % 4)));
  auto t = tensor<float, cpu>::uninitialized(shape{2, 3, 1});
  for (index_t k = 0; k < 6; ++k) t[k] = static_cast<float>(i * 10 + k) + static_cast<float>(seed % 1000) * 1e-3f;
  return {t, i % 4};
}

/// All batches of epoch e.
inline std::vector<data::batch> run_epoch(data::loader& ld, std::uint64_t e) {
  ld.begin_epoch(e);
  std::vector<data::batch> out;
  for (data::batch b; ld.next(b);) out.push_back(b);
  return out;
}

inline void require_same_batches(std::vector<data::batch> const& a, std::vector<data::batch> const& b) {
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    CHECK(a[i].number == b[i].number);
    CHECK(a[i].indices == b[i].indices);
    CHECK(a[i].labels == b[i].labels);
    REQUIRE(a[i].images.shape() == b[i].images.shape());
    CHECK(a[i].images.to_vector() == b[i].images.to_vector());  // bit for bit
  }
}

/// Waits (up to 5 s) until pred() holds.
template <class Pred>
bool eventually(Pred pred) {
  auto const deadline = clock_type::now() + std::chrono::seconds(5);
  while (!pred()) {
    if (clock_type::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

struct temp_dir {
  fs::path path;
  temp_dir() {
    static std::atomic<int> counter{0};
    path = fs::temp_directory_path() / ("arcnet_loader_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

/// root/<class>/<k>.png for 3 classes x 3 images of 6x5 pixels with distinct gradients.
inline void write_png_folder(fs::path const& root) {
  for (int c = 0; c < 3; ++c) {
    fs::create_directories(root / ("class" + std::to_string(c)));
    for (int k = 0; k < 3; ++k) {
      auto img = data::make_image(6, 5, 3);
      for (int y = 0; y < 5; ++y)
        for (int x = 0; x < 6; ++x)
          for (int ch = 0; ch < 3; ++ch) img.at(y, x, ch) = static_cast<std::uint8_t>(40 * c + 10 * k + 6 * y + x + ch);
      data::write_png((root / ("class" + std::to_string(c)) / (std::to_string(k) + ".png")).string(), img);
    }
  }
}

}  // namespace loader_test

TEST_CASE("loader: the same batches, in order, for 0, 1 and 3 workers", "[data]") {
  using namespace loader_test;
  data::loader_options o;
  o.batch_size = 5;
  o.shuffle = true;
  o.seed = 9;
  o.prefetch = 2;
  std::vector<std::vector<data::batch>> runs;
  for (int workers : {0, 1, 3}) {
    o.workers = workers;
    data::loader ld(23, synthetic, o);
    for (std::uint64_t e : {0, 1}) {
      auto batches = run_epoch(ld, e);
      REQUIRE(batches.size() == 5);  // 5 + 5 + 5 + 5 + 3
      CHECK(ld.num_batches() == 5);
      CHECK(batches.back().size() == 3);
      // In order: the concatenated indices are the epoch's shuffle, each image its own sample's.
      std::vector<index_t> indices;
      for (auto const& b : batches) {
        REQUIRE(b.images.shape() == shape{b.size(), 2, 3, 1});
        for (index_t r = 0; r < b.size(); ++r) {
          index_t i = b.indices[static_cast<std::size_t>(r)];
          CHECK(b.labels[static_cast<std::size_t>(r)] == i % 4);
          float expect = static_cast<float>(i * 10 + 4) +
                         static_cast<float>(data::sample_seed(9, e, static_cast<std::uint64_t>(i)) % 1000) * 1e-3f;
          CHECK(b.images.at(r, 1, 1, 0) == expect);
        }
        indices.insert(indices.end(), b.indices.begin(), b.indices.end());
      }
      CHECK(indices == data::shuffle_sampler(23, 9).order(e));
      runs.push_back(std::move(batches));
    }
  }
  require_same_batches(runs[0], runs[2]);  // epoch 0: 0 vs 1 worker
  require_same_batches(runs[0], runs[4]);  // epoch 0: 0 vs 3 workers
  require_same_batches(runs[1], runs[5]);  // epoch 1
  CHECK(runs[0][0].indices != runs[1][0].indices);
}

TEST_CASE("loader: sequential order and drop_last", "[data]") {
  using namespace loader_test;
  data::loader_options o;
  o.batch_size = 4;
  o.workers = 3;
  data::loader keep(10, [](index_t i) { return synthetic(i, 0); }, o);  // a load function of the index only
  auto batches = run_epoch(keep, 0);
  REQUIRE(batches.size() == 3);
  CHECK(batches[0].indices == std::vector<index_t>{0, 1, 2, 3});
  CHECK(batches[2].indices == std::vector<index_t>{8, 9});
  CHECK(batches[2].number == 2);
  o.drop_last = true;
  data::loader drop(10, synthetic, o);
  batches = run_epoch(drop, 0);
  REQUIRE(batches.size() == 2);
  CHECK(batches[1].indices == std::vector<index_t>{4, 5, 6, 7});
  data::batch b;
  CHECK_FALSE(drop.next(b));  // stays at the end
  data::loader unstarted(10, synthetic, o);
  CHECK_THROWS_AS(unstarted.next(b), arcnet::error);
  o.batch_size = 0;
  CHECK_THROWS_AS(data::loader(10, synthetic, o), config_error);
}

TEST_CASE("loader: an error reaches next() with the sample and file - the loader goes on", "[data]") {
  using namespace loader_test;
  auto failing = [](index_t i, std::uint64_t seed) {
    if (i == 7) detail::raise<io_error>("png: 'file_7.png': truncated file");
    if (i == 9) throw std::runtime_error("plain std exception");
    return synthetic(i, seed);
  };
  data::loader_options o;
  o.batch_size = 4;
  o.workers = 3;
  data::loader ld(12, failing, o);
  ld.begin_epoch(0);
  data::batch b;
  REQUIRE(ld.next(b));
  CHECK(b.indices == std::vector<index_t>{0, 1, 2, 3});
  try {
    ld.next(b);
    FAIL("expected an io_error");
  } catch (io_error const& e) {
    std::string what = e.what();
    INFO(what);
    CHECK(what.rfind("arcnet: loader: sample 7", 0) == 0);
    CHECK(what.find("file_7.png") != std::string::npos);
  }
  try {
    ld.next(b);
    FAIL("expected an arcnet::error");
  } catch (arcnet::error const& e) {
    CHECK(std::string(e.what()).find("sample 9: plain std exception") != std::string::npos);
  }
  CHECK_FALSE(ld.next(b));
  CHECK(ld.bad_count() == 0);
}

TEST_CASE("loader: skip_bad leaves bad samples out, counts and lists them", "[data]") {
  using namespace loader_test;
  std::set<index_t> const bad{2, 3, 7};
  auto failing = [&](index_t i, std::uint64_t seed) {
    if (bad.count(i)) detail::raise<io_error>("decode: 'file_", i, ".png': corrupt");
    return synthetic(i, seed);
  };
  data::loader_options o;
  o.batch_size = 2;
  o.workers = 3;
  o.skip_bad = true;
  o.max_bad_reported = 2;
  data::loader ld(9, failing, o);
  auto batches = run_epoch(ld, 0);
  // Batch 1 (2, 3) is all bad and left out; batch 3 keeps 6 only.
  REQUIRE(batches.size() == 4);
  CHECK(batches[0].indices == std::vector<index_t>{0, 1});
  CHECK(batches[1].number == 2);
  CHECK(batches[2].number == 3);
  CHECK(batches[2].indices == std::vector<index_t>{6});
  CHECK(batches[2].labels == std::vector<std::int64_t>{2});
  REQUIRE(batches[2].images.shape() == shape{1, 2, 3, 1});
  CHECK(batches[2].images[5] == static_cast<float>(65) + static_cast<float>(data::sample_seed(0, 0, 6) % 1000) * 1e-3f);
  CHECK(batches[3].indices == std::vector<index_t>{8});
  CHECK(ld.bad_count() == 3);
  auto reported = ld.bad_samples();
  REQUIRE(reported.size() == 2);  // the first max_bad_reported, in epoch order
  CHECK(reported[0].index == 2);
  CHECK(reported[1].index == 3);
  CHECK(reported[1].message.find("file_3.png") != std::string::npos);
  std::string summary = ld.bad_summary();
  CHECK(summary.find("skipped 3 bad samples") != std::string::npos);
  CHECK(summary.find("sample 2") != std::string::npos);
  ld.begin_epoch(1);  // counts are per epoch
  CHECK(ld.bad_count() == 0);
  CHECK(ld.bad_summary().empty());
}

TEST_CASE("loader: image files through a pipeline - a truncated PNG skipped or raised", "[data]") {
  using namespace loader_test;
  temp_dir dir;
  write_png_folder(dir.path);
  // A truncated copy of a valid PNG in class1 (sorts after 0.png, 1.png, 2.png).
  std::string const broken = (dir.path / "class1" / "3_broken.png").string();
  {
    std::ifstream in(dir.path / "class1" / "0.png", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream(broken, std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  }
  data::image_folder ds(dir.path.string());
  REQUIRE(ds.size() == 10);
  REQUIRE(ds.sample(6).path == broken);
  auto pipe = data::pipeline::parse("random_crop=4,flip=0.5");

  data::loader_options o;
  o.batch_size = 4;
  o.shuffle = true;
  o.seed = 3;
  o.skip_bad = true;
  std::vector<std::vector<data::batch>> runs;
  for (int workers : {1, 3}) {
    o.workers = workers;
    data::loader ld(ds, pipe, o);
    runs.push_back(run_epoch(ld, 2));
    CHECK(ld.bad_count() == 1);
    REQUIRE(ld.bad_samples().size() == 1);
    CHECK(ld.bad_samples()[0].index == 6);
    CHECK(ld.bad_samples()[0].path == broken);
    CHECK(ld.bad_summary().find(broken) != std::string::npos);
  }
  require_same_batches(runs[0], runs[1]);
  index_t total = 0;
  for (auto const& b : runs[0]) {
    CHECK(b.images.shape() == shape{b.size(), 4, 4, 3});
    total += b.size();
  }
  CHECK(total == 9);

  o.skip_bad = false;
  o.shuffle = false;
  data::loader strict(ds, pipe, o);
  strict.begin_epoch(0);
  data::batch b;
  REQUIRE(strict.next(b));  // samples 0..3
  try {
    strict.next(b);  // samples 4..7 hold the broken file
    FAIL("expected an io_error");
  } catch (io_error const& e) {
    std::string what = e.what();
    INFO(what);
    CHECK(what.find("sample 6") != std::string::npos);
    CHECK(what.find(broken) != std::string::npos);
  }
}

TEST_CASE("loader: at most prefetch batches are loaded ahead of the consumer", "[data]") {
  using namespace loader_test;
  std::atomic<int> started{0};
  data::loader_options o;
  o.batch_size = 4;
  o.workers = 3;
  o.prefetch = 2;
  data::loader ld(40, [&](index_t i, std::uint64_t seed) {
    ++started;
    return synthetic(i, seed);
  }, o);
  ld.begin_epoch(0);
  REQUIRE(eventually([&] { return started.load() >= 8; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  CHECK(started.load() == 8);  // 2 batches of 4, then the workers wait for the consumer
  data::batch b;
  REQUIRE(ld.next(b));
  REQUIRE(eventually([&] { return started.load() >= 12; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  CHECK(started.load() == 12);
}

TEST_CASE("loader: destroying or restarting mid-epoch joins the workers", "[data]") {
  using namespace loader_test;
  auto slow = [](index_t i, std::uint64_t seed) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return synthetic(i, seed);
  };
  data::loader_options o;
  o.batch_size = 8;
  o.workers = 3;
  o.prefetch = 3;
  auto const t0 = clock_type::now();
  {
    data::loader ld(10000, slow, o);
    ld.begin_epoch(0);  // destroyed before any next()
  }
  {
    data::loader ld(10000, slow, o);
    ld.begin_epoch(0);
    data::batch b;
    REQUIRE(ld.next(b));
    REQUIRE(ld.next(b));
    ld.begin_epoch(1);  // restart mid-epoch
    REQUIRE(ld.next(b));
    CHECK(b.number == 0);
    CHECK(b.indices.front() == 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // workers blocked on a full window
  }
  CHECK(clock_type::now() - t0 < std::chrono::seconds(2));  // 10000 samples would take >3 s
}

TEST_CASE("loader: class-balanced and distributed batches from the options", "[data]") {
  using namespace loader_test;
  std::vector<std::int64_t> labels;
  for (index_t i = 0; i < 30; ++i) labels.push_back(i % 5);
  auto load = [&](index_t i) { return data::loaded_sample{tensor<float, cpu>::full(shape{1}, float(i)), labels[i]}; };
  data::loader_options o;
  o.classes_per_batch = 2;
  o.images_per_class = 3;
  o.seed = 5;
  o.workers = 2;
  data::loader whole(30, load, o, labels);
  auto all = run_epoch(whole, 1);
  REQUIRE(all.size() == 5);  // 30 / (2 * 3)
  for (auto const& b : all) {
    REQUIRE(b.size() == 6);
    CHECK(b.labels[0] == b.labels[2]);
    CHECK(b.labels[3] == b.labels[5]);
    CHECK(b.labels[0] != b.labels[3]);
    for (index_t r = 0; r < 6; ++r) CHECK(b.images[r] == float(b.indices[static_cast<std::size_t>(r)]));
  }
  // Two ranks: each gets whole P x K batches, rank r the batches r, r + 2, ... (padded by batch 0).
  o.world_size = 2;
  for (int rank = 0; rank < 2; ++rank) {
    o.rank = rank;
    data::loader shard(30, load, o, labels);
    auto mine = run_epoch(shard, 1);
    REQUIRE(mine.size() == 3);
    for (std::size_t k = 0; k < 3; ++k) CHECK(mine[k].indices == all[(2 * k + static_cast<std::size_t>(rank)) % 5].indices);
  }
  o.world_size = 1;
  CHECK_THROWS_AS(data::loader(30, load, o), config_error);  // balanced batches need the labels
}

TEST_CASE("loader: an IDX dataset through a pipeline", "[data]") {
  using namespace loader_test;
  temp_dir dir;
  // 5 images of 2x3 (rows x cols), pixel k of image i = 40 * i + k; labels 4 - i.
  std::vector<std::uint8_t> img{0, 0, 8, 3, 0, 0, 0, 5, 0, 0, 0, 2, 0, 0, 0, 3};
  std::vector<std::uint8_t> lab{0, 0, 8, 1, 0, 0, 0, 5};
  for (int i = 0; i < 5; ++i) {
    for (int k = 0; k < 6; ++k) img.push_back(static_cast<std::uint8_t>(40 * i + k));
    lab.push_back(static_cast<std::uint8_t>(4 - i));
  }
  std::ofstream(dir.path / "img", std::ios::binary).write(reinterpret_cast<char const*>(img.data()), std::streamsize(img.size()));
  std::ofstream(dir.path / "lab", std::ios::binary).write(reinterpret_cast<char const*>(lab.data()), std::streamsize(lab.size()));
  data::idx_dataset ds((dir.path / "img").string(), (dir.path / "lab").string());
  data::loader_options o;
  o.batch_size = 3;
  o.workers = 2;
  data::loader ld(ds, data::pipeline::parse("normalize=0/0/0:255/255/255"), o);
  auto batches = run_epoch(ld, 0);
  REQUIRE(batches.size() == 2);
  REQUIRE(batches[0].images.shape() == shape{3, 2, 3, 3});
  CHECK(batches[0].labels == std::vector<std::int64_t>{4, 3, 2});
  CHECK(batches[1].labels == std::vector<std::int64_t>{1, 0});
  CHECK(batches[1].images.at(1, 1, 2, 1) == Approx((40.0 * 4 + 5) / 255.0));  // grey copied to G
}

TEST_CASE("loader: pin_memory without the CUDA build is a config_error that says so", "[data]") {
  using namespace loader_test;
  if (detail::pinned_memory_available()) {  // this program has an nvcc translation unit
    WARN("pinned memory is available here: tests/cuda/test_cuda_pinned.cu covers pin_memory");
    return;
  }
  data::loader_options o;
  o.batch_size = 4;
  o.pin_memory = true;
  CHECK_THROWS_AS(data::loader(10, synthetic, o), config_error);
  CHECK_THROWS_WITH(data::loader(10, synthetic, o),
                    Catch::Contains("pin_memory") && Catch::Contains("needs the CUDA build") &&
                        Catch::Contains("nvcc"));
  CHECK_THROWS_AS((tensor<float, cpu>::uninitialized_pinned(shape{2, 3})), config_error);
  o.pin_memory = false;
  data::loader ld(10, synthetic, o);
  auto batches = run_epoch(ld, 0);
  REQUIRE(batches.size() == 3);
  CHECK_FALSE(batches[0].images.is_pinned());
}
