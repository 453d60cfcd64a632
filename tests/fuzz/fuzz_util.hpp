#pragma once
// Shared by the libFuzzer targets in tests/fuzz/: a private scratch directory per process (the
// parsers under test read files, not memory) and the rule every target follows: an
// arcnet::error is the expected answer to bad input; anything else escapes and is a finding
// (libFuzzer reports an uncaught exception as a crash; ASan/UBSan report the rest).
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>

namespace arcnet::fuzz {

/// The folder that holds the scratch directories: $ARCNET_FUZZ_SCRATCH (scripts/fuzz.sh sets
/// one and removes it afterwards), else /dev/shm, else $TMPDIR, else /tmp. Memory, not disk,
/// matters: rewriting a truncated file on ext4 waits for its blocks (auto_da_alloc), which
/// slows a target from thousands of inputs per second to a few hundred.
inline std::string scratch_base() {
  if (char const* v = std::getenv("ARCNET_FUZZ_SCRATCH"); v && *v) return v;
  std::error_code ec;
  if (std::filesystem::is_directory("/dev/shm", ec) && ::access("/dev/shm", W_OK) == 0) return "/dev/shm";
  char const* tmp = std::getenv("TMPDIR");
  return tmp && *tmp ? tmp : "/tmp";
}

/// This process's scratch directory (under scratch_base()), created on first use and removed at exit.
inline std::filesystem::path const& scratch() {
  static struct dir {
    std::filesystem::path path;
    dir() {
      std::string pattern = scratch_base() + "/arcnet_fuzz_XXXXXX";
      std::error_code ec;
      std::filesystem::create_directories(scratch_base(), ec);
      if (!::mkdtemp(pattern.data())) {
        std::perror("arcnet fuzz: mkdtemp");
        std::abort();
      }
      path = pattern;
    }
    ~dir() {
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
    }
  } const d;
  return d.path;
}

/// Replaces the file `name` in the scratch directory (or below it) with data[0, size); returns its path.
inline std::string write_input(std::string const& name, std::uint8_t const* data, std::size_t size) {
  auto const path = scratch() / name;
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f || (size > 0 && std::fwrite(data, 1, size, f) != size) || std::fclose(f) != 0) {
    std::perror("arcnet fuzz: cannot write the input file");
    std::abort();
  }
  return path.string();
}

}  // namespace arcnet::fuzz
