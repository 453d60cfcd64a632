#include "test_util.hpp"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include <arcnet/io/pth.hpp>

#include "fixture.hpp"

using namespace arcnet;

namespace pth_test {

namespace fs = std::filesystem;

/// A string literal with its embedded NULs.
template <std::size_t N>
std::string lit(char const (&s)[N]) {
  return std::string(s, N - 1);
}
inline std::string data_path(std::string const& file) { return std::string(ARCNET_TEST_DATA_DIR) + "/" + file; }
using arcnet::testing::read_bytes;
using arcnet::testing::scratch_dir;
using arcnet::testing::write_bytes;

/// The names "<file>:<key>" of pth_expected.txt, grouped by file.
inline std::map<std::string, std::set<std::string>> expected_keys() {
  std::ifstream in(data_path("pth_expected.txt"));
  std::map<std::string, std::set<std::string>> keys;
  std::string header, values;
  while (std::getline(in, header) && std::getline(in, values)) {
    std::string name = header.substr(0, header.find(' '));
    auto colon = name.find(':');
    keys[name.substr(0, colon)].insert(name.substr(colon + 1));
  }
  return keys;
}

/// Loads tests/data/<file> and requires its keys and every value to match pth_expected.txt exactly.
inline io::state_dict require_matches_fixture(std::string const& file) {
  static testing::fixture const expected("pth_expected.txt");
  static auto const keys = expected_keys();
  INFO(file);
  auto sd = io::load_pth(data_path(file));
  std::set<std::string> got;
  for (auto const& [k, v] : sd) got.insert(k);
  REQUIRE(keys.count(file) == 1);
  CHECK(got == keys.at(file));
  for (auto const& [k, t] : sd) {
    INFO(k);
    auto const& e = expected[file + ":" + k];
    REQUIRE(t.shape() == e.shape());
    int mismatches = 0;
    for (index_t i = 0; i < t.numel(); ++i) mismatches += static_cast<double>(t[i]) != e[i];
    CHECK(mismatches == 0);
  }
  return sd;
}

// ---- building pickles and ZIP archives by hand ----------------------------------------------
struct pickle_writer {
  std::string out = lit("\x80\x02");
  pickle_writer& op(char c) { out += c; return *this; }
  pickle_writer& raw(std::string const& s) { out += s; return *this; }
  pickle_writer& str(std::string const& s) {
    out += 'X';
    detail::io_store_le<std::uint32_t>(out, static_cast<std::uint32_t>(s.size()));
    out += s;
    return *this;
  }
  pickle_writer& integer(std::int64_t v) {  // LONG1 with 8 bytes: any int64
    out += '\x8a';
    out += '\x08';
    detail::io_store_le<std::uint64_t>(out, static_cast<std::uint64_t>(v));
    return *this;
  }
  pickle_writer& global(std::string const& module, std::string const& name) {
    out += 'c' + module + '\n' + name + '\n';
    return *this;
  }
  pickle_writer& ints(std::vector<std::int64_t> const& v) {
    op('(');
    for (auto x : v) integer(x);
    return op('t');
  }
  /// _rebuild_tensor_v2(('storage', torch.<type>, key, 'cpu', numel), offset, sizes, strides, False, OrderedDict())
  pickle_writer& tensor(std::string const& key, std::int64_t numel, std::int64_t offset, std::vector<std::int64_t> sizes,
                        std::vector<std::int64_t> strides, std::string const& type = "FloatStorage") {
    global("torch._utils", "_rebuild_tensor_v2").op('(');
    op('(').str("storage").global("torch", type).str(key).str("cpu").integer(numel).op('t').op('Q');
    integer(offset).ints(sizes).ints(strides).op('\x89').global("collections", "OrderedDict").op(')').op('R');
    return op('t').op('R');
  }
  std::string done() { return out + "."; }
};

/// A one-tensor state dict {"w": tensor} as a pickle.
inline std::string one_tensor_pickle(std::string const& key, std::int64_t numel, std::int64_t offset,
                                     std::vector<std::int64_t> sizes, std::vector<std::int64_t> strides) {
  pickle_writer p;
  p.op('}').str("w").tensor(key, numel, offset, std::move(sizes), std::move(strides)).op('s');
  return p.done();
}

struct zip_member {
  std::string name, data;
  std::uint16_t method = 0;
};
/// A ZIP archive of stored members; zip64 writes every size and offset through ZIP64 fields.
inline std::string make_zip(std::vector<zip_member> const& members, bool zip64 = false) {
  using detail::io_store_le;
  std::string out, central;
  for (auto const& m : members) {
    auto const crc = detail::io_crc32(reinterpret_cast<unsigned char const*>(m.data.data()), m.data.size());
    std::uint64_t const offset = out.size();
    std::string extra;
    if (zip64) {
      io_store_le<std::uint16_t>(extra, 1);
      io_store_le<std::uint16_t>(extra, 16);
      io_store_le<std::uint64_t>(extra, m.data.size());
      io_store_le<std::uint64_t>(extra, m.data.size());
    }
    io_store_le<std::uint32_t>(out, 0x04034b50u);
    io_store_le<std::uint16_t>(out, zip64 ? 45 : 20);
    io_store_le<std::uint16_t>(out, 0);         // flags
    io_store_le<std::uint16_t>(out, m.method);  // method
    io_store_le<std::uint32_t>(out, 0);         // time, date
    io_store_le<std::uint32_t>(out, crc);
    io_store_le<std::uint32_t>(out, zip64 ? 0xffffffffu : static_cast<std::uint32_t>(m.data.size()));
    io_store_le<std::uint32_t>(out, zip64 ? 0xffffffffu : static_cast<std::uint32_t>(m.data.size()));
    io_store_le<std::uint16_t>(out, static_cast<std::uint16_t>(m.name.size()));
    io_store_le<std::uint16_t>(out, static_cast<std::uint16_t>(extra.size()));
    out += m.name + extra + m.data;

    std::string cextra;
    if (zip64) {
      io_store_le<std::uint16_t>(cextra, 0x7075);  // an unrelated extra field first
      io_store_le<std::uint16_t>(cextra, 3);
      cextra += "abc";
      io_store_le<std::uint16_t>(cextra, 1);
      io_store_le<std::uint16_t>(cextra, 24);
      io_store_le<std::uint64_t>(cextra, m.data.size());
      io_store_le<std::uint64_t>(cextra, m.data.size());
      io_store_le<std::uint64_t>(cextra, offset);
    }
    io_store_le<std::uint32_t>(central, 0x02014b50u);
    io_store_le<std::uint16_t>(central, 45);
    io_store_le<std::uint16_t>(central, zip64 ? 45 : 20);
    io_store_le<std::uint16_t>(central, 0);
    io_store_le<std::uint16_t>(central, m.method);
    io_store_le<std::uint32_t>(central, 0);
    io_store_le<std::uint32_t>(central, crc);
    io_store_le<std::uint32_t>(central, zip64 ? 0xffffffffu : static_cast<std::uint32_t>(m.data.size()));
    io_store_le<std::uint32_t>(central, zip64 ? 0xffffffffu : static_cast<std::uint32_t>(m.data.size()));
    io_store_le<std::uint16_t>(central, static_cast<std::uint16_t>(m.name.size()));
    io_store_le<std::uint16_t>(central, static_cast<std::uint16_t>(cextra.size()));
    io_store_le<std::uint16_t>(central, 0);  // comment
    io_store_le<std::uint16_t>(central, 0);  // disk
    io_store_le<std::uint16_t>(central, 0);  // internal attributes
    io_store_le<std::uint32_t>(central, 0);  // external attributes
    io_store_le<std::uint32_t>(central, zip64 ? 0xffffffffu : static_cast<std::uint32_t>(offset));
    central += m.name + cextra;
  }
  std::uint64_t const dir_offset = out.size(), n = members.size();
  out += central;
  if (zip64) {
    std::uint64_t const rec = out.size();
    io_store_le<std::uint32_t>(out, 0x06064b50u);
    io_store_le<std::uint64_t>(out, 44);
    io_store_le<std::uint16_t>(out, 45);
    io_store_le<std::uint16_t>(out, 45);
    io_store_le<std::uint32_t>(out, 0);
    io_store_le<std::uint32_t>(out, 0);
    io_store_le<std::uint64_t>(out, n);
    io_store_le<std::uint64_t>(out, n);
    io_store_le<std::uint64_t>(out, central.size());
    io_store_le<std::uint64_t>(out, dir_offset);
    io_store_le<std::uint32_t>(out, 0x07064b50u);
    io_store_le<std::uint32_t>(out, 0);
    io_store_le<std::uint64_t>(out, rec);
    io_store_le<std::uint32_t>(out, 1);
  }
  io_store_le<std::uint32_t>(out, 0x06054b50u);
  io_store_le<std::uint32_t>(out, 0);  // disk numbers
  io_store_le<std::uint16_t>(out, zip64 ? 0xffff : static_cast<std::uint16_t>(n));
  io_store_le<std::uint16_t>(out, zip64 ? 0xffff : static_cast<std::uint16_t>(n));
  io_store_le<std::uint32_t>(out, zip64 ? 0xffffffffu : static_cast<std::uint32_t>(central.size()));
  io_store_le<std::uint32_t>(out, zip64 ? 0xffffffffu : static_cast<std::uint32_t>(dir_offset));
  io_store_le<std::uint16_t>(out, 0);
  return out;
}

inline std::string floats_le(std::vector<float> const& v) {
  std::string s(v.size() * 4, '\0');
  std::memcpy(s.data(), v.data(), s.size());  // little-endian host, as the tests assume
  return s;
}

}  // namespace pth_test

