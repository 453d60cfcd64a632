#pragma once
// The emulator's cuDNN (see emulator.hpp): the part of the legacy convolution API that
// ops/cuda/conv2d_cudnn.cuh calls, for NHWC tensors and NHWC (K, R, S, C) filters of float or
// bf16, computed on the host in double. Float operands are rounded to tf32 unless the math type
// is CUDNN_FMA_MATH, as the tensor cores read them; bf16 results are rounded to nearest even.
//
// Each direction offers three algorithms, ranked as cuDNN's heuristics would rank them:
//   0  non-deterministic: its result changes in the last bits from one call to the next, so a
//      caller that picks it fails a "same bits on every run" test;
//   1  deterministic, with a workspace of one im2col matrix (rows x K x R x S floats);
//   2  deterministic, without workspace.
// Every call checks that each operand and the workspace lie inside one device allocation, that
// the workspace is as large as the algorithm needs, and that the descriptors agree.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "cuda_runtime.h"
#include "cublas_v2.h"  // arcnet_emu::round_mantissa

typedef enum {
  CUDNN_STATUS_SUCCESS = 0,
  CUDNN_STATUS_NOT_INITIALIZED = 1001,
  CUDNN_STATUS_BAD_PARAM = 2000,
  CUDNN_STATUS_NOT_SUPPORTED = 3000,
  CUDNN_STATUS_EXECUTION_FAILED = 5000,
} cudnnStatus_t;
typedef enum {
  CUDNN_DATA_FLOAT = 0,
  CUDNN_DATA_DOUBLE = 1,
  CUDNN_DATA_HALF = 2,
  CUDNN_DATA_BFLOAT16 = 9,
} cudnnDataType_t;
typedef enum { CUDNN_TENSOR_NCHW = 0, CUDNN_TENSOR_NHWC = 1 } cudnnTensorFormat_t;
typedef enum { CUDNN_CONVOLUTION = 0, CUDNN_CROSS_CORRELATION = 1 } cudnnConvolutionMode_t;
typedef enum {
  CUDNN_DEFAULT_MATH = 0,
  CUDNN_TENSOR_OP_MATH = 1,
  CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION = 2,
  CUDNN_FMA_MATH = 3,
} cudnnMathType_t;
typedef enum { CUDNN_NON_DETERMINISTIC = 0, CUDNN_DETERMINISTIC = 1 } cudnnDeterminism_t;
typedef enum {
  CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM = 0,
  CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM = 1,
  CUDNN_CONVOLUTION_FWD_ALGO_GEMM = 2,
} cudnnConvolutionFwdAlgo_t;
typedef enum {
  CUDNN_CONVOLUTION_BWD_DATA_ALGO_0 = 0,
  CUDNN_CONVOLUTION_BWD_DATA_ALGO_1 = 1,
  CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT = 2,
} cudnnConvolutionBwdDataAlgo_t;
typedef enum {
  CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0 = 0,
  CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1 = 1,
  CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT = 2,
} cudnnConvolutionBwdFilterAlgo_t;

template <class Algo>
struct arcnet_emu_algo_perf {
  Algo algo;
  cudnnStatus_t status;
  float time;
  std::size_t memory;
  cudnnDeterminism_t determinism;
  cudnnMathType_t mathType;
  int reserved[3];
};
typedef arcnet_emu_algo_perf<cudnnConvolutionFwdAlgo_t> cudnnConvolutionFwdAlgoPerf_t;
typedef arcnet_emu_algo_perf<cudnnConvolutionBwdDataAlgo_t> cudnnConvolutionBwdDataAlgoPerf_t;
typedef arcnet_emu_algo_perf<cudnnConvolutionBwdFilterAlgo_t> cudnnConvolutionBwdFilterAlgoPerf_t;

