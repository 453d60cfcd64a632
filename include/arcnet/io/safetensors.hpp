#pragma once
// safetensors files (https://github.com/huggingface/safetensors): an 8-byte little-endian
// header length N, N bytes of JSON header
//   {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
//    "__metadata__": {string: string}}
// then the raw little-endian data; offsets are relative to the data section, which the tensors
// cover exactly (no holes, no overlaps), as the reference implementation requires.
#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "arcnet/core/error.hpp"
#include "arcnet/core/tensor.hpp"
#include "arcnet/io/detail/atomic_file.hpp"
#include "arcnet/io/detail/binary.hpp"
#include "arcnet/io/detail/dtype.hpp"
#include "arcnet/io/detail/json.hpp"
#include "arcnet/io/state_dict.hpp"

namespace arcnet::io {

/// Writes sd (all F32) and string metadata to a safetensors file at path, atomically: the data
/// goes to "<path>.tmp-<pid>", is flushed to disk, then renamed over path. On failure the
/// temporary file is removed, an existing file at path stays intact, and io_error is thrown.
inline void save_safetensors(std::string const& path, state_dict const& sd,
                             std::map<std::string, std::string> const& metadata = {});

/// Reads a safetensors file; F32, F16, BF16, F64 (and the integer types I64, I32, I16, I8, U8,
/// BOOL) are converted to float32. Fills *metadata with "__metadata__" when given. Throws io_error
/// naming the file and the problem when the file is truncated or malformed.
inline state_dict load_safetensors(std::string const& path,
                                   std::map<std::string, std::string>* metadata = nullptr);

}  // namespace arcnet::io

namespace arcnet::detail {

/// The element type of a safetensors dtype name; false when unknown or unsupported.
inline bool safetensors_dtype(std::string const& name, io_dtype& out) {
  static std::pair<char const*, io_dtype> const table[] = {
      {"F32", io_dtype::f32}, {"F16", io_dtype::f16}, {"BF16", io_dtype::bf16}, {"F64", io_dtype::f64},
      {"I64", io_dtype::i64}, {"I32", io_dtype::i32}, {"I16", io_dtype::i16},   {"I8", io_dtype::i8},
      {"U8", io_dtype::u8},   {"BOOL", io_dtype::boolean}};
  for (auto const& [n, d] : table)
    if (name == n) {
      out = d;
      return true;
    }
  return false;
}

struct safetensors_entry {
  std::string name;
  io_dtype dtype = io_dtype::f32;
  std::vector<index_t> dims;
  std::uint64_t begin = 0, end = 0;
};

}  // namespace arcnet::detail

