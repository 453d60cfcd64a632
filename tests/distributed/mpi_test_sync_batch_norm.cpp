// distributed::sync_batch_norm and sync_batch_norm_scope against the plain batch-norm layer run,
// on every rank, over the all-gathered batch: the synchronised layer must give each rank its rows
// of the big batch's output and input gradient, the big batch's running statistics, and local
// d weight / d bias that sum over ranks to the big batch's.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <exception>
#include <string>
#include <vector>

#include <arcnet/autograd/grad_check.hpp>
#include <arcnet/distributed/sync_batch_norm.hpp>
#include <arcnet/nn/batch_norm.hpp>

#include "distributed/mpi_world.hpp"

using namespace arcnet;
using distributed::communicator;
using distributed::reduce_op;

namespace {

using ftensor = tensor<float, cpu>;
using fvar = variable<float, cpu>;

/// Forwards every collective to another communicator and counts them.
class counting_communicator final : public communicator {
 public:
  explicit counting_communicator(communicator& inner) : inner_(inner) {}
  int calls = 0;
  int rank() const override { return inner_.rank(); }
  int size() const override { return inner_.size(); }
  std::string name() const override { return "counting " + inner_.name(); }
  void all_reduce(float* d, std::size_t n, reduce_op op) override { ++calls, inner_.all_reduce(d, n, op); }
  void all_reduce(double* d, std::size_t n, reduce_op op) override { ++calls, inner_.all_reduce(d, n, op); }
  void all_reduce(std::int64_t* d, std::size_t n, reduce_op op) override { ++calls, inner_.all_reduce(d, n, op); }
  void broadcast(float* d, std::size_t n, int root) override { ++calls, inner_.broadcast(d, n, root); }
  void broadcast(std::int64_t* d, std::size_t n, int root) override { ++calls, inner_.broadcast(d, n, root); }
  void all_gather(float const* s, std::size_t n, float* r) override { ++calls, inner_.all_gather(s, n, r); }
  void all_gather(std::int64_t const* s, std::size_t n, std::int64_t* r) override {
    ++calls, inner_.all_gather(s, n, r);
  }
  void barrier() override { ++calls, inner_.barrier(); }
  distributed::request_id start_all_reduce(float* d, std::size_t n) override {
    ++calls;
    return inner_.start_all_reduce(d, n);
  }
  bool test(distributed::request_id id) override { return inner_.test(id); }
  void wait(distributed::request_id id) override { inner_.wait(id); }
  [[noreturn]] void abort(int code) override {
    inner_.abort(code);
    std::terminate();  // not reached: abort ends the job
  }

 private:
  communicator& inner_;
};

ftensor random_tensor(shape s, std::uint64_t seed, double lo, double hi) {
  generator g(seed);
  auto t = ftensor::uninitialized(std::move(s));
  g.fill_uniform(t, lo, hi);
  return t;
}

/// Every rank's t (any number of rows) concatenated along axis 0 in rank order; `first_row`
/// receives this rank's first row in the result. Pads to the largest rank so that
/// distributed::all_gather's equal-shape rule holds.
ftensor gather_rows(communicator& comm, ftensor const& t, index_t& first_row) {
  int const n = comm.size();
  std::int64_t rows = t.size(0);
  std::vector<std::int64_t> counts(static_cast<std::size_t>(n));
  comm.all_gather(&rows, 1, counts.data());
  index_t const row_size = t.numel() / std::max<index_t>(rows, 1);
  index_t const most = *std::max_element(counts.begin(), counts.end());
  shape padded_shape = t.shape();
  padded_shape[0] = most;
  auto padded = ftensor::zeros(padded_shape);
  std::copy(t.data(), t.data() + t.numel(), padded.data());
  auto all = distributed::all_gather(comm, padded);
  shape out_shape = t.shape();
  out_shape[0] = 0;
  for (auto k : counts) out_shape[0] += k;
  auto out = ftensor::uninitialized(out_shape);
  index_t at = 0;
  for (int k = 0; k < n; ++k) {
    if (k == comm.rank()) first_row = at;
    float const* src = all.data() + k * most * row_size;
    std::copy(src, src + counts[static_cast<std::size_t>(k)] * row_size, out.data() + at * row_size);
    at += counts[static_cast<std::size_t>(k)];
  }
  return out;
}

/// max |a - b| / max |b| over b's elements [offset, offset + a.numel()).
double rel_error(ftensor const& a, ftensor const& b, index_t offset = 0) {
  REQUIRE(offset + a.numel() <= b.numel());
  double diff = 0, scale = 1e-12;
  for (index_t i = 0; i < a.numel(); ++i) {
    diff = std::max(diff, std::abs(double(a[i]) - double(b[offset + i])));
    scale = std::max(scale, std::abs(double(b[offset + i])));
  }
  return diff / scale;
}

bool same_bits(ftensor const& a, ftensor const& b) {
  return a.shape() == b.shape() && std::equal(a.data(), a.data() + a.numel(), b.data());
}

/// What one train step of a batch-norm layer leaves: output, input gradient, parameter
/// gradients and running statistics.
struct step_result {
  ftensor y, dx, dweight, dbias, running_mean, running_var;
};

/// The shared starting state of every layer in a test: non-trivial affine and running statistics.
template <int C>
struct layer_state {
  ftensor weight = random_tensor(shape{C}, 11, 0.5, 1.5);
  ftensor bias = random_tensor(shape{C}, 12, -0.5, 0.5);
  ftensor running_mean = random_tensor(shape{C}, 13, -1, 1);
  ftensor running_var = random_tensor(shape{C}, 14, 0.5, 2);
  double momentum = 0.3;

