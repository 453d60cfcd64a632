#pragma once
// loader: worker threads decode and transform samples ahead of the consumer, collate them into
// contiguous NHWC batches and hand them over in order through a bounded window of `prefetch`
// batches. Each sample's random transforms are seeded by sample_seed(seed, epoch, index), so a
// batch's contents do not depend on the number of workers or on timing.
//
//   data::loader ld(data::in_shop(root, "train"), data::pipeline::parse("resize=512x512,random_crop=448,"
//                   "flip=0.5,normalize=imagenet"), {/*batch_size*/ 32, /*workers*/ 8});
//   for (std::uint64_t e = 0; e < epochs; ++e) {
//     ld.begin_epoch(e);
//     for (data::batch b; ld.next(b);) train_step(b.images, b.labels);  // (N, H, W, 3), N labels
//   }
//
// For a GPU, pin_memory = true collates the batches into page-locked host memory (CUDA build
// only), and to_device_async<cuda>(b.images) (core/pinned.hpp) then copies a batch without
// waiting: PyTorch's pin_memory=True with .to(device, non_blocking=True). Every batch gets its own
// buffer (the loader never writes into a batch it has handed out), drawn from the pinned cache,
// which hands a freed buffer out again only after the copies from it have completed; so the
// workers may fill the next batches while a copy of the previous one is still queued.
#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "arcnet/core/error.hpp"
#include "arcnet/core/pinned.hpp"
#include "arcnet/core/tensor.hpp"
#include "arcnet/data/decode.hpp"
#include "arcnet/data/detail/loader_state.hpp"
#include "arcnet/data/image.hpp"
#include "arcnet/data/sampler.hpp"
#include "arcnet/data/transforms.hpp"

namespace arcnet::data {

/// Loader settings. The loader never holds more than `prefetch` batches (ready or being built).
struct loader_options {
  index_t batch_size = 32;
  int workers = 4;               // worker threads; 0 loads in the consumer's thread, inside next()
  int prefetch = 4;              // queue depth, in batches (>= 1)
  bool drop_last = false;        // drop the last, incomplete batch
  bool shuffle = false;          // a new permutation each epoch (shuffle_sampler)
  std::uint64_t seed = 0;        // of the shuffle and of every sample's random transforms
  bool skip_bad = false;         // skip samples that fail to load instead of raising
  int max_bad_reported = 10;     // bad_samples() keeps the first this many
  bool scaled_decode = false;    // decode large JPEGs at 1/2, 1/4 or 1/8 scale, down to the
                                 // pipeline's decode_hint() (faster; pixels differ slightly)
  index_t classes_per_batch = 0; // P > 0 with K > 0: class-balanced batches of P*K (batch_size ignored)
  index_t images_per_class = 0;  // K
  int rank = 0;                  // with world_size > 1, this rank's shard (distributed_sampler)
  int world_size = 1;
  bool pin_memory = false;       // batches in page-locked memory, for to_device_async<cuda>; needs
                                 // the CUDA build (a translation unit compiled by nvcc)
};

/// What a load function returns: one sample's tensor (usually (H, W, C) float) and its label.
struct loaded_sample {
  tensor<float, cpu> image;
  std::int64_t label = 0;
};

/// A collated batch: images (N, sample dims...), e.g. NHWC, with N labels and dataset indices.
/// With pin_memory the images are in pinned memory (images.is_pinned()).
struct batch {
  tensor<float, cpu> images;
  std::vector<std::int64_t> labels;
  std::vector<index_t> indices;
  index_t number = 0;  // position of the batch in its epoch
  index_t size() const { return static_cast<index_t>(labels.size()); }
};

}  // namespace arcnet::data

