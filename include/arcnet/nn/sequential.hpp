#pragma once
// nn::sequential<Layers...>: layers applied in order, with the channel counts checked at
// compile time at every boundary; nn::named<Name, Layer> gives a child its checkpoint name.
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "arcnet/nn/fusion.hpp"
#include "arcnet/nn/layer.hpp"

namespace arcnet::nn {

/// A child with a name in checkpoints ("conv1"); Name is a `constexpr char[]` with linkage:
///   inline constexpr char conv1[] = "conv1";   nn::named<conv1, nn::conv2d<3, 64, 7, 2>>
template <char const* Name, class Layer>
struct named : Layer {
  using layer = Layer;
  static constexpr char const* child_name = Name;
};

}  // namespace arcnet::nn

namespace arcnet::detail {

template <class L, class = void>
struct child_name_of {
  static std::string get(std::size_t index) { return std::to_string(index); }
};
template <class L>
struct child_name_of<L, std::void_t<decltype(L::child_name)>> {
  static std::string get(std::size_t) { return L::child_name; }
};

/// One boundary of a sequential. On a mismatch the compiler prints this template's arguments:
/// the position, both layer types, and the two channel counts.
template <std::size_t Position, class Previous, class Next, int PreviousOut, int NextIn>
struct sequential_boundary {
  static constexpr bool ok = PreviousOut == nn::any_channels || NextIn == nn::any_channels || PreviousOut == NextIn;
  static_assert(ok,
                "arcnet::nn::sequential: channel mismatch: the layer at position `Position` produces `PreviousOut` "
                "channels but the next layer (`Next`) expects `NextIn` input channels; the template arguments "
                "of arcnet::detail::sequential_boundary in this message name both layers");
};

/// Channels flowing out of a layer that receives `in` channels (any_channels when unknown).
template <class L>
constexpr int channels_after(int in) {
  return L::out_channels == nn::same_channels ? in : L::out_channels;
}
template <class L>
constexpr int channels_into(int flowing) {
  return L::in_channels == nn::any_channels ? flowing : L::in_channels;
}

/// Checks every boundary of Layers..., carrying the channel count through channel-preserving layers.
template <std::size_t Position, int Flowing, class Previous, class... Rest>
struct sequential_check;
template <std::size_t Position, int Flowing, class Previous>
struct sequential_check<Position, Flowing, Previous> {
  static constexpr int out = Flowing;
};
template <std::size_t Position, int Flowing, class Previous, class Next, class... Rest>
struct sequential_check<Position, Flowing, Previous, Next, Rest...>
    // Base classes are instantiated with the class, so every boundary's static_assert is checked.
    : sequential_boundary<Position, Previous, Next, Flowing, Next::in_channels>,
      sequential_check<Position + 1,
                       channels_after<Next>(sequential_boundary<Position, Previous, Next, Flowing, Next::in_channels>::ok
                                                ? channels_into<Next>(Flowing)
                                                : Next::in_channels),  // after a mismatch, go on as if it fit
                       Next, Rest...> {
  using rest = sequential_check<Position + 1,
                                channels_after<Next>(sequential_boundary<Position, Previous, Next, Flowing,
                                                                         Next::in_channels>::ok
                                                         ? channels_into<Next>(Flowing)
                                                         : Next::in_channels),
                                Next, Rest...>;
  static constexpr int out = rest::out;
};

}  // namespace arcnet::detail

namespace arcnet::nn {

template <class... Layers>
struct sequential {
  static_assert(sizeof...(Layers) > 0, "arcnet::nn::sequential<Layers...>: needs at least one layer");
  using layers = std::tuple<Layers...>;
  using first = std::tuple_element_t<0, layers>;
  using check = detail::sequential_check<0, detail::channels_after<first>(first::in_channels), Layers...>;
  static_assert(sizeof(check) > 0);  // instantiates the boundary checks
  static constexpr int in_channels = first::in_channels;
  static constexpr int out_channels = check::out;
  static constexpr char const* type_name = "sequential";
  static std::string describe_type() { return "sequential"; }
  /// Whether the last layer is a batch norm (named or not): nn::residual then ends its block with
  /// forward_add_relu.
  static constexpr bool ends_in_batch_norm =
      fusion::is_batch_norm_layer<fusion::unwrap_t<std::tuple_element_t<sizeof...(Layers) - 1, layers>>>::value;

