#pragma once
// Helpers shared by the tests: random variables, gradient-check assertions, fixtures.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <iterator>
#include <unistd.h>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include <arcnet/arcnet.hpp>

namespace arcnet::testing {

/// A double CPU leaf with N(0,1) entries (or U[lo, hi) when lo < hi), requiring grad.
inline variable<double, cpu> random_variable(shape s, generator& g, double lo = 0, double hi = 0) {
  auto t = tensor<double, cpu>::uninitialized(std::move(s));
  if (lo < hi) g.fill_uniform(t, lo, hi);
  else g.fill_normal(t);
  return variable<double, cpu>(t, true);
}

/// A fresh, empty directory for one test case, under a per-process root removed at exit.
inline std::filesystem::path scratch_dir(std::string const& name) {
  namespace fs = std::filesystem;
  static struct root_dir {
    fs::path path;
    ~root_dir() {
      std::error_code ec;
      fs::remove_all(path, ec);
    }
  } const root{fs::temp_directory_path() / ("arcnet_tests_" + std::to_string(static_cast<long>(::getpid())))};
  auto dir = root.path / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}
/// The whole content of a file ("" when it cannot be read).
inline std::string read_bytes(std::filesystem::path const& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}
/// Replaces a file's content with `bytes`.
inline void write_bytes(std::filesystem::path const& p, std::string const& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

/// Asserts that the autograd gradient of f matches finite differences to `tol`.
template <class F>
void require_gradients_match(F&& f, std::vector<variable<double, cpu>> inputs, double tol = 1e-6) {
  auto r = autograd::grad_check(std::forward<F>(f), std::move(inputs));
  INFO("worst: " << r.worst << " (checked " << r.checked << " elements)");
  CHECK(r.checked > 0);
  REQUIRE(r.max_error < tol);
}

/// Catch matcher: an arcnet::error whose message contains `part`. Matches an arcnet::error whose message contains `part`.
struct message_contains : Catch::MatcherBase<arcnet::error> {
  std::string part;
  explicit message_contains(std::string p) : part(std::move(p)) {}
  bool match(arcnet::error const& e) const override { return std::string(e.what()).find(part) != std::string::npos; }
  std::string describe() const override { return "message contains \"" + part + "\""; }
};

/// max_i |a_i - b_i| / max(|b_i|, floor)
template <class T, class U>
double max_relative_difference(tensor<T, cpu> const& a, tensor<U, cpu> const& b, double floor = 1e-6) {
  REQUIRE(a.numel() == b.numel());
  double worst = 0;
  for (index_t i = 0; i < a.numel(); ++i) {
    double x = static_cast<double>(a[i]), y = static_cast<double>(b[i]);
    worst = std::max(worst, std::abs(x - y) / std::max(std::abs(y), floor));
  }
  return worst;
}

}  // namespace arcnet::testing
