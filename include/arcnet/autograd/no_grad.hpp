#pragma once
// Grad mode: while a no_grad scope is alive on this thread, ops record nothing on the tape.

namespace arcnet::autograd {

namespace detail {
inline int& no_grad_depth() {
  thread_local int depth = 0;
  return depth;
}
}  // namespace detail

/// True unless a no_grad scope is active on this thread.
inline bool grad_enabled() { return detail::no_grad_depth() == 0; }

/// RAII scope: ops inside record no graph nodes (evaluation, optimizer updates).
class no_grad {
 public:
  no_grad() { ++detail::no_grad_depth(); }
  ~no_grad() { --detail::no_grad_depth(); }
  no_grad(no_grad const&) = delete;
  no_grad& operator=(no_grad const&) = delete;
};

}  // namespace arcnet::autograd
