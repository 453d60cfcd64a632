// ResNet-50 + ArcFace head (3997 classes, k = 1, s = 64, m = 0.5) on the CPU: inference
// (embedding extraction, eval mode) and training step (forward, backward, SGD Nesterov) in
// images per second. benchmarks/models/compare_cpu.sh runs it beside PyTorch.
//   arcnet_bench_resnet_arcface SIZE BATCH [ITERS]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include <arcnet/arcnet.hpp>

using namespace arcnet;

int main(int argc, char** argv) try {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s SIZE BATCH [ITERS]\n", argv[0]);
    return 2;
  }
  int size = std::atoi(argv[1]), batch = std::atoi(argv[2]), iters = argc > 3 ? std::atoi(argv[3]) : 3;
  generator g(1);
  models::arcface_options head;
  head.num_classes = 3997;
  using model_t = models::image_retriever<models::resnet50>;
  model_t::module<float, cpu> model(head, g);
  std::vector<std::pair<std::string, variable<float>>> params;
  model.for_each_parameter([&](std::string const& n, auto& p, nn::param_layout) { params.emplace_back(n, p); });
  optim::sgd<float> opt(params, optim::sgd_options{}.set_lr(0.02 * batch / 256).set_momentum(0.9).set_nesterov(true)
                                    .set_weight_decay(5e-4));
  auto images = randn<float>(shape{batch, size, size, 3}, g);
  std::vector<std::int64_t> labels;
  for (int i = 0; i < batch; ++i) labels.push_back(static_cast<std::int64_t>(g.below(3997)));

  using clock = std::chrono::steady_clock;
  auto seconds = [](clock::time_point a, clock::time_point b) { return std::chrono::duration<double>(b - a).count(); };
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };

  // Check before timing: the untrained loss is finite and near log(C) + margin effects.
  model.train(true);
  double first_loss = 0;
  std::vector<double> train_t;
  for (int i = 0; i <= iters; ++i) {  // iteration 0 is the warm-up
    auto t0 = clock::now();
    opt.zero_grad();
    auto loss = model.loss(variable<float>(images), labels);
    loss.backward();
    opt.step();
    auto t1 = clock::now();
    if (i == 0) first_loss = loss.value().item();
    else train_t.push_back(seconds(t0, t1));
  }
  if (!std::isfinite(first_loss) || first_loss < 1.0) {
    std::fprintf(stderr, "check failed: initial loss %g\n", first_loss);
    return 1;
  }
  model.train(false);
  std::vector<double> infer_t;
  for (int i = 0; i <= iters; ++i) {
    auto t0 = clock::now();
    auto emb = model.extract_feat(images);
    auto t1 = clock::now();
    if (emb.shape() != shape{batch, 2048}) return 1;
    if (i > 0) infer_t.push_back(seconds(t0, t1));
  }
  std::printf("arcnet size=%d batch=%d loss=%.3f infer_img_s=%.3f train_img_s=%.3f\n", size, batch, first_loss,
              batch / median(infer_t), batch / median(train_t));
  return 0;
} catch (arcnet::error const& e) {
  std::fprintf(stderr, "%s\n", e.what());
  return 1;
}