struct arcnet_emu_dnn {
  cudaStream_t stream = nullptr;
};
struct arcnet_emu_tensor_desc {
  bool set = false;
  cudnnDataType_t type = CUDNN_DATA_FLOAT;
  cudnnTensorFormat_t format = CUDNN_TENSOR_NHWC;
  int n = 0, c = 0, h = 0, w = 0;  // a filter: n = K (outputs), c = C, h = R, w = S
};
struct arcnet_emu_conv_desc {
  bool set = false;
  int pad_h = 0, pad_w = 0, u = 1, v = 1, dil_h = 1, dil_w = 1;
  cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
  cudnnDataType_t compute = CUDNN_DATA_FLOAT;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
};
typedef arcnet_emu_dnn* cudnnHandle_t;
typedef arcnet_emu_tensor_desc* cudnnTensorDescriptor_t;
struct arcnet_emu_filter_desc : arcnet_emu_tensor_desc {};
typedef arcnet_emu_filter_desc* cudnnFilterDescriptor_t;
typedef arcnet_emu_conv_desc* cudnnConvolutionDescriptor_t;

inline char const* cudnnGetErrorString(cudnnStatus_t s) {
  switch (s) {
    case CUDNN_STATUS_SUCCESS: return "CUDNN_STATUS_SUCCESS";
    case CUDNN_STATUS_NOT_INITIALIZED: return "CUDNN_STATUS_NOT_INITIALIZED";
    case CUDNN_STATUS_BAD_PARAM: return "CUDNN_STATUS_BAD_PARAM (cuda emulator: see stderr)";
    case CUDNN_STATUS_NOT_SUPPORTED: return "CUDNN_STATUS_NOT_SUPPORTED (cuda emulator: see stderr)";
    case CUDNN_STATUS_EXECUTION_FAILED: return "CUDNN_STATUS_EXECUTION_FAILED";
  }
  return "CUDNN_STATUS_UNKNOWN";
}

inline cudnnStatus_t cudnnCreate(cudnnHandle_t* h) {
  *h = new arcnet_emu_dnn();
  return CUDNN_STATUS_SUCCESS;
}
inline cudnnStatus_t cudnnDestroy(cudnnHandle_t h) {
  delete h;
  return CUDNN_STATUS_SUCCESS;
}
inline cudnnStatus_t cudnnSetStream(cudnnHandle_t h, cudaStream_t s) {
  if (!h) return CUDNN_STATUS_NOT_INITIALIZED;
  h->stream = s;
  return CUDNN_STATUS_SUCCESS;
}

inline cudnnStatus_t cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t* d) {
  *d = new arcnet_emu_tensor_desc();
  return CUDNN_STATUS_SUCCESS;
}
inline cudnnStatus_t cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t d) {
  delete d;
  return CUDNN_STATUS_SUCCESS;
}
inline cudnnStatus_t cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t* d) {
  *d = new arcnet_emu_filter_desc();
  return CUDNN_STATUS_SUCCESS;
}
inline cudnnStatus_t cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t d) {
  delete d;
  return CUDNN_STATUS_SUCCESS;
}
inline cudnnStatus_t cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t* d) {
  *d = new arcnet_emu_conv_desc();
  return CUDNN_STATUS_SUCCESS;
}
inline cudnnStatus_t cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t d) {
  delete d;
  return CUDNN_STATUS_SUCCESS;
}

