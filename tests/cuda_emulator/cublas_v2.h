#pragma once
// The emulator's cuBLAS (see emulator.hpp): cublasGemmEx on column-major device operands,
// checked at the call and computed in double when the handle's stream runs it. In the TF32 and BF16 compute modes each operand element is
// first rounded to nearest even at 10 or 7 mantissa bits, as the tensor cores read them; bf16
// operands (CUDA_R_16BF, with CUBLAS_COMPUTE_32F) are read exactly and the result is rounded to
// bf16.
#include <Eigen/Core>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "cuda_runtime.h"

typedef struct arcnet_emu_blas* cublasHandle_t;
struct arcnet_emu_blas {
  cudaStream_t stream = nullptr;
};

typedef enum {
  CUBLAS_STATUS_SUCCESS = 0,
  CUBLAS_STATUS_NOT_INITIALIZED = 1,
  CUBLAS_STATUS_INVALID_VALUE = 7,
  CUBLAS_STATUS_NOT_SUPPORTED = 15,
} cublasStatus_t;
typedef enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 } cublasOperation_t;
typedef enum { CUDA_R_32F = 0, CUDA_R_64F = 1, CUDA_R_16BF = 14 } cudaDataType_t;
typedef enum {
  CUBLAS_COMPUTE_32F = 68,
  CUBLAS_COMPUTE_32F_FAST_16BF = 75,
  CUBLAS_COMPUTE_32F_FAST_TF32 = 77,
  CUBLAS_COMPUTE_64F = 70,
} cublasComputeType_t;
typedef enum { CUBLAS_GEMM_DEFAULT = -1 } cublasGemmAlgo_t;

inline cublasStatus_t cublasCreate(cublasHandle_t* h) {
  *h = new arcnet_emu_blas();
  return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasDestroy(cublasHandle_t h) {
  delete h;
  return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s) {
  if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
  h->stream = s;
  return CUBLAS_STATUS_SUCCESS;
}
inline char const* cublasGetStatusName(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
  }
  return "CUBLAS_STATUS_UNKNOWN";
}
inline char const* cublasGetStatusString(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "success";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "the library was not initialized";
    case CUBLAS_STATUS_INVALID_VALUE: return "an invalid value was used as an argument (cuda emulator: see stderr)";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "the functionality requested is not supported";
  }
  return "unknown status";
}

