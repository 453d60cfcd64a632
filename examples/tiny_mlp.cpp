// arcnet-tiny-mlp: the demo that scripts/run_demo.sh runs. Trains a 2 -> 64 -> 64 -> 3 ReLU
// network with SGD (Nesterov momentum, weight decay) on a synthetic three-arm spiral and
// prints the loss as it falls and the final training accuracy, in a few seconds on one core.
//
// The parts (data set, model, one training epoch, evaluation) are separate functions so that
// the demo can become ArcFace on Fashion-MNIST by swapping the data set and the model.
//
//   arcnet-tiny-mlp [--epochs N] [--seed S] [--lr X]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <numeric>
#include <string>
#include <vector>

#include <arcnet/arcnet.hpp>
#include <arcnet/ops/loss.hpp>
#include <arcnet/optim/sgd.hpp>

namespace demo {

using namespace arcnet;
using real = float;
using var = variable<real, cpu>;

struct options {
  int epochs = 60;
  int batch_size = 32;
  double lr = 0.1;
  std::uint64_t seed = 7;
};

/// Inputs (N, F) and integer labels (N).
struct dataset {
  tensor<real, cpu> inputs;
  std::vector<std::int64_t> labels;
  int num_classes = 0;
  index_t size() const { return inputs.size(0); }
};

/// A three-arm spiral in the plane (the classic cs231n toy set): `per_class` points per arm,
/// radius 0..1, 4 radians of turn per arm, Gaussian angle noise.
inline dataset make_spiral(int per_class, int classes, generator& g) {
  dataset d;
  d.num_classes = classes;
  d.inputs = tensor<real, cpu>::uninitialized(shape{index_t(per_class) * classes, 2});
  for (int c = 0; c < classes; ++c)
    for (int i = 0; i < per_class; ++i) {
      double r = double(i) / (per_class - 1);
      double t = c * 4.0 + 4.0 * r + 0.2 * g.normal();
      index_t row = index_t(c) * per_class + i;
      d.inputs.at(row, 0) = static_cast<real>(r * std::sin(t));
      d.inputs.at(row, 1) = static_cast<real>(r * std::cos(t));
      d.labels.push_back(c);
    }
  return d;
}

/// Rows `idx` of d as one batch.
inline std::pair<var, std::vector<std::int64_t>> gather(dataset const& d, std::vector<index_t> const& idx) {
  index_t f = d.inputs.size(1);
  auto x = tensor<real, cpu>::uninitialized(shape{index_t(idx.size()), f});
  std::vector<std::int64_t> y;
  for (size_t i = 0; i < idx.size(); ++i) {
    std::copy_n(d.inputs.data() + idx[i] * f, f, x.data() + index_t(i) * f);
    y.push_back(d.labels[static_cast<size_t>(idx[i])]);
  }
  return {var(x), y};
}

/// A multi-layer perceptron with ReLU between linear layers; PyTorch's nn.Linear initialisation.
class mlp {
 public:
  mlp(std::vector<index_t> const& widths, generator& g) {
    for (size_t i = 0; i + 1 < widths.size(); ++i) {
      double bound = 1.0 / std::sqrt(double(widths[i]));
      weights_.emplace_back(rand<real>(shape{widths[i + 1], widths[i]}, g, -bound, bound), true);  // (out, in)
      biases_.emplace_back(rand<real>(shape{widths[i + 1]}, g, -bound, bound), true);              // (out)
    }
  }
  /// (N, widths.front()) -> logits (N, widths.back())
  var forward(var x) const {
    for (size_t i = 0; i < weights_.size(); ++i) {
      x = ops::linear(x, weights_[i], biases_[i]);
      if (i + 1 < weights_.size()) x = ops::relu(x);
    }
    return x;
  }
  /// Weights get weight decay, biases do not (mmpretrain's paramwise option bias_decay_mult=0).
  std::vector<var> const& weights() const { return weights_; }
  std::vector<var> const& biases() const { return biases_; }
  index_t num_parameters() const {
    index_t n = 0;
    for (size_t i = 0; i < weights_.size(); ++i) n += weights_[i].numel() + biases_[i].numel();
    return n;
  }

