#pragma once
// A gallery ("prototype" in mmpretrain's ImageRetrievalInferencer): the embeddings of a set of
// images with their paths, built from a folder or read from a feature file saved earlier
// (safetensors: "features" (N, d), and in the metadata the paths and the model that made them,
// so a gallery is never searched with embeddings of another model).
#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "arcnet/data/dataset.hpp"
#include "arcnet/engine/evaluate.hpp"
#include "arcnet/engine/train_state.hpp"
#include "arcnet/io/safetensors.hpp"

namespace arcnet::engine {

/// Embeddings (N, d) of N images, L2-normalised, on the host.
struct gallery {
  tensor<float, cpu> features;
  std::vector<std::string> paths;
  nlohmann::json model;  // model_spec::to_json() of the model that embedded them
};

/// The image files under `root` (recursively, sorted), by the decoders' extensions; io_error
/// when root is not a folder or holds no image.
inline std::vector<std::string> list_images(std::string const& root) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(root, ec)) detail::raise<io_error>("prototype: '", root, "' is not a directory");
  std::vector<std::string> files;
  for (auto it = fs::recursive_directory_iterator(root, fs::directory_options::follow_directory_symlink, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
    if (it->is_regular_file() && detail::dataset_has_image_extension(it->path())) files.push_back(it->path().string());
  if (ec) detail::raise<io_error>("prototype: cannot list '", root, "': ", ec.message());
  if (files.empty())
    detail::raise<io_error>("prototype: '", root, "' holds no image (.jpg .jpeg .png .ppm .pgm .pnm); an empty "
                            "gallery cannot be searched");
  std::sort(files.begin(), files.end());
  return files;
}

/// Embeds every image under `root` with `model` (an any_retriever or an embedder).
template <class Model>
gallery build_gallery(Model& model, model_spec const& spec, std::string const& root,
                      data::pipeline const& tf, int batch_size, int workers) {
  gallery g;
  g.paths = list_images(root);
  g.features = embed(model, files_as_set(g.paths, root), tf, batch_size, workers);
  g.model = spec.to_json();
  return g;
}

/// Writes a gallery feature file (atomically).
inline void save_gallery(std::string const& path, gallery const& g) {
  nlohmann::json meta = {{"paths", g.paths}, {"model", g.model}};
  io::save_safetensors(path, {{"features", g.features}}, {{"arcnet_gallery", meta.dump()}});
}

/// Reads a gallery feature file; io_error naming the file when it is not one, or when its
/// paths and features disagree.
inline gallery load_gallery(std::string const& path) {
  std::map<std::string, std::string> meta;
  auto sd = io::load_safetensors(path, &meta);
  auto it = meta.find("arcnet_gallery");
  if (it == meta.end() || !sd.count("features"))
    detail::raise<io_error>("'", path, "' is not a gallery feature file (expected a \"features\" tensor and "
                            "arcnet_gallery metadata, as arcnet-retrieve --save-gallery writes)");
  gallery g;
  g.features = sd.at("features");
  try {
    auto j = nlohmann::json::parse(it->second);
    g.paths = j.at("paths").get<std::vector<std::string>>();
    g.model = j.at("model");
  } catch (nlohmann::json::exception const& e) {
    detail::raise<io_error>("'", path, "': bad gallery metadata: ", e.what());
  }
  if (g.features.rank() != 2 || g.features.size(0) != static_cast<index_t>(g.paths.size()) || g.paths.empty())
    detail::raise<io_error>("'", path, "': features ", g.features.shape(), " do not match its ", g.paths.size(), " paths");
  return g;
}

}  // namespace arcnet::engine
