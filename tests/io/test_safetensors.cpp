#include "test_util.hpp"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>

#include <arcnet/io/safetensors.hpp>

#include "fixture.hpp"

#if defined(__linux__)
#include <csignal>
#include <sys/resource.h>
#include <unistd.h>
#endif

using namespace arcnet;

namespace safetensors_test {

namespace fs = std::filesystem;

using arcnet::testing::read_bytes;
using arcnet::testing::scratch_dir;
using arcnet::testing::write_bytes;
/// A safetensors file from a header text and a data section.
inline std::string make_file(std::string const& header, std::string const& data) {
  std::string out;
  detail::io_store_le<std::uint64_t>(out, header.size());
  return out + header + data;
}
inline float bits_to_float(std::uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}
inline std::uint32_t float_bits(float f) {
  std::uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}
/// Values shared with tests/fixtures/check_safetensors.py (expected_arcnet_tensors).
inline tensor<float, cpu> interop_values(shape s, double scale) {
  auto t = tensor<float, cpu>::uninitialized(s);
  for (index_t i = 0; i < t.numel(); ++i) t[i] = static_cast<float>((static_cast<double>(i) * 0.37 - 3.0) * scale);
  return t;
}
inline io::state_dict sample_state_dict() {
  io::state_dict sd;
  sd["backbone.conv1.weight"] = interop_values(shape{4, 3, 3, 3}, 1.0);
  sd["backbone.bn1.running_var"] = interop_values(shape{4}, 0.5);
  sd["head.weight"] = interop_values(shape{5, 2}, -2.0);
  sd["scalar"] = interop_values(shape{}, 7.0);
  sd["empty"] = tensor<float, cpu>(shape{0, 3});
  return sd;
}
inline bool bit_equal(tensor<float, cpu> const& a, tensor<float, cpu> const& b) {
  return a.shape() == b.shape() &&
         (a.numel() == 0 || std::memcmp(a.data(), b.data(), static_cast<std::size_t>(a.numel()) * 4) == 0);
}
inline std::set<std::string> listing(fs::path const& dir) {
  std::set<std::string> names;
  for (auto const& e : fs::directory_iterator(dir)) names.insert(e.path().filename().string());
  return names;
}

}  // namespace safetensors_test

