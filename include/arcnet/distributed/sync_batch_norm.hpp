#pragma once
// Synchronised batch normalisation (PyTorch's SyncBatchNorm) for data-parallel training: in train
// mode the mean and variance are taken over the samples of ALL ranks, so small per-rank batches
// normalise (and update the running statistics) as one big batch would.
//
//   distributed::sync_batch_norm_scope sync(comm);   // every CPU nn::batch_norm on this thread, train mode
//                                                     // (sync_batch_norm_scope<cuda>: every CUDA one)
//   auto loss = criterion(model.forward(x), labels);
//   { auto observe = reducer.observe(); loss.backward(); }
//
// Forward: one all-reduce of the per-channel (sum x, sum x^2) and the sample count, in double.
// Backward: one all-reduce of the per-channel (sum dy, sum dy * (x - mean)); dx is the gradient of
// the sum over ranks of every rank's loss with respect to this rank's x (what PyTorch computes),
// while d weight and d bias are this rank's local sums: the gradient_reducer averages them over
// ranks like any other parameter. Ranks may hold different batch sizes. Both collectives are
// issued by every rank in the same order as long as every rank runs the same layers, forward and
// backward, which data-parallel training does.
//
// On the CUDA device the per-channel sums are computed there and come to the host (2C doubles),
// where the host communicator (MPI) all-reduces them, as on the CPU; the statistics and the
// backward coefficients (C values each) go back. That is a few kilobytes per layer, which needs
// no NCCL: the large all-reduce of training, the gradients, is the reducer's.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <type_traits>
#include <vector>

#include "arcnet/autograd/variable.hpp"
#include "arcnet/distributed/communicator.hpp"
#include "arcnet/nn/batch_norm.hpp"
#include "arcnet/ops/batch_norm.hpp"

namespace arcnet::detail {

/// The checks of sync_batch_norm that need no other rank, so that bad input throws before any
/// collective (and so on every rank that got it, without leaving the others waiting in one).
template <class T, class D>
index_t check_sync_batch_norm_args(tensor<T, D> const& x, tensor<T, D> const& weight, tensor<T, D> const& bias,
                                   tensor<T, D> const& running_mean, tensor<T, D> const& running_var,
                                   double momentum, double eps) {
  // The plain op's checks; training = false there because the count per channel is checked
  // over all ranks, after the forward all-reduce.
  ops::batch_norm_options o;
  o.training = false;
  o.momentum = momentum;
  o.eps = eps;
  index_t const c = check_batch_norm_args(x, weight, bias, running_mean, running_var, o);
  if (!(momentum >= 0 && momentum <= 1))
    raise<config_error>("sync_batch_norm: momentum must be in [0, 1], got ", momentum);
  return c;
}

}  // namespace arcnet::detail

