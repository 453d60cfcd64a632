#pragma once
// What a training run prints: on a terminal, one progress line rewritten in place (loss, lr,
// img/s, ETA); otherwise a plain line every N iterations; always a JSON-lines log in the work
// dir (one object per line, appended, so a resumed run continues the same file).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "arcnet/core/error.hpp"

namespace arcnet::engine {

/// "1:02:03" or "2:03".
inline std::string format_duration(double seconds) {
  if (!(seconds >= 0) || seconds > 1e8) return "?";
  long s = static_cast<long>(seconds + 0.5);
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
  else std::snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
  return buf;
}

/// Appends JSON objects, one per line, flushed each time (a crash loses at most the last line).
class jsonl_log {
 public:
  jsonl_log() = default;
  explicit jsonl_log(std::string const& path) : path_(path), out_(path, std::ios::app) {
    if (!out_) detail::raise<io_error>("jsonl_log: cannot open '", path, "' for appending");
  }
  void write(nlohmann::json const& j) {
    if (!out_.is_open()) return;
    out_ << j.dump() << '\n';
    out_.flush();
  }

 private:
  std::string path_;
  std::ofstream out_;
};

/// Progress of one phase (an epoch, an embedding pass): a bar on a terminal, lines otherwise.
class progress_line {
 public:
  /// interactive: rewrite one line (stdout is a terminal); else print every `every` steps.
  /// Not enabled: prints nothing (ranks other than 0 of a distributed run), still times.
  progress_line(std::string label, long total, int every, bool interactive, bool enabled = true)
      : label_(std::move(label)), total_(total), every_(std::max(1, every)), interactive_(interactive),
        enabled_(enabled), start_(clock::now()) {}

  static bool stdout_is_terminal() { return ::isatty(::fileno(stdout)) == 1; }

  /// Step `done` of total has finished; `items` images so far in this phase; extra: "loss 1.23  lr 0.01".
  void update(long done, long items, std::string const& extra) {
    double const elapsed = std::chrono::duration<double>(clock::now() - start_).count();
    double const rate = elapsed > 0 ? items / elapsed : 0;
    double const eta = done > 0 ? elapsed * (total_ - done) / done : -1;
    if (!enabled_) return;
    if (interactive_) {
      int const width = 24;
      int const filled = total_ > 0 ? static_cast<int>(width * done / total_) : 0;
      std::string bar(static_cast<std::size_t>(filled), '#');
      bar.resize(width, '.');
      std::printf("\r%s [%s] %ld/%ld  %s  %.0f img/s  eta %s   ", label_.c_str(), bar.c_str(), done, total_,
                  extra.c_str(), rate, format_duration(eta).c_str());
      std::fflush(stdout);
      dirty_ = true;
    } else if (done % every_ == 0 || done == total_) {
      std::printf("%s [%ld/%ld]  %s  %.0f img/s  eta %s\n", label_.c_str(), done, total_, extra.c_str(), rate,
                  format_duration(eta).c_str());
      std::fflush(stdout);
    }
  }
  /// Ends the bar's line (before other output).
  void finish() {
    if (dirty_) std::printf("\n");
    dirty_ = false;
    std::fflush(stdout);
  }
  ~progress_line() { finish(); }
  double seconds() const { return std::chrono::duration<double>(clock::now() - start_).count(); }

 private:
  using clock = std::chrono::steady_clock;
  std::string label_;
  long total_;
  int every_;
  bool interactive_;
  bool enabled_;
  bool dirty_ = false;
  clock::time_point start_;
};

}  // namespace arcnet::engine

namespace arcnet::engine {

/// An error message on one line (a program prints exactly one error line): line breaks and the
/// indentation after them become "; ".
inline std::string one_line(std::string const& message) {
  std::string out;
  for (std::size_t i = 0; i < message.size(); ++i) {
    if (message[i] != '\n') {
      out += message[i];
      continue;
    }
    while (i + 1 < message.size() && (message[i + 1] == ' ' || message[i + 1] == '\n')) ++i;
    if (!out.empty() && out.back() == ':') out += ' ';
    else if (i + 1 < message.size()) out += "; ";
  }
  return out;
}

}  // namespace arcnet::engine