TEST_CASE("pth: a plain state dict (conv OIHW, batch norm, linear) loads exactly", "[io]") {
  auto sd = pth_test::require_matches_fixture("pth_plain.pth");
  CHECK(sd.at("conv.weight").shape() == shape{2, 3, 3, 3});
  CHECK(sd.at("fc.weight").shape() == shape{3, 4});
  CHECK(sd.at("bn.num_batches_tracked").rank() == 0);
  CHECK(sd.at("bn.num_batches_tracked").item() == 7.0f);  // int64 converted
}

TEST_CASE("pth: the state dict is found under state_dict (mmpretrain) or model, in both formats", "[io]") {
  auto sd = pth_test::require_matches_fixture("pth_mmpretrain.pth");
  CHECK(sd.count("backbone.conv.weight") == 1);
  CHECK(sd.count("head.weight") == 1);
  CHECK(sd.count("meta") == 0);
  auto legacy = pth_test::require_matches_fixture("pth_legacy.pth");  // _use_new_zipfile_serialization=False
  REQUIRE(legacy.size() == sd.size());
  for (auto const& [k, t] : sd) CHECK(legacy.at(k).to_vector() == t.to_vector());
  pth_test::require_matches_fixture("pth_model_key.pth");
}

TEST_CASE("pth: float16 and bfloat16 storages convert exactly", "[io]") {
  auto h = pth_test::require_matches_fixture("pth_float16.pth");
  CHECK(h.at("special")[4] == 65504.0f);
  CHECK(h.at("special")[6] == std::ldexp(1.0f, -24));  // 6e-8 rounds to the smallest subnormal
  auto b = pth_test::require_matches_fixture("pth_bfloat16.pth");
  CHECK(b.at("special")[2] == 1.0f);
}

