#pragma once
// CUDA backend of ops/elementwise.hpp. The per-element math (ew_apply, ew_derivative) restates
// elementwise_impl<cpu>::apply / derivative as __host__ __device__ functions, case for case.
// Same-shape operations are one grid-stride kernel. Broadcasting sends the (merged) dimensions
// and strides to the kernel as a small struct by value. The backward of a broadcast binary op
// never uses atomics: each element of da / db is owned by one thread (few broadcast positions)
// or one block (a tree sum over many), so results do not depend on scheduling. Every element is
// read and written by the same thread, so in-place calls (y aliasing an input of the same shape,
// as the optimizers make them) are safe.
#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "arcnet/core/cuda.hpp"
#include "arcnet/ops/cuda/block_reduce.cuh"
#include "arcnet/ops/cuda/rounding.cuh"
#include "arcnet/core/tensor.hpp"
#include "arcnet/ops/detail/broadcast.hpp"
#include "arcnet/ops/detail/elementwise_kinds.hpp"

namespace arcnet::ops {

namespace cuda_kernels {

// ---- per-element math, float and double (and integers through double) ----------------------
template <class T>
__host__ __device__ inline T ew_exp(T x) {
  if constexpr (std::is_same_v<T, float>) return expf(x);
  else return T(::exp(double(x)));
}
template <class T>
__host__ __device__ inline T ew_log(T x) {
  if constexpr (std::is_same_v<T, float>) return logf(x);
  else return T(::log(double(x)));
}
template <class T>
__host__ __device__ inline T ew_sqrt(T x) {
  if constexpr (std::is_same_v<T, float>) return sqrtf(x);
  else return T(::sqrt(double(x)));
}
template <class T>
__host__ __device__ inline T ew_cos(T x) {
  if constexpr (std::is_same_v<T, float>) return cosf(x);
  else return T(::cos(double(x)));
}
template <class T>
__host__ __device__ inline T ew_sin(T x) {
  if constexpr (std::is_same_v<T, float>) return sinf(x);
  else return T(::sin(double(x)));
}
template <class T>
__host__ __device__ inline T ew_acos(T x) {
  if constexpr (std::is_same_v<T, float>) return acosf(x);
  else return T(::acos(double(x)));
}
template <class T>
__host__ __device__ inline T ew_pow(T x, T p) {
  if constexpr (std::is_same_v<T, float>) return powf(x, p);
  else return T(::pow(double(x), double(p)));
}
template <class T>
__host__ __device__ inline T ew_abs(T x) {
  if constexpr (std::is_same_v<T, float>) return fabsf(x);
  else if constexpr (std::is_floating_point_v<T>) return T(::fabs(double(x)));
  else return x < T(0) ? T(-x) : x;
}
/// acos_epsilon<T>() (a host constexpr function) restated for device code.
template <class T>
__host__ __device__ constexpr T ew_acos_epsilon() {
  return std::is_same_v<T, float> ? T(1e-7) : T(1e-12);
}
/// std::clamp(x, lo, hi): x < lo ? lo : (hi < x ? hi : x) (a NaN x passes through).
template <class T>
__host__ __device__ inline T ew_clamp(T x, T lo, T hi) {
  return x < lo ? lo : (hi < x ? hi : x);
}

/// elementwise_impl<cpu>::apply.
template <class T>
__host__ __device__ inline T ew_apply(unary_kind k, T x, T p, T q) {
  switch (k) {
    case unary_kind::neg: return -x;
    case unary_kind::exp: return ew_exp(x);
    case unary_kind::log: return ew_log(x);
    case unary_kind::sqrt: return ew_sqrt(x);
    case unary_kind::abs: return ew_abs(x);
    case unary_kind::cos: return ew_cos(x);
    case unary_kind::acos: return ew_acos(ew_clamp(x, T(-1) + ew_acos_epsilon<T>(), T(1) - ew_acos_epsilon<T>()));
    case unary_kind::relu: return x > T(0) ? x : T(0);
    case unary_kind::pow: return ew_pow(x, p);
    case unary_kind::clamp: return ew_clamp(x, p, q);
    case unary_kind::add_scalar: return x + p;
    case unary_kind::mul_scalar: return x * p;
    case unary_kind::rdiv_scalar: return p / x;
  }
  return x;
}
/// elementwise_impl<cpu>::derivative: d f(x) / dx given x and y = f(x).
template <class T>
__host__ __device__ inline T ew_derivative(unary_kind k, T x, T y, T p, T q) {
  switch (k) {
    case unary_kind::neg: return T(-1);
    case unary_kind::exp: return y;
    case unary_kind::log: return T(1) / x;
    case unary_kind::sqrt: return T(0.5) / y;
    case unary_kind::abs: return x > T(0) ? T(1) : (x < T(0) ? T(-1) : T(0));
    case unary_kind::cos: return -ew_sin(x);
    case unary_kind::acos: {
      T e = ew_acos_epsilon<T>();
      if (x < T(-1) + e || x > T(1) - e) return T(0);  // the clamp passes no gradient, as in PyTorch
      return T(-1) / ew_sqrt(T(1) - mul_rn(x, x));
    }
    case unary_kind::relu: return x > T(0) ? T(1) : T(0);
    case unary_kind::pow: return p == T(0) ? T(0) : p * ew_pow(x, p - T(1));
    case unary_kind::clamp: return (x >= p && x <= q) ? T(1) : T(0);
    case unary_kind::add_scalar: return T(1);
    case unary_kind::mul_scalar: return p;
    case unary_kind::rdiv_scalar: return -y / x;
  }
  return T(0);
}
/// elementwise_impl<cpu>::combine.
template <class T>
__host__ __device__ inline T ew_combine(binary_kind k, T a, T b) {
  switch (k) {
    case binary_kind::add: return a + b;
    case binary_kind::sub: return a - b;
    case binary_kind::mul: return a * b;
    case binary_kind::div: return a / b;
  }
  return a;
}
/// The contribution of one output element to da (z = b's value) or to db (x = a's value), as
/// the CPU's binary_backward adds it (its `gb -= v` is `gb += -v` here).
template <class T>
__host__ __device__ inline T ew_grad_a(binary_kind k, T d, T z) {
  switch (k) {
    case binary_kind::add: return d;
    case binary_kind::sub: return d;
    case binary_kind::mul: return mul_rn(d, z);
    case binary_kind::div: return d / z;
  }
  return T(0);
}
template <class T>
__host__ __device__ inline T ew_grad_b(binary_kind k, T d, T x, T z) {
  switch (k) {
    case binary_kind::add: return d;
    case binary_kind::sub: return -d;
    case binary_kind::mul: return mul_rn(d, x);
    case binary_kind::div: return -(mul_rn(d, x) / mul_rn(z, z));
  }
  return T(0);
}

// ---- broadcast indexing -----------------------------------------------------------------------
inline constexpr int ew_max_dims = 8;

/// Output dimensions (row-major, last innermost) with, per operand, the stride that each one
/// advances that operand's flat index by (0 on broadcast dimensions).
struct ew_layout {
  int rank = 0;
  index_t dims[ew_max_dims] = {};
  index_t s0[ew_max_dims] = {};
  index_t s1[ew_max_dims] = {};
};
/// Flat indices of operands 0 and 1 for the flat output index o.
__host__ __device__ inline void ew_offsets(ew_layout const& l, index_t o, index_t& i0, index_t& i1) {
  i0 = 0;
  i1 = 0;
  for (int d = l.rank - 1; d >= 0; --d) {
    index_t const c = o % l.dims[d];
    o /= l.dims[d];
    i0 += c * l.s0[d];
    i1 += c * l.s1[d];
  }
}

/// The layout of `out` read through strides s0 and s1 (each out.rank() long): dimensions of
/// size 1 dropped, neighbours merged where all three stride sets are contiguous across them
/// (out's own row-major strides included), so that a rank-4 broadcast usually becomes rank 1-3.
inline ew_layout ew_make_layout(shape const& out, std::vector<index_t> const& s0, std::vector<index_t> const& s1) {
  auto const own = out.strides();
  std::vector<index_t> d, a, b, o;
  for (int i = 0; i < out.rank(); ++i) {
    auto const u = static_cast<std::size_t>(i);
    if (out.dims()[u] == 1) continue;
    if (!d.empty() && a.back() == s0[u] * out.dims()[u] && b.back() == s1[u] * out.dims()[u] &&
        o.back() == own[u] * out.dims()[u]) {
      d.back() *= out.dims()[u];
      a.back() = s0[u];
      b.back() = s1[u];
      o.back() = own[u];
      continue;
    }
    d.push_back(out.dims()[u]);
    a.push_back(s0[u]);
    b.push_back(s1[u]);
    o.push_back(own[u]);
  }
  ARCNET_CHECK_AS(shape_error, static_cast<int>(d.size()) <= ew_max_dims, "element-wise op on cuda: output ", out,
                  " needs ", d.size(), " broadcast dimensions after merging; at most ", ew_max_dims,
                  " are supported");
  ew_layout l;
  l.rank = static_cast<int>(d.size());
  for (std::size_t i = 0; i < d.size(); ++i) {
    l.dims[i] = d[i];
    l.s0[i] = a[i];
    l.s1[i] = b[i];
  }
  return l;
}

/// How the elements of dy reach one element of a broadcast operand X: `kept` runs over X's own
/// elements (row-major, so its flat index is X's index), `reduced` over the broadcast positions
/// summed into it. Each dimension carries its stride in dy (s0) and in the other operand (s1).
struct ew_reduce_layout {
  ew_layout kept, reduced;
  index_t count = 1;  // elements of `reduced`
};

/// The reduce layout of operand X in the backward of a broadcast op with gradient shape `out`:
/// sx, so are the strides of X and of the other operand read as `out`. The dimensions X has
/// (size > 1 there, so a non-zero stride in X) are kept, in order, so that their row-major index
/// is X's flat index; the others (size > 1 in `out` only) are summed over.
inline ew_reduce_layout ew_make_reduce_layout(shape const& out, std::vector<index_t> const& sx,
                                              std::vector<index_t> const& so) {
  ARCNET_CHECK_AS(shape_error, out.rank() <= ew_max_dims, "element-wise backward on cuda: gradient ", out,
                  " has more than ", ew_max_dims, " dimensions");
  auto const& dims = out.dims();
  auto const own = out.strides();
  ew_reduce_layout l;
  for (std::size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] == 1) continue;
    ew_layout& part = sx[i] != 0 ? l.kept : l.reduced;
    part.dims[part.rank] = dims[i];
    part.s0[part.rank] = own[i];
    part.s1[part.rank] = so[i];
    ++part.rank;
    if (sx[i] == 0) l.count *= dims[i];
  }
  return l;
}

