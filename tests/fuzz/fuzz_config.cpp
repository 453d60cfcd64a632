// libFuzzer target: arcnet-train's INI config file (engine::parse_train_options with
// --config FILE --work-dir x, Boost.Program_options plus validate()), and the same file read by
// arcnet-test (it accepts a training config). Expected: options or an arcnet::error
// (config_error); Program_options' own exceptions must not escape.
#include <iostream>
#include <sstream>

#include <arcnet/engine/options.hpp>

#include "fuzz_util.hpp"

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  static bool const quiet = [] {  // --help text and warnings are not findings: keep the log short
    static std::ostringstream sink;
    std::cout.rdbuf(sink.rdbuf());
    return true;
  }();
  (void)quiet;
  auto const path = arcnet::fuzz::write_input("input.cfg", data, size);
  {
    char const* argv[] = {"arcnet-train", "--config", path.c_str(), "--work-dir", "x"};
    arcnet::engine::train_options o;
    try {
      arcnet::engine::parse_train_options(5, argv, o);
    } catch (arcnet::error const&) {
    }
  }
  {
    char const* argv[] = {"arcnet-test", "--config", path.c_str(), "--checkpoint", "x.safetensors"};
    arcnet::engine::test_options o;
    try {
      arcnet::engine::parse_test_options(5, argv, o);
    } catch (arcnet::error const&) {
    }
  }
  return 0;
}
