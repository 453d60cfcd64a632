#pragma once
// nn::linear<In, Out, Bias>: y = x W^T + b on (N, In) inputs, PyTorch's layout and initialisation.
#include <string>

#include "arcnet/nn/init.hpp"
#include "arcnet/nn/layer.hpp"
#include "arcnet/ops/matmul.hpp"

namespace arcnet::nn {

template <int In, int Out, bool Bias = true>
struct linear {
  static_assert(In > 0 && Out > 0, "arcnet::nn::linear<In, Out>: In and Out must be positive");
  static constexpr int in_channels = In;
  static constexpr int out_channels = Out;
  static constexpr char const* type_name = "linear";
  static std::string describe_type() { return detail::concat("linear<", In, ", ", Out, ">"); }

  template <class T, class D>
  class module {
   public:
    explicit module(generator& g = default_generator())
        : weight_(detail::make_parameter<T, D>(shape{Out, In}, [&](auto& w) { init::uniform_fan_in(w, In, g); })) {
      if constexpr (Bias)
        bias_ = detail::make_parameter<T, D>(shape{Out}, [&](auto& b) { init::uniform_fan_in(b, In, g); });
    }
    /// (N, In) -> (N, Out)
    variable<T, D> forward(variable<T, D> const& x) { return ops::linear(x, weight_, bias_); }
    template <class F>
    void for_each_parameter(F&& f, std::string const& prefix = "") {
      f(detail::join_name(prefix, "weight"), weight_, param_layout::plain);
      if constexpr (Bias) f(detail::join_name(prefix, "bias"), bias_, param_layout::plain);
    }
    template <class F>
    void for_each_buffer(F&&, std::string const& = "") {}
    void train(bool) {}
    shape describe(shape const& in, std::string const& prefix, std::vector<layer_info>& out) const {
      if (in.rank() != 2 || in[1] != In)
        detail::raise<shape_error>(describe_type(), ": expected input (N, ", In, "), got shape ", in);
      shape y{in[0], Out};
      out.push_back({prefix, describe_type(), y, index_t(In) * Out + (Bias ? Out : 0), double(in[0]) * In * Out});
      return y;
    }
    variable<T, D>& weight() { return weight_; }
    variable<T, D>& bias() { return bias_; }

   private:
    variable<T, D> weight_, bias_;  // (Out, In), (Out) or undefined
  };
};

}  // namespace arcnet::nn
