#pragma once
// The architectures the programs can build by name, behind one run-time interface:
// any_retriever<T, D> is an image_retriever (backbone, optional embedding neck, ArcFace head)
// whose backbone was chosen from a string ("resnet50", "cifar_resnet20", ...). Layer shapes are
// template arguments, so each name is one compile-time type; the zoo instantiates them all.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "arcnet/core/error.hpp"
#include "arcnet/models/cifar_resnet.hpp"
#include "arcnet/models/resnet.hpp"
#include "arcnet/models/retriever.hpp"

namespace arcnet::engine {

/// A retrieval model picked at run time: the interface of image_retriever<...>::module.
template <class T, class D>
class any_retriever {
 public:
  using device_type = D;
  using parameter_visitor = std::function<void(std::string const&, variable<T, D>&, nn::param_layout)>;
  using buffer_visitor = std::function<void(std::string const&, tensor<T, D>&)>;

  virtual ~any_retriever() = default;
  /// Unnormalised embeddings (N, embedding_dim()), recorded on the tape.
  virtual variable<T, D> features(variable<T, D> const& images) = 0;
  /// L2-normalised embeddings, no graph.
  virtual tensor<T, D> extract_feat(tensor<T, D> const& images) = 0;
  /// Mean ArcFace loss of a labelled batch.
  virtual variable<T, D> loss(variable<T, D> const& images, std::vector<std::int64_t> const& targets) = 0;
  virtual void train(bool on) = 0;
  virtual void for_each_parameter(parameter_visitor const& f) = 0;
  virtual void for_each_buffer(buffer_visitor const& f) = 0;
  virtual models::arcface_head<T, D>& head() = 0;
  /// Zeroes the last batch norm of every residual block (torchvision's zero_init_residual).
  virtual void zero_init_residual() = 0;
  virtual int embedding_dim() const = 0;
  std::string const& arch() const { return arch_; }

  // Generic visitors, so io::get_state_dict / load_state_dict accept an any_retriever.
  template <class F, std::enable_if_t<!std::is_same_v<std::decay_t<F>, parameter_visitor>, int> = 0>
  void for_each_parameter(F&& f) {
    for_each_parameter(parameter_visitor([&](std::string const& n, variable<T, D>& p, nn::param_layout l) { f(n, p, l); }));
  }
  template <class F, std::enable_if_t<!std::is_same_v<std::decay_t<F>, buffer_visitor>, int> = 0>
  void for_each_buffer(F&& f) {
    for_each_buffer(buffer_visitor([&](std::string const& n, tensor<T, D>& b) { f(n, b); }));
  }

 protected:
  explicit any_retriever(std::string arch) : arch_(std::move(arch)) {}

 private:
  std::string arch_;
};

namespace detail_zoo {

template <class T, class D, class Backbone, class Neck>
class retriever_of final : public any_retriever<T, D> {
  using net = models::image_retriever<Backbone, Neck>;

 public:
  retriever_of(std::string arch, models::arcface_options head, generator& g)
      : any_retriever<T, D>(std::move(arch)), m_(std::move(head), g) {}
  variable<T, D> features(variable<T, D> const& x) override { return m_.features(x); }
  tensor<T, D> extract_feat(tensor<T, D> const& x) override { return m_.extract_feat(x); }
  variable<T, D> loss(variable<T, D> const& x, std::vector<std::int64_t> const& y) override { return m_.loss(x, y); }
  void train(bool on) override { m_.train(on); }
  void for_each_parameter(typename any_retriever<T, D>::parameter_visitor const& f) override { m_.for_each_parameter(f); }
  void for_each_buffer(typename any_retriever<T, D>::buffer_visitor const& f) override { m_.for_each_buffer(f); }
  models::arcface_head<T, D>& head() override { return m_.head(); }
  void zero_init_residual() override { models::zero_init_residual<Backbone>(m_.backbone()); }
  int embedding_dim() const override { return net::embedding_dim; }

