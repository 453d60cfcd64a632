// ResNet-50 + ArcFace on the CPU (benchmarks/models/resnet_arcface_bench.hpp), images per second
// for inference and training. benchmarks/models/compare_cpu.sh runs it beside PyTorch.
//   arcnet_bench_resnet_arcface SIZE BATCH [ITERS]
#include <cstdio>
#include <cstdlib>

#include "resnet_arcface_bench.hpp"

int main(int argc, char** argv) try {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s SIZE BATCH [ITERS]\n", argv[0]);
    return 2;
  }
  return arcnet::bench::resnet_arcface_main<arcnet::cpu>(std::atoi(argv[1]), std::atoi(argv[2]),
                                                         argc > 3 ? std::atoi(argv[3]) : 3);
} catch (arcnet::error const& e) {
  std::fprintf(stderr, "%s\n", e.what());
  return 1;
}
