// arcnet-retrieve: the C++ counterpart of mmpretrain's ImageRetrievalInferencer. Embeds a
// prototype (a folder of images, or a feature file saved by --save-gallery), then prints for each
// query image its top-k gallery matches (score, gallery index, path) and, with --grid, draws them.
//   arcnet-retrieve --checkpoint best.safetensors --prototype gallery/ --save-gallery g.safetensors q1.jpg
//   arcnet-retrieve --checkpoint best.safetensors --prototype g.safetensors --topk 5 --grid out.png q1.jpg q2.jpg

#include <cstdio>
#include <filesystem>

#include <arcnet/core/threads.hpp>
#include <arcnet/engine/gallery.hpp>
#include <arcnet/engine/progress.hpp>

#include "device_embedder.hpp"
#if __has_include(<cairo.h>)
#include <arcnet/viz/grid.hpp>
#endif

int main(int argc, char** argv) {
  using namespace arcnet;
  namespace fs = std::filesystem;
  try {
    engine::retrieve_options o;
    if (!engine::parse_retrieve_options(argc, argv, o)) return 0;  // --help
    if (o.threads > 0) arcnet::set_num_threads(o.threads);
    for (auto const& q : o.queries)
      if (!fs::is_regular_file(q)) detail::raise<io_error>("query: '", q, "' is not a file");
    engine::model_spec spec;
    auto model = engine::make_embedder(o.device, o.checkpoint, &spec);
    data::pipeline tf(o.test_pipeline);
    bool const from_file = fs::is_regular_file(o.prototype);
    engine::gallery g = from_file ? engine::load_gallery(o.prototype)
                                  : engine::build_gallery(*model, spec, o.prototype, tf, o.batch_size, o.workers);
    if (from_file && g.model != spec.to_json())
      detail::raise<io_error>("prototype: '", o.prototype, "' was embedded by the model ", g.model.dump(),
                              ", not by ", spec.to_json().dump(), " of ", o.checkpoint);
    if (g.features.size(1) != model->embedding_dim())
      detail::raise<io_error>("prototype: '", o.prototype, "' holds ", g.features.size(1), "-d features, the model makes ",
                              model->embedding_dim(), "-d ones");
    std::printf("arcnet-retrieve: gallery of %zu images (%s)\n", g.paths.size(), o.prototype.c_str());
    if (!o.save_gallery.empty()) {
      engine::save_gallery(o.save_gallery, g);
      std::printf("arcnet-retrieve: gallery features saved to %s\n", o.save_gallery.c_str());
    }
    if (o.queries.empty()) return 0;
    auto q = engine::embed(*model, engine::files_as_set(o.queries, "queries"), tf, o.batch_size, o.workers);
    auto found = model->search_topk(q, g.features, o.topk, {});
#if __has_include(<cairo.h>)
    viz::grid grid(128);
#endif
    for (std::size_t i = 0; i < o.queries.size(); ++i) {
      std::printf("query %s\n", o.queries[i].c_str());
#if __has_include(<cairo.h>)
      if (i > 0) grid.new_row();
      grid.add(data::read_image(o.queries[i]), "query", fs::path(o.queries[i]).filename().string());
#endif
      for (std::size_t r = 0; r < found.indices[i].size(); ++r) {
        auto const idx = found.indices[i][r];
        auto const& path = g.paths[static_cast<std::size_t>(idx)];
        std::printf("  %zu. %.4f  #%ld  %s\n", r + 1, found.scores[i][r], static_cast<long>(idx), path.c_str());
#if __has_include(<cairo.h>)
        char score[64];
        std::snprintf(score, sizeof score, "%.3f  #%ld", found.scores[i][r], static_cast<long>(idx));
        grid.add(data::read_image(path), score, fs::path(path).filename().string());
#endif
      }
    }
    if (!o.grid.empty()) {
#if __has_include(<cairo.h>)
      grid.save_png(o.grid);
      std::printf("arcnet-retrieve: grid written to %s\n", o.grid.c_str());
#else
      detail::raise<config_error>("grid: this build has no Cairo (install libcairo2-dev and rebuild)");
#endif
    }
    return 0;
  } catch (std::exception const& e) {
    std::fprintf(stderr, "arcnet-retrieve: error: %s\n", engine::one_line(e.what()).c_str());
    return 1;
  }
}
