#pragma once
// Training checkpoints: one safetensors file holding the model's state dict under its PyTorch
// names (so torch's safetensors.load_file gives a state dict), the optimizer state under
// "optimizer.", and in the header's metadata, as JSON under "arcnet", what the model is
// (architecture, embedding width, classes, head) and where training stands (epoch, iteration,
// best Recall@1, the loss and metric history). Written atomically (temporary file, flush,
// rename): a crash leaves either the previous file or the new one, never a mix.
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "arcnet/engine/model_zoo.hpp"
#include "arcnet/io/checkpoint.hpp"
#include "arcnet/io/safetensors.hpp"
#include "arcnet/optim/optimizer.hpp"

namespace arcnet::engine {

/// What a model is: enough to rebuild it (make_retriever) from a checkpoint alone.
struct model_spec {
  std::string arch;
  int embedding_dim = 0;
  models::arcface_options head;

  nlohmann::json to_json() const {
    return {{"arch", arch},          {"embedding_dim", embedding_dim}, {"num_classes", head.num_classes},
            {"subcenters", head.num_subcenters}, {"scale", head.scale}, {"margin", head.margin},
            {"easy_margin", head.easy_margin}};
  }
  static model_spec from_json(nlohmann::json const& j, std::string const& where) {
    model_spec s;
    try {
      s.arch = j.at("arch").get<std::string>();
      s.embedding_dim = j.at("embedding_dim").get<int>();
      s.head.num_classes = j.at("num_classes").get<int>();
      s.head.num_subcenters = j.at("subcenters").get<int>();
      s.head.scale = j.at("scale").get<double>();
      s.head.margin = j.at("margin").get<double>();
      s.head.easy_margin = j.at("easy_margin").get<bool>();
    } catch (nlohmann::json::exception const& e) {
      detail::raise<io_error>(where, ": the model description in the checkpoint is incomplete: ", e.what());
    }
    return s;
  }
};

/// Where a training run stands after a completed epoch.
struct train_progress {
  int epoch = 0;                 // epochs completed
  std::int64_t iteration = 0;    // iterations completed
  double best_recall_at_1 = -1;  // -1: not validated yet
  int best_epoch = 0;
  std::int64_t skipped_steps = 0;  // steps skipped for a non-finite loss or gradient (optim.skip-nonfinite)
  nlohmann::json history = nlohmann::json::object();  // {"loss": [[iter, loss], ...], "val": [{...}, ...]}
};

namespace detail_state {
inline constexpr char optimizer_prefix[] = "optimizer.";
inline constexpr char metadata_key[] = "arcnet";
}  // namespace detail_state

/// Writes model + optimizer state + progress to path (atomically). The optimizer state is given
/// (a distributed run with Partial FC gathers it from the ranks first).
template <class D>
void save_training_checkpoint(std::string const& path, any_retriever<float, D>& model, model_spec const& spec,
                              std::string const& optimizer_name,
                              typename optim::optimizer<float, D>::state_dict const& optimizer_state,
                              train_progress const& p) {
  io::state_dict sd = io::get_state_dict(model);
  for (auto& [k, v] : optimizer_state) sd[detail_state::optimizer_prefix + k] = v;
  nlohmann::json meta = {{"format", 1},
                         {"model", spec.to_json()},
                         {"optimizer", optimizer_name},
                         {"epoch", p.epoch},
                         {"iteration", p.iteration},
                         {"best_recall_at_1", p.best_recall_at_1},
                         {"best_epoch", p.best_epoch},
                         {"skipped_steps", p.skipped_steps},
                         {"history", p.history}};
  io::save_safetensors(path, sd, {{detail_state::metadata_key, meta.dump()}});
}
/// The same, with the optimizer's own state.
template <class D>
void save_training_checkpoint(std::string const& path, any_retriever<float, D>& model, model_spec const& spec,
                              optim::optimizer<float, D> const* opt, train_progress const& p) {
  save_training_checkpoint(path, model, spec, opt ? opt->name() : "",
                           opt ? opt->state() : typename optim::optimizer<float, D>::state_dict(), p);
}

/// A checkpoint read back: the model's tensors, the optimizer's, and the metadata (null when
/// the file is not an arcnet training checkpoint, e.g. a PyTorch .pth).
struct loaded_checkpoint {
  io::state_dict model, optimizer;
  nlohmann::json meta;
  bool has_meta() const { return meta.is_object(); }
};

/// Reads a checkpoint: .safetensors (ours or another tool's) or a PyTorch/mmpretrain .pth.
inline loaded_checkpoint read_checkpoint(std::string const& path) {
  auto ends_with = [&](std::string const& s) {
    return path.size() >= s.size() && path.compare(path.size() - s.size(), s.size(), s) == 0;
  };
  loaded_checkpoint c;
  std::map<std::string, std::string> meta;
  io::state_dict all = ends_with(".pth") || ends_with(".pt") ? io::load_pth(path) : io::load_safetensors(path, &meta);
  std::string const prefix = detail_state::optimizer_prefix;
  for (auto& [k, v] : all) {
    if (k.compare(0, prefix.size(), prefix) == 0) c.optimizer[k.substr(prefix.size())] = v;
    else c.model[k] = v;
  }
  auto it = meta.find(detail_state::metadata_key);
  if (it != meta.end()) {
    try {
      c.meta = nlohmann::json::parse(it->second);
    } catch (nlohmann::json::exception const& e) {
      detail::raise<io_error>("'", path, "': the arcnet metadata is not valid JSON: ", e.what());
    }
    if (!c.meta.is_object()) detail::raise<io_error>("'", path, "': the arcnet metadata is not a JSON object");
  }
  return c;
}

/// The progress recorded in a training checkpoint.
inline train_progress progress_of(loaded_checkpoint const& c, std::string const& path) {
  train_progress p;
  try {
    p.epoch = c.meta.at("epoch").get<int>();
    p.iteration = c.meta.at("iteration").get<std::int64_t>();
    p.best_recall_at_1 = c.meta.at("best_recall_at_1").get<double>();
    p.best_epoch = c.meta.at("best_epoch").get<int>();
    p.skipped_steps = c.meta.value("skipped_steps", std::int64_t{0});  // absent before it existed
    p.history = c.meta.at("history");
  } catch (nlohmann::json::exception const& e) {
    detail::raise<io_error>("'", path, "': not a complete arcnet training checkpoint: ", e.what());
  }
  return p;
}

/// Rebuilds the model a checkpoint describes and loads its weights (strict).
template <class D>
std::unique_ptr<any_retriever<float, D>> load_model(std::string const& path, model_spec* spec_out = nullptr) {
  auto c = read_checkpoint(path);
  if (!c.has_meta())
    detail::raise<io_error>("'", path, "' has no arcnet model description (write it with arcnet-train); ",
                            "a bare state dict cannot tell which architecture to build");
  auto spec = model_spec::from_json(c.meta.at("model"), path);
  generator g(0);
  std::unique_ptr<any_retriever<float, D>> m;
  try {
    m = make_retriever<float, D>(spec.arch, spec.embedding_dim, spec.head, g);
  } catch (error const& e) {
    detail::raise<io_error>("'", path, "': ", e.what());
  }
  try {
    io::load_state_dict(*m, c.model, true);
  } catch (error const& e) {
    detail::raise<io_error>("'", path, "': ", e.what());
  }
  if (spec_out) *spec_out = spec;
  return m;
}

}  // namespace arcnet::engine
