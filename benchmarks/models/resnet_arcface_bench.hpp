#pragma once
// ResNet-50 + ArcFace head (3997 classes, k = 1, s = 64, m = 0.5) on device D: inference
// (embedding extraction, eval mode) and training step (forward, backward, SGD Nesterov) in
// images per second, median of ITERS timed iterations after one warm-up. Shared by the CPU
// program (resnet_arcface.cpp, g++) and the CUDA one (benchmarks/gpu/resnet_arcface_cuda.cu,
// nvcc), so that both time exactly the same work.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <arcnet/arcnet.hpp>

namespace arcnet::bench {

/// Waits for the device's queued work (a no-op on the CPU), so that a timer brackets it.
template <class D>
void wait_for_device() {
#if defined(__CUDACC__)
  if constexpr (std::is_same_v<D, cuda>) gpu::synchronize();
#endif
}

struct resnet_arcface_result {
  double first_loss = 0, infer_img_s = 0, train_img_s = 0;
};

template <class D>
resnet_arcface_result resnet_arcface(int size, int batch, int iters) {
  generator g(1);
  models::arcface_options head;
  head.num_classes = 3997;
  using model_t = models::image_retriever<models::resnet50>;
  typename model_t::template module<float, D> model(head, g);
  std::vector<std::pair<std::string, variable<float, D>>> params;
  model.for_each_parameter([&](std::string const& n, auto& p, nn::param_layout) { params.emplace_back(n, p); });
  optim::sgd<float, D> opt(params, optim::sgd_options{}
                                       .set_lr(0.02 * batch / 256)
                                       .set_momentum(0.9)
                                       .set_nesterov(true)
                                       .set_weight_decay(5e-4));
  tensor<float, D> images = randn<float>(shape{batch, size, size, 3}, g).template to<D>();
  std::vector<std::int64_t> labels;
  for (int i = 0; i < batch; ++i) labels.push_back(static_cast<std::int64_t>(g.below(3997)));

  using clock = std::chrono::steady_clock;
  auto seconds = [](clock::time_point a, clock::time_point b) { return std::chrono::duration<double>(b - a).count(); };
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };

  resnet_arcface_result r;
  model.train(true);
  std::vector<double> train_t;
  for (int i = 0; i <= iters; ++i) {  // iteration 0 is the warm-up (and fills the GPU's caches)
    wait_for_device<D>();
    auto t0 = clock::now();
    opt.zero_grad();
    auto loss = model.loss(variable<float, D>(images), labels);
    loss.backward();
    opt.step();
    wait_for_device<D>();
    auto t1 = clock::now();
    if (i == 0) r.first_loss = loss.value().item();
    else train_t.push_back(seconds(t0, t1));
  }
  model.train(false);
  std::vector<double> infer_t;
  for (int i = 0; i <= iters; ++i) {
    wait_for_device<D>();
    auto t0 = clock::now();
    auto emb = model.extract_feat(images);
    wait_for_device<D>();
    auto t1 = clock::now();
    if (emb.shape() != shape{batch, 2048}) detail::raise<shape_error>("benchmark: embedding shape ", emb.shape());
    if (i > 0) infer_t.push_back(seconds(t0, t1));
  }
  r.infer_img_s = batch / median(infer_t);
  r.train_img_s = batch / median(train_t);
  return r;
}

/// Runs the benchmark and prints one line that the compare scripts parse; 1 when the untrained
/// loss is not finite and near log(C) (the check before timing means anything).
template <class D>
int resnet_arcface_main(int size, int batch, int iters, char const* extra = "") {
  auto r = resnet_arcface<D>(size, batch, iters);
  if (!std::isfinite(r.first_loss) || r.first_loss < 1.0) {
    std::fprintf(stderr, "check failed: initial loss %g\n", r.first_loss);
    return 1;
  }
  std::printf("arcnet device=%s size=%d batch=%d loss=%.3f infer_img_s=%.3f train_img_s=%.3f%s\n", D::name, size,
              batch, r.first_loss, r.infer_img_s, r.train_img_s, extra);
  return 0;
}

}  // namespace arcnet::bench
