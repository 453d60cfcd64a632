#pragma once
// Initialisers, as torchvision and PyTorch's layers do it.
#include <cmath>

#include "arcnet/autograd/variable.hpp"
#include "arcnet/core/random.hpp"

namespace arcnet::nn::init {

/// N(0, 2 / fan_out): torchvision's kaiming_normal_(mode="fan_out", nonlinearity="relu") for convolutions.
template <class T>
void kaiming_normal_fan_out(tensor<T, cpu>& w, index_t fan_out, generator& g) {
  g.fill_normal(w, 0.0, std::sqrt(2.0 / static_cast<double>(fan_out)));
}
/// U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's default for nn.Linear weights (kaiming_uniform with a = sqrt(5)) and biases.
template <class T>
void uniform_fan_in(tensor<T, cpu>& w, index_t fan_in, generator& g) {
  double b = 1.0 / std::sqrt(static_cast<double>(fan_in));
  g.fill_uniform(w, -b, b);
}
/// N(0, std^2).
template <class T>
void normal(tensor<T, cpu>& w, double std, generator& g) {
  g.fill_normal(w, 0.0, std);
}

}  // namespace arcnet::nn::init

namespace arcnet::detail {
/// A parameter initialised on the CPU by `fill`, then moved to device D.
template <class T, class D, class Fill>
variable<T, D> make_parameter(shape s, Fill&& fill) {
  auto t = tensor<T, cpu>::zeros(std::move(s));
  fill(t);
  if constexpr (std::is_same_v<D, cpu>) return variable<T, D>(t, true);
  else return variable<T, D>(t.template to<D>(), true);
}
template <class T, class D>
tensor<T, D> make_buffer(shape s, T value) {
  auto t = tensor<T, cpu>::full(std::move(s), value);
  if constexpr (std::is_same_v<D, cpu>) return t;
  else return t.template to<D>();
}
}  // namespace arcnet::detail
