#pragma once
// PyTorch checkpoints (.pth, .pt) written by torch.save, read without Python: the ZIP format of
// torch >= 1.6 and the legacy stream format (_use_new_zipfile_serialization=False, which
// mmpretrain's publish_model.py writes). Only tensors and plain data are rebuilt; no code runs.
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "arcnet/core/error.hpp"
#include "arcnet/core/tensor.hpp"
#include "arcnet/io/detail/binary.hpp"
#include "arcnet/io/detail/dtype.hpp"
#include "arcnet/io/detail/pickle.hpp"
#include "arcnet/io/detail/zip_reader.hpp"
#include "arcnet/io/state_dict.hpp"

namespace arcnet::io {

/// Loads the tensors of the state dict in a torch.save file, converted to float32.
/// The file's top object is a state dict (dict or OrderedDict of name -> tensor), or a dict
/// holding one under "state_dict" (mmpretrain / mmcv / mmengine checkpoints), "model" or
/// "module". Entries that are not tensors are skipped; integer and bool tensors (e.g.
/// num_batches_tracked) are converted to float. Throws io_error naming the file and the
/// problem on anything malformed, truncated, or beyond tensors and plain data (e.g. a pickled
/// call to os.system).
inline state_dict load_pth(std::string const& path);

}  // namespace arcnet::io

