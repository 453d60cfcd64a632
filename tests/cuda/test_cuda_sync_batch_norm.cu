// CUDA tests of distributed::sync_batch_norm: the per-channel sums are computed on the device,
// all-reduced on the host and the statistics and backward coefficients go back, so the results
// must be the CPU's sync_batch_norm on the same input, for one rank (single_process) and for a
// world of two whose other rank holds the same batch (a mirror communicator: every sum doubles,
// so the count, the running variance's correction and the all-reduced backward sums are
// exercised as with two real ranks; tests/distributed runs the CPU op on two MPI ranks).
#include "cuda/cuda_test_util.hpp"

#include <arcnet/distributed/sync_batch_norm.hpp>

#include <cstdint>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

using namespace arcnet;

namespace cuda_sync_bn_test {
using cuda_testing::max_difference;
using cuda_testing::random_tensor;
using cuda_testing::tolerance;

/// A world of two in which the other rank holds the same data as this one: all_reduce sums
/// double, everything else is the identity. Only what sync_batch_norm calls is meaningful.
class mirror_communicator final : public distributed::communicator {
 public:
  int calls = 0;
  int rank() const override { return 0; }
  int size() const override { return 2; }
  std::string name() const override { return "mirror of 2"; }
  void all_reduce(float* d, std::size_t n, distributed::reduce_op op) override { reduce(d, n, op); }
  void all_reduce(double* d, std::size_t n, distributed::reduce_op op) override { reduce(d, n, op); }
  void all_reduce(std::int64_t* d, std::size_t n, distributed::reduce_op op) override { reduce(d, n, op); }
  void broadcast(float*, std::size_t, int) override { ++calls; }
  void broadcast(std::int64_t*, std::size_t, int) override { ++calls; }
  void all_gather(float const* s, std::size_t n, float* r) override { gather(s, n, r); }
  void all_gather(std::int64_t const* s, std::size_t n, std::int64_t* r) override { gather(s, n, r); }
  void barrier() override { ++calls; }
  distributed::request_id start_all_reduce(float* d, std::size_t n) override {
    reduce(d, n, distributed::reduce_op::sum);
    return 0;
  }
  bool test(distributed::request_id) override { return true; }
  void wait(distributed::request_id) override {}
  [[noreturn]] void abort(int) override { std::terminate(); }

 private:
  template <class V>
  void reduce(V* d, std::size_t n, distributed::reduce_op op) {
    ++calls;
    if (op == distributed::reduce_op::sum)
      for (std::size_t i = 0; i < n; ++i) d[i] = d[i] + d[i];
  }
  template <class V>
  void gather(V const* s, std::size_t n, V* r) {
    ++calls;
    std::memcpy(r, s, n * sizeof(V));
    std::memcpy(r + n, s, n * sizeof(V));
  }
};

template <class T>
tensor<T, cuda> to_device(tensor<T, cpu> const& t) {
  return t.defined() ? t.template to<cuda>() : tensor<T, cuda>();
}

/// sync_batch_norm on both devices over `comm`, same input: output, running statistics and the
/// gradients of x, weight and bias must agree.
template <class T>
void check_against_cpu(distributed::communicator& comm, shape const& s, bool affine, std::uint64_t seed) {
  index_t const c = s[s.rank() - 1];
  auto x = random_tensor<T>(s, seed, 1.0, 4.0);  // a mean far from 0: the sums are unshifted
  auto w = random_tensor<T>(shape{c}, seed + 1, 0.5, 1.5);
  auto b = random_tensor<T>(shape{c}, seed + 2);
  auto dy = random_tensor<T>(s, seed + 3);
  auto rm = random_tensor<T>(shape{c}, seed + 4), rv = random_tensor<T>(shape{c}, seed + 5, 0.5, 2.0);
  auto rm_d = to_device(rm), rv_d = to_device(rv);
  variable<T, cpu> xv(x, true), wv = affine ? variable<T, cpu>(w, true) : variable<T, cpu>(),
                                bv = affine ? variable<T, cpu>(b, true) : variable<T, cpu>();
  variable<T, cuda> xd(to_device(x), true), wd = affine ? variable<T, cuda>(to_device(w), true) : variable<T, cuda>(),
                                 bd = affine ? variable<T, cuda>(to_device(b), true) : variable<T, cuda>();
  auto y = distributed::sync_batch_norm(comm, xv, wv, bv, rm, rv, 0.1, 1e-5);
  auto yd = distributed::sync_batch_norm(comm, xd, wd, bd, rm_d, rv_d, 0.1, 1e-5);
  CHECK(max_difference(y.value(), yd.value()) <= tolerance<T>());
  CHECK(max_difference(rm, rm_d) <= tolerance<T>());
  CHECK(max_difference(rv, rv_d) <= tolerance<T>());
  y.backward(dy);
  yd.backward(to_device(dy));
  CHECK(max_difference(xv.grad(), xd.grad()) <= tolerance<T>());
  if (affine) {
    CHECK(max_difference(wv.grad(), wd.grad()) <= tolerance<T>());
    CHECK(max_difference(bv.grad(), bd.grad()) <= tolerance<T>());
  }
}
}  // namespace cuda_sync_bn_test