TEST_CASE("io detail: half and bfloat16 conversions are exact and round to nearest even", "[io]") {
  using namespace detail;
  CHECK(io_half_to_float(0x3c00) == 1.0f);
  CHECK(io_half_to_float(0xc000) == -2.0f);
  CHECK(io_half_to_float(0x7bff) == 65504.0f);
  CHECK(io_half_to_float(0x0001) == std::ldexp(1.0f, -24));  // smallest subnormal
  CHECK(io_half_to_float(0x03ff) == std::ldexp(1023.0f, -24));
  CHECK(std::signbit(io_half_to_float(0x8000)));
  CHECK(std::isinf(io_half_to_float(0x7c00)));
  CHECK(std::isnan(io_half_to_float(0x7e00)));
  // Every finite half survives half -> float -> half; NaNs stay NaN.
  int mismatches = 0;
  for (std::uint32_t h = 0; h < 65536; ++h) {
    float f = io_half_to_float(static_cast<std::uint16_t>(h));
    if (std::isnan(f)) mismatches += !std::isnan(io_half_to_float(io_float_to_half(f)));
    else mismatches += io_float_to_half(f) != h;
  }
  CHECK(mismatches == 0);
  // Round to nearest even: 1 + 2^-11 is halfway between 1 and the next half, 1 + 2^-10.
  CHECK(io_float_to_half(1.0f + std::ldexp(1.0f, -11)) == 0x3c00);
  CHECK(io_float_to_half(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3c02);
  CHECK(io_float_to_half(65519.0f) == 0x7bff);
  CHECK(io_float_to_half(65520.0f) == 0x7c00);
  CHECK(io_float_to_half(std::ldexp(1.0f, -25)) == 0x0000);                          // ties to even (zero)
  CHECK(io_float_to_half(std::ldexp(3.0f, -25)) == 0x0002);                          // 1.5 ulp -> 2
  CHECK(bfloat16_to_float(0x3f80) == 1.0f);
  CHECK(bfloat16_to_float(0x0001) == safetensors_test::bits_to_float(0x00010000u));
  CHECK(float_to_bfloat16(safetensors_test::bits_to_float(0x3f808000u)) == 0x3f80);  // tie -> even
  CHECK(float_to_bfloat16(safetensors_test::bits_to_float(0x3f818000u)) == 0x3f82);
  CHECK(float_to_bfloat16(safetensors_test::bits_to_float(0x3f808001u)) == 0x3f81);
  CHECK(std::isnan(bfloat16_to_float(float_to_bfloat16(std::numeric_limits<float>::quiet_NaN()))));
  CHECK(detail::io_crc32(reinterpret_cast<unsigned char const*>("123456789"), 9) == 0xcbf43926u);
}

TEST_CASE("safetensors: save then load is bit-exact, with metadata", "[io]") {
  using namespace safetensors_test;
  auto dir = scratch_dir("roundtrip");
  auto sd = sample_state_dict();
  // Values that a text or double round trip could change: NaN payloads, -0, subnormals, inf.
  sd["special"] = tensor<float, cpu>::from_vector(
      shape{7}, {bits_to_float(0x7fc01234u), bits_to_float(0xffa00001u), -0.0f, bits_to_float(0x00000001u),
                 std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::max(), 1.0f / 3.0f});
  std::string const path = (dir / "model.safetensors").string();
  io::save_safetensors(path, sd, {{"format", "pt"}, {"arcnet", "0.1"}});
  std::map<std::string, std::string> meta;
  auto back = io::load_safetensors(path, &meta);
  REQUIRE(back.size() == sd.size());
  for (auto const& [name, t] : sd) {
    INFO(name);
    REQUIRE(back.count(name) == 1);
    CHECK(bit_equal(back[name], t));
  }
  CHECK(meta == std::map<std::string, std::string>{{"format", "pt"}, {"arcnet", "0.1"}});
  CHECK(back["scalar"].rank() == 0);
  CHECK(back["empty"].shape() == shape{0, 3});

  // The file itself: 8-byte aligned data, F32 entries whose offsets tile the data in name order.
  auto bytes = read_bytes(path);
  auto n = detail::io_load_le<std::uint64_t>(reinterpret_cast<unsigned char const*>(bytes.data()));
  CHECK((8 + n) % 8 == 0);
  auto header = nlohmann::json::parse(bytes.substr(8, n));
  CHECK(header["__metadata__"]["format"] == "pt");
  std::uint64_t offset = 0;
  for (auto const& [name, t] : sd) {
    INFO(name);
    CHECK(header[name]["dtype"] == "F32");
    CHECK(header[name]["shape"].get<std::vector<index_t>>() == t.shape().dims());
    CHECK(header[name]["data_offsets"][0].get<std::uint64_t>() == offset);
    offset += static_cast<std::uint64_t>(t.numel()) * 4;
    CHECK(header[name]["data_offsets"][1].get<std::uint64_t>() == offset);
  }
  CHECK(bytes.size() == 8 + n + offset);

  // Without metadata there is no "__metadata__" entry; load clears the caller's map.
  io::save_safetensors(path, {{"w", interop_values(shape{2, 2}, 1.0)}});
  io::load_safetensors(path, &meta);
  CHECK(meta.empty());
  CHECK(read_bytes(path).find("__metadata__") == std::string::npos);
}

TEST_CASE("safetensors: reads a file written by Python, converting F16, BF16, F64 and I64 exactly", "[io]") {
  std::map<std::string, std::string> meta;
  auto sd = io::load_safetensors(std::string(ARCNET_TEST_DATA_DIR) + "/st_python.safetensors", &meta);
  testing::fixture expected("st_expected.txt");
  CHECK(meta == std::map<std::string, std::string>{{"format", "pt"}, {"origin", "python"}});
  REQUIRE(sd.size() == 7);
  for (auto const& [name, t] : sd) {
    INFO(name);
    REQUIRE(expected.has(name));
    auto const& e = expected[name];
    REQUIRE(t.shape() == e.shape());
    int mismatches = 0;
    for (index_t i = 0; i < t.numel(); ++i) mismatches += static_cast<double>(t[i]) != e[i];
    CHECK(mismatches == 0);
  }
  CHECK(sd["i64"].to_vector() == std::vector<float>{7.0f, -3.0f, 1048576.0f});
  CHECK(sd["f16"][4] == 65504.0f);
  CHECK(sd["empty"].shape() == shape{2, 0});
}

TEST_CASE("safetensors: every truncated prefix of a valid file is an io_error naming the file", "[io]") {
  using namespace safetensors_test;
  auto dir = scratch_dir("truncated");
  std::string const good = (dir / "good.safetensors").string(), cut = (dir / "cut.safetensors").string();
  io::state_dict sd;
  sd["a"] = interop_values(shape{3, 2}, 1.0);
  sd["b"] = interop_values(shape{5}, 2.0);
  io::save_safetensors(good, sd, {{"k", "v"}});
  auto const bytes = read_bytes(good);
  REQUIRE(io::load_safetensors(good).size() == 2);
  int not_thrown = 0, wrong = 0;
  for (std::size_t len = 0; len < bytes.size(); ++len) {
    write_bytes(cut, bytes.substr(0, len));
    try {
      io::load_safetensors(cut);
      ++not_thrown;
    } catch (io_error const& e) {
      wrong += std::string(e.what()).find(cut) == std::string::npos;
    }
    fs::remove(cut);  // a new file each time: truncating one in place is slow on ext4
  }
  CHECK(not_thrown == 0);
  CHECK(wrong == 0);
}

TEST_CASE("safetensors: malformed files are io_errors naming the file and the problem", "[io]") {
  using namespace safetensors_test;
  auto dir = scratch_dir("malformed");
  std::string const path = (dir / "bad.safetensors").string();
  auto expect_error = [&](std::string const& bytes, std::string const& problem) {
    write_bytes(path, bytes);
    INFO("expected: " << problem);
    CHECK_THROWS_AS(io::load_safetensors(path), io_error);
    CHECK_THROWS_WITH(io::load_safetensors(path), Catch::Contains(path) && Catch::Contains(problem));
  };
  std::string const f32x2 = R"({"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  std::string const data8(8, '\x01');

  // The header length.
  {
    std::string bytes;
    detail::io_store_le<std::uint64_t>(bytes, 1000);
    expect_error(bytes + "{}", "header length 1000 runs past the end of the file");
    bytes.clear();
    detail::io_store_le<std::uint64_t>(bytes, std::uint64_t(1) << 62);  // must not allocate 4 EiB
    expect_error(bytes + "{}", "header length 4611686018427387904 runs past the end");
    expect_error(std::string("\x01\x00\x00", 3), "too few for the 8-byte header length");
  }
  // The JSON.
  expect_error(make_file(R"({"a": )", ""), "not valid JSON");
  expect_error(make_file("{\"a\xff\": 1}", ""), "not valid JSON");
  expect_error(make_file(R"([1, 2])", ""), "the header is a JSON array, expected an object");
  expect_error(make_file(R"({"a":)" + f32x2 + R"(,"a":)" + f32x2 + "}", data8), "duplicate key 'a'");
  expect_error(make_file(R"({"a":{"dtype":"F32","dtype":"F16","shape":[2],"data_offsets":[0,8]}})", data8),
               "duplicate key 'dtype'");
  expect_error(make_file(R"({"a": 5})", ""), "tensor 'a': expected an object");
  expect_error(make_file(R"({"__metadata__": {"k": 1}})", ""), "'__metadata__' entry 'k' is a JSON number");
  expect_error(make_file(R"({"__metadata__": [1]})", ""), "'__metadata__' is a JSON array");
  // Entries.
  expect_error(make_file(R"({"a":{"dtype":"F32","data_offsets":[0,8]}})", data8), "tensor 'a': 'shape' is missing");
  expect_error(make_file(R"({"a":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}})", data8),
               "unknown or unsupported dtype 'Q4'");
  expect_error(make_file(R"({"a":{"dtype":3,"shape":[2],"data_offsets":[0,8]}})", data8), "'dtype' is a JSON number");
  expect_error(make_file(R"({"a":{"dtype":"F32","shape":[-1,2],"data_offsets":[0,8]}})", data8),
               "other than non-negative integers");
  expect_error(make_file(R"({"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", data8),
               "other than non-negative integers");
  expect_error(make_file(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", data8),
               "more elements than any file can hold");
  expect_error(make_file(R"({"a":{"dtype":"F32","shape":[2305843009213693952],"data_offsets":[0,8]}})", data8),
               "span 8 bytes but shape [2305843009213693952] of F32 needs 9223372036854775808");
  expect_error(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", std::string(4, '\0')),
               "data_offsets [0, 4] span 4 bytes but shape [2] of F32 needs 8");
  expect_error(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", std::string(4, '\0')),
               "data_offsets [0, 8] lie outside the data section of 4 bytes");
  expect_error(make_file(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", data8),
               "data_offsets [8, 0] lie outside");
  expect_error(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,-8]}})", data8),
               "is not [begin, end] with non-negative integers");
  expect_error(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", data8), "is not [begin, end]");
  // The tensors must tile the data section.
  expect_error(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                         R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                         std::string(12, '\0')),
               "tensors 'a' and 'b' overlap");
  expect_error(make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                         R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                         std::string(12, '\0')),
               "bytes [4, 8) of the data section belong to no tensor");
  expect_error(make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", data8),
               "4 bytes after the last tensor");
  // The file itself.
  CHECK_THROWS_WITH(io::load_safetensors((dir / "missing.safetensors").string()),
                    Catch::Contains("missing.safetensors") && Catch::Contains("no such file"));
  CHECK_THROWS_WITH(io::load_safetensors(dir.string()), Catch::Contains("it is a directory"));
  // Empty tensors may share an offset; a valid file loads.
  write_bytes(path, make_file(R"({"e":{"dtype":"F16","shape":[0,4],"data_offsets":[0,0]},"a":)" + f32x2 +
                                  R"(,"z":{"dtype":"BF16","shape":[3,0],"data_offsets":[8,8]}})",
                              data8));
  auto sd = io::load_safetensors(path);
  CHECK(sd.size() == 3);
  CHECK(sd["e"].shape() == shape{0, 4});
  CHECK(sd["a"][1] == bits_to_float(0x01010101u));
}