inline cudnnStatus_t cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t d, cudnnTensorFormat_t format,
                                                cudnnDataType_t type, int n, int c, int h, int w) {
  if (!d || n <= 0 || c <= 0 || h <= 0 || w <= 0) return CUDNN_STATUS_BAD_PARAM;
  *d = arcnet_emu_tensor_desc{true, type, format, n, c, h, w};
  return CUDNN_STATUS_SUCCESS;
}
inline cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t d, cudnnDataType_t type,
                                                cudnnTensorFormat_t format, int k, int c, int h, int w) {
  if (!d || k <= 0 || c <= 0 || h <= 0 || w <= 0) return CUDNN_STATUS_BAD_PARAM;
  static_cast<arcnet_emu_tensor_desc&>(*d) = arcnet_emu_tensor_desc{true, type, format, k, c, h, w};
  return CUDNN_STATUS_SUCCESS;
}
inline cudnnStatus_t cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t d, int pad_h, int pad_w, int u,
                                                     int v, int dil_h, int dil_w, cudnnConvolutionMode_t mode,
                                                     cudnnDataType_t compute) {
  if (!d || pad_h < 0 || pad_w < 0 || u <= 0 || v <= 0 || dil_h <= 0 || dil_w <= 0) return CUDNN_STATUS_BAD_PARAM;
  cudnnMathType_t const math = d->math;
  *d = arcnet_emu_conv_desc{true, pad_h, pad_w, u, v, dil_h, dil_w, mode, compute, math};
  return CUDNN_STATUS_SUCCESS;
}
inline cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t d, cudnnMathType_t math) {
  if (!d) return CUDNN_STATUS_BAD_PARAM;
  d->math = math;
  return CUDNN_STATUS_SUCCESS;
}
inline cudnnStatus_t cudnnGetConvolution2dForwardOutputDim(cudnnConvolutionDescriptor_t conv,
                                                           cudnnTensorDescriptor_t x, cudnnFilterDescriptor_t w,
                                                           int* n, int* c, int* h, int* wo) {
  if (!conv || !conv->set || !x || !x->set || !w || !w->set || x->c != w->c) return CUDNN_STATUS_BAD_PARAM;
  auto const out = [](int in, int k, int pad, int stride, int dil) {
    int const span = in + 2 * pad - dil * (k - 1) - 1;
    return span < 0 ? 0 : span / stride + 1;
  };
  *n = x->n, *c = w->n;
  *h = out(x->h, w->h, conv->pad_h, conv->u, conv->dil_h);
  *wo = out(x->w, w->w, conv->pad_w, conv->v, conv->dil_w);
  return CUDNN_STATUS_SUCCESS;
}