TEST_CASE("pth: non-contiguous views and views sharing one storage are gathered", "[io]") {
  auto nc = pth_test::require_matches_fixture("pth_noncontig.pth");
  CHECK(nc.at("transposed").shape() == shape{5, 3});
  CHECK(nc.at("sliced").shape() == shape{2, 3});
  CHECK(nc.at("channels_last").shape() == shape{2, 3, 3, 3});
  auto sh = pth_test::require_matches_fixture("pth_shared.pth");
  CHECK(sh.at("row").to_vector() == std::vector<float>{4, 5, 6, 7});
  CHECK(sh.at("col").to_vector() == std::vector<float>{2, 6, 10});
  CHECK(sh.at("view").shape() == shape{4, 3});
  CHECK(!sh.at("row").shares_storage_with(sh.at("base")));  // loaded tensors are independent
}

TEST_CASE("pth: parameters, integer, bool, 0-d and empty tensors load - other entries are skipped", "[io]") {
  auto sd = pth_test::require_matches_fixture("pth_mixed.pth");
  CHECK(sd.count("step") == 0);
  CHECK(sd.at("u8").to_vector() == std::vector<float>{0, 255});
  CHECK(sd.at("i8").to_vector() == std::vector<float>{-128, 127});
  CHECK(sd.at("bool").to_vector() == std::vector<float>{1, 0, 1});
  CHECK(sd.at("empty").shape() == shape{0, 3});
  CHECK(sd.at("scalar").item() == 3.5f);
}

