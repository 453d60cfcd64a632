#pragma once
// shape: the dimensions of a contiguous, row-major tensor. Activations are NHWC.
#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include "arcnet/core/error.hpp"

namespace arcnet {

using index_t = std::int64_t;

class shape {
 public:
  shape() = default;
  shape(std::initializer_list<index_t> dims) : dims_(dims) { validate(); }
  explicit shape(std::vector<index_t> dims) : dims_(std::move(dims)) { validate(); }

  int rank() const { return static_cast<int>(dims_.size()); }
  /// Product of the dimensions; 1 for a scalar (rank 0).
  index_t numel() const {
    index_t n = 1;
    for (auto d : dims_) n *= d;
    return n;
  }
  /// Dimension `axis`; negative axes count from the end.
  index_t operator[](int axis) const { return dims_[static_cast<size_t>(normalize(axis))]; }
  index_t& operator[](int axis) { return dims_[static_cast<size_t>(normalize(axis))]; }
  std::vector<index_t> const& dims() const { return dims_; }
  auto begin() const { return dims_.begin(); }
  auto end() const { return dims_.end(); }

  /// Maps a possibly negative axis into [0, rank); throws shape_error when out of range.
  int normalize(int axis, char const* op = "shape") const {
    int r = rank();
    int a = axis < 0 ? axis + r : axis;
    if (a < 0 || a >= r)
      detail::raise<shape_error>(op, ": axis ", axis, " is out of range for a tensor of shape ",
                                 str(), " (rank ", r, ")");
    return a;
  }
  /// Row-major strides in elements.
  std::vector<index_t> strides() const {
    std::vector<index_t> s(dims_.size(), 1);
    for (int i = rank() - 2; i >= 0; --i) s[i] = s[i + 1] * dims_[i + 1];
    return s;
  }
  /// Product of dims in [first, last).
  index_t prod(int first, int last) const {
    index_t n = 1;
    for (int i = first; i < last; ++i) n *= dims_[static_cast<size_t>(i)];
    return n;
  }

  std::string str() const {
    std::ostringstream os;
    os << '(';
    for (size_t i = 0; i < dims_.size(); ++i) os << (i ? ", " : "") << dims_[i];
    if (dims_.size() == 1) os << ',';
    os << ')';
    return os.str();
  }

  friend bool operator==(shape const& a, shape const& b) { return a.dims_ == b.dims_; }
  friend bool operator!=(shape const& a, shape const& b) { return !(a == b); }
  friend std::ostream& operator<<(std::ostream& os, shape const& s) { return os << s.str(); }

 private:
  void validate() const {
    for (auto d : dims_)
      if (d < 0) detail::raise<shape_error>("shape: negative dimension ", d, " in ", str());
  }
  std::vector<index_t> dims_;
};

}  // namespace arcnet