namespace arcnet::detail {
template <class D, class = void>
struct loader_is_file_dataset : std::false_type {};
template <class D>
struct loader_is_file_dataset<D, std::void_t<decltype(std::declval<D const&>().sample(index_t{}).path),
                                             decltype(std::declval<D const&>().labels())>> : std::true_type {};
template <class D, class = void>
struct loader_is_memory_dataset : std::false_type {};
template <class D>
struct loader_is_memory_dataset<
    D, std::void_t<std::enable_if_t<std::is_same_v<decltype(std::declval<D const&>().image(index_t{})), data::image>>,
                   decltype(std::declval<D const&>().label(index_t{})), decltype(std::declval<D const&>().labels())>>
    : std::true_type {};
}  // namespace arcnet::detail

namespace arcnet::data {

/// The threaded loader. Built from a dataset (file datasets: in_shop, image_folder, list_file,
/// whose images are read with read_image; in-memory ones: idx_dataset) and a pipeline, or from a
/// size and a load function `loaded_sample(index_t index, std::uint64_t seed)` (or `(index_t)`).
/// One consumer thread calls begin_epoch(e) then next(b) until it returns false. A sample that
/// fails raises, from next(), an arcnet::error naming the sample and its file (the loader
/// continues with the following batch if called again); with skip_bad it is left out of its
/// batch (which gets smaller), counted and listed in bad_samples(). Destroying or restarting a
/// loader mid-epoch stops and joins its threads.
class loader {
 public:
  using load_function = std::function<loaded_sample(index_t index, std::uint64_t seed)>;

  /// A loader over a file dataset (read_image + transform) or an in-memory one (image(i) + transform).
  template <class Dataset, std::enable_if_t<detail::loader_is_file_dataset<Dataset>::value ||
                                                detail::loader_is_memory_dataset<Dataset>::value,
                                            int> = 0>
  loader(Dataset dataset, pipeline transform, loader_options options = {}) : options_(options) {
    auto ds = std::make_shared<Dataset const>(std::move(dataset));
    auto tf = std::make_shared<pipeline const>(std::move(transform));
    size_ = ds->size();
    labels_ = ds->labels();
    norm_ = tf->normalize();
    // The transformed bytes go to the worker, which normalises them straight into the batch.
    if constexpr (detail::loader_is_file_dataset<Dataset>::value) {
      auto const hint = options.scaled_decode ? tf->decode_hint() : size_hint{};
      produce_ = [ds, tf, hint](index_t i, std::uint64_t seed) {
        auto const& s = ds->sample(i);
        auto img = hint.width > 0 && hint.height > 0 ? read_image(s.path, hint.width, hint.height) : read_image(s.path);
        return detail::loader_produced{{}, tf->transform(img, seed), s.label};
      };
      path_ = [ds](index_t i) { return std::string(ds->sample(i).path); };
    } else {
      produce_ = [ds, tf](index_t i, std::uint64_t seed) {
        return detail::loader_produced{{}, tf->transform(ds->image(i), seed), ds->label(i)};
      };
    }
    validate();
  }

  /// A loader over `size` samples produced by load(index, seed) or load(index), which the workers
  /// call concurrently (it must be thread-safe); `labels` (one per sample) are needed only for
  /// class-balanced sampling.
  template <class Load, std::enable_if_t<std::is_invocable_r_v<loaded_sample, Load&, index_t, std::uint64_t> ||
                                             std::is_invocable_r_v<loaded_sample, Load&, index_t>,
                                         int> = 0>
  loader(index_t size, Load load, loader_options options = {}, std::vector<std::int64_t> labels = {})
      : options_(options), size_(size), labels_(std::move(labels)) {
    produce_ = [f = std::move(load)](index_t i, std::uint64_t seed) mutable {
      loaded_sample s;
      if constexpr (std::is_invocable_r_v<loaded_sample, Load&, index_t, std::uint64_t>) s = f(i, seed);
      else s = f(i);
      return detail::loader_produced{std::move(s.image), {}, s.label};
    };
    validate();
  }

  ~loader() { stop_workers(); }
  loader(loader const&) = delete;
  loader& operator=(loader const&) = delete;

