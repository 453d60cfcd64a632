#pragma once
// Datasets of image files with integer labels: In-Shop (as mmpretrain reads it), an image
// folder (as torchvision's ImageFolder reads it) and a list file ("path label" per line).
// Each gives size(), sample(i) = {path, label}, num_classes() and class_counts(); images are
// decoded later, by the loader's workers. Errors name the file (and line) at fault.
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <string>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

#include "arcnet/core/error.hpp"
#include "arcnet/core/shape.hpp"
#include "arcnet/data/detail/dataset_text.hpp"

namespace arcnet::data {

/// One image file of a dataset and its label in [0, num_classes()).
struct file_sample {
  std::string path;
  std::int64_t label = 0;
};

/// A list of image files with labels; the base of in_shop, image_folder and list_file.
class file_dataset {
 public:
  index_t size() const { return static_cast<index_t>(samples_.size()); }
  /// Sample i (path, label); error when i is out of range.
  file_sample const& sample(index_t i) const {
    if (i < 0 || i >= size())
      detail::raise<error>(name_, ": sample index ", i, " is out of range for ", size(), " samples");
    return samples_[static_cast<std::size_t>(i)];
  }
  std::int64_t label(index_t i) const { return sample(i).label; }
  /// The labels of all samples, in sample order.
  std::vector<std::int64_t> labels() const {
    std::vector<std::int64_t> out;
    out.reserve(samples_.size());
    for (auto const& s : samples_) out.push_back(s.label);
    return out;
  }
  index_t num_classes() const { return static_cast<index_t>(class_names_.size()); }
  /// Class names, indexed by label (folder names, item ids, or "0".."C-1" for list files).
  std::vector<std::string> const& class_names() const { return class_names_; }
  /// Number of samples of each class, indexed by label.
  std::vector<index_t> class_counts() const {
    std::vector<index_t> counts(class_names_.size(), 0);
    for (auto const& s : samples_) ++counts[static_cast<std::size_t>(s.label)];
    return counts;
  }
  /// What the dataset is, for messages: "in_shop(ROOT, query)", "image_folder(ROOT)", ...
  std::string const& name() const { return name_; }

 protected:
  std::string name_;
  std::vector<file_sample> samples_;
  std::vector<std::string> class_names_;
};

/// The three splits of In-Shop's list_eval_partition.txt.
enum class in_shop_split { train, query, gallery };

/// Parses "train", "query" or "gallery"; config_error otherwise.
inline in_shop_split parse_in_shop_split(std::string const& text) {
  if (text == "train") return in_shop_split::train;
  if (text == "query") return in_shop_split::query;
  if (text == "gallery") return in_shop_split::gallery;
  detail::raise<config_error>("in_shop: split must be one of train, query, gallery; got '", text, "'");
}

inline char const* to_string(in_shop_split s) {
  switch (s) {
    case in_shop_split::train: return "train";
    case in_shop_split::query: return "query";
    default: return "gallery";
  }
}

/// In-Shop Clothes Retrieval, read exactly like mmpretrain's InShop: ROOT/Eval/list_eval_partition.txt
/// (line 1 the number of images, line 2 a header, then "image_name item_id evaluation_status"),
/// images at ROOT/Img/<image_name>.
///   train:   labels 0..C-1 = train item ids in first-seen order (C = 3997 on the real data).
///   gallery: samples in file order; labels = the gallery's item ids in first-seen order.
///   query:   labels = the gallery label of the query's item; query_targets()[q] = the gallery
///            sample indices of that item (mmpretrain's gt_label of a query).
/// Blank lines are skipped. io_error naming the file and line for a missing file, a malformed
/// line, an unknown status, a count that disagrees with line 1, or a query item with no gallery image.
class in_shop : public file_dataset {
 public:
  in_shop(std::string const& root, in_shop_split split) : split_(split) { load(root); }
  in_shop(std::string const& root, std::string const& split) : in_shop(root, parse_in_shop_split(split)) {}

  in_shop_split split() const { return split_; }
  /// The item id ("id_00000001") of sample i.
  std::string const& item_id(index_t i) const {
    sample(i);  // bounds check
    return item_ids_[static_cast<std::size_t>(i)];
  }
  /// For the query split: for each query, the gallery indices of its item (ascending, never empty).
  std::vector<std::vector<index_t>> const& query_targets() const {
    if (split_ != in_shop_split::query)
      detail::raise<config_error>(name_, ": query_targets() exists for the query split only");
    return query_targets_;
  }

