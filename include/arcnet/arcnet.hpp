#pragma once
// The umbrella header: everything arcnet offers on the CPU (and on CUDA under nvcc).
// io/ (safetensors, PyTorch .pth) needs nlohmann-json and data/ needs libjpeg-turbo, libpng and
// zlib, viz/ (plots, image grids) cairo and data/: each is included when its libraries are
// installed (link arcnet::io, arcnet::data, arcnet::viz). engine/ (the trainer and the program
// options, Boost.Program_options) is not included here: include arcnet/engine/<part>.hpp and
// link arcnet::engine.
#include "arcnet/config.hpp"

#include "arcnet/core/device.hpp"
#include "arcnet/core/error.hpp"
#include "arcnet/core/random.hpp"
#include "arcnet/core/shape.hpp"
#include "arcnet/core/tensor.hpp"
#include "arcnet/core/threads.hpp"

#include "arcnet/autograd/grad_check.hpp"
#include "arcnet/autograd/no_grad.hpp"
#include "arcnet/autograd/variable.hpp"

#include "arcnet/ops/activation.hpp"
#include "arcnet/ops/batch_norm.hpp"
#include "arcnet/ops/cast.hpp"
#include "arcnet/ops/conv2d.hpp"
#include "arcnet/ops/elementwise.hpp"
#include "arcnet/ops/loss.hpp"
#include "arcnet/ops/margin.hpp"
#include "arcnet/ops/matmul.hpp"
#include "arcnet/ops/normalize.hpp"
#include "arcnet/ops/pool.hpp"
#include "arcnet/ops/reduce.hpp"
#include "arcnet/ops/reshape.hpp"

#include "arcnet/nn/batch_norm.hpp"
#include "arcnet/nn/conv2d.hpp"
#include "arcnet/nn/init.hpp"
#include "arcnet/nn/layer.hpp"
#include "arcnet/nn/linear.hpp"
#include "arcnet/nn/residual.hpp"
#include "arcnet/nn/sequential.hpp"
#include "arcnet/nn/stateless.hpp"
#include "arcnet/nn/summary.hpp"

#include "arcnet/models/arcface.hpp"
#include "arcnet/models/cifar_resnet.hpp"
#include "arcnet/models/resnet.hpp"
#include "arcnet/models/retriever.hpp"

#include "arcnet/metrics/retrieval.hpp"
#include "arcnet/metrics/report.hpp"
#include "arcnet/metrics/search.hpp"
#include "arcnet/metrics/verification.hpp"

#include "arcnet/optim/adamw.hpp"
#include "arcnet/optim/optimizer.hpp"
#include "arcnet/optim/param_groups.hpp"
#include "arcnet/optim/schedule.hpp"
#include "arcnet/optim/sgd.hpp"

// data/ (decoding, transforms, datasets, loader) needs libjpeg-turbo, libpng and zlib (link arcnet::data).
#if __has_include(<turbojpeg.h>) && __has_include(<png.h>) && __has_include(<zlib.h>)
#include "arcnet/data/dataset.hpp"
#include "arcnet/data/decode.hpp"
#include "arcnet/data/encode.hpp"
#include "arcnet/data/idx.hpp"
#include "arcnet/data/image.hpp"
#include "arcnet/data/loader.hpp"
#include "arcnet/data/sampler.hpp"
#include "arcnet/data/transforms.hpp"
// viz/ (plots, image grids as PNG / SVG) also needs cairo (link arcnet::viz).
#if __has_include(<cairo.h>)
#include "arcnet/viz/canvas.hpp"
#include "arcnet/viz/grid.hpp"
#include "arcnet/viz/plot.hpp"
#endif
#endif

#if __has_include(<nlohmann/json.hpp>)
#include "arcnet/io/checkpoint.hpp"
#include "arcnet/io/pth.hpp"
#include "arcnet/io/safetensors.hpp"
#endif
