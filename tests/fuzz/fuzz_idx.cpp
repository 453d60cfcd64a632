// libFuzzer target: data::read_idx (IDX files of unsigned bytes, gzip-compressed or plain).
// Expected: dimensions whose product is the data size, or an io_error.
#include <arcnet/data/idx.hpp>

#include "fuzz_util.hpp"

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  auto const path = arcnet::fuzz::write_input("input.idx", data, size);
  try {
    auto a = arcnet::data::read_idx(path);
    std::uint64_t total = 1;
    for (auto d : a.dims) total *= static_cast<std::uint64_t>(d);
    if (a.dims.empty() || total != a.data.size()) std::abort();
  } catch (arcnet::error const&) {
  }
  return 0;
}
