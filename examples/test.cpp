// arcnet-test: evaluates a checkpoint as mmpretrain's tools/test.py does for an image
// retriever: embeds the query and gallery sets, searches the gallery in chunks, prints and
// (with --out) writes as JSON Recall@1/5/10, mAP@10 in mmpretrain's "IR" and "integrate" modes,
// and MAP@R. The model is rebuilt from the checkpoint; a training config supplies the data:
//   arcnet-test --config examples/configs/fashion-mnist.cfg --checkpoint work/fashion-mnist/best.safetensors
// With --pairs it also verifies image pairs (face verification: 10-fold accuracy, ROC AUC,
// TAR@FAR), from an LFW pairs.txt or a list, or from pairs it draws first (--make-pairs N).

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include <arcnet/core/threads.hpp>
#include <arcnet/engine/evaluate.hpp>
#include <arcnet/engine/progress.hpp>
#include <arcnet/engine/train_state.hpp>
#include <arcnet/io/detail/atomic_file.hpp>

#include "device_embedder.hpp"
#if __has_include(<cairo.h>)
#include <arcnet/viz/grid.hpp>
#endif

namespace {

/// Prints (and draws, with --grid) the top-5 gallery matches of `show` queries spread over the set.
void show_examples(arcnet::engine::test_options const& o, arcnet::engine::splits const& s,
                   arcnet::engine::evaluation const& ev) {
  using namespace arcnet;
#if __has_include(<cairo.h>)
  viz::grid grid(96);
#endif
  auto const nq = s.query.size();
  for (int n = 0; n < o.show && n < nq; ++n) {
    index_t const q = n * nq / o.show;
    auto const ql = s.query.labels()[static_cast<std::size_t>(q)];
    std::printf("query #%ld (label %ld):", static_cast<long>(q), static_cast<long>(ql));
#if __has_include(<cairo.h>)
    if (n > 0) grid.new_row();
    grid.add(s.query.image(q), "query #" + std::to_string(q), "label " + std::to_string(ql), viz::color{40, 40, 40});
#endif
    auto const& found = ev.found.indices[static_cast<std::size_t>(q)];
    for (std::size_t r = 0; r < found.size() && r < 5; ++r) {
      auto const g = found[r];
      auto const gl = s.gallery.labels()[static_cast<std::size_t>(g)];
      float const score = ev.found.scores[static_cast<std::size_t>(q)][r];
      std::printf("  #%ld (label %ld, %.3f)%s", static_cast<long>(g), static_cast<long>(gl), score, gl == ql ? "" : " x");
#if __has_include(<cairo.h>)
      char caption[64];
      std::snprintf(caption, sizeof caption, "%.3f  #%ld", score, static_cast<long>(g));
      grid.add(s.gallery.image(g), caption, "label " + std::to_string(gl),
               gl == ql ? viz::color{30, 160, 60} : viz::color{210, 40, 40});
#endif
    }
    std::printf("\n");
  }
  if (o.grid.empty()) return;
#if __has_include(<cairo.h>)
  grid.save_png(o.grid);
  std::printf("retrieval examples drawn to %s (green: same label, red: another)\n", o.grid.c_str());
#else
  detail::raise<config_error>("grid: this build has no Cairo (install libcairo2-dev and rebuild)");
#endif
}

/// Verification of --pairs (drawn first from the evaluation set with --make-pairs): prints the
/// table and returns it as JSON.
nlohmann::json verify(arcnet::engine::test_options const& o, arcnet::engine::splits const& s,
                      arcnet::engine::embedder& model, int batch) {
  using namespace arcnet;
  if (o.make_pairs > 0) {
    // Paths relative to data.root, as read_pairs resolves them, so the file moves with the data.
    namespace fs = std::filesystem;
    // The evaluation images: the query set, and the gallery when it is another set.
    std::vector<std::string> paths;
    std::vector<std::int64_t> labels;
    auto take = [&](engine::image_set const& set) {
      for (index_t i = 0; i < set.size(); ++i) {
        auto rel = fs::path(set.path(i)).lexically_relative(o.data.root);
        paths.push_back(rel.empty() || *rel.begin() == ".." ? set.path(i) : rel.string());
        labels.push_back(set.labels()[static_cast<std::size_t>(i)]);
      }
    };
    take(s.query);
    if (!s.leave_one_out) take(s.gallery);
    if (paths.empty() || paths.front().empty())
      detail::raise<config_error>("make-pairs: the evaluation set of ", o.data.root, " has no image files to pair");
    auto made = metrics::make_pairs(paths, labels, o.make_pairs, 10, o.pairs_seed);
    metrics::write_pairs(made, o.pairs);
    std::printf("pairs: %zu drawn from the evaluation set (seed %llu), written to %s\n", made.pairs.size(),
                static_cast<unsigned long long>(o.pairs_seed), o.pairs.c_str());
  }
  auto pairs = metrics::read_pairs(o.pairs, o.data.kind == "list" ? "" : o.data.root);
  auto const start = std::chrono::steady_clock::now();
  auto scores = engine::pair_scores(model, pairs, data::pipeline(o.data.test_pipeline), o.flip, batch, o.data.workers);
  double const seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  auto v = metrics::evaluate_verification(scores, pairs);
  std::printf("%s(%s format%s; embedding %.1f s)\n", v.str().c_str(), pairs.format.c_str(),
              o.flip ? ", with mirror images" : "", seconds);
  nlohmann::json tar = nlohmann::json::array();
  for (auto const& t : v.tar)
    tar.push_back({{"far_target", t.far_target}, {"tar", t.tar}, {"far", t.far}, {"threshold", t.threshold}});
  return {{"pairs", o.pairs},          {"format", pairs.format},       {"num_pairs", v.num_pairs},
          {"num_same", v.num_positive}, {"num_different", v.num_negative}, {"folds", v.num_folds},
          {"accuracy", v.accuracy},     {"accuracy_std", v.accuracy_std}, {"best_threshold", v.best_threshold},
          {"best_accuracy", v.best_accuracy}, {"auc", v.auc},          {"tar_at_far", tar},
          {"flip", o.flip}};
}

}  // namespace