// ---- kernels ----------------------------------------------------------------------------------
// The unary kernels and axpy also take bf16 tensors: each element is widened to C = compute_t<T>
// (float), computed as for float, and rounded once as it is stored; for float and double C is T.
template <class T, class C = compute_t<T>>
__global__ void ew_unary_forward(unary_kind k, T const* x, T* y, index_t n, C p, C q) {
  for (index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x; i < n; i += index_t(gridDim.x) * blockDim.x)
    y[i] = convert<T>(ew_apply(k, convert<C>(x[i]), p, q));
}
template <class T, class C = compute_t<T>>
__global__ void ew_unary_backward(unary_kind k, T const* x, T const* y, T const* dy, T* dx, index_t n, C p, C q) {
  for (index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x; i < n; i += index_t(gridDim.x) * blockDim.x) {
    C const xi = convert<C>(x[i]), gi = convert<C>(dy[i]);
    if (k == unary_kind::relu) dx[i] = convert<T>(convert<C>(dx[i]) + (xi > C(0) ? gi : C(0)));  // no dy * 0
    else dx[i] = convert<T>(convert<C>(dx[i]) + mul_rn(gi, ew_derivative(k, xi, convert<C>(y[i]), p, q)));
  }
}
template <class T>
__global__ void ew_binary_same(binary_kind k, T const* a, T const* b, T* y, index_t n) {
  for (index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x; i < n; i += index_t(gridDim.x) * blockDim.x)
    y[i] = ew_combine(k, a[i], b[i]);
}
template <class T>
__global__ void ew_binary_broadcast(binary_kind k, T const* a, T const* b, T* y, index_t n, ew_layout l) {
  for (index_t o = blockIdx.x * index_t(blockDim.x) + threadIdx.x; o < n; o += index_t(gridDim.x) * blockDim.x) {
    index_t ia, ib;
    ew_offsets(l, o, ia, ib);
    y[o] = ew_combine(k, a[ia], b[ib]);
  }
}
/// Same shapes: every element of dy feeds one element of da and of db.
template <class T>
__global__ void ew_binary_backward_same(binary_kind k, T const* a, T const* b, T const* dy, T* da, T* db, index_t n) {
  for (index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x; i < n; i += index_t(gridDim.x) * blockDim.x) {
    T const x = a[i], z = b[i], d = dy[i];
    if (da) da[i] += ew_grad_a(k, d, z);
    if (db) db[i] += ew_grad_b(k, d, x, z);
  }
}

