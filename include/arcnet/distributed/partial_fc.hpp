#pragma once
// Partial FC (insightface's partial_fc_v2): the ArcFace head's class centers sharded over the
// ranks of a data-parallel job, so that a head with millions of classes fits and its softmax is
// computed where its rows live. Each rank owns classes [class_begin(), class_end()) and the
// matching rows of the (C * k, D) weight of models::arcface_head. A step:
//
//   1. the embeddings (B per rank) and labels are all-gathered: every rank sees all W * B rows;
//   2. each rank computes the logits of those rows against its shard (normalised product, max
//      over the k sub-centers, the margin on the target class of rows whose label it owns, scale s);
//      with sample_rate < 1 only a sample of its classes (all positives + random negatives);
//   3. the softmax cross-entropy is normalised across shards (all-reduce max of the row maxima,
//      all-reduce sum of the exp-sums and of the target logits); the loss is the mean over all
//      W * B rows, the same number on every rank.
//
// Gradients (what the caller must know):
//   - weight() gets d(mean loss over W * B)/d(shard): it is local to this rank and final. Leave
//     weight() OUT of the distributed::gradient_reducer (which would average it with the other
//     ranks' unrelated shards); the optimizer steps it like any parameter (its state, like the
//     shard, differs per rank: engine/trainer.hpp gathers both whole for a checkpoint).
//   - the embeddings get W * d(mean loss over W * B)/d(own rows) (the all-gather's backward is an
//     all-reduce sum of the gathered gradient, own rows taken, times W, as insightface's
//     AllGatherFunc): the gradient_reducer's average over ranks of the backbone gradients then
//     equals the gradient of the mean loss over all W * B rows.
//   - loss() and its backward run collectives: every rank calls them, in the same order, and the
//     embeddings require grad on every rank or on none.
//
// On the CUDA device (partial_fc_head<cuda>, nvcc) the shard, the logits, the softmax and their
// gradients stay on the device; the collectives above run on the host communicator with small
// host copies (the embeddings and labels, 3 values per gathered row, and the embeddings'
// gradient), so no NCCL is needed. The device sums exp(z - max) in float where the CPU uses
// double: the two agree to float rounding, not bit for bit.
//
//   distributed::partial_fc_head<> head(comm, opts, 0.1, gen, seed);
//   auto loss = head.loss(backbone(x), labels);   // B rows per rank
//   { auto scope = reducer.observe(); loss.backward(); }   // reducer: backbone parameters only
//   reducer.finish();
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "arcnet/autograd/variable.hpp"
#include "arcnet/core/random.hpp"
#include "arcnet/distributed/communicator.hpp"
#include "arcnet/models/arcface.hpp"
#include "arcnet/ops/elementwise.hpp"
#include "arcnet/ops/margin.hpp"
#include "arcnet/ops/matmul.hpp"
#include "arcnet/ops/normalize.hpp"
#include "arcnet/ops/reduce.hpp"
#include "arcnet/ops/reshape.hpp"

namespace arcnet::detail {

/// Rows `rows` of src (R, D) as a new (rows.size(), D) tensor.
template <class D>
tensor<float, D> pfc_gather_rows(tensor<float, D> const& src, std::vector<index_t> const& rows) {
  index_t const d = src.size(1), n = static_cast<index_t>(rows.size());
  auto y = tensor<float, D>::uninitialized(shape{n, d});
  if constexpr (std::is_same_v<D, cpu>) {
    for (index_t i = 0; i < n; ++i) std::copy_n(src.data() + rows[size_t(i)] * d, d, y.data() + i * d);
  } else if (n > 0) {
#if defined(__CUDACC__)  // (D = cuda exists only in translation units compiled by nvcc)
    auto idx = tensor<index_t, cpu>::from_vector(shape{n}, rows).template to<D>();
    gpu::gather_rows(y.data(), src.data(), idx.data(), n, d);
#endif
  }
  return y;
}

/// Rows `rows` (distinct) of dst (R, D) += src (rows.size(), D).
template <class D>
void pfc_add_rows(tensor<float, D>& dst, std::vector<index_t> const& rows, tensor<float, D> const& src) {
  index_t const d = dst.size(1), n = static_cast<index_t>(rows.size());
  if constexpr (std::is_same_v<D, cpu>) {
    for (index_t i = 0; i < n; ++i)
      for (index_t j = 0; j < d; ++j) dst.data()[rows[size_t(i)] * d + j] += src.data()[i * d + j];
  } else if (n > 0) {
#if defined(__CUDACC__)
    auto idx = tensor<index_t, cpu>::from_vector(shape{n}, rows).template to<D>();
    gpu::add_rows(dst.data(), idx.data(), src.data(), n, d);
#endif
  }
}

}  // namespace arcnet::detail

