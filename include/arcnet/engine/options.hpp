#pragma once
// The options of the programs (arcnet-train, arcnet-test, arcnet-retrieve): plain structs, their
// Boost.Program_options descriptions, and the parsing of a config file (Program_options' INI
// format, "[section]" then "key = value" lines) with every option overridable on the command
// line. The engine is the only part of arcnet that knows Boost.Program_options.
#include <boost/program_options.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "arcnet/core/error.hpp"

namespace arcnet::engine {

/// Where the images come from and how they are loaded.
struct data_options {
  std::string kind = "in_shop";  // in_shop | image_folder | folder | list | idx
  std::string root;              // in_shop: ROOT with Eval/ and Img/; image_folder: ROOT/{train,query,gallery};
                                 // idx: the folder of {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]
  std::string train_list, query_list, gallery_list;  // kind = list: "path label" files (paths relative to root)
  std::string train_pipeline = "resize=512x512,random_crop=448,flip=0.5,normalize=imagenet";
  std::string test_pipeline = "resize=512x512,center_crop=448,normalize=imagenet";
  int batch_size = 32;
  int workers = 4;
  bool skip_bad = false;
  std::string train_classes;  // "" = all; else e.g. "0-6" (labels renumbered 0..k-1)
};

/// The model: backbone architecture and optional embedding neck.
struct model_options {
  std::string arch = "resnet50";
  int embedding_dim = 0;  // 0: the backbone's pooled feature
  bool zero_init_residual = false;
};

/// The ArcFace head (classes come from the training set).
struct head_options {
  int subcenters = 1;
  double scale = 64;
  double margin = 0.5;
  std::string margins_file;  // one margin per class and line
  bool adaptive_margins = false;
  bool easy_margin = false;
  bool partial_fc = false;   // under mpirun: class centers sharded across ranks (insightface's Partial FC)
  double sample_rate = 1.0;  // Partial FC: fraction of each shard's classes used per step (positives always)
};

/// Training on several processes (mpirun): see engine/distributed.hpp.
struct dist_options {
  std::string launcher = "auto";  // auto: MPI when started by mpirun | none | mpi
  bool sync_bn = false;           // batch statistics over all ranks (SyncBatchNorm)
  double timeout = 1800;          // seconds a collective may wait before the job stops (PyTorch: 30 min)
  double bucket_mb = 25;          // gradient all-reduce bucket size (PyTorch's bucket_cap_mb)
};

/// The optimizer and the learning-rate schedule.
struct optim_options {
  std::string type = "sgd";  // sgd | adamw
  double lr = 0.02;
  double momentum = 0.9;
  bool nesterov = true;
  double weight_decay = 5e-4;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  bool auto_scale_lr = true;  // lr *= batch_size / base_batch_size (mmpretrain's auto_scale_lr)
  int base_batch_size = 256;
  std::string schedule = "cosine";  // cosine | constant
  double warmup_epochs = 5;
  double warmup_start_factor = 0.01;
  double eta_min = 0;
  bool skip_nonfinite = false;  // skip (and count) a step whose loss or gradient is NaN/Inf instead of stopping
};

/// Query-vs-gallery evaluation.
struct eval_options {
  std::string protocol = "gallery";  // gallery: queries vs the gallery split; leave-one-out: the
                                     // queries against each other (a query never retrieves itself)
  std::string classes;               // "" = all; else only queries/gallery items of these labels
  int interval = 1;                  // validate every N epochs (0: only after the last; -1: never)
  int batch_size = 0;                // 0: data.batch-size
  int max_queries = 0;               // 0: all; else the first N queries (quick checks)
};

/// Everything arcnet-train reads.
struct train_options {
  data_options data;
  model_options model;
  head_options head;
  optim_options optim;
  eval_options eval;
  dist_options dist;
  int epochs = 50;
  std::string device = "cpu";
  std::string precision = "fp32";
  std::uint64_t seed = 0;
  std::string work_dir;
  std::string load_from;
  bool resume = false;
  int keep_last = 3;       // epoch_N checkpoints kept
  int log_interval = 50;   // iterations between log lines (and loss points in the plot)
  int threads = 0;         // OpenMP threads for the kernels (0: OpenMP's default)
};

namespace detail_options {
namespace po = boost::program_options;

inline void add_data(po::options_description& d, data_options& o) {
  d.add_options()
      ("data.kind", po::value(&o.kind)->default_value(o.kind), "dataset: in_shop | image_folder | folder | list | idx")
      ("data.root", po::value(&o.root)->default_value(o.root), "dataset root folder")
      ("data.train-list", po::value(&o.train_list)->default_value(o.train_list), "kind=list: training list file")
      ("data.query-list", po::value(&o.query_list)->default_value(o.query_list), "kind=list: query list file")
      ("data.gallery-list", po::value(&o.gallery_list)->default_value(o.gallery_list), "kind=list: gallery list file")
      ("data.train-pipeline", po::value(&o.train_pipeline)->default_value(o.train_pipeline), "training transforms")
      ("data.test-pipeline", po::value(&o.test_pipeline)->default_value(o.test_pipeline), "evaluation transforms")
      ("data.batch-size", po::value(&o.batch_size)->default_value(o.batch_size), "images per batch")
      ("data.workers", po::value(&o.workers)->default_value(o.workers), "loader threads")
      ("data.skip-bad", po::value(&o.skip_bad)->default_value(o.skip_bad), "skip unreadable images (counted)")
      ("data.train-classes", po::value(&o.train_classes)->default_value(o.train_classes),
       "train on these labels only, e.g. 0-6 (empty: all)");
}
inline void add_model(po::options_description& d, model_options& o) {
  d.add_options()
      ("model.arch", po::value(&o.arch)->default_value(o.arch),
       "resnet18|34|50|101|152, cifar_resnet8|14|20|32|56")
      ("model.embedding-dim", po::value(&o.embedding_dim)->default_value(o.embedding_dim),
       "embedding neck width: 0 (none), 128, 256, 512")
      ("model.zero-init-residual", po::value(&o.zero_init_residual)->default_value(o.zero_init_residual),
       "start each residual block as the identity");
}
inline void add_head(po::options_description& d, head_options& o) {
  d.add_options()
      ("head.subcenters", po::value(&o.subcenters)->default_value(o.subcenters), "sub-centers per class (k)")
      ("head.scale", po::value(&o.scale)->default_value(o.scale), "logit scale s")
      ("head.margin", po::value(&o.margin)->default_value(o.margin), "angular margin m (radians)")
      ("head.margins-file", po::value(&o.margins_file)->default_value(o.margins_file), "one margin per class and line")
      ("head.adaptive-margins", po::value(&o.adaptive_margins)->default_value(o.adaptive_margins),
       "margins from class counts (count^-1/4 into [0.05, 0.5])")
      ("head.easy-margin", po::value(&o.easy_margin)->default_value(o.easy_margin), "easy_margin")
      ("head.partial-fc", po::value(&o.partial_fc)->default_value(o.partial_fc),
       "under mpirun: shard the class centers across ranks (Partial FC)")
      ("head.sample-rate", po::value(&o.sample_rate)->default_value(o.sample_rate),
       "Partial FC: fraction of each shard's classes per step (the batch's classes always)");
}
inline void add_dist(po::options_description& d, dist_options& o) {
  d.add_options()
      ("dist.launcher", po::value(&o.launcher)->default_value(o.launcher),
       "auto (MPI when started by mpirun) | none | mpi")
      ("dist.sync-bn", po::value(&o.sync_bn)->default_value(o.sync_bn), "batch-norm statistics over all ranks")
      ("dist.timeout", po::value(&o.timeout)->default_value(o.timeout),
       "seconds a rank waits for the others in a collective before the job stops with an error")
      ("dist.bucket-mb", po::value(&o.bucket_mb)->default_value(o.bucket_mb), "gradient all-reduce bucket size (MiB)");
}
inline void add_optim(po::options_description& d, optim_options& o) {
  d.add_options()
      ("optim.type", po::value(&o.type)->default_value(o.type), "sgd | adamw")
      ("optim.lr", po::value(&o.lr)->default_value(o.lr), "learning rate (for base-batch-size images)")
      ("optim.momentum", po::value(&o.momentum)->default_value(o.momentum), "SGD momentum")
      ("optim.nesterov", po::value(&o.nesterov)->default_value(o.nesterov), "SGD Nesterov momentum")
      ("optim.weight-decay", po::value(&o.weight_decay)->default_value(o.weight_decay), "weight decay")
      ("optim.beta1", po::value(&o.beta1)->default_value(o.beta1), "AdamW beta1")
      ("optim.beta2", po::value(&o.beta2)->default_value(o.beta2), "AdamW beta2")
      ("optim.eps", po::value(&o.eps)->default_value(o.eps), "AdamW epsilon")
      ("optim.auto-scale-lr", po::value(&o.auto_scale_lr)->default_value(o.auto_scale_lr),
       "scale lr by batch-size / base-batch-size")
      ("optim.base-batch-size", po::value(&o.base_batch_size)->default_value(o.base_batch_size), "see auto-scale-lr")
      ("optim.schedule", po::value(&o.schedule)->default_value(o.schedule), "after warm-up: cosine | constant")
      ("optim.warmup-epochs", po::value(&o.warmup_epochs)->default_value(o.warmup_epochs),
       "linear warm-up length in epochs (applied per iteration)")
      ("optim.warmup-start-factor", po::value(&o.warmup_start_factor)->default_value(o.warmup_start_factor),
       "warm-up starts at this fraction of lr")
      ("optim.eta-min", po::value(&o.eta_min)->default_value(o.eta_min), "cosine floor")
      ("optim.skip-nonfinite", po::value(&o.skip_nonfinite)->default_value(o.skip_nonfinite),
       "when a step's loss or gradient is NaN or Inf: false stops training with an error naming the iteration; "
       "true skips that step (no update, counted and logged)");
}
inline void add_eval(po::options_description& d, eval_options& o) {
  d.add_options()
      ("eval.protocol", po::value(&o.protocol)->default_value(o.protocol), "gallery | leave-one-out")
      ("eval.classes", po::value(&o.classes)->default_value(o.classes), "evaluate on these labels only, e.g. 7-9")
      ("eval.interval", po::value(&o.interval)->default_value(o.interval), "validate every N epochs (0: after the last only, -1: never)")
      ("eval.batch-size", po::value(&o.batch_size)->default_value(o.batch_size), "0: data.batch-size")
      ("eval.max-queries", po::value(&o.max_queries)->default_value(o.max_queries), "0: all queries");
}
inline void add_run(po::options_description& d, train_options& o) {
  d.add_options()
      ("epochs", po::value(&o.epochs)->default_value(o.epochs), "training epochs")
      ("device", po::value(&o.device)->default_value(o.device), "cpu | cuda")
      ("precision", po::value(&o.precision)->default_value(o.precision), "fp32 | tf32 | bf16 (cuda: the operand precision of convolutions and GEMMs)")
      ("seed", po::value(&o.seed)->default_value(o.seed), "seed of initialisation, sample order, augmentation")
      ("work-dir", po::value(&o.work_dir)->default_value(o.work_dir), "checkpoints, logs and plots go here")
      ("load-from", po::value(&o.load_from)->default_value(o.load_from),
       "initialise from a checkpoint (.safetensors, PyTorch/mmpretrain .pth)")
      ("resume", po::bool_switch(&o.resume), "continue the run in work-dir from its latest checkpoint")
      ("keep-last", po::value(&o.keep_last)->default_value(o.keep_last), "epoch checkpoints kept")
      ("log-interval", po::value(&o.log_interval)->default_value(o.log_interval), "iterations between log lines")
      ("threads", po::value(&o.threads)->default_value(o.threads), "kernel threads (0: all cores)");
}

/// Reaches the placeholder values of a Program_options error (a protected member): a pointer
/// to member formed through a derived class, the standard's way to name it without a cast.
struct po_error_access : po::error_with_option_name {
  using member = std::map<std::string, std::string> po::error_with_option_name::*;
  static member substitutions() { return &po_error_access::m_substitutions; }
};

/// e.what(), safe on any input. Program_options fills a message by replacing "%value%" (and
/// "%option%", "%original_token%", ...) until none is left, so a key or value that contains its
/// own placeholder, e.g. "epochs = %value%", made what() loop forever while the message grew
/// without bound (found by fuzzing the config file). The user's '%' become U+FF05 first.
inline std::string po_message(po::error& e) {
  if (auto* named = dynamic_cast<po::error_with_option_name*>(&e)) {
    for (auto& entry : named->*po_error_access::substitutions()) {
      std::string& v = entry.second;
      for (std::size_t at = v.find('%'); at != std::string::npos; at = v.find('%', at + 3))
        v.replace(at, 1, "\xef\xbc\x85");  // FULLWIDTH PERCENT SIGN
    }
  }
  return e.what();
}

/// Parses argv, then the config file (--config) if any: the command line wins. Rethrows
/// Program_options' errors as config_error naming the key, the value and the file.
inline bool parse(int argc, char const* const* argv, po::options_description const& visible,
                  po::options_description const& all, std::string const& program, std::string const& usage,
                  po::positional_options_description const* positional = nullptr) {
  po::options_description generic("general");
  std::string config;
  generic.add_options()("help,h", "print this help")("config,c", po::value(&config), "INI config file");
  po::options_description cmdline;
  cmdline.add(generic).add(all);
  po::variables_map vm;
  try {
    po::command_line_parser parser(argc, argv);
    parser.options(cmdline);
    if (positional) parser.positional(*positional);
    po::store(parser.run(), vm);
    if (vm.count("help")) {
      po::options_description shown;
      shown.add(generic).add(visible);
      std::cout << "usage: " << program << " " << usage << "\n\n" << shown << "\n";
      return false;
    }
    if (vm.count("config")) {
      config = vm["config"].as<std::string>();
      std::ifstream in(config);
      if (!in) detail::raise<config_error>("cannot open config file '", config, "'");
      try {
        po::store(po::parse_config_file(in, all, false), vm);
      } catch (po::error& e) {
        detail::raise<config_error>("config file '", config, "': ", po_message(e));
      }
    }
    po::notify(vm);
  } catch (po::error& e) {
    detail::raise<config_error>(po_message(e));
  }
  return true;
}

}  // namespace detail_options

/// Parses "0-6", "1,3,5-7" into sorted distinct labels below 2^20 (data::list_file's limit);
/// config_error naming `key` otherwise. Overlapping ranges are merged before they are expanded,
/// so the work is bounded by the result, whatever the text repeats.
inline std::vector<std::int64_t> parse_class_list(std::string const& text, std::string const& key) {
  constexpr long long max_classes = 1LL << 20;
  std::vector<std::pair<long long, long long>> ranges;
  std::stringstream ss(text);
  std::string part;
  while (std::getline(ss, part, ',')) {
    std::size_t dash = part.find('-', 1);
    long long lo = 0, hi = 0;
    try {
      std::size_t used = 0;
      lo = std::stoll(part.substr(0, dash), &used);
      hi = lo;
      if (dash != std::string::npos) hi = std::stoll(part.substr(dash + 1), &used);
      if (lo < 0 || hi < lo || used == 0) throw std::invalid_argument(part);
    } catch (std::exception const&) {
      detail::raise<config_error>(key, ": expected labels like 0-6 or 1,3,5-7, got '", text, "'");
    }
    if (hi >= max_classes)
      detail::raise<config_error>(key, ": label ", hi, " in '", text, "' is too large (labels are below ", max_classes,
                                  ")");
    ranges.emplace_back(lo, hi);
  }
  std::sort(ranges.begin(), ranges.end());
  std::vector<std::int64_t> out;
  long long next = 0;  // the smallest label not yet in out
  for (auto const& [lo, hi] : ranges) {
    for (long long v = std::max(lo, next); v <= hi; ++v) out.push_back(v);
    next = std::max(next, hi + 1);
  }
  return out;
}

/// Checks the values no option parser can: ranges and choices. config_error naming the key.
inline void validate(train_options const& o) {
  auto choice = [](std::string const& key, std::string const& v, std::vector<std::string> const& ok) {
    for (auto const& c : ok)
      if (v == c) return;
    std::string list;
    for (auto const& c : ok) list += (list.empty() ? "" : ", ") + c;
    detail::raise<config_error>(key, ": expected one of ", list, ", got '", v, "'");
  };
  auto positive = [](std::string const& key, double v) {
    if (!(v > 0) || !std::isfinite(v)) detail::raise<config_error>(key, ": expected a positive number, got ", v);
  };
  choice("data.kind", o.data.kind, {"in_shop", "image_folder", "folder", "list", "idx"});
  if (o.data.root.empty() && o.data.kind != "list") detail::raise<config_error>("data.root: not set");
  positive("data.batch-size", o.data.batch_size);
  if (o.data.workers < 0) detail::raise<config_error>("data.workers: expected >= 0, got ", o.data.workers);
  if (!o.data.train_classes.empty()) parse_class_list(o.data.train_classes, "data.train-classes");
  if (!o.eval.classes.empty()) parse_class_list(o.eval.classes, "eval.classes");
  positive("head.subcenters", o.head.subcenters);
  positive("head.scale", o.head.scale);
  if (!(o.head.margin >= 0 && o.head.margin <= 3.14159265358979 / 2))
    detail::raise<config_error>("head.margin: expected a margin in [0, pi/2] radians, got ", o.head.margin);
  if (!(o.head.sample_rate > 0 && o.head.sample_rate <= 1))
    detail::raise<config_error>("head.sample-rate: expected a fraction in (0, 1], got ", o.head.sample_rate);
  if (o.head.sample_rate < 1 && !o.head.partial_fc)
    detail::raise<config_error>("head.sample-rate: ", o.head.sample_rate, " needs head.partial-fc true");
  choice("dist.launcher", o.dist.launcher, {"auto", "none", "mpi"});
  positive("dist.timeout", o.dist.timeout);
  positive("dist.bucket-mb", o.dist.bucket_mb);
  choice("optim.type", o.optim.type, {"sgd", "adamw"});
  choice("optim.schedule", o.optim.schedule, {"cosine", "constant"});
  positive("optim.lr", o.optim.lr);
  if (o.optim.weight_decay < 0) detail::raise<config_error>("optim.weight-decay: expected >= 0, got ", o.optim.weight_decay);
  positive("optim.base-batch-size", o.optim.base_batch_size);
  if (o.optim.warmup_epochs < 0 || o.optim.warmup_epochs > o.epochs ||
      (o.optim.schedule == "cosine" && o.optim.warmup_epochs >= o.epochs))
    detail::raise<config_error>("optim.warmup-epochs: expected 0 <= warm-up < epochs (", o.epochs,
                                ") so that the cosine has iterations left, got ", o.optim.warmup_epochs);
  if (!(o.optim.warmup_start_factor > 0 && o.optim.warmup_start_factor <= 1))
    detail::raise<config_error>("optim.warmup-start-factor: expected a value in (0, 1], got ", o.optim.warmup_start_factor);
  choice("eval.protocol", o.eval.protocol, {"gallery", "leave-one-out"});
  if (o.eval.interval < -1) detail::raise<config_error>("eval.interval: expected >= -1, got ", o.eval.interval);
  positive("epochs", o.epochs);
  choice("device", o.device, {"cpu", "cuda"});
  choice("precision", o.precision, {"fp32", "tf32", "bf16"});
  if (o.work_dir.empty()) detail::raise<config_error>("work-dir: not set (checkpoints and logs go there)");
  if (o.keep_last < 0) detail::raise<config_error>("keep-last: expected >= 0, got ", o.keep_last);
  positive("log-interval", o.log_interval);
}

/// Parses arcnet-train's command line and config file; false when --help was printed.
inline bool parse_train_options(int argc, char const* const* argv, train_options& o) {
  namespace po = boost::program_options;
  po::options_description data("data"), model("model"), head("head"), optim("optimizer and schedule"),
      eval("evaluation"), dist("several processes (mpirun)"), run("run");
  detail_options::add_data(data, o.data);
  detail_options::add_model(model, o.model);
  detail_options::add_head(head, o.head);
  detail_options::add_optim(optim, o.optim);
  detail_options::add_eval(eval, o.eval);
  detail_options::add_dist(dist, o.dist);
  detail_options::add_run(run, o);
  po::options_description all;
  all.add(data).add(model).add(head).add(optim).add(eval).add(dist).add(run);
  if (!detail_options::parse(argc, argv, all, all, "arcnet-train", "[--config FILE] [--section.key VALUE ...]"))
    return false;
  validate(o);
  return true;
}

}  // namespace arcnet::engine