  /// Replaces the sampler (the default follows the options: sequential, shuffled, class-balanced,
  /// sharded); takes effect at the next begin_epoch.
  void set_sampler(std::shared_ptr<sampler const> s) {
    ARCNET_CHECK_AS(config_error, s != nullptr, "loader::set_sampler: the sampler is null");
    sampler_ = std::move(s);
  }

  /// Starts epoch e: stops any running epoch, computes its order and starts the workers.
  void begin_epoch(std::uint64_t epoch) {
    stop_workers();
    if (!sampler_) sampler_ = default_sampler();
    std::vector<index_t> order = sampler_->order(epoch);
    for (index_t i : order)
      ARCNET_CHECK_AS(config_error, i >= 0 && i < size_, "loader: the sampler gave index ", i,
                      " for a dataset of ", size_, " samples");
    // Seed of each position: sample_seed(seed, epoch, index); a repeat of an index in the same
    // epoch (class-balanced sampling with replacement) gets index + k * size, k = 1, 2, ...
    std::vector<std::uint32_t> seen(static_cast<std::size_t>(size_), 0);
    std::vector<std::uint64_t> seeds(order.size());
    for (std::size_t p = 0; p < order.size(); ++p) {
      auto k = seen[static_cast<std::size_t>(order[p])]++;
      seeds[p] = sample_seed(options_.seed, epoch,
                             static_cast<std::uint64_t>(order[p]) + k * static_cast<std::uint64_t>(size_));
    }
    index_t const n = static_cast<index_t>(order.size());
    index_t const full = n / bs_;
    // Workers allocate pinned batches on the consumer's device (a thread starts on device 0).
    int const pin_device = options_.pin_memory ? detail::pinned_hooks().current_device() : 0;
    {
      std::lock_guard<std::mutex> lk(m_);
      order_ = std::move(order);
      seeds_ = std::move(seeds);
      epoch_ = epoch;
      total_ = options_.drop_last ? full * bs_ : n;
      num_batches_ = (total_ + bs_ - 1) / bs_;
      next_pos_ = 0;
      deliver_ = 0;
      bad_count_ = 0;
      bad_.clear();
      slots_.assign(static_cast<std::size_t>(options_.prefetch), detail::loader_slot{});
      for (index_t b = 0; b < std::min<index_t>(num_batches_, options_.prefetch); ++b) init_slot(b);
      pin_device_ = pin_device;
      cancel_ = false;
      started_ = true;
    }
    index_t threads = std::min<index_t>(options_.workers, total_);
    try {
      for (index_t t = 0; t < threads; ++t) workers_.emplace_back([this] { worker_loop(); });
    } catch (...) {
      stop_workers();
      throw;
    }
  }

