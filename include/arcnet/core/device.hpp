#pragma once
// Device tags. Tensors, ops and layers are templates on the tag; a backend is chosen by
// specialising on it, never by a runtime `if`.
#include <type_traits>

namespace arcnet {

struct cpu {
  static constexpr char const* name = "cpu";
};
struct cuda {
  static constexpr char const* name = "cuda";
};

template <class D>
inline constexpr bool is_device_v = std::is_same_v<D, cpu> || std::is_same_v<D, cuda>;

namespace detail {
template <class...>
inline constexpr bool always_false = false;
}  // namespace detail

}  // namespace arcnet