namespace arcnet_emu {
namespace dnn {

inline constexpr int algo_count = 3;

/// The shapes of one convolution, checked against each other.
struct problem {
  int n, c, h, w;      // input
  int k, r, s;         // filter
  int p, q;            // output height, width
  arcnet_emu_conv_desc conv;
  cudnnDataType_t type;  // of all three tensors
  std::size_t elem() const { return type == CUDNN_DATA_BFLOAT16 ? 2 : sizeof(float); }
  std::size_t x_count() const { return std::size_t(n) * h * w * c; }
  std::size_t y_count() const { return std::size_t(n) * p * q * k; }
  std::size_t w_count() const { return std::size_t(k) * r * s * c; }
  /// Algorithm 1's workspace: one im2col matrix.
  std::size_t workspace(int algo) const { return algo == 1 ? elem() * std::size_t(n) * p * q * r * s * c : 0; }
};

inline cudnnStatus_t describe(cudnnTensorDescriptor_t x, cudnnFilterDescriptor_t w, cudnnConvolutionDescriptor_t conv,
                              cudnnTensorDescriptor_t y, problem* out) {
  if (!x || !w || !conv || !y || !x->set || !w->set || !conv->set || !y->set) {
    report("cudnn: a descriptor is null or was never set");
    return CUDNN_STATUS_BAD_PARAM;
  }
  if (x->format != CUDNN_TENSOR_NHWC || y->format != CUDNN_TENSOR_NHWC || w->format != CUDNN_TENSOR_NHWC ||
      (x->type != CUDNN_DATA_FLOAT && x->type != CUDNN_DATA_BFLOAT16) || y->type != x->type || w->type != x->type ||
      conv->compute != CUDNN_DATA_FLOAT || conv->mode != CUDNN_CROSS_CORRELATION) {
    report("cudnn: the emulator does NHWC cross-correlation of float or bf16 tensors (all alike), fp32 compute");
    return CUDNN_STATUS_NOT_SUPPORTED;
  }
  int n = 0, c = 0, h = 0, wo = 0;
  if (cudnnGetConvolution2dForwardOutputDim(conv, x, w, &n, &c, &h, &wo) != CUDNN_STATUS_SUCCESS || y->n != n ||
      y->c != c || y->h != h || y->w != wo) {
    report("cudnn: the output descriptor does not match the input, filter and convolution");
    return CUDNN_STATUS_BAD_PARAM;
  }
  *out = problem{x->n, x->c, x->h, x->w, w->n, w->h, w->w, y->h, y->w, *conv, x->type};
  return CUDNN_STATUS_SUCCESS;
}

template <class Algo>
cudnnStatus_t ranked(cudnnConvolutionDescriptor_t conv, int requested, int* returned,
                     arcnet_emu_algo_perf<Algo>* perf) {
  if (!conv || !returned || !perf || requested < 1) return CUDNN_STATUS_BAD_PARAM;
  *returned = std::min(requested, algo_count);
  for (int i = 0; i < *returned; ++i)
    perf[i] = arcnet_emu_algo_perf<Algo>{static_cast<Algo>(i), CUDNN_STATUS_SUCCESS, float(i), 0,
                                         i == 0 ? CUDNN_NON_DETERMINISTIC : CUDNN_DETERMINISTIC, conv->math, {}};
  return CUDNN_STATUS_SUCCESS;
}

/// For tests: the next this many convolution calls return CUDNN_STATUS_NOT_SUPPORTED before
/// touching anything, as cuDNN does for an algorithm its heuristics offered but cannot run.
inline int& refuse_calls() {
  static int n = 0;
  return n;
}

/// Checks the algorithm, its workspace and the operands' memory before a run.
inline cudnnStatus_t check_run(problem const& pb, int algo, void const* workspace, std::size_t workspace_bytes,
                               void const* x, void const* w, void const* y) {
  if (refuse_calls() > 0) {
    --refuse_calls();
    return CUDNN_STATUS_NOT_SUPPORTED;
  }
  if (algo < 0 || algo >= algo_count) {
    report("cudnn: unknown algorithm");
    return CUDNN_STATUS_BAD_PARAM;
  }
  std::size_t const need = pb.workspace(algo);
  if (workspace_bytes < need || (need > 0 && !memory().device_range(workspace, need))) {
    report("cudnn: the workspace is smaller than the algorithm needs, or not device memory");
    return CUDNN_STATUS_BAD_PARAM;
  }
  if (!memory().device_range(x, pb.x_count() * pb.elem()) || !memory().device_range(w, pb.w_count() * pb.elem()) ||
      !memory().device_range(y, pb.y_count() * pb.elem())) {
    report("cudnn: an operand is not inside one device allocation");
    return CUDNN_STATUS_BAD_PARAM;
  }
  return CUDNN_STATUS_SUCCESS;
}

/// Calls f(x index, w index, y index) for every product of the convolution (NHWC x, KRSC w, NHWC y).
template <class F>
void for_each_product(problem const& pb, F&& f) {
  for (int n = 0; n < pb.n; ++n)
    for (int p = 0; p < pb.p; ++p)
      for (int q = 0; q < pb.q; ++q)
        for (int r = 0; r < pb.r; ++r) {
          int const ih = p * pb.conv.u - pb.conv.pad_h + r * pb.conv.dil_h;
          if (ih < 0 || ih >= pb.h) continue;
          for (int s = 0; s < pb.s; ++s) {
            int const iw = q * pb.conv.v - pb.conv.pad_w + s * pb.conv.dil_w;
            if (iw < 0 || iw >= pb.w) continue;
            std::size_t const xi = ((std::size_t(n) * pb.h + ih) * pb.w + iw) * pb.c;
            std::size_t const yi = ((std::size_t(n) * pb.p + p) * pb.q + q) * pb.k;
            for (int k = 0; k < pb.k; ++k) f(xi, (std::size_t(k) * pb.r + r) * pb.s * pb.c + std::size_t(s) * pb.c,
                                            yi + k);
          }
        }
}

/// An operand of `count` elements as the algorithm reads it: bf16 exactly, float rounded to tf32
/// unless the math type is FMA.
inline std::vector<double> operand(problem const& pb, void const* p, std::size_t count) {
  std::vector<double> v(count);
  for (std::size_t i = 0; i < count; ++i) {
    if (pb.type == CUDNN_DATA_BFLOAT16) {
      v[i] = bf16_to_float(static_cast<std::uint16_t const*>(p)[i]);
    } else {
      float const f = static_cast<float const*>(p)[i];
      v[i] = pb.conv.math == CUDNN_FMA_MATH ? f : round_mantissa(f, 10);
    }
  }
  return v;
}

/// out = alpha * result + beta * out in the problem's type; algorithm 0 adds a last-bit change
/// that alternates per call.
inline void blend(problem const& pb, std::vector<double> const& result, double alpha, double beta, void* out_p,
                  int algo) {
  static unsigned calls = 0;
  double const jitter = algo == 0 && (calls++ & 1u) ? 1.0 + 1.0 / (1 << 20) : 1.0;
  for (std::size_t i = 0; i < result.size(); ++i) {
    if (pb.type == CUDNN_DATA_BFLOAT16) {
      auto* out = static_cast<std::uint16_t*>(out_p);
      double const prior = beta == 0 ? 0.0 : beta * double(bf16_to_float(out[i]));
      out[i] = float_to_bf16(static_cast<float>(alpha * result[i] * jitter + prior));
    } else {
      auto* out = static_cast<float*>(out_p);
      out[i] = static_cast<float>(alpha * result[i] * jitter + (beta == 0 ? 0.0 : beta * double(out[i])));
    }
  }
}

}  // namespace dnn
}  // namespace arcnet_emu