 private:
  std::vector<var> weights_, biases_;
};

/// One pass over d in shuffled mini-batches; returns the mean loss.
template <class Model, class Optimizer>
double train_epoch(Model& model, Optimizer& opt, dataset const& d, int batch_size, generator& g) {
  std::vector<index_t> order(static_cast<size_t>(d.size()));
  std::iota(order.begin(), order.end(), index_t(0));
  for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[g.below(i)]);  // Fisher-Yates
  double total = 0;
  for (size_t begin = 0; begin < order.size(); begin += size_t(batch_size)) {
    std::vector<index_t> idx(order.begin() + long(begin),
                             order.begin() + long(std::min(order.size(), begin + size_t(batch_size))));
    auto [x, y] = gather(d, idx);
    opt.zero_grad();
    auto loss = ops::cross_entropy(model.forward(x), y);
    loss.backward();
    opt.step();
    total += double(loss.value().item()) * double(idx.size());
  }
  return total / double(d.size());
}

/// Loss and accuracy of the model on all of d, without recording a graph.
template <class Model>
std::pair<double, double> evaluate(Model const& model, dataset const& d) {
  autograd::no_grad guard;
  std::vector<index_t> all(static_cast<size_t>(d.size()));
  std::iota(all.begin(), all.end(), index_t(0));
  auto [x, y] = gather(d, all);
  auto logits = model.forward(x);
  double loss = double(ops::cross_entropy(logits, y).value().item());
  auto const& z = logits.value();
  index_t c = z.size(1), correct = 0;
  for (index_t i = 0; i < z.size(0); ++i) {
    auto row = z.data() + i * c;
    correct += (std::max_element(row, row + c) - row) == y[size_t(i)];
  }
  return {loss, double(correct) / double(z.size(0))};
}

inline options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    bool has_value = i + 1 < argc;
    if (a == "--epochs" && has_value) o.epochs = std::stoi(argv[++i]);
    else if (a == "--seed" && has_value) o.seed = std::stoull(argv[++i]);
    else if (a == "--lr" && has_value) o.lr = std::stod(argv[++i]);
    else detail::raise<config_error>("arcnet-tiny-mlp: unknown or incomplete option '", a,
                                     "'; usage: arcnet-tiny-mlp [--epochs N] [--seed S] [--lr X]");
  }
  ARCNET_CHECK_AS(config_error, o.epochs > 0, "arcnet-tiny-mlp: --epochs must be positive, got ", o.epochs);
  return o;
}

inline int run(options const& o) {
  generator g(o.seed);
  auto data = make_spiral(100, 3, g);
  mlp model({2, 64, 64, index_t(data.num_classes)}, g);
  auto base = optim::sgd_options().set_lr(o.lr).set_momentum(0.9).set_nesterov(true);
  optim::sgd<real> opt(model.weights(), optim::sgd_options(base).set_weight_decay(5e-4));
  opt.add_param_group(model.biases(), base);

  std::printf("arcnet %s demo: MLP 2-64-64-%d (%lld parameters), %lld spiral points, SGD lr %g, "
              "Nesterov momentum 0.9, weight decay 5e-4 (weights only)\n",
              ARCNET_VERSION_STRING, data.num_classes, static_cast<long long>(model.num_parameters()),
              static_cast<long long>(data.size()), o.lr);
  auto [loss0, acc0] = evaluate(model, data);
  std::printf("epoch %3d  loss %.4f  accuracy %5.1f%%\n", 0, loss0, 100 * acc0);
  auto start = std::chrono::steady_clock::now();
  for (int epoch = 1; epoch <= o.epochs; ++epoch) {
    // Cosine learning-rate schedule to 0, set before each epoch.
    opt.set_lr(0.5 * o.lr * (1 + std::cos(3.141592653589793 * (epoch - 1) / o.epochs)));
    double train_loss = train_epoch(model, opt, data, o.batch_size, g);
    if (epoch % 10 == 0 || epoch == o.epochs)
      std::printf("epoch %3d  loss %.4f  lr %.4f\n", epoch, train_loss, opt.lr());
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  auto [loss, acc] = evaluate(model, data);
  std::printf("final: training loss %.4f, training accuracy %.1f%% (%.2f s)\n", loss, 100 * acc, seconds);
  return 0;
}

}  // namespace demo

int main(int argc, char** argv) {
  try {
    return demo::run(demo::parse(argc, argv));
  } catch (std::exception const& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