namespace arcnet::distributed {

/// Differentiable batch norm over x (..., C) (NHWC or (N, C)) whose statistics are the mean and
/// biased variance over every rank's x; all ranks must call it together with the same C.
/// weight, bias (C) or undefined (no affine); running_mean, running_var (C) or undefined, else
/// updated in place as PyTorch does (unbiased variance over the total count, weight `momentum`
/// on the new batch), identically on every rank. The backward all-reduces too, so `comm` must
/// outlive the graph. Shape errors throw before any collective; fewer than 2 values per channel
/// over all ranks throws shape_error on every rank after the forward's all-reduce.
template <class T, class D>
variable<T, D> sync_batch_norm(communicator& comm, variable<T, D> const& x, variable<T, D> const& weight,
                               variable<T, D> const& bias, tensor<T, D>& running_mean, tensor<T, D>& running_var,
                               double momentum = 0.1, double eps = 1e-5) {
  if (!x.defined()) detail::raise<error>("sync_batch_norm: the input is undefined");
  tensor<T, D> w = weight.defined() ? weight.value() : tensor<T, D>();
  tensor<T, D> b = bias.defined() ? bias.value() : tensor<T, D>();
  index_t const c = detail::check_sync_batch_norm_args(x.value(), w, b, running_mean, running_var, momentum, eps);
  index_t const m = x.numel() / std::max<index_t>(c, 1);  // this rank's values per channel
  auto const uc = static_cast<std::size_t>(c);
  using impl = ops::batch_norm_impl<D>;

  // [sum x (C), sum x^2 (C), count], summed over ranks in one call (the sums come to the host).
  std::vector<double> stats = impl::channel_totals(x.value(), static_cast<tensor<T, D> const*>(nullptr),
                                                             static_cast<tensor<T, D> const*>(nullptr), m, c);
  stats.push_back(static_cast<double>(m));
  comm.all_reduce(stats.data(), stats.size(), reduce_op::sum);
  double const total = stats[2 * uc];
  if (!(total > 1))
    detail::raise<shape_error>("sync_batch_norm: expected more than 1 value per channel over all ", comm.size(),
                               " ranks when training, got ", total, " (this rank's input has shape ", x.shape(),
                               ")");

  // Statistics and the running update on the host (C values), then on the device.
  auto mean_h = tensor<T, cpu>::uninitialized(shape{c});
  auto invstd_h = tensor<T, cpu>::uninitialized(shape{c});
  tensor<T, cpu> rm = running_mean.defined() ? running_mean.template to<cpu>() : tensor<T, cpu>();
  tensor<T, cpu> rv = running_var.defined() ? running_var.template to<cpu>() : tensor<T, cpu>();
  for (index_t j = 0; j < c; ++j) {
    auto uj = static_cast<std::size_t>(j);
    double mean = stats[uj] / total;
    double var = std::max(stats[uc + uj] / total - mean * mean, 0.0);  // biased, to normalise
    mean_h[j] = static_cast<T>(mean);
    invstd_h[j] = static_cast<T>(1.0 / std::sqrt(var + eps));
    if (rm.defined()) rm[j] = static_cast<T>((1 - momentum) * static_cast<double>(rm[j]) + momentum * mean);
    if (rv.defined())
      rv[j] = static_cast<T>((1 - momentum) * static_cast<double>(rv[j]) + momentum * var * total / (total - 1));
  }
  if constexpr (!std::is_same_v<D, cpu>) {  // on the CPU, rm and rv are the running statistics themselves
    if (rm.defined()) running_mean.copy_from(rm.template to<D>());
    if (rv.defined()) running_var.copy_from(rv.template to<D>());
  }
  tensor<T, D> save_mean = mean_h.template to<D>(), save_invstd = invstd_h.template to<D>();
  auto y = tensor<T, D>::uninitialized(x.shape());
  impl::normalize(x.value(), m, c, save_mean, save_invstd, w, b, y);

  communicator* cp = &comm;
  return autograd::make_op(
      "sync_batch_norm", y, {x, weight, bias},
      [cp, x, weight, bias, w, save_mean, invstd_h, m, c, total](tensor<T, D> const& dy) mutable {
        check_same_shape("sync_batch_norm backward", x.value(), dy);
        auto const uc = static_cast<std::size_t>(c);
        // [sum dy (C), sum dy * (x - mean) (C)] of this rank.
        std::vector<double> sums = impl::channel_totals(x.value(), &dy, &save_mean, m, c);
        // This rank's own d weight and d bias, before the sums become global.
        auto add_to = [c](variable<T, D> const& p, auto&& value_of) {
          if (!p.defined() || !p.requires_grad()) return;
          auto t = tensor<T, cpu>::uninitialized(shape{c});
          for (index_t j = 0; j < c; ++j) t[j] = static_cast<T>(value_of(static_cast<std::size_t>(j)));
          ops::axpy(T(1), t.template to<D>(), p.grad_for_accumulate());
        };
        add_to(weight, [&](std::size_t j) { return sums[uc + j] * static_cast<double>(invstd_h[index_t(j)]); });
        add_to(bias, [&](std::size_t j) { return sums[j]; });
        // Every rank that runs this node reduces, whether or not its x needs a gradient, so that
        // the collectives match across ranks.
        cp->all_reduce(sums.data(), sums.size(), reduce_op::sum);
        if (!x.requires_grad()) return;
        // dx = k * dy - a - b * (x - mean) with the global sums and count.
        tensor<T, cpu> w_h = w.defined() ? w.template to<cpu>() : tensor<T, cpu>();
        std::vector<T> coef(3 * uc);  // [k, a, b]
        for (index_t j = 0; j < c; ++j) {
          auto uj = static_cast<std::size_t>(j);
          double is = static_cast<double>(invstd_h[j]);
          double kj = is * (w_h.defined() ? static_cast<double>(w_h[j]) : 1.0);
          coef[uj] = static_cast<T>(kj);
          coef[uc + uj] = static_cast<T>(kj * sums[uj] / total);
          coef[2 * uc + uj] = static_cast<T>(kj * is * is * sums[uc + uj] / total);
        }
        impl::add_dx(x.value(), dy, save_mean, coef, x.grad_for_accumulate());
      });
}

/// While alive, every nn::batch_norm layer on device D (float or double) on this thread
/// normalises in TRAIN mode with sync_batch_norm over `comm`'s ranks (PyTorch's
/// convert_sync_batchnorm, without converting the model); eval mode is unchanged. In a world of
/// one rank the layers run the plain op (bit for bit what they do without the scope), as
/// PyTorch's SyncBatchNorm does. Scopes nest; `comm` must outlive the scope and the graphs built
/// under it. `sync_batch_norm_scope sync(comm)` is the CPU's; sync_batch_norm_scope<cuda> (nvcc)
/// the GPU's. (One class per device, not one class whose members depend on the compiler: a
/// program may link CPU and nvcc translation units that both use it.)
template <class D = cpu>
class sync_batch_norm_scope {
 public:
  explicit sync_batch_norm_scope(communicator& comm) : float_(hook<float>(comm)), double_(hook<double>(comm)) {}
  sync_batch_norm_scope(sync_batch_norm_scope const&) = delete;
  sync_batch_norm_scope& operator=(sync_batch_norm_scope const&) = delete;

 private:
  template <class T>
  static nn::batch_norm_train_forward<T, D> hook(communicator& comm) {
    communicator* cp = &comm;
    return [cp](variable<T, D> const& x, variable<T, D> const& weight, variable<T, D> const& bias,
                tensor<T, D>& running_mean, tensor<T, D>& running_var, ops::batch_norm_options o) {
      if (cp->size() == 1) return ops::batch_norm(x, weight, bias, running_mean, running_var, o);
      return sync_batch_norm(*cp, x, weight, bias, running_mean, running_var, o.momentum, o.eps);
    };
  }
  nn::batch_norm_train_override<float, D> float_;
  nn::batch_norm_train_override<double, D> double_;
};

}  // namespace arcnet::distributed