 private:
  void load(std::string const& root) {
    namespace fs = std::filesystem;
    name_ = detail::concat("in_shop(", root, ", ", to_string(split_), ")");
    std::string const path = (fs::path(root) / "Eval" / "list_eval_partition.txt").string();
    fs::path const img_dir = fs::path(root) / "Img";
    auto lines = detail::dataset_read_lines(path, "in_shop");
    if (lines.size() < 2)
      detail::raise<io_error>(path, ": expected the number of images on line 1 and a header on line 2, "
                              "got a file of ", lines.size(), " line", lines.size() == 1 ? "" : "s");
    std::int64_t declared = 0;
    auto first = detail::dataset_split_fields(lines[0]);
    if (first.size() != 1 || !detail::dataset_parse_int(first[0], declared) || declared < 0)
      detail::raise<io_error>(path, ":1: expected the number of images, got ", detail::dataset_quote_line(lines[0]));

    struct entry {
      std::string image, item;
      in_shop_split status;
      std::size_t line;
    };
    std::vector<entry> entries;
    for (std::size_t n = 2; n < lines.size(); ++n) {
      if (detail::dataset_blank_line(lines[n])) continue;
      auto f = detail::dataset_split_fields(lines[n]);
      if (f.size() != 3)
        detail::raise<io_error>(path, ":", n + 1, ": expected 'image_name item_id evaluation_status', got ",
                                detail::dataset_quote_line(lines[n]));
      in_shop_split status;
      if (f[2] == "train") status = in_shop_split::train;
      else if (f[2] == "query") status = in_shop_split::query;
      else if (f[2] == "gallery") status = in_shop_split::gallery;
      else
        detail::raise<io_error>(path, ":", n + 1, ": unknown evaluation_status '", f[2],
                                "' (expected train, query or gallery)");
      entries.push_back({std::move(f[0]), std::move(f[1]), status, n + 1});
    }
    if (static_cast<std::int64_t>(entries.size()) != declared)
      detail::raise<io_error>(path, ":1: the file declares ", declared, " images but lists ", entries.size());

    // Item id -> label of the train split, and item id -> (gallery label, gallery indices).
    std::unordered_map<std::string, std::int64_t> train_label, gallery_label;
    std::vector<std::vector<index_t>> gallery_of_label;
    for (auto const& e : entries) {
      std::string img = (img_dir / e.image).string();
      if (e.status == in_shop_split::train) {
        auto it = train_label.find(e.item);
        if (it == train_label.end()) {
          it = train_label.emplace(e.item, static_cast<std::int64_t>(train_label.size())).first;
          if (split_ == in_shop_split::train) class_names_.push_back(e.item);
        }
        if (split_ == in_shop_split::train) add(std::move(img), it->second, e.item);
      } else if (e.status == in_shop_split::gallery) {
        auto it = gallery_label.find(e.item);
        if (it == gallery_label.end()) {
          it = gallery_label.emplace(e.item, static_cast<std::int64_t>(gallery_of_label.size())).first;
          gallery_of_label.emplace_back();
          if (split_ != in_shop_split::train) class_names_.push_back(e.item);
        }
        gallery_of_label[static_cast<std::size_t>(it->second)].push_back(gallery_count_++);
        if (split_ == in_shop_split::gallery) add(std::move(img), it->second, e.item);
      }
    }
    if (split_ == in_shop_split::query) {
      for (auto const& e : entries) {
        if (e.status != in_shop_split::query) continue;
        auto it = gallery_label.find(e.item);
        if (it == gallery_label.end())
          detail::raise<io_error>(path, ":", e.line, ": query image '", e.image, "' belongs to item '", e.item,
                                  "', which has no gallery image");
        add((img_dir / e.image).string(), it->second, e.item);
        query_targets_.push_back(gallery_of_label[static_cast<std::size_t>(it->second)]);
      }
    }
    if (samples_.empty())
      detail::raise<io_error>(path, ": the file lists no '", to_string(split_), "' images");
  }

  void add(std::string path, std::int64_t label, std::string const& item) {
    samples_.push_back({std::move(path), label});
    item_ids_.push_back(item);
  }

  in_shop_split split_;
  index_t gallery_count_ = 0;
  std::vector<std::string> item_ids_;
  std::vector<std::vector<index_t>> query_targets_;
};

}  // namespace arcnet::data

namespace arcnet::detail {
/// True for the file extensions the decoders read: .jpg .jpeg .png .ppm .pgm .pnm (any case).
inline bool dataset_has_image_extension(std::filesystem::path const& p) {
  std::string ext = p.extension().string();
  for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".ppm" || ext == ".pgm" || ext == ".pnm";
}
}  // namespace arcnet::detail

