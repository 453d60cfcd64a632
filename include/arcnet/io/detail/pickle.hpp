#pragma once
// A pickle virtual machine for PyTorch checkpoints. It builds plain data (dicts, lists, tuples,
// numbers, strings) and descriptions of tensors and their storages, and resolves only an
// allow-list of globals: it executes nothing. Unknown opcodes and globals are io_errors.
// Memory stays proportional to the pickle: strings are interned, containers are shared by
// reference (as in Python), and every length is checked against the bytes that remain.
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "arcnet/core/error.hpp"
#include "arcnet/core/shape.hpp"
#include "arcnet/io/detail/binary.hpp"
#include "arcnet/io/detail/dtype.hpp"

namespace arcnet::detail {

enum class pickle_kind : std::uint8_t {
  none, boolean, integer, big_integer, floating, string, bytes, list, tuple, dict, global, storage, tensor
};

inline char const* pickle_kind_name(pickle_kind k) {
  switch (k) {
    case pickle_kind::none: return "None";
    case pickle_kind::boolean: return "bool";
    case pickle_kind::integer: return "int";
    case pickle_kind::big_integer: return "int (more than 64 bits)";
    case pickle_kind::floating: return "float";
    case pickle_kind::string: return "str";
    case pickle_kind::bytes: return "bytes";
    case pickle_kind::list: return "list";
    case pickle_kind::tuple: return "tuple";
    case pickle_kind::dict: return "dict";
    case pickle_kind::global: return "global";
    case pickle_kind::storage: return "storage";
    default: return "tensor";
  }
}

/// The name of a pickle opcode, or nullptr when the byte is no opcode.
inline char const* pickle_opcode_name(unsigned char op) {
  switch (op) {
    case '(': return "MARK"; case '.': return "STOP"; case '0': return "POP"; case '1': return "POP_MARK";
    case '2': return "DUP"; case 'F': return "FLOAT"; case 'I': return "INT"; case 'J': return "BININT";
    case 'K': return "BININT1"; case 'L': return "LONG"; case 'M': return "BININT2"; case 'N': return "NONE";
    case 'P': return "PERSID"; case 'Q': return "BINPERSID"; case 'R': return "REDUCE"; case 'S': return "STRING";
    case 'T': return "BINSTRING"; case 'U': return "SHORT_BINSTRING"; case 'V': return "UNICODE";
    case 'X': return "BINUNICODE"; case 'a': return "APPEND"; case 'b': return "BUILD"; case 'c': return "GLOBAL";
    case 'd': return "DICT"; case '}': return "EMPTY_DICT"; case 'e': return "APPENDS"; case 'g': return "GET";
    case 'h': return "BINGET"; case 'i': return "INST"; case 'j': return "LONG_BINGET"; case 'l': return "LIST";
    case ']': return "EMPTY_LIST"; case 'o': return "OBJ"; case 'p': return "PUT"; case 'q': return "BINPUT";
    case 'r': return "LONG_BINPUT"; case 's': return "SETITEM"; case 't': return "TUPLE"; case ')': return "EMPTY_TUPLE";
    case 'u': return "SETITEMS"; case 'G': return "BINFLOAT"; case 'B': return "BINBYTES"; case 'C': return "SHORT_BINBYTES";
    case 0x80: return "PROTO"; case 0x81: return "NEWOBJ"; case 0x82: return "EXT1"; case 0x83: return "EXT2";
    case 0x84: return "EXT4"; case 0x85: return "TUPLE1"; case 0x86: return "TUPLE2"; case 0x87: return "TUPLE3";
    case 0x88: return "NEWTRUE"; case 0x89: return "NEWFALSE"; case 0x8a: return "LONG1"; case 0x8b: return "LONG4";
    case 0x8c: return "SHORT_BINUNICODE"; case 0x8d: return "BINUNICODE8"; case 0x8e: return "BINBYTES8";
    case 0x8f: return "EMPTY_SET"; case 0x90: return "ADDITEMS"; case 0x91: return "FROZENSET"; case 0x92: return "NEWOBJ_EX";
    case 0x93: return "STACK_GLOBAL"; case 0x94: return "MEMOIZE"; case 0x95: return "FRAME"; case 0x96: return "BYTEARRAY8";
    case 0x97: return "NEXT_BUFFER"; case 0x98: return "READONLY_BUFFER";
    default: return nullptr;
  }
}

inline std::string pickle_opcode_str(unsigned char op) {
  static char const digits[] = "0123456789abcdef";
  std::string s = "0x";
  s += digits[op >> 4];
  s += digits[op & 15];
  char const* name = pickle_opcode_name(op);
  return name ? s + " (" + name + ")" : s;
}

/// A value on the pickle stack. Scalars are inline; strings, containers, globals, storages and
/// tensors live in the machine's tables (`ref`), so copies share them like Python references.
struct pickle_value {
  pickle_kind kind = pickle_kind::none;
  std::int64_t integer = 0;  // bool, int
  double floating = 0;
  std::size_t ref = 0;
};

enum class pickle_callable : std::uint8_t {
  ordered_dict, rebuild_tensor_v2, rebuild_tensor, rebuild_parameter, rebuild_parameter_with_state, storage_type
};

struct pickle_global {
  pickle_callable callable;
  io_dtype dtype;  // of a storage type
  std::string name;
};

/// A storage named by a persistent id: `numel` elements of `dtype` in the record `key`; a legacy
/// storage view covers [view_offset, view_offset + view_numel) of that record.
struct pickle_storage {
  std::string key;
  io_dtype dtype = io_dtype::f32;
  std::uint64_t numel = 0;
  std::uint64_t view_offset = 0, view_numel = 0;
};

/// A tensor: a strided view (in elements) of a storage.
struct pickle_tensor {
  std::size_t storage = 0;
  std::uint64_t offset = 0;
  std::vector<index_t> sizes, strides;
};

struct pickle_key {
  std::uint8_t tag = 0;
  std::int64_t payload = 0;
  friend bool operator==(pickle_key const& a, pickle_key const& b) { return a.tag == b.tag && a.payload == b.payload; }
};
struct pickle_key_hash {
  std::size_t operator()(pickle_key const& k) const {
    return std::hash<std::int64_t>()(k.payload) * 31u + k.tag;
  }
};

struct pickle_container {
  pickle_kind kind = pickle_kind::list;
  std::vector<pickle_value> items;                             // list, tuple
  std::vector<std::pair<pickle_value, pickle_value>> entries;  // dict, in insertion order
  std::unique_ptr<std::unordered_map<pickle_key, std::size_t, pickle_key_hash>> index;  // dicts past a few entries
};

class pickle_machine {
 public:
  /// `where` starts every error message, e.g. "load_pth: 'a.pth': archive/data.pkl".
  explicit pickle_machine(std::string where) : where_(std::move(where)) {}

