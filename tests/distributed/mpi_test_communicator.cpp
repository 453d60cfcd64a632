// The MPI communicator's collectives against values each rank can compute on its own.
#include <catch2/catch.hpp>

#include <vector>

#include "distributed/mpi_world.hpp"

using namespace arcnet;
using distributed::reduce_op;

TEST_CASE("mpi communicator: all-reduce sum and max, broadcast, all-gather, barrier", "[distributed]") {
  auto& w = test::mpi_world();
  int const r = w.rank(), n = w.size();
  REQUIRE(n >= 1);
  std::vector<float> v = {1.0f + r, 10.0f * r, -static_cast<float>(r)};
  w.all_reduce(v.data(), v.size(), reduce_op::sum);
  float const sum_r = n * (n - 1) / 2.0f;
  CHECK(v[0] == Approx(n + sum_r));
  CHECK(v[1] == Approx(10 * sum_r));
  CHECK(v[2] == Approx(-sum_r));

  std::vector<double> m = {static_cast<double>(r), -static_cast<double>(r)};
  w.all_reduce(m.data(), m.size(), reduce_op::max);
  CHECK(m[0] == n - 1);
  CHECK(m[1] == 0);

  std::vector<std::int64_t> big = {std::int64_t(1) << 40, r};
  w.all_reduce(big.data(), big.size(), reduce_op::sum);
  CHECK(big[0] == n * (std::int64_t(1) << 40));

  std::vector<float> b = {r == n - 1 ? 7.5f : 0.0f, static_cast<float>(r)};
  w.broadcast(b.data(), b.size(), n - 1);
  CHECK(b[0] == 7.5f);
  CHECK(b[1] == n - 1);

  std::vector<float> mine = {static_cast<float>(r), static_cast<float>(r * r)};
  std::vector<float> all(2 * static_cast<std::size_t>(n), -1.0f);
  w.all_gather(mine.data(), 2, all.data());
  for (int k = 0; k < n; ++k) {
    CHECK(all[2 * k] == k);
    CHECK(all[2 * k + 1] == k * k);
  }
  w.barrier();

  // Non-blocking: two in flight at once, completed in order.
  std::vector<float> x(1000, 1.0f), y(10, static_cast<float>(r));
  auto a = w.start_all_reduce(x.data(), x.size());
  auto c = w.start_all_reduce(y.data(), y.size());
  w.wait(a);
  w.wait(c);
  CHECK(x[999] == n);
  CHECK(y[0] == Approx(sum_r));

  CHECK_THROWS_AS(w.broadcast(b.data(), 1, n), config_error);  // no such root: caught before MPI
}

TEST_CASE("mpi communicator: tensor all_gather concatenates along axis 0 in rank order", "[distributed]") {
  auto& w = test::mpi_world();
  auto t = tensor<float, cpu>::full(shape{2, 3}, static_cast<float>(w.rank()));
  auto g = distributed::all_gather(w, t);
  REQUIRE(g.shape() == shape{2 * w.size(), 3});
  for (int k = 0; k < w.size(); ++k) CHECK(g.at(2 * k + 1, 2) == k);
}