inline cudnnStatus_t cudnnGetConvolutionForwardAlgorithmMaxCount(cudnnHandle_t h, int* count) {
  if (!h) return CUDNN_STATUS_NOT_INITIALIZED;
  *count = arcnet_emu::dnn::algo_count;
  return CUDNN_STATUS_SUCCESS;
}
inline cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithmMaxCount(cudnnHandle_t h, int* count) {
  return cudnnGetConvolutionForwardAlgorithmMaxCount(h, count);
}
inline cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(cudnnHandle_t h, int* count) {
  return cudnnGetConvolutionForwardAlgorithmMaxCount(h, count);
}

namespace arcnet_emu {
namespace dnn {
/// The heuristics' ranked list and the workspace query, for the descriptors in (x, w, conv, y)
/// order whatever the direction.
template <class Algo>
cudnnStatus_t heuristics(cudnnHandle_t h, cudnnTensorDescriptor_t x, cudnnFilterDescriptor_t w,
                         cudnnConvolutionDescriptor_t conv, cudnnTensorDescriptor_t y, int requested, int* returned,
                         arcnet_emu_algo_perf<Algo>* perf) {
  problem pb{};
  if (!h) return CUDNN_STATUS_NOT_INITIALIZED;
  if (cudnnStatus_t s = describe(x, w, conv, y, &pb)) return s;
  return ranked(conv, requested, returned, perf);
}
inline cudnnStatus_t workspace_size(cudnnHandle_t h, cudnnTensorDescriptor_t x, cudnnFilterDescriptor_t w,
                                    cudnnConvolutionDescriptor_t conv, cudnnTensorDescriptor_t y, int algo,
                                    std::size_t* bytes) {
  problem pb{};
  if (!h) return CUDNN_STATUS_NOT_INITIALIZED;
  if (cudnnStatus_t s = describe(x, w, conv, y, &pb)) return s;
  *bytes = pb.workspace(algo);
  return CUDNN_STATUS_SUCCESS;
}
}  // namespace dnn
}  // namespace arcnet_emu