  /// Runs the pickle at data[0, size) up to its STOP and returns the result; `consumed` receives
  /// the number of bytes read. Throws io_error on anything malformed or not allowed.
  pickle_value run(unsigned char const* data, std::size_t size, std::size_t* consumed = nullptr) {
    data_ = data;
    size_ = size;
    pos_ = 0;
    stack_.clear();
    marks_.clear();
    memo_.clear();
    for (;;) {
      if (pos_ >= size_) fail("truncated: the pickle ends at byte ", pos_, " without a STOP opcode");
      op_pos_ = pos_;
      op_ = data_[pos_++];
      if (op_ == '.') {
        pickle_value result = pop();
        if (consumed) *consumed = pos_;
        return result;
      }
      step();
    }
  }

  std::string const& text(pickle_value const& v) const { return strings_[v.ref]; }
  pickle_container const& container(pickle_value const& v) const { return containers_[v.ref]; }
  pickle_tensor const& tensor(pickle_value const& v) const { return tensors_[v.ref]; }
  pickle_storage const& storage(std::size_t i) const { return storages_[i]; }
  std::vector<pickle_storage> const& storages() const { return storages_; }
  bool is_string(pickle_value const& v, char const* s) const { return v.kind == pickle_kind::string && text(v) == s; }

  /// The value under the string key `key` in dict d, or nullptr.
  pickle_value const* lookup(pickle_value const& d, std::string const& key) const {
    if (d.kind != pickle_kind::dict) return nullptr;
    auto it = interned_.find(std::string_view(key));
    if (it == interned_.end()) return nullptr;
    pickle_key const k{1, static_cast<std::int64_t>(it->second)};
    for (auto const& e : containers_[d.ref].entries)
      if (key_of(e.first) == k) return &e.second;
    return nullptr;
  }

