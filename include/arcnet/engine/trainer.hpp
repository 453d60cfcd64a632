#pragma once
// The training loop of arcnet-train, mmpretrain's tools/train.py for an image retriever:
// builds the data, model, optimizer and schedule from train_options; trains epoch by epoch;
// validates (Recall@1/5/10, mAP@10, MAP@R on query vs gallery); writes epoch_N, latest and best
// checkpoints atomically; resumes from latest bit-exactly on the CPU (the sample order,
// augmentation and learning rate are functions of (seed, epoch, iteration), and the checkpoint
// holds every parameter, buffer and optimizer state); logs to the terminal and to
// WORK_DIR/log.jsonl; plots loss and metrics to WORK_DIR/curves.png.
//
// Numeric guard: after each backward pass (before the optimizer step) the loss and every
// gradient are checked; a NaN or Inf stops training with an error naming the iteration, the
// parameter and the last good checkpoint, or, with optim.skip-nonfinite, skips that step (no
// update, gradients cleared, batch-norm statistics restored), logs it and counts it in the
// checkpointed progress. Crash safety: every file is written atomically, latest.safetensors last
// (it is what --resume reads), and temporary files left by a killed run are removed at start.
// Fault injection, for tests only (tests/programs/numeric_guard.sh): the environment variable
// ARCNET_TEST_NONFINITE_GRADIENT_AT="8,13" puts a NaN into a gradient at those iterations
// (1-based), ARCNET_TEST_NONFINITE_LOSS_AT makes the loss NaN there; see also
// ARCNET_TEST_CHECKPOINT_DELAY_MS in io/detail/atomic_file.hpp.
//
// Several processes (`mpirun -np N arcnet-train ...`, engine/distributed.hpp): each rank trains
// on its shard of every epoch's sample order (data.batch-size is per rank, the learning rate is
// scaled by the global batch), gradients are averaged by bucketed all-reduces started during the
// backward pass, the loss is averaged before the finiteness check so every rank takes the same
// decision, batch-norm statistics are averaged (or synchronised, dist.sync-bn) before validation
// and saving, the gallery is embedded in shards and gathered, and only rank 0 prints, logs and
// writes. With head.partial-fc the ArcFace class centers are sharded across ranks
// (distributed/partial_fc.hpp); checkpoints still hold the whole head. Test hooks:
// ARCNET_TEST_KILL_RANK_AT="R:I" kills rank R (SIGKILL) at iteration I, ARCNET_TEST_STALL_RANK_AT
// makes it stop responding there (for the collective timeout).
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "arcnet/core/precision.hpp"
#include "arcnet/core/threads.hpp"
#include "arcnet/distributed/nccl.hpp"
#include "arcnet/distributed/partial_fc.hpp"
#include "arcnet/distributed/sync_batch_norm.hpp"
#include "arcnet/engine/distributed.hpp"
#include "arcnet/engine/evaluate.hpp"
#include "arcnet/engine/progress.hpp"
#include "arcnet/engine/train_state.hpp"
#include "arcnet/io/detail/atomic_file.hpp"
#include "arcnet/optim/adamw.hpp"
#include "arcnet/optim/schedule.hpp"
#include "arcnet/optim/sgd.hpp"
#if __has_include(<cairo.h>)
#include "arcnet/viz/plot.hpp"
#endif