inline cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(cudnnHandle_t h, cudnnTensorDescriptor_t x,
                                                            cudnnFilterDescriptor_t w,
                                                            cudnnConvolutionDescriptor_t conv,
                                                            cudnnTensorDescriptor_t y, int requested, int* returned,
                                                            cudnnConvolutionFwdAlgoPerf_t* perf) {
  return arcnet_emu::dnn::heuristics(h, x, w, conv, y, requested, returned, perf);
}
inline cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithm_v7(cudnnHandle_t h, cudnnFilterDescriptor_t w,
                                                                 cudnnTensorDescriptor_t dy,
                                                                 cudnnConvolutionDescriptor_t conv,
                                                                 cudnnTensorDescriptor_t dx, int requested,
                                                                 int* returned,
                                                                 cudnnConvolutionBwdDataAlgoPerf_t* perf) {
  return arcnet_emu::dnn::heuristics(h, dx, w, conv, dy, requested, returned, perf);
}
inline cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithm_v7(cudnnHandle_t h, cudnnTensorDescriptor_t x,
                                                                   cudnnTensorDescriptor_t dy,
                                                                   cudnnConvolutionDescriptor_t conv,
                                                                   cudnnFilterDescriptor_t dw, int requested,
                                                                   int* returned,
                                                                   cudnnConvolutionBwdFilterAlgoPerf_t* perf) {
  return arcnet_emu::dnn::heuristics(h, x, dw, conv, dy, requested, returned, perf);
}

inline cudnnStatus_t cudnnGetConvolutionForwardWorkspaceSize(cudnnHandle_t h, cudnnTensorDescriptor_t x,
                                                             cudnnFilterDescriptor_t w,
                                                             cudnnConvolutionDescriptor_t conv,
                                                             cudnnTensorDescriptor_t y, cudnnConvolutionFwdAlgo_t algo,
                                                             std::size_t* bytes) {
  return arcnet_emu::dnn::workspace_size(h, x, w, conv, y, algo, bytes);
}
inline cudnnStatus_t cudnnGetConvolutionBackwardDataWorkspaceSize(cudnnHandle_t h, cudnnFilterDescriptor_t w,
                                                                  cudnnTensorDescriptor_t dy,
                                                                  cudnnConvolutionDescriptor_t conv,
                                                                  cudnnTensorDescriptor_t dx,
                                                                  cudnnConvolutionBwdDataAlgo_t algo,
                                                                  std::size_t* bytes) {
  return arcnet_emu::dnn::workspace_size(h, dx, w, conv, dy, algo, bytes);
}
inline cudnnStatus_t cudnnGetConvolutionBackwardFilterWorkspaceSize(cudnnHandle_t h, cudnnTensorDescriptor_t x,
                                                                    cudnnTensorDescriptor_t dy,
                                                                    cudnnConvolutionDescriptor_t conv,
                                                                    cudnnFilterDescriptor_t dw,
                                                                    cudnnConvolutionBwdFilterAlgo_t algo,
                                                                    std::size_t* bytes) {
  return arcnet_emu::dnn::workspace_size(h, x, dw, conv, dy, algo, bytes);
}

