// The consumer's program: a small autograd computation whose value and gradient it checks.
#include <arcnet/arcnet.hpp>

#include <cmath>
#include <cstdio>

#if defined(CONSUMER_WITH_IO)
#include <arcnet/io/safetensors.hpp>

#include <filesystem>

// Writes one tensor to a safetensors file in `dir` and reads it back.
static bool io_round_trip(char const* dir) {
  auto path = (std::filesystem::path(dir) / "consumer.safetensors").string();
  arcnet::io::state_dict sd{{"w", arcnet::tensor<float>::from_vector(arcnet::shape{2}, {1.5f, -2.0f})}};
  arcnet::io::save_safetensors(path, sd);
  auto back = arcnet::io::load_safetensors(path);
  std::filesystem::remove(path);
  bool ok = back.count("w") && back.at("w").to_vector() == sd.at("w").to_vector();
  std::printf("arcnet::io safetensors round trip: %s\n", ok ? "ok" : "WRONG");
  return ok;
}
#else
static bool io_round_trip(char const*) { return true; }
#endif

// argv[1]: a directory for scratch files (default: the current directory).
int main(int argc, char** argv) {
  using namespace arcnet;
  try {
    // L = sum(relu(x W^T + b)), x (1, 2), W (2, 2), b (2)
    variable<double> x(tensor<double>::from_vector(shape{1, 2}, {1.0, 2.0}), true);
    variable<double> w(tensor<double>::from_vector(shape{2, 2}, {0.5, -1.0, 2.0, 0.25}), true);
    variable<double> b(tensor<double>::from_vector(shape{2}, {0.1, -0.2}), true);
    auto loss = ops::sum(ops::relu(ops::linear(x, w, b)));  // relu(-1.4) + relu(2.3) = 2.3
    loss.backward();
    double value = loss.value().item();
    // Only the second unit is active: dL/dx = W[1, :] = (2, 0.25), dL/dW[1, :] = x, dL/db = (0, 1).
    bool ok = std::abs(value - 2.3) < 1e-12 && x.grad().at(0, 0) == 2.0 && x.grad().at(0, 1) == 0.25 &&
              w.grad().at(0, 0) == 0.0 && w.grad().at(1, 1) == 2.0 && b.grad().at(0) == 0.0 && b.grad().at(1) == 1.0;
    std::printf("arcnet %s consumer: loss %.6f, dL/dx = (%g, %g): %s\n", ARCNET_VERSION_STRING, value,
                x.grad().at(0, 0), x.grad().at(0, 1), ok ? "ok" : "WRONG");
    return ok && io_round_trip(argc > 1 ? argv[1] : ".") ? 0 : 1;
  } catch (error const& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
