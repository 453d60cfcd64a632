// Partial FC (distributed/partial_fc.hpp) against the plain ArcFace head run on the all-gathered
// batch: same loss, the shard's rows of the plain weight gradient, W times the plain embedding
// gradient; the sharded weight equals the plain head's initialisation; sampling of classes
// against a softmax cross-entropy computed here by hand; errors raised on every rank.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "distributed/mpi_world.hpp"
#include "test_util.hpp"

#include <arcnet/distributed/partial_fc.hpp>

// One named namespace for the whole file: arcnet_mpi_tests is a unity build, so helpers in an
// anonymous namespace could collide with another test file's.
namespace arcnet_partial_fc_test {

using namespace arcnet;
using distributed::partial_fc_head;
using distributed::reduce_op;
using testing::message_contains;

std::vector<std::int64_t> gather_labels(distributed::communicator& c, std::vector<std::int64_t> const& l) {
  std::vector<std::int64_t> all(l.size() * size_t(c.size()));
  c.all_gather(l.data(), l.size(), all.data());
  return all;
}

double max_abs(float const* a, index_t n) {
  double m = 0;
  for (index_t i = 0; i < n; ++i) m = std::max(m, std::abs(double(a[i])));
  return m;
}

/// max_i |a_i - scale * b_i| / max_i |scale * b_i|
double rel_diff(float const* a, float const* b, index_t n, double scale = 1.0) {
  double d = 0;
  for (index_t i = 0; i < n; ++i) d = std::max(d, std::abs(double(a[i]) - scale * double(b[i])));
  return d / std::max(scale * max_abs(b, n), 1e-30);
}

/// The loss (equal on every rank?) and the largest relative differences to the plain head.
struct comparison {
  double loss = 0, plain_loss = 0;
  bool same_on_all_ranks = false;
  double weight_rel = 1, emb_rel = 1;
  double plain_weight_grad = 0, plain_emb_grad = 0;  // magnitudes: the comparison is not of zeros
};

comparison compare_with_plain(models::arcface_options const& o, std::vector<std::int64_t> const& labels) {
  auto& w = test::mpi_world();
  int const nw = w.size(), r = w.rank();
  index_t const b = index_t(labels.size());
  generator g1(7), g2(7);
  partial_fc_head<> head(w, o, 1.0, g1);
  models::arcface_head<float, cpu> plain(o, g2);

  generator ge(1000 + std::uint64_t(r));  // different embeddings on every rank
  auto emb = randn<float>(shape{b, o.in_features}, ge);
  variable<float> x(emb, true);
  auto loss = head.loss(x, labels);
  loss.backward();

  auto all_emb = distributed::all_gather(w, emb);
  auto all_labels = gather_labels(w, labels);
  variable<float> xa(all_emb, true);
  auto pl = plain.loss(xa, all_labels);
  pl.backward();

  comparison c;
  c.loss = loss.value().item();
  c.plain_loss = pl.value().item();
  double mm[2] = {c.loss, -c.loss};
  w.all_reduce(mm, 2, reduce_op::max);
  c.same_on_all_ranks = mm[0] == -mm[1];

  int const k = o.num_subcenters;
  auto pw = plain.weight().grad().narrow(index_t(head.class_begin()) * k, head.weight().size(0));
  REQUIRE(head.weight().grad().shape() == pw.shape());
  c.weight_rel = rel_diff(head.weight().grad().data(), pw.data(), pw.numel());
  c.plain_weight_grad = max_abs(pw.data(), pw.numel());
  auto pe = xa.grad().narrow(index_t(r) * b, b);
  c.emb_rel = rel_diff(x.grad().data(), pe.data(), pe.numel(), double(nw));
  c.plain_emb_grad = max_abs(pe.data(), pe.numel());
  return c;
}

models::arcface_options seven_classes() {
  models::arcface_options o;
  o.num_classes = 7;  // shards of 3 and 4 classes with two ranks
  o.in_features = 16;
  o.num_subcenters = 3;
  o.scale = 16;
  for (int c = 0; c < 7; ++c) o.margins.push_back(0.1 + 0.4 * c / 6.0);
  return o;
}

std::vector<std::int64_t> labels_of_rank(int r, int b, int classes) {
  std::vector<std::int64_t> l;
  for (int i = 0; i < b; ++i) l.push_back((3 * r + 3 * i) % classes);
  return l;
}

void check_against_plain(models::arcface_options const& o) {
  auto& w = test::mpi_world();
  auto c = compare_with_plain(o, labels_of_rank(w.rank(), 5, o.num_classes));
  INFO("rank " << w.rank() << " of " << w.size() << ": partial FC loss " << c.loss << ", plain " << c.plain_loss);
  CHECK(std::isfinite(c.loss));
  CHECK(c.loss == Approx(c.plain_loss).epsilon(1e-5));
  CHECK(c.same_on_all_ranks);
  CHECK(c.plain_weight_grad > 1e-4);
  CHECK(c.plain_emb_grad > 1e-4);
  CHECK(c.weight_rel < 1e-5);
  CHECK(c.emb_rel < 1e-5);
}

TEST_CASE("partial fc: loss and gradients equal the plain ArcFace head on the gathered batch",
          "[distributed][partial_fc]") {
  auto o = seven_classes();
  check_against_plain(o);  // ArcFace, k = 3, per-class margins 0.1 .. 0.5
}

TEST_CASE("partial fc: easy_margin and the CosFace variant equal the plain head", "[distributed][partial_fc]") {
  auto o = seven_classes();
  o.easy_margin = true;
  check_against_plain(o);

  auto cos = seven_classes();
  cos.margins.clear();
  cos.margin = 0.0;
  cos.m1 = 1.0;
  cos.m3 = 0.35;
  check_against_plain(cos);
}

TEST_CASE("partial fc: shards cover the classes; gather_weight is the plain head's weight; load_weight",
          "[distributed][partial_fc]") {
  auto& w = test::mpi_world();
  int const nw = w.size(), r = w.rank();
  auto o = seven_classes();
  generator g1(11), g2(11);
  partial_fc_head<> head(w, o, 1.0, g1);
  models::arcface_head<float, cpu> plain(o, g2);
  CHECK(head.class_begin() == r * 7 / nw);
  CHECK(head.class_end() == (r + 1) * 7 / nw);
  CHECK(head.weight().shape() == shape{index_t(head.class_end() - head.class_begin()) * 3, 16});
  CHECK(head.weight().requires_grad());

  auto full = head.gather_weight();
  REQUIRE(full.shape() == plain.weight().shape());
  CHECK(full.to_vector() == plain.weight().value().to_vector());  // exact

  generator gl(99);
  auto other = randn<float>(shape{21, 16}, gl);
  head.load_weight(other);
  CHECK(head.weight().value().to_vector() ==
        other.narrow(index_t(head.class_begin()) * 3, head.weight().size(0)).clone().to_vector());
  CHECK(head.gather_weight().to_vector() == other.to_vector());

  CHECK_THROWS_MATCHES(head.load_weight(randn<float>(shape{20, 16}, gl)), shape_error,
                       message_contains("expected the full weight (21, 16)"));
  CHECK_THROWS_MATCHES(head.load_weight(randn<float>(shape{21, 15}, gl)), shape_error,
                       message_contains("got (21, 15)"));
}

/// Softmax cross-entropy of the gathered batch over the classes `sampled` only, in double, from
/// the full weight: ArcFace (m1 = 1, m3 = 0, no easy margin) with one margin m.
double sampled_loss_by_hand(tensor<float, cpu> const& feats, std::vector<std::int64_t> const& labels,
                            tensor<float, cpu> const& weight, int k, std::vector<int> const& sampled, double s,
                            double m) {
  index_t const n = feats.size(0), d = feats.size(1);
  auto unit = [d](float const* v) {
    std::vector<double> u(size_t(d), 0.0);
    double nn = 0;
    for (index_t j = 0; j < d; ++j) nn += double(v[j]) * v[j];
    nn = std::sqrt(nn);
    for (index_t j = 0; j < d; ++j) u[size_t(j)] = v[j] / nn;
    return u;
  };
  double total = 0;
  for (index_t i = 0; i < n; ++i) {
    auto xi = unit(feats.data() + i * d);
    std::vector<double> logit;
    double target = 0;
    for (int c : sampled) {
      double best = -2;
      for (int q = 0; q < k; ++q) {
        auto wc = unit(weight.data() + (index_t(c) * k + q) * d);
        double dot = 0;
        for (index_t j = 0; j < d; ++j) dot += xi[size_t(j)] * wc[size_t(j)];
        best = std::max(best, dot);
      }
      double z = s * best;
      if (c == labels[size_t(i)]) {
        double phi = best > std::cos(M_PI - m) ? std::cos(std::acos(best) + m) : best - m * std::sin(m);
        z = s * phi;
        target = z;
      }
      logit.push_back(z);
    }
    double mx = *std::max_element(logit.begin(), logit.end()), se = 0;
    for (double z : logit) se += std::exp(z - mx);
    total += mx + std::log(se) - target;
  }
  return total / double(n);
}

/// Every rank's last_sampled_classes(), concatenated (the union: shards are disjoint), sorted.
std::vector<int> all_sampled(distributed::communicator& w, std::vector<int> const& mine) {
  std::int64_t most = std::int64_t(mine.size());
  w.all_reduce(&most, 1, reduce_op::max);
  std::vector<std::int64_t> send(size_t(most), -1), recv(size_t(most) * size_t(w.size()));
  std::copy(mine.begin(), mine.end(), send.begin());
  w.all_gather(send.data(), send.size(), recv.data());
  std::vector<int> out;
  for (auto v : recv)
    if (v >= 0) out.push_back(int(v));
  std::sort(out.begin(), out.end());
  return out;
}

TEST_CASE("partial fc: sampling keeps the positives, tops up with reproducible negatives, softmax over them",
          "[distributed][partial_fc]") {
  auto& w = test::mpi_world();
  int const nw = w.size(), r = w.rank();
  models::arcface_options o;
  o.num_classes = 20;
  o.in_features = 16;
  o.num_subcenters = 2;
  o.scale = 16;
  o.margin = 0.5;
  // two ranks: shard [0, 10) has 7 positives (> 5), shard [10, 20) has 2 (topped up to 5)
  std::vector<std::int64_t> labels = r == 0   ? std::vector<std::int64_t>{0, 1, 2, 3, 4}
                                     : r == 1 ? std::vector<std::int64_t>{5, 6, 12, 12, 13}
                                              : std::vector<std::int64_t>{r, r + 1, r + 2, r + 3, r + 4};
  generator g1(5), g2(5), g3(5);
  partial_fc_head<> head(w, o, 0.5, g1, 1234);
  partial_fc_head<> twin(w, o, 0.5, g2, 1234);
  models::arcface_head<float, cpu> plain(o, g3);

  generator ge(500 + std::uint64_t(r));
  auto emb = randn<float>(shape{5, 16}, ge);
  variable<float> x(emb, true);
  auto loss = head.loss(x, labels);
  loss.backward();
  auto twin_loss = twin.loss(variable<float>(emb, true), labels);

  auto mine = head.last_sampled_classes();
  auto sampled = all_sampled(w, mine);
  auto all_labels = gather_labels(w, labels);
  auto all_emb = distributed::all_gather(w, emb);

  // This rank's list: sorted, inside its shard; the twin drew the same classes and loss.
  CHECK(std::is_sorted(mine.begin(), mine.end()));
  CHECK(mine.front() >= head.class_begin());
  CHECK(mine.back() < head.class_end());
  CHECK(twin.last_sampled_classes() == mine);
  CHECK(twin_loss.value().item() == loss.value().item());
  CHECK(head.step() == 1);

  // Every positive is sampled; per shard max(positives, ceil(0.5 * shard size)) classes.
  std::set<int> const positives(all_labels.begin(), all_labels.end());
  for (int p : positives) CHECK(std::binary_search(sampled.begin(), sampled.end(), p));
  for (int q = 0; q < nw; ++q) {
    int const b = q * 20 / nw, e = (q + 1) * 20 / nw;
    long pos = std::count_if(positives.begin(), positives.end(), [&](int c) { return c >= b && c < e; });
    long got = std::count_if(sampled.begin(), sampled.end(), [&](int c) { return c >= b && c < e; });
    INFO("shard " << q << " [" << b << ", " << e << "): " << pos << " positives");
    CHECK(got == std::max(pos, long(std::ceil(0.5 * (e - b)))));
  }
  if (nw == 2) CHECK(sampled.size() == 12);  // 7 positives in [0, 10), 2 + 3 negatives in [10, 20)
  if (nw == 1) CHECK(sampled.size() == 10);  // 5 positives + 5 negatives

  // The loss is the softmax cross-entropy over the sampled classes only.
  double ref = sampled_loss_by_hand(all_emb, all_labels, plain.weight().value(), 2, sampled, 16, 0.5);
  CHECK(loss.value().item() == Approx(ref).epsilon(2e-5));

  // Unsampled classes' rows get exactly zero gradient; sampled ones some.
  auto const& gw = head.weight().grad();
  REQUIRE(gw.defined());
  for (int c = head.class_begin(); c < head.class_end(); ++c) {
    float const* rows = gw.data() + index_t(c - head.class_begin()) * 2 * 16;
    bool const used = std::binary_search(mine.begin(), mine.end(), c);
    INFO("class " << c << (used ? " (sampled)" : " (not sampled)"));
    if (used) CHECK(max_abs(rows, 2 * 16) > 0);
    else CHECK(max_abs(rows, 2 * 16) == 0);
  }

  // The next step draws other negatives (the step counter is part of the seed).
  head.loss(variable<float>(emb, false), labels);
  CHECK(head.step() == 2);
  CHECK(all_sampled(w, head.last_sampled_classes()) != sampled);
}

TEST_CASE("partial fc: bad options and inputs throw on every rank without hanging", "[distributed][partial_fc]") {
  auto& w = test::mpi_world();
  int const nw = w.size(), r = w.rank();
  auto o = seven_classes();
  generator g(3);
  CHECK_THROWS_MATCHES(partial_fc_head<>(w, o, 0.0, g), config_error,
                       message_contains("sample_rate must be in (0, 1], got 0"));
  CHECK_THROWS_MATCHES(partial_fc_head<>(w, o, 1.5, g), config_error,
                       message_contains("sample_rate must be in (0, 1], got 1.5"));
  auto few = o;
  few.num_classes = nw - 1;
  few.margins.assign(size_t(std::max(nw - 1, 0)), 0.5);
  if (nw >= 2) {
    CHECK_THROWS_MATCHES(partial_fc_head<>(w, few, 1.0, g), config_error,
                         message_contains(std::to_string(nw - 1) + " classes cannot be sharded over " +
                                          std::to_string(nw) + " ranks"));
  } else {
    few.num_classes = 1;  // one rank: one class is enough
    few.margins = {0.5};
    partial_fc_head<> one(w, few, 1.0, g);
    CHECK(one.class_begin() == 0);
    CHECK(one.class_end() == 1);
  }

  partial_fc_head<> head(w, o, 1.0, g);
  generator ge(40 + std::uint64_t(r));
  variable<float> x(randn<float>(shape{5, 16}, ge), true);

  // A label out of range on the last rank: every rank reports it, naming sample and value.
  auto bad = labels_of_rank(r, 5, 7);
  if (r == nw - 1) bad[2] = 7;
  CHECK_THROWS_MATCHES(head.loss(x, bad), shape_error,
                       message_contains("sample 2 of rank " + std::to_string(nw - 1)) &&
                           message_contains("has label 7, out of range for 7 classes"));
  bad = labels_of_rank(r, 5, 7);
  if (r == 0) bad[0] = -1;
  CHECK_THROWS_MATCHES(head.loss(x, bad), shape_error, message_contains("sample 0 of rank 0"));

  // Embeddings and labels that disagree.
  CHECK_THROWS_MATCHES(head.loss(x, {0, 1, 2}), shape_error, message_contains("with B = 3"));

  if (nw >= 2) {
    // Rank 0 passes 3 rows, the others 5: all ranks throw.
    index_t const b = r == 0 ? 3 : 5;
    variable<float> xb(randn<float>(shape{b, 16}, ge), true);
    CHECK_THROWS_MATCHES(head.loss(xb, labels_of_rank(r, int(b), 7)), shape_error,
                         message_contains("every rank must pass the same batch size") &&
                             message_contains("range from 3 to 5"));
    // Rank 1 passes the wrong feature size: it names its shape, the others point to it.
    variable<float> xd(randn<float>(shape{5, r == 1 ? 15 : 16}, ge), true);
    CHECK_THROWS_MATCHES(head.loss(xd, labels_of_rank(r, 5, 7)), shape_error,
                         message_contains(r == 1 ? "expected embeddings (B, 16)" : "another rank passed"));
  } else {
    variable<float> xd(randn<float>(shape{5, 15}, ge), true);
    CHECK_THROWS_MATCHES(head.loss(xd, labels_of_rank(r, 5, 7)), shape_error,
                         message_contains("expected embeddings (B, 16) with B = 5") && message_contains("(5, 15)"));
  }

  // The ranks are still in step: a good call works and agrees everywhere.
  auto loss = head.loss(x, labels_of_rank(r, 5, 7));
  loss.backward();
  double v[2] = {loss.value().item(), -double(loss.value().item())};
  w.all_reduce(v, 2, reduce_op::max);
  CHECK(std::isfinite(v[0]));
  CHECK(v[0] == -v[1]);
  CHECK(head.step() == 1);
}

}  // namespace arcnet_partial_fc_test