  /// Throws io_error "arcnet: <where>: <parts>".
  template <class... Parts>
  [[noreturn]] void fail(Parts const&... parts) const {
    raise<io_error>(where_, ": ", parts...);
  }

 private:
  void step() {
    switch (op_) {
      case 0x80: {  // PROTO
        unsigned v = *take(1);
        if (v > 5) fail("pickle protocol ", v, " is newer than 5 (byte ", op_pos_, ")");
        break;
      }
      case 0x95: take(8); break;  // FRAME: a length hint; data is read sequentially anyway
      case '(': marks_.push_back(stack_.size()); break;
      case '0':  // POP
        if (stack_.size() > frame_base()) stack_.pop_back();
        else pop_mark();
        break;
      case '1': pop_mark(); break;  // POP_MARK
      case '2': {                   // DUP
        pickle_value v = top();
        stack_.push_back(v);
        break;
      }
      case 'N': push(pickle_value{}); break;
      case 0x88: push(pickle_value{pickle_kind::boolean, 1, 0, 0}); break;
      case 0x89: push(pickle_value{pickle_kind::boolean, 0, 0, 0}); break;
      case 'J': push(integer(static_cast<std::int32_t>(io_load_le<std::uint32_t>(take(4))))); break;
      case 'K': push(integer(*take(1))); break;
      case 'M': push(integer(io_load_le<std::uint16_t>(take(2)))); break;
      case 0x8a: long_integer(*take(1)); break;  // LONG1
      case 0x8b: {                               // LONG4
        std::int32_t const n = static_cast<std::int32_t>(io_load_le<std::uint32_t>(take(4)));
        if (n < 0) fail("LONG4 at byte ", op_pos_, " has a negative length");
        long_integer(static_cast<std::uint64_t>(n));
        break;
      }
      case 'G': {  // BINFLOAT: big-endian IEEE double
        unsigned char const* p = take(8);
        std::uint64_t bits = 0;
        for (int i = 0; i < 8; ++i) bits = (bits << 8) | p[i];
        pickle_value v{pickle_kind::floating, 0, 0, 0};
        std::memcpy(&v.floating, &bits, 8);
        push(v);
        break;
      }
      case 'X': push_text(pickle_kind::string, io_load_le<std::uint32_t>(take(4))); break;
      case 0x8c: push_text(pickle_kind::string, *take(1)); break;
      case 0x8d: push_text(pickle_kind::string, io_load_le<std::uint64_t>(take(8))); break;
      case 'B': push_text(pickle_kind::bytes, io_load_le<std::uint32_t>(take(4))); break;
      case 'C': push_text(pickle_kind::bytes, *take(1)); break;
      case 0x8e: push_text(pickle_kind::bytes, io_load_le<std::uint64_t>(take(8))); break;
      case 'T': {  // BINSTRING (Python 2 str): kept as bytes
        std::int32_t const n = static_cast<std::int32_t>(io_load_le<std::uint32_t>(take(4)));
        if (n < 0) fail("BINSTRING at byte ", op_pos_, " has a negative length");
        push_text(pickle_kind::bytes, static_cast<std::uint64_t>(n));
        break;
      }
      case 'U': push_text(pickle_kind::bytes, *take(1)); break;
      case '}': push(new_container(pickle_kind::dict)); break;
      case ']': push(new_container(pickle_kind::list)); break;
      case ')': push(new_container(pickle_kind::tuple)); break;
      case 't': {
        auto items = pop_mark();
        push(new_container(pickle_kind::tuple, std::move(items)));
        break;
      }
      case 0x85: case 0x86: case 0x87: {  // TUPLE1..3
        std::vector<pickle_value> items(static_cast<std::size_t>(op_ - 0x84));
        for (std::size_t i = items.size(); i-- > 0;) items[i] = pop();
        push(new_container(pickle_kind::tuple, std::move(items)));
        break;
      }
      case 's': {  // SETITEM
        pickle_value v = pop(), k = pop();
        dict_set(dict_on_top(), k, v);
        break;
      }
      case 'u': {  // SETITEMS
        auto items = pop_mark();
        if (items.size() % 2 != 0) fail("SETITEMS at byte ", op_pos_, " has an odd number of items");
        std::size_t d = dict_on_top();
        for (std::size_t i = 0; i < items.size(); i += 2) dict_set(d, items[i], items[i + 1]);
        break;
      }
      case 'a': {  // APPEND
        pickle_value v = pop();
        containers_[list_on_top()].items.push_back(v);
        break;
      }
      case 'e': {  // APPENDS
        auto items = pop_mark();
        auto& list = containers_[list_on_top()].items;
        list.insert(list.end(), items.begin(), items.end());
        break;
      }
      case 'q': memo_[*take(1)] = top(); break;                                  // BINPUT
      case 'r': memo_[io_load_le<std::uint32_t>(take(4))] = top(); break;        // LONG_BINPUT
      case 0x94: memo_[memo_.size()] = top(); break;                             // MEMOIZE
      case 'h': push(memo_get(*take(1))); break;                                 // BINGET
      case 'j': push(memo_get(io_load_le<std::uint32_t>(take(4)))); break;       // LONG_BINGET
      case 'c': {  // GLOBAL: "module\nname\n"
        std::string module = line(), name = line();
        push(resolve_global(module, name));
        break;
      }
      case 0x93: {  // STACK_GLOBAL
        pickle_value name = pop(), module = pop();
        if (module.kind != pickle_kind::string || name.kind != pickle_kind::string)
          fail("STACK_GLOBAL at byte ", op_pos_, " needs two strings, got ", pickle_kind_name(module.kind), " and ",
               pickle_kind_name(name.kind));
        push(resolve_global(text(module), text(name)));
        break;
      }
      case 'R': {  // REDUCE: callable(*args)
        pickle_value args = pop(), callable = pop();
        push(call(callable, args));
        break;
      }
      case 0x81: {  // NEWOBJ: cls.__new__(cls, *args)
        pickle_value args = pop(), cls = pop();
        if (cls.kind == pickle_kind::global && globals_[cls.ref].callable == pickle_callable::ordered_dict) {
          push(new_container(pickle_kind::dict));
        } else {
          fail("NEWOBJ at byte ", op_pos_, " creates ",
               cls.kind == pickle_kind::global ? "'" + globals_[cls.ref].name + "'" : pickle_kind_name(cls.kind),
               ", which a checkpoint may not do");
        }
        (void)args;
        break;
      }
      case 'b': {  // BUILD: sets attributes (an OrderedDict's _metadata): nothing to keep
        pop();
        top();
        break;
      }
      case 'Q': push(persistent_load(pop())); break;  // BINPERSID
      default:
        if (pickle_opcode_name(op_))
          fail("opcode ", pickle_opcode_str(op_), " at byte ", op_pos_, " is not supported in a checkpoint");
        fail("unknown opcode ", pickle_opcode_str(op_), " at byte ", op_pos_);
    }
  }