namespace arcnet::distributed {

// ---- differentiable cross-shard ops ---------------------------------------------------------------

/// Every rank's rows of x (B, ...) concatenated in rank order: (W * B, ...). All ranks must pass
/// the same shape. Backward: the gathered gradient is summed over ranks (all-reduce), this rank's
/// rows are taken and multiplied by grad_scale (insightface uses W, see the top of this file),
/// then accumulated into x's gradient. The backward is a collective too. On the CUDA device the
/// rows (W * B x D floats, small) go through the host communicator.
template <class D>
variable<float, D> all_gather_rows(communicator& comm, variable<float, D> const& x, float grad_scale) {
  if (!x.defined()) arcnet::detail::raise<error>("all_gather_rows: the input is undefined");
  ARCNET_CHECK_AS(shape_error, x.rank() >= 1, "all_gather_rows: expected a tensor with at least one axis, got a scalar");
  // clone: a contiguous host copy (of a possible view, on the CPU)
  auto y = all_gather(comm, x.value().template to<cpu>().clone()).template to<D>();
  index_t const rows = x.size(0);
  int const r = comm.rank();
  communicator* c = &comm;
  return autograd::make_op("all_gather_rows", y, {x}, [x, c, rows, r, grad_scale](tensor<float, D> const& dy) mutable {
    auto summed = dy.template to<cpu>().clone();
    c->all_reduce(summed.data(), static_cast<std::size_t>(summed.numel()), reduce_op::sum);
    if (!x.requires_grad()) return;
    auto own = summed.narrow(index_t(r) * rows, rows).clone();
    ops::axpy(grad_scale, own.template to<D>(), x.grad_for_accumulate());
  });
}

/// Softmax cross-entropy whose classes are split over the ranks. logits (N, C_r): this rank's
/// columns for the same N rows on every rank; targets[i] is the local column of row i's class on
/// the rank that owns it and -1 on the others (exactly one rank must own each row's class).
/// Returns mean_i (logsumexp over all ranks' columns of row i - target logit of row i), shape (),
/// the same value on every rank. Forward: two all-reduces. Backward (local, no collective):
/// dlogits += dy * (softmax - onehot) / N over this rank's columns.
template <class D>
variable<float, D> sharded_cross_entropy(communicator& comm, variable<float, D> const& logits,
                                         std::vector<std::int64_t> const& targets) {
  if (!logits.defined()) arcnet::detail::raise<error>("sharded_cross_entropy: the logits are undefined");
  ARCNET_CHECK_AS(shape_error, logits.rank() == 2, "sharded_cross_entropy: expected logits (N, C_r), got shape ",
                  logits.shape());
  index_t const n = logits.size(0), c = logits.size(1);
  ARCNET_CHECK_AS(shape_error, static_cast<index_t>(targets.size()) == n, "sharded_cross_entropy: expected ", n,
                  " targets (one per row of logits ", logits.shape(), "), got ", targets.size());
  ARCNET_CHECK_AS(shape_error, n > 0, "sharded_cross_entropy: the batch is empty (logits ", logits.shape(), ")");
  for (index_t i = 0; i < n; ++i) {
    auto t = targets[static_cast<size_t>(i)];
    ARCNET_CHECK_AS(shape_error, t >= -1 && t < c, "sharded_cross_entropy: local target ", t, " at row ", i,
                    " is out of range for ", c, " local classes (-1 = owned by another rank)");
  }
  auto const& z = logits.value();
  // Row maxima over all shards.
  std::vector<float> mx(static_cast<size_t>(n), -std::numeric_limits<float>::infinity());
  std::vector<index_t> own_rows;  // rows with a target here, and their flat target positions
  std::vector<index_t> own_at;
  for (index_t i = 0; i < n; ++i)
    if (targets[size_t(i)] >= 0) {
      own_rows.push_back(i);
      own_at.push_back(i * c + targets[size_t(i)]);
    }
  if constexpr (std::is_same_v<D, cpu>) {
    float const* zs = z.data();
    for (index_t i = 0; i < n; ++i)
      for (index_t j = 0; j < c; ++j) mx[size_t(i)] = std::max(mx[size_t(i)], zs[i * c + j]);
  } else if (c > 0) {
    tensor<index_t, D> arg;
    auto m = ops::max_forward(z, 1, arg).template to<cpu>();
    std::copy(m.data(), m.data() + n, mx.begin());
  }
  comm.all_reduce(mx.data(), mx.size(), reduce_op::max);
  // Exp-sums, target logits (shifted by the max) and owner counts, summed over shards.
  std::vector<double> acc(3 * static_cast<size_t>(n), 0.0);
  tensor<float, D> prob;
  if constexpr (std::is_same_v<D, cpu>) {
    float const* zs = z.data();
    prob = tensor<float, cpu>::uninitialized(z.shape());
    float* ps = prob.data();
    for (index_t i = 0; i < n; ++i) {
      double const m = mx[size_t(i)];
      double s = 0;
      for (index_t j = 0; j < c; ++j) {
        double e = std::exp(static_cast<double>(zs[i * c + j]) - m);
        ps[i * c + j] = static_cast<float>(e);
        s += e;
      }
      acc[size_t(i)] = s;
    }
    for (index_t i : own_rows) acc[size_t(n + i)] = static_cast<double>(zs[i * c + targets[size_t(i)]]) - mx[size_t(i)];
  } else {
    // exp(z - max) and its row sums on the device (in float: the CPU's are rounded from double);
    // the target logits come to the host by a gather of their positions.
    auto mx_d = tensor<float, cpu>::from_vector(shape{n, 1}, mx).template to<D>();
    auto shifted = tensor<float, D>::uninitialized(z.shape());
    ops::elementwise_impl<D>::binary_forward(ops::binary_kind::sub, z, mx_d, shifted);
    prob = ops::unary_forward(ops::unary_kind::exp, shifted);
    auto sums = ops::sum_forward(prob, {1}).template to<cpu>();
    for (index_t i = 0; i < n; ++i) acc[size_t(i)] = static_cast<double>(sums[i]);
    auto picked = arcnet::detail::pfc_gather_rows(z.view(shape{n * c, 1}), own_at).template to<cpu>();
    for (std::size_t k = 0; k < own_rows.size(); ++k) {
      index_t const i = own_rows[k];
      acc[size_t(n + i)] = static_cast<double>(picked[index_t(k)]) - mx[size_t(i)];
    }
  }
  for (index_t i : own_rows) acc[size_t(2 * n + i)] = 1;
  comm.all_reduce(acc.data(), acc.size(), reduce_op::sum);
  double total = 0;
  for (index_t i = 0; i < n; ++i) {
    if (acc[size_t(2 * n + i)] != 1)
      arcnet::detail::raise<error>("sharded_cross_entropy: row ", i, " has its target class on ",
                                   acc[size_t(2 * n + i)], " ranks; expected exactly one");
    total += std::log(acc[size_t(i)]) - acc[size_t(n + i)];
  }
  if constexpr (std::is_same_v<D, cpu>) {
    float* ps = prob.data();
    for (index_t i = 0; i < n; ++i)
      for (index_t j = 0; j < c; ++j) ps[i * c + j] = static_cast<float>(ps[i * c + j] / acc[size_t(i)]);
  } else {
    std::vector<float> inv(static_cast<size_t>(n));
    for (index_t i = 0; i < n; ++i) inv[size_t(i)] = static_cast<float>(1.0 / acc[size_t(i)]);
    auto inv_d = tensor<float, cpu>::from_vector(shape{n, 1}, inv).template to<D>();
    auto normalised = tensor<float, D>::uninitialized(z.shape());
    ops::elementwise_impl<D>::binary_forward(ops::binary_kind::mul, prob, inv_d, normalised);
    prob = normalised;
  }
  auto loss = tensor<float, cpu>::full(shape{}, static_cast<float>(total / static_cast<double>(n))).template to<D>();
  return autograd::make_op("sharded_cross_entropy", loss, {logits},
                           [logits, prob, targets, own_at, n, c](tensor<float, D> const& dy) mutable {
    if (!logits.requires_grad()) return;
    float const g = dy.template to<cpu>().data()[0];
    float const scale = static_cast<float>(static_cast<double>(g) / static_cast<double>(n));
    auto& grad = logits.grad_for_accumulate();
    if constexpr (std::is_same_v<D, cpu>) {
      float const* p = prob.data();
      float* d = grad.data();
      for (index_t i = 0; i < n; ++i) {
        for (index_t j = 0; j < c; ++j) d[i * c + j] += scale * p[i * c + j];
        auto t = targets[size_t(i)];
        if (t >= 0) d[i * c + t] -= scale;
      }
    } else {
      ops::axpy(scale, prob, grad);
      auto minus = tensor<float, cpu>::full(shape{index_t(own_at.size()), 1}, -scale).template to<D>();
      auto flat = grad.view(shape{n * c, 1});
      arcnet::detail::pfc_add_rows(flat, own_at, minus);
    }
  });
}

}  // namespace arcnet::distributed

