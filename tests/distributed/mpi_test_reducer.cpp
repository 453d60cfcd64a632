// gradient_reducer: W ranks with B samples each train exactly as one process with W*B samples
// (the model has no batch norm, so the only difference is the order of floating-point sums).
#include <catch2/catch.hpp>

#include <arcnet/autograd/variable.hpp>
#include <arcnet/distributed/reducer.hpp>
#include <arcnet/models/arcface.hpp>
#include <arcnet/ops/activation.hpp>
#include <arcnet/ops/matmul.hpp>
#include <arcnet/optim/sgd.hpp>

#include <cmath>
#include <vector>

#include "distributed/mpi_world.hpp"

using namespace arcnet;

namespace {
// A small network: relu(x W1^T) -> ArcFace head (k = 2 sub-centers, 6 classes).
struct tiny_net {
  generator g;  // before head: members are initialised in this order
  models::arcface_head<float, cpu> head;
  variable<float, cpu> w1;
  explicit tiny_net(std::uint64_t seed) : g(seed), head(options(), g) {
    std::vector<float> v(12 * 10);
    for (auto& x : v) x = static_cast<float>(g.normal(0, 0.3));
    w1 = variable<float, cpu>(tensor<float, cpu>::from_vector(shape{12, 10}, v), true);
  }
  static models::arcface_options options() {
    models::arcface_options o;
    o.num_classes = 6;
    o.in_features = 12;
    o.num_subcenters = 2;
    o.scale = 16;
    o.margin = 0.3;
    return o;
  }
  variable<float, cpu> loss(tensor<float, cpu> const& x, std::vector<std::int64_t> const& y) {
    return head.loss(ops::relu(ops::matmul(variable<float, cpu>(x), w1, ops::transpose_rhs)), y);
  }
  std::vector<std::pair<std::string, variable<float, cpu>>> params() {
    return {{"w1", w1}, {"head.norm_product.weight", head.weight()}};
  }
};

// Sample i of step s: the same on every rank (each rank later takes its own rows).
void batch(int step, int rows, int first, tensor<float, cpu>& x, std::vector<std::int64_t>& y) {
  x = tensor<float, cpu>::uninitialized(shape{rows, 10});
  y.assign(static_cast<std::size_t>(rows), 0);
  for (int r = 0; r < rows; ++r) {
    generator g(static_cast<std::uint64_t>(1000 * step + first + r));
    for (int k = 0; k < 10; ++k) x[r * 10 + k] = static_cast<float>(g.normal());
    y[static_cast<std::size_t>(r)] = static_cast<std::int64_t>((first + r) % 6);
  }
}

// max |a - b| / max |b|: the largest difference relative to the tensor's scale.
double max_relative_difference(tensor<float, cpu> const& a, tensor<float, cpu> const& b) {
  double diff = 0, scale = 0;
  for (index_t i = 0; i < a.numel(); ++i) {
    diff = std::max(diff, std::abs(double(a[i]) - b[i]));
    scale = std::max(scale, std::abs(double(b[i])));
  }
  return diff / scale;
}
}  // namespace

TEST_CASE("gradient_reducer: W ranks x B samples train exactly as one process with W*B samples", "[distributed]") {
  auto& w = test::mpi_world();
  int const ranks = w.size(), rank = w.rank(), B = 3, steps = 4;
  tiny_net dist(7), whole(7);
  // Tiny buckets (64 bytes, first 16): one per parameter, started during backward.
  distributed::gradient_reducer<cpu> reducer(w, dist.params(), {64, 16});
  optim::sgd<float, cpu> opt_dist(dist.params(), optim::sgd_options{}.set_lr(0.1).set_momentum(0.9).set_weight_decay(5e-4));
  optim::sgd<float, cpu> opt_whole(whole.params(), optim::sgd_options{}.set_lr(0.1).set_momentum(0.9).set_weight_decay(5e-4));
  std::size_t early = 0;
  for (int s = 0; s < steps; ++s) {
    tensor<float, cpu> x, xa;
    std::vector<std::int64_t> y, ya;
    batch(s, B, rank * B, x, y);       // this rank's rows
    batch(s, ranks * B, 0, xa, ya);    // all ranks' rows, for the single process
    opt_dist.zero_grad();
    auto l = dist.loss(x, y);
    {
      auto scope = reducer.observe();
      l.backward();
    }
    reducer.finish();
    early += reducer.started_during_backward();
    opt_dist.step();
    opt_whole.zero_grad();
    whole.loss(xa, ya).backward();
    opt_whole.step();
  }
  CHECK(reducer.bucket_count() == 2);
  if (ranks > 1) CHECK(early > 0);  // communication started before backward ended
  CHECK(max_relative_difference(dist.w1.value(), whole.w1.value()) < 1e-5);
  CHECK(max_relative_difference(dist.head.weight().value(), whole.head.weight().value()) < 1e-5);
  // And the steps did move the weights (the comparison is not between two untouched copies).
  tiny_net untouched(7);
  CHECK(max_relative_difference(dist.w1.value(), untouched.w1.value()) > 1e-2);
}

TEST_CASE("gradient_reducer: a parameter without a gradient on this rank contributes zeros", "[distributed]") {
  auto& w = test::mpi_world();
  auto a = variable<float, cpu>(tensor<float, cpu>::full(shape{4}, 1.0f), true);
  auto b = variable<float, cpu>(tensor<float, cpu>::full(shape{3}, 1.0f), true);
  distributed::gradient_reducer<cpu> reducer(w, {{"a", a}, {"b", b}});
  // Only rank 0 gives b a gradient (2 per element); every rank gives a a gradient of rank + 1.
  a.grad_for_accumulate().fill(static_cast<float>(w.rank() + 1));
  if (w.rank() == 0) b.grad_for_accumulate().fill(2.0f);
  reducer.finish();  // no backward observed: reduces everything now
  int const n = w.size();
  CHECK(a.grad()[3] == Approx((n + 1) / 2.0));
  REQUIRE(b.grad().defined());
  CHECK(b.grad()[0] == Approx(2.0 / n));
}