  // ---- input --------------------------------------------------------------------------------
  unsigned char const* take(std::uint64_t n) {
    if (n > size_ - pos_)
      fail("truncated: ", pickle_opcode_str(op_), " at byte ", op_pos_, " needs ", n, " bytes but ", size_ - pos_,
           " remain");
    unsigned char const* p = data_ + pos_;
    pos_ += static_cast<std::size_t>(n);
    return p;
  }
  std::string line() {
    auto const* start = data_ + pos_;
    auto const* nl = static_cast<unsigned char const*>(std::memchr(start, '\n', size_ - pos_));
    if (!nl) fail("truncated: GLOBAL at byte ", op_pos_, " has no end of line");
    pos_ += static_cast<std::size_t>(nl - start) + 1;
    return std::string(reinterpret_cast<char const*>(start), static_cast<std::size_t>(nl - start));
  }

  // ---- stack --------------------------------------------------------------------------------
  std::size_t frame_base() const { return marks_.empty() ? 0 : marks_.back(); }
  void push(pickle_value v) { stack_.push_back(v); }
  pickle_value pop() {
    if (stack_.size() <= frame_base()) fail("stack underflow: ", pickle_opcode_str(op_), " at byte ", op_pos_);
    pickle_value v = stack_.back();
    stack_.pop_back();
    return v;
  }
  pickle_value const& top() const {
    if (stack_.size() <= frame_base()) fail("stack underflow: ", pickle_opcode_str(op_), " at byte ", op_pos_);
    return stack_.back();
  }
  std::vector<pickle_value> pop_mark() {
    if (marks_.empty()) fail("stack underflow: ", pickle_opcode_str(op_), " at byte ", op_pos_, " finds no MARK");
    std::size_t const base = marks_.back();
    marks_.pop_back();
    std::vector<pickle_value> items(stack_.begin() + static_cast<std::ptrdiff_t>(base), stack_.end());
    stack_.resize(base);
    return items;
  }
  pickle_value memo_get(std::uint64_t i) const {
    auto it = memo_.find(i);
    if (it == memo_.end())
      fail("memo index ", i, " is out of range (", pickle_opcode_str(op_), " at byte ", op_pos_, ")");
    return it->second;
  }