  typename nn::batch_norm<C>::template module<float, cpu> make(bool training) const {
    typename nn::batch_norm<C>::template module<float, cpu> m;
    m.weight().value_mut().copy_from(weight);
    m.bias().value_mut().copy_from(bias);
    m.running_mean().copy_from(running_mean);
    m.running_var().copy_from(running_var);
    m.set_momentum(momentum);
    m.train(training);
    return m;
  }
};

/// One forward + backward (seeded with dy) of the layer `m` on a fresh leaf holding x.
template <class Module>
step_result layer_step(Module& m, ftensor const& x, ftensor const& dy) {
  fvar xv(x.clone(), true);
  auto y = m.forward(xv);
  y.backward(dy);
  return {y.value().clone(), xv.grad().clone(),          m.weight().grad().clone(),
          m.bias().grad().clone(), m.running_mean().clone(), m.running_var().clone()};
}

/// The same through distributed::sync_batch_norm directly (synchronises even in a world of one).
template <int C>
step_result op_step(communicator& comm, layer_state<C> const& s, ftensor const& x, ftensor const& dy) {
  fvar xv(x.clone(), true), w(s.weight.clone(), true), b(s.bias.clone(), true);
  ftensor rm = s.running_mean.clone(), rv = s.running_var.clone();
  auto y = distributed::sync_batch_norm(comm, xv, w, b, rm, rv, s.momentum, 1e-5);
  y.backward(dy);
  return {y.value().clone(), xv.grad().clone(), w.grad().clone(), b.grad().clone(), rm, rv};
}

/// Runs the synchronised layer (under the scope) and op on this rank's x with loss sum(y * dy),
/// and the plain layer on the gathered batch with loss sum over ranks; checks the synchronised
/// results against the plain ones as the header promises.
template <int C>
void check_against_gathered_plain(ftensor const& x, ftensor const& dy) {
  auto& world = test::mpi_world();
  layer_state<C> s;

  index_t first = 0;
  ftensor const xs = gather_rows(world, x, first);
  ftensor const dys = gather_rows(world, dy, first);
  auto plain_layer = s.make(true);
  step_result const plain = layer_step(plain_layer, xs, dys);
  index_t const offset = first * (x.numel() / x.size(0));

  counting_communicator counted(world);
  step_result scoped;
  int forward_calls = 0;
  {
    distributed::sync_batch_norm_scope sync(counted);
    auto layer = s.make(true);
    fvar xv(x.clone(), true);
    auto y = layer.forward(xv);
    forward_calls = counted.calls;
    y.backward(dy);
    scoped = {y.value().clone(), xv.grad().clone(),          layer.weight().grad().clone(),
              layer.bias().grad().clone(), layer.running_mean().clone(), layer.running_var().clone()};
  }
  int const layer_calls = counted.calls;
  step_result direct = op_step(counted, s, x, dy);
  int const op_calls = counted.calls - layer_calls;

  // Global sums of the local parameter gradients.
  for (auto* r : {&scoped, &direct}) {
    distributed::all_reduce(world, r->dweight);
    distributed::all_reduce(world, r->dbias);
  }

  // One all-reduce forward, one backward; the scoped layer runs the plain op in a world of one.
  CHECK(forward_calls == (world.size() > 1 ? 1 : 0));
  CHECK(layer_calls == (world.size() > 1 ? 2 : 0));
  CHECK(op_calls == 2);
  for (auto const* r : {&scoped, &direct}) {
    INFO((r == &scoped ? "layer under sync_batch_norm_scope" : "distributed::sync_batch_norm"));
    REQUIRE(r->y.shape() == x.shape());
    CHECK(rel_error(r->y, plain.y, offset) < 1e-5);
    CHECK(rel_error(r->dx, plain.dx, offset) < 1e-5);
    CHECK(rel_error(r->running_mean, plain.running_mean) < 1e-5);
    CHECK(rel_error(r->running_var, plain.running_var) < 1e-5);
    CHECK(rel_error(r->dweight, plain.dweight) < 1e-5);
    CHECK(rel_error(r->dbias, plain.dbias) < 1e-5);
  }
  // The running statistics moved (momentum 0.3), so the check above compares real updates.
  CHECK(rel_error(plain.running_var, s.running_var) > 1e-3);
}

}  // namespace

