// arcnet-invert: turns an embedding back into an image, as the ArcFace paper does with a trained
// network alone (no generator): from noise, Adam on the pixels raises the cosine similarity of the
// image's embedding to the target's, while priors keep every batch-norm layer's activation
// statistics near its running ones and the image smooth (engine/invert.hpp).
//   arcnet-invert --config examples/configs/orl-faces.cfg --checkpoint work/orl/latest.safetensors
//                 --target /path/to/orl_faces/s35/1.pgm --out face.png --strip steps.png
//   arcnet-invert --checkpoint best.safetensors --embedding face.safetensors --size 46x56 --out face.png

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <arcnet/core/threads.hpp>
#include <arcnet/data/decode.hpp>
#include <arcnet/data/encode.hpp>
#include <arcnet/engine/invert.hpp>
#include <arcnet/engine/options.hpp>
#include <arcnet/engine/progress.hpp>
#include <arcnet/engine/train_state.hpp>
#include <arcnet/io/safetensors.hpp>
#if __has_include(<cairo.h>)
#include <arcnet/viz/grid.hpp>
#endif

namespace {

using namespace arcnet;

/// A saved embedding: a .safetensors file holding one tensor, or whitespace-separated numbers.
tensor<float, cpu> read_embedding(std::string const& path, index_t dim) {
  tensor<float, cpu> e;
  if (std::filesystem::path(path).extension() == ".safetensors") {
    auto sd = io::load_safetensors(path);
    if (sd.size() != 1)
      detail::raise<io_error>("embedding: '", path, "' holds ", sd.size(), " tensors; expected exactly one");
    e = sd.begin()->second.clone();
  } else {
    std::ifstream in(path);
    if (!in) detail::raise<io_error>("embedding: cannot open '", path, "'");
    std::vector<float> v;
    std::string word;
    while (in >> word) {
      try {
        std::size_t used = 0;
        v.push_back(std::stof(word, &used));
        if (used != word.size()) throw std::invalid_argument(word);
      } catch (std::exception const&) {
        detail::raise<io_error>("embedding: '", path, "': expected numbers, found '", word, "'");
      }
    }
    e = tensor<float, cpu>(shape{static_cast<index_t>(v.size())});
    std::copy(v.begin(), v.end(), e.data());
  }
  if (e.numel() != dim)
    detail::raise<io_error>("embedding: '", path, "' holds ", e.numel(), " values; the model's embedding has ", dim);
  return e.view({dim});
}

}  // namespace

int main(int argc, char** argv) {
  try {
    engine::invert_options o;
    if (!engine::parse_invert_options(argc, argv, o)) return 0;  // --help
    if (o.threads > 0) arcnet::set_num_threads(o.threads);
    engine::model_spec spec;
    auto model = engine::load_model<cpu>(o.checkpoint, &spec);
    model->train(false);
    data::pipeline tf(o.test_pipeline);

    tensor<float, cpu> target;
    data::image shown;  // the target as the model sees it, for the strip
    index_t h = 0, w = 0;
    if (!o.target.empty()) {
      auto img = data::read_image(o.target);
      shown = tf.transform(img, 0);
      auto x = tf(img, 0);
      h = x.size(0), w = x.size(1);
      target = model->extract_feat(x.view({1, h, w, x.size(2)})).view({-1});
      if (!o.save_embedding.empty()) {
        io::save_safetensors(o.save_embedding, {{"embedding", target}}, {{"model", spec.to_json().dump()}});
        std::printf("arcnet-invert: embedding of %s saved to %s\n", o.target.c_str(), o.save_embedding.c_str());
      }
    } else {
      target = read_embedding(o.embedding, model->embedding_dim());
    }
    if (!o.size.empty()) {
      auto [sw, sh] = engine::parse_size(o.size, "size");
      w = sw, h = sh;
    }

    engine::inversion_options io;
    io.steps = o.steps;
    io.lr = o.lr;
    io.bn_weight = o.bn_weight;
    io.tv_weight = o.tv_weight;
    io.seed = o.seed;
    io.grey = o.grey;
    io.normalization = tf.normalize();
    std::printf("arcnet-invert: %s (%s, %d-d), %ldx%ld image, %d steps\n", o.checkpoint.c_str(), spec.arch.c_str(),
                model->embedding_dim(), static_cast<long>(w), static_cast<long>(h), o.steps);
    auto const start = std::chrono::steady_clock::now();
    auto r = engine::invert_embedding(*model, target, shape{h, w, 3}, io);
    for (auto const& s : r.history)
      if (s.step % std::max(1, o.steps / 10) == 0)
        std::printf("  step %4d  cosine %.4f  bn prior %.4f  tv %.4f\n", s.step, s.cosine, s.bn_prior, s.tv);
    data::write_png(o.out, engine::to_image(r.image, io.normalization));
    std::printf("arcnet-invert: cosine to the target %.4f (the starting noise: %.4f) in %s; image written to %s\n",
                r.cosine, r.initial_cosine, engine::format_duration(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()).c_str(), o.out.c_str());
    if (!o.strip.empty()) {
#if __has_include(<cairo.h>)
      viz::grid strip(112);
      if (!shown.empty()) strip.add(shown, "target", std::filesystem::path(o.target).filename().string());
      for (auto const& [step, image] : r.snapshots) {
        double const cosine = step < o.steps ? r.history[static_cast<std::size_t>(step)].cosine : r.cosine;
        char caption[64];
        std::snprintf(caption, sizeof caption, "cos %.3f", cosine);
        strip.add(engine::to_image(image, io.normalization), "step " + std::to_string(step), caption);
      }
      strip.save_png(o.strip);
      std::printf("arcnet-invert: progress strip written to %s\n", o.strip.c_str());
#else
      detail::raise<config_error>("strip: this build has no Cairo (install libcairo2-dev and rebuild)");
#endif
    }
    return 0;
  } catch (std::exception const& e) {
    std::fprintf(stderr, "arcnet-invert: error: %s\n", engine::one_line(e.what()).c_str());
    return 1;
  }
}