namespace arcnet_emu {
/// x rounded to nearest even at `bits` mantissa bits (fp32 has 23).
inline float round_mantissa(float x, int bits) {
  std::uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  if ((u & 0x7f800000u) == 0x7f800000u) return x;  // inf, nan
  int const drop = 23 - bits;
  std::uint32_t const half = 1u << (drop - 1), lsb = (u >> drop) & 1u;
  u = (u + half - 1 + lsb) >> drop << drop;
  float y;
  std::memcpy(&y, &u, sizeof y);
  return y;
}
/// A bf16 value (upper half of a float) and back (rounded to nearest even).
inline float bf16_to_float(std::uint16_t b) {
  std::uint32_t const u = std::uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
inline std::uint16_t float_to_bf16(float f) {
  float const r = round_mantissa(f, 7);
  std::uint32_t u;
  std::memcpy(&u, &r, sizeof u);
  return static_cast<std::uint16_t>(u >> 16);
}
/// A stored element as double (T: double, float, or std::uint16_t for bf16), and back.
template <class T>
double load(T v) {
  if constexpr (std::is_same_v<T, std::uint16_t>) return bf16_to_float(v);
  else return static_cast<double>(v);
}
template <class T>
T store(double v) {
  if constexpr (std::is_same_v<T, std::uint16_t>) return float_to_bf16(static_cast<float>(v));
  else return static_cast<T>(v);
}

/// Column-major op(X) (rows x cols) of leading dimension ld, read into a double matrix.
template <class T>
Eigen::MatrixXd read_operand(void const* p, cublasOperation_t op, int rows, int cols, int ld, int bits) {
  auto const* x = static_cast<T const*>(p);
  Eigen::MatrixXd m(rows, cols);
  for (int j = 0; j < cols; ++j)
    for (int i = 0; i < rows; ++i) {
      T v = op == CUBLAS_OP_N ? x[i + std::size_t(j) * ld] : x[j + std::size_t(i) * ld];
      if constexpr (std::is_same_v<T, float>)
        if (bits < 23) v = round_mantissa(v, bits);
      m(i, j) = load(v);
    }
  return m;
}
/// T: the stored type; S: the type of alpha and beta (float for bf16 operands with fp32 compute).
template <class T, class S = T>
cublasStatus_t gemm(cudaStream_t stream, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, void const* alpha_p,
                    void const* a, int lda, void const* b, int ldb, void const* beta_p, void* c, int ldc, int bits) {
  S const alpha = *static_cast<S const*>(alpha_p), beta = *static_cast<S const*>(beta_p);
  auto const fits = [](void const* p, int ld, int rows, int cols) {
    return cols == 0 || rows == 0 ||
           memory().device_range(p, sizeof(T) * (std::size_t(ld) * (cols - 1) + std::size_t(rows)));
  };
  // Stored shapes: A is (ta ? k x m : m x k), B is (tb ? n x k : k x n), C is m x n.
  int const a_rows = ta == CUBLAS_OP_N ? m : k, a_cols = ta == CUBLAS_OP_N ? k : m;
  int const b_rows = tb == CUBLAS_OP_N ? k : n, b_cols = tb == CUBLAS_OP_N ? n : k;
  if (m < 0 || n < 0 || k < 0 || lda < std::max(1, a_rows) || ldb < std::max(1, b_rows) || ldc < std::max(1, m)) {
    report("cublasGemmEx: invalid sizes or leading dimensions");
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  if (!fits(a, lda, a_rows, a_cols) || !fits(b, ldb, b_rows, b_cols) || !fits(c, ldc, m, n)) {
    report("cublasGemmEx: an operand is not inside one device allocation");
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
  // Queued on the handle's stream; alpha and beta are host scalars, read at the call as cuBLAS does.
  enqueue(stream, [=] {
    Eigen::MatrixXd product = Eigen::MatrixXd::Zero(m, n);
    if (k > 0) product = read_operand<T>(a, ta, m, k, lda, bits) * read_operand<T>(b, tb, k, n, ldb, bits);
    auto* out = static_cast<T*>(c);
    for (int j = 0; j < n; ++j)
      for (int i = 0; i < m; ++i) {
        T& y = out[i + std::size_t(j) * ldc];
        double const prior = beta == S(0) ? 0.0 : static_cast<double>(beta) * load(y);
        y = store<T>(static_cast<double>(alpha) * product(i, j) + prior);
      }
  });
  return CUBLAS_STATUS_SUCCESS;
}
}  // namespace arcnet_emu

inline cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                   void const* alpha, void const* a, cudaDataType_t at, int lda, void const* b,
                                   cudaDataType_t bt, int ldb, void const* beta, void* c, cudaDataType_t ct, int ldc,
                                   cublasComputeType_t compute, cublasGemmAlgo_t) {
  if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (at != bt || at != ct) return CUBLAS_STATUS_NOT_SUPPORTED;
  if (at == CUDA_R_64F) {
    if (compute != CUBLAS_COMPUTE_64F) return CUBLAS_STATUS_NOT_SUPPORTED;
    return arcnet_emu::gemm<double>(h->stream, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, 52);
  }
  if (at == CUDA_R_32F) {
    int bits = 23;
    if (compute == CUBLAS_COMPUTE_32F_FAST_TF32) bits = 10;
    else if (compute == CUBLAS_COMPUTE_32F_FAST_16BF) bits = 7;
    else if (compute != CUBLAS_COMPUTE_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
    return arcnet_emu::gemm<float>(h->stream, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, bits);
  }
  if (at == CUDA_R_16BF) {  // bf16 operands and result, fp32 compute (float alpha and beta)
    if (compute != CUBLAS_COMPUTE_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
    return arcnet_emu::gemm<std::uint16_t, float>(h->stream, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, 7);
  }
  return CUBLAS_STATUS_NOT_SUPPORTED;
}
