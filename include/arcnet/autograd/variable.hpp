#pragma once
// variable<T, Device>: a tensor value plus what reverse-mode autograd needs (gradient,
// requires_grad, the node that produced it). A cheap handle: copies share one value.
#include <initializer_list>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "arcnet/autograd/backward.hpp"
#include "arcnet/autograd/no_grad.hpp"
#include "arcnet/autograd/node.hpp"
#include "arcnet/core/tensor.hpp"

namespace arcnet {

namespace autograd {
template <class T, class D>
struct variable_impl final : value_node {
  tensor<T, D> value;
  tensor<T, D> grad;  // undefined until something is accumulated into it
  bool has_grad() const override { return grad.defined(); }
  void release_grad() override { grad = tensor<T, D>(); }
};
}  // namespace autograd

template <class T, class Device = cpu>
class variable {
 public:
  using value_type = T;
  using device_type = Device;

  /// An undefined variable; defined() is false.
  variable() = default;
  /// A leaf holding `value`.
  explicit variable(tensor<T, Device> value, bool requires_grad = false)
      : impl_(std::make_shared<autograd::variable_impl<T, Device>>()) {
    impl_->value = std::move(value);
    impl_->requires_grad = requires_grad;
  }

  bool defined() const { return static_cast<bool>(impl_); }
  tensor<T, Device> const& value() const { return checked().value; }
  /// Mutable access to the value, for in-place updates of leaves (optimizers, loading).
  tensor<T, Device>& value_mut() { return checked().value; }
  arcnet::shape const& shape() const { return value().shape(); }
  index_t numel() const { return value().numel(); }
  int rank() const { return value().rank(); }
  index_t size(int axis) const { return value().size(axis); }

  bool requires_grad() const { return checked().requires_grad; }
  /// Only leaves may change requires_grad, like PyTorch.
  variable& set_requires_grad(bool on) {
    ARCNET_CHECK(checked().is_leaf, "variable::set_requires_grad: only leaves can change requires_grad");
    impl_->requires_grad = on;
    return *this;
  }
  bool is_leaf() const { return checked().is_leaf; }
  /// Keep this non-leaf's gradient after backward (leaves always keep theirs).
  void retain_grad() { checked().retain_grad = true; }

  /// The accumulated gradient; undefined when nothing has flowed into it.
  tensor<T, Device> const& grad() const { return checked().grad; }
  /// The gradient, allocated as zeros on first use: what *_backward kernels accumulate into.
  /// const because a variable is a handle: copies share the value and gradient.
  tensor<T, Device>& grad_for_accumulate() const {
    auto& i = checked();
    if (!i.grad.defined()) i.grad = tensor<T, Device>::zeros(i.value.shape());
    return i.grad;
  }
  void zero_grad() { checked().grad = tensor<T, Device>(); }

  /// The same value, cut from the graph (a leaf that does not require grad).
  variable detach() const { return variable(value(), false); }

  /// Reverse-mode differentiation of this one-element value (dL/dL = 1).
  void backward(bool retain_graph = false) {
    ARCNET_CHECK(numel() == 1, "variable::backward: the root must have one element (got shape ", shape(),
                 "); pass its gradient explicitly");
    backward(tensor<T, Device>::full(value().shape(), T(1)), retain_graph);
  }
  /// Reverse-mode differentiation seeded with dL/d(this) = seed (same shape as the value).
  void backward(tensor<T, Device> const& seed, bool retain_graph = false) {
    auto& i = checked();
    ARCNET_CHECK(i.requires_grad, "variable::backward: this value does not require grad (no input of the ",
                 "ops that made it requires grad, or it was computed under no_grad)");
    ARCNET_CHECK(i.is_leaf || i.grad_fn, "variable::backward: the graph of this value was already freed by ",
                 "an earlier backward(); pass retain_graph = true to backward twice");
    check_same_shape("variable::backward", i.value, seed);
    if (i.grad.defined()) {
      // accumulating into an existing gradient of the root: add
      if constexpr (std::is_same_v<Device, cpu>) {
        T* g = i.grad.data();
        for (index_t k = 0; k < seed.numel(); ++k) g[k] = element_add(g[k], seed.data()[k]);
      } else {
#if defined(__CUDACC__)
        gpu::add(i.grad.data(), seed.data(), seed.numel());
#endif
      }
    } else {
      i.grad = seed.clone();
    }
    autograd::run_backward(impl_, retain_graph);
  }

