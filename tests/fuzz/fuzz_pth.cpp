// libFuzzer target: io::load_pth (ZIP and legacy torch.save streams, the pickle machine) on
// arbitrary bytes. Expected: a state dict or an io_error; nothing executes.
#include <arcnet/io/pth.hpp>

#include "fuzz_util.hpp"

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  auto const path = arcnet::fuzz::write_input("input.pth", data, size);
  try {
    auto sd = arcnet::io::load_pth(path);
    volatile float sink = 0;
    for (auto const& [name, t] : sd)
      if (t.numel() > 0) sink = sink + t.data()[0] + t.data()[t.numel() - 1];
  } catch (arcnet::error const&) {
  }
  return 0;
}
