#pragma once
// The image sets a program works on (train, query, gallery), whatever the dataset kind:
// image_set is a list of images (files or in-memory IDX rows) with labels, a view that can be
// narrowed to some classes, and the threaded loader over it. open_splits() reads data_options.
#include <algorithm>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "arcnet/core/error.hpp"
#include "arcnet/data/dataset.hpp"
#include "arcnet/data/decode.hpp"
#include "arcnet/data/idx.hpp"
#include "arcnet/data/loader.hpp"
#include "arcnet/data/transforms.hpp"
#include "arcnet/engine/options.hpp"

namespace arcnet::engine {

/// Images with labels. Copies share the underlying dataset.
class image_set {
 public:
  using reader = std::function<data::image(index_t)>;

  image_set() = default;
  /// `read(i)` decodes base image i; paths may be empty (in-memory data).
  image_set(std::string name, reader read, std::vector<std::int64_t> labels, std::vector<std::string> paths,
            index_t num_classes)
      : name_(std::move(name)), read_(std::make_shared<reader>(std::move(read))), labels_(std::move(labels)),
        paths_(std::move(paths)), num_classes_(num_classes) {
    index_.resize(labels_.size());
    for (std::size_t i = 0; i < index_.size(); ++i) index_[i] = static_cast<index_t>(i);
  }
  /// A file dataset of arcnet::data (in_shop, image_folder, list_file).
  static image_set from_files(data::file_dataset const& ds) {
    std::vector<std::string> paths;
    for (index_t i = 0; i < ds.size(); ++i) paths.push_back(ds.sample(i).path);
    auto shared = std::make_shared<std::vector<std::string>>(paths);
    return image_set(ds.name(), [shared](index_t i) { return data::read_image((*shared)[static_cast<std::size_t>(i)]); },
                     ds.labels(), std::move(paths), ds.num_classes());
  }

  std::string const& name() const { return name_; }
  index_t size() const { return static_cast<index_t>(index_.size()); }
  bool empty() const { return index_.empty(); }
  std::vector<std::int64_t> const& labels() const { return labels_; }
  index_t num_classes() const { return num_classes_; }
  /// The file of image i ("" for in-memory data).
  std::string path(index_t i) const { return paths_.empty() ? std::string() : paths_[check(i)]; }
  /// Image i, decoded.
  data::image image(index_t i) const { return (*read_)(index_[check(i)]); }
  /// Images per label.
  std::vector<std::int64_t> class_counts() const {
    std::vector<std::int64_t> c(static_cast<std::size_t>(num_classes_), 0);
    for (auto l : labels_) ++c[static_cast<std::size_t>(l)];
    return c;
  }

  /// The images whose label is in `keep`; with relabel, labels become positions in `keep`
  /// (0..k-1) and num_classes() = k. config_error when nothing is left.
  image_set only_classes(std::vector<std::int64_t> const& keep, bool relabel, std::string const& key) const {
    std::map<std::int64_t, std::int64_t> to;
    for (std::size_t k = 0; k < keep.size(); ++k) to[keep[k]] = static_cast<std::int64_t>(k);
    image_set out = *this;
    out.index_.clear();
    out.labels_.clear();
    out.paths_.clear();
    for (std::size_t i = 0; i < index_.size(); ++i) {
      auto it = to.find(labels_[i]);
      if (it == to.end()) continue;
      out.index_.push_back(index_[i]);
      out.labels_.push_back(relabel ? it->second : labels_[i]);
      if (!paths_.empty()) out.paths_.push_back(paths_[i]);
    }
    if (out.index_.empty())
      detail::raise<config_error>(key, ": no image of ", name_, " has one of the labels given");
    if (relabel) out.num_classes_ = static_cast<index_t>(keep.size());
    out.name_ = name_ + " [" + key + "]";
    return out;
  }
  /// The first n images (all when n <= 0 or n >= size()).
  image_set first(index_t n) const {
    image_set out = *this;
    if (n <= 0 || n >= size()) return out;
    out.index_.resize(static_cast<std::size_t>(n));
    out.labels_.resize(static_cast<std::size_t>(n));
    if (!paths_.empty()) out.paths_.resize(static_cast<std::size_t>(n));
    return out;
  }

