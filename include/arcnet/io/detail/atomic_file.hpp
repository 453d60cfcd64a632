#pragma once
// Atomic file replacement: write "<path>.tmp-<pid>", flush and fsync it, close, rename over
// path. On any failure the temporary file is removed and the file at path stays as it was; a
// process killed mid-write leaves its temporary file behind, which remove_stale_temporaries()
// deletes (the trainer calls it on its work dir before writing anything).
//
// Fault injection, for tests only: with the environment variable ARCNET_TEST_CHECKPOINT_DELAY_MS
// set to N > 0, every commit() sleeps N ms after the data is written and before it is flushed
// and renamed, so that a test can SIGKILL the process while a temporary file exists
// (tests/programs/crash_safety.sh). Unset, it costs one getenv per file written.
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "arcnet/core/error.hpp"

#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>
#define ARCNET_IO_POSIX 1
#else
#include <fstream>
#include <process.h>
#define ARCNET_IO_POSIX 0
#endif

namespace arcnet::detail {

class io_atomic_writer {
 public:
  /// Creates the temporary file next to `path`; `op` names the caller in messages.
  io_atomic_writer(std::string path, std::string op) : path_(std::move(path)), op_(std::move(op)) {
#if ARCNET_IO_POSIX
    temp_ = path_ + ".tmp-" + std::to_string(static_cast<long>(::getpid()));
    fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd_ < 0) fail_errno("cannot create the temporary file '", temp_, "'");
    created_ = true;
#else
    temp_ = path_ + ".tmp-" + std::to_string(static_cast<long>(::_getpid()));
    out_.open(temp_, std::ios::binary | std::ios::trunc);
    if (!out_) fail_errno("cannot create the temporary file '", temp_, "'");
    created_ = true;
#endif
  }
  io_atomic_writer(io_atomic_writer const&) = delete;
  io_atomic_writer& operator=(io_atomic_writer const&) = delete;
  ~io_atomic_writer() { discard(); }

  std::string const& temp_path() const { return temp_; }

  void write(void const* data, std::size_t n) {
    auto const* p = static_cast<char const*>(data);
#if ARCNET_IO_POSIX
    while (n > 0) {
      ::ssize_t const w = ::write(fd_, p, n < (std::size_t(1) << 30) ? n : (std::size_t(1) << 30));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) fail_errno("cannot write '", temp_, "'");
      p += w;
      n -= static_cast<std::size_t>(w);
    }
#else
    out_.write(p, static_cast<std::streamsize>(n));
    if (!out_) fail_errno("cannot write '", temp_, "'");
#endif
  }
  void write(std::string const& s) { write(s.data(), s.size()); }

  /// Makes the data durable and renames the temporary file over path.
  void commit() {
    test_delay();
#if ARCNET_IO_POSIX
    if (::fsync(fd_) != 0) fail_errno("cannot flush '", temp_, "' to disk");
    int const fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) fail_errno("cannot close '", temp_, "'");
    if (::rename(temp_.c_str(), path_.c_str()) != 0) fail_errno("cannot rename '", temp_, "' over the file");
    committed_ = true;
    // The rename is durable once the directory is synced; best effort.
    std::string dir = std::filesystem::path(path_).parent_path().string();
    int const dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_CLOEXEC);
    if (dfd >= 0) {
      (void)::fsync(dfd);
      ::close(dfd);
    }
#else
    out_.flush();
    out_.close();
    if (!out_) fail_errno("cannot close '", temp_, "'");
    std::error_code ec;
    std::filesystem::rename(temp_, path_, ec);
    if (ec) fail("cannot rename '", temp_, "' over the file: ", ec.message());
    committed_ = true;
#endif
  }

 private:
  static void test_delay() {
    char const* v = std::getenv("ARCNET_TEST_CHECKPOINT_DELAY_MS");
    long const ms = v ? std::strtol(v, nullptr, 10) : 0;
    if (ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  }
  void discard() {
    if (committed_) return;
#if ARCNET_IO_POSIX
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    if (created_) ::unlink(temp_.c_str());
#else
    if (out_.is_open()) out_.close();
    std::error_code ec;
    if (created_) std::filesystem::remove(temp_, ec);
#endif
    committed_ = true;  // once
  }
  template <class... Parts>
  [[noreturn]] void fail_errno(Parts const&... parts) {
    int const e = errno;
    fail(parts..., ": ", std::strerror(e));
  }
  template <class... Parts>
  [[noreturn]] void fail(Parts const&... parts) {
    discard();
    raise<io_error>(op_, ": '", path_, "': ", parts..., "; the file was not changed");
  }

  std::string path_, op_, temp_;
  bool committed_ = false, created_ = false;  // created_: the temporary file is ours to remove
#if ARCNET_IO_POSIX
  int fd_ = -1;
#else
  std::ofstream out_;
#endif
};

/// Deletes the temporary files io_atomic_writer leaves when its process is killed mid-write:
/// "<name>.tmp-<pid>" in `dir` (not recursive) whose process is gone. A file of a live process
/// (another writer) is left alone. Returns the names removed; never throws.
inline std::vector<std::string> remove_stale_temporaries(std::string const& dir) {
  namespace fs = std::filesystem;
  std::vector<std::string> removed;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::string const name = it->path().filename().string();
    auto const at = name.rfind(".tmp-");
    if (at == std::string::npos || at == 0 || at + 5 == name.size()) continue;
    std::string const digits = name.substr(at + 5);
    if (digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 9) continue;
    long const pid = std::strtol(digits.c_str(), nullptr, 10);
#if ARCNET_IO_POSIX
    if (pid == static_cast<long>(::getpid())) continue;
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM) continue;  // still running
#else
    if (pid == static_cast<long>(::_getpid())) continue;
#endif
    std::error_code rm;
    if (fs::is_regular_file(it->path(), rm) && fs::remove(it->path(), rm)) removed.push_back(name);
  }
  return removed;
}

}  // namespace arcnet::detail