namespace arcnet::detail {

/// The dict of tensors in a checkpoint's top object (see io::load_pth).
inline pickle_value pth_select_state_dict(pickle_machine const& m, pickle_value const& root, io_file& f) {
  if (root.kind != pickle_kind::dict)
    f.fail("the checkpoint's top object has type ", pickle_kind_name(root.kind),
           ", expected a dict of tensors (state dict)");
  for (char const* key : {"state_dict", "model", "module"}) {
    pickle_value const* v = m.lookup(root, key);
    if (v && v->kind == pickle_kind::dict) return *v;
  }
  return root;
}

/// Rebuilds the tensors of dict `sd` as float32. record(storage) returns {pointer, bytes} of the
/// storage's record; release(key) says the record is no longer needed.
template <class Record, class Release>
io::state_dict pth_materialize(pickle_machine const& m, pickle_value const& sd, io_file& f, bool swap,
                               Record&& record, Release&& release) {
  auto const& entries = m.container(sd).entries;
  std::unordered_map<std::string, std::size_t> uses;  // tensors per record, to free records early
  for (auto const& [k, v] : entries)
    if (k.kind == pickle_kind::string && v.kind == pickle_kind::tensor) ++uses[m.storage(m.tensor(v).storage).key];

  // Views of one storage could repeat its bytes without limit: cap the output by the file size.
  std::uint64_t const budget = 4 * f.size() + (std::uint64_t(64) << 20);
  std::uint64_t total = 0;
  io::state_dict out;
  for (auto const& [k, v] : entries) {
    if (k.kind != pickle_kind::string || v.kind != pickle_kind::tensor) continue;
    std::string const& name = m.text(k);
    pickle_tensor const& t = m.tensor(v);
    pickle_storage const& s = m.storage(t.storage);
    auto describe = [&] {
      return concat("size ", shape(t.sizes).str(), " stride ", shape(t.strides).str(), " at offset ", t.offset);
    };
    std::uint64_t numel = 1, last = t.offset;
    bool ok = true;
    for (std::size_t i = 0; i < t.sizes.size(); ++i) {
      auto const size = static_cast<std::uint64_t>(t.sizes[i]), stride = static_cast<std::uint64_t>(t.strides[i]);
      std::uint64_t reach = 0;
      ok = ok && io_checked_mul(numel, size, numel, std::uint64_t(1) << 62);
      if (size > 0) ok = ok && io_checked_mul(size - 1, stride, reach) && io_checked_add(last, reach, last);
    }
    if (!ok) f.fail("tensor '", name, "': ", describe(), " overflows");
    if (s.view_offset > s.numel || s.view_numel > s.numel - s.view_offset)
      f.fail("tensor '", name, "': storage view [", s.view_offset, ", +", s.view_numel, ") lies outside storage '",
             s.key, "' of ", s.numel, " elements");
    if (numel > 0 && last >= s.view_numel)
      f.fail("tensor '", name, "': ", describe(), " reaches element ", last, " but its storage '", s.key,
             "' holds only ", s.view_numel, " ", io_dtype_name(s.dtype), " elements");
    if (numel > s.view_numel)
      f.fail("tensor '", name, "': ", describe(), " has ", numel, " elements, more than its storage '", s.key,
             "' holds (", s.view_numel, "): expanded views are not supported");
    std::uint64_t bytes_out = 0;
    if (!io_checked_mul(numel, 4, bytes_out) || !io_checked_add(total, bytes_out, total, budget))
      f.fail("tensor '", name, "': the tensors would need more than ", budget,
             " bytes, more than a file of this size can hold");
    std::pair<unsigned char const*, std::uint64_t> const bytes = record(s);
    std::uint64_t need = 0;
    if (!io_checked_mul(s.numel, io_dtype_size(s.dtype), need) || bytes.second < need)
      f.fail("storage '", s.key, "' has ", bytes.second, " bytes, too few for ", s.numel, " ",
             io_dtype_name(s.dtype), " elements");
    auto x = tensor<float, cpu>::uninitialized(shape(t.sizes));
    io_decode_strided(s.dtype, bytes.first + s.view_offset * io_dtype_size(s.dtype), t.offset, t.sizes, t.strides,
                      x.data(), swap);
    out[name] = std::move(x);
    if (--uses[s.key] == 0) release(s.key);
  }
  return out;
}

inline io::state_dict pth_load_zip(io_file& f) {
  zip_archive zip(f);
  std::string prefix;
  int found = 0;
  for (auto const& e : zip.entries()) {
    auto slash = e.name.find('/');
    if (slash != std::string::npos && e.name.compare(slash, std::string::npos, "/data.pkl") == 0) {
      prefix = e.name.substr(0, slash);
      ++found;
    }
  }
  if (found == 0) f.fail("no '<archive>/data.pkl' entry: this ZIP archive was not written by torch.save");
  if (found > 1) f.fail("several '<archive>/data.pkl' entries: ambiguous archive");

  bool swap = !io_host_is_little_endian();
  if (zip_entry const* bo = zip.find(prefix + "/byteorder")) {
    auto b = zip.read(*bo);
    std::string const order(b.begin(), b.end());
    if (order == "big") swap = io_host_is_little_endian();
    else if (order != "little") f.fail("'", prefix, "/byteorder' says '", order, "', expected 'little' or 'big'");
  }

  auto pkl = zip.read(*zip.find(prefix + "/data.pkl"));
  pickle_machine m(concat("load_pth: '", f.path(), "': ", prefix, "/data.pkl"));
  pickle_value const root = m.run(pkl.data(), pkl.size());
  pickle_value const sd = pth_select_state_dict(m, root, f);

  std::unordered_map<std::string, std::vector<unsigned char>> cache;
  auto record = [&](pickle_storage const& s) -> std::pair<unsigned char const*, std::uint64_t> {
    auto it = cache.find(s.key);
    if (it == cache.end()) {
      std::string const entry = prefix + "/data/" + s.key;
      zip_entry const* e = zip.find(entry);
      if (!e) f.fail("storage '", s.key, "' is missing: the archive has no entry '", entry, "'");
      it = cache.emplace(s.key, zip.read(*e)).first;
    }
    return {it->second.data(), it->second.size()};
  };
  return pth_materialize(m, sd, f, swap, record, [&](std::string const& key) { cache.erase(key); });
}

// Legacy stream: pickles of the magic number, the protocol version (1001) and sys_info, then
// the object, then the sorted list of storage keys; then per key an int64 element count and the
// raw little-endian elements.
inline io::state_dict pth_load_legacy(io_file& f) {
  auto const bytes = f.read(0, f.size(), "checkpoint");
  std::size_t pos = 0;
  auto next = [&](pickle_machine& m) {
    std::size_t used = 0;
    pickle_value v = m.run(bytes.data() + pos, bytes.size() - pos, &used);
    pos += used;
    return v;
  };
  std::string const where = concat("load_pth: '", f.path(), "': legacy format");
  pickle_machine header(where);
  pickle_value const magic = next(header);
  static unsigned char const expected[] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
  if (magic.kind != pickle_kind::big_integer ||
      header.text(magic) != std::string(reinterpret_cast<char const*>(expected), sizeof expected))
    f.fail("not a PyTorch checkpoint: the legacy format's magic number is missing");
  pickle_value const version = next(header);
  if (version.kind != pickle_kind::integer || version.integer != 1001)
    f.fail("legacy format protocol version ", version.integer, " is not supported (expected 1001)");
  pickle_value const sys_info = next(header);
  if (pickle_value const* le = header.lookup(sys_info, "little_endian"))
    if (le->kind == pickle_kind::boolean && le->integer == 0)
      f.fail("the checkpoint was saved on a big-endian machine in the legacy format, which is not supported");

  pickle_machine m(where);
  pickle_value const root = next(m);
  pickle_machine keys_machine(where + " (storage keys)");
  pickle_value const keys = next(keys_machine);
  if (keys.kind != pickle_kind::list) f.fail("legacy format: the storage key list is missing");

  std::unordered_map<std::string, io_dtype> dtypes;
  for (auto const& s : m.storages()) dtypes.emplace(s.key, s.dtype);
  std::unordered_map<std::string, std::pair<std::size_t, std::uint64_t>> records;  // key -> (offset, bytes)
  for (auto const& k : keys_machine.container(keys).items) {
    if (k.kind != pickle_kind::string) f.fail("legacy format: a storage key is not a string");
    std::string const& key = keys_machine.text(k);
    auto dt = dtypes.find(key);
    if (dt == dtypes.end()) f.fail("legacy format: storage '", key, "' is listed but never used");
    if (bytes.size() - pos < 8) f.fail("truncated: storage '", key, "' is missing at byte ", pos);
    std::uint64_t const numel = io_load_le<std::uint64_t>(bytes.data() + pos);
    std::uint64_t size = 0;
    if (!io_checked_mul(numel, io_dtype_size(dt->second), size) || size > bytes.size() - pos - 8)
      f.fail("truncated: storage '", key, "' at byte ", pos, " declares ", numel, " ", io_dtype_name(dt->second),
             " elements but only ", bytes.size() - pos - 8, " bytes remain");
    records[key] = {pos + 8, size};
    pos += 8 + static_cast<std::size_t>(size);
  }

  pickle_value const sd = pth_select_state_dict(m, root, f);
  auto record = [&](pickle_storage const& s) -> std::pair<unsigned char const*, std::uint64_t> {
    auto it = records.find(s.key);
    if (it == records.end()) f.fail("storage '", s.key, "' is missing from the file");
    return {bytes.data() + it->second.first, it->second.second};
  };
  return pth_materialize(m, sd, f, !io_host_is_little_endian(), record, [](std::string const&) {});
}

}  // namespace arcnet::detail

namespace arcnet::io {

inline state_dict load_pth(std::string const& path) {
  detail::io_file f(path, "load_pth");
  unsigned char head[4] = {0, 0, 0, 0};
  f.read(0, head, f.size() < 4 ? f.size() : 4, "file header");
  if (f.size() >= 4 && head[0] == 'P' && head[1] == 'K') return detail::pth_load_zip(f);
  if (f.size() >= 2 && head[0] == 0x80 && head[1] >= 2) return detail::pth_load_legacy(f);
  if (f.size() >= 262) {
    char ustar[5];
    f.read(257, ustar, 5, "file header");
    if (std::string(ustar, 5) == "ustar") f.fail("the tar format of torch < 0.4 is not supported; re-save the file");
  }
  f.fail("not a PyTorch checkpoint: neither a ZIP archive (torch.save) nor a legacy torch.save stream (",
         f.size(), " bytes)");
}

}  // namespace arcnet::io
