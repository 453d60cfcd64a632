// arcnet-train: trains an image retriever (ResNet + ArcFace) as mmpretrain's tools/train.py does
// for resnet50-arcface_inshop. Options come from an INI config (--config) and the command line:
//   arcnet-train --config examples/configs/fashion-mnist.cfg --work-dir work/fmnist
//   arcnet-train --config ... --work-dir work/fmnist --resume      (continue after a stop)
//   arcnet-train --help                                             (every option, with defaults)
#include <csignal>
#include <cstdio>

#include <arcnet/engine/trainer.hpp>

int main(int argc, char** argv) {
#if defined(SIGXFSZ)
  // Past a file-size limit (ulimit -f) a write then fails with EFBIG, which the checkpoint writer
  // reports as an error naming the file (keeping the previous one), instead of a silent kill.
  std::signal(SIGXFSZ, SIG_IGN);
#endif
  try {
    arcnet::engine::train_options options;
    if (!arcnet::engine::parse_train_options(argc, argv, options)) return 0;  // --help
    auto r = arcnet::engine::train(options);
    std::printf("arcnet-train: done in %s; ", arcnet::engine::format_duration(r.seconds).c_str());
    if (r.progress.best_recall_at_1 >= 0)
      std::printf("best Recall@1 %.2f at epoch %d; ", r.progress.best_recall_at_1, r.progress.best_epoch);
    std::printf("checkpoints in %s\n", options.work_dir.c_str());
    return 0;
  } catch (arcnet::error const& e) {
    std::fprintf(stderr, "arcnet-train: error: %s\n", arcnet::engine::one_line(e.what()).c_str());
    return 1;
  } catch (std::exception const& e) {
    std::fprintf(stderr, "arcnet-train: error: %s\n", arcnet::engine::one_line(e.what()).c_str());
    return 1;
  }
}
