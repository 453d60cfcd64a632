#pragma once
// The cuDNN path of conv2d_impl<cuda> (ops/cuda/conv2d.cuh), for float convolutions that are not
// pointwise, when the build found cuDNN (ARCNET_WITH_CUDNN). cuDNN reads the NHWC activations
// as stored; its NHWC filter layout is (Cout, KH, KW, Cin), so the weight (KH, KW, Cin, Cout) is
// transposed into a scratch copy per call (ResNet-50's weights are 100 MB: about 0.1 ms a pass on
// an H200) and the filter gradient transposed back as it is added.
//
// Precision (core/precision.hpp): fp32 mode uses no tensor cores (CUDNN_FMA_MATH); tf32 mode
// lets cuDNN round the fp32 operands to TF32 (CUDNN_DEFAULT_MATH); bf16 mode converts the
// operands to bf16 scratch copies, runs cuDNN on bf16 tensors with fp32 accumulation, and
// converts the result back to fp32 (as PyTorch's autocast: the output and the gradients are
// bf16-rounded). cuDNN has no mode that reads fp32 and multiplies in bf16, as cuBLAS's
// _FAST_16BF does; when no bf16 algorithm qualifies, bf16 mode falls back to TF32. Tensors that
// hold bf16 (arcnet::bfloat16) go to cuDNN as they are, with no conversion; they fall back to
// float copies only when cuDNN has no bf16 algorithm for the geometry.
//
// Algorithms come from cuDNN's heuristics (cudnnGet*_v7, no trial runs), once per geometry,
// data type and precision, keeping the first one that is deterministic (the same bits on every
// run, as the im2col path: a resumed run must repeat the uninterrupted one), needs no more
// workspace than conv2d_impl<cuda>::column_budget_bytes(), and in fp32 mode uses no tensor cores.
// When no algorithm qualifies, or a tensor is too large for cuDNN's 32-bit sizes, the functions
// return false and the caller runs the im2col path.
#include "arcnet/core/cudnn.hpp"

#if defined(__CUDACC__) && defined(ARCNET_WITH_CUDNN)
#include <array>
#include <atomic>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <type_traits>
#include <vector>

#include "arcnet/core/bfloat16.hpp"
#include "arcnet/core/precision.hpp"
#include "arcnet/core/tensor.hpp"
#include "arcnet/ops/cast.hpp"  // its kernels convert the operands and results of another type

namespace arcnet::ops {

namespace cuda_kernels {
/// out (Cout, depth) = w (depth, Cout)^T as S: the weight (KH, KW, Cin, Cout) in cuDNN's NHWC
/// filter layout (Cout, KH, KW, Cin).
template <class E, class S>
__global__ void conv2d_weight_to_krsc(E const* w, index_t depth, index_t cout, S* out) {
  for (index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x; i < depth * cout;
       i += index_t(gridDim.x) * blockDim.x) {
    index_t const o = i / depth, j = i - o * depth;
    out[i] = convert<S>(w[j * cout + o]);
  }
}
/// dw (depth, Cout) += g (Cout, depth)^T: a filter gradient from cuDNN added to ours (in float).
template <class S, class E>
__global__ void conv2d_add_krsc_to_weight(S const* g, index_t depth, index_t cout, E* dw) {
  for (index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x; i < depth * cout;
       i += index_t(gridDim.x) * blockDim.x) {
    index_t const j = i / cout, o = i - j * cout;
    dw[i] = convert<E>(convert<float>(dw[i]) + convert<float>(g[o * depth + j]));
  }
}
}  // namespace cuda_kernels

namespace cudnn_conv {

/// The algorithm chosen for one direction (forward, data or filter gradient) of one geometry.
struct choice {
  bool usable = false;
  int algo = 0;
  std::size_t workspace = 0;  // bytes
};
enum direction { forward_pass = 0, data_gradient = 1, filter_gradient = 2 };

/// One geometry's descriptors and algorithms. Fixed once made (each direction's math type lives in
/// its own convolution descriptor), so threads may share it; only `refused` changes, when cuDNN
/// turns down a call its heuristics offered (that direction then takes the im2col path).
struct plan {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv[3] = {nullptr, nullptr, nullptr};  // by direction
  choice chosen[3];
  mutable std::atomic<bool> refused[3] = {false, false, false};

