#pragma once
// The backward engine: reverse topological order over the nodes reachable from the root,
// each node run once after all its consumers; graph and non-leaf gradients freed as it goes.
#include <functional>
#include <memory>
#include <unordered_set>
#include <utility>
#include <vector>

#include "arcnet/autograd/node.hpp"
#include "arcnet/autograd/no_grad.hpp"

namespace arcnet::autograd {

/// Values reachable from root, producers before consumers (iterative DFS, post-order).
inline std::vector<std::shared_ptr<value_node>> topological_order(std::shared_ptr<value_node> const& root) {
  std::vector<std::shared_ptr<value_node>> order;
  std::unordered_set<value_node*> visited;
  std::vector<std::pair<std::shared_ptr<value_node>, size_t>> stack;
  stack.emplace_back(root, 0);
  visited.insert(root.get());
  while (!stack.empty()) {
    auto& [v, next] = stack.back();
    if (v->grad_fn && next < v->grad_fn->inputs.size()) {
      auto const& in = v->grad_fn->inputs[next++];
      if (in && in->requires_grad && visited.insert(in.get()).second) stack.emplace_back(in, 0);
    } else {
      order.push_back(std::move(v));
      stack.pop_back();
    }
  }
  return order;
}

/// While one is alive on this thread, run_backward calls `ready(leaf)` for every leaf that
/// requires grad, as soon as its gradient is final (all its consumers have run): what
/// data-parallel training uses to start reducing gradients during the backward pass (PyTorch's
/// post-accumulate-grad hooks). Scoped, like no_grad; the innermost one is active.
class leaf_gradient_observer {
 public:
  explicit leaf_gradient_observer(std::function<void(value_node*)> ready)
      : ready_(std::move(ready)), previous_(active()) {
    active() = this;
  }
  ~leaf_gradient_observer() { active() = previous_; }
  leaf_gradient_observer(leaf_gradient_observer const&) = delete;
  leaf_gradient_observer& operator=(leaf_gradient_observer const&) = delete;

  static leaf_gradient_observer*& active() {
    thread_local leaf_gradient_observer* current = nullptr;
    return current;
  }
  void notify(value_node* leaf) const { ready_(leaf); }

 private:
  std::function<void(value_node*)> ready_;
  leaf_gradient_observer* previous_;
};

/// Runs backward from root, whose gradient the caller has already seeded. Without
/// retain_graph, each node is freed right after it ran (its saved tensors with it), and the
/// gradients of non-leaf values are freed once consumed.
inline void run_backward(std::shared_ptr<value_node> const& root, bool retain_graph = false) {
  no_grad guard;  // backward closures compute with raw kernels; never record them
  auto order = topological_order(root);
  leaf_gradient_observer const* observer = leaf_gradient_observer::active();
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    auto& v = *it;
    if (v->grad_fn && v->has_grad()) v->grad_fn->apply();
    // Reverse topological order: every consumer of a leaf has run before the leaf comes up.
    if (observer && v->is_leaf && v->requires_grad) observer->notify(v.get());
    if (!retain_graph) v->grad_fn.reset();
    if (!v->is_leaf && !v->retain_grad) v->release_grad();
    v.reset();
  }
}

}  // namespace arcnet::autograd
