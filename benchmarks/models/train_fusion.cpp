// Training-step fusion (nn/fusion.hpp: batch norm + ReLU, and batch norm + add + ReLU as one op)
// on and off, in one process: ResNet-50 + ArcFace (3997 classes), SGD Nesterov, on the CPU.
// Each round runs STEPS timed steps with fusion off, then on (the order alternates by round),
// so that a busy spell of a shared machine hits both. Prints the median step time of each mode,
// their ratio, and the activations the recorded graph holds after the forward (bytes of the
// distinct non-leaf values reachable from the loss: exact, not a noisy RSS reading).
//   arcnet_bench_train_fusion [SIZE] [BATCH] [ROUNDS] [STEPS]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <arcnet/arcnet.hpp>

namespace {
using namespace arcnet;

/// Bytes of the distinct non-leaf values (activations) the graph of `out` keeps for its backward.
double graph_activation_bytes(variable<float, cpu> const& out) {
  std::set<autograd::node const*> seen_nodes;
  std::set<float const*> seen_values;
  double bytes = 0;
  std::vector<autograd::node const*> todo{out.grad_fn().get()};
  while (!todo.empty()) {
    auto const* n = todo.back();
    todo.pop_back();
    if (!n || !seen_nodes.insert(n).second) continue;
    for (auto const& in : n->inputs) {
      auto const* v = dynamic_cast<autograd::variable_impl<float, cpu> const*>(in.get());
      if (v && !v->is_leaf && v->value.defined() && seen_values.insert(v->value.data()).second)
        bytes += static_cast<double>(v->value.numel()) * sizeof(float);
      todo.push_back(in->grad_fn.get());
    }
  }
  return bytes;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}
}  // namespace

int main(int argc, char** argv) try {
  int const size = argc > 1 ? std::atoi(argv[1]) : 224;
  int const batch = argc > 2 ? std::atoi(argv[2]) : 8;
  int const rounds = argc > 3 ? std::atoi(argv[3]) : 3;
  int const steps = argc > 4 ? std::atoi(argv[4]) : 3;
  generator g(1);
  models::arcface_options head;
  head.num_classes = 3997;
  models::image_retriever<models::resnet50>::module<float, cpu> model(head, g);
  std::vector<std::pair<std::string, variable<float, cpu>>> params;
  model.for_each_parameter([&](std::string const& n, auto& p, nn::param_layout) { params.emplace_back(n, p); });
  optim::sgd<float, cpu> opt(
      params, optim::sgd_options{}.set_lr(0.02 * batch / 256).set_momentum(0.9).set_nesterov(true).set_weight_decay(5e-4));
  auto images = randn<float>(shape{batch, size, size, 3}, g);
  std::vector<std::int64_t> labels;
  for (int i = 0; i < batch; ++i) labels.push_back(static_cast<std::int64_t>(g.below(3997)));
  model.train(true);

  double graph_mib[2] = {0, 0};
  auto step = [&](bool fuse, bool measure_graph) {
    nn::fusion::enabled() = fuse;
    opt.zero_grad();
    auto loss = model.loss(variable<float, cpu>(images), labels);
    if (measure_graph) graph_mib[fuse] = graph_activation_bytes(loss) / 1048576.0;
    loss.backward();
    opt.step();
  };
  using clock = std::chrono::steady_clock;
  std::vector<double> times[2];
  step(false, true);  // warm-up of both modes (and their graph sizes)
  step(true, true);
  for (int r = 0; r < rounds; ++r)
    for (int k = 0; k < 2; ++k) {
      bool const fuse = (r % 2 == 0) == (k == 1);
      for (int s = 0; s < steps; ++s) {
        auto t0 = clock::now();
        step(fuse, false);
        times[fuse].push_back(std::chrono::duration<double>(clock::now() - t0).count());
      }
    }
  double const off = median(times[0]), on = median(times[1]);
  std::printf("train_fusion size=%d batch=%d rounds=%d steps=%d threads=%d\n", size, batch, rounds, steps,
              max_threads());
  std::printf("%-10s %12s %10s %14s\n", "fusion", "step (s)", "img/s", "graph (MiB)");
  std::printf("%-10s %12.3f %10.3f %14.1f\n", "off", off, batch / off, graph_mib[0]);
  std::printf("%-10s %12.3f %10.3f %14.1f\n", "on", on, batch / on, graph_mib[1]);
  std::printf("speed on/off %.3f, graph on/off %.3f\n", off / on, graph_mib[1] / graph_mib[0]);
  return 0;
} catch (arcnet::error const& e) {
  std::fprintf(stderr, "%s\n", e.what());
  return 1;
}
