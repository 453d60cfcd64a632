#pragma once
// Line-oriented text parsing shared by the file datasets (In-Shop partition, list files):
// every error names the file and the 1-based line.
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "arcnet/core/error.hpp"

namespace arcnet::detail {

/// The lines of a text file, without their "\n" / "\r\n"; io_error naming the file if unreadable.
inline std::vector<std::string> dataset_read_lines(std::string const& path, char const* who) {
  std::ifstream in(path, std::ios::binary);
  if (!in) raise<io_error>(who, ": cannot open '", path, "'");
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
  }
  if (in.bad()) raise<io_error>(who, ": error while reading '", path, "'");
  return lines;
}

/// The whitespace-separated fields of a line.
inline std::vector<std::string> dataset_split_fields(std::string const& line) {
  std::vector<std::string> fields;
  std::size_t i = 0, n = line.size();
  while (i < n) {
    while (i < n && std::isspace(static_cast<unsigned char>(line[i]))) ++i;
    std::size_t start = i;
    while (i < n && !std::isspace(static_cast<unsigned char>(line[i]))) ++i;
    if (i > start) fields.push_back(line.substr(start, i - start));
  }
  return fields;
}

/// True when the line holds only whitespace.
inline bool dataset_blank_line(std::string const& line) {
  for (char c : line)
    if (!std::isspace(static_cast<unsigned char>(c))) return false;
  return true;
}

/// Parses a whole field as a decimal integer; false when it is not one (or overflows).
inline bool dataset_parse_int(std::string const& text, std::int64_t& out) {
  if (text.empty()) return false;
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(text.c_str(), &end, 10);
  if (errno != 0 || end != text.c_str() + text.size()) return false;
  out = static_cast<std::int64_t>(v);
  return true;
}

/// Quotes a line for an error message, shortened when long.
inline std::string dataset_quote_line(std::string const& line) {
  constexpr std::size_t max_len = 120;
  if (line.size() <= max_len) return "'" + line + "'";
  return "'" + line.substr(0, max_len) + "...'";
}

}  // namespace arcnet::detail
