#pragma once
// CUDA backend of ops/margin.hpp (nvcc only): ArcFace / CosFace / combined margin logits from
// cosines, and their backward, with the formulas of ops/cpu/margin.hpp.
//
// One grid-stride pass over (N, C): each element is s * cos except the target of its row, which
// gets s * phi(cos) from margin_target_logit, a __host__ __device__ copy of the CPU's
// target_logit. Its trigonometry of the margin (cos m2, sin m2, cos(pi - m2), m2 sin m2) and the
// minimum sine are computed once per row on the host with the same std:: calls as the CPU, and
// the device does the rest with IEEE round-to-nearest intrinsics (no fused multiply-adds): for
// m1 = 1 (ArcFace, CosFace) the target logit and its slope are the CPU's bit for bit, so both
// backends take the same branch even for a cosine exactly at the fallback threshold, where the
// logit jumps. Only m1 != 1 (SphereFace-style) calls acos/cos/sin on the device, which may differ
// from the host's libm by an ulp or two. The non-target products use the same round-to-nearest
// intrinsics, so the whole forward matches the CPU exactly for m1 = 1.
#include <cmath>
#include <cstdint>
#include <vector>

#include "arcnet/core/cuda.hpp"
#include "arcnet/ops/cuda/rounding.cuh"
#include "arcnet/core/tensor.hpp"

namespace arcnet::ops {

namespace cuda_kernels {

/// What the target logit needs of its class's margin m2, computed on the host with the CPU's
/// std:: calls.
struct margin_row {
  double m2;         // the additive angular margin
  double cos_m2;     // std::cos(m2)
  double sin_m2;     // std::sin(m2)
  double threshold;  // std::cos(M_PI - m2): ArcFace's fallback where cos <= threshold
  double shift;      // std::sin(m2) * m2: the fallback is cos - shift
};
/// The options as the kernels need them.
struct margin_params {
  double scale, m1, m3;
  double min_sine;  // margin_impl<cpu>::min_sine<T>()
  bool easy_margin;
  bool pure_arcface;  // m1 == 1 and m3 == 0
};

/// phi(c) and dphi/dc for one target cosine: margin_impl<cpu>::target_logit, step for step.
/// std::clamp and std::max are spelt out with their comparisons (NaN passes clamp and is
/// replaced by max, as in the standard library).
__host__ __device__ inline void margin_target_logit(double c, margin_row const& r, margin_params const& o, double& phi,
                                                    double& dphi) {
  double const cc = c < -1.0 ? -1.0 : (1.0 < c ? 1.0 : c);
  double const sq = mul_rn(sub_rn(1.0, cc), add_rn(1.0, cc));
  double const sine = sqrt_rn(0.0 < sq ? sq : 0.0);  // sin(theta), theta in [0, pi]
  double const sine_d = sine < o.min_sine ? o.min_sine : sine;
  if (o.m1 == 1.0) {
    phi = sub_rn(sub_rn(mul_rn(cc, r.cos_m2), mul_rn(sine, r.sin_m2)), o.m3);
    dphi = add_rn(r.cos_m2, div_rn(mul_rn(cc, r.sin_m2), sine_d));
  } else {
    double const a = add_rn(mul_rn(o.m1, ::acos(cc)), r.m2);
    phi = sub_rn(::cos(a), o.m3);
    dphi = div_rn(mul_rn(::sin(a), o.m1), sine_d);
  }
  if (!o.pure_arcface) return;
  if (o.easy_margin) {
    if (!(cc > 0)) phi = cc, dphi = 1;
  } else if (!(cc > r.threshold)) {
    phi = sub_rn(cc, r.shift);  // mmpretrain: sin(pi - m) * m
    dphi = 1;
  }
}

/// y = s * cos everywhere but the target of each row, where y = s * phi(cos) (rounded from double).
template <class T>
__global__ void margin_forward(T const* cosine, std::int64_t const* targets, margin_row const* rows, margin_params o,
                               T* y, index_t n, index_t c) {
  T const s = static_cast<T>(o.scale);
  index_t const total = n * c;
  for (index_t k = blockIdx.x * index_t(blockDim.x) + threadIdx.x; k < total; k += index_t(gridDim.x) * blockDim.x) {
    index_t const i = k / c, j = k - i * c;
    T const v = cosine[k];
    if (j == static_cast<index_t>(targets[i])) {
      double phi, dphi;
      margin_target_logit(static_cast<double>(v), rows[i], o, phi, dphi);
      y[k] = static_cast<T>(mul_rn(o.scale, phi));
    } else {
      y[k] = mul_rn(s, v);
    }
  }
}

/// dcos += s * dy everywhere but the target of each row, where dcos += s * dphi * dy (in double,
/// rounded to T before the sum, as the CPU).
template <class T>
__global__ void margin_backward(T const* cosine, std::int64_t const* targets, margin_row const* rows, margin_params o,
                                T const* dy, T* dcos, index_t n, index_t c) {
  T const s = static_cast<T>(o.scale);
  index_t const total = n * c;
  for (index_t k = blockIdx.x * index_t(blockDim.x) + threadIdx.x; k < total; k += index_t(gridDim.x) * blockDim.x) {
    index_t const i = k / c, j = k - i * c;
    if (j == static_cast<index_t>(targets[i])) {
      double phi, dphi;
      margin_target_logit(static_cast<double>(cosine[k]), rows[i], o, phi, dphi);
      dcos[k] = add_rn(dcos[k], static_cast<T>(mul_rn(mul_rn(o.scale, dphi), static_cast<double>(dy[k]))));
    } else {
      dcos[k] = add_rn(dcos[k], mul_rn(s, dy[k]));
    }
  }
}

}  // namespace cuda_kernels

template <>
struct margin_impl<cuda> {
  template <class T>
  static void forward(tensor<T, cuda> const& cosine, std::vector<std::int64_t> const& targets,
                      std::vector<double> const& margins, margin_options const& o, tensor<T, cuda>& y) {
    index_t const n = cosine.size(0), c = cosine.size(1);
    if (n <= 0 || c <= 0) return;
    auto t = device_targets(targets);
    auto r = device_rows(targets, margins);
    ARCNET_CUDA_KERNEL(gpu::blocks_for(n * c), gpu::block_threads, 0, gpu::stream(), cuda_kernels::margin_forward)(
        cosine.data(), t.data(), reinterpret_cast<cuda_kernels::margin_row const*>(r.data()), params<T>(o), y.data(), n,
        c);
    ARCNET_CUDA_LAUNCH_CHECK("margin_forward");
  }