TEMPLATE_TEST_CASE("cuda sync_batch_norm: one rank and a mirrored world of two give the CPU's results",
                   "[cuda][sync_batch_norm]", float, double) {
  ARCNET_REQUIRE_CUDA_DEVICE();
  using namespace cuda_sync_bn_test;
  distributed::single_process one;
  mirror_communicator two;
  std::uint64_t seed = 5000;
  for (auto const& s : {shape{3, 7}, shape{2, 3, 5, 7}, shape{4, 9, 9, 33}, shape{8, 28, 28, 64}})
    for (bool affine : {true, false}) {
      INFO("shape " << s << ", affine " << affine);
      check_against_cpu<TestType>(one, s, affine, seed += 10);
      check_against_cpu<TestType>(two, s, affine, seed += 10);
    }
  // Two collectives per layer and step: the forward's statistics and the backward's sums (the
  // CPU and the CUDA runs of each case above).
  CHECK(two.calls == 4 * 4 * 2);
}

TEST_CASE("cuda sync_batch_norm: the scope runs CUDA batch-norm layers over the ranks", "[cuda][sync_batch_norm]") {
  ARCNET_REQUIRE_CUDA_DEVICE();
  using namespace cuda_sync_bn_test;
  mirror_communicator two;
  nn::batch_norm<5>::module<float, cuda> bn;
  auto x = random_tensor<float>(shape{2, 3, 3, 5}, 77, 1.0, 3.0);
  variable<float, cuda> xd(x.to<cuda>(), true);
  {
    distributed::sync_batch_norm_scope<cuda> sync(two);
    auto y = bn.forward(xd);
    CHECK(std::string(y.grad_fn()->name) == "sync_batch_norm");
    CHECK(two.calls == 1);
    // Mirrored, the statistics are this batch's, but the running variance's correction uses
    // the count of both ranks: var * 36 / 35 rather than var * 18 / 17.
    tensor<float, cpu> none;
    auto rm = tensor<float, cpu>::zeros(shape{5}), rv = tensor<float, cpu>::full(shape{5}, 1.f);
    ops::batch_norm_options o;
    ops::batch_norm(variable<float, cpu>(x), variable<float, cpu>(), variable<float, cpu>(), rm, rv, o);
    auto rv_sync = bn.running_var().to<cpu>();
    for (index_t j = 0; j < 5; ++j) {
      double const var_local = (rv[j] - 0.9) / 0.1 * 17.0 / 18.0;  // undo the plain op's update and correction
      CHECK(rv_sync[j] == Approx(0.9 + 0.1 * var_local * 36.0 / 35.0).epsilon(1e-4));
    }
    bn.train(false);
    auto y_eval = bn.forward(xd);  // eval mode: no collective, even inside a scope
    CHECK(two.calls == 1);
    CHECK(std::string(y_eval.grad_fn()->name) == "batch_norm");
  }
}