  /// The next batch of the epoch, in order; false at the end of the epoch. Rethrows (as an
  /// arcnet::error naming the sample and file) the first error of the batch unless skip_bad.
  bool next(batch& out) {
    std::unique_lock<std::mutex> lk(m_);
    ARCNET_CHECK(started_, "loader::next: call begin_epoch(epoch) first");
    for (;;) {
      if (deliver_ >= num_batches_) {
        lk.unlock();
        stop_workers();  // they have finished: nothing left to claim
        return false;
      }
      index_t const b = deliver_;
      auto& slot = slots_[static_cast<std::size_t>(b % options_.prefetch)];
      if (options_.workers == 0) {  // load this batch here
        while (next_pos_ < std::min(total_, (b + 1) * bs_)) work_on(lk, next_pos_++);
      }
      ready_.wait(lk, [&] { return slot.remaining == 0; });

      tensor<float, cpu> images = std::move(slot.images);
      std::vector<std::int64_t> labels = std::move(slot.labels);
      std::vector<char> ok = std::move(slot.ok);
      std::exception_ptr err = slot.error;
      auto bad = std::move(slot.bad);
      ++deliver_;
      if (b + options_.prefetch < num_batches_) init_slot(b + options_.prefetch);
      else slot = detail::loader_slot{};
      std::sort(bad.begin(), bad.end(), [](auto const& x, auto const& y) { return x.first < y.first; });
      for (auto& item : bad) {
        ++bad_count_;
        if (static_cast<int>(bad_.size()) < options_.max_bad_reported) bad_.push_back(std::move(item.second));
      }
      work_.notify_all();  // the window moved on
      index_t const first = b * bs_;
      lk.unlock();

      if (err) std::rethrow_exception(err);
      index_t rows = 0;
      for (char c : ok) rows += c ? 1 : 0;
      if (rows == 0) {  // every sample of the batch was bad
        lk.lock();
        continue;
      }
      out.number = b;
      out.labels.clear();
      out.indices.clear();
      if (rows == static_cast<index_t>(ok.size())) {
        out.images = std::move(images);
        out.labels = std::move(labels);
        for (index_t r = 0; r < rows; ++r) out.indices.push_back(order_[static_cast<std::size_t>(first + r)]);
      } else {  // compact the rows that loaded
        auto dims = images.shape().dims();
        index_t const per = images.numel() / dims[0];
        dims[0] = rows;
        out.images = new_images(shape(dims));
        index_t w = 0;
        for (index_t r = 0; r < static_cast<index_t>(ok.size()); ++r) {
          if (!ok[static_cast<std::size_t>(r)]) continue;
          std::memcpy(out.images.data() + w * per, images.data() + r * per, sizeof(float) * static_cast<std::size_t>(per));
          out.labels.push_back(labels[static_cast<std::size_t>(r)]);
          out.indices.push_back(order_[static_cast<std::size_t>(first + r)]);
          ++w;
        }
      }
      return true;
    }
  }

  /// Number of samples of the dataset.
  index_t size() const { return size_; }
  /// Number of batches of the current epoch (after begin_epoch).
  index_t num_batches() const {
    std::lock_guard<std::mutex> lk(m_);
    return num_batches_;
  }
  /// Samples skipped in the current epoch so far (skip_bad).
  index_t bad_count() const {
    std::lock_guard<std::mutex> lk(m_);
    return bad_count_;
  }
  /// The first max_bad_reported skipped samples of the current epoch, in epoch order.
  std::vector<bad_sample> bad_samples() const {
    std::lock_guard<std::mutex> lk(m_);
    return bad_;
  }
  /// One line for a log: "loader: epoch 3: skipped 2 bad samples: 'a.png' (why), ..." ("" when none).
  std::string bad_summary() const {
    std::lock_guard<std::mutex> lk(m_);
    if (bad_count_ == 0) return "";
    std::string s = detail::concat("loader: epoch ", epoch_, ": skipped ", bad_count_, " bad sample",
                                   bad_count_ == 1 ? "" : "s", ":");
    for (std::size_t i = 0; i < bad_.size(); ++i) {
      s += i ? ", " : " ";
      s += bad_[i].path.empty() ? detail::concat("sample ", bad_[i].index) : "'" + bad_[i].path + "'";
      s += " (" + bad_[i].message + ")";
    }
    if (bad_count_ > static_cast<index_t>(bad_.size())) s += ", ...";
    return s;
  }
  loader_options const& options() const { return options_; }