TEST_CASE("sync_batch_norm: 2d NHWC layer equals the plain layer over the gathered batch", "[distributed]") {
  auto& world = test::mpi_world();
  auto const r = static_cast<std::uint64_t>(world.rank());
  // Different data (and a different mean) per rank, so local statistics would not do.
  ftensor x = random_tensor(shape{3, 4, 4, 5}, 100 + r, -1.0 + double(r), 2.0 + 2.0 * double(r));
  ftensor c = random_tensor(shape{3, 4, 4, 5}, 200 + r, -1, 1);
  check_against_gathered_plain<5>(x, c);
}

TEST_CASE("sync_batch_norm: 1d (N, C) with a different batch size on every rank", "[distributed]") {
  auto& world = test::mpi_world();
  auto const r = world.rank();
  ftensor x = random_tensor(shape{2 + r, 3}, 300 + static_cast<std::uint64_t>(r), -2.0 + r, 1.0 + 3.0 * r);
  ftensor c = random_tensor(shape{2 + r, 3}, 400 + static_cast<std::uint64_t>(r), -1, 1);
  check_against_gathered_plain<3>(x, c);
}

TEST_CASE("sync_batch_norm: eval mode ignores the scope (running statistics, no collective)", "[distributed]") {
  auto& world = test::mpi_world();
  layer_state<5> s;
  ftensor x = random_tensor(shape{2, 3, 3, 5}, 500 + static_cast<std::uint64_t>(world.rank()), -1, 3);
  ftensor dy = random_tensor(shape{2, 3, 3, 5}, 600, -1, 1);
  auto plain_layer = s.make(false);
  step_result const plain = layer_step(plain_layer, x, dy);

  counting_communicator counted(world);
  step_result scoped;
  {
    distributed::sync_batch_norm_scope sync(counted);
    auto layer = s.make(false);
    scoped = layer_step(layer, x, dy);
  }
  CHECK(counted.calls == 0);
  CHECK(same_bits(scoped.y, plain.y));
  CHECK(same_bits(scoped.dx, plain.dx));
  CHECK(same_bits(scoped.dweight, plain.dweight));
  CHECK(same_bits(scoped.running_mean, s.running_mean));  // untouched in eval
  CHECK(same_bits(scoped.running_var, s.running_var));
  // Hand check of one value: y = (x - rm) / sqrt(rv + eps) * w + b.
  double expect = (x[7] - s.running_mean[2]) / std::sqrt(double(s.running_var[2]) + 1e-5) * s.weight[2] + s.bias[2];
  CHECK(scoped.y[7] == Approx(expect).epsilon(1e-6));

  // After the scope ends, train mode is the plain layer again: no collective.
  auto layer = s.make(true);
  layer_step(layer, x, dy);
  CHECK(counted.calls == 0);
}