TEST_CASE("pth: hand-built archives: ZIP64 fields, big-endian byte order, storage offsets", "[io]") {
  using namespace pth_test;
  auto dir = scratch_dir("built");
  std::string const path = (dir / "x.pth").string();
  // w = storage[1:7] viewed as (2, 3) with strides (1, 2): a transposed window.
  auto pkl = one_tensor_pickle("0", 8, 1, {2, 3}, {1, 2});
  auto data = floats_le({0, 1, 2, 3, 4, 5, 6, 7});
  std::vector<float> const want{1, 3, 5, 2, 4, 6};
  for (bool zip64 : {false, true}) {
    write_bytes(path, make_zip({{"arc/data.pkl", pkl}, {"arc/data/0", data}, {"arc/version", "3\n"}}, zip64));
    auto sd = io::load_pth(path);
    REQUIRE(sd.size() == 1);
    CHECK(sd.at("w").to_vector() == want);
  }
  std::string big = data;
  for (std::size_t i = 0; i < big.size(); i += 4) std::reverse(big.begin() + i, big.begin() + i + 4);
  write_bytes(path, make_zip({{"arc/data.pkl", pkl}, {"arc/data/0", big}, {"arc/byteorder", "big"}}));
  CHECK(io::load_pth(path).at("w").to_vector() == want);
  // collections.OrderedDict([("w", tensor), ("z", None)]) builds a dict too; None is skipped.
  pickle_writer p;
  p.global("collections", "OrderedDict").op(']').op('(').op('(').str("w").tensor("0", 8, 0, {2}, {2}).op('t');
  p.op('(').str("z").op('N').op('t').op('e').op('\x85').op('R');
  write_bytes(path, make_zip({{"arc/data.pkl", p.done()}, {"arc/data/0", data}}));
  auto od = io::load_pth(path);
  REQUIRE(od.size() == 1);
  CHECK(od.at("w").to_vector() == std::vector<float>{0, 2});
  write_bytes(path, make_zip({{"arc/data.pkl", pkl}, {"arc/data/0", data}, {"arc/byteorder", "middle"}}));
  CHECK_THROWS_WITH(io::load_pth(path), Catch::Contains("expected 'little' or 'big'"));
}