  /// A threaded loader over this set: transformed by `tf`, batched and shuffled by `opt`.
  std::unique_ptr<data::loader> loader(data::pipeline tf, data::loader_options opt) const {
    auto read = read_;
    auto index = std::make_shared<std::vector<index_t>>(index_);
    auto labels = std::make_shared<std::vector<std::int64_t>>(labels_);
    auto paths = std::make_shared<std::vector<std::string>>(paths_);
    auto pipe = std::make_shared<data::pipeline const>(std::move(tf));
    auto load = [read, index, labels, paths, pipe](index_t i, std::uint64_t seed) {
      auto const k = static_cast<std::size_t>(i);
      try {
        return data::loaded_sample{(*pipe)((*read)((*index)[k]), seed), (*labels)[k]};
      } catch (error const& e) {
        if (paths->empty()) throw;
        detail::raise<io_error>("'", (*paths)[k], "': ", e.what());
      }
    };
    return std::make_unique<data::loader>(size(), load, opt, labels_);
  }

 private:
  std::size_t check(index_t i) const {
    if (i < 0 || i >= size()) detail::raise<error>(name_, ": image index ", i, " is out of range for ", size(), " images");
    return static_cast<std::size_t>(i);
  }

  std::string name_;
  std::shared_ptr<reader> read_;
  std::vector<index_t> index_;  // position -> base image
  std::vector<std::int64_t> labels_;
  std::vector<std::string> paths_;
  index_t num_classes_ = 0;
};

/// An image_set of files without labels (all 0).
inline image_set files_as_set(std::vector<std::string> const& paths, std::string const& name) {
  auto shared = std::make_shared<std::vector<std::string>>(paths);
  return image_set(name, [shared](index_t i) { return data::read_image((*shared)[static_cast<std::size_t>(i)]); },
                   std::vector<std::int64_t>(paths.size(), 0), paths, 1);
}

/// The training, query and gallery sets; leave_one_out: the gallery is the query set itself.
struct splits {
  image_set train, query, gallery;
  bool leave_one_out = false;
};

namespace detail_datasets {

inline image_set from_idx(std::string const& root, std::string const& prefix) {
  namespace fs = std::filesystem;
  auto find = [&](std::string const& stem) {
    for (std::string name : {stem + ".gz", stem}) {
      auto p = fs::path(root) / name;
      if (fs::exists(p)) return p.string();
    }
    detail::raise<io_error>("data.root: '", root, "' has no ", stem, "[.gz] (expected the IDX files of Fashion-MNIST "
                            "or MNIST, e.g. /usr/share/datasets/fashion-mnist)");
  };
  data::idx_dataset ds(find(prefix + "-images-idx3-ubyte"), find(prefix + "-labels-idx1-ubyte"));
  return image_set(detail::concat("idx(", root, ", ", prefix, ")"), [ds](index_t i) { return ds.image(i); },
                   ds.labels(), {}, ds.num_classes());
}

/// Query and gallery folders may hold different classes: label both by the union of class names.
inline std::pair<image_set, image_set> folders_by_name(data::image_folder const& q, data::image_folder const& g) {
  std::vector<std::string> names = q.class_names();
  names.insert(names.end(), g.class_names().begin(), g.class_names().end());
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  auto relabel = [&](data::image_folder const& f) {
    image_set s = image_set::from_files(f);
    std::vector<std::int64_t> labels;
    for (auto l : s.labels()) {
      auto const& n = f.class_names()[static_cast<std::size_t>(l)];
      labels.push_back(std::lower_bound(names.begin(), names.end(), n) - names.begin());
    }
    std::vector<std::string> paths;
    for (index_t i = 0; i < s.size(); ++i) paths.push_back(s.path(i));
    return image_set(s.name(), [s](index_t i) { return s.image(i); }, labels, paths, static_cast<index_t>(names.size()));
  };
  return {relabel(q), relabel(g)};
}

}  // namespace detail_datasets

/// Opens the sets that data_options and eval_options describe:
///   in_shop:      train / query / gallery splits of list_eval_partition.txt;
///   image_folder: ROOT/train, ROOT/query, ROOT/gallery (class sub-folders; query and gallery
///                 labelled by class name);
///   folder:       one ROOT/<class>/<image> tree (a face set: ROOT/<person>/<image>), labels in
///                 sorted folder-name order; train on data.train-classes, evaluate on
///                 eval.classes leave-one-out (people never seen in training when the lists
///                 do not overlap);
///   list:         data.train-list, data.query-list, data.gallery-list ("path label" lines);
///   idx:          train = train-*, query = t10k-*, gallery = train-* (Fashion-MNIST's protocol).
/// With eval.protocol = leave-one-out the gallery is the query set (a query never retrieves
/// itself). data.train-classes narrows training (labels renumbered), eval.classes the queries
/// and gallery. Only the sets `need_train` / `need_eval` ask for are opened.
inline splits open_splits(data_options const& d, eval_options const& e, bool need_train, bool need_eval) {
  namespace fs = std::filesystem;
  if (d.kind != "list" && !fs::is_directory(d.root))
    detail::raise<io_error>("data.root: '", d.root, "' is not a directory (dataset kind ", d.kind, ")");
  splits s;
  auto sub = [&](char const* name) { return (fs::path(d.root) / name).string(); };
  if (d.kind == "in_shop") {
    if (need_train) s.train = image_set::from_files(data::in_shop(d.root, data::in_shop_split::train));
    if (need_eval) {
      s.query = image_set::from_files(data::in_shop(d.root, data::in_shop_split::query));
      s.gallery = image_set::from_files(data::in_shop(d.root, data::in_shop_split::gallery));
    }
  } else if (d.kind == "image_folder") {
    if (need_train) s.train = image_set::from_files(data::image_folder(sub("train")));
    if (need_eval) {
      if (e.protocol == "leave-one-out") s.query = image_set::from_files(data::image_folder(sub("query")));
      else std::tie(s.query, s.gallery) = detail_datasets::folders_by_name(data::image_folder(sub("query")),
                                                                          data::image_folder(sub("gallery")));
    }
  } else if (d.kind == "folder") {
    if (need_eval && e.protocol != "leave-one-out")
      detail::raise<config_error>("eval.protocol: data.kind = folder has one set of images; use leave-one-out, got '",
                                  e.protocol, "'");
    auto all = image_set::from_files(data::image_folder(d.root));
    if (need_train) s.train = all;
    if (need_eval) s.query = all;
  } else if (d.kind == "list") {
    auto need = [](std::string const& v, char const* key) {
      if (v.empty()) detail::raise<config_error>(key, ": not set (data.kind = list needs it)");
      return v;
    };
    if (need_train) s.train = image_set::from_files(data::list_file(need(d.train_list, "data.train-list"), d.root));
    if (need_eval) {
      s.query = image_set::from_files(data::list_file(need(d.query_list, "data.query-list"), d.root));
      if (e.protocol != "leave-one-out")
        s.gallery = image_set::from_files(data::list_file(need(d.gallery_list, "data.gallery-list"), d.root));
    }
  } else if (d.kind == "idx") {
    if (need_train) s.train = detail_datasets::from_idx(d.root, "train");
    if (need_eval) {
      s.query = detail_datasets::from_idx(d.root, "t10k");
      if (e.protocol != "leave-one-out") s.gallery = need_train ? s.train : detail_datasets::from_idx(d.root, "train");
    }
  } else {
    detail::raise<config_error>("data.kind: expected in_shop, image_folder, folder, list or idx, got '", d.kind, "'");
  }
  if (need_train && !d.train_classes.empty())
    s.train = s.train.only_classes(parse_class_list(d.train_classes, "data.train-classes"), true, "data.train-classes");
  if (need_eval) {
    if (!e.classes.empty()) {
      auto keep = parse_class_list(e.classes, "eval.classes");
      s.query = s.query.only_classes(keep, false, "eval.classes");
      if (e.protocol != "leave-one-out") s.gallery = s.gallery.only_classes(keep, false, "eval.classes");
    }
    s.query = s.query.first(e.max_queries);
    s.leave_one_out = e.protocol == "leave-one-out";
    if (s.leave_one_out) s.gallery = s.query;
    if (s.query.empty()) detail::raise<io_error>("evaluation: the query set of ", d.root, " is empty");
    if (s.gallery.empty()) detail::raise<io_error>("evaluation: the gallery of ", d.root, " is empty");
  }
  return s;
}

}  // namespace arcnet::engine
