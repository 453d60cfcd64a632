#pragma once
// One exception family. Messages say what was expected, what was found, and where.
#include <sstream>
#include <stdexcept>
#include <string>

namespace arcnet {

/// Base of every exception arcnet throws; what() starts with "arcnet: ".
class error : public std::runtime_error {
 public:
  explicit error(std::string const& what) : std::runtime_error(what) {}
};
/// A tensor had the wrong shape, rank or axis.
class shape_error : public error {
 public:
  using error::error;
};
/// Mismatched devices, or a failed CUDA / cuBLAS call.
class device_error : public error {
 public:
  using error::error;
};
/// A bad option, config key or value.
class config_error : public error {
 public:
  using error::error;
};
/// A file could not be read or written, or its contents are malformed.
class io_error : public error {
 public:
  using error::error;
};

namespace detail {
template <class... Parts>
std::string concat(Parts const&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  return os.str();
}
template <class Error = error, class... Parts>
[[noreturn]] void raise(Parts const&... parts) {
  throw Error(concat("arcnet: ", parts...));
}
}  // namespace detail

}  // namespace arcnet

/// Throws arcnet::error ("arcnet: " + parts) when cond is false.
#define ARCNET_CHECK(cond, ...)                                   \
  do {                                                            \
    if (!(cond)) ::arcnet::detail::raise<::arcnet::error>(__VA_ARGS__); \
  } while (0)
/// Same, with a chosen subclass: ARCNET_CHECK_AS(shape_error, cond, parts...).
#define ARCNET_CHECK_AS(kind, cond, ...)                          \
  do {                                                            \
    if (!(cond)) ::arcnet::detail::raise<::arcnet::kind>(__VA_ARGS__); \
  } while (0)
/// Internal invariant: a failure is a bug in arcnet, not in the caller's input.
#define ARCNET_ASSERT(cond)                                                                \
  do {                                                                                     \
    if (!(cond))                                                                           \
      ::arcnet::detail::raise<::arcnet::error>("internal error: ", #cond, " at ", __FILE__, \
                                               ":", __LINE__);                             \
  } while (0)