/// The contribution of dy element `o` to operand X's element `j`: `other` is the other operand
/// at index `io`; `x_is_a` says whether X is a (then other = b) or b (then other = a).
template <class T>
__host__ __device__ inline T ew_contribution(binary_kind k, bool x_is_a, T const* xs, index_t j, T const* other,
                                             index_t io, T d) {
  if (x_is_a) return ew_grad_a(k, d, other[io]);
  return ew_grad_b(k, d, other[io], xs[j]);
}

/// Broadcast backward, one thread per element of X, summing its (few) broadcast positions in
/// order.
template <class T>
__global__ void ew_binary_backward_thread(binary_kind k, bool x_is_a, T const* xs, T const* other, T const* dy,
                                          T* dx, index_t n, ew_reduce_layout l) {
  for (index_t j = blockIdx.x * index_t(blockDim.x) + threadIdx.x; j < n; j += index_t(gridDim.x) * blockDim.x) {
    index_t ko, kt;
    ew_offsets(l.kept, j, ko, kt);
    T acc = T(0);
    for (index_t t = 0; t < l.count; ++t) {
      index_t ro, rt;
      ew_offsets(l.reduced, t, ro, rt);
      acc += ew_contribution(k, x_is_a, xs, j, other, kt + rt, dy[ko + ro]);
    }
    dx[j] += acc;
  }
}
/// Broadcast backward, one block per element of X: the block's threads split its broadcast
/// positions and a tree sums them.
template <class T>
__global__ void ew_binary_backward_block(binary_kind k, bool x_is_a, T const* xs, T const* other, T const* dy,
                                         T* dx, index_t n, ew_reduce_layout l) {
  for (index_t j = blockIdx.x; j < n; j += gridDim.x) {
    index_t ko, kt;
    ew_offsets(l.kept, j, ko, kt);
    T acc = T(0);
    for (index_t t = threadIdx.x; t < l.count; t += blockDim.x) {
      index_t ro, rt;
      ew_offsets(l.reduced, t, ro, rt);
      acc += ew_contribution(k, x_is_a, xs, j, other, kt + rt, dy[ko + ro]);
    }
    acc = block_sum(acc);
    if (threadIdx.x == 0) dx[j] += acc;
  }
}

