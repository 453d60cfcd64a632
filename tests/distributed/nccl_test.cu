// The NCCL path of data-parallel training (arcnet_nccl_test): nccl_communicator's collectives on
// device buffers, and gradient_reducer<cuda> against values each rank can compute on its own.
// An MPI + CUDA program with its own main, run as `mpirun -np N` with N <= the GPUs of the node
// (ctest: N = 1); every expected value is written for any N. Started without a launcher it is
// one rank whose host world is distributed::single_process (MPI is not initialised, so neither
// mpirun nor OpenMPI's plugins need to be installed): NCCL's unique id is then made locally, and
// the NCCL calls are the same. That is how the GPU machine, which has no mpirun, runs it. Without a CUDA device it exits
// with 77 (skipped). As in arcnet_mpi_tests, rank 0 reports to the terminal and the other ranks
// write arcnet_nccl_test.rank<N>.log, printed when they failed; the exit status is 1 when any
// rank failed.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <arcnet/autograd/variable.hpp>
#include <arcnet/core/random.hpp>
#include <arcnet/distributed/mpi.hpp>
#include <arcnet/distributed/nccl.hpp>
#include <arcnet/distributed/reducer.hpp>
#include <arcnet/ops/activation.hpp>
#include <arcnet/ops/matmul.hpp>
#include <arcnet/ops/reduce.hpp>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

using namespace arcnet;