namespace arcnet::detail {

/// Rows `rows` of w (R, D) as a new (rows.size(), D) variable; the gradient is scattered back
/// (rows not selected get none).
template <class D>
variable<float, D> pfc_select_rows(variable<float, D> const& w, std::vector<index_t> const& rows) {
  auto y = pfc_gather_rows(w.value(), rows);
  return autograd::make_op("partial_fc_select_rows", y, {w}, [w, rows](tensor<float, D> const& dy) mutable {
    if (!w.requires_grad()) return;
    pfc_add_rows(w.grad_for_accumulate(), rows, dy);
  });
}

/// ops::angular_margin where a row may have no target in this shard (target -1: s * cos only),
/// through the margin backends (which take -1 for that). margins: one per column. The logits
/// equal the plain head's bit for bit.
template <class D>
variable<float, D> pfc_margin(variable<float, D> const& cosine, std::vector<std::int64_t> const& targets,
                              std::vector<double> const& margins, ops::margin_options o) {
  index_t const n = cosine.size(0), c = cosine.size(1);
  ARCNET_ASSERT(static_cast<index_t>(targets.size()) == n && static_cast<index_t>(margins.size()) == c);
  auto y = tensor<float, D>::uninitialized(cosine.shape());
  ops::margin_impl<D>::forward(cosine.value(), targets, margins, o, y);
  return autograd::make_op("partial_fc_margin", y, {cosine},
                           [cosine, targets, margins, o](tensor<float, D> const& dy) mutable {
    if (!cosine.requires_grad()) return;
    ops::margin_impl<D>::backward(cosine.value(), targets, margins, o, dy, cosine.grad_for_accumulate());
  });
}

/// splitmix64's finaliser: spreads (seed, step, rank) over all 64 bits.
inline std::uint64_t pfc_mix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace arcnet::detail

namespace arcnet::distributed {

/// The ArcFace head (models::arcface_head: sub-centers, per-class margins, easy_margin, the
/// m1/m3 variants) with its classes sharded over the ranks of `comm`; see the top of this file.
template <class D = cpu>
class partial_fc_head {
 public:
  /// Rank r owns classes [r * C / W, (r + 1) * C / W) (integer division) and their k rows of the
  /// weight that models::arcface_head<float, cpu>(o, g) would initialise from the same state of g:
  /// every rank must construct with the same generator state, so that the shards together equal
  /// the plain head's weight. sample_rate in (0, 1]: the fraction of a shard's classes used per
  /// step (1 = all, no sampling); sample_seed seeds the choice of negatives. Needs C >= W.
  /// Throws config_error for a bad sample_rate, C < W, or options the plain head rejects.
  partial_fc_head(communicator& comm, models::arcface_options o, double sample_rate = 1.0,
                  generator& g = default_generator(), std::uint64_t sample_seed = 0)
      : comm_(&comm), sample_rate_(sample_rate), sample_seed_(sample_seed) {
    if (!(sample_rate > 0.0 && sample_rate <= 1.0))
      arcnet::detail::raise<config_error>("partial_fc_head: sample_rate must be in (0, 1], got ", sample_rate);
    int const w = comm.size(), r = comm.rank();
    if (o.num_classes >= 1 && o.num_classes < w)
      arcnet::detail::raise<config_error>("partial_fc_head: ", o.num_classes, " classes cannot be sharded over ", w,
                                          " ranks; need num_classes >= world size");
    models::arcface_head<float, cpu> full(std::move(o), g);  // checks the options, fills the margins
    opt_ = full.options();
    begin_ = shard_begin(r);
    end_ = shard_begin(r + 1);
    int const k = opt_.num_subcenters;
    auto rows = full.weight().value().narrow(index_t(begin_) * k, index_t(end_ - begin_) * k).clone();
    weight_ = variable<float, D>(rows.template to<D>(), true);
    last_sampled_.resize(size_t(end_ - begin_));
    for (int c = begin_; c < end_; ++c) last_sampled_[size_t(c - begin_)] = c;
  }