  // ---- values -------------------------------------------------------------------------------
  static pickle_value integer(std::int64_t v) { return pickle_value{pickle_kind::integer, v, 0, 0}; }
  void long_integer(std::uint64_t n) {
    unsigned char const* p = take(n);
    if (n <= 8) {
      std::uint64_t u = 0;
      for (std::uint64_t i = 0; i < n; ++i) u |= static_cast<std::uint64_t>(p[i]) << (8 * i);
      if (n > 0 && n < 8 && (p[n - 1] & 0x80u)) u |= ~std::uint64_t(0) << (8 * n);  // sign-extend
      std::int64_t v;
      std::memcpy(&v, &u, 8);
      push(integer(v));
    } else {
      push(pickle_value{pickle_kind::big_integer, 0, 0, intern(p, n)});  // raw two's complement bytes
    }
  }
  void push_text(pickle_kind kind, std::uint64_t n) {
    unsigned char const* p = take(n);
    push(pickle_value{kind, 0, 0, intern(p, n)});
  }
  std::size_t intern(unsigned char const* p, std::uint64_t n) {
    std::string_view const s(reinterpret_cast<char const*>(p), static_cast<std::size_t>(n));
    auto it = interned_.find(s);
    if (it != interned_.end()) return it->second;
    strings_.emplace_back(s);  // a deque: views of earlier strings stay valid
    interned_.emplace(std::string_view(strings_.back()), strings_.size() - 1);
    return strings_.size() - 1;
  }
  pickle_value new_container(pickle_kind kind, std::vector<pickle_value> items = {}) {
    containers_.emplace_back();
    containers_.back().kind = kind;
    containers_.back().items = std::move(items);
    return pickle_value{kind, 0, 0, containers_.size() - 1};
  }
  std::size_t dict_on_top() const {
    pickle_value const& d = top();
    if (d.kind != pickle_kind::dict)
      fail(pickle_opcode_str(op_), " at byte ", op_pos_, " needs a dict, got a ", pickle_kind_name(d.kind));
    return d.ref;
  }
  std::size_t list_on_top() const {
    pickle_value const& l = top();
    if (l.kind != pickle_kind::list)
      fail(pickle_opcode_str(op_), " at byte ", op_pos_, " needs a list, got a ", pickle_kind_name(l.kind));
    return l.ref;
  }
  // Dict keys compare by value for strings, bytes and numbers, by identity otherwise.
  static pickle_key key_of(pickle_value const& v) {
    switch (v.kind) {
      case pickle_kind::string: return {1, static_cast<std::int64_t>(v.ref)};
      case pickle_kind::bytes: return {2, static_cast<std::int64_t>(v.ref)};
      case pickle_kind::boolean: case pickle_kind::integer: return {3, v.integer};
      case pickle_kind::big_integer: return {4, static_cast<std::int64_t>(v.ref)};
      case pickle_kind::none: return {5, 0};
      case pickle_kind::floating: {
        std::int64_t bits;
        std::memcpy(&bits, &v.floating, 8);
        return {6, bits};
      }
      default: return {static_cast<std::uint8_t>(16 + static_cast<int>(v.kind)), static_cast<std::int64_t>(v.ref)};
    }
  }
  void dict_set(std::size_t d, pickle_value const& k, pickle_value const& v) {
    auto& c = containers_[d];
    pickle_key const key = key_of(k);
    if (c.index) {
      auto [it, added] = c.index->emplace(key, c.entries.size());
      if (added) c.entries.emplace_back(k, v);
      else c.entries[it->second].second = v;
      return;
    }
    for (auto& e : c.entries)
      if (key_of(e.first) == key) {
        e.second = v;
        return;
      }
    c.entries.emplace_back(k, v);
    if (c.entries.size() > 8) {  // linear search stays cheap below this; a hash index past it
      c.index = std::make_unique<std::unordered_map<pickle_key, std::size_t, pickle_key_hash>>();
      for (std::size_t i = 0; i < c.entries.size(); ++i) c.index->emplace(key_of(c.entries[i].first), i);
    }
  }

