// Catch2 main of arcnet_cuda_tests (compiled by the host compiler; the tests are in .cu files).
// Without a CUDA device it exits with 77, which ctest reports as skipped (SKIP_RETURN_CODE).
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>

namespace cuda_test {
bool device_available();  // test_cuda_tensor.cu
}

int main(int argc, char** argv) {
  if (!cuda_test::device_available()) {
    std::printf("arcnet_cuda_tests: no CUDA device (cudaGetDeviceCount found none or failed): "
                "skipping the [cuda] tests\n");
    return 77;
  }
  return Catch::Session().run(argc, argv);
}
