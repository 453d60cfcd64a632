#pragma once
// The precision policy of GEMMs and convolutions on the CUDA device. Tensors, master weights,
// optimizer state, norm statistics, softmax and the ArcFace head (its products are marked
// matmul_options::full_precision) stay fp32 whatever the mode;
// the mode says what the tensor cores may round the GEMM operands to (accumulation is fp32):
//   fp32  no rounding (CUBLAS_COMPUTE_32F), the default;
//   tf32  10-bit mantissa operands (CUBLAS_COMPUTE_32F_FAST_TF32);
//   bf16  7-bit mantissa operands (CUBLAS_COMPUTE_32F_FAST_16BF). bf16 has fp32's exponent
//         range, so no loss scaling is needed.
// cuDNN's convolutions (ops/cuda/conv2d_cudnn.cuh) follow the same modes; in bf16 mode they run
// on bf16 copies of their operands and their result is bf16-rounded.
// The CPU backend computes in fp32 in every mode.
#include <string>

#include "arcnet/core/error.hpp"

namespace arcnet::precision {

enum class mode { fp32, tf32, bf16 };

namespace detail {
inline mode& current() {
  static mode m = mode::fp32;
  return m;
}
}  // namespace detail

/// The mode GEMMs and convolutions on the CUDA device use from now on.
inline void set_matmul(mode m) { detail::current() = m; }
inline mode matmul() { return detail::current(); }

/// Sets the mode for its lifetime, then restores the one before (for code that must compute in a
/// given mode whatever the policy, as the ArcFace head's products in fp32).
class scope {
 public:
  explicit scope(mode m) : saved_(matmul()) { set_matmul(m); }
  ~scope() { set_matmul(saved_); }
  scope(scope const&) = delete;
  scope& operator=(scope const&) = delete;

 private:
  mode saved_;
};

inline char const* name(mode m) {
  switch (m) {
    case mode::fp32: return "fp32";
    case mode::tf32: return "tf32";
    case mode::bf16: return "bf16";
  }
  return "?";
}
/// "fp32", "tf32" or "bf16"; anything else is a config_error naming the value.
inline mode parse(std::string const& s) {
  if (s == "fp32") return mode::fp32;
  if (s == "tf32") return mode::tf32;
  if (s == "bf16") return mode::bf16;
  arcnet::detail::raise<config_error>("precision: expected fp32, tf32 or bf16, got '", s, "'");
}

}  // namespace arcnet::precision