  /// Mean ArcFace softmax cross-entropy over the W * B rows of all ranks (shape (), equal on every
  /// rank). embeddings (B, D): this rank's rows, B equal on every rank; labels: B values in [0, C).
  /// A collective (forward and backward). Bad input throws on every rank (shape_error), without
  /// leaving any rank waiting.
  variable<float, D> loss(variable<float, D> const& embeddings, std::vector<std::int64_t> const& labels) {
    communicator& comm = *comm_;
    int const w = comm.size(), r = comm.rank();
    index_t const dim = opt_.in_features;
    // 1. Shapes, agreed on by all ranks before any gather.
    bool const ok = embeddings.defined() && embeddings.rank() == 2 && embeddings.size(1) == dim &&
                    embeddings.size(0) == static_cast<index_t>(labels.size()) && !labels.empty();
    std::int64_t const b = ok ? embeddings.size(0) : -1;
    std::int64_t agree[3] = {b, -b, ok ? 0 : 1};
    comm.all_reduce(agree, 3, reduce_op::max);
    if (!ok)
      arcnet::detail::raise<shape_error>("partial_fc_head::loss: expected embeddings (B, ", dim, ") with B = ",
                                         labels.size(), " (one row per label, B >= 1), got ",
                                         embeddings.defined() ? embeddings.shape() : shape{}, " on rank ", r);
    if (agree[2] != 0)
      arcnet::detail::raise<shape_error>("partial_fc_head::loss: another rank passed embeddings of the wrong shape "
                                         "(see its error); rank ", r, " passed ", embeddings.shape());
    if (agree[0] != -agree[1])
      arcnet::detail::raise<shape_error>("partial_fc_head::loss: every rank must pass the same batch size; rank ", r,
                                         " passed ", b, " rows, the ranks range from ", -agree[1], " to ", agree[0]);
    // 2. Labels of all ranks, checked identically everywhere.
    std::vector<std::int64_t> all(static_cast<size_t>(b) * size_t(w));
    comm.all_gather(labels.data(), static_cast<std::size_t>(b), all.data());
    for (size_t i = 0; i < all.size(); ++i)
      if (all[i] < 0 || all[i] >= opt_.num_classes)
        arcnet::detail::raise<shape_error>("partial_fc_head::loss: sample ", i % size_t(b), " of rank ",
                                           i / size_t(b), " (row ", i, " of the gathered batch) has label ", all[i],
                                           ", out of range for ", opt_.num_classes, " classes (0..",
                                           opt_.num_classes - 1, ")");
    // 3. The classes of this shard used in this step.
    int const shard = end_ - begin_, k = opt_.num_subcenters;
    std::vector<int> cls;  // local class indices, sorted
    if (sample_rate_ >= 1.0) {
      cls.resize(size_t(shard));
      for (int c = 0; c < shard; ++c) cls[size_t(c)] = c;
    } else {
      cls = sample(all, r);
    }
    std::vector<int> local_of(size_t(shard), -1);  // local class -> column
    for (size_t j = 0; j < cls.size(); ++j) local_of[size_t(cls[j])] = static_cast<int>(j);
    std::vector<std::int64_t> targets(all.size(), -1);
    for (size_t i = 0; i < all.size(); ++i)
      if (all[i] >= begin_ && all[i] < end_) targets[i] = local_of[size_t(all[i] - begin_)];
    std::vector<double> margins(cls.size());
    for (size_t j = 0; j < cls.size(); ++j) margins[j] = opt_.margins[size_t(begin_ + cls[j])];
    // 4. Logits of the gathered rows against the (sampled) shard, softmax across shards.
    auto x = all_gather_rows(comm, embeddings, static_cast<float>(w));
    variable<float, D> wt = weight_;
    if (static_cast<int>(cls.size()) < shard) {
      std::vector<index_t> rows;
      rows.reserve(cls.size() * size_t(k));
      for (int c : cls)
        for (int s = 0; s < k; ++s) rows.push_back(index_t(c) * k + s);
      wt = arcnet::detail::pfc_select_rows(weight_, rows);
    }
    auto cosine = ops::matmul(ops::l2_normalize(x, 1), ops::l2_normalize(wt, 1), ops::transpose_rhs);
    if (k > 1) cosine = ops::max(ops::reshape(cosine, {x.size(0), index_t(cls.size()), index_t(k)}), 2);
    ops::margin_options mo;
    mo.scale = opt_.scale;
    mo.m1 = opt_.m1;
    mo.m3 = opt_.m3;
    mo.easy_margin = opt_.easy_margin;
    auto logits = arcnet::detail::pfc_margin(cosine, targets, margins, mo);
    auto result = sharded_cross_entropy(comm, logits, targets);
    last_sampled_.assign(cls.size(), 0);
    for (size_t j = 0; j < cls.size(); ++j) last_sampled_[j] = begin_ + cls[j];
    ++step_;
    return result;
  }

