// libFuzzer target: metrics::read_pairs, the verification pairs file (LFW pairs.txt and the
// "path_a path_b same" list format). Expected: pairs with folds in [0, num_folds) and both
// kinds present, or an io_error.
#include <arcnet/metrics/verification.hpp>

#include "fuzz_util.hpp"

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  auto const path = arcnet::fuzz::write_input("pairs.txt", data, size);
  try {
    auto p = arcnet::metrics::read_pairs(path, "root");
    bool same = false, different = false;
    for (auto const& q : p.pairs) {
      if (q.fold < 0 || q.fold >= p.num_folds) std::abort();
      (q.same ? same : different) = true;
    }
    if (!same || !different) std::abort();
  } catch (arcnet::error const&) {
  }
  return 0;
}