namespace arcnet::engine {

/// The head's options from the config and the training set (classes, margins).
inline models::arcface_options head_from(head_options const& h, image_set const& train) {
  models::arcface_options o;
  o.num_classes = static_cast<int>(train.num_classes());
  o.num_subcenters = h.subcenters;
  o.scale = h.scale;
  o.margin = h.margin;
  o.easy_margin = h.easy_margin;
  if (!h.margins_file.empty() && h.adaptive_margins)
    detail::raise<config_error>("head.margins-file and head.adaptive-margins: choose one");
  if (!h.margins_file.empty()) {
    o.margins = models::read_margins(h.margins_file);
    if (static_cast<int>(o.margins.size()) != o.num_classes)
      detail::raise<config_error>("head.margins-file: '", h.margins_file, "' holds ", o.margins.size(),
                                  " margins, the training set has ", o.num_classes, " classes");
  } else if (h.adaptive_margins) {
    o.margins = models::adaptive_margins(train.class_counts());
  }
  return o;
}

/// The optimizer the config names, over `params`.
template <class D>
std::unique_ptr<optim::optimizer<float, D>> make_optimizer(optim_options const& o,
                                                           std::vector<std::pair<std::string, variable<float, D>>> params,
                                                           double lr) {
  if (o.type == "adamw")
    return std::make_unique<optim::adamw<float, D>>(
        params, optim::adamw_options{}.set_lr(lr).set_betas(o.beta1, o.beta2).set_eps(o.eps).set_weight_decay(o.weight_decay));
  return std::make_unique<optim::sgd<float, D>>(
      params, optim::sgd_options{}.set_lr(lr).set_momentum(o.momentum).set_nesterov(o.nesterov).set_weight_decay(o.weight_decay));
}
/// The optimizer the config names, over every parameter of the model.
template <class D>
std::unique_ptr<optim::optimizer<float, D>> make_optimizer(optim_options const& o, any_retriever<float, D>& model,
                                                           double lr) {
  return make_optimizer(o, averaged_parameters(model), lr);
}

/// Copies `from` over `to` atomically and durably (io_atomic_writer: temporary file, flush, rename).
inline void copy_atomically(std::string const& from, std::string const& to) {
  std::ifstream in(from, std::ios::binary);
  if (!in) detail::raise<io_error>("cannot read '", from, "'");
  detail::io_atomic_writer out(to, "copy");
  std::vector<char> chunk(1 << 20);
  while (in.read(chunk.data(), static_cast<std::streamsize>(chunk.size())) || in.gcount() > 0)
    out.write(chunk.data(), static_cast<std::size_t>(in.gcount()));
  out.commit();
}

/// The gradients after a backward pass: their global L2 norm and the first parameter (in the
/// model's order) holding a NaN or Inf ("" when every gradient is finite).
struct gradient_summary {
  double norm = 0;
  std::string nonfinite;
};

/// Sums the squared gradients of every parameter in double (ops::sum_of_squares): a float
/// squared cannot overflow a double, so a sum is finite exactly when every element is. One pass
/// over the gradients on their device, one read of the per-parameter sums.
template <class D>
gradient_summary summarize_gradients(any_retriever<float, D>& model) {
  std::vector<std::string> names;
  std::vector<tensor<float, D>> grads;
  model.for_each_parameter([&](std::string const& name, variable<float, D>& p, nn::param_layout) {
    if (!p.grad().defined()) return;
    names.push_back(name);
    grads.push_back(p.grad());
  });
  gradient_summary r;
  if (grads.empty()) return r;
  auto sums = tensor<double, D>::uninitialized(shape{index_t(grads.size())});
  for (std::size_t k = 0; k < grads.size(); ++k) ops::sum_of_squares(grads[k], sums.data() + k);
  auto const host = sums.template to<cpu>();
  double total = 0;
  for (std::size_t k = 0; k < grads.size(); ++k) {
    double const s = host[index_t(k)];
    if (!std::isfinite(s) && r.nonfinite.empty()) r.nonfinite = names[k];
    total += s;
  }
  r.norm = std::sqrt(total);
  return r;
}

namespace detail_trainer {
/// Whether this translation unit can all-reduce CUDA gradients (NCCL, nvcc).
#if defined(ARCNET_WITH_NCCL) && defined(__CUDACC__)
inline constexpr bool nccl_built = true;
#else
inline constexpr bool nccl_built = false;
#endif
/// The iterations listed in the environment variable `name` ("8,13"): a test hook, empty when unset.
inline std::set<std::int64_t> poisoned_iterations(char const* name) {
  std::set<std::int64_t> at;
  char const* v = std::getenv(name);
  for (char const* c = v; c && *c;) {
    char* end = nullptr;
    long long i = std::strtoll(c, &end, 10);
    if (end == c) break;
    at.insert(i);
    c = *end == ',' ? end + 1 : end;
  }
  return at;
}
/// Sets the first element of the first gradient to NaN (the test hook above).
template <class D>
void poison_gradient(any_retriever<float, D>& model) {
  bool done = false;
  model.for_each_parameter([&](std::string const&, variable<float, D>& p, nn::param_layout) {
    if (done || !p.grad().defined()) return;
    auto nan = tensor<float, cpu>::full(shape{1}, std::numeric_limits<float>::quiet_NaN());
    if constexpr (std::is_same_v<D, cpu>) p.grad_for_accumulate().data()[0] = nan.data()[0];
    else p.grad_for_accumulate().narrow(0, 1).copy_from(nan.template to<D>());
    done = true;
  });
}
/// "R:I" from the environment variable `name`: rank R at iteration I (a test hook; {-1, -1} when unset).
inline std::pair<int, std::int64_t> rank_fault(char const* name) {
  char const* v = std::getenv(name);
  int r = -1;
  long long i = -1;
  if (v && std::sscanf(v, "%d:%lld", &r, &i) == 2) return {r, i};
  return {-1, -1};
}
/// Partial FC in the trainer: this rank's shard of the class centers (distributed::partial_fc_head)
/// trains in place of the model's head weight; the model's head weight and the optimizer state
/// are kept whole in checkpoints (gathered from the shards), so a checkpoint reads the same
/// whether Partial FC trained it or not.
template <class D>
class sharded_head {
 public:
  sharded_head(distributed::communicator& comm, models::arcface_options const& h, double sample_rate,
               std::uint64_t seed)
      : comm_(comm), generator_(seed), head_(comm, h, sample_rate, generator_, seed) {}
  variable<float, D>& weight() { return head_.weight(); }
  variable<float, D> loss(variable<float, D> const& features, std::vector<std::int64_t> const& labels) {
    return head_.loss(features, labels);
  }
  /// The shard becomes this rank's rows of the model's head weight; the sampling continues from
  /// step `iteration` (of a resumed run).
  void from_model(any_retriever<float, D>& model, std::int64_t iteration) {
    head_.load_weight(model.head().weight().value().template to<cpu>());
    head_.set_step(iteration);
  }
  /// The model's head weight becomes the gathered shards (a collective).
  void to_model(any_retriever<float, D>& model) {
    auto full = head_.gather_weight();
    auto& w = model.head().weight().value_mut();
    if constexpr (std::is_same_v<D, cpu>) std::copy(full.data(), full.data() + full.numel(), w.data());
    else w.copy_from(full.template to<D>());
  }
  /// The optimizer state with the entries of `name` (the shard's momentum etc.) gathered whole (a collective).
  typename optim::optimizer<float, D>::state_dict gather_state(typename optim::optimizer<float, D>::state_dict s,
                                                               std::string const& name) {
    for (auto& [key, t] : s)
      if (is_shard_entry(key, t, name)) t = distributed::all_gather_uneven(comm_, t);
    return s;
  }
  /// The optimizer state of a checkpoint with the entries of `name` cut to this rank's rows.
  typename optim::optimizer<float, D>::state_dict local_state(typename optim::optimizer<float, D>::state_dict s,
                                                              std::string const& name) {
    index_t const k = head_.options().num_subcenters;
    for (auto& [key, t] : s)
      if (key.rfind(name + ".", 0) == 0 && t.rank() == 2 && t.size(0) == head_.options().num_classes * k)
        t = t.narrow(head_.class_begin() * k, (head_.class_end() - head_.class_begin()) * k).clone();
    return s;
  }

