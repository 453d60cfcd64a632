#pragma once
// Broadcasting (NumPy rules: align shapes on the right; a dimension of 1 stretches).
#include <algorithm>
#include <vector>

#include "arcnet/core/shape.hpp"

namespace arcnet::detail {

/// The broadcast shape of a and b; throws shape_error naming `op` when they do not broadcast.
inline shape broadcast_shapes(char const* op, shape const& a, shape const& b) {
  int r = std::max(a.rank(), b.rank());
  std::vector<index_t> out(static_cast<size_t>(r));
  for (int i = 0; i < r; ++i) {
    int ia = a.rank() - r + i, ib = b.rank() - r + i;
    index_t da = ia >= 0 ? a.dims()[static_cast<size_t>(ia)] : 1;
    index_t db = ib >= 0 ? b.dims()[static_cast<size_t>(ib)] : 1;
    if (da != db && da != 1 && db != 1)
      raise<shape_error>(op, ": shapes ", a, " and ", b, " do not broadcast (dimension ", i, ": ", da, " vs ",
                         db, ")");
    out[static_cast<size_t>(i)] = da == 1 ? db : da;
  }
  return shape(out);
}

/// Strides of `in` read as if it had shape `out` (0 on broadcast dimensions).
inline std::vector<index_t> broadcast_strides(shape const& in, shape const& out) {
  std::vector<index_t> s(static_cast<size_t>(out.rank()), 0);
  auto own = in.strides();
  int off = out.rank() - in.rank();
  for (int i = 0; i < in.rank(); ++i)
    if (in.dims()[static_cast<size_t>(i)] != 1) s[static_cast<size_t>(i + off)] = own[static_cast<size_t>(i)];
  return s;
}

/// Calls f(out_index, a_index, b_index) for every element of `out`, last dimension innermost.
template <class F>
void for_each_broadcast(shape const& out, std::vector<index_t> const& sa, std::vector<index_t> const& sb, F&& f) {
  int r = out.rank();
  if (r == 0) {
    f(index_t(0), index_t(0), index_t(0));
    return;
  }
  index_t inner = out.dims().back(), ia_step = sa.back(), ib_step = sb.back();
  index_t rows = out.numel() / std::max<index_t>(inner, 1);
  if (inner == 0) return;
  std::vector<index_t> idx(static_cast<size_t>(r), 0);
  index_t base_a = 0, base_b = 0;
  for (index_t row = 0; row < rows; ++row) {
    index_t o = row * inner;
    for (index_t j = 0; j < inner; ++j) f(o + j, base_a + j * ia_step, base_b + j * ib_step);
    for (int d = r - 2; d >= 0; --d) {  // advance the multi-index over the outer dimensions
      auto ud = static_cast<size_t>(d);
      ++idx[ud];
      base_a += sa[ud];
      base_b += sb[ud];
      if (idx[ud] < out.dims()[ud]) break;
      base_a -= sa[ud] * idx[ud];
      base_b -= sb[ud] * idx[ud];
      idx[ud] = 0;
    }
  }
}

}  // namespace arcnet::detail