TEST_CASE("pth: every truncated prefix of a checkpoint is an io_error naming the file", "[io]") {
  using namespace pth_test;
  auto dir = scratch_dir("truncated");
  std::string const cut = (dir / "cut.pth").string();
  for (std::string file : {"pth_plain.pth", "pth_legacy.pth"}) {
    INFO(file);
    auto const bytes = read_bytes(data_path(file));
    REQUIRE(bytes.size() > 1000);
    int not_thrown = 0, wrong = 0, tried = 0;
    for (std::size_t len = 0; len < bytes.size(); ++len) {
      write_bytes(cut, bytes.substr(0, len));
      ++tried;
      try {
        io::load_pth(cut);
        ++not_thrown;
      } catch (io_error const& e) {
        wrong += std::string(e.what()).find(cut) == std::string::npos;
      }
      fs::remove(cut);  // a new file each time: truncating one in place is slow on ext4
    }
    CHECK(tried == static_cast<int>(bytes.size()));
    CHECK(not_thrown == 0);
    CHECK(wrong == 0);
  }
}

TEST_CASE("pth: damaged archives are io_errors naming the problem", "[io]") {
  using namespace pth_test;
  auto dir = scratch_dir("damaged");
  std::string const path = (dir / "bad.pth").string();
  auto expect_error = [&](std::string const& bytes, std::string const& problem) {
    write_bytes(path, bytes);
    INFO("expected: " << problem);
    CHECK_THROWS_AS(io::load_pth(path), io_error);
    CHECK_THROWS_WITH(io::load_pth(path), Catch::Contains(path) && Catch::Contains(problem));
  };
  auto const pkl = one_tensor_pickle("0", 4, 0, {4}, {1});
  auto const data = floats_le({1, 2, 3, 4});

  // One byte of a storage flipped: the CRC catches it.
  {
    auto bytes = read_bytes(data_path("pth_plain.pth"));
    auto at = bytes.find("data/0");
    REQUIRE(at != std::string::npos);
    REQUIRE(io::load_pth(data_path("pth_plain.pth")).size() == 8);
    bytes[at + 200] ^= 0x40;  // inside the conv weight's data, past its local header
    expect_error(bytes, "is damaged: CRC-32");
  }
  expect_error(make_zip({{"arc/data.pkl", pkl, 8}, {"arc/data/0", data}}), "is compressed (method 8, deflate)");
  expect_error(make_zip({{"arc/data.pkl", pkl}}), "storage '0' is missing: the archive has no entry 'arc/data/0'");
  expect_error(make_zip({{"arc/data.pkl", pkl}, {"arc/data/0", floats_le({1, 2})}}),
               "storage '0' has 8 bytes, too few for 4 float32 elements");
  expect_error(make_zip({{"arc/data/0", data}}), "no '<archive>/data.pkl' entry");
  expect_error(make_zip({{"a/data.pkl", pkl}, {"b/data.pkl", pkl}}), "several");
  expect_error(make_zip({{"arc/data.pkl", pkl}, {"arc/data.pkl", pkl}}), "appears twice");
  expect_error(make_zip({}), "no '<archive>/data.pkl' entry");
  // Sizes, strides and offsets must stay inside the storage.
  auto tensor_error = [&](std::int64_t offset, std::vector<std::int64_t> sizes, std::vector<std::int64_t> strides,
                          std::string const& problem) {
    expect_error(make_zip({{"arc/data.pkl", one_tensor_pickle("0", 4, offset, sizes, strides)}, {"arc/data/0", data}}),
                 problem);
  };
  tensor_error(0, {5}, {1}, "reaches element 4 but its storage '0' holds only 4 float32 elements");
  tensor_error(3, {2}, {1}, "at offset 3 reaches element 4");
  tensor_error(1 << 30, {1}, {1}, "reaches element 1073741824");
  tensor_error(0, {2, 2}, {3, 1}, "size (2, 2) stride (3, 1) at offset 0 reaches element 4");
  tensor_error(0, {4, 4}, {0, 1}, "expanded views are not supported");
  tensor_error(0, {std::int64_t(1) << 40, std::int64_t(1) << 40}, {1, 1}, "overflows");
  tensor_error(0, {2, 3}, {1, 1, 1}, "tensor size has 2 dimensions but stride has 3");
  tensor_error(0, {-2}, {1}, "tensor size holds a negative int");
  tensor_error(-1, {2}, {1}, "negative storage offset -1");
  // Not a checkpoint at all.
  expect_error("hello, world", "not a PyTorch checkpoint");
  expect_error("", "not a PyTorch checkpoint");
  expect_error(lit("PK\x03\x04"), "no end-of-central-directory record");
  CHECK_THROWS_WITH(io::load_pth((dir / "missing.pth").string()), Catch::Contains("missing.pth"));
  CHECK_THROWS_WITH(io::load_pth(dir.string()), Catch::Contains("it is a directory"));
#if defined(__linux__)
  CHECK_THROWS_WITH(io::load_pth("/dev/null"), Catch::Contains("not a regular file"));  // nor a FIFO that blocks
#endif

}