 private:
  typename net::template module<T, D> m_;
};

template <class T, class D>
using factory = std::function<std::unique_ptr<any_retriever<T, D>>(std::string const&, models::arcface_options, generator&)>;

template <class T, class D, class Backbone, class Neck>
factory<T, D> make_factory() {
  return [](std::string const& arch, models::arcface_options head, generator& g) -> std::unique_ptr<any_retriever<T, D>> {
    return std::make_unique<retriever_of<T, D, Backbone, Neck>>(arch, std::move(head), g);
  };
}

/// One backbone with each supported neck: none, or Linear + BN1d to 128, 256 or 512 dims.
template <class T, class D, class Backbone>
factory<T, D> with_neck(int dim) {
  constexpr int in = Backbone::feature_dim;
  switch (dim) {
    case 0: return make_factory<T, D, Backbone, nn::identity>();
    case 128: return make_factory<T, D, Backbone, models::embedding_neck<in, 128>>();
    case 256: return make_factory<T, D, Backbone, models::embedding_neck<in, 256>>();
    case 512: return make_factory<T, D, Backbone, models::embedding_neck<in, 512>>();
    default: return nullptr;
  }
}

}  // namespace detail_zoo

/// The architecture names make_retriever accepts.
inline std::vector<std::string> architectures() {
  return {"resnet18",       "resnet34",       "resnet50",       "resnet101",      "resnet152",
          "cifar_resnet8",  "cifar_resnet14", "cifar_resnet20", "cifar_resnet32", "cifar_resnet56"};
}
/// The embedding widths an optional neck can have (0: no neck, the backbone's pooled feature).
inline std::vector<int> neck_dims() { return {0, 128, 256, 512}; }

/// Builds `arch` with an ArcFace head (head.in_features is set from the model) and, when
/// embedding_dim > 0, an embedding neck. config_error naming the value and the choices for an
/// unknown architecture or an unsupported embedding width. Images are (N, H, W, 3).
template <class T, class D>
std::unique_ptr<any_retriever<T, D>> make_retriever(std::string const& arch, int embedding_dim,
                                                     models::arcface_options head, generator& g = default_generator()) {
  detail_zoo::factory<T, D> f;
  if (arch == "resnet18") f = detail_zoo::with_neck<T, D, models::resnet18>(embedding_dim);
  else if (arch == "resnet34") f = detail_zoo::with_neck<T, D, models::resnet34>(embedding_dim);
  else if (arch == "resnet50") f = detail_zoo::with_neck<T, D, models::resnet50>(embedding_dim);
  else if (arch == "resnet101") f = detail_zoo::with_neck<T, D, models::resnet101>(embedding_dim);
  else if (arch == "resnet152") f = detail_zoo::with_neck<T, D, models::resnet152>(embedding_dim);
  else if (arch == "cifar_resnet8") f = detail_zoo::with_neck<T, D, models::cifar_resnet8>(embedding_dim);
  else if (arch == "cifar_resnet14") f = detail_zoo::with_neck<T, D, models::cifar_resnet14>(embedding_dim);
  else if (arch == "cifar_resnet20") f = detail_zoo::with_neck<T, D, models::cifar_resnet20>(embedding_dim);
  else if (arch == "cifar_resnet32") f = detail_zoo::with_neck<T, D, models::cifar_resnet32>(embedding_dim);
  else if (arch == "cifar_resnet56") f = detail_zoo::with_neck<T, D, models::cifar_resnet56>(embedding_dim);
  else {
    std::string names;
    for (auto const& a : architectures()) names += (names.empty() ? "" : ", ") + a;
    detail::raise<config_error>("model: unknown architecture '", arch, "'; expected one of ", names);
  }
  if (!f)
    detail::raise<config_error>("model: unsupported embedding dimension ", embedding_dim,
                                "; expected 0 (no neck), 128, 256 or 512");
  return f(arch, std::move(head), g);
}

}  // namespace arcnet::engine
