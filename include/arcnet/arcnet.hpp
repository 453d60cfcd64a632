#pragma once
// The umbrella header: everything arcnet offers on the CPU (and on CUDA under nvcc).
#include "arcnet/config.hpp"

#include "arcnet/core/device.hpp"
#include "arcnet/core/error.hpp"
#include "arcnet/core/random.hpp"
#include "arcnet/core/shape.hpp"
#include "arcnet/core/tensor.hpp"

#include "arcnet/autograd/grad_check.hpp"
#include "arcnet/autograd/no_grad.hpp"
#include "arcnet/autograd/variable.hpp"

#include "arcnet/ops/activation.hpp"
#include "arcnet/ops/elementwise.hpp"
#include "arcnet/ops/matmul.hpp"
#include "arcnet/ops/reduce.hpp"