  /// This rank's shard of the class centers, ((class_end - class_begin) * k, D); rows of class c
  /// start at (c - class_begin()) * k. Its gradient is local: keep it out of the gradient_reducer.
  variable<float, D>& weight() { return weight_; }
  /// This rank's classes: [class_begin(), class_end()).
  int class_begin() const { return begin_; }
  int class_end() const { return end_; }
  /// The options, with `margins` filled in (one per class).
  models::arcface_options const& options() const { return opt_; }
  double sample_rate() const { return sample_rate_; }
  /// The number of completed loss() calls (the step that seeds the sampling).
  std::int64_t step() const { return step_; }
  /// Sets that count (a resumed run continues the sampling where the interrupted one was).
  void set_step(std::int64_t step) {
    ARCNET_CHECK_AS(config_error, step >= 0, "partial_fc_head::set_step: expected >= 0, got ", step);
    step_ = step;
  }
  /// The global ids of this rank's classes used by the last loss() (sorted): with sampling the
  /// positives of its shard plus the drawn negatives, otherwise (and before any step) the whole shard.
  std::vector<int> last_sampled_classes() const { return last_sampled_; }

  /// The full (C * k, D) weight on every rank, shards in rank order (what models::arcface_head
  /// holds and loads). A collective.
  tensor<float, cpu> gather_weight() { return all_gather_uneven(*comm_, weight_.value().template to<cpu>()); }
  /// Takes this rank's rows of a full (C * k, D) weight (as gather_weight() returns or a plain
  /// head's checkpoint holds); shape_error if the shape differs. Not a collective.
  void load_weight(tensor<float, cpu> const& full) {
    index_t const rows = index_t(opt_.num_classes) * opt_.num_subcenters;
    if (!full.defined() || full.rank() != 2 || full.size(0) != rows || full.size(1) != opt_.in_features)
      arcnet::detail::raise<shape_error>("partial_fc_head::load_weight: expected the full weight (", rows, ", ",
                                         opt_.in_features, ") (", opt_.num_classes, " classes x ",
                                         opt_.num_subcenters, " sub-centers), got ",
                                         full.defined() ? full.shape() : shape{});
    weight_.value_mut().copy_from(full.narrow(index_t(begin_) * opt_.num_subcenters, weight_.size(0)).template to<D>());
  }