  /// The graph node that produced this value (null for leaves); for tools and tests.
  std::shared_ptr<autograd::node> const& grad_fn() const { return checked().grad_fn; }
  std::shared_ptr<autograd::variable_impl<T, Device>> const& impl() const { return impl_; }

 private:
  autograd::variable_impl<T, Device>& checked() const {
    ARCNET_CHECK(impl_, "variable: use of an undefined (default-constructed) variable");
    return *impl_;
  }
  std::shared_ptr<autograd::variable_impl<T, Device>> impl_;
};

namespace autograd {

/// True when an op with these inputs must be recorded.
template <class... V>
bool needs_grad(V const&... inputs) {
  return grad_enabled() && (... || (inputs.defined() && inputs.requires_grad()));
}

/// Defines a differentiable op's result: wraps `value` in a variable and, when any input
/// requires grad (and grad mode is on), records a node whose `backward(dy)` accumulates into
/// the inputs' gradients (use `x.requires_grad()` and `x.grad_for_accumulate()`). The backward
/// closure must capture tensors it needs by value, and never the output variable itself.
///
///   auto y = autograd::make_op("square", x.value() * x.value(), {x}, [x](auto const& dy) mutable {
///     if (x.requires_grad()) x.grad_for_accumulate() += 2 * x.value() * dy; });
namespace detail_op {
/// make_op's body over type-erased inputs (null for an undefined one).
template <class T, class D, class Backward>
variable<T, D> record(char const* name, tensor<T, D> value, std::vector<std::shared_ptr<value_node>> inputs,
                      Backward backward) {
  bool record = false;
  if (grad_enabled())
    for (auto const& in : inputs) record = record || (in && in->requires_grad);
  variable<T, D> out(std::move(value), false);
  if (!record) return out;
  auto& impl = *out.impl();
  impl.requires_grad = true;
  impl.is_leaf = false;
  auto n = std::make_shared<node>();
  n->name = name;
  for (auto& in : inputs)
    if (in) n->inputs.push_back(std::move(in));
  auto* out_raw = &impl;  // the output owns the node, so this pointer outlives every call of apply
  n->apply = [out_raw, bw = std::move(backward)]() mutable { bw(static_cast<tensor<T, D> const&>(out_raw->grad)); };
  impl.grad_fn = std::move(n);
  return out;
}
}  // namespace detail_op

template <class T, class D, class Backward>
variable<T, D> make_op(char const* name, tensor<T, D> value, std::initializer_list<variable<T, D>> inputs,
                       Backward backward) {
  std::vector<std::shared_ptr<value_node>> nodes;
  nodes.reserve(inputs.size());
  for (auto const& in : inputs) nodes.push_back(in.defined() ? in.impl() : nullptr);
  return detail_op::record(name, std::move(value), std::move(nodes), std::move(backward));
}

/// make_op for an op whose inputs hold other element types than its output (ops::cast, and the
/// ops that read bf16 activations with fp32 parameters): inputs of any types, after the closure.
template <class T, class D, class Backward, class... Inputs>
variable<T, D> make_mixed_op(char const* name, tensor<T, D> value, Backward backward, Inputs const&... inputs) {
  std::vector<std::shared_ptr<value_node>> nodes{(inputs.defined() ? std::shared_ptr<value_node>(inputs.impl())
                                                                   : std::shared_ptr<value_node>())...};
  return detail_op::record(name, std::move(value), std::move(nodes), std::move(backward));
}

}  // namespace autograd

}  // namespace arcnet