int main(int argc, char** argv) {
  using namespace arcnet;
  try {
    engine::test_options o;
    if (!engine::parse_test_options(argc, argv, o)) return 0;  // --help
    if (o.threads > 0) arcnet::set_num_threads(o.threads);
    auto s = engine::open_splits(o.data, o.eval, false, true);
    engine::model_spec spec;
    auto model = engine::make_embedder(o.device, o.checkpoint, &spec);
    std::printf("arcnet-test: %s (%d-d embeddings) from %s on %s; %ld queries vs %s%ld\n", spec.arch.c_str(),
                model->embedding_dim(), o.checkpoint.c_str(), model->device(), static_cast<long>(s.query.size()),
                s.leave_one_out ? "each other, " : "", static_cast<long>(s.gallery.size()));
    std::fflush(stdout);
    int const batch = o.eval.batch_size > 0 ? o.eval.batch_size : o.data.batch_size;
    auto ev = engine::evaluate(*model, s, data::pipeline(o.data.test_pipeline), batch, o.data.workers);
    auto const& r = ev.report;
    std::printf("Recall@1   %6.2f\nRecall@5   %6.2f\nRecall@10  %6.2f\n", r.recall_at_1, r.recall_at_5, r.recall_at_10);
    std::printf("mAP@10     %6.2f  (IR)\nmAP@10     %6.2f  (integrate)\n", r.map_at_10, r.map_at_10_integrate);
    if (std::isfinite(r.map_at_r)) std::printf("MAP@R      %6.2f  (R-precision %.2f)\n", r.map_at_r, r.r_precision);
    std::printf("embedding %.1f s, search %.1f s\n", ev.embed_seconds, ev.search_seconds);
    if (o.show > 0) show_examples(o, s, ev);
    nlohmann::json verification;
    if (!o.pairs.empty()) verification = verify(o, s, *model, batch);
    if (!o.out.empty()) {
      nlohmann::json j = {{"checkpoint", o.checkpoint},   {"queries", r.num_queries},
                          {"recall@1", r.recall_at_1},    {"recall@5", r.recall_at_5},
                          {"recall@10", r.recall_at_10},  {"mAP@10", r.map_at_10},
                          {"mAP@10_integrate", r.map_at_10_integrate},
                          {"MAP@R", std::isfinite(r.map_at_r) ? nlohmann::json(r.map_at_r) : nlohmann::json()},
                          {"R-precision", std::isfinite(r.r_precision) ? nlohmann::json(r.r_precision) : nlohmann::json()},
                          {"protocol", o.eval.protocol}};
      if (!verification.is_null()) j["verification"] = verification;
      detail::io_atomic_writer out(o.out, "arcnet-test --out");
      out.write(j.dump(2) + "\n");
      out.commit();
    }
    return 0;
  } catch (std::exception const& e) {
    std::fprintf(stderr, "arcnet-test: error: %s\n", engine::one_line(e.what()).c_str());
    return 1;
  }
}
