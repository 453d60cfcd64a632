#pragma once
// image_retriever<Backbone, Neck>: the model of mmpretrain's resnet50-arcface_inshop — an
// encoder (backbone, pooled feature, optional embedding neck) and an ArcFace head. Parameter
// names: "backbone.*", "neck.*", "head.norm_product.weight".
#include <string>
#include <type_traits>
#include <vector>

#include "arcnet/core/precision.hpp"
#include "arcnet/models/arcface.hpp"
#include "arcnet/nn/batch_norm.hpp"
#include "arcnet/nn/linear.hpp"
#include "arcnet/nn/sequential.hpp"
#include "arcnet/nn/stateless.hpp"
#include "arcnet/ops/cast.hpp"
#include "arcnet/ops/normalize.hpp"

namespace arcnet::models {

namespace names {
inline constexpr char fc[] = "fc";
inline constexpr char bn[] = "bn";
}  // namespace names

/// An embedding neck: Linear (no bias) + BatchNorm1d, from In to Dim features ("neck.fc", "neck.bn").
template <int In, int Dim>
using embedding_neck = nn::sequential<nn::named<names::fc, nn::linear<In, Dim, false>>,
                                      nn::named<names::bn, nn::batch_norm<Dim>>>;

template <class Backbone, class Neck = nn::identity>
struct image_retriever {
  /// Width of the embedding: the neck's output, or the backbone's feature.
  static constexpr int embedding_dim = Neck::out_channels == nn::same_channels ? Backbone::feature_dim : Neck::out_channels;

  template <class T, class D>
  class module {
   public:
    /// head.in_features is set to embedding_dim.
    explicit module(arcface_options head, generator& g = default_generator())
        : backbone_(g), neck_(g), head_(with_features(std::move(head)), g) {}

    /// (N, H, W, C) images -> (N, embedding_dim) features, not normalised (recorded on the tape).
    /// In bf16 mode on the CUDA device the backbone runs on bf16 activations (precision.hpp's
    /// bf16_activations): the images are cast to bf16 and the pooled feature back to fp32, so the
    /// neck and the head stay in fp32.
    variable<T, D> features(variable<T, D> const& images) {
      if constexpr (std::is_same_v<D, cuda> && std::is_same_v<T, float>) {
        if (precision::bf16_activations())
          return neck_.forward(ops::cast<float>(backbone_.forward(ops::cast<bfloat16>(images))));
      }
      return neck_.forward(backbone_.forward(images));
    }
    /// L2-normalised embeddings (N, embedding_dim), without recording a graph.
    tensor<T, D> extract_feat(tensor<T, D> const& images) {
      autograd::no_grad guard;
      return ops::l2_normalize(features(variable<T, D>(images)), 1).value();
    }
    /// Mean ArcFace cross-entropy of a labelled batch.
    variable<T, D> loss(variable<T, D> const& images, std::vector<std::int64_t> const& targets) {
      return head_.loss(features(images), targets);
    }
    /// Evaluation logits s * cos (N, C).
    variable<T, D> logits(variable<T, D> const& images) { return head_.forward(features(images)); }

    template <class F>
    void for_each_parameter(F&& f, std::string const& prefix = "") {
      backbone_.for_each_parameter(f, detail::join_name(prefix, "backbone"));
      neck_.for_each_parameter(f, detail::join_name(prefix, "neck"));
      head_.for_each_parameter(f, detail::join_name(prefix, "head"));
    }
    template <class F>
    void for_each_buffer(F&& f, std::string const& prefix = "") {
      backbone_.for_each_buffer(f, detail::join_name(prefix, "backbone"));
      neck_.for_each_buffer(f, detail::join_name(prefix, "neck"));
      head_.for_each_buffer(f, detail::join_name(prefix, "head"));
    }
    void train(bool on) {
      backbone_.train(on);
      neck_.train(on);
      head_.train(on);
    }
    auto& backbone() { return backbone_; }
    auto& neck() { return neck_; }
    arcface_head<T, D>& head() { return head_; }

   private:
    static arcface_options with_features(arcface_options o) {
      o.in_features = embedding_dim;
      return o;
    }
    typename Backbone::template module<T, D> backbone_;
    typename Neck::template module<T, D> neck_;
    arcface_head<T, D> head_;
  };
};

}  // namespace arcnet::models