namespace arcnet_emu {
namespace dnn {
/// One convolution call: `out` is y (forward), x (data gradient) or w (filter gradient), the two
/// other operands are read.
enum class output { y, x, w };
inline cudnnStatus_t convolve(cudnnHandle_t h, output kind, void const* alpha, void const* beta,
                              cudnnTensorDescriptor_t xd, void const* x, cudnnFilterDescriptor_t wd, void const* w,
                              cudnnConvolutionDescriptor_t conv, cudnnTensorDescriptor_t yd, void const* y, void* out,
                              int algo, void* workspace, std::size_t workspace_bytes) {
  problem pb{};
  if (!h) return CUDNN_STATUS_NOT_INITIALIZED;
  if (cudnnStatus_t s = describe(xd, wd, conv, yd, &pb)) return s;
  void const* const xp = kind == output::x ? out : x;
  void const* const wp = kind == output::w ? out : w;
  void const* const yp = kind == output::y ? out : y;
  if (cudnnStatus_t s = check_run(pb, algo, workspace, workspace_bytes, xp, wp, yp)) return s;
  // Checked now, computed when the handle's stream runs it; alpha and beta are read at the call.
  double const a = *static_cast<float const*>(alpha), b = *static_cast<float const*>(beta);
  enqueue(h->stream, [=] {
    std::vector<double> xv, wv, yv;
    if (kind != output::x) xv = operand(pb, x, pb.x_count());
    if (kind != output::w) wv = operand(pb, w, pb.w_count());
    if (kind != output::y) yv = operand(pb, y, pb.y_count());
    std::vector<double> r(kind == output::x ? pb.x_count() : kind == output::w ? pb.w_count() : pb.y_count(), 0.0);
    for_each_product(pb, [&](std::size_t xi, std::size_t wi, std::size_t yi) {
      switch (kind) {
        case output::y:
          for (int c = 0; c < pb.c; ++c) r[yi] += xv[xi + c] * wv[wi + c];
          break;
        case output::x:
          for (int c = 0; c < pb.c; ++c) r[xi + c] += yv[yi] * wv[wi + c];
          break;
        case output::w:
          for (int c = 0; c < pb.c; ++c) r[wi + c] += yv[yi] * xv[xi + c];
          break;
      }
    });
    blend(pb, r, a, b, out, algo);
  });
  return CUDNN_STATUS_SUCCESS;
}
}  // namespace dnn
}  // namespace arcnet_emu

inline cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t h, void const* alpha, cudnnTensorDescriptor_t xd,
                                             void const* x, cudnnFilterDescriptor_t wd, void const* w,
                                             cudnnConvolutionDescriptor_t conv, cudnnConvolutionFwdAlgo_t algo,
                                             void* workspace, std::size_t workspace_bytes, void const* beta,
                                             cudnnTensorDescriptor_t yd, void* y) {
  return arcnet_emu::dnn::convolve(h, arcnet_emu::dnn::output::y, alpha, beta, xd, x, wd, w, conv, yd, nullptr, y,
                                   algo, workspace, workspace_bytes);
}
inline cudnnStatus_t cudnnConvolutionBackwardData(cudnnHandle_t h, void const* alpha, cudnnFilterDescriptor_t wd,
                                                  void const* w, cudnnTensorDescriptor_t dyd, void const* dy,
                                                  cudnnConvolutionDescriptor_t conv,
                                                  cudnnConvolutionBwdDataAlgo_t algo, void* workspace,
                                                  std::size_t workspace_bytes, void const* beta,
                                                  cudnnTensorDescriptor_t dxd, void* dx) {
  return arcnet_emu::dnn::convolve(h, arcnet_emu::dnn::output::x, alpha, beta, dxd, nullptr, wd, w, conv, dyd, dy, dx,
                                   algo, workspace, workspace_bytes);
}
inline cudnnStatus_t cudnnConvolutionBackwardFilter(cudnnHandle_t h, void const* alpha, cudnnTensorDescriptor_t xd,
                                                    void const* x, cudnnTensorDescriptor_t dyd, void const* dy,
                                                    cudnnConvolutionDescriptor_t conv,
                                                    cudnnConvolutionBwdFilterAlgo_t algo, void* workspace,
                                                    std::size_t workspace_bytes, void const* beta,
                                                    cudnnFilterDescriptor_t dwd, void* dw) {
  return arcnet_emu::dnn::convolve(h, arcnet_emu::dnn::output::w, alpha, beta, xd, x, dwd, nullptr, conv, dyd, dy, dw,
                                   algo, workspace, workspace_bytes);
}