 private:
  int shard_begin(int q) const {
    return static_cast<int>(std::int64_t(q) * opt_.num_classes / comm_->size());
  }

  /// insightface's sample(): the shard's positives (classes of the gathered labels), topped up
  /// with uniformly drawn negatives to ceil(sample_rate * shard classes); sorted local indices.
  std::vector<int> sample(std::vector<std::int64_t> const& labels, int rank) const {
    int const shard = end_ - begin_;
    std::vector<char> positive(size_t(shard), 0);
    for (auto l : labels)
      if (l >= begin_ && l < end_) positive[size_t(l - begin_)] = 1;
    std::vector<int> chosen, negatives;
    for (int c = 0; c < shard; ++c) (positive[size_t(c)] ? chosen : negatives).push_back(c);
    // ceil, with a tolerance so that e.g. 0.3 * 10 = 3.0000000000000004 counts as 3
    int const want = std::min(shard, std::max(1, static_cast<int>(std::ceil(sample_rate_ * shard - 1e-9))));
    int const extra = std::max(0, want - static_cast<int>(chosen.size()));
    generator g(arcnet::detail::pfc_mix(arcnet::detail::pfc_mix(arcnet::detail::pfc_mix(sample_seed_) ^
                                                                 static_cast<std::uint64_t>(step_)) ^
                                        static_cast<std::uint64_t>(rank)));
    for (int j = 0; j < extra; ++j) {  // partial Fisher-Yates: a uniform subset
      auto pick = j + static_cast<std::ptrdiff_t>(g.below(negatives.size() - size_t(j)));
      std::swap(negatives[size_t(j)], negatives[size_t(pick)]);
      chosen.push_back(negatives[size_t(j)]);
    }
    std::sort(chosen.begin(), chosen.end());
    return chosen;
  }

  communicator* comm_;
  models::arcface_options opt_;
  double sample_rate_;
  std::uint64_t sample_seed_;
  int begin_ = 0, end_ = 0;
  std::int64_t step_ = 0;
  variable<float, D> weight_;  // ((end_ - begin_) * k, in_features)
  std::vector<int> last_sampled_;
};

}  // namespace arcnet::distributed