TEST_CASE("safetensors: save rejects names and tensors the format cannot hold, creating no file", "[io]") {
  using namespace safetensors_test;
  auto dir = scratch_dir("save_bad");
  std::string const path = (dir / "x.safetensors").string();
  auto w = interop_values(shape{2}, 1.0);
  CHECK_THROWS_WITH(io::save_safetensors(path, {{"__metadata__", w}}),
                    Catch::Contains(path) && Catch::Contains("cannot be called '__metadata__'"));
  CHECK_THROWS_WITH(io::save_safetensors(path, {{"w", tensor<float, cpu>()}}), Catch::Contains("'w' is undefined"));
  CHECK_THROWS_WITH(io::save_safetensors(path, {{"bad\xff", w}}), Catch::Contains("not valid UTF-8"));
  CHECK_THROWS_AS(io::save_safetensors(path, {{"w", w}}, {{"k", "\xc3"}}), io_error);
  CHECK(listing(dir).empty());
}

TEST_CASE("safetensors: save is atomic and never damages an existing file", "[io]") {
  using namespace safetensors_test;
  auto dir = scratch_dir("atomic");
  std::string const path = (dir / "ckpt.safetensors").string();
  auto sd = sample_state_dict();

  // A successful save leaves exactly the file, no temporary; a second save replaces it.
  io::save_safetensors(path, sd);
  CHECK(listing(dir) == std::set<std::string>{"ckpt.safetensors"});
  io::save_safetensors(path, {{"other", interop_values(shape{3}, 1.0)}});
  CHECK(listing(dir) == std::set<std::string>{"ckpt.safetensors"});
  CHECK(io::load_safetensors(path).count("other") == 1);
  auto const before = read_bytes(path);

  // A directory that does not exist.
  std::string const nowhere = (dir / "no_such_dir" / "x.safetensors").string();
  CHECK_THROWS_AS(io::save_safetensors(nowhere, sd), io_error);
  CHECK_THROWS_WITH(io::save_safetensors(nowhere, sd), Catch::Contains(nowhere) && Catch::Contains("not changed"));
  CHECK(!fs::exists(dir / "no_such_dir"));

  // The temporary file cannot be created (its name is taken by a directory): the existing file
  // stays byte-identical, and the directory that is not ours stays too.
  std::string const temp = path + ".tmp-" + std::to_string(static_cast<long>(::getpid()));
  fs::create_directory(temp);
  CHECK_THROWS_WITH(io::save_safetensors(path, sd), Catch::Contains("cannot create the temporary file"));
  CHECK(read_bytes(path) == before);
  CHECK(fs::is_directory(temp));
  fs::remove(temp);

#if defined(__linux__)
  // The write fails midway (the file size limit is hit): same guarantees, and no temporary left.
  {
    struct rlimit old_limit;
    REQUIRE(::getrlimit(RLIMIT_FSIZE, &old_limit) == 0);
    auto old_handler = std::signal(SIGXFSZ, SIG_IGN);  // report EFBIG instead of killing the process
    struct rlimit small = old_limit;
    small.rlim_cur = 4096;
    REQUIRE(::setrlimit(RLIMIT_FSIZE, &small) == 0);
    io::state_dict big;
    big["w"] = interop_values(shape{64, 1024}, 1.0);  // 256 KiB
    bool thrown = false;
    std::string message;
    try {
      io::save_safetensors(path, big);
    } catch (io_error const& e) {
      thrown = true;
      message = e.what();
    }
    ::setrlimit(RLIMIT_FSIZE, &old_limit);
    std::signal(SIGXFSZ, old_handler);
    CHECK(thrown);
    CHECK_THAT(message, Catch::Contains("cannot write") && Catch::Contains("not changed"));
    CHECK(read_bytes(path) == before);
    CHECK(listing(dir) == std::set<std::string>{"ckpt.safetensors"});
  }
#endif
}

