#pragma once
// The backward engine: reverse topological order over the nodes reachable from the root,
// each node run once after all its consumers; graph and non-leaf gradients freed as it goes.
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

/// Runs backward from root, whose gradient the caller has already seeded. Without
/// retain_graph, each node is freed right after it ran (its saved tensors with it), and the
/// gradients of non-leaf values are freed once consumed.
inline void run_backward(std::shared_ptr<value_node> const& root, bool retain_graph = false) {
  no_grad guard;  // backward closures compute with raw kernels; never record them
  auto order = topological_order(root);
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    auto& v = *it;
    if (v->grad_fn && v->has_grad()) v->grad_fn->apply();
    if (!retain_graph) v->grad_fn.reset();
    if (!v->is_leaf && !v->retain_grad) v->release_grad();
    v.reset();
  }
}

}  // namespace arcnet::autograd
