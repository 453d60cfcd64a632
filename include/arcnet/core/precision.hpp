#pragma once
// The precision policy of GEMMs and convolutions on the CUDA device. Master weights, optimizer
// state, norm statistics and parameters, softmax and the ArcFace head (its products are marked
// matmul_options::full_precision) stay fp32 whatever the mode (activations: see below);
// the mode says what the tensor cores may round the GEMM operands to (accumulation is fp32):
//   fp32  no rounding (CUBLAS_COMPUTE_32F), the default;
//   tf32  10-bit mantissa operands (CUBLAS_COMPUTE_32F_FAST_TF32);
//   bf16  7-bit mantissa operands (CUBLAS_COMPUTE_32F_FAST_16BF). bf16 has fp32's exponent
//         range, so no loss scaling is needed.
// cuDNN's convolutions (ops/cuda/conv2d_cudnn.cuh) follow the same modes; in bf16 mode they run
// on bf16 copies of their operands and their result is bf16-rounded.
// The CPU backend computes in fp32 in every mode.
//
// bf16 activations: in bf16 mode on the CUDA device, a float model runs its backbone on bf16
// tensors (models::image_retriever casts the images to bf16 and the pooled feature back to fp32;
// each convolution casts its fp32 weight to bf16 per use, as PyTorch's autocast). Convolutions,
// batch norms (fp32 statistics and parameters), ReLUs and pooling read and write half the bytes,
// and the graph keeps half. On by default; set_bf16_activations(false) (or ARCNET_BF16_ACTIVATIONS=0)
// keeps fp32 activations with bf16 GEMM operands, for comparison.
#include <cstdlib>
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

namespace detail {
inline bool& bf16_storage() {
  static bool on = [] {
    char const* env = std::getenv("ARCNET_BF16_ACTIVATIONS");
    return !(env && std::string(env) == "0");
  }();
  return on;
}
}  // namespace detail
/// Whether bf16 mode stores the backbone's activations in bf16 (see the top of this file).
inline void set_bf16_activations(bool on) { detail::bf16_storage() = on; }
/// True in bf16 mode unless bf16 activations were switched off.
inline bool bf16_activations() { return matmul() == mode::bf16 && detail::bf16_storage(); }

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
