// libFuzzer target: io::load_safetensors on arbitrary bytes. Expected: a state dict or an
// io_error; the tensors of a loaded dict are touched so a bad size shows up under ASan.
#include <arcnet/io/safetensors.hpp>

#include "fuzz_util.hpp"

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  auto const path = arcnet::fuzz::write_input("input.safetensors", data, size);
  std::map<std::string, std::string> metadata;
  try {
    auto sd = arcnet::io::load_safetensors(path, &metadata);
    volatile float sink = 0;
    for (auto const& [name, t] : sd)
      if (t.numel() > 0) sink = sink + t.data()[0] + t.data()[t.numel() - 1];
  } catch (arcnet::error const&) {
  }
  return 0;
}