  plan() {
    ARCNET_CUDNN_CHECK(cudnnCreateTensorDescriptor(&x));
    ARCNET_CUDNN_CHECK(cudnnCreateTensorDescriptor(&y));
    ARCNET_CUDNN_CHECK(cudnnCreateFilterDescriptor(&w));
    for (auto& c : conv) ARCNET_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&c));
  }
  ~plan() {  // no throw: statuses ignored
    cudnnDestroyTensorDescriptor(x);
    cudnnDestroyTensorDescriptor(y);
    cudnnDestroyFilterDescriptor(w);
    for (auto c : conv) cudnnDestroyConvolutionDescriptor(c);
  }
  plan(plan const&) = delete;
  plan& operator=(plan const&) = delete;

  bool usable(direction d) const { return chosen[d].usable && !refused[d]; }
};

/// How many cuDNN convolution calls (any direction) this process has made: tests and benchmarks
/// read it to know which path ran.
inline std::atomic<std::uint64_t>& runs() {
  static std::atomic<std::uint64_t> n{0};
  return n;
}
/// How many calls cuDNN turned down (CUDNN_STATUS_NOT_SUPPORTED or _BAD_PARAM for an algorithm
/// its heuristics offered) and the im2col path ran instead; the benchmark prints it.
inline std::atomic<std::uint64_t>& refusals() {
  static std::atomic<std::uint64_t> n{0};
  return n;
}

/// Whether a geometry fits cuDNN's int sizes and its 2^31-element limit per tensor.
inline bool fits(detail::conv2d_geometry const& g) {
  index_t const big = INT_MAX;
  for (index_t v : {g.n, g.h, g.w, g.cin, g.kh, g.kw, g.cout, g.ho, g.wo, g.pad_h, g.pad_w})
    if (v > big) return false;
  return g.n * g.h * g.w * g.cin <= big && g.n * g.ho * g.wo * g.cout <= big && g.depth() * g.cout <= big;
}

/// The first candidate of cuDNN's ranked list that is deterministic, within the workspace limit and
/// (fma_only: fp32 mode on float tensors) without tensor cores. Sets conv's math type to the one
/// chosen.
template <class Perf, class Query, class WorkspaceOf>
choice choose(cudnnConvolutionDescriptor_t conv, bool fma_only, std::size_t limit, int max_count, Query const& query,
              WorkspaceOf const& workspace_of) {
  std::vector<Perf> perf(static_cast<std::size_t>(max_count > 0 ? max_count : 1));
  int returned = 0;
  if (query(static_cast<int>(perf.size()), &returned, perf.data()) != CUDNN_STATUS_SUCCESS) return {};
  for (int i = 0; i < returned; ++i) {
    Perf const& p = perf[static_cast<std::size_t>(i)];
    if (p.status != CUDNN_STATUS_SUCCESS || p.determinism != CUDNN_DETERMINISTIC) continue;
    if (fma_only && p.mathType != CUDNN_FMA_MATH) continue;
    if (cudnnSetConvolutionMathType(conv, p.mathType) != CUDNN_STATUS_SUCCESS) continue;
    std::size_t bytes = 0;
    if (workspace_of(p.algo, &bytes) != CUDNN_STATUS_SUCCESS || bytes > limit) continue;
    return {true, static_cast<int>(p.algo), bytes};
  }
  return {};
}

