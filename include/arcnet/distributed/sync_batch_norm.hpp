#pragma once
// Synchronised batch normalisation (PyTorch's SyncBatchNorm) for data-parallel training: in train
// mode the mean and variance are taken over the samples of ALL ranks, so small per-rank batches
// normalise (and update the running statistics) as one big batch would.
//
//   distributed::sync_batch_norm_scope sync(comm);   // every nn::batch_norm on this thread, train mode
//   auto loss = criterion(model.forward(x), labels);
//   { auto observe = reducer.observe(); loss.backward(); }
//
// Forward: one all-reduce of the per-channel (sum x, sum x^2) and the sample count, in double.
// Backward: one all-reduce of the per-channel (sum dy, sum dy * (x - mean)); dx is the gradient of
// the sum over ranks of every rank's loss with respect to this rank's x (what PyTorch computes),
// while d weight and d bias are this rank's local sums: the gradient_reducer averages them over
// ranks like any other parameter. Ranks may hold different batch sizes. Both collectives are
// issued by every rank in the same order as long as every rank runs the same layers, forward and
// backward, which data-parallel training does. CPU only for now (the CUDA path needs NCCL).
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
  static_assert(std::is_same_v<D, cpu>, "arcnet::distributed::sync_batch_norm: CPU tensors only for now (the CUDA "
                                        "device synchronises with NCCL, not built yet)");
  if (!x.defined()) detail::raise<error>("sync_batch_norm: the input is undefined");
  tensor<T, D> w = weight.defined() ? weight.value() : tensor<T, D>();
  tensor<T, D> b = bias.defined() ? bias.value() : tensor<T, D>();
  index_t const c = detail::check_sync_batch_norm_args(x.value(), w, b, running_mean, running_var, momentum, eps);
  index_t const m = x.numel() / std::max<index_t>(c, 1);  // this rank's values per channel
  auto const uc = static_cast<std::size_t>(c);
  using impl = ops::batch_norm_impl<D>;

  // [sum x (C), sum x^2 (C), count], summed over ranks in one call.
  std::vector<double> stats(2 * uc + 1, 0.0);
  {
    T const* xs = x.value().data();
    std::vector<double> s1, s2;
    impl::channel_sums(m, c, s1, s2, [&](index_t r, double* p1, double* p2) {
      T const* row = xs + r * c;
      for (index_t j = 0; j < c; ++j) {
        auto v = static_cast<double>(row[j]);
        p1[j] += v;
        p2[j] += v * v;
      }
    });
    std::copy(s1.begin(), s1.end(), stats.begin());
    std::copy(s2.begin(), s2.end(), stats.begin() + static_cast<std::ptrdiff_t>(uc));
    stats[2 * uc] = static_cast<double>(m);
  }
  comm.all_reduce(stats.data(), stats.size(), reduce_op::sum);
  double const total = stats[2 * uc];
  if (!(total > 1))
    detail::raise<shape_error>("sync_batch_norm: expected more than 1 value per channel over all ", comm.size(),
                               " ranks when training, got ", total, " (this rank's input has shape ", x.shape(),
                               ")");

  auto save_mean = tensor<T, D>::uninitialized(shape{c});
  auto save_invstd = tensor<T, D>::uninitialized(shape{c});
  T* rm = running_mean.defined() ? running_mean.data() : nullptr;
  T* rv = running_var.defined() ? running_var.data() : nullptr;
  for (index_t j = 0; j < c; ++j) {
    auto uj = static_cast<std::size_t>(j);
    double mean = stats[uj] / total;
    double var = std::max(stats[uc + uj] / total - mean * mean, 0.0);  // biased, to normalise
    save_mean[j] = static_cast<T>(mean);
    save_invstd[j] = static_cast<T>(1.0 / std::sqrt(var + eps));
    if (rm) rm[j] = static_cast<T>((1 - momentum) * static_cast<double>(rm[j]) + momentum * mean);
    if (rv)
      rv[j] = static_cast<T>((1 - momentum) * static_cast<double>(rv[j]) + momentum * var * total / (total - 1));
  }
  auto y = tensor<T, D>::uninitialized(x.shape());
  impl::normalize(x.value(), m, c, save_mean, save_invstd, w, b, y);

  communicator* cp = &comm;
  return autograd::make_op(
      "sync_batch_norm", y, {x, weight, bias},
      [cp, x, weight, bias, w, save_mean, save_invstd, m, c, total](tensor<T, D> const& dy) mutable {
        check_same_shape("sync_batch_norm backward", x.value(), dy);
        auto const uc = static_cast<std::size_t>(c);
        T const* xs = x.value().data();
        T const* g = dy.data();
        T const* mu = save_mean.data();
        std::vector<double> sum_dy, sum_dy_xmu;  // per channel: sum(dy), sum(dy * (x - mean))
        impl::channel_sums(m, c, sum_dy, sum_dy_xmu, [&](index_t r, double* p1, double* p2) {
          T const* xr = xs + r * c;
          T const* gr = g + r * c;
          for (index_t j = 0; j < c; ++j) {
            p1[j] += static_cast<double>(gr[j]);
            p2[j] += static_cast<double>(gr[j]) * static_cast<double>(xr[j] - mu[j]);
          }
        });
        // This rank's own d weight and d bias, before the sums become global.
        if (weight.defined() && weight.requires_grad()) {
          auto& dw = weight.grad_for_accumulate();
          for (index_t j = 0; j < c; ++j)
            dw[j] += static_cast<T>(sum_dy_xmu[static_cast<std::size_t>(j)] * static_cast<double>(save_invstd[j]));
        }
        if (bias.defined() && bias.requires_grad()) {
          auto& db = bias.grad_for_accumulate();
          for (index_t j = 0; j < c; ++j) db[j] += static_cast<T>(sum_dy[static_cast<std::size_t>(j)]);
        }
        // Every rank that runs this node reduces, whether or not its x needs a gradient, so that
        // the collectives match across ranks.
        std::vector<double> sums(2 * uc);
        std::copy(sum_dy.begin(), sum_dy.end(), sums.begin());
        std::copy(sum_dy_xmu.begin(), sum_dy_xmu.end(), sums.begin() + static_cast<std::ptrdiff_t>(uc));
        cp->all_reduce(sums.data(), sums.size(), reduce_op::sum);
        if (!x.requires_grad()) return;
        // dx = k * dy - a - b * (x - mean) with the global sums and count.
        std::vector<T> k(uc), a(uc), bcoef(uc);
        for (index_t j = 0; j < c; ++j) {
          auto uj = static_cast<std::size_t>(j);
          double is = static_cast<double>(save_invstd[j]);
          double kj = is * (w.defined() ? static_cast<double>(w[j]) : 1.0);
          k[uj] = static_cast<T>(kj);
          a[uj] = static_cast<T>(kj * sums[uj] / total);
          bcoef[uj] = static_cast<T>(kj * is * is * sums[uc + uj] / total);
        }
        T* out = x.grad_for_accumulate().data();
        T const *kp = k.data(), *ap = a.data(), *bp = bcoef.data();
#pragma omp parallel for if (m * c > impl::parallel_threshold)
        for (index_t r = 0; r < m; ++r) {
          T const* xr = xs + r * c;
          T const* gr = g + r * c;
          T* o = out + r * c;
          for (index_t j = 0; j < c; ++j) o[j] += kp[j] * gr[j] - ap[j] - bp[j] * (xr[j] - mu[j]);
        }
      });
}