namespace arcnet::engine {

/// Everything arcnet-test reads (the model comes from the checkpoint).
struct test_options {
  data_options data;
  eval_options eval;
  std::string checkpoint;
  std::string out;  // JSON file for the metrics ("" : none)
  int show = 0;      // print the top-5 of this many queries (spread over the query set)
  std::string grid;  // and draw them into this PNG
  std::string pairs;      // verification pairs file (LFW pairs.txt or "a b same" lines; paths under data.root)
  int make_pairs = 0;     // first write `pairs`: this many same and different pairs per fold of the evaluation set
  std::uint64_t pairs_seed = 0;
  bool flip = false;      // verification: sum each image's embedding with its mirror image's
  std::string device = "cpu";
  int threads = 0;
};

/// Everything arcnet-retrieve reads.
struct retrieve_options {
  std::string checkpoint;
  std::string prototype;     // a folder of images, or a gallery feature file (.safetensors)
  std::string save_gallery;  // write the prototype's features here for reuse
  std::vector<std::string> queries;
  int topk = 5;
  std::string grid;  // PNG of each query and its top-k
  std::string test_pipeline = data_options{}.test_pipeline;
  int batch_size = 32;
  int workers = 4;
  std::string device = "cpu";
  int threads = 0;
};

namespace detail_options {
/// Keys of a training config that arcnet-test and arcnet-retrieve accept and ignore.
inline void add_ignored_run_keys(po::options_description& r) {
  r.add_options()("epochs", po::value<int>())("precision", po::value<std::string>())("seed", po::value<std::uint64_t>())
      ("work-dir", po::value<std::string>())("load-from", po::value<std::string>())("resume", po::value<bool>())
      ("keep-last", po::value<int>())("log-interval", po::value<int>());
}
}  // namespace detail_options

/// Parses arcnet-test's options; a training config file is accepted (its other keys are ignored).
inline bool parse_test_options(int argc, char const* const* argv, test_options& o) {
  namespace po = boost::program_options;
  po::options_description data("data"), eval("evaluation"), run("test");
  detail_options::add_data(data, o.data);
  detail_options::add_eval(eval, o.eval);
  run.add_options()
      ("checkpoint", po::value(&o.checkpoint)->required(), "checkpoint written by arcnet-train")
      ("out", po::value(&o.out)->default_value(o.out), "write the metrics as JSON here")
      ("show", po::value(&o.show)->default_value(o.show), "print the top-5 matches of this many queries")
      ("grid", po::value(&o.grid)->default_value(o.grid), "draw those queries and matches into this PNG")
      ("pairs", po::value(&o.pairs)->default_value(o.pairs),
       "also verify these pairs: LFW pairs.txt, or 'path_a path_b same' lines (relative to data.root)")
      ("make-pairs", po::value(&o.make_pairs)->default_value(o.make_pairs),
       "first write --pairs: N same and N different pairs per fold (10 folds) of the query and gallery images")
      ("pairs-seed", po::value(&o.pairs_seed)->default_value(o.pairs_seed), "seed of --make-pairs")
      ("flip", po::bool_switch(&o.flip), "verification: add each image's mirror image's embedding")
      ("device", po::value(&o.device)->default_value(o.device), "cpu | cuda")
      ("threads", po::value(&o.threads)->default_value(o.threads), "kernel threads (0: all cores)");
  train_options ignored;
  po::options_description visible, all;
  visible.add(run).add(data).add(eval);
  // The same keys under another section are ignored: register the rest of the training options.
  po::options_description m, h, opt, r;
  detail_options::add_model(m, ignored.model);
  detail_options::add_head(h, ignored.head);
  detail_options::add_optim(opt, ignored.optim);
  detail_options::add_ignored_run_keys(r);
  detail_options::add_dist(r, ignored.dist);
  all.add(visible).add(m).add(h).add(opt).add(r);
  if (!detail_options::parse(argc, argv, visible, all, "arcnet-test",
                             "--checkpoint FILE [--config TRAIN.cfg] [--section.key VALUE ...]"))
    return false;
  if (o.data.root.empty() && o.data.kind != "list") detail::raise<config_error>("data.root: not set");
  if (o.device != "cpu" && o.device != "cuda")
    detail::raise<config_error>("device: expected cpu or cuda, got '", o.device, "'");
  if (o.data.batch_size <= 0) detail::raise<config_error>("data.batch-size: expected > 0, got ", o.data.batch_size);
  if (o.show < 0) detail::raise<config_error>("show: expected >= 0, got ", o.show);
  if (!o.grid.empty() && o.show == 0) detail::raise<config_error>("grid: needs --show N (the queries to draw)");
  if (o.make_pairs < 0) detail::raise<config_error>("make-pairs: expected >= 0, got ", o.make_pairs);
  if (o.make_pairs > 0 && o.pairs.empty()) detail::raise<config_error>("make-pairs: needs --pairs FILE (where to write them)");
  return true;
}

/// Parses arcnet-retrieve's options.
inline bool parse_retrieve_options(int argc, char const* const* argv, retrieve_options& o) {
  namespace po = boost::program_options;
  po::options_description run("retrieve");
  run.add_options()
      ("checkpoint", po::value(&o.checkpoint)->required(), "checkpoint written by arcnet-train")
      ("prototype", po::value(&o.prototype)->required(),
       "the gallery: a folder of images (searched recursively) or a feature file (.safetensors) saved by --save-gallery")
      ("save-gallery", po::value(&o.save_gallery)->default_value(o.save_gallery), "save the gallery's features here")
      ("query", po::value(&o.queries)->multitoken(), "query image(s); also the positional arguments")
      ("topk", po::value(&o.topk)->default_value(o.topk), "matches per query")
      ("grid", po::value(&o.grid)->default_value(o.grid), "write a PNG grid: each query, then its matches")
      ("data.test-pipeline", po::value(&o.test_pipeline)->default_value(o.test_pipeline), "transforms of every image")
      ("data.batch-size", po::value(&o.batch_size)->default_value(o.batch_size), "images per batch")
      ("data.workers", po::value(&o.workers)->default_value(o.workers), "loader threads")
      ("device", po::value(&o.device)->default_value(o.device), "cpu | cuda")
      ("threads", po::value(&o.threads)->default_value(o.threads), "kernel threads (0: all cores)");
  train_options ignored;
  po::options_description all;
  po::options_description d, m, h, opt, e, r;
  // A training config parses: its other data keys and sections are accepted and ignored.
  d.add_options()("data.kind", po::value<std::string>())("data.root", po::value<std::string>())
      ("data.train-list", po::value<std::string>())("data.query-list", po::value<std::string>())
      ("data.gallery-list", po::value<std::string>())("data.train-pipeline", po::value<std::string>())
      ("data.skip-bad", po::value<bool>())("data.train-classes", po::value<std::string>());
  detail_options::add_model(m, ignored.model);
  detail_options::add_head(h, ignored.head);
  detail_options::add_optim(opt, ignored.optim);
  detail_options::add_eval(e, ignored.eval);
  detail_options::add_ignored_run_keys(r);
  detail_options::add_dist(r, ignored.dist);
  all.add(run).add(d).add(m).add(h).add(opt).add(e).add(r);
  po::positional_options_description positional;
  positional.add("query", -1);
  if (!detail_options::parse(argc, argv, run, all, "arcnet-retrieve",
                             "--checkpoint FILE --prototype DIR|FEATURES.safetensors [--topk K] [--grid OUT.png] QUERY...",
                             &positional))
    return false;
  if (o.queries.empty() && o.save_gallery.empty())
    detail::raise<config_error>("no query image given (pass image paths, or --save-gallery to only build the gallery)");
  if (o.topk < 1) detail::raise<config_error>("topk: expected >= 1, got ", o.topk);
  if (o.batch_size <= 0) detail::raise<config_error>("data.batch-size: expected > 0, got ", o.batch_size);
  if (o.device != "cpu" && o.device != "cuda")
    detail::raise<config_error>("device: expected cpu or cuda, got '", o.device, "'");
  return true;
}

/// Everything arcnet-invert reads.
struct invert_options {
  std::string checkpoint;
  std::string target;           // an image whose embedding to reconstruct, or
  std::string embedding;        // a saved embedding (.safetensors with one tensor, or text numbers)
  std::string save_embedding;   // write the target image's embedding here (.safetensors)
  std::string size;             // WxH of the image to make; default: the target image's after the pipeline
  std::string test_pipeline = data_options{}.test_pipeline;
  std::string out = "inversion.png";
  std::string strip;            // PNG: target, then the image along the way
  int steps = 300;
  double lr = 0.05, bn_weight = 0.05, tv_weight = 0.01;
  bool grey = false;            // optimise one grey channel (for networks trained on grey images)
  std::uint64_t seed = 0;
  int threads = 0;
};

/// Parses arcnet-invert's options; a training config file is accepted (its data.test-pipeline
/// is used, its other keys ignored).
inline bool parse_invert_options(int argc, char const* const* argv, invert_options& o) {
  namespace po = boost::program_options;
  po::options_description run("invert");
  run.add_options()
      ("checkpoint", po::value(&o.checkpoint)->required(), "checkpoint written by arcnet-train")
      ("target", po::value(&o.target)->default_value(o.target), "image whose embedding to reconstruct")
      ("embedding", po::value(&o.embedding)->default_value(o.embedding),
       "or a saved embedding: .safetensors holding one tensor, or a text file of numbers")
      ("save-embedding", po::value(&o.save_embedding)->default_value(o.save_embedding),
       "write the target image's embedding here (.safetensors)")
      ("size", po::value(&o.size)->default_value(o.size), "WxH of the image (default: the target's after the pipeline)")
      ("out", po::value(&o.out)->default_value(o.out), "the reconstruction (PNG)")
      ("strip", po::value(&o.strip)->default_value(o.strip), "PNG strip: target, then the image along the way")
      ("steps", po::value(&o.steps)->default_value(o.steps), "Adam steps on the pixels")
      ("lr", po::value(&o.lr)->default_value(o.lr), "Adam's learning rate (normalised pixel units)")
      ("bn-weight", po::value(&o.bn_weight)->default_value(o.bn_weight), "batch-norm statistics prior (0: off)")
      ("tv-weight", po::value(&o.tv_weight)->default_value(o.tv_weight), "total-variation prior (0: off)")
      ("grey", po::bool_switch(&o.grey), "optimise one grey channel (a network trained on grey images)")
      ("seed", po::value(&o.seed)->default_value(o.seed), "seed of the starting noise")
      ("threads", po::value(&o.threads)->default_value(o.threads), "kernel threads (0: all cores)");
  data_options data;
  data.test_pipeline = o.test_pipeline;
  train_options ignored;
  po::options_description d, m, h, opt, e, r;
  detail_options::add_data(d, data);
  detail_options::add_model(m, ignored.model);
  detail_options::add_head(h, ignored.head);
  detail_options::add_optim(opt, ignored.optim);
  detail_options::add_eval(e, ignored.eval);
  r.add_options()("epochs", po::value<int>())("precision", po::value<std::string>())("work-dir", po::value<std::string>())
      ("load-from", po::value<std::string>())("resume", po::value<bool>())("keep-last", po::value<int>())
      ("log-interval", po::value<int>())("device", po::value<std::string>());
  detail_options::add_dist(r, ignored.dist);
  po::options_description visible, all;
  visible.add(run).add(d);
  all.add(visible).add(m).add(h).add(opt).add(e).add(r);
  if (!detail_options::parse(argc, argv, visible, all, "arcnet-invert",
                             "--checkpoint FILE (--target IMAGE | --embedding FILE --size WxH) [--out PNG] [--strip PNG]"))
    return false;
  o.test_pipeline = data.test_pipeline;
  if (o.target.empty() == o.embedding.empty())
    detail::raise<config_error>("give either --target IMAGE or --embedding FILE (got ",
                                o.target.empty() ? "neither" : "both", ")");
  if (!o.embedding.empty() && o.size.empty())
    detail::raise<config_error>("size: --embedding needs --size WxH (the image to make)");
  if (!o.save_embedding.empty() && o.target.empty())
    detail::raise<config_error>("save-embedding: needs --target IMAGE (the embedding to save)");
  if (o.steps < 1) detail::raise<config_error>("steps: expected >= 1, got ", o.steps);
  if (!(o.lr > 0) || !std::isfinite(o.lr)) detail::raise<config_error>("lr: expected a positive number, got ", o.lr);
  if (!(o.bn_weight >= 0) || !std::isfinite(o.bn_weight))
    detail::raise<config_error>("bn-weight: expected >= 0, got ", o.bn_weight);
  if (!(o.tv_weight >= 0) || !std::isfinite(o.tv_weight))
    detail::raise<config_error>("tv-weight: expected >= 0, got ", o.tv_weight);
  if (o.out.empty()) detail::raise<config_error>("out: not set");
  return true;
}

/// Parses "WxH" (e.g. "92x112") into {width, height}; config_error naming `key` otherwise.
inline std::pair<int, int> parse_size(std::string const& text, std::string const& key) {
  auto x = text.find('x');
  try {
    std::size_t a = 0, b = 0;
    if (x == std::string::npos) throw std::invalid_argument(text);
    int w = std::stoi(text.substr(0, x), &a), h = std::stoi(text.substr(x + 1), &b);
    if (a != x || b != text.size() - x - 1 || w < 1 || h < 1 || w > 65536 || h > 65536) throw std::invalid_argument(text);
    return {w, h};
  } catch (std::exception const&) {
    detail::raise<config_error>(key, ": expected WxH like 92x112, got '", text, "'");
  }
}

}  // namespace arcnet::engine
