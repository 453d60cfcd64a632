#pragma once
// The graph: every value that an op produced while recording points to the node that made it;
// a node holds its inputs and a backward closure. Type-erased, so that one engine walks graphs
// of any element type and device.
#include <functional>
#include <memory>
#include <vector>

namespace arcnet::autograd {

struct node;

/// The type-erased part of a variable: what the backward engine needs to walk the graph.
struct value_node {
  virtual ~value_node() = default;
  std::shared_ptr<node> grad_fn;  // null for leaves (parameters, inputs) and after the graph is freed
  bool requires_grad = false;
  bool is_leaf = true;
  bool retain_grad = false;  // keep the gradient of a non-leaf after backward
  virtual bool has_grad() const = 0;
  virtual void release_grad() = 0;
};

/// One recorded op: its inputs (for the walk) and the closure that reads the output's gradient
/// and accumulates into the inputs' gradients.
struct node {
  char const* name = "";
  std::vector<std::shared_ptr<value_node>> inputs;
  std::function<void()> apply;
};

}  // namespace arcnet::autograd
