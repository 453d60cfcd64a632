// Must NOT compile: conv2d<3, 64> produces 64 channels, batch_norm<32> expects 32.
// ctest checks that the compiler's message names the mismatch (tests/compile_fail/CMakeLists.txt).
#include <arcnet/nn/batch_norm.hpp>
#include <arcnet/nn/conv2d.hpp>
#include <arcnet/nn/sequential.hpp>
#include <arcnet/nn/stateless.hpp>

using bad = arcnet::nn::sequential<arcnet::nn::conv2d<3, 64, 3>, arcnet::nn::relu, arcnet::nn::batch_norm<32>>;
bad::module<float, arcnet::cpu> model;
