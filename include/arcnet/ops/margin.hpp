#pragma once
// Angular-margin logits (ArcFace, CosFace, SphereFace and their combination) from cosines:
// logit_ij = s * phi_i       where j is the target of row i,   phi = cos(m1 * theta + m2_j) - m3,
//            s * cos_ij      elsewhere,                         theta = acos(cos_ij).
// For pure ArcFace (m1 = 1, m3 = 0), as mmpretrain and insightface: with easy_margin, phi is used
// only where cos > 0; otherwise phi is replaced by cos - m2 * sin(m2) where cos <= cos(pi - m2),
// which keeps the logit decreasing in theta. One fused op: forward and backward touch only the
// target column besides the scaling.
#include <cmath>
#include <cstdint>
#include <vector>

#include "arcnet/autograd/variable.hpp"

namespace arcnet::ops {

struct margin_options {
  double scale = 64.0;       // s
  double m1 = 1.0;           // multiplicative angular margin (SphereFace); 1 = none
  double m3 = 0.0;           // additive cosine margin (CosFace); 0 = none
  bool easy_margin = false;  // ArcFace only: apply the margin only where cos > 0
};

/// The backends (ops/cpu/margin.hpp, ops/cuda/margin.cuh): forward(cosine, targets, margins, o, y)
/// and backward(cosine, targets, margins, o, dy, dcos). A target of -1 marks a row without a
/// target among these columns (all of it s * cos): distributed::partial_fc_head's rows whose
/// class lives on another rank. The public functions below reject it.
template <class D>
struct margin_impl {
  static_assert(detail::always_false<D>, "arcnet::ops margin: no backend for this device; CUDA backends exist only "
                                         "in translation units compiled by nvcc (.cu)");
};

}  // namespace arcnet::ops

#include "arcnet/ops/cpu/margin.hpp"
#if defined(__CUDACC__)
#include "arcnet/ops/cuda/margin.cuh"
#endif

namespace arcnet::ops {

namespace detail_margin {
template <class T, class D>
void check(tensor<T, D> const& cosine, std::vector<std::int64_t> const& targets, std::vector<double> const& margins) {
  check_rank("angular_margin", "the cosines", cosine, 2);
  index_t n = cosine.size(0), c = cosine.size(1);
  if (static_cast<index_t>(targets.size()) != n)
    arcnet::detail::raise<shape_error>("angular_margin: expected ", n, " targets for cosines of shape ", cosine.shape(),
                                       ", got ", targets.size());
  if (static_cast<index_t>(margins.size()) != c)
    arcnet::detail::raise<shape_error>("angular_margin: expected one margin per class (", c, "), got ", margins.size());
  for (index_t i = 0; i < n; ++i)
    if (targets[static_cast<size_t>(i)] < 0 || targets[static_cast<size_t>(i)] >= c)
      arcnet::detail::raise<shape_error>("angular_margin: target ", targets[static_cast<size_t>(i)], " at row ", i,
                                         " is out of range for ", c, " classes");
}
}  // namespace detail_margin

/// Margin logits (N, C) from cosines (N, C); margins: m2 per class.
template <class T, class D>
tensor<T, D> angular_margin_forward(tensor<T, D> const& cosine, std::vector<std::int64_t> const& targets,
                                    std::vector<double> const& margins, margin_options o) {
  detail_margin::check(cosine, targets, margins);
  auto y = tensor<T, D>::uninitialized(cosine.shape());
  margin_impl<D>::forward(cosine, targets, margins, o, y);
  return y;
}
/// dcos += dlogits * dlogit/dcos.
template <class T, class D>
void angular_margin_backward(tensor<T, D> const& cosine, std::vector<std::int64_t> const& targets,
                             std::vector<double> const& margins, margin_options o, tensor<T, D> const& dy,
                             tensor<T, D>& dcos) {
  detail_margin::check(cosine, targets, margins);  // a raw caller's bad target must not index out of range
  check_same_shape("angular_margin_backward", cosine, dy);
  check_same_shape("angular_margin_backward", cosine, dcos);
  margin_impl<D>::backward(cosine, targets, margins, o, dy, dcos);
}

/// Differentiable margin logits; see the top of this file.
template <class T, class D>
variable<T, D> angular_margin(variable<T, D> const& cosine, std::vector<std::int64_t> const& targets,
                              std::vector<double> const& margins, margin_options o) {
  auto y = angular_margin_forward(cosine.value(), targets, margins, o);
  return autograd::make_op("angular_margin", y, {cosine}, [cosine, targets, margins, o](tensor<T, D> const& dy) mutable {
    if (cosine.requires_grad())
      angular_margin_backward(cosine.value(), targets, margins, o, dy, cosine.grad_for_accumulate());
  });
}

}  // namespace arcnet::ops