  template <class T>
  static void backward(tensor<T, cuda> const& cosine, std::vector<std::int64_t> const& targets,
                       std::vector<double> const& margins, margin_options const& o, tensor<T, cuda> const& dy,
                       tensor<T, cuda>& dcos) {
    index_t const n = cosine.size(0), c = cosine.size(1);
    if (n <= 0 || c <= 0) return;
    auto t = device_targets(targets);
    auto r = device_rows(targets, margins);
    ARCNET_CUDA_KERNEL(gpu::blocks_for(n * c), gpu::block_threads, 0, gpu::stream(), cuda_kernels::margin_backward)(
        cosine.data(), t.data(), reinterpret_cast<cuda_kernels::margin_row const*>(r.data()), params<T>(o), dy.data(),
        dcos.data(), n, c);
    ARCNET_CUDA_LAUNCH_CHECK("margin_backward");
  }

 private:
  static_assert(sizeof(cuda_kernels::margin_row) == 5 * sizeof(double), "margin_row is five packed doubles");

  template <class T>
  static cuda_kernels::margin_params params(margin_options const& o) {
    return {o.scale, o.m1, o.m3, margin_impl<cpu>::min_sine<T>(), o.easy_margin, margin_impl<cpu>::pure_arcface(o)};
  }
  /// The targets on the device (a copy from pageable memory has read the vector when it returns).
  static tensor<std::int64_t, cuda> device_targets(std::vector<std::int64_t> const& targets) {
    auto t = tensor<std::int64_t, cuda>::uninitialized(shape{static_cast<index_t>(targets.size())});
    gpu::copy(t.data(), targets.data(), static_cast<index_t>(targets.size()), cudaMemcpyHostToDevice);
    return t;
  }
  /// One margin_row per row, for the margin of its target class, as five doubles on the device:
  /// N rows rather than C classes, as only targets need them.
  static tensor<double, cuda> device_rows(std::vector<std::int64_t> const& targets,
                                          std::vector<double> const& margins) {
    auto const n = static_cast<index_t>(targets.size());
    std::vector<cuda_kernels::margin_row> host(targets.size());
    for (std::size_t i = 0; i < targets.size(); ++i) {
      if (targets[i] < 0) continue;  // no target in this row: the kernels never read its entry
      double const m2 = margins[static_cast<std::size_t>(targets[i])];
      host[i] = {m2, std::cos(m2), std::sin(m2), std::cos(M_PI - m2), std::sin(m2) * m2};
    }
    auto d = tensor<double, cuda>::uninitialized(shape{n, 5});
    gpu::copy(d.data(), reinterpret_cast<double const*>(host.data()), n * 5, cudaMemcpyHostToDevice);
    return d;
  }
};

}  // namespace arcnet::ops