namespace {

distributed::communicator* the_world = nullptr;
distributed::nccl_communicator* the_gpus = nullptr;

distributed::communicator& world() { return *the_world; }
distributed::nccl_communicator& gpus() { return *the_gpus; }

tensor<float, cuda> on_device(std::vector<float> const& v) {
  return tensor<float, cpu>::from_vector(shape{index_t(v.size())}, v).to<cuda>();
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

// A small network on device D: mean((relu(x W1^T) W2^T)^2), the same initial weights everywhere.
template <class D>
struct tiny_net {
  variable<float, D> w1, w2;
  tiny_net() {
    generator g(7);
    auto make = [&](index_t rows, index_t cols) {
      auto t = tensor<float, cpu>::uninitialized(shape{rows, cols});
      for (index_t i = 0; i < t.numel(); ++i) t[i] = static_cast<float>(g.normal(0, 0.3));
      return variable<float, D>(t.template to<D>(), true);
    };
    w1 = make(12, 10);
    w2 = make(6, 12);
  }
  variable<float, D> loss(tensor<float, cpu> const& x) {
    auto h = ops::relu(ops::matmul(variable<float, D>(x.template to<D>()), w1, ops::transpose_rhs));
    auto out = ops::matmul(h, w2, ops::transpose_rhs);
    return ops::mean(ops::mul(out, out));
  }
  std::vector<std::pair<std::string, variable<float, D>>> params() { return {{"w1", w1}, {"w2", w2}}; }
};

// Rows [first, first + rows) of step s's global batch: the same on every rank.
tensor<float, cpu> batch(int step, int rows, int first) {
  auto x = tensor<float, cpu>::uninitialized(shape{rows, 10});
  for (int r = 0; r < rows; ++r) {
    generator g(static_cast<std::uint64_t>(1000 * step + first + r));
    for (int k = 0; k < 10; ++k) x[r * 10 + k] = static_cast<float>(g.normal());
  }
  return x;
}

}  // namespace

TEST_CASE("nccl communicator: all-reduce, broadcast and all-gather of device buffers", "[nccl]") {
  auto& c = gpus();
  int const r = c.rank(), n = c.size();
  REQUIRE(n == world().size());
  REQUIRE(r == world().rank());
  CHECK(c.name().rfind("NCCL ", 0) == 0);
  float const sum_r = n * (n - 1) / 2.0f;

  auto v = on_device({1.0f + r, 10.0f * r, -static_cast<float>(r)});
  distributed::all_reduce(c, v);
  c.synchronize();  // the timed host wait
  auto h = v.to_vector();
  CHECK(h[0] == Approx(n + sum_r));
  CHECK(h[1] == Approx(10 * sum_r));
  CHECK(h[2] == Approx(-sum_r));

  // Large enough for several NCCL chunks and channels; every element different.
  index_t const big = (index_t(1) << 20) + 3;
  auto b = tensor<float, cpu>::uninitialized(shape{big});
  for (index_t i = 0; i < big; ++i) b[i] = static_cast<float>((r + 1) * (i % 13));
  auto bd = b.to<cuda>();
  c.all_reduce(bd.data(), static_cast<std::size_t>(big));
  auto bh = bd.to<cpu>();
  std::size_t wrong = 0;
  for (index_t i = 0; i < big; ++i)
    if (bh[i] != static_cast<float>(n * (n + 1) / 2 * (i % 13))) ++wrong;  // small integers: exact
  CHECK(wrong == 0);

  auto bc = on_device({r == n - 1 ? 7.5f : 0.0f, static_cast<float>(r)});
  distributed::broadcast(c, bc, n - 1);
  auto bch = bc.to_vector();
  CHECK(bch[0] == 7.5f);
  CHECK(bch[1] == n - 1);

  auto mine = tensor<float, cpu>::from_vector(shape{2, 3}, {float(r), float(r * r), 1, 2, 3, float(-r)}).to<cuda>();
  auto all = distributed::all_gather(c, mine).to<cpu>();
  REQUIRE(all.shape() == shape{2 * n, 3});
  for (int k = 0; k < n; ++k) {
    CHECK(all.at(2 * k, 0) == k);
    CHECK(all.at(2 * k, 1) == k * k);
    CHECK(all.at(2 * k + 1, 2) == -k);
  }

  CHECK_THROWS_AS(c.broadcast(bc.data(), 1, n), config_error);  // no such root: caught before NCCL
}

TEST_CASE("gradient_reducer<cuda>: averages known gradients; a parameter without one contributes zeros", "[nccl]") {
  int const r = world().rank(), n = world().size();
  index_t const big = 300001;
  // Caps of 8 and 4 bytes: a bucket per parameter (3); the defaults: c alone in the first 1 MiB
  // bucket (it is larger), a and b together in the next (2).
  for (auto options : {distributed::reducer_options{8, 4}, distributed::reducer_options{}}) {
    auto a = variable<float, cuda>(tensor<float, cuda>::full(shape{4}, 1.0f), true);
    auto b = variable<float, cuda>(tensor<float, cuda>::full(shape{3}, 1.0f), true);
    auto c = variable<float, cuda>(tensor<float, cuda>::zeros(shape{big}), true);
    distributed::gradient_reducer<cuda> reducer(gpus(), {{"a", a}, {"b", b}, {"c", c}}, options);
    CHECK(reducer.bucket_count() == (options.bucket_bytes == 8 ? 3u : 2u));
    // Every rank gives a the gradient rank + 1 and c (rank + 1) * (i % 7); only rank 0 gives b one (2).
    a.grad_for_accumulate().fill(static_cast<float>(r + 1));
    if (r == 0) b.grad_for_accumulate().fill(2.0f);
    auto gc = tensor<float, cpu>::uninitialized(shape{big});
    for (index_t i = 0; i < big; ++i) gc[i] = static_cast<float>((r + 1) * (i % 7));
    c.grad_for_accumulate().copy_from(gc.to<cuda>());
    for (int step = 0; step < 2; ++step) {  // twice: the second reduces the first's averages again
      reducer.finish();                     // no backward observed: reduces everything now
      double const mean_factor = (n + 1) / 2.0;  // the second time: the average of equal values
      auto ah = a.grad().to_vector();
      CHECK(ah[3] == Approx(mean_factor));
      REQUIRE(b.grad().defined());
      CHECK(b.grad().to_vector()[0] == Approx(2.0 / n));
      auto ch = c.grad().to<cpu>();
      std::size_t wrong = 0;
      for (index_t i = 0; i < big; ++i)
        if (std::abs(ch[i] - mean_factor * (i % 7)) > 1e-5 * (1 + mean_factor * (i % 7))) ++wrong;
      CHECK(wrong == 0);
    }
  }
}

TEST_CASE("gradient_reducer<cuda>: W ranks x B samples give the gradients of one process with W*B samples",
          "[nccl]") {
  int const ranks = world().size(), rank = world().rank(), B = 3, steps = 2;
  tiny_net<cuda> dist;
  tiny_net<cpu> whole;
  // Tiny buckets (64 bytes, first 16): one per parameter, started during backward. Through the
  // constructor that takes the host communicator (a second NCCL communicator of its own).
  distributed::gradient_reducer<cuda> reducer(world(), dist.params(), {64, 16});
  REQUIRE(reducer.bucket_count() == 2);
  for (int s = 0; s < steps; ++s) {
    dist.w1.zero_grad();
    dist.w2.zero_grad();
    auto l = dist.loss(batch(s, B, rank * B));
    {
      auto scope = reducer.observe();
      l.backward();
    }
    reducer.finish();
    CHECK(reducer.started_during_backward() > 0);  // w2's bucket started before backward ended
    whole.w1.zero_grad();
    whole.w2.zero_grad();
    whole.loss(batch(s, ranks * B, 0)).backward();
    // cuBLAS and the CPU kernels sum in different orders: agreement to float rounding, not bitwise.
    CHECK(max_relative_difference(dist.w1.grad().to<cpu>(), whole.w1.grad()) < 1e-4);
    CHECK(max_relative_difference(dist.w2.grad().to<cpu>(), whole.w2.grad()) < 1e-4);
  }
}

int main(int argc, char** argv) {
  // Under mpirun (or another launcher): MPI. Alone: a world of one, without MPI.
  std::unique_ptr<distributed::communicator> world_owner;
  if (distributed::launched_world_size() > 0) world_owner = std::make_unique<distributed::mpi_communicator>();
  else world_owner = std::make_unique<distributed::single_process>();
  auto& mpi = *world_owner;
  mpi.set_timeout(std::chrono::seconds(60));
  the_world = &mpi;
  if (!cuda_device_available()) {
    std::printf("arcnet_nccl_test: no CUDA device (cudaGetDeviceCount found none or failed): skipping\n");
    return 77;
  }
  int failed = 0;
  try {
    distributed::nccl_communicator nccl(mpi);  // sets this rank's device
    the_gpus = &nccl;
    if (mpi.rank() == 0)
      std::printf("arcnet_nccl_test: %s, %d rank(s) (host world: %s), rank 0 on device %d\n", nccl.name().c_str(),
                  mpi.size(), mpi.name().c_str(), nccl.device());
    Catch::Session session;
    if (int rc = session.applyCommandLine(argc, argv); rc != 0) return rc;
    std::string const log = "arcnet_nccl_test.rank" + std::to_string(mpi.rank()) + ".log";
    if (mpi.rank() != 0) session.configData().outputFilename = log;
    failed = session.run();
    if (mpi.rank() != 0 && failed != 0) {
      std::ifstream in(log);
      std::cerr << "---- rank " << mpi.rank() << " ----\n" << in.rdbuf();
    }
    the_gpus = nullptr;
  } catch (std::exception const& e) {  // e.g. more ranks on this node than GPUs: say so, fail
    std::fprintf(stderr, "arcnet_nccl_test: rank %d: %s\n", mpi.rank(), e.what());
    return 1;
  }
  std::int64_t total = failed;
  mpi.all_reduce(&total, 1, distributed::reduce_op::sum);
  if (mpi.rank() == 0 && total != failed)
    std::fprintf(stderr, "arcnet_nccl_test: %lld test case(s) failed on other ranks\n",
                 static_cast<long long>(total - failed));
  return total == 0 ? 0 : 1;
}
