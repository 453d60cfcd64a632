#pragma once
// A user-defined layer, built only from arcnet's differentiable ops: no backward is written.
//
// GeM (generalised-mean) pooling, Radenovic et al. 2018, popular in image retrieval:
//   y[n, c] = ( mean over h, w of max(x[n, h, w, c], eps)^p )^(1/p),   p learnable (init 3).
// p = 1 is average pooling; p -> infinity approaches max pooling.
#include <string>
#include <vector>

#include <arcnet/arcnet.hpp>
#include <arcnet/nn/layer.hpp>

namespace example {

struct gem_pool {
  // What sequential<> needs to check channels: GeM accepts any channel count and keeps it.
  static constexpr int in_channels = arcnet::nn::any_channels;
  static constexpr int out_channels = arcnet::nn::same_channels;
  static constexpr char const* type_name = "gem_pool";
  static std::string describe_type() { return "gem_pool"; }

  template <class T, class D>
  class module {
   public:
    explicit module(arcnet::generator& = arcnet::default_generator())
        : p_(arcnet::tensor<T, D>::full(arcnet::shape{1}, T(3)), /*requires_grad=*/true) {}

    /// (N, H, W, C) -> (N, C)
    arcnet::variable<T, D> forward(arcnet::variable<T, D> const& x) {
      using namespace arcnet;
      auto clamped = ops::clamp(x, T(1e-6), std::numeric_limits<T>::max());
      auto powered = ops::exp(ops::log(clamped) * p_);             // x^p, p broadcast from (1)
      auto mean = ops::mean(powered, {1, 2});                       // (N, C)
      return ops::exp(ops::log(mean) / p_);                         // mean^(1/p)
    }
    template <class F>
    void for_each_parameter(F&& f, std::string const& prefix = "") {
      f(arcnet::detail::join_name(prefix, "p"), p_, arcnet::nn::param_layout::plain);
    }
    template <class F>
    void for_each_buffer(F&&, std::string const& = "") {}
    void train(bool) {}
    arcnet::shape describe(arcnet::shape const& in, std::string const& prefix,
                           std::vector<arcnet::nn::layer_info>& out) const {
      arcnet::shape y{in[0], in[3]};
      out.push_back({prefix, describe_type(), y, 1, 3.0 * double(in.numel())});
      return y;
    }
    arcnet::variable<T, D>& p() { return p_; }

   private:
    arcnet::variable<T, D> p_;  // (1)
  };
};

}  // namespace example
