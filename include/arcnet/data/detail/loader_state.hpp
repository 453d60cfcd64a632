#pragma once
// The loader's per-batch bookkeeping and its error wrapping (private to data/loader.hpp).
#include <cstdint>
#include <exception>
#include <string>
#include <utility>
#include <vector>

#include "arcnet/core/error.hpp"
#include "arcnet/core/tensor.hpp"
#include "arcnet/data/image.hpp"

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace arcnet::data {
/// A sample the loader skipped (skip_bad): its dataset index, its file (when known) and why.
struct bad_sample {
  index_t index = 0;
  std::string path;
  std::string message;
};
}  // namespace arcnet::data

namespace arcnet::detail {

/// What a worker produced for one sample: a float tensor (load functions), or transformed bytes
/// (pipelines) that it normalises straight into the batch, saving a copy.
struct loader_produced {
  tensor<float, cpu> values;
  data::image pixels;
  std::int64_t label = 0;
};

/// Asks Linux for transparent huge pages on a large batch buffer: each batch is fresh memory, and
/// first-touch page faults on 4 KiB pages can cost as much as the copy itself. A hint only.
inline void loader_advise_huge_pages(void* data, std::size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr std::uintptr_t huge = std::uintptr_t(2) << 20;
  if (bytes < 2 * huge) return;
  auto begin = (reinterpret_cast<std::uintptr_t>(data) + huge - 1) & ~(huge - 1);
  auto end = (reinterpret_cast<std::uintptr_t>(data) + bytes) & ~(huge - 1);
  if (end > begin) (void)madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
#else
  (void)data;
  (void)bytes;
#endif
}

/// One batch being assembled: workers fill rows in any order; the consumer takes it whole.
struct loader_slot {
  index_t batch = -1;
  index_t remaining = 0;              // rows not finished yet
  tensor<float, cpu> images;          // (rows, sample dims...), allocated by the first finished row
  std::vector<std::int64_t> labels;   // per row
  std::vector<char> ok;               // per row: loaded and copied
  std::exception_ptr error;           // the first failing row's error (without skip_bad)
  index_t error_row = -1;
  std::vector<std::pair<index_t, data::bad_sample>> bad;  // (row, what) with skip_bad
};

/// "arcnet: x" -> "x", so that a wrapped message does not repeat the prefix.
inline std::string loader_strip_prefix(char const* what) {
  std::string s = what ? what : "";
  constexpr char const prefix[] = "arcnet: ";
  if (s.rfind(prefix, 0) == 0) s.erase(0, sizeof(prefix) - 1);
  return s;
}

/// Rethrows e as the same arcnet error kind with "loader: sample i ('path'): " in front; sets message.
inline std::exception_ptr loader_wrap_error(std::exception_ptr e, index_t index, std::string const& path,
                                            std::string& message) {
  std::string where = path.empty() ? concat("loader: sample ", index, ": ")
                                   : concat("loader: sample ", index, " ('", path, "'): ");
  auto make = [&](auto kind, char const* what) {
    message = loader_strip_prefix(what);
    return std::make_exception_ptr(decltype(kind)(concat("arcnet: ", where, message)));
  };
  try {
    std::rethrow_exception(e);
  } catch (io_error const& x) {
    return make(io_error(""), x.what());
  } catch (shape_error const& x) {
    return make(shape_error(""), x.what());
  } catch (config_error const& x) {
    return make(config_error(""), x.what());
  } catch (device_error const& x) {
    return make(device_error(""), x.what());
  } catch (std::exception const& x) {
    return make(error(""), x.what());
  } catch (...) {
    return make(error(""), "unknown exception");
  }
}

}  // namespace arcnet::detail