template <class T>
__global__ void ew_where_forward(T const* c, T const* a, T const* b, T* y, index_t n) {
  for (index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x; i < n; i += index_t(gridDim.x) * blockDim.x)
    y[i] = c[i] != T(0) ? a[i] : b[i];
}
template <class T>
__global__ void ew_where_backward(T const* c, T const* dy, T* da, T* db, index_t n) {
  for (index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x; i < n; i += index_t(gridDim.x) * blockDim.x) {
    if (c[i] != T(0)) {
      if (da) da[i] += dy[i];
    } else if (db) {
      db[i] += dy[i];
    }
  }
}
/// y[o] += alpha * x[ix(o)]; the layout's operand 0 is x.
template <class T>
__global__ void ew_broadcast_accumulate(T const* x, T* y, index_t n, ew_layout l, T alpha) {
  for (index_t o = blockIdx.x * index_t(blockDim.x) + threadIdx.x; o < n; o += index_t(gridDim.x) * blockDim.x) {
    index_t ix, unused;
    ew_offsets(l, o, ix, unused);
    y[o] += mul_rn(alpha, x[ix]);
  }
}
template <class T, class C = compute_t<T>>
__global__ void ew_axpy(C alpha, T const* x, T* y, index_t n) {
  for (index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x; i < n; i += index_t(gridDim.x) * blockDim.x)
    y[i] = convert<T>(convert<C>(y[i]) + mul_rn(alpha, convert<C>(x[i])));
}

}  // namespace cuda_kernels