/// Descriptors and algorithms for g (NHWC tensors of `type`: float or bf16, fp32 accumulation)
/// under a precision mode and workspace limit.
inline std::unique_ptr<plan> make_plan(detail::conv2d_geometry const& g, cudnnDataType_t type, precision::mode mode,
                                       std::size_t limit) {
  auto p = std::make_unique<plan>();
  auto const i = [](index_t v) { return static_cast<int>(v); };
  ARCNET_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->x, CUDNN_TENSOR_NHWC, type, i(g.n), i(g.cin), i(g.h), i(g.w)));
  ARCNET_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->y, CUDNN_TENSOR_NHWC, type, i(g.n), i(g.cout), i(g.ho), i(g.wo)));
  ARCNET_CUDNN_CHECK(cudnnSetFilter4dDescriptor(p->w, type, CUDNN_TENSOR_NHWC, i(g.cout), i(g.cin), i(g.kh), i(g.kw)));
  // bf16 tensors always use the tensor cores; float ones in fp32 mode never do
  bool const fma_only = mode == precision::mode::fp32 && type == CUDNN_DATA_FLOAT;
  cudnnMathType_t const math = fma_only ? CUDNN_FMA_MATH : CUDNN_DEFAULT_MATH;
  for (auto c : p->conv) {
    ARCNET_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(c, i(g.pad_h), i(g.pad_w), i(g.stride_h), i(g.stride_w),
                                                       i(g.dilation_h), i(g.dilation_w), CUDNN_CROSS_CORRELATION,
                                                       CUDNN_DATA_FLOAT));
    ARCNET_CUDNN_CHECK(cudnnSetConvolutionMathType(c, math));
  }
  int n = 0, c = 0, h = 0, w = 0;  // cuDNN must see the output arcnet computed
  ARCNET_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(p->conv[0], p->x, p->w, &n, &c, &h, &w));
  if (n != g.n || c != g.cout || h != g.ho || w != g.wo) return p;  // every direction unusable

  cudnnHandle_t const dnn = gpu::dnn();
  int count = 0;
  ARCNET_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(dnn, &count));
  cudnnConvolutionDescriptor_t const fwd = p->conv[0], data = p->conv[1], filter = p->conv[2];
  p->chosen[forward_pass] = choose<cudnnConvolutionFwdAlgoPerf_t>(
      fwd, fma_only, limit, count,
      [&](int k, int* r, cudnnConvolutionFwdAlgoPerf_t* out) {
        return cudnnGetConvolutionForwardAlgorithm_v7(dnn, p->x, p->w, fwd, p->y, k, r, out);
      },
      [&](cudnnConvolutionFwdAlgo_t a, std::size_t* bytes) {
        return cudnnGetConvolutionForwardWorkspaceSize(dnn, p->x, p->w, fwd, p->y, a, bytes);
      });
  ARCNET_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(dnn, &count));
  p->chosen[data_gradient] = choose<cudnnConvolutionBwdDataAlgoPerf_t>(
      data, fma_only, limit, count,
      [&](int k, int* r, cudnnConvolutionBwdDataAlgoPerf_t* out) {
        return cudnnGetConvolutionBackwardDataAlgorithm_v7(dnn, p->w, p->y, data, p->x, k, r, out);
      },
      [&](cudnnConvolutionBwdDataAlgo_t a, std::size_t* bytes) {
        return cudnnGetConvolutionBackwardDataWorkspaceSize(dnn, p->w, p->y, data, p->x, a, bytes);
      });
  ARCNET_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(dnn, &count));
  p->chosen[filter_gradient] = choose<cudnnConvolutionBwdFilterAlgoPerf_t>(
      filter, fma_only, limit, count,
      [&](int k, int* r, cudnnConvolutionBwdFilterAlgoPerf_t* out) {
        return cudnnGetConvolutionBackwardFilterAlgorithm_v7(dnn, p->x, p->y, filter, p->w, k, r, out);
      },
      [&](cudnnConvolutionBwdFilterAlgo_t a, std::size_t* bytes) {
        return cudnnGetConvolutionBackwardFilterWorkspaceSize(dnn, p->x, p->y, filter, p->w, a, bytes);
      });
  return p;
}

/// The plan for g on the current device for tensors of `type` under the current precision mode
/// and workspace limit, made on first use and kept for the process; null when g does not fit
/// cuDNN.
inline plan const* plan_for(detail::conv2d_geometry const& g, cudnnDataType_t type, std::size_t limit) {
  if (!fits(g)) return nullptr;
  precision::mode const mode = precision::matmul();
  using key_type = std::array<index_t, 17>;
  key_type const key{gpu::current_device(), static_cast<index_t>(type), static_cast<index_t>(mode),
                     static_cast<index_t>(limit), g.n, g.h, g.w, g.cin, g.kh, g.kw, g.cout, g.stride_h, g.stride_w,
                     g.pad_h, g.pad_w, g.dilation_h, g.dilation_w};
  static auto* plans = new std::map<key_type, std::unique_ptr<plan>>();  // never destroyed, as the handles
  static std::mutex mutex;
  std::lock_guard<std::mutex> lock(mutex);
  auto& slot = (*plans)[key];
  if (!slot) slot = make_plan(g, type, mode, limit);
  return slot.get();
}

/// Device scratch of at least `bytes` from the caching allocator (empty for 0).
inline tensor<float, cuda> scratch(std::size_t bytes) {
  return tensor<float, cuda>::uninitialized(shape{static_cast<index_t>((bytes + sizeof(float) - 1) / sizeof(float))});
}
template <class S>
S* elements(tensor<float, cuda>& t) {
  return reinterpret_cast<S*>(t.data());
}

/// out = (accumulate: out +) a result of n elements of S, as the tensors' type E (ops::cast's
/// kernels: the sum in float, rounded once).
template <class S, class E>
void result_to(S const* in, index_t n, E* out, bool accumulate) {
  if (accumulate) {
    ARCNET_CUDA_KERNEL(gpu::blocks_for(n), gpu::block_threads, 0, gpu::stream(),
                       cuda_kernels::cast_backward<S, E>)(in, out, n);
  } else {
    ARCNET_CUDA_KERNEL(gpu::blocks_for(n), gpu::block_threads, 0, gpu::stream(), cuda_kernels::cast_forward<S, E>)(
        in, out, n);
  }
  ARCNET_CUDA_LAUNCH_CHECK("conv2d result conversion");
}

