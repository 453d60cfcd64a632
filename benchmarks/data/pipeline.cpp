// The training input pipeline of resnet50-arcface_inshop on the CPU: decode a 600x800 JPEG from
// memory, resize to 512x512 (bilinear, antialiased), random crop 448, random flip, normalise to
// float (H, W, 3). Reports the time of each stage, then images/s on 1 thread and on N threads
// (std::thread, one pipeline per thread, no sharing), both per wall-clock second and per CPU
// second (the threads' own CPU time: what a core delivers when the machine is not shared, and
// steady when it is). benchmarks/data/compare.sh runs it beside the same pipeline in Pillow +
// numpy (pipeline_pillow.py).
//
//   build-*/benchmarks/arcnet_bench_pipeline [--jpeg FILE] [--seconds S] [--threads N]
// Without --jpeg a photo-like 600x800 (width x height) JPEG, quality 90, is made in memory.
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <time.h>

#include <arcnet/core/random.hpp>
#include <arcnet/data/decode.hpp>
#include <arcnet/data/encode.hpp>
#include <arcnet/data/transforms.hpp>

namespace {

using clock_type = std::chrono::steady_clock;
double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}
/// CPU time of the calling thread, in seconds.
double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

struct rates {
  double per_second, per_cpu_second;
};

/// Gradients, soft discs and noise: compresses like a photograph (not like a flat test card).
arcnet::data::image photo(int w, int h, std::uint64_t seed) {
  arcnet::generator g(seed);
  auto img = arcnet::data::make_image(w, h, 3);
  double disc[4][6];
  for (auto& d : disc) {
    d[0] = g.uniform(0, w), d[1] = g.uniform(0, h), d[2] = g.uniform(0.05, 0.3) * std::min(w, h);
    for (int c = 0; c < 3; ++c) d[3 + c] = g.uniform(-60, 60);
  }
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      double v[3] = {40 + 170.0 * x / w, 30 + 190.0 * y / h, 60 + 150.0 * (x + y) / (w + h)};
      for (auto& d : disc) {
        double const r = std::sqrt((x - d[0]) * (x - d[0]) + (y - d[1]) * (y - d[1]));
        double const k = std::max(0.0, 1 - r / d[2]);
        for (int c = 0; c < 3; ++c) v[c] += d[3 + c] * k;
      }
      for (int c = 0; c < 3; ++c)
        img.at(y, x, c) = static_cast<std::uint8_t>(std::clamp(std::lround(v[c] + g.normal(0, 6)), 0L, 255L));
    }
  return img;
}

/// Images per wall-clock second and per CPU second of `threads` threads each running decode +
/// pipeline for about `seconds`.
rates measure(std::vector<std::uint8_t> const& jpeg, arcnet::data::pipeline const& p, int threads, double seconds) {
  std::atomic<bool> start{false}, stop{false};
  std::vector<long> counts(static_cast<std::size_t>(threads), 0);
  std::vector<double> cpu(static_cast<std::size_t>(threads), 0);
  std::vector<std::thread> pool;
  std::atomic<int> ready{0};
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      std::vector<std::uint8_t> const bytes = jpeg;  // each thread its own copy
      float sink = 0;
      ++ready;
      while (!start.load(std::memory_order_acquire)) std::this_thread::yield();
      double const cpu0 = thread_cpu_seconds();
      long n = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        auto const img = arcnet::data::decode_image(bytes.data(), bytes.size(), "bench.jpg");
        auto const x = p(img, arcnet::data::sample_seed(0, 0, static_cast<std::uint64_t>(n * threads + t)));
        sink += x[0];
        ++n;
      }
      cpu[static_cast<std::size_t>(t)] = thread_cpu_seconds() - cpu0;
      counts[static_cast<std::size_t>(t)] = n + (sink == 12345.f);  // keep the work observable
    });
  while (ready.load() < threads) std::this_thread::yield();
  auto const t0 = clock_type::now();
  start.store(true, std::memory_order_release);
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop.store(true);
  for (auto& th : pool) th.join();
  double const elapsed = seconds_since(t0);
  long total = 0;
  double cpu_total = 0;
  for (int t = 0; t < threads; ++t) {
    total += counts[static_cast<std::size_t>(t)];
    cpu_total += cpu[static_cast<std::size_t>(t)];
  }
  return {static_cast<double>(total) / elapsed, static_cast<double>(total) / cpu_total};
}

