// Memory and time of metrics::search_topk over a large gallery (issue 7, resource bounds): a
// gallery of G x d L2-normalised float embeddings (default 1,000,000 x 512: 1.91 GiB) searched
// by Q queries (default 1000) for their top k (default 10), with several (query_chunk,
// gallery_chunk) settings. Each setting runs in its own process (this program, re-run with
// arguments), so that memory one search leaves with the allocator cannot hide the next one's:
// it builds the gallery, notes its resident set, searches, and reports the time and the peak
// resident set (VmHWM) minus the gallery's own bytes and minus everything resident before the
// search (gallery, queries, program), next to what the chunks predict: query_chunk x
// gallery_chunk scores + per thread (k + gallery_chunk) scratch scores + Q x k results
// ("chunks"), and with Eigen's packed copy of the gallery block, min(d, 320) x gallery_chunk
// floats ("+packing"). The search must never need the Q x G score matrix (here 3.7 GiB). Checked: every setting returns
// the same top k (a hash of all the indices), and the top k of the first 3 queries equal a
// brute-force search in double.
//
//   build-*/benchmarks/arcnet_bench_search_memory [G [d [Q [k]]]]        all settings
//   build-*/benchmarks/arcnet_bench_search_memory G d Q k QCHUNK GCHUNK  one setting, one line
// Run it niced on a shared machine: nice build-*/benchmarks/arcnet_bench_search_memory
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>
#if defined(_OPENMP)
#include <omp.h>
#endif

#include <arcnet/metrics/search.hpp>

namespace {

using arcnet::index_t;

long status_kib(char const* key) {
  std::ifstream in("/proc/self/status");
  std::string line, k = std::string(key) + ":";
  while (std::getline(in, line))
    if (line.compare(0, k.size(), k) == 0) return std::strtol(line.c_str() + k.size(), nullptr, 10);
  return -1;
}
/// Rows of unit length with entries from a fixed xorshift sequence (fast: 512M values).
void fill_unit_rows(arcnet::tensor<float, arcnet::cpu>& t, std::uint64_t seed) {
  index_t const n = t.size(0), d = t.size(1);
  float* x = t.data();
#pragma omp parallel for schedule(static)
  for (index_t i = 0; i < n; ++i) {
    std::uint64_t s = seed ^ (0x9E3779B97F4A7C15ull * static_cast<std::uint64_t>(i + 1));
    double norm = 0;
    for (index_t j = 0; j < d; ++j) {
      s ^= s << 13, s ^= s >> 7, s ^= s << 17;
      float v = static_cast<float>(static_cast<double>(s >> 11) * 0x1.0p-53 - 0.5);
      x[i * d + j] = v;
      norm += static_cast<double>(v) * v;
    }
    float const inv = static_cast<float>(1 / std::sqrt(norm));
    for (index_t j = 0; j < d; ++j) x[i * d + j] *= inv;
  }
}

}  // namespace