namespace arcnet::io {

inline void save_safetensors(std::string const& path, state_dict const& sd,
                             std::map<std::string, std::string> const& metadata) {
  auto fail = [&](auto const&... parts) { detail::raise<io_error>("save_safetensors: '", path, "': ", parts...); };
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::uint64_t offset = 0;
  for (auto const& [name, t] : sd) {
    if (name == "__metadata__") fail("a tensor cannot be called '__metadata__': the format reserves the name");
    if (!t.defined()) fail("tensor '", name, "' is undefined (default-constructed)");
    std::uint64_t const bytes = static_cast<std::uint64_t>(t.numel()) * 4;
    header[name] = {{"dtype", "F32"}, {"shape", t.shape().dims()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (nlohmann::json::exception const& e) {
    fail("a tensor name or metadata string is not valid UTF-8 (", e.what(), ")");
  }
  text.append((8 - text.size() % 8) % 8, ' ');  // the data section starts 8-byte aligned

  detail::io_atomic_writer out(path, "save_safetensors");
  std::string prefix;
  detail::io_store_le<std::uint64_t>(prefix, text.size());
  out.write(prefix);
  out.write(text);
  bool const little = detail::io_host_is_little_endian();
  std::vector<unsigned char> swapped;
  for (auto const& [name, t] : sd) {
    auto const n = static_cast<std::size_t>(t.numel());
    if (little) {
      out.write(t.data(), n * 4);
      continue;
    }
    swapped.resize(n * 4);
    std::memcpy(swapped.data(), t.data(), n * 4);
    for (std::size_t i = 0; i < n; ++i) std::reverse(swapped.begin() + 4 * i, swapped.begin() + 4 * i + 4);
    out.write(swapped.data(), swapped.size());
  }
  out.commit();
}

inline state_dict load_safetensors(std::string const& path, std::map<std::string, std::string>* metadata) {
  using detail::io_dtype;
  detail::io_file f(path, "load_safetensors");
  std::uint64_t const size = f.size();
  if (size < 8) f.fail("the file has ", size, " bytes, too few for the 8-byte header length (truncated?)");
  unsigned char prefix[8];
  f.read(0, prefix, 8, "header length");
  std::uint64_t const n = detail::io_load_le<std::uint64_t>(prefix);
  if (n > size - 8)
    f.fail("header length ", n, " runs past the end of the file (", size, " bytes; truncated or not safetensors)");
  if (n > 100000000) f.fail("header length ", n, " exceeds the format's limit of 100000000 bytes");
  if (n < 2) f.fail("header length ", n, " is too short for a JSON object");
  std::string text(static_cast<std::size_t>(n), '\0');
  f.read(8, text.data(), n, "header");
  nlohmann::json const header = detail::io_parse_json(text, f, "header");
  if (!header.is_object()) f.fail("the header is a JSON ", header.type_name(), ", expected an object");

  std::uint64_t const data_start = 8 + n, data_size = size - data_start;
  std::vector<detail::safetensors_entry> entries;
  if (metadata) metadata->clear();
  for (auto it = header.begin(); it != header.end(); ++it) {
    std::string const& name = it.key();  // not structured bindings: lambdas below capture them
    nlohmann::json const& info = it.value();
    if (name == "__metadata__") {
      if (!info.is_object()) f.fail("'__metadata__' is a JSON ", info.type_name(), ", expected an object of strings");
      for (auto const& [k, v] : info.items()) {
        if (!v.is_string()) f.fail("'__metadata__' entry '", k, "' is a JSON ", v.type_name(), ", expected a string");
        if (metadata) (*metadata)[k] = v.get<std::string>();
      }
      continue;
    }
    auto bad = [&](auto const&... parts) { f.fail("tensor '", name, "': ", parts...); };
    if (!info.is_object()) bad("expected an object with dtype, shape and data_offsets, got a JSON ", info.type_name());
    auto field = [&](char const* key) -> nlohmann::json const& {
      auto it = info.find(key);
      if (it == info.end()) f.fail("tensor '", name, "': '", key, "' is missing");
      return *it;
    };
    detail::safetensors_entry e;
    e.name = name;
    auto const& dtype = field("dtype");
    if (!dtype.is_string()) bad("'dtype' is a JSON ", dtype.type_name(), ", expected a string");
    if (!detail::safetensors_dtype(dtype.get<std::string>(), e.dtype))
      bad("unknown or unsupported dtype '", dtype.get<std::string>(),
          "' (supported: F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL)");
    auto const& shape_json = field("shape");
    if (!shape_json.is_array()) bad("'shape' is a JSON ", shape_json.type_name(), ", expected an array");
    std::uint64_t numel = 1, nonzero = 1;
    for (auto const& d : shape_json) {
      if (!d.is_number_unsigned()) bad("'shape' ", shape_json.dump(), " holds something other than non-negative integers");
      auto const v = d.get<std::uint64_t>();
      if (v > 0 && !detail::io_checked_mul(nonzero, v, nonzero, std::uint64_t(1) << 62))
        bad("'shape' ", shape_json.dump(), " has more elements than any file can hold");
      numel = v == 0 ? 0 : numel * v;  // <= nonzero
      e.dims.push_back(static_cast<index_t>(v));
    }
    auto const& offsets = field("data_offsets");
    if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
        !offsets[1].is_number_unsigned())
      bad("'data_offsets' ", offsets.dump(), " is not [begin, end] with non-negative integers");
    e.begin = offsets[0].get<std::uint64_t>();
    e.end = offsets[1].get<std::uint64_t>();
    if (e.begin > e.end || e.end > data_size)
      bad("data_offsets [", e.begin, ", ", e.end, "] lie outside the data section of ", data_size,
          " bytes (truncated file?)");
    std::uint64_t const bytes = numel * detail::io_dtype_size(e.dtype);  // numel <= 2^62: fits
    if (e.end - e.begin != bytes)
      bad("data_offsets [", e.begin, ", ", e.end, "] span ", e.end - e.begin, " bytes but shape ",
          shape_json.dump(), " of ", dtype.get<std::string>(), " needs ", bytes);
    entries.push_back(std::move(e));
  }

  // The tensors must tile the data section: sorted by offset, each starts where the previous ends.
  std::vector<detail::safetensors_entry const*> order;
  for (auto const& e : entries) order.push_back(&e);
  std::sort(order.begin(), order.end(), [](auto* a, auto* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  std::uint64_t covered = 0;
  std::string previous;
  for (auto const* e : order) {
    if (e->begin < covered)
      f.fail("tensors '", previous, "' and '", e->name, "' overlap in the data section (byte ", e->begin, ")");
    if (e->begin > covered)
      f.fail("bytes [", covered, ", ", e->begin, ") of the data section belong to no tensor");
    covered = e->end;
    previous = e->name;
  }
  if (covered != data_size)
    f.fail("the data section has ", data_size - covered, " bytes after the last tensor (", data_size, " in all)");

  state_dict out;
  bool const little = detail::io_host_is_little_endian();
  std::vector<unsigned char> buffer;
  for (auto const& e : entries) {
    auto t = tensor<float, cpu>::uninitialized(shape(e.dims));
    std::uint64_t const bytes = e.end - e.begin;
    if (e.dtype == io_dtype::f32 && little) {
      f.read(data_start + e.begin, t.data(), bytes, "tensor data");
    } else {
      buffer = f.read(data_start + e.begin, bytes, "tensor data");
      detail::io_decode_contiguous(e.dtype, buffer.data(), static_cast<std::uint64_t>(t.numel()), t.data(), !little);
    }
    out.emplace(e.name, std::move(t));
  }
  return out;
}

}  // namespace arcnet::io