  // ---- globals, calls and persistent ids ------------------------------------------------------
  pickle_value resolve_global(std::string const& module, std::string const& name) {
    std::string const full = module + "." + name;
    struct allowed {
      char const* name;
      pickle_callable callable;
      io_dtype dtype;
    };
    static allowed const table[] = {
        {"collections.OrderedDict", pickle_callable::ordered_dict, io_dtype::f32},
        {"torch._utils._rebuild_tensor_v2", pickle_callable::rebuild_tensor_v2, io_dtype::f32},
        {"torch._utils._rebuild_tensor", pickle_callable::rebuild_tensor, io_dtype::f32},
        {"torch._utils._rebuild_parameter", pickle_callable::rebuild_parameter, io_dtype::f32},
        {"torch._utils._rebuild_parameter_with_state", pickle_callable::rebuild_parameter_with_state, io_dtype::f32},
        {"FloatStorage", pickle_callable::storage_type, io_dtype::f32},
        {"DoubleStorage", pickle_callable::storage_type, io_dtype::f64},
        {"HalfStorage", pickle_callable::storage_type, io_dtype::f16},
        {"BFloat16Storage", pickle_callable::storage_type, io_dtype::bf16},
        {"LongStorage", pickle_callable::storage_type, io_dtype::i64},
        {"IntStorage", pickle_callable::storage_type, io_dtype::i32},
        {"ShortStorage", pickle_callable::storage_type, io_dtype::i16},
        {"CharStorage", pickle_callable::storage_type, io_dtype::i8},
        {"ByteStorage", pickle_callable::storage_type, io_dtype::u8},
        {"BoolStorage", pickle_callable::storage_type, io_dtype::boolean},
    };
    bool const torch_module = module == "torch" || module == "torch.cuda";
    for (auto const& a : table) {
      bool const match = a.callable == pickle_callable::storage_type ? torch_module && name == a.name : full == a.name;
      if (match) {
        globals_.push_back(pickle_global{a.callable, a.dtype, full});
        return pickle_value{pickle_kind::global, 0, 0, globals_.size() - 1};
      }
    }
    fail("global '", full, "' is not allowed in a checkpoint (", pickle_opcode_str(op_), " at byte ", op_pos_,
         "); only tensors, storages and plain data are loaded");
  }