int run_one(index_t g, index_t d, index_t q, index_t k, index_t query_chunk, index_t gallery_chunk) {
  int threads = 1;
#if defined(_OPENMP)
  threads = omp_get_max_threads();
#endif
  double const mib = 1024.0 * 1024.0, gallery_mib = static_cast<double>(g) * d * 4 / mib;
  auto gallery = arcnet::tensor<float, arcnet::cpu>::uninitialized(arcnet::shape{g, d});
  auto queries = arcnet::tensor<float, arcnet::cpu>::uninitialized(arcnet::shape{q, d});
  fill_unit_rows(gallery, 1);
  fill_unit_rows(queries, 2);
  long const before_kib = status_kib("VmRSS");
  arcnet::metrics::search_options o;
  o.query_chunk = query_chunk;
  o.gallery_chunk = gallery_chunk;
  auto t0 = std::chrono::steady_clock::now();
  auto r = arcnet::metrics::search_topk(queries, gallery, k, o);
  double const s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  long const peak_kib = status_kib("VmHWM");
  index_t const qc = std::min(query_chunk, q), gc = std::min(gallery_chunk, g);
  double const predicted = (static_cast<double>(qc) * gc + static_cast<double>(threads) * (k + gc)) * 4 / mib +
                           static_cast<double>(q) * k * 12 / mib;  // scores, scratch, results (index + score)
  // Eigen's GEMM packs the right-hand side (the gallery block) into kc x gallery_chunk floats,
  // kc = min(d, its depth block: 320 for float on this machine's caches).
  double const packed = static_cast<double>(std::min<index_t>(d, 320)) * gc * 4 / mib;
  // A hash of every index, to compare the settings.
  std::uint64_t hash = 1469598103934665603ull;
  for (auto const& row : r.indices)
    for (index_t i : row) hash = (hash ^ static_cast<std::uint64_t>(i)) * 1099511628211ull;
  // Brute force in double for the first queries.
  int mismatches = 0;
  for (index_t i = 0; i < std::min<index_t>(q, 3); ++i) {
    std::vector<std::pair<double, index_t>> all(static_cast<std::size_t>(g));
#pragma omp parallel for schedule(static)
    for (index_t j = 0; j < g; ++j) {
      double dot = 0;
      for (index_t c = 0; c < d; ++c) dot += static_cast<double>(queries.data()[i * d + c]) * gallery.data()[j * d + c];
      all[static_cast<std::size_t>(j)] = {-dot, j};
    }
    index_t const kk = std::min(k, g);
    std::partial_sort(all.begin(), all.begin() + kk, all.end());
    for (index_t j = 0; j < kk; ++j)
      mismatches += r.indices[static_cast<std::size_t>(i)][static_cast<std::size_t>(j)] != all[static_cast<std::size_t>(j)].second;
  }
  std::printf("%11ld %13ld %9.2f %10.0f %13.0f %12.0f %11.0f %11.0f %10.1f %016llx %d\n", long(query_chunk),
              long(gallery_chunk), s, peak_kib / 1024.0, peak_kib / 1024.0 - gallery_mib, (peak_kib - before_kib) / 1024.0,
              predicted, predicted + packed, q / s, static_cast<unsigned long long>(hash), mismatches);
  return mismatches == 0 ? 0 : 1;
}

int main(int argc, char** argv) {
  index_t const g = argc > 1 ? std::atol(argv[1]) : 1000000, d = argc > 2 ? std::atol(argv[2]) : 512,
                q = argc > 3 ? std::atol(argv[3]) : 1000, k = argc > 4 ? std::atol(argv[4]) : 10;
  if (argc > 6) return run_one(g, d, q, k, std::atol(argv[5]), std::atol(argv[6]));
  int threads = 1;
#if defined(_OPENMP)
  threads = omp_get_max_threads();
#endif
  double const mib = 1024.0 * 1024.0;
  std::printf("search_topk: gallery %ld x %ld float (%.0f MiB), %ld queries, k %ld, cpu, %d threads; the full score "
              "matrix would be %.0f MiB\n\n", long(g), long(d), static_cast<double>(g) * d * 4 / mib, long(q), long(k),
              threads, static_cast<double>(q) * g * 4 / mib);
  std::printf("%11s %13s %9s %10s %13s %12s %11s %11s %10s %16s %s\n", "query_chunk", "gallery_chunk", "time_s",
              "peak_MiB", "peak-gallery", "peak-before", "chunks_MiB", "+packing", "queries/s", "indices_hash",
              "brute_force_mismatches");
  std::fflush(stdout);
  char exe[4096];
  ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return 1;
  exe[n] = 0;
  struct setting { long query_chunk, gallery_chunk; };
  std::string first_hash;
  bool ok = true;
  for (setting st : {setting{1024, 65536}, {256, 65536}, {1024, 16384}, {256, 4096}, {64, 262144}}) {
    std::string cmd = std::string("'") + exe + "' " + std::to_string(g) + " " + std::to_string(d) + " " +
                      std::to_string(q) + " " + std::to_string(k) + " " + std::to_string(st.query_chunk) + " " +
                      std::to_string(st.gallery_chunk);
    FILE* p = ::popen(cmd.c_str(), "r");
    if (!p) return 1;
    char line[1024] = {};
    std::string out;
    while (std::fgets(line, sizeof line, p)) out += line;
    ok = ::pclose(p) == 0 && ok;
    std::printf("%s", out.c_str());
    std::fflush(stdout);
    // The hash is the second field from the end.
    auto end = out.find_last_of(' ');
    auto begin = end == std::string::npos ? end : out.find_last_of(' ', end - 1);
    std::string hash = begin == std::string::npos ? "" : out.substr(begin + 1, end - begin - 1);
    if (first_hash.empty()) first_hash = hash;
    ok = ok && !hash.empty() && hash == first_hash;
  }
  std::printf("\nevery setting gives the same top %ld and matches brute force on its first queries: %s\n", long(k),
              ok ? "yes" : "NO");
  return ok ? 0 : 1;
}