/// CPU milliseconds per call of f on this thread.
template <class F>
double ms_per_call(F&& f, int min_iters = 20, double min_seconds = 0.5) {
  f();  // warm up
  double const t0 = thread_cpu_seconds();
  int n = 0;
  do {
    f();
    ++n;
  } while (n < min_iters || thread_cpu_seconds() - t0 < min_seconds);
  return (thread_cpu_seconds() - t0) * 1e3 / n;
}

}  // namespace

int main(int argc, char** argv) {
  std::string jpeg_path;
  double seconds = 3;
  int threads = static_cast<int>(std::thread::hardware_concurrency());
  for (int i = 1; i < argc; ++i) {
    std::string const a = argv[i];
    if (a == "--jpeg" && i + 1 < argc) jpeg_path = argv[++i];
    else if (a == "--seconds" && i + 1 < argc) seconds = std::atof(argv[++i]);
    else if (a == "--threads" && i + 1 < argc) threads = std::atoi(argv[++i]);
    else {
      std::fprintf(stderr, "usage: %s [--jpeg FILE] [--seconds S] [--threads N]\n", argv[0]);
      return 2;
    }
  }
  if (threads < 1) threads = 1;
  try {
    std::vector<std::uint8_t> jpeg;
    if (jpeg_path.empty()) jpeg = arcnet::data::encode_jpeg(photo(600, 800, 1), 90);
    else jpeg = arcnet::detail::data_read_file_bytes(jpeg_path, "arcnet_bench_pipeline");
    auto const p = arcnet::data::pipeline::parse("resize=512x512,random_crop=448,flip=0.5,normalize=imagenet");

    // Check before timing: the decoded size, the output shape and values in the normalised range.
    auto const img = arcnet::data::decode_image(jpeg.data(), jpeg.size(), jpeg_path.empty() ? "synthetic" : jpeg_path);
    auto const x = p(img, 1);
    if (x.shape() != arcnet::shape{448, 448, 3}) {
      std::fprintf(stderr, "unexpected output shape\n");
      return 1;
    }
    for (arcnet::index_t i = 0; i < x.numel(); ++i)
      if (!(x[i] >= -2.2f && x[i] <= 2.7f)) {
        std::fprintf(stderr, "output value %g out of the normalised range\n", double(x[i]));
        return 1;
      }
    std::printf("input: %dx%d JPEG, %zu bytes; pipeline %s; output (448, 448, 3) float\n", img.width, img.height,
                jpeg.size(), p.spec().c_str());

    arcnet::generator g(3);
    auto const resized = arcnet::data::resample(img, 512, 512);
    auto const cropped = arcnet::data::random_crop(448)(resized, g);
    double const t_decode = ms_per_call([&] { (void)arcnet::data::decode_image(jpeg.data(), jpeg.size(), "b"); });
    double const t_resize = ms_per_call([&] { (void)arcnet::data::resample(img, 512, 512); });
    double const t_crop = ms_per_call([&] {
      (void)arcnet::data::random_horizontal_flip(1.0)(arcnet::data::random_crop(448)(resized, g), g);
    });
    double const t_norm =
        ms_per_call([&] { (void)arcnet::data::to_tensor(cropped, arcnet::data::normalization::imagenet()); });
    std::printf("stages (1 thread, CPU ms): decode %.3f  resize %.3f  crop+flip %.3f  normalise %.3f  sum %.3f\n",
                t_decode, t_resize, t_crop, t_norm, t_decode + t_resize + t_crop + t_norm);

    auto const one = measure(jpeg, p, 1, seconds);
    std::printf("arcnet_pipeline threads=1 img_s=%.1f img_per_cpu_s=%.1f\n", one.per_second, one.per_cpu_second);
    if (threads > 1) {
      auto const all = measure(jpeg, p, threads, seconds);
      std::printf("arcnet_pipeline threads=%d img_s=%.1f img_per_cpu_s=%.1f\n", threads, all.per_second,
                  all.per_cpu_second);
    }
  } catch (std::exception const& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
