// Peak memory of data::loader (issue 7, resource bounds): the loader must hold at most
// `prefetch` batches whatever the size of the dataset. A synthetic dataset of 200,000 samples of
// 64x64x3 floats (48 KiB each: 9.2 GiB if it were buffered) is produced on the fly by 4 workers
// and read by a slow consumer (a 0.5 s pause, in which the workers fill the window, then 5 ms
// per batch, far slower than the workers); the peak resident
// set (VmHWM) minus the resident set before the loader started must stay below
//   (prefetch + 1) batches (the window, and the batch the consumer holds)
//   + 2 samples per worker (the one it made, the one it copies) + 24 B per sample of the epoch's
//   order and seeds + 16 MiB (thread stacks, allocator slack).
// Each measurement runs in its own process (this program, re-run with arguments), so that one
// peak does not mask the next. Without arguments it measures prefetch 2 and prefetch 48 and
// checks both bounds, and that the larger window really shows in the peak (at least half of
// the 46 extra batches): a measurement that could not see buffered batches would prove nothing.
//   arcnet_loader_memory                      the check (exit 0: pass)
//   arcnet_loader_memory PREFETCH [SAMPLES] [BATCHES]   one measurement, one line of key=value
// Exit code 77 (skipped) in a sanitizer build.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>

#include <arcnet/data/loader.hpp>

namespace {

constexpr int side = 64, workers = 4, batch_size = 32;
constexpr long sample_bytes = side * side * 3 * 4;
constexpr long batch_bytes = sample_bytes * batch_size;

/// A field of /proc/self/status in KiB (VmRSS, VmHWM), or -1.
long status_kib(std::string const& key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.compare(0, key.size() + 1, key + ":") == 0) return std::strtol(line.c_str() + key.size() + 1, nullptr, 10);
  return -1;
}

long bound_kib(int prefetch, long samples) {
  return ((prefetch + 1) * batch_bytes + 2 * workers * sample_bytes + 24 * samples) / 1024 + 16 * 1024;
}

int measure(int prefetch, long samples, int batches) {
  long const before = status_kib("VmRSS");
  arcnet::data::loader_options o;
  o.batch_size = batch_size;
  o.workers = workers;
  o.prefetch = prefetch;
  o.shuffle = true;
  arcnet::data::loader ld(samples, [](arcnet::index_t i, std::uint64_t seed) {
    arcnet::data::loaded_sample s;
    s.image = arcnet::tensor<float, arcnet::cpu>::full(arcnet::shape{side, side, 3}, static_cast<float>(seed % 255));
    s.label = i % 1000;
    return s;
  }, o);
  ld.begin_epoch(0);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // the workers fill the whole window
  arcnet::data::batch b;
  double checksum = 0;
  for (int n = 0; n < batches && ld.next(b); ++n) {
    checksum += b.images.data()[0];  // touch it, then be slow
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  long const peak = status_kib("VmHWM");
  std::printf("prefetch=%d samples=%ld batches=%d batch_kib=%ld before_kib=%ld peak_kib=%ld growth_kib=%ld "
              "bound_kib=%ld checksum=%g\n",
              prefetch, samples, batches, batch_bytes / 1024, before, peak, peak - before, bound_kib(prefetch, samples),
              checksum);
  return 0;
}

/// Runs this program for one measurement and returns its growth in KiB (-1 on failure).
long run_child(int prefetch, long samples, int batches) {
  char exe[4096];
  ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return -1;
  exe[n] = 0;
  std::string cmd = std::string("'") + exe + "' " + std::to_string(prefetch) + " " + std::to_string(samples) + " " +
                    std::to_string(batches);
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return -1;
  char line[1024] = {};
  std::string out;
  while (std::fgets(line, sizeof line, p)) out += line;
  if (::pclose(p) != 0) return -1;
  std::printf("%s", out.c_str());
  auto at = out.find("growth_kib=");
  return at == std::string::npos ? -1 : std::strtol(out.c_str() + at + 11, nullptr, 10);
}

}  // namespace

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define ARCNET_LOADER_MEMORY_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define ARCNET_LOADER_MEMORY_SANITIZED 1
#endif
#endif

int main(int argc, char** argv) {
#if defined(ARCNET_LOADER_MEMORY_SANITIZED)
  (void)argc, (void)argv;
  std::printf("SKIP: a sanitizer's shadow memory and quarantine make resident-set figures meaningless\n");
  return 77;
#endif
  try {
    if (argc > 1)
      return measure(std::atoi(argv[1]), argc > 2 ? std::atol(argv[2]) : 200000, argc > 3 ? std::atoi(argv[3]) : 120);
    long const samples = 200000;
    long const small = run_child(2, samples, 120), large = run_child(48, samples, 120);
    if (small < 0 || large < 0) {
      std::printf("FAIL: a measurement did not run\n");
      return 1;
    }
    bool ok = true;
    if (small > bound_kib(2, samples)) ok = false, std::printf("FAIL: prefetch 2 grew %ld KiB > %ld\n", small, bound_kib(2, samples));
    if (large > bound_kib(48, samples)) ok = false, std::printf("FAIL: prefetch 48 grew %ld KiB > %ld\n", large, bound_kib(48, samples));
    long const extra = 46 * batch_bytes / 1024 / 2;
    if (large - small < extra)
      ok = false, std::printf("FAIL: prefetch 48 grew only %ld KiB more than prefetch 2 (expected >= %ld): the measurement "
                              "does not see the buffered batches\n", large - small, extra);
    std::printf("%s: %ld samples of %ld KiB (%.1f GiB in all); peak growth %ld KiB with prefetch 2, %ld KiB with "
                "prefetch 48 (batches of %ld KiB)\n",
                ok ? "PASS" : "FAIL", samples, sample_bytes / 1024, samples * double(sample_bytes) / (1 << 30), small,
                large, batch_bytes / 1024);
    return ok ? 0 : 1;
  } catch (std::exception const& e) {
    std::printf("FAIL: %s\n", e.what());
    return 1;
  }
}