template <>
struct elementwise_impl<cuda> {
  /// Below this many broadcast positions per gradient element one thread sums them; above, a block.
  static constexpr index_t block_reduce_threshold = 32;
  /// Blocks of the one-block-per-output kernels (they loop when there are more outputs).
  static constexpr index_t max_blocks = index_t(1) << 20;

  template <class T>
  static void unary_forward(unary_kind k, tensor<T, cuda> const& x, tensor<T, cuda>& y, T p, T q) {
    index_t const n = x.numel();
    if (n == 0) return;
    using C = compute_t<T>;
    ARCNET_CUDA_KERNEL(gpu::blocks_for(n), gpu::block_threads, 0, gpu::stream(), cuda_kernels::ew_unary_forward<T>)(
        k, x.data(), y.data(), n, convert<C>(p), convert<C>(q));
    ARCNET_CUDA_LAUNCH_CHECK("ew_unary_forward");
  }
  template <class T>
  static void unary_backward(unary_kind k, tensor<T, cuda> const& x, tensor<T, cuda> const& y,
                             tensor<T, cuda> const& dy, tensor<T, cuda>& dx, T p, T q) {
    index_t const n = x.numel();
    if (n == 0) return;
    using C = compute_t<T>;
    ARCNET_CUDA_KERNEL(gpu::blocks_for(n), gpu::block_threads, 0, gpu::stream(), cuda_kernels::ew_unary_backward<T>)(
        k, x.data(), y.data(), dy.data(), dx.data(), n, convert<C>(p), convert<C>(q));
    ARCNET_CUDA_LAUNCH_CHECK("ew_unary_backward");
  }

  template <class T>
  static void binary_forward(binary_kind k, tensor<T, cuda> const& a, tensor<T, cuda> const& b, tensor<T, cuda>& y) {
    index_t const n = y.numel();
    if (n == 0) return;
    if (a.shape() == b.shape()) {
      ARCNET_CUDA_KERNEL(gpu::blocks_for(n), gpu::block_threads, 0, gpu::stream(), cuda_kernels::ew_binary_same)(
          k, a.data(), b.data(), y.data(), n);
      ARCNET_CUDA_LAUNCH_CHECK("ew_binary_same");
      return;
    }
    auto const l = cuda_kernels::ew_make_layout(y.shape(), detail::broadcast_strides(a.shape(), y.shape()),
                                                detail::broadcast_strides(b.shape(), y.shape()));
    ARCNET_CUDA_KERNEL(gpu::blocks_for(n), gpu::block_threads, 0, gpu::stream(), cuda_kernels::ew_binary_broadcast)(
        k, a.data(), b.data(), y.data(), n, l);
    ARCNET_CUDA_LAUNCH_CHECK("ew_binary_broadcast");
  }

  /// da += dy * d(a op b)/da and db += dy * d(a op b)/db, summed over broadcast dimensions.
  /// da or db may be null.
  template <class T>
  static void binary_backward(binary_kind k, tensor<T, cuda> const& a, tensor<T, cuda> const& b,
                              tensor<T, cuda> const& dy, tensor<T, cuda>* da, tensor<T, cuda>* db) {
    index_t const n = dy.numel();
    if (n == 0 || (!da && !db)) return;
    if (a.shape() == b.shape()) {
      ARCNET_CUDA_KERNEL(gpu::blocks_for(n), gpu::block_threads, 0, gpu::stream(),
                         cuda_kernels::ew_binary_backward_same)(
          k, a.data(), b.data(), dy.data(), da ? da->data() : nullptr, db ? db->data() : nullptr, n);
      ARCNET_CUDA_LAUNCH_CHECK("ew_binary_backward_same");
      return;
    }
    auto const sa = detail::broadcast_strides(a.shape(), dy.shape());
    auto const sb = detail::broadcast_strides(b.shape(), dy.shape());
    if (da) reduce_into(k, true, a, b.data(), sa, sb, dy, *da);
    if (db) reduce_into(k, false, b, a.data(), sb, sa, dy, *db);
  }

