// arcnet-train: trains an image retriever (ResNet + ArcFace) as mmpretrain's tools/train.py does
// for resnet50-arcface_inshop. Options come from an INI config (--config) and the command line:
//   arcnet-train --config examples/configs/fashion-mnist.cfg --work-dir work/fmnist
//   arcnet-train --config ... --work-dir work/fmnist --resume      (continue after a stop)
//   arcnet-train --help                                             (every option, with defaults)
//   mpirun -np 4 arcnet-train --config ... --work-dir work/fmnist    (4 processes, data-parallel)
#include <csignal>
#include <cstdio>
#include <memory>

#include <arcnet/engine/distributed.hpp>
#include <arcnet/engine/trainer.hpp>

#if defined(ARCNET_TRAIN_CUDA)
namespace arcnet::engine {
train_result train_on_cuda(train_options const& o, distributed::communicator* comm);  // train_cuda.cu (nvcc)
}
#endif

int main(int argc, char** argv) {
#if defined(SIGXFSZ)
  // Past a file-size limit (ulimit -f) a write then fails with EFBIG, which the checkpoint writer
  // reports as an error naming the file (keeping the previous one), instead of a silent kill.
  std::signal(SIGXFSZ, SIG_IGN);
#endif
  std::unique_ptr<arcnet::distributed::communicator> world;  // a world of one unless under mpirun
  // One error line; under mpirun it names the rank, and the whole job stops at once (MPI_Abort)
  // instead of leaving the other ranks waiting for this one.
  auto fail = [&](char const* what) {
    bool const several = world && world->size() > 1;
    std::fprintf(stderr, "arcnet-train: %serror: %s\n",
                 several ? ("rank " + std::to_string(world->rank()) + ": ").c_str() : "",
                 arcnet::engine::one_line(what).c_str());
    std::fflush(stderr);
    if (several) world->abort(1);
    return 1;
  };
  try {
    arcnet::engine::train_options options;
    if (!arcnet::engine::parse_train_options(argc, argv, options)) return 0;  // --help
    world = arcnet::engine::make_communicator(options.dist);
#if defined(ARCNET_TRAIN_CUDA)
    auto r = options.device == "cuda" ? arcnet::engine::train_on_cuda(options, world.get())
                                      : arcnet::engine::train(options, world.get());
#else
    auto r = arcnet::engine::train(options, world.get());  // refuses --device cuda, saying why
#endif
    if (world->rank() == 0) {
      std::printf("arcnet-train: done in %s; ", arcnet::engine::format_duration(r.seconds).c_str());
      if (r.progress.best_recall_at_1 >= 0)
        std::printf("best Recall@1 %.2f at epoch %d; ", r.progress.best_recall_at_1, r.progress.best_epoch);
      std::printf("checkpoints in %s\n", options.work_dir.c_str());
    }
    return 0;
  } catch (arcnet::error const& e) {
    return fail(e.what());
  } catch (std::exception const& e) {
    return fail(e.what());
  }
}