  template <class T, class D>
  class module {
   public:
    explicit module(generator& g = default_generator()) : children_(make_children(g, std::index_sequence_for<Layers...>{})) {}

    /// The activations may be of another type than the parameters (bf16 with fp32 parameters, on
    /// the CUDA device): every layer of ResNet's backbone takes them.
    template <class A = T>
    variable<A, D> forward(variable<A, D> const& x) { return forward_from<0, sizeof...(Layers)>(x); }
    /// max(forward(x) + shortcut, 0), the last layer (a batch norm) fused with the add and the ReLU.
    template <class A = T>
    variable<A, D> forward_add_relu(variable<A, D> const& x, variable<A, D> const& shortcut) {
      static_assert(ends_in_batch_norm, "arcnet::nn::sequential::forward_add_relu: the last layer must be a batch norm");
      constexpr std::size_t last = sizeof...(Layers) - 1;
      return std::get<last>(children_).forward_add_relu(forward_from<0, last>(x), shortcut);
    }
    template <class F>
    void for_each_parameter(F&& f, std::string const& prefix = "") {
      each([&](auto& c, std::string const& name) { c.for_each_parameter(f, detail::join_name(prefix, name)); });
    }
    template <class F>
    void for_each_buffer(F&& f, std::string const& prefix = "") {
      each([&](auto& c, std::string const& name) { c.for_each_buffer(f, detail::join_name(prefix, name)); });
    }
    void train(bool on) {
      std::apply([&](auto&... c) { (c.train(on), ...); }, children_);
    }
    shape describe(shape const& in, std::string const& prefix, std::vector<layer_info>& out) const {
      shape s = in;
      each_const([&](auto const& c, std::string const& name) { s = c.describe(s, detail::join_name(prefix, name), out); });
      return s;
    }
    /// The I-th child's module.
    template <std::size_t I>
    auto& get() { return std::get<I>(children_); }

   private:
    /// Children I..count-1 in order; a convolution + batch norm (+ ReLU), or a batch norm + ReLU,
    /// runs fused when fusion.hpp allows.
    template <std::size_t I, std::size_t count, class A>
    variable<A, D> forward_from(variable<A, D> const& x) {
      if constexpr (I == count) {
        return x;
      } else {
        if constexpr (std::is_same_v<D, cpu> && std::is_same_v<A, T> && I + 1 < count) {
          using conv_layer = std::tuple_element_t<I, layers>;
          if constexpr (fusion::is_conv_batch_norm<conv_layer, std::tuple_element_t<I + 1, layers>>) {
            auto& bn = std::get<I + 1>(children_);
            if (fusion::may_fold<T, D>(bn)) {
              constexpr bool relu_after = I + 2 < count && fusion::is_relu<std::tuple_element_t<(I + 2) % count, layers>>;
              auto y = fusion::conv_batch_norm<fusion::unwrap_t<conv_layer>>(std::get<I>(children_), bn, x, relu_after);
              return forward_from<I + (relu_after ? 3 : 2), count>(y);
            }
          }
        }
        if constexpr (I + 1 < count) {
          if constexpr (fusion::is_batch_norm_relu<std::tuple_element_t<I, layers>,
                                                   std::tuple_element_t<(I + 1) % count, layers>>) {
            if (fusion::enabled()) return forward_from<I + 2, count>(std::get<I>(children_).forward_relu(x));
          }
        }
        return forward_from<I + 1, count>(std::get<I>(children_).forward(x));
      }
    }

    using children = std::tuple<typename Layers::template module<T, D>...>;
    template <std::size_t... I>
    static children make_children(generator& g, std::index_sequence<I...>) {
      return children(typename Layers::template module<T, D>(g)...);
    }
    template <class F>
    void each(F&& f) {
      each_impl(f, std::index_sequence_for<Layers...>{});
    }
    template <class F, std::size_t... I>
    void each_impl(F& f, std::index_sequence<I...>) {
      (f(std::get<I>(children_), detail::child_name_of<std::tuple_element_t<I, layers>>::get(I)), ...);
    }
    template <class F>
    void each_const(F&& f) const {
      each_const_impl(f, std::index_sequence_for<Layers...>{});
    }
    template <class F, std::size_t... I>
    void each_const_impl(F& f, std::index_sequence<I...>) const {
      (f(std::get<I>(children_), detail::child_name_of<std::tuple_element_t<I, layers>>::get(I)), ...);
    }
    children children_;
  };
};

}  // namespace arcnet::nn
