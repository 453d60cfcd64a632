#pragma once
// Query-vs-gallery evaluation of a model: embed both sets (eval mode, no graph), search the
// gallery in chunks (metrics::search_topk) and compute Recall@k, mAP@10 (both of mmpretrain's
// modes) and MAP@R (metrics::evaluate_retrieval); and the similarities of verification pairs.
#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "arcnet/core/pinned.hpp"

#include "arcnet/distributed/communicator.hpp"
#include "arcnet/engine/datasets.hpp"
#include "arcnet/engine/model_zoo.hpp"
#include "arcnet/metrics/report.hpp"
#include "arcnet/metrics/search.hpp"
#include "arcnet/metrics/verification.hpp"

namespace arcnet::engine {

/// Called while embedding: (images done, images in all).
using progress_callback = std::function<void(index_t, index_t)>;

/// A model's inference side behind one interface whose device is chosen at run time: a program
/// compiled by g++ embeds on the GPU through an embedder made in a translation unit compiled by
/// nvcc (examples/embedder_cuda.cu). embed(), evaluate(), pair_scores() and build_gallery() take
/// an embedder or an any_retriever alike.
class embedder {
 public:
  using device_type = cpu;  // what it takes and returns: host tensors
  virtual ~embedder() = default;
  /// L2-normalised embeddings (N, embedding_dim()) of host images (N, H, W, 3), on the host.
  virtual tensor<float, cpu> extract_feat(tensor<float, cpu> const& images) = 0;
  virtual void train(bool on) = 0;
  virtual int embedding_dim() const = 0;
  virtual char const* device() const = 0;
  /// metrics::search_topk of host embeddings, run on this embedder's device.
  virtual metrics::search_result<float> search_topk(tensor<float, cpu> const& queries,
                                                    tensor<float, cpu> const& gallery, index_t k,
                                                    metrics::search_options const& o) = 0;
};

/// An embedder over a model on device D: batches go to D (without a wait from pinned memory),
/// embeddings come back to the host.
template <class D>
class device_embedder final : public embedder {
 public:
  explicit device_embedder(std::unique_ptr<any_retriever<float, D>> model) : model_(std::move(model)) {
    ARCNET_ASSERT(model_);
  }
  tensor<float, cpu> extract_feat(tensor<float, cpu> const& images) override {
    return model_->extract_feat(to_device_async<D>(images)).template to<cpu>();
  }
  void train(bool on) override { model_->train(on); }
  int embedding_dim() const override { return model_->embedding_dim(); }
  char const* device() const override { return D::name; }
  metrics::search_result<float> search_topk(tensor<float, cpu> const& queries, tensor<float, cpu> const& gallery,
                                            index_t k, metrics::search_options const& o) override {
    return metrics::search_topk(queries.template to<D>(), gallery.template to<D>(), k, o);
  }