  pickle_value call(pickle_value const& callable, pickle_value const& args_value) {
    if (callable.kind != pickle_kind::global)
      fail("REDUCE at byte ", op_pos_, " calls a ", pickle_kind_name(callable.kind), ", which is not callable");
    pickle_global const& g = globals_[callable.ref];
    if (args_value.kind != pickle_kind::tuple)
      fail("REDUCE at byte ", op_pos_, ": arguments of '", g.name, "' are a ", pickle_kind_name(args_value.kind),
           ", expected a tuple");
    std::vector<pickle_value> const args = containers_[args_value.ref].items;  // a copy: tables may grow below
    switch (g.callable) {
      case pickle_callable::ordered_dict: {
        pickle_value d = new_container(pickle_kind::dict);
        if (args.empty()) return d;
        if (args.size() == 1 && (args[0].kind == pickle_kind::list || args[0].kind == pickle_kind::tuple)) {
          std::vector<pickle_value> const pairs = containers_[args[0].ref].items;
          bool pairs_ok = true;
          for (auto const& p : pairs) {
            pairs_ok = pairs_ok && (p.kind == pickle_kind::tuple || p.kind == pickle_kind::list) &&
                       containers_[p.ref].items.size() == 2;
            if (!pairs_ok) break;
            pickle_value const k = containers_[p.ref].items[0], v = containers_[p.ref].items[1];
            dict_set(d.ref, k, v);
          }
          if (pairs_ok) return d;
        }
        fail("REDUCE at byte ", op_pos_, ": collections.OrderedDict expects no arguments or a list of pairs");
      }
      case pickle_callable::rebuild_tensor_v2:
      case pickle_callable::rebuild_tensor: return rebuild_tensor(g, args);
      case pickle_callable::rebuild_parameter:
      case pickle_callable::rebuild_parameter_with_state:
        if (args.empty() || args[0].kind != pickle_kind::tensor)
          fail("REDUCE at byte ", op_pos_, ": '", g.name, "' expects a tensor as its first argument");
        return args[0];
      default: fail("REDUCE at byte ", op_pos_, ": '", g.name, "' cannot be called in a checkpoint");
    }
  }

  // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
  pickle_value rebuild_tensor(pickle_global const& g, std::vector<pickle_value> const& args) {
    if (args.size() < 4 || args[0].kind != pickle_kind::storage || args[1].kind != pickle_kind::integer ||
        args[2].kind != pickle_kind::tuple || args[3].kind != pickle_kind::tuple)
      fail("REDUCE at byte ", op_pos_, ": '", g.name,
           "' expects (storage, offset, size tuple, stride tuple, ...)");
    pickle_tensor t;
    t.storage = args[0].ref;
    if (args[1].integer < 0) fail("REDUCE at byte ", op_pos_, ": negative storage offset ", args[1].integer);
    t.offset = static_cast<std::uint64_t>(args[1].integer);
    auto ints = [&](pickle_value const& tuple, char const* what) {
      std::vector<index_t> out;
      for (auto const& v : containers_[tuple.ref].items) {
        if (v.kind != pickle_kind::integer || v.integer < 0)
          fail("REDUCE at byte ", op_pos_, ": tensor ", what, " holds a ",
               v.kind == pickle_kind::integer ? "negative int" : pickle_kind_name(v.kind));
        out.push_back(v.integer);
      }
      return out;
    };
    t.sizes = ints(args[2], "size");
    t.strides = ints(args[3], "stride");
    if (t.sizes.size() != t.strides.size())
      fail("REDUCE at byte ", op_pos_, ": tensor size has ", t.sizes.size(), " dimensions but stride has ",
           t.strides.size());
    tensors_.push_back(std::move(t));
    return pickle_value{pickle_kind::tensor, 0, 0, tensors_.size() - 1};
  }