 private:
  void validate() {
    ARCNET_CHECK_AS(config_error, size_ >= 0, "loader: dataset size must be >= 0, got ", size_);
    ARCNET_CHECK_AS(config_error, options_.workers >= 0, "loader: workers must be >= 0, got ", options_.workers);
    ARCNET_CHECK_AS(config_error, options_.prefetch >= 1, "loader: prefetch must be >= 1, got ", options_.prefetch);
    ARCNET_CHECK_AS(config_error, options_.world_size >= 1 && options_.rank >= 0 && options_.rank < options_.world_size,
                    "loader: rank ", options_.rank, " is out of range for world size ", options_.world_size);
    ARCNET_CHECK_AS(config_error, !options_.pin_memory || detail::pinned_memory_available(), "loader: pin_memory: ",
                    detail::pinned_memory_needs_cuda);
    bool balanced = options_.classes_per_batch > 0 || options_.images_per_class > 0;
    if (balanced) {
      ARCNET_CHECK_AS(config_error, options_.classes_per_batch > 0 && options_.images_per_class > 0,
                      "loader: class-balanced batches need both classes_per_batch (P) and images_per_class (K), got P=",
                      options_.classes_per_batch, ", K=", options_.images_per_class);
      ARCNET_CHECK_AS(config_error, static_cast<index_t>(labels_.size()) == size_,
                      "loader: class-balanced batches need one label per sample, got ", labels_.size(), " labels for ",
                      size_, " samples");
      bs_ = options_.classes_per_batch * options_.images_per_class;
    } else {
      ARCNET_CHECK_AS(config_error, options_.batch_size >= 1, "loader: batch_size must be >= 1, got ",
                      options_.batch_size);
      bs_ = options_.batch_size;
    }
  }

  std::shared_ptr<sampler const> default_sampler() const {
    std::shared_ptr<sampler const> s;
    index_t chunk = 1;
    if (options_.classes_per_batch > 0) {
      s = std::make_shared<class_balanced_sampler>(labels_, options_.classes_per_batch, options_.images_per_class,
                                                   options_.seed);
      chunk = bs_;  // shard whole P x K batches
    } else if (options_.shuffle) {
      s = std::make_shared<shuffle_sampler>(size_, options_.seed);
    } else {
      s = std::make_shared<sequential_sampler>(size_);
    }
    if (options_.world_size > 1)
      s = std::make_shared<distributed_sampler>(std::move(s), options_.rank, options_.world_size, chunk);
    return s;
  }

  // Under m_: resets the slot of batch b for its rows.
  void init_slot(index_t b) {
    auto& slot = slots_[static_cast<std::size_t>(b % options_.prefetch)];
    index_t rows = std::min(total_, (b + 1) * bs_) - b * bs_;
    slot = detail::loader_slot{};
    slot.batch = b;
    slot.remaining = rows;
    slot.labels.assign(static_cast<std::size_t>(rows), 0);
    slot.ok.assign(static_cast<std::size_t>(rows), 0);
  }

  // A batch's image tensor: pinned with pin_memory, else from the host block cache.
  tensor<float, cpu> new_images(shape s) const {
    if (options_.pin_memory) return tensor<float, cpu>::uninitialized_pinned(std::move(s));
    auto t = tensor<float, cpu>::uninitialized(std::move(s));
    detail::loader_advise_huge_pages(t.data(), sizeof(float) * static_cast<std::size_t>(t.numel()));
    return t;
  }

  void worker_loop() {
    std::unique_lock<std::mutex> lk(m_);
    if (options_.pin_memory) detail::pinned_hooks().bind_thread(pin_device_);
    for (;;) {
      work_.wait(lk, [&] { return cancel_ || next_pos_ >= total_ || next_pos_ / bs_ < deliver_ + options_.prefetch; });
      if (cancel_ || next_pos_ >= total_) return;
      work_on(lk, next_pos_++);
    }
  }