TEST_CASE("pth: pickles that would run code or are malformed are io_errors - nothing executes", "[io]") {
  using namespace pth_test;
  auto dir = scratch_dir("pickles");
  std::string const path = (dir / "evil.pth").string();
  auto const data = floats_le({1, 2, 3, 4});
  auto expect_error = [&](std::string const& pickle, std::string const& problem) {
    write_bytes(path, make_zip({{"archive/data.pkl", pickle}, {"archive/data/0", data}}));
    INFO("expected: " << problem);
    CHECK_THROWS_AS(io::load_pth(path), io_error);
    CHECK_THROWS_WITH(io::load_pth(path), Catch::Contains(path) && Catch::Contains("archive/data.pkl") &&
                                              Catch::Contains(problem));
  };
  auto bytes = [](char const* s, std::size_t n) { return std::string(s, n); };
  // pickle.dumps({'w': Evil()}) where Evil.__reduce__ returns (os.system, ('echo',)), protocols 2 and 4.
  static char const evil2[] =
      "\x80\x02\x7d\x71\x00\x58\x01\x00\x00\x00\x77\x71\x01\x63\x70\x6f\x73\x69\x78\x0a\x73\x79\x73\x74\x65\x6d\x0a"
      "\x71\x02\x58\x04\x00\x00\x00\x65\x63\x68\x6f\x71\x03\x85\x71\x04\x52\x71\x05\x73\x2e";
  static char const evil4[] =
      "\x80\x04\x95\x26\x00\x00\x00\x00\x00\x00\x00\x7d\x94\x8c\x01\x77\x94\x8c\x05\x70\x6f\x73\x69\x78\x94\x8c\x06"
      "\x73\x79\x73\x74\x65\x6d\x94\x93\x94\x8c\x04\x65\x63\x68\x6f\x94\x85\x94\x52\x94\x73\x2e";
  expect_error(bytes(evil2, sizeof evil2 - 1), "global 'posix.system' is not allowed in a checkpoint");
  expect_error(bytes(evil4, sizeof evil4 - 1), "global 'posix.system' is not allowed in a checkpoint");
  expect_error(pickle_writer().global("os", "system").done(), "global 'os.system' is not allowed");
  expect_error(pickle_writer().global("torch.storage", "_load_from_bytes").done(),
               "global 'torch.storage._load_from_bytes' is not allowed");
  expect_error(pickle_writer().global("builtins", "set").done(), "global 'builtins.set' is not allowed");
  // Allowed globals used the wrong way.
  expect_error(pickle_writer().global("torch", "FloatStorage").op(')').op('R').done(), "cannot be called");
  expect_error(pickle_writer().op(')').op(')').op('R').done(), "calls a tuple, which is not callable");
  expect_error(pickle_writer().op('}').str("w").str("storage").op('Q').op('s').done(), "persistent id");
  // Malformed pickles.
  expect_error(lit("\x80\x02\xff."), "unknown opcode 0xff at byte 2");
  expect_error(lit("\x80\x04\x8f."), "opcode 0x8f (EMPTY_SET) at byte 2 is not supported");
  expect_error(lit("\x80\x02}(K\x01K\x02i."), "opcode 0x69 (INST)");
  expect_error(lit("\x80\x06}."), "pickle protocol 6");
  expect_error(lit("\x80\x02s."), "stack underflow: 0x73 (SETITEM) at byte 2");
  expect_error(lit("\x80\x02}(s."), "stack underflow");  // SETITEM cannot reach below the MARK
  expect_error(lit("\x80\x02t."), "0x74 (TUPLE) at byte 2 finds no MARK");
  expect_error(lit("\x80\x02."), "stack underflow: 0x2e (STOP)");
  expect_error(lit("\x80\x02h\x05."), "memo index 5 is out of range");
  expect_error(lit("\x80\x02}q\x01j\x00\x00\x00\x10."), "memo index 268435456 is out of range");
  expect_error(lit("\x80\x02X\xff\x00\x00\x00" "ab."), "truncated: 0x58 (BINUNICODE) at byte 2 needs 255 bytes");
  expect_error(lit("\x80\x04\x8d\x00\x00\x00\x00\x00\x00\x00\x40" "ab"),
               "needs 4611686018427387904 bytes");  // BINUNICODE8 of 2^62 bytes: no allocation
  expect_error(lit("\x80\x02}"), "without a STOP opcode");
  expect_error(lit("\x80\x02" "ctorch\nFloat"), "has no end of line");
  expect_error(lit("\x80\x02]K\x01K\x02s."), "0x73 (SETITEM) at byte 7 needs a dict, got a list");
  expect_error(lit("\x80\x02}K\x01\x61."), "0x61 (APPEND) at byte 5 needs a list, got a dict");
  expect_error(lit("\x80\x02}(K\x01u."), "odd number of items");
  write_bytes(path, make_zip({{"archive/data.pkl", lit("\x80\x02K\x05.")}}));
  CHECK_THROWS_WITH(io::load_pth(path), Catch::Contains(path) && Catch::Contains("top object has type int, expected a dict"));
  // A dict that keeps growing through the memo stays cheap and loads (many keys, one value).
  {
    pickle_writer p;
    p.op('}').op('(');
    for (int i = 0; i < 2000; ++i) p.str("k" + std::to_string(i)).op('N');
    p.op('u');
    write_bytes(path, make_zip({{"archive/data.pkl", p.done()}}));
    CHECK(io::load_pth(path).empty());
  }
}

TEST_CASE("pth: randomly corrupted checkpoints load or throw io_error, never anything else", "[io]") {
  using namespace pth_test;
  auto dir = scratch_dir("fuzz");
  std::string const path = (dir / "fuzz.pth").string();
  std::uint64_t state = 0x9e3779b97f4a7c15ull;
  auto next = [&] {  // xorshift64*
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return state * 0x2545f4914f6cdd1dull;
  };
  for (std::string file : {"pth_legacy.pth", "pth_mmpretrain.pth"}) {
    auto const original = read_bytes(data_path(file));
    int loaded = 0, rejected = 0, other = 0;
    for (int trial = 0; trial < 1500; ++trial) {
      std::string bytes = original;
      int const flips = 1 + static_cast<int>(next() % 4);
      for (int k = 0; k < flips; ++k) bytes[next() % bytes.size()] = static_cast<char>(next() & 0xff);
      write_bytes(path, bytes);
      try {
        io::load_pth(path);
        ++loaded;
      } catch (io_error const&) {
        ++rejected;
      } catch (...) {
        ++other;
      }
      fs::remove(path);
    }
    INFO(file << ": " << loaded << " loaded, " << rejected << " rejected");
    CHECK(other == 0);
    CHECK(rejected > 0);
  }
}