/// The weight in cuDNN's filter layout, as S.
template <class S, class E>
tensor<float, cuda> krsc_weight(detail::conv2d_geometry const& g, E const* w) {
  index_t const count = g.cout * g.depth();
  auto out = scratch(static_cast<std::size_t>(count) * sizeof(S));
  ARCNET_CUDA_KERNEL(gpu::blocks_for(count), gpu::block_threads, 0, gpu::stream(),
                     cuda_kernels::conv2d_weight_to_krsc<E, S>)(w, g.depth(), g.cout, elements<S>(out));
  ARCNET_CUDA_LAUNCH_CHECK("conv2d_weight_to_krsc");
  return out;
}

/// `in` (n elements of E) as S: itself when S is E, else a copy converted on first use and kept
/// for the directions that share it.
struct converted {
  tensor<float, cuda> hold;
  template <class S, class E>
  S const* get(E const* in, index_t n) {
    if constexpr (std::is_same_v<S, E>) {
      return in;
    } else {
      if (!hold.defined()) {
        hold = scratch(static_cast<std::size_t>(n) * sizeof(S));
        ARCNET_CUDA_KERNEL(gpu::blocks_for(n), gpu::block_threads, 0, gpu::stream(), cuda_kernels::cast_forward<E, S>)(
            in, elements<S>(hold), n);
        ARCNET_CUDA_LAUNCH_CHECK("conv2d operand conversion");
      }
      return elements<S>(hold);
    }
  }
};

/// After a cuDNN call: true when it ran; false when cuDNN turned the call down (an algorithm its
/// heuristics offered but this input does not support), after which that direction of the plan
/// takes the im2col path; any other failure is a device_error.
inline bool ran(cudnnStatus_t status, plan const& p, direction d, char const* call) {
  if (status == CUDNN_STATUS_SUCCESS) {
    ++runs();
    return true;
  }
  if (status == CUDNN_STATUS_NOT_SUPPORTED || status == CUDNN_STATUS_BAD_PARAM) {
    p.refused[d] = true;
    ++refusals();
    return false;
  }
  arcnet::detail::cudnn_check(status, call, __FILE__, __LINE__);
  return false;
}

/// cuDNN runs on tensors of S (float or bfloat16); the tensors hold E. When the two differ the
/// operands are converted to scratch copies and the result converted back.
template <class S, class E>
bool run_forward(plan const& p, detail::conv2d_geometry const& g, E const* x, E const* w, E* y) {
  constexpr bool same = std::is_same_v<S, E>;
  index_t const y_count = g.n * g.ho * g.wo * g.cout;
  converted xc;
  S const* xs = xc.get<S>(x, g.n * g.h * g.w * g.cin);
  auto wk = krsc_weight<S>(g, w);
  tensor<float, cuda> y_hold;
  if constexpr (!same) y_hold = scratch(static_cast<std::size_t>(y_count) * sizeof(S));
  S* ys = same ? reinterpret_cast<S*>(y) : elements<S>(y_hold);
  choice const& c = p.chosen[forward_pass];
  auto ws = scratch(c.workspace);
  float const one = 1, zero = 0;
  if (!ran(cudnnConvolutionForward(gpu::dnn(), &one, p.x, xs, p.w, elements<S>(wk), p.conv[forward_pass],
                                   static_cast<cudnnConvolutionFwdAlgo_t>(c.algo), ws.data(), c.workspace, &zero, p.y,
                                   ys),
           p, forward_pass, "cudnnConvolutionForward"))
    return false;
  if constexpr (!same) result_to(ys, y_count, y, false);
  return true;
}

/// dx += dL/dx: in place (beta = 1) when cuDNN's tensors are the tensors, else through a scratch.
template <class S, class E>
bool run_data_gradient(plan const& p, detail::conv2d_geometry const& g, E const* w, converted& dyc, E const* dy,
                       E* dx) {
  constexpr bool same = std::is_same_v<S, E>;
  index_t const x_count = g.n * g.h * g.w * g.cin;
  S const* dys = dyc.get<S>(dy, g.n * g.ho * g.wo * g.cout);
  auto wk = krsc_weight<S>(g, w);
  tensor<float, cuda> dx_hold;
  if constexpr (!same) dx_hold = scratch(static_cast<std::size_t>(x_count) * sizeof(S));
  S* dxs = same ? reinterpret_cast<S*>(dx) : elements<S>(dx_hold);
  choice const& c = p.chosen[data_gradient];
  auto ws = scratch(c.workspace);
  float const one = 1, zero = 0;
  if (!ran(cudnnConvolutionBackwardData(gpu::dnn(), &one, p.w, elements<S>(wk), p.y, dys, p.conv[data_gradient],
                                        static_cast<cudnnConvolutionBwdDataAlgo_t>(c.algo), ws.data(), c.workspace,
                                        same ? &one : &zero, p.x, dxs),
           p, data_gradient, "cudnnConvolutionBackwardData"))
    return false;
  if constexpr (!same) result_to(dxs, x_count, dx, true);
  return true;
}