  // Loads position p (claimed under m_, held by lk); loading, transforming and writing into the
  // batch run unlocked. Never throws: every failure becomes the row's error, so the batch always
  // completes.
  void work_on(std::unique_lock<std::mutex>& lk, index_t p) {
    index_t const b = p / bs_, row = p - b * bs_;
    index_t const index = order_[static_cast<std::size_t>(p)];
    std::uint64_t const seed = seeds_[static_cast<std::size_t>(p)];
    lk.unlock();
    detail::loader_produced s;
    std::vector<index_t> dims;  // of the sample
    std::exception_ptr err;
    try {
      s = produce_(index, seed);
      if (s.values.defined()) {
        dims = s.values.shape().dims();
      } else {
        detail::data_check_image(s.pixels, "loader");
        if (s.pixels.channels == 4)
          detail::raise<shape_error>("the pipeline gave an RGBA image; the loader collates 1 or 3 channels");
        dims = {s.pixels.height, s.pixels.width, s.pixels.channels};
      }
    } catch (...) {
      err = std::current_exception();
    }
    lk.lock();
    auto& slot = slots_[static_cast<std::size_t>(b % options_.prefetch)];
    float* dst = nullptr;
    if (!err) {
      try {
        if (!slot.images.defined()) {
          std::vector<index_t> batch_dims{static_cast<index_t>(slot.ok.size())};
          batch_dims.insert(batch_dims.end(), dims.begin(), dims.end());
          slot.images = new_images(shape(batch_dims));
        } else if (!std::equal(dims.begin(), dims.end(), slot.images.shape().begin() + 1, slot.images.shape().end()) ||
                   static_cast<std::size_t>(slot.images.rank()) != dims.size() + 1) {
          auto batch_dims = slot.images.shape().dims();
          batch_dims.erase(batch_dims.begin());
          detail::raise<shape_error>("sample shape ", shape(dims), " differs from the batch's ", shape(batch_dims),
                                     "; transform every sample to one size (resize / crop)");
        }
        dst = slot.images.data() + row * (slot.images.numel() / slot.images.size(0));
      } catch (...) {
        err = std::current_exception();
      }
    }
    if (dst) {
      lk.unlock();  // the slot stays put: the consumer waits for remaining == 0
      try {
        if (s.values.defined())
          std::memcpy(dst, s.values.data(), sizeof(float) * static_cast<std::size_t>(s.values.numel()));
        else
          normalize_into(s.pixels, norm_, dst);
      } catch (...) {
        err = std::current_exception();
      }
      std::int64_t const label = s.label;
      s = detail::loader_produced{};  // free the sample outside the lock
      lk.lock();
      if (!err) {
        slot.ok[static_cast<std::size_t>(row)] = 1;
        slot.labels[static_cast<std::size_t>(row)] = label;
      }
    }
    if (err) {
      std::string path, message;
      if (path_) {
        try {
          path = path_(index);
        } catch (...) {
        }
      }
      auto wrapped = detail::loader_wrap_error(err, index, path, message);
      if (options_.skip_bad) {
        slot.bad.push_back({row, bad_sample{index, path, message}});
      } else if (!slot.error || row < slot.error_row) {  // the first row's error, whatever the timing
        slot.error = wrapped;
        slot.error_row = row;
      }
    }
    if (--slot.remaining == 0) ready_.notify_all();
  }

  void stop_workers() {
    {
      std::lock_guard<std::mutex> lk(m_);
      cancel_ = true;
    }
    work_.notify_all();
    for (auto& t : workers_)
      if (t.joinable()) t.join();
    workers_.clear();
  }

  loader_options options_;
  index_t size_ = 0;
  index_t bs_ = 1;
  std::vector<std::int64_t> labels_;
  std::function<detail::loader_produced(index_t, std::uint64_t)> produce_;
  normalization norm_;                        // of the pipeline's bytes (dataset loaders)
  std::function<std::string(index_t)> path_;  // file of a sample, for messages (file datasets)
  std::shared_ptr<sampler const> sampler_;

  mutable std::mutex m_;
  std::condition_variable work_;   // workers: a position became claimable, or cancel
  std::condition_variable ready_;  // consumer: a batch completed
  std::vector<std::thread> workers_;
  bool cancel_ = false, started_ = false;
  int pin_device_ = 0;  // CUDA device of the pinned batches (the consumer's at begin_epoch)
  std::uint64_t epoch_ = 0;
  std::vector<index_t> order_;
  std::vector<std::uint64_t> seeds_;
  index_t total_ = 0, num_batches_ = 0, next_pos_ = 0, deliver_ = 0;
  std::vector<detail::loader_slot> slots_;  // batch b lives in slots_[b % prefetch]
  index_t bad_count_ = 0;
  std::vector<bad_sample> bad_;
};

}  // namespace arcnet::data
