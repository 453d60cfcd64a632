// In-Shop, image_folder and list_file on small trees written by the tests themselves.
#include "test_util.hpp"

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

#include <arcnet/data/dataset.hpp>
#include <arcnet/data/decode.hpp>
#include <arcnet/data/encode.hpp>
#include <arcnet/data/image.hpp>

namespace dataset_test {

namespace fs = std::filesystem;
using namespace arcnet;

/// A fresh directory under the system temp dir, removed with its contents at scope exit.
struct temp_dir {
  fs::path path;
  explicit temp_dir(std::string const& tag) {
    static std::atomic<int> counter{0};
    path = fs::temp_directory_path() /
           ("arcnet_" + tag + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string str(std::string const& rel = "") const { return rel.empty() ? path.string() : (path / rel).string(); }
};

/// A 4x3 PNG of one colour (r, g, b) at path, creating its folders.
inline void write_solid_png(fs::path const& p, int r, int g, int b) {
  fs::create_directories(p.parent_path());
  auto img = data::make_image(4, 3, 3);
  for (std::size_t i = 0; i < img.pixels.size(); i += 3) {
    img.pixels[i] = static_cast<std::uint8_t>(r);
    img.pixels[i + 1] = static_cast<std::uint8_t>(g);
    img.pixels[i + 2] = static_cast<std::uint8_t>(b);
  }
  data::write_png(p.string(), img);
}

inline void write_text(fs::path const& p, std::string const& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << text;
}

/// The red channel that identifies entry k of an In-Shop tree.
inline int inshop_colour(int k) { return 20 * k + 10; }

struct inshop_entry {
  std::string image, item, status;
};

/// Writes ROOT/Eval/list_eval_partition.txt (count, header, entries) and, for each entry k, a PNG
/// at ROOT/Img/<image> whose red channel is inshop_colour(k). declared < 0: the true count.
inline void write_inshop_tree(fs::path const& root, std::vector<inshop_entry> const& entries, int declared = -1) {
  std::string text = std::to_string(declared < 0 ? static_cast<int>(entries.size()) : declared) +
                     "\nimage_name item_id evaluation_status\n";
  for (std::size_t k = 0; k < entries.size(); ++k) {
    text += entries[k].image + "      " + entries[k].item + "  " + entries[k].status + "\n";
    write_solid_png(root / "Img" / entries[k].image, inshop_colour(static_cast<int>(k)), 50, 60);
  }
  write_text(root / "Eval" / "list_eval_partition.txt", text);
}

/// A small In-Shop set: items A, C train; B, D query + gallery.
inline std::vector<inshop_entry> inshop_entries() {
  return {
      {"img/WOMEN/Dresses/id_0000000A/01_1_front.png", "id_0000000A", "train"},    // 0: train 0, label 0
      {"img/WOMEN/Dresses/id_0000000A/01_2_side.png", "id_0000000A", "train"},     // 1: train 1, label 0
      {"img/MEN/Tees/id_0000000B/01_1_front.png", "id_0000000B", "query"},         // 2: query 0 -> B
      {"img/MEN/Tees/id_0000000B/01_2_side.png", "id_0000000B", "gallery"},        // 3: gallery 0
      {"img/MEN/Tees/id_0000000C/01_1_front.png", "id_0000000C", "train"},         // 4: train 2, label 1
      {"img/MEN/Tees/id_0000000B/01_3_back.png", "id_0000000B", "gallery"},        // 5: gallery 1
      {"img/WOMEN/Skirts/id_0000000D/02_1_front.png", "id_0000000D", "gallery"},   // 6: gallery 2
      {"img/WOMEN/Skirts/id_0000000D/02_2_side.png", "id_0000000D", "query"},      // 7: query 1 -> D
      {"img/WOMEN/Dresses/id_0000000A/01_3_back.png", "id_0000000A", "train"},     // 8: train 3, label 0
      {"img/WOMEN/Skirts/id_0000000D/02_3_back.png", "id_0000000D", "query"},      // 9: query 2 -> D
  };
}

/// Runs f, requires an exception of type E whose message contains every part.
template <class E, class F>
void require_error(F&& f, std::vector<std::string> const& parts) {
  bool threw = false;
  try {
    f();
  } catch (E const& e) {
    threw = true;
    std::string what = e.what();
    INFO("message: " << what);
    for (auto const& p : parts) CHECK(what.find(p) != std::string::npos);
  }
  CHECK(threw);
}

}  // namespace dataset_test

TEST_CASE("in_shop: splits, labels in first-seen order and query targets", "[data]") {
  using namespace dataset_test;
  temp_dir dir("inshop");
  auto entries = inshop_entries();
  write_inshop_tree(dir.path, entries);
  auto img_path = [&](int k) { return (dir.path / "Img" / entries[static_cast<std::size_t>(k)].image).string(); };
  auto red_of = [](std::string const& p) { return static_cast<int>(data::read_image(p).at(1, 2, 0)); };

  data::in_shop train(dir.str(), "train");
  REQUIRE(train.size() == 4);
  REQUIRE(train.split() == data::in_shop_split::train);
  std::vector<int> train_entries{0, 1, 4, 8};
  std::vector<std::int64_t> train_labels{0, 0, 1, 0};
  for (int i = 0; i < 4; ++i) {
    CHECK(train.sample(i).path == img_path(train_entries[static_cast<std::size_t>(i)]));
    CHECK(train.sample(i).label == train_labels[static_cast<std::size_t>(i)]);
    CHECK(red_of(train.sample(i).path) == inshop_colour(train_entries[static_cast<std::size_t>(i)]));
  }
  CHECK(train.num_classes() == 2);
  CHECK(train.class_names() == std::vector<std::string>{"id_0000000A", "id_0000000C"});
  CHECK(train.class_counts() == std::vector<index_t>{3, 1});
  CHECK(train.labels() == train_labels);
  CHECK(train.item_id(2) == "id_0000000C");

  data::in_shop gallery(dir.str(), data::in_shop_split::gallery);
  REQUIRE(gallery.size() == 3);
  std::vector<int> gallery_entries{3, 5, 6};
  for (int i = 0; i < 3; ++i) {
    CHECK(gallery.sample(i).path == img_path(gallery_entries[static_cast<std::size_t>(i)]));
    CHECK(red_of(gallery.sample(i).path) == inshop_colour(gallery_entries[static_cast<std::size_t>(i)]));
  }
  CHECK(gallery.labels() == std::vector<std::int64_t>{0, 0, 1});
  CHECK(gallery.class_names() == std::vector<std::string>{"id_0000000B", "id_0000000D"});

  data::in_shop query(dir.str(), "query");
  REQUIRE(query.size() == 3);
  std::vector<int> query_entries{2, 7, 9};
  for (int i = 0; i < 3; ++i) {
    CHECK(query.sample(i).path == img_path(query_entries[static_cast<std::size_t>(i)]));
    CHECK(red_of(query.sample(i).path) == inshop_colour(query_entries[static_cast<std::size_t>(i)]));
  }
  CHECK(query.labels() == std::vector<std::int64_t>{0, 1, 1});
  CHECK(query.query_targets() == std::vector<std::vector<index_t>>{{0, 1}, {2}, {2}});
  // A query's targets are exactly the gallery samples of its item.
  for (index_t q = 0; q < query.size(); ++q)
    for (index_t g : query.query_targets()[static_cast<std::size_t>(q)])
      CHECK(gallery.item_id(g) == query.item_id(q));

  require_error<config_error>([&] { (void)train.query_targets(); }, {"query split"});
  require_error<error>([&] { (void)train.sample(4); }, {"out of range"});
}

TEST_CASE("in_shop: errors name the file and the line", "[data]") {
  using namespace dataset_test;
  temp_dir dir("inshop_bad");
  std::string const partition = (dir.path / "Eval" / "list_eval_partition.txt").string();

  // Missing partition file.
  require_error<io_error>([&] { data::in_shop(dir.str(), "train"); }, {partition, "cannot open"});
  require_error<config_error>([&] { data::in_shop(dir.str(), "val"); }, {"val", "train, query, gallery"});

  // A query item without any gallery image (line 5 of the file).
  auto entries = inshop_entries();
  entries.insert(entries.begin() + 2, {"img/MEN/Tees/id_0000000E/01_1_front.png", "id_0000000E", "query"});
  write_inshop_tree(dir.path, entries);
  CHECK(data::in_shop(dir.str(), "train").size() == 4);  // other splits are fine
  require_error<io_error>([&] { data::in_shop(dir.str(), "query"); },
                          {partition + ":5:", "id_0000000E", "no gallery image"});

  // A malformed line (line 4: two fields).
  write_text(partition, "3\nimage_name item_id evaluation_status\na.png id_1 train\nb.png id_1\nc.png id_2 query\n");
  require_error<io_error>([&] { data::in_shop(dir.str(), "train"); },
                          {partition + ":4:", "image_name item_id evaluation_status", "'b.png id_1'"});
  // An unknown status.
  write_text(partition, "2\nimage_name item_id evaluation_status\na.png id_1 train\nb.png id_1 val\n");
  require_error<io_error>([&] { data::in_shop(dir.str(), "train"); }, {partition + ":4:", "'val'"});
  // A count that disagrees with line 1.
  write_text(partition, "3\nimage_name item_id evaluation_status\na.png id_1 train\nb.png id_1 gallery\n");
  require_error<io_error>([&] { data::in_shop(dir.str(), "train"); }, {partition + ":1:", "declares 3", "lists 2"});
  write_text(partition, "many\nimage_name item_id evaluation_status\na.png id_1 train\n");
  require_error<io_error>([&] { data::in_shop(dir.str(), "train"); }, {partition + ":1:", "number of images"});
  // A split with no image; CRLF line ends and blank lines are fine.
  write_text(partition, "1\r\nimage_name item_id evaluation_status\r\n\r\na.png id_1 train\r\n");
  CHECK(data::in_shop(dir.str(), "train").sample(0).path == (dir.path / "Img" / "a.png").string());
  require_error<io_error>([&] { data::in_shop(dir.str(), "gallery"); }, {partition, "no 'gallery' images"});
}

TEST_CASE("image_folder: sorted classes and images, image extensions only", "[data]") {
  using namespace dataset_test;
  temp_dir dir("folder");
  write_solid_png(dir.path / "dog" / "x.png", 1, 2, 3);
  write_solid_png(dir.path / "dog" / "sub" / "y.PNG", 1, 2, 3);
  write_solid_png(dir.path / "cat" / "b.png", 1, 2, 3);
  write_solid_png(dir.path / "cat" / "a.jpg", 1, 2, 3);  // the name, not the contents, selects files
  write_text(dir.path / "cat" / "notes.txt", "not an image");
  write_text(dir.path / "README", "a file at the top is not a class");
  data::image_folder ds(dir.str());
  REQUIRE(ds.size() == 4);
  CHECK(ds.class_names() == std::vector<std::string>{"cat", "dog"});
  CHECK(ds.num_classes() == 2);
  CHECK(ds.class_counts() == std::vector<index_t>{2, 2});
  CHECK(ds.sample(0).path == dir.str("cat/a.jpg"));
  CHECK(ds.sample(1).path == dir.str("cat/b.png"));
  CHECK(ds.sample(2).path == dir.str("dog/sub/y.PNG"));
  CHECK(ds.sample(3).path == dir.str("dog/x.png"));
  CHECK(ds.labels() == std::vector<std::int64_t>{0, 0, 1, 1});

  write_text(dir.path / "emu" / "readme.txt", "no images here");
  require_error<io_error>([&] { data::image_folder{dir.str()}; }, {dir.str("emu"), "no image"});
  require_error<io_error>([&] { data::image_folder{dir.str("missing")}; }, {dir.str("missing"), "not a directory"});
  temp_dir empty("folder_empty");
  require_error<io_error>([&] { data::image_folder{empty.str()}; }, {empty.str(), "no class folder"});
}

TEST_CASE("list_file: 'path label' lines, relative to a root", "[data]") {
  using namespace dataset_test;
  temp_dir dir("list");
  std::string const list = dir.str("train.txt");
  write_text(list, "a b.png 2\n\n  dir/c.png\t0  \r\n/abs/d.png 2\n");
  data::list_file ds(list, dir.str("images"));
  REQUIRE(ds.size() == 3);
  CHECK(ds.sample(0).path == dir.str("images/a b.png"));
  CHECK(ds.sample(0).label == 2);
  CHECK(ds.sample(1).path == dir.str("images/dir/c.png"));
  CHECK(ds.sample(1).label == 0);
  CHECK(ds.sample(2).path == "/abs/d.png");
  CHECK(ds.num_classes() == 3);
  CHECK(ds.class_counts() == std::vector<index_t>{1, 0, 2});
  CHECK(data::list_file(list).sample(1).path == "dir/c.png");

  write_text(list, "a.png 1\nb.png\n");
  require_error<io_error>([&] { data::list_file{list}; }, {list + ":2:", "'b.png'", "relative/path label"});
  write_text(list, "a.png 1\n\nb.png x1\n");
  require_error<io_error>([&] { data::list_file{list}; }, {list + ":3:", "'b.png x1'"});
  write_text(list, "a.png -1\n");
  require_error<io_error>([&] { data::list_file{list}; }, {list + ":1:", "negative"});
  // A huge label (found by fuzzing: it made a billion class names) is rejected on its line; the
  // largest allowed one still loads.
  write_text(list, "a.png 0\nb.png 1111111111\n");
  require_error<io_error>([&] { data::list_file{list}; }, {list + ":2:", "label 1111111111 is too large", "0..1048575"});
  write_text(list, "a.png 0\nb.png 99999999999999999999\n");  // overflows int64: not a label
  require_error<io_error>([&] { data::list_file{list}; }, {list + ":2:", "relative/path label"});
  write_text(list, "a.png 1048575\n");
  CHECK(data::list_file(list).num_classes() == 1048576);
  write_text(list, "\n\n");
  require_error<io_error>([&] { data::list_file{list}; }, {list, "no sample"});
  require_error<io_error>([&] { data::list_file{dir.str("none.txt")}; }, {dir.str("none.txt"), "cannot open"});
}
