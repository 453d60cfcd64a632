// The GPU embedder of arcnet-test and arcnet-retrieve (--device cuda): a checkpoint loaded onto
// the cuda tag behind engine::embedder, compiled by nvcc so that the programs themselves stay
// g++ files. Built into both when CMake finds the CUDA toolkit.
#include <memory>
#include <string>

#include <arcnet/engine/evaluate.hpp>
#include <arcnet/engine/train_state.hpp>

namespace arcnet::engine {

std::unique_ptr<embedder> make_cuda_embedder(std::string const& checkpoint, model_spec* spec) {
  if (auto const why = cuda_device_problem(); !why.empty())
    detail::raise<device_error>("device: 'cuda': no usable CUDA device on this machine (", why, ")");
  return std::make_unique<device_embedder<cuda>>(load_model<cuda>(checkpoint, spec));
}

}  // namespace arcnet::engine
