// Must NOT compile: "same" padding needs an odd kernel.
#include <arcnet/nn/conv2d.hpp>

arcnet::nn::conv2d<3, 8, 4>::module<float, arcnet::cpu> model;