  // ('storage', storage_type, key, location, numel) in the ZIP format; the legacy format adds
  // view_metadata: None or (view_key, offset, numel).
  pickle_value persistent_load(pickle_value const& pid) {
    auto bad = [&](char const* why) {
      fail("persistent id at byte ", op_pos_, " is not a ('storage', type, key, location, numel) tuple: ", why);
    };
    if (pid.kind != pickle_kind::tuple) bad("not a tuple");
    std::vector<pickle_value> const f = containers_[pid.ref].items;
    if (f.size() != 5 && f.size() != 6) bad("wrong length");
    if (!is_string(f[0], "storage")) bad("first item is not 'storage'");
    if (f[1].kind != pickle_kind::global || globals_[f[1].ref].callable != pickle_callable::storage_type)
      bad("second item is not a storage type");
    if (f[2].kind != pickle_kind::string) bad("key is not a string");
    if (f[4].kind != pickle_kind::integer || f[4].integer < 0) bad("numel is not a non-negative int");
    pickle_storage s;
    s.key = text(f[2]);
    s.dtype = globals_[f[1].ref].dtype;
    s.numel = static_cast<std::uint64_t>(f[4].integer);
    s.view_numel = s.numel;
    std::string id = s.key;
    if (f.size() == 6 && f[5].kind != pickle_kind::none) {
      if (f[5].kind != pickle_kind::tuple) bad("view metadata is not a tuple");
      auto const& v = containers_[f[5].ref].items;
      if (v.size() != 3 || v[0].kind != pickle_kind::string || v[1].kind != pickle_kind::integer ||
          v[2].kind != pickle_kind::integer || v[1].integer < 0 || v[2].integer < 0)
        bad("view metadata is not (key, offset, numel)");
      id = "view:" + text(v[0]);
      s.view_offset = static_cast<std::uint64_t>(v[1].integer);
      s.view_numel = static_cast<std::uint64_t>(v[2].integer);
    }
    auto rec = records_.find(s.key);
    if (rec != records_.end() &&
        (storages_[rec->second].dtype != s.dtype || storages_[rec->second].numel != s.numel))
      fail("storage '", s.key, "' is declared twice with different types or sizes (byte ", op_pos_, ")");
    auto it = storage_ids_.find(id);
    if (it != storage_ids_.end()) return pickle_value{pickle_kind::storage, 0, 0, it->second};
    storages_.push_back(std::move(s));
    storage_ids_.emplace(id, storages_.size() - 1);
    records_.emplace(storages_.back().key, storages_.size() - 1);
    return pickle_value{pickle_kind::storage, 0, 0, storages_.size() - 1};
  }

  std::string where_;
  unsigned char const* data_ = nullptr;
  std::size_t size_ = 0, pos_ = 0, op_pos_ = 0;
  unsigned char op_ = 0;
  std::vector<pickle_value> stack_;
  std::vector<std::size_t> marks_;
  std::unordered_map<std::uint64_t, pickle_value> memo_;
  std::deque<std::string> strings_;
  std::unordered_map<std::string_view, std::size_t> interned_;
  std::deque<pickle_container> containers_;
  std::vector<pickle_global> globals_;
  std::vector<pickle_storage> storages_;
  std::unordered_map<std::string, std::size_t> storage_ids_, records_;
  std::vector<pickle_tensor> tensors_;
};

}  // namespace arcnet::detail