// Hidden: run by tests/fixtures/check_safetensors.py (ctest io.safetensors_python_interop).
TEST_CASE("safetensors: write the interop file", "[.][interop]") {
  char const* dir = std::getenv("ARCNET_INTEROP_DIR");
  if (!dir) {
    WARN("ARCNET_INTEROP_DIR is not set: run by tests/fixtures/check_safetensors.py");
    return;
  }
  io::save_safetensors(std::string(dir) + "/arcnet.safetensors", safetensors_test::sample_state_dict(),
                       {{"format", "pt"}, {"arcnet", "interop"}});
}

TEST_CASE("safetensors: copy the interop file", "[.][interop]") {
  char const* dir = std::getenv("ARCNET_INTEROP_DIR");
  if (!dir) {
    WARN("ARCNET_INTEROP_DIR is not set: run by tests/fixtures/check_safetensors.py");
    return;
  }
  std::map<std::string, std::string> meta;
  auto sd = io::load_safetensors(std::string(dir) + "/python.safetensors", &meta);
  io::save_safetensors(std::string(dir) + "/copy.safetensors", sd, meta);
}

TEST_CASE("safetensors: randomly corrupted files load or throw io_error, never anything else", "[io]") {
  using namespace safetensors_test;
  auto dir = scratch_dir("fuzz");
  std::string const path = (dir / "fuzz.safetensors").string();
  io::save_safetensors(path, sample_state_dict(), {{"k", "v"}});
  auto const original = read_bytes(path);
  std::uint64_t state = 0x243f6a8885a308d3ull;
  auto next = [&] {  // xorshift64*
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return state * 0x2545f4914f6cdd1dull;
  };
  int loaded = 0, rejected = 0, other = 0;
  for (int trial = 0; trial < 1500; ++trial) {
    std::string bytes = original;
    int const flips = 1 + static_cast<int>(next() % 3);
    // Mostly the 8-byte length and the JSON header, where the parsing is.
    for (int k = 0; k < flips; ++k) bytes[next() % (trial % 4 == 0 ? bytes.size() : 8 + 300)] = static_cast<char>(next() & 0xff);
    fs::remove(path);
    write_bytes(path, bytes);
    try {
      io::load_safetensors(path);
      ++loaded;
    } catch (io_error const&) {
      ++rejected;
    } catch (...) {
      ++other;
    }
  }
  INFO(loaded << " loaded, " << rejected << " rejected");
  CHECK(other == 0);
  CHECK(rejected > 0);
}
