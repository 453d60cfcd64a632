// Data-parallel training throughput: ResNet-50 + ArcFace (3997 classes, the In-Shop head) on
// random images, one process or N ranks under mpirun, with the gradient all-reduce of
// distributed::gradient_reducer overlapping the backward pass. compare.sh runs it beside
// PyTorch's DistributedDataParallel (gloo) on the same machine.
//   [mpirun -np N] arcnet_bench_data_parallel SIZE GLOBAL_BATCH [STEPS]
// Prints (rank 0): ranks, threads, img/s, ms per step, ms per step spent waiting for the
// all-reduce after backward, and MB all-reduced per step.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

#include <arcnet/arcnet.hpp>
#include <arcnet/core/threads.hpp>
#include <arcnet/distributed/mpi.hpp>
#include <arcnet/distributed/reducer.hpp>

using namespace arcnet;

int main(int argc, char** argv) {
  std::unique_ptr<distributed::communicator> world;
  if (distributed::launched_world_size() > 0) world = std::make_unique<distributed::mpi_communicator>();
  else world = std::make_unique<distributed::single_process>();
  try {
    if (argc < 3) {
      std::fprintf(stderr, "usage: [mpirun -np N] %s SIZE GLOBAL_BATCH [STEPS]\n", argv[0]);
      return 2;
    }
    int const size = std::atoi(argv[1]), global = std::atoi(argv[2]), steps = argc > 3 ? std::atoi(argv[3]) : 5;
    int const ranks = world->size(), batch = global / ranks;
    ARCNET_CHECK_AS(config_error, batch * ranks == global && batch > 0, "GLOBAL_BATCH ", global,
                    " must be a positive multiple of the number of ranks ", ranks);
    generator g(1);  // the same initial weights on every rank
    models::arcface_options head;
    head.num_classes = 3997;
    using model_t = models::image_retriever<models::resnet50>;
    model_t::module<float, cpu> model(head, g);
    std::vector<std::pair<std::string, variable<float>>> params;
    model.for_each_parameter([&](std::string const& n, auto& p, nn::param_layout) { params.emplace_back(n, p); });
    optim::sgd<float> opt(params, optim::sgd_options{}.set_lr(0.02 * global / 256).set_momentum(0.9).set_nesterov(true)
                                      .set_weight_decay(5e-4));
    std::unique_ptr<distributed::gradient_reducer<cpu>> reducer;
    if (ranks > 1) reducer = std::make_unique<distributed::gradient_reducer<cpu>>(*world, params);
    generator data(100 + static_cast<std::uint64_t>(world->rank()));  // each rank its own images
    auto images = randn<float>(shape{batch, size, size, 3}, data);
    std::vector<std::int64_t> labels;
    for (int i = 0; i < batch; ++i) labels.push_back(static_cast<std::int64_t>(data.below(3997)));
    std::size_t floats = 0;
    for (auto& p : params) floats += static_cast<std::size_t>(p.second.numel());

    using clock = std::chrono::steady_clock;
    auto seconds = [](clock::time_point a, clock::time_point b) { return std::chrono::duration<double>(b - a).count(); };
    std::vector<double> step_s, wait_s;
    for (int s = 0; s <= steps; ++s) {  // step 0 warms up (allocations, first touch)
      world->barrier();
      auto t0 = clock::now();
      opt.zero_grad();
      auto loss = model.loss(variable<float>(images), labels);
      clock::time_point t1;
      if (reducer) {
        {
          auto overlap = reducer->observe();
          loss.backward();
        }
        t1 = clock::now();
        reducer->finish();
      } else {
        loss.backward();
        t1 = clock::now();
      }
      auto t2 = clock::now();
      opt.step();
      auto t3 = clock::now();
      if (s == 0) continue;
      step_s.push_back(seconds(t0, t3));
      wait_s.push_back(seconds(t1, t2));
    }
    // The slowest rank sets the pace: take the maximum over ranks of each median.
    auto median = [](std::vector<double> v) {
      std::sort(v.begin(), v.end());
      return v[v.size() / 2];
    };
    double m[2] = {median(step_s), median(wait_s)};
    world->all_reduce(m, 2, distributed::reduce_op::max);
    if (world->rank() == 0)
      std::printf("ranks %d threads %d size %d global_batch %d img_s %.3f step_ms %.1f allreduce_wait_ms %.1f "
                  "allreduce_mb %.1f\n",
                  ranks, max_threads(), size, global, global / m[0], 1e3 * m[0], 1e3 * m[1],
                  ranks > 1 ? floats * 4.0 / 1e6 : 0.0);
    return 0;
  } catch (std::exception const& e) {
    std::fprintf(stderr, "arcnet_bench_data_parallel: rank %d: %s\n", world->rank(), e.what());
    if (world->size() > 1) world->abort(1);
    return 1;
  }
}