namespace arcnet::data {

/// root/<class>/<image>, like torchvision's ImageFolder: classes = the sorted sub-folder names
/// (labels 0..C-1), images = the files below each (recursively, sorted by path) whose extension
/// the decoders read (.jpg .jpeg .png .ppm .pgm .pnm); other files are ignored. A split is a
/// folder: image_folder("data/train"). io_error when root is missing, has no class folder, or a
/// class folder holds no image.
class image_folder : public file_dataset {
 public:
  explicit image_folder(std::string const& root) {
    namespace fs = std::filesystem;
    name_ = detail::concat("image_folder(", root, ")");
    std::error_code ec;
    if (!fs::is_directory(root, ec))
      detail::raise<io_error>("image_folder: '", root, "' is not a directory");
    std::vector<fs::path> class_dirs;
    for (auto const& e : fs::directory_iterator(root, ec))
      if (e.is_directory() && e.path().filename().string().rfind('.', 0) != 0) class_dirs.push_back(e.path());
    if (ec) detail::raise<io_error>("image_folder: cannot list '", root, "': ", ec.message());
    if (class_dirs.empty())
      detail::raise<io_error>("image_folder: '", root, "' has no class folder (expected root/<class>/<image>)");
    std::sort(class_dirs.begin(), class_dirs.end());
    for (auto const& dir : class_dirs) {
      std::vector<std::string> files;
      for (auto it = fs::recursive_directory_iterator(dir, fs::directory_options::follow_directory_symlink, ec);
           !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (it->is_regular_file() && detail::dataset_has_image_extension(it->path()))
          files.push_back(it->path().string());
      }
      if (ec) detail::raise<io_error>("image_folder: cannot list '", dir.string(), "': ", ec.message());
      if (files.empty())
        detail::raise<io_error>("image_folder: class folder '", dir.string(),
                                "' holds no image (.jpg .jpeg .png .ppm .pgm .pnm)");
      std::sort(files.begin(), files.end());
      auto label = static_cast<std::int64_t>(class_names_.size());
      class_names_.push_back(dir.filename().string());
      for (auto& f : files) samples_.push_back({std::move(f), label});
    }
  }
};

/// A text file of "relative/path label" lines (mmpretrain's ann_file: the label is the last
/// field, so paths may hold spaces); paths are taken relative to root unless absolute. Labels
/// are integers in [0, max_classes); num_classes() = the largest + 1. Blank lines are skipped.
/// io_error naming the file and line for a malformed line or a label out of range.
class list_file : public file_dataset {
 public:
  /// Labels must be below this: every class up to the largest label gets a name here and an
  /// ArcFace weight row later, so one stray large number (an item id in the label column) would
  /// otherwise cost gigabytes. 2^20 is more identities than MS1M (85k) or Glint360K (360k).
  static constexpr std::int64_t max_classes = std::int64_t(1) << 20;

  explicit list_file(std::string const& path, std::string const& root = "") {
    namespace fs = std::filesystem;
    name_ = detail::concat("list_file(", path, ")");
    auto lines = detail::dataset_read_lines(path, "list_file");
    std::int64_t max_label = -1;
    for (std::size_t n = 0; n < lines.size(); ++n) {
      std::string const& line = lines[n];
      if (detail::dataset_blank_line(line)) continue;
      std::size_t end = line.find_last_not_of(" \t");
      std::size_t split = line.find_last_of(" \t", end);
      std::size_t begin = line.find_first_not_of(" \t");
      std::int64_t label = 0;
      if (split == std::string::npos || split < begin ||
          !detail::dataset_parse_int(line.substr(split + 1, end - split), label))
        detail::raise<io_error>(path, ":", n + 1, ": expected 'relative/path label', got ",
                                detail::dataset_quote_line(line));
      if (label < 0) detail::raise<io_error>(path, ":", n + 1, ": label ", label, " is negative");
      if (label >= max_classes)
        detail::raise<io_error>(path, ":", n + 1, ": label ", label, " is too large (list files hold labels 0..",
                                max_classes - 1, ", one class per label up to the largest)");
      std::size_t path_end = line.find_last_not_of(" \t", split);
      fs::path rel = line.substr(begin, path_end - begin + 1);
      std::string full = (root.empty() || rel.is_absolute()) ? rel.string() : (fs::path(root) / rel).string();
      samples_.push_back({std::move(full), label});
      max_label = std::max(max_label, label);
    }
    if (samples_.empty()) detail::raise<io_error>(path, ": the list file holds no sample");
    class_names_.reserve(static_cast<std::size_t>(max_label + 1));
    for (std::int64_t c = 0; c <= max_label; ++c) class_names_.push_back(std::to_string(c));
  }
};

}  // namespace arcnet::data
