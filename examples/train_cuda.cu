// arcnet-train's CUDA half: engine::train on the cuda tag, compiled by nvcc (only the translation
// units that use the cuda tag need nvcc; train.cpp stays a g++ file and calls this for
// --device cuda). Built into arcnet-train when CMake finds the CUDA toolkit.
#include <arcnet/engine/trainer.hpp>

namespace arcnet::engine {

train_result train_on_cuda(train_options const& o, distributed::communicator* comm) { return train<cuda>(o, comm); }

}  // namespace arcnet::engine
