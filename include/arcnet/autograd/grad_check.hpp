#pragma once
// grad_check: compares the autograd gradients of a function with central finite differences.
// Run it in double precision on the CPU.
#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "arcnet/autograd/variable.hpp"
#include "arcnet/core/random.hpp"

namespace arcnet::autograd {

struct grad_check_result {
  double max_error = 0;       // max over all input elements of |analytic - numeric| / max(|analytic|, |numeric|, floor)
  double max_abs_error = 0;   // max |analytic - numeric|
  std::string worst;          // where the worst error was, for test messages
  index_t checked = 0;        // number of input elements perturbed
};

struct grad_check_options {
  double eps = 1e-6;    // finite-difference step
  double floor = 1e-3;  // denominators below this are judged absolutely (gradients near zero)
  std::uint64_t seed = 7;
};

/// Checks d/d(inputs) of L = sum(f() * r), r a fixed random tensor, so non-scalar outputs are
/// covered too. `f` must recompute its output from the current values of `inputs` (which must
/// require grad) every time it is called. Perturbs every element of every input.
template <class F>
grad_check_result grad_check(F&& f, std::vector<variable<double, cpu>> inputs, grad_check_options opt = {}) {
  for (auto& in : inputs) {
    ARCNET_CHECK(in.requires_grad(), "grad_check: every input must require grad");
    in.zero_grad();
  }
  generator g(opt.seed);
  variable<double, cpu> y = f();
  auto r = tensor<double, cpu>::uninitialized(y.shape());
  g.fill_uniform(r, 0.5, 1.5);
  y.backward(r);

  auto loss = [&] {
    no_grad guard;
    auto v = f().value();
    ARCNET_CHECK(v.shape() == r.shape(), "grad_check: f() changed its output shape from ", r.shape(), " to ",
                 v.shape());
    double s = 0;
    for (index_t i = 0; i < v.numel(); ++i) s += v[i] * r[i];
    return s;
  };
  grad_check_result res;
  for (size_t which = 0; which < inputs.size(); ++which) {
    auto& in = inputs[which];
    auto analytic = in.grad().defined() ? in.grad().clone() : tensor<double, cpu>::zeros(in.shape());
    auto& x = in.value_mut();
    for (index_t i = 0; i < x.numel(); ++i) {
      double orig = x[i];
      x[i] = orig + opt.eps;
      double up = loss();
      x[i] = orig - opt.eps;
      double down = loss();
      x[i] = orig;
      double numeric = (up - down) / (2 * opt.eps);
      double a = analytic[i];
      double abs_err = std::abs(a - numeric);
      double err = abs_err / std::max({std::abs(a), std::abs(numeric), opt.floor});
      ++res.checked;
      res.max_abs_error = std::max(res.max_abs_error, abs_err);
      if (err > res.max_error) {
        res.max_error = err;
        std::ostringstream os;
        os << "input " << which << " element " << i << ": analytic " << a << ", numeric " << numeric;
        res.worst = os.str();
      }
    }
  }
  return res;
}

}  // namespace arcnet::autograd