 private:
  std::unique_ptr<any_retriever<float, D>> model_;
};

/// L2-normalised embeddings (N, d) of every image of `set`, in set order, on the host. With a
/// communicator of several ranks, each embeds every size()-th image and the rows are gathered,
/// so that every rank ends with all of them. Model: an any_retriever<float, D> or an embedder.
template <class Model>
tensor<float, cpu> embed(Model& model, image_set const& set, data::pipeline const& tf, int batch_size,
                         int workers, progress_callback const& progress = {}, distributed::communicator* comm = nullptr) {
  using D = typename Model::device_type;
  data::loader_options lo;
  lo.batch_size = batch_size;
  lo.workers = workers;
  lo.prefetch = std::max(2, workers);
  int const ranks = comm ? comm->size() : 1, rank = comm ? comm->rank() : 0;
  lo.rank = rank;
  lo.world_size = ranks;
  auto loader = set.loader(tf, lo);
  model.train(false);
  // Zeros: with several ranks, the rows of the others stay zero here until the sum below.
  auto out = tensor<float, cpu>::zeros(shape{set.size(), model.embedding_dim()});
  loader->begin_epoch(0);
  data::batch b;
  index_t done = 0;
  while (loader->next(b)) {
    auto f = model.extract_feat(b.images.template to<D>()).template to<cpu>();
    if (f.size(0) != b.size()) detail::raise<shape_error>("embed: expected ", b.size(), " embeddings, got ", f.shape());
    for (index_t r = 0; r < b.size(); ++r) {  // indices: a bad sample may have been skipped
      index_t const i = b.indices[static_cast<std::size_t>(r)];
      if (i % ranks != rank) continue;  // the sampler's padding: another rank's image, embedded there
      std::memcpy(out.data() + i * f.size(1), f.data() + r * f.size(1), sizeof(float) * static_cast<std::size_t>(f.size(1)));
    }
    done += b.size() * ranks;
    if (progress) progress(std::min(done, set.size()), set.size());
  }
  if (ranks > 1) comm->all_reduce(out.data(), static_cast<std::size_t>(out.numel()), distributed::reduce_op::sum);
  return out;
}

/// What evaluate() measured.
struct evaluation {
  metrics::retrieval_report report;
  metrics::search_result<float> found;  // the ranking of each query (k = what the metrics needed)
  double embed_seconds = 0, search_seconds = 0;
};

/// Embeds the query and gallery sets of `s` and scores the ranking of the gallery for each
/// query (leave-one-out: a query never retrieves itself). MAP@R is computed when the search
/// depth it needs (the largest class in the gallery) is at most `max_k_for_map_at_r`. With a
/// communicator of several ranks, the embedding is shared among them and only rank 0 searches
/// and scores (the others return an empty report).
template <class Model>
evaluation evaluate(Model& model, splits const& s, data::pipeline const& tf, int batch_size,
                    int workers, progress_callback const& progress = {}, index_t max_k_for_map_at_r = 20000,
                    distributed::communicator* comm = nullptr) {
  using clock = std::chrono::steady_clock;
  evaluation ev;
  auto t0 = clock::now();
  index_t total = s.query.size() + (s.leave_one_out ? 0 : s.gallery.size());
  auto q = embed(model, s.query, tf, batch_size, workers,
                 progress ? progress_callback([&](index_t d, index_t) { progress(d, total); }) : progress_callback(), comm);
  tensor<float, cpu> g = s.leave_one_out ? q
                                         : embed(model, s.gallery, tf, batch_size, workers,
                                                 progress ? progress_callback([&](index_t d, index_t) {
                                                   progress(s.query.size() + d, total);
                                                 })
                                                          : progress_callback(),
                                                 comm);
  auto t1 = clock::now();
  ev.embed_seconds = std::chrono::duration<double>(t1 - t0).count();
  if (comm && comm->rank() != 0) return ev;
  std::vector<index_t> self;
  if (s.leave_one_out)
    for (index_t i = 0; i < s.query.size(); ++i) self.push_back(i);
  index_t k = metrics::required_k(s.query.labels(), s.gallery.labels(), self, true);
  bool with_r = k <= max_k_for_map_at_r;
  if (!with_r) k = 10;
  metrics::search_options so;
  so.query_gallery_index = self;
  if constexpr (std::is_base_of_v<embedder, Model>) {
    ev.found = model.search_topk(q, g, k, so);  // on the embedder's device
  } else {
    using D = typename Model::device_type;
    ev.found = metrics::search_topk(q.template to<D>(), g.template to<D>(), k, so);
  }
  ev.report = metrics::evaluate_retrieval(ev.found, s.query.labels(), s.gallery.labels(), with_r);
  ev.search_seconds = std::chrono::duration<double>(clock::now() - t1).count();
  return ev;
}

/// Cosine similarities of the image pairs of a verification list: every distinct image is
/// embedded once; with flip, an image's embedding is the normalised sum of its own and its
/// mirror image's (insightface's evaluation).
template <class Model>
std::vector<float> pair_scores(Model& model, metrics::pair_list const& pairs, data::pipeline const& tf,
                               bool flip, int batch_size, int workers) {
  std::vector<std::string> paths;
  std::map<std::string, index_t> index;
  for (auto const& p : pairs.pairs)
    for (auto const* f : {&p.a, &p.b})
      if (index.emplace(*f, static_cast<index_t>(paths.size())).second) paths.push_back(*f);
  auto set = files_as_set(paths, "pairs");
  auto e = embed(model, set, tf, batch_size, workers);
  if (flip) {
    data::pipeline mirrored = tf;
    mirrored.add(data::random_horizontal_flip(1.0));
    auto m = embed(model, set, mirrored, batch_size, workers);
    index_t const d = e.size(1);
    for (index_t i = 0; i < e.size(0); ++i) {
      double norm = 0;
      for (index_t k = 0; k < d; ++k) {
        e[i * d + k] += m[i * d + k];
        norm += double(e[i * d + k]) * e[i * d + k];
      }
      float const inv = norm > 0 ? static_cast<float>(1 / std::sqrt(norm)) : 0.f;
      for (index_t k = 0; k < d; ++k) e[i * d + k] *= inv;
    }
  }
  index_t const d = e.size(1);
  std::vector<float> scores;
  scores.reserve(pairs.pairs.size());
  for (auto const& p : pairs.pairs) {
    float const* a = e.data() + index.at(p.a) * d;
    float const* b = e.data() + index.at(p.b) * d;
    double dot = 0;
    for (index_t k = 0; k < d; ++k) dot += double(a[k]) * b[k];
    scores.push_back(static_cast<float>(dot));
  }
  return scores;
}

}  // namespace arcnet::engine