/// dw += dL/dw, through a scratch in cuDNN's filter layout.
template <class S, class E>
bool run_filter_gradient(plan const& p, detail::conv2d_geometry const& g, E const* x, converted& dyc, E const* dy,
                         E* dw) {
  converted xc;
  S const* xs = xc.get<S>(x, g.n * g.h * g.w * g.cin);
  S const* dys = dyc.get<S>(dy, g.n * g.ho * g.wo * g.cout);
  index_t const count = g.cout * g.depth();
  auto dwk = scratch(static_cast<std::size_t>(count) * sizeof(S));
  choice const& c = p.chosen[filter_gradient];
  auto ws = scratch(c.workspace);
  float const one = 1, zero = 0;
  if (!ran(cudnnConvolutionBackwardFilter(gpu::dnn(), &one, p.x, xs, p.y, dys, p.conv[filter_gradient],
                                          static_cast<cudnnConvolutionBwdFilterAlgo_t>(c.algo), ws.data(),
                                          c.workspace, &zero, p.w, elements<S>(dwk)),
           p, filter_gradient, "cudnnConvolutionBackwardFilter"))
    return false;
  ARCNET_CUDA_KERNEL(gpu::blocks_for(count), gpu::block_threads, 0, gpu::stream(),
                     cuda_kernels::conv2d_add_krsc_to_weight<S, E>)(elements<S>(dwk), g.depth(), g.cout, dw);
  ARCNET_CUDA_LAUNCH_CHECK("conv2d_add_krsc_to_weight");
  return true;
}

/// Runs one direction: on bf16 tensors when the tensors are bf16 or the mode is bf16 and cuDNN has
/// an algorithm for them, else on float ones; false when neither ran. run(plan, bf16) runs it on a
/// plan.
template <class E, class Run>
bool run_direction(detail::conv2d_geometry const& g, std::size_t limit, direction d, Run const& run) {
  if (std::is_same_v<E, bfloat16> || precision::matmul() == precision::mode::bf16) {
    plan const* p = plan_for(g, CUDNN_DATA_BFLOAT16, limit);
    if (p && p->usable(d) && run(*p, true)) return true;
  }
  plan const* p = plan_for(g, CUDNN_DATA_FLOAT, limit);
  return p && p->usable(d) && run(*p, false);
}

/// y = conv(x, w), assigned; false (nothing done) when cuDNN has no algorithm for g here. E: float
/// or bfloat16.
template <class E>
bool forward(detail::conv2d_geometry const& g, E const* x, E const* w, E* y, std::size_t limit) {
  return run_direction<E>(g, limit, forward_pass, [&](plan const& p, bool bf16) {
    return bf16 ? run_forward<bfloat16>(p, g, x, w, y) : run_forward<float>(p, g, x, w, y);
  });
}

/// dx += dL/dx and dw += dL/dw for those of them cuDNN can compute here; each one it computed is
/// set to null, so the caller computes what is left.
template <class E>
void backward(detail::conv2d_geometry const& g, E const* x, E const* w, E const* dy, E*& dx, E*& dw,
              std::size_t limit) {
  converted dyc;  // dy's copy of the other type, when one is needed, made once for both directions
  if (dx && run_direction<E>(g, limit, data_gradient, [&](plan const& p, bool bf16) {
        return bf16 ? run_data_gradient<bfloat16>(p, g, w, dyc, dy, dx) : run_data_gradient<float>(p, g, w, dyc, dy, dx);
      }))
    dx = nullptr;
  if (dw && run_direction<E>(g, limit, filter_gradient, [&](plan const& p, bool bf16) {
        return bf16 ? run_filter_gradient<bfloat16>(p, g, x, dyc, dy, dw)
                    : run_filter_gradient<float>(p, g, x, dyc, dy, dw);
      }))
    dw = nullptr;
}

}  // namespace cudnn_conv
}  // namespace arcnet::ops

#endif