 private:
  distributed::communicator& comm_;
  generator generator_;
  distributed::partial_fc_head<D> head_;
  bool is_shard_entry(std::string const& key, tensor<float, cpu> const& t, std::string const& name) {
    return key.rfind(name + ".", 0) == 0 && t.rank() == 2 && t.shape() == head_.weight().shape();
  }
};

/// Removes epoch_K.safetensors in dir for every K <= last (a killed run may have left older ones).
inline void remove_epoch_checkpoints_up_to(std::filesystem::path const& dir, int last) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::vector<fs::path> old;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::string const name = it->path().filename().string();
    std::string const pre = "epoch_", post = ".safetensors";
    if (name.size() <= pre.size() + post.size() || name.compare(0, pre.size(), pre) != 0 ||
        name.compare(name.size() - post.size(), post.size(), post) != 0)
      continue;
    std::string const digits = name.substr(pre.size(), name.size() - pre.size() - post.size());
    if (digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos) continue;
    if (std::stol(digits) <= last) old.push_back(it->path());
  }
  for (auto const& f : old) fs::remove(f, ec);
}
}  // namespace detail_trainer

#if __has_include(<cairo.h>)
/// The loss (per logged window) and the validation metrics (per epoch) of a run, as a PNG.
inline void plot_history(nlohmann::json const& history, std::string const& path) {
  viz::figure fig(1200, 450, "arcnet-train");
  auto& loss = fig.add_panel("training loss", "iteration", "loss");
  std::vector<std::pair<double, double>> pts;
  for (auto const& e : history.at("loss")) pts.emplace_back(e[0].get<double>(), e[1].get<double>());
  loss.add_series_xy("loss", pts);
  auto& val = fig.add_panel("validation", "epoch", "%");
  for (char const* key : {"recall@1", "recall@5", "mAP@10", "MAP@R"}) {
    std::vector<std::pair<double, double>> v;
    for (auto const& e : history.at("val"))
      if (e.contains(key) && e[key].is_number()) v.emplace_back(e["epoch"].get<double>(), e[key].get<double>());
    if (!v.empty()) val.add_series_xy(key, v);
  }
  fig.save(path);
}
#endif