TEST_CASE("sync_batch_norm: a single_process world equals the plain layer", "[distributed]") {
  distributed::single_process one;
  layer_state<5> s;
  ftensor x = random_tensor(shape{2, 3, 3, 5}, 700, -1, 3);
  ftensor dy = random_tensor(shape{2, 3, 3, 5}, 800, -1, 1);
  auto plain_layer = s.make(true);
  step_result const plain = layer_step(plain_layer, x, dy);
  step_result scoped;
  {
    distributed::sync_batch_norm_scope sync(one);
    auto layer = s.make(true);
    scoped = layer_step(layer, x, dy);
  }
  CHECK(same_bits(scoped.y, plain.y));
  CHECK(same_bits(scoped.dx, plain.dx));
  CHECK(same_bits(scoped.dweight, plain.dweight));
  CHECK(same_bits(scoped.dbias, plain.dbias));
  CHECK(same_bits(scoped.running_mean, plain.running_mean));
  CHECK(same_bits(scoped.running_var, plain.running_var));

  // The op itself always takes the synchronised path: equal to 1e-6.
  step_result const direct = op_step(one, s, x, dy);
  CHECK(rel_error(direct.y, plain.y) < 1e-6);
  CHECK(rel_error(direct.dx, plain.dx) < 1e-6);
  CHECK(rel_error(direct.dweight, plain.dweight) < 1e-6);
  CHECK(rel_error(direct.dbias, plain.dbias) < 1e-6);
  CHECK(rel_error(direct.running_mean, plain.running_mean) < 1e-6);
  CHECK(rel_error(direct.running_var, plain.running_var) < 1e-6);

  // Its gradients against finite differences, in double.
  generator g(900);
  auto make = [&](shape sh, double lo, double hi) {
    auto t = tensor<double, cpu>::uninitialized(std::move(sh));
    g.fill_uniform(t, lo, hi);
    return variable<double, cpu>(t, true);
  };
  auto xd = make(shape{4, 2, 3}, -1, 2), wd = make(shape{3}, 0.5, 1.5), bd = make(shape{3}, -1, 1);
  tensor<double, cpu> rm, rv;  // no running statistics
  auto res = autograd::grad_check([&] { return distributed::sync_batch_norm(one, xd, wd, bd, rm, rv); },
                                  {xd, wd, bd});
  INFO(res.worst);
  CHECK(res.checked == 4 * 2 * 3 + 3 + 3);
  CHECK(res.max_error < 1e-5);
}

TEST_CASE("sync_batch_norm: bad shapes throw shape_error before any collective", "[distributed]") {
  auto& world = test::mpi_world();
  counting_communicator counted(world);
  layer_state<5> s;
  fvar w(s.weight.clone(), true), b(s.bias.clone(), true);
  ftensor rm = s.running_mean.clone(), rv = s.running_var.clone();

  fvar rank1(random_tensor(shape{5}, 1, -1, 1), true);
  CHECK_THROWS_AS(distributed::sync_batch_norm(counted, rank1, w, b, rm, rv), shape_error);
  CHECK_THROWS_WITH(distributed::sync_batch_norm(counted, rank1, w, b, rm, rv),
                    Catch::Contains("expected input of rank >= 2") && Catch::Contains("got shape (5,)"));
  fvar four(random_tensor(shape{2, 4}, 2, -1, 1), true);  // 4 channels, weight has 5
  CHECK_THROWS_AS(distributed::sync_batch_norm(counted, four, w, b, rm, rv), shape_error);
  CHECK_THROWS_WITH(distributed::sync_batch_norm(counted, four, w, b, rm, rv),
                    Catch::Contains("expected weight of shape (4,)"));
  fvar five(random_tensor(shape{2, 5}, 3, -1, 1), true);
  ftensor short_var = ftensor::full(shape{3}, 1.0f);
  CHECK_THROWS_WITH(distributed::sync_batch_norm(counted, five, w, b, rm, short_var),
                    Catch::Contains("expected running_var of shape (5,)"));
  CHECK_THROWS_AS(distributed::sync_batch_norm(counted, five, w, b, rm, rv, 0.1, 0.0), config_error);
  {
    distributed::sync_batch_norm_scope sync(counted);
    auto layer = s.make(true);
    CHECK_THROWS_AS(layer.forward(four), shape_error);
  }
  CHECK(counted.calls == 0);
  CHECK(same_bits(rm, s.running_mean));  // nothing was updated

  // One value per channel over the whole world: every rank throws after the same all-reduce.
  distributed::single_process one;
  counting_communicator alone(one);
  fvar row(random_tensor(shape{1, 5}, 4, -1, 1), true);
  CHECK_THROWS_WITH(distributed::sync_batch_norm(alone, row, w, b, rm, rv),
                    Catch::Contains("more than 1 value per channel"));
  CHECK(alone.calls == 1);
}
