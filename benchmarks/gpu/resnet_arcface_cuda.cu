// ResNet-50 + ArcFace on the CUDA device (benchmarks/models/resnet_arcface_bench.hpp: the same
// work the CPU benchmark times), images per second for inference and training under a precision
// mode. benchmarks/gpu/run_all.sh runs it beside PyTorch on the same GPU.
//   arcnet_bench_resnet_arcface_cuda SIZE BATCH [ITERS] [fp32|tf32|bf16] [gemm|cudnn]
// The last argument is the backend of the convolutions that are not pointwise (default: cudnn
// when the build found it, see ops/cuda/conv2d.cuh). In bf16 mode the backbone's activations are
// bf16 unless ARCNET_BF16_ACTIVATIONS=0 (core/precision.hpp).
#include <cstdio>
#include <cstdlib>
#include <string>

#include "../models/resnet_arcface_bench.hpp"

int main(int argc, char** argv) try {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s SIZE BATCH [ITERS] [fp32|tf32|bf16] [gemm|cudnn]\n", argv[0]);
    return 2;
  }
  if (!arcnet::cuda_device_available()) {
    std::fprintf(stderr, "%s: no CUDA device\n", argv[0]);
    return 77;
  }
  auto mode = arcnet::precision::parse(argc > 4 ? argv[4] : "fp32");
  arcnet::precision::set_matmul(mode);
  using conv = arcnet::ops::conv2d_impl<arcnet::cuda>;
  if (argc > 5) conv::set_backend(conv::parse_backend(argv[5]));
  std::string extra = std::string(" precision=") + arcnet::precision::name(mode) + " conv=" + conv::name(conv::backend()) +
                      " activations=" + (arcnet::precision::bf16_activations() ? "bf16" : "fp32");
  int rc = arcnet::bench::resnet_arcface_main<arcnet::cuda>(std::atoi(argv[1]), std::atoi(argv[2]),
                                                            argc > 3 ? std::atoi(argv[3]) : 10, extra.c_str());
  auto m = arcnet::gpu::memory_stats();
  std::printf("arcnet memory peak_in_use_mb=%.1f cached_mb=%.1f device_mallocs=%zu reuses=%zu\n",
              m.peak_in_use / 1048576.0, m.cached / 1048576.0, m.device_mallocs, m.reuses);
  std::printf("arcnet conv=%s cudnn_calls=%llu cudnn_refusals=%llu\n", conv::name(conv::backend()),
              static_cast<unsigned long long>(conv::cudnn_runs()),
              static_cast<unsigned long long>(conv::cudnn_refusals()));
  return rc;
} catch (arcnet::error const& e) {
  std::fprintf(stderr, "%s\n", e.what());
  return 1;
}