/// The result of a run: the final progress and the last evaluation (if any).
struct train_result {
  train_progress progress;
  metrics::retrieval_report last;
  bool evaluated = false;
  double seconds = 0;
};

/// Trains as `o` says, as one rank of `comm` (null: a single process). Every check that can fail
/// on bad input (options, data, checkpoint to load or resume) runs before anything is written to
/// the work dir.
template <class D = cpu>
train_result train(train_options const& o, distributed::communicator* comm = nullptr) {
  namespace fs = std::filesystem;
  using clock = std::chrono::steady_clock;
  auto const t_start = clock::now();
  validate(o);
  if constexpr (std::is_same_v<D, cpu>) {
    if (o.device != "cpu")
      detail::raise<config_error>("device: '", o.device, "' needs a program built with the CUDA backend (nvcc found "
                                  "when it was built); this one runs on the CPU only: use --device cpu");
    if (o.precision != "fp32")
      detail::raise<config_error>("precision: '", o.precision, "' needs --device cuda; the CPU trains in fp32");
  } else {
    if (o.device != D::name)
      detail::raise<config_error>("device: train<", D::name, "> was asked to train on '", o.device, "'");
    if (comm && comm->size() > 1) {
#if defined(ARCNET_WITH_NCCL) && defined(__CUDACC__)
      distributed::use_local_device(*comm);  // one GPU per rank on each machine, before any CUDA tensor exists
#else
      detail::raise<config_error>("device: data-parallel training on '", o.device, "' (", comm->size(),
                                  " ranks) all-reduces gradients with NCCL, and this program was built without it "
                                  "(NCCL and MPI found when it was built); run one process, or use --device cpu");
#endif
    }
#if defined(__CUDACC__)
    if (auto const why = cuda_device_problem(); !why.empty())
      detail::raise<device_error>("device: '", o.device, "': no usable CUDA device on this machine (", why, ")");
#endif
    precision::set_matmul(precision::parse(o.precision));
  }
  constexpr bool on_cpu = std::is_same_v<D, cpu>;
  // The gradient all-reduce: MPI on the CPU, NCCL on the GPU (when built with it).
  constexpr bool can_reduce = on_cpu || detail_trainer::nccl_built;
  if (o.threads > 0) set_num_threads(o.threads);
  distributed::single_process alone;
  distributed::communicator& world = comm ? *comm : alone;
  int const ranks = world.size();
  bool const lead = world.rank() == 0;  // prints, logs and writes
  if (o.head.partial_fc && ranks == 1 && o.head.sample_rate < 1)
    std::printf("arcnet-train: head.partial-fc with one process: every class is on this rank (sampling still applies)\n");

  // Data first: a missing root or a bad list fails before anything is written.
  bool const validates = o.eval.interval >= 0;
  splits s = open_splits(o.data, o.eval, true, validates);
  data::pipeline train_tf(o.data.train_pipeline), test_tf(o.data.test_pipeline);
  index_t const n = s.train.size();
  index_t const per_rank = (n + ranks - 1) / ranks;  // the distributed sampler pads to equal shards
  index_t const iters_per_epoch = per_rank >= o.data.batch_size ? per_rank / o.data.batch_size : 1;  // drop_last
  std::int64_t const total_iters = static_cast<std::int64_t>(iters_per_epoch) * o.epochs;

  // Model (and --load-from).
  model_spec spec{o.model.arch, o.model.embedding_dim, head_from(o.head, s.train)};
  generator g(o.seed);
  auto model = make_retriever<float, D>(spec.arch, spec.embedding_dim, spec.head, g);
  if (o.model.zero_init_residual) model->zero_init_residual();
  std::vector<std::string> notes;
  if (o.dist.sync_bn && ranks > 1 && precision::bf16_activations()) {
    // synchronised batch norm exchanges fp32 activations' statistics: keep the activations fp32
    precision::set_bf16_activations(false);
    notes.push_back("bf16 mode with synchronised batch norm: fp32 activations (bf16 GEMM and convolution operands)");
  }
  if (!o.load_from.empty()) {
    auto c = read_checkpoint(o.load_from);
    auto r = io::load_state_dict(*model, io::adapt_keys(c.model, io::state_names(*model)), false);
    if (!r.mismatched.empty())
      detail::raise<io_error>("load-from: '", o.load_from, "' does not fit the model ", spec.arch, ":", r.str());
    if (r.loaded == 0) detail::raise<io_error>("load-from: '", o.load_from, "' holds no tensor of the model ", spec.arch);
    notes.push_back(detail::concat("loaded ", r.loaded, " tensors from ", o.load_from,
                                   r.ok() ? std::string() : std::string(";") + r.str()));
  }
  int const global_batch = o.data.batch_size * ranks;
  double const lr = o.optim.auto_scale_lr ? optim::auto_scale_lr(o.optim.lr, o.optim.base_batch_size, global_batch)
                                          : o.optim.lr;
  // Partial FC: this rank's shard of the class centers replaces the head's weight in training.
  std::unique_ptr<detail_trainer::sharded_head<D>> sharded;
  std::string const head_weight = "head.norm_product.weight";
  auto params = averaged_parameters(*model, o.head.partial_fc ? head_weight : std::string());
  if (o.head.partial_fc) {
    auto h = spec.head;
    h.in_features = model->embedding_dim();
    sharded = std::make_unique<detail_trainer::sharded_head<D>>(world, h, o.head.sample_rate, o.seed);
    params.emplace_back(head_weight, sharded->weight());
  }
  auto opt = make_optimizer(o.optim, params, lr);
  auto warmup = static_cast<std::int64_t>(std::llround(o.optim.warmup_epochs * iters_per_epoch));
  optim::lr_schedule sched(optim::lr_schedule_options()
                               .set_base_lr(lr)
                               .set_warmup(warmup, o.optim.warmup_start_factor)
                               .set_total_iters(total_iters)
                               .set_kind(o.optim.schedule == "cosine" ? optim::schedule_kind::cosine
                                                                      : optim::schedule_kind::constant)
                               .set_eta_min(o.optim.eta_min));

  // Resume, or refuse to overwrite another run's checkpoints. Every rank reads the checkpoint
  // (the work dir is on a file system they share, as with mmpretrain).
  fs::path const dir(o.work_dir);
  std::string const latest = (dir / "latest.safetensors").string();
  train_progress p;
  if (o.resume) {
    if (!fs::exists(latest))
      detail::raise<io_error>("resume: '", latest, "' does not exist (nothing to resume in work-dir ", o.work_dir, ")");
    auto c = read_checkpoint(latest);
    if (!c.has_meta()) detail::raise<io_error>("resume: '", latest, "' is not an arcnet training checkpoint");
    auto saved = model_spec::from_json(c.meta.at("model"), latest);
    if (saved.to_json() != spec.to_json())
      detail::raise<config_error>("resume: '", latest, "' holds the model ", saved.to_json().dump(),
                                  " but the options describe ", spec.to_json().dump());
    io::load_state_dict(*model, c.model, true);
    opt->load_state(sharded ? sharded->local_state(c.optimizer, head_weight) : c.optimizer);
    p = progress_of(c, latest);
    notes.push_back(detail::concat("resumed from ", latest, " after epoch ", p.epoch));
  } else if (fs::exists(latest)) {
    detail::raise<io_error>("work-dir: '", o.work_dir, "' already holds a training run (latest.safetensors); pass "
                            "--resume to continue it, or choose another --work-dir");
  }
  broadcast_state(world, *model);  // every rank starts from rank 0's weights
  if (sharded) sharded->from_model(*model, p.iteration);
  jsonl_log log;
  if (lead) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) detail::raise<io_error>("work-dir: cannot create '", o.work_dir, "': ", ec.message());
    auto const stale = detail::remove_stale_temporaries(o.work_dir);
    if (!stale.empty())
      notes.push_back(detail::concat("removed ", stale.size(), " temporary file(s) of an interrupted write, e.g. ",
                                     stale.front()));
    log = jsonl_log((dir / "log.jsonl").string());
  }
  if (!p.history.contains("loss")) p.history["loss"] = nlohmann::json::array();
  if (!p.history.contains("val")) p.history["val"] = nlohmann::json::array();

  if (lead) {
    std::printf("arcnet-train: %s + ArcFace (%d classes, k=%d, s=%g, m=%g), %ld training images", spec.arch.c_str(),
                spec.head.num_classes, spec.head.num_subcenters, spec.head.scale, spec.head.margin, static_cast<long>(n));
    if (validates)
      std::printf(", validation: %ld queries vs %s%ld", static_cast<long>(s.query.size()),
                  s.leave_one_out ? "each other, " : "", static_cast<long>(s.gallery.size()));
    std::printf("\n");
    std::printf("arcnet-train: %s lr %g (batch %d), %ld iterations per epoch, %d epochs, %d threads\n", opt->name(), lr,
                global_batch, static_cast<long>(iters_per_epoch), o.epochs, max_threads());
    if (ranks > 1)
      std::printf("arcnet-train: %d ranks (%s), batch %d per rank%s%s\n", ranks, world.name().c_str(),
                  o.data.batch_size, o.dist.sync_bn ? ", synchronised batch norm" : "",
                  sharded ? detail::concat(", Partial FC (sample rate ", o.head.sample_rate, ")").c_str() : "");
    for (auto const& note : notes) std::printf("arcnet-train: %s\n", note.c_str());
    std::fflush(stdout);
  }
  log.write({{"event", p.epoch > 0 ? "resume" : "start"}, {"epoch", p.epoch}, {"arch", spec.arch}, {"lr", lr},
             {"ranks", ranks}});

  data::loader_options lo;
  lo.batch_size = o.data.batch_size;
  lo.workers = o.data.workers;
  lo.prefetch = std::max(2, 2 * o.data.workers);
  lo.shuffle = true;
  lo.drop_last = per_rank >= o.data.batch_size;
  lo.seed = o.seed;
  lo.skip_bad = o.data.skip_bad;
  lo.rank = world.rank();
  lo.world_size = ranks;
  lo.pin_memory = !on_cpu;  // page-locked batches: the copy to the GPU is queued without a wait
  auto loader = s.train.loader(train_tf, lo);
  bool const tty = progress_line::stdout_is_terminal();
  int const eval_batch = o.eval.batch_size > 0 ? o.eval.batch_size : o.data.batch_size;
  train_result result;
  auto const poisoned_grad = detail_trainer::poisoned_iterations("ARCNET_TEST_NONFINITE_GRADIENT_AT");
  auto const poisoned_loss = detail_trainer::poisoned_iterations("ARCNET_TEST_NONFINITE_LOSS_AT");
  auto const kill_at = detail_trainer::rank_fault("ARCNET_TEST_KILL_RANK_AT");
  auto const stall_at = detail_trainer::rank_fault("ARCNET_TEST_STALL_RANK_AT");
  std::vector<tensor<float, D>> saved_buffers;  // with skip_nonfinite: the buffers before the step
  std::unique_ptr<distributed::gradient_reducer<std::conditional_t<can_reduce, D, cpu>>> reducer;
  if constexpr (can_reduce) {
    if (ranks > 1) {
      distributed::reducer_options ro;
      ro.bucket_bytes = static_cast<std::size_t>(o.dist.bucket_mb * (1 << 20));
      reducer = std::make_unique<distributed::gradient_reducer<D>>(world, averaged_parameters(*model, sharded ? head_weight : ""), ro);
    }
  }

  for (int epoch = p.epoch; epoch < o.epochs; ++epoch) {
    model->train(true);
    loader->begin_epoch(static_cast<std::uint64_t>(epoch));
    progress_line bar(detail::concat("Epoch(train) [", epoch + 1, "/", o.epochs, "]"), static_cast<long>(iters_per_epoch),
                      o.log_interval, tty, lead);
    data::batch b;
    double window_loss = 0;
    long window_n = 0, images = 0, step = 0;
    while (step < iters_per_epoch && loader->next(b)) {
      if (world.rank() == kill_at.first && p.iteration + 1 == kill_at.second) std::raise(SIGKILL);
      if (world.rank() == stall_at.first && p.iteration + 1 == stall_at.second)
        std::this_thread::sleep_for(std::chrono::hours(1));
      double const rate = sched.lr_at(p.iteration);
      opt->set_lr(rate);
      opt->zero_grad();
      if (o.optim.skip_nonfinite) {  // a skipped step leaves no trace, not even in the running statistics
        saved_buffers.clear();
        model->for_each_buffer([&](std::string const&, tensor<float, D>& t) { saved_buffers.push_back(t.clone()); });
      }
      variable<float, D> loss;
      {
        std::optional<distributed::sync_batch_norm_scope<D>> sync;
        if (o.dist.sync_bn && ranks > 1) sync.emplace(world);
        variable<float, D> images_v(to_device_async<D>(b.images));
        loss = sharded ? sharded->loss(model->features(images_v), b.labels) : model->loss(images_v, b.labels);
      }
      double value = loss.value().template to<cpu>().item();
      if (poisoned_loss.count(p.iteration + 1)) value = std::numeric_limits<double>::quiet_NaN();
      if (ranks > 1) {  // the mean over ranks: every rank sees the same value and decides the same
        world.all_reduce(&value, 1, distributed::reduce_op::sum);
        value /= ranks;
      }
      std::string nonfinite;  // why this step cannot be taken
      double grad_norm = std::numeric_limits<double>::quiet_NaN();
      if (!std::isfinite(value)) {
        nonfinite = detail::concat("the loss is ", std::isnan(value) ? "nan" : value > 0 ? "inf" : "-inf");
      } else {
        if constexpr (can_reduce) {
          if (reducer) {
            {
              auto overlap = reducer->observe();  // buckets start as their gradients become final
              loss.backward();
            }
            reducer->finish();
          } else {
            loss.backward();
          }
        } else {
          loss.backward();
        }
        if (poisoned_grad.count(p.iteration + 1)) detail_trainer::poison_gradient(*model);
        auto const grads = summarize_gradients(*model);
        grad_norm = grads.norm;
        if (!grads.nonfinite.empty())
          nonfinite = detail::concat("the gradient of ", grads.nonfinite, " is non-finite (global gradient norm ",
                                     std::isnan(grads.norm) ? "nan" : "inf", ", loss ", value, ")");
      }
      if (!nonfinite.empty() && !o.optim.skip_nonfinite)
        detail::raise<error>("training diverged: ", nonfinite, " at iteration ", p.iteration + 1, " (epoch ", epoch + 1,
                             "); ", fs::exists(latest) ? detail::concat("the last good checkpoint is ", latest,
                                                                        " (epoch ", p.epoch, ")")
                                                       : std::string("no checkpoint was written yet"),
                             "; lower optim.lr or check the data, or pass --optim.skip-nonfinite true to skip such steps");
      if (nonfinite.empty()) {
        opt->step();
        window_loss += value;
        ++window_n;
      } else {
        opt->zero_grad();
        std::size_t k = 0;
        model->for_each_buffer([&](std::string const&, tensor<float, D>& t) { t.copy_from(saved_buffers[k++]); });
        ++p.skipped_steps;
        bar.finish();
        if (lead) {
          std::printf("arcnet-train: skipped iteration %ld (epoch %d): %s\n", static_cast<long>(p.iteration + 1),
                      epoch + 1, nonfinite.c_str());
          std::fflush(stdout);
        }
        log.write({{"event", "skip"}, {"epoch", epoch + 1}, {"iter", p.iteration + 1}, {"reason", nonfinite},
                   {"loss", value}, {"grad_norm", grad_norm}, {"skipped_steps", p.skipped_steps}});
      }
      ++p.iteration;
      ++step;
      images += b.size() * ranks;
      if ((step % o.log_interval == 0 || step == iters_per_epoch) && window_n > 0) {
        double const mean = window_loss / window_n;
        p.history["loss"].push_back({p.iteration, mean});
        log.write({{"mode", "train"}, {"epoch", epoch + 1}, {"iter", p.iteration}, {"lr", rate}, {"loss", mean},
                   {"img_s", images / bar.seconds()}});
        window_loss = 0;
        window_n = 0;
      }
      bar.update(step, images, detail::concat(nonfinite.empty() ? "loss " + std::to_string(value).substr(0, 6) : "skipped",
                                              "  lr ", rate));
    }
    bar.finish();
    log.write({{"mode", "epoch"}, {"epoch", epoch + 1}, {"train_seconds", bar.seconds()}, {"images", images},
               {"img_s", images / bar.seconds()}});
    if (!loader->bad_samples().empty())
      std::printf("arcnet-train: %sskipped %zu unreadable images so far (first: %s)\n",
                  ranks > 1 ? detail::concat("rank ", world.rank(), ": ").c_str() : "", loader->bad_samples().size(),
                  loader->bad_samples().front().message.c_str());
    p.epoch = epoch + 1;
    average_buffers(world, *model);  // SyncBuffersHook: the same running statistics everywhere
    if (sharded) sharded->to_model(*model);  // the whole head, for evaluation and the checkpoint

    bool const last = p.epoch == o.epochs;
    if ((o.eval.interval > 0 && p.epoch % o.eval.interval == 0) || (last && validates)) {
      auto ev = evaluate(*model, s, test_tf, eval_batch, o.data.workers, [&](index_t done, index_t total) {
        if (!tty || !lead) return;
        std::printf("\rEpoch(val) [%d] embedding %ld/%ld   ", p.epoch, static_cast<long>(done), static_cast<long>(total));
        std::fflush(stdout);
      }, 20000, &world);
      if (lead) {
        if (tty) std::printf("\n");
        auto const& r = ev.report;
        std::printf("Epoch(val) [%d]  %s  (%.0f s)\n", p.epoch, r.str().c_str(), ev.embed_seconds + ev.search_seconds);
        std::fflush(stdout);
        nlohmann::json v = {{"epoch", p.epoch},       {"recall@1", r.recall_at_1}, {"recall@5", r.recall_at_5},
                            {"recall@10", r.recall_at_10}, {"mAP@10", r.map_at_10},  {"mAP@10_integrate", r.map_at_10_integrate},
                            {"MAP@R", std::isfinite(r.map_at_r) ? nlohmann::json(r.map_at_r) : nlohmann::json()}};
        p.history["val"].push_back(v);
        v["mode"] = "val";
        log.write(v);
        result.last = r;
        result.evaluated = true;
        if (r.recall_at_1 > p.best_recall_at_1) {
          p.best_recall_at_1 = r.recall_at_1;
          p.best_epoch = p.epoch;
        }
      }
    }
    // epoch_N, then best, then latest, each atomically: latest is what --resume reads, so a kill
    // before it is renamed into place redoes this epoch, which rewrites epoch_N and best the same.
    auto const optimizer_state = sharded ? sharded->gather_state(opt->state(), head_weight)  // a collective
                                 : lead  ? opt->state()
                                         : typename optim::optimizer<float, D>::state_dict();
    if (lead) {
      std::string const this_epoch = (dir / detail::concat("epoch_", p.epoch, ".safetensors")).string();
      save_training_checkpoint(this_epoch, *model, spec, opt->name(), optimizer_state, p);
      if (p.best_epoch == p.epoch) copy_atomically(this_epoch, (dir / "best.safetensors").string());
      copy_atomically(this_epoch, latest);
      detail_trainer::remove_epoch_checkpoints_up_to(dir, p.epoch - o.keep_last);
    }
  }
  result.progress = p;
#if __has_include(<cairo.h>)
  if (lead) plot_history(p.history, (dir / "curves.png").string());
#endif
  result.seconds = std::chrono::duration<double>(clock::now() - t_start).count();
  if (p.skipped_steps > 0 && lead) {
    std::printf("arcnet-train: skipped %ld of %ld steps for a non-finite loss or gradient (optim.skip-nonfinite)\n",
                static_cast<long>(p.skipped_steps), static_cast<long>(p.iteration));
    std::fflush(stdout);
  }
  log.write({{"event", "end"}, {"epoch", p.epoch}, {"seconds", result.seconds}, {"skipped_steps", p.skipped_steps}});
  world.barrier();  // no rank leaves (and finalises MPI) while another still writes or waits
  return result;
}


}  // namespace arcnet::engine