  template <class T>
  static void where_forward(tensor<T, cuda> const& cond, tensor<T, cuda> const& a, tensor<T, cuda> const& b,
                            tensor<T, cuda>& y) {
    index_t const n = y.numel();
    if (n == 0) return;
    ARCNET_CUDA_KERNEL(gpu::blocks_for(n), gpu::block_threads, 0, gpu::stream(), cuda_kernels::ew_where_forward)(
        cond.data(), a.data(), b.data(), y.data(), n);
    ARCNET_CUDA_LAUNCH_CHECK("ew_where_forward");
  }
  template <class T>
  static void where_backward(tensor<T, cuda> const& cond, tensor<T, cuda> const& dy, tensor<T, cuda>* da,
                             tensor<T, cuda>* db) {
    index_t const n = dy.numel();
    if (n == 0 || (!da && !db)) return;
    ARCNET_CUDA_KERNEL(gpu::blocks_for(n), gpu::block_threads, 0, gpu::stream(), cuda_kernels::ew_where_backward)(
        cond.data(), dy.data(), da ? da->data() : nullptr, db ? db->data() : nullptr, n);
    ARCNET_CUDA_LAUNCH_CHECK("ew_where_backward");
  }

  /// y += alpha * x, x broadcast to y's shape.
  template <class T>
  static void broadcast_accumulate(tensor<T, cuda> const& x, tensor<T, cuda>& y, T alpha) {
    index_t const n = y.numel();
    if (n == 0) return;
    if (x.numel() == n) {  // same elements in the same order (a view of y's shape): no indexing
      axpy(alpha, x, y);
      return;
    }
    auto const l = cuda_kernels::ew_make_layout(y.shape(), detail::broadcast_strides(x.shape(), y.shape()),
                                                std::vector<index_t>(static_cast<std::size_t>(y.rank()), 0));
    ARCNET_CUDA_KERNEL(gpu::blocks_for(n), gpu::block_threads, 0, gpu::stream(),
                       cuda_kernels::ew_broadcast_accumulate)(
        x.data(), y.data(), n, l, alpha);
    ARCNET_CUDA_LAUNCH_CHECK("ew_broadcast_accumulate");
  }

  /// y += alpha * x (same numel).
  template <class T>
  static void axpy(T alpha, tensor<T, cuda> const& x, tensor<T, cuda>& y) {
    index_t const n = x.numel();
    if (n == 0) return;
    ARCNET_CUDA_KERNEL(gpu::blocks_for(n), gpu::block_threads, 0, gpu::stream(), cuda_kernels::ew_axpy<T>)(
        convert<compute_t<T>>(alpha), x.data(), y.data(), n);
    ARCNET_CUDA_LAUNCH_CHECK("ew_axpy");
  }

 private:
  /// dx += the gradient of operand X (x_is_a: X is a) summed over the dimensions of dy that X
  /// is broadcast along. sx, so: strides of X and of the other operand read as dy's shape.
  template <class T>
  static void reduce_into(binary_kind k, bool x_is_a, tensor<T, cuda> const& x, T const* other,
                          std::vector<index_t> const& sx, std::vector<index_t> const& so,
                          tensor<T, cuda> const& dy, tensor<T, cuda>& dx) {
    index_t const nx = x.numel();
    if (nx == 0) return;
    auto const l = cuda_kernels::ew_make_reduce_layout(dy.shape(), sx, so);
    if (l.count <= block_reduce_threshold) {
      ARCNET_CUDA_KERNEL(gpu::blocks_for(nx), gpu::block_threads, 0, gpu::stream(),
                         cuda_kernels::ew_binary_backward_thread)(
          k, x_is_a, x.data(), other, dy.data(), dx.data(), nx, l);
      ARCNET_CUDA_LAUNCH_CHECK("ew_binary_backward_thread");
    } else {
      auto const blocks = static_cast<unsigned>(std::min(nx, max_blocks));
      ARCNET_CUDA_KERNEL(blocks, gpu::block_threads, 0, gpu::stream(), cuda_kernels::ew_binary_backward_block)(
          k, x_is_a, x.data(), other, dy.data(), dx.data(), nx, l);
      ARCNET_CUDA_LAUNCH_CHECK("ew_binary_backward_block");
    }
  }
};

}  // namespace arcnet::ops
