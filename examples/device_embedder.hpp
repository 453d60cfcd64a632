#pragma once
// The embedder of --device for arcnet-test and arcnet-retrieve: the CPU one here, the GPU one
// from embedder_cuda.cu (compiled by nvcc, linked in when CMake found the CUDA toolkit).
#include <memory>
#include <string>

#include <arcnet/engine/evaluate.hpp>
#include <arcnet/engine/train_state.hpp>

namespace arcnet::engine {

#if defined(ARCNET_PROGRAMS_CUDA)
std::unique_ptr<embedder> make_cuda_embedder(std::string const& checkpoint, model_spec* spec);  // embedder_cuda.cu
#endif

/// The checkpoint's model on `device` ("cpu" or "cuda"), behind engine::embedder.
inline std::unique_ptr<embedder> make_embedder(std::string const& device, std::string const& checkpoint,
                                               model_spec* spec) {
  if (device == "cpu") return std::make_unique<device_embedder<cpu>>(load_model<cpu>(checkpoint, spec));
#if defined(ARCNET_PROGRAMS_CUDA)
  if (device == "cuda") return make_cuda_embedder(checkpoint, spec);
#endif
  detail::raise<config_error>("device: '", device, "' needs a program built with the CUDA backend (nvcc found "
                              "when it was built); this one runs on the CPU only: use --device cpu");
}

}  // namespace arcnet::engine