/// While alive, every nn::batch_norm layer on this thread (float or double, CPU) normalises in
/// TRAIN mode with sync_batch_norm over `comm`'s ranks (PyTorch's convert_sync_batchnorm, without
/// converting the model); eval mode is unchanged. In a world of one rank the layers run the plain
/// op (bit for bit what they do without the scope), as PyTorch's SyncBatchNorm does. Scopes nest;
/// `comm` must outlive the scope and the graphs built under it.
class sync_batch_norm_scope {
 public:
  explicit sync_batch_norm_scope(communicator& comm) : float_(hook<float>(comm)), double_(hook<double>(comm)) {}
  sync_batch_norm_scope(sync_batch_norm_scope const&) = delete;
  sync_batch_norm_scope& operator=(sync_batch_norm_scope const&) = delete;

 private:
  template <class T>
  static nn::batch_norm_train_forward<T, cpu> hook(communicator& comm) {
    communicator* cp = &comm;
    return [cp](variable<T, cpu> const& x, variable<T, cpu> const& weight, variable<T, cpu> const& bias,
                tensor<T, cpu>& running_mean, tensor<T, cpu>& running_var, ops::batch_norm_options o) {
      if (cp->size() == 1) return ops::batch_norm(x, weight, bias, running_mean, running_var, o);
      return sync_batch_norm(*cp, x, weight, bias, running_mean, running_var, o.momentum, o.eps);
    };
  }
  nn::batch_norm_train_override<float, cpu> float_;
  nn::batch_norm_train_override<double, cpu> double_;
};

}  // namespace arcnet::distributed
