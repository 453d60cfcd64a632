#pragma once
// Reads the reference fixtures that tests/fixtures/*.py write with Debian's PyTorch.
// Format (text, one array per two lines):
//   <name> <rank> <d0> ... <d(rank-1)>
//   <v0> <v1> ...            (row-major values, printed with 17 significant digits)
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include <arcnet/core/error.hpp>
#include <arcnet/core/tensor.hpp>

namespace arcnet::testing {

class fixture {
 public:
  /// Loads tests/data/<file>; throws io_error when it is missing or malformed.
  explicit fixture(std::string const& file) : path_(std::string(ARCNET_TEST_DATA_DIR) + "/" + file) {
    std::ifstream in(path_);
    if (!in) detail::raise<io_error>("fixture: cannot open ", path_);
    std::string header;
    while (std::getline(in, header)) {
      if (header.empty()) continue;
      std::istringstream hs(header);
      std::string name;
      int rank = 0;
      hs >> name >> rank;
      std::vector<index_t> dims(static_cast<size_t>(rank));
      for (auto& d : dims) hs >> d;
      if (!hs) detail::raise<io_error>("fixture: bad header line '", header, "' in ", path_);
      shape s(dims);
      auto t = tensor<double, cpu>::uninitialized(s);
      std::string values;
      std::getline(in, values);
      std::istringstream vs(values);
      for (index_t i = 0; i < t.numel(); ++i)
        if (!(vs >> t[i])) detail::raise<io_error>("fixture: array ", name, " in ", path_, " is short");
      arrays_[name] = t;
    }
  }
  /// The array `name` (double precision).
  tensor<double, cpu> const& operator[](std::string const& name) const {
    auto it = arrays_.find(name);
    if (it == arrays_.end()) detail::raise<io_error>("fixture: no array '", name, "' in ", path_);
    return it->second;
  }
  bool has(std::string const& name) const { return arrays_.count(name) != 0; }

 private:
  std::string path_;
  std::map<std::string, tensor<double, cpu>> arrays_;
};

}  // namespace arcnet::testing
