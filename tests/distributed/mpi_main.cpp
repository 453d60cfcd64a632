// Catch2 main of the MPI tests (arcnet_mpi_tests), run by ctest as `mpirun -np 2 ...` and also
// as one process. Every rank runs the same test cases in the same order, so their collectives
// match; a failure on one rank that leaves the other waiting ends in the communicator's timeout
// (60 s here) and a failed test rather than a hang. Rank 0 reports to the terminal; the others
// write arcnet_mpi_tests.rank<N>.log in the working directory and print it only when they failed.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>

#include "distributed/mpi_world.hpp"

int main(int argc, char** argv) {
  auto& world = arcnet::test::mpi_world();
  world.set_timeout(std::chrono::seconds(60));
  Catch::Session session;
  if (int rc = session.applyCommandLine(argc, argv); rc != 0) return rc;
  std::string const log = "arcnet_mpi_tests.rank" + std::to_string(world.rank()) + ".log";
  if (world.rank() != 0) session.configData().outputFilename = log;
  int const failed = session.run();
  if (world.rank() != 0 && failed != 0) {
    std::ifstream in(log);
    std::cerr << "---- rank " << world.rank() << " ----\n" << in.rdbuf();
  }
  std::int64_t total = failed;
  world.all_reduce(&total, 1, arcnet::distributed::reduce_op::sum);
  if (world.rank() == 0 && total != failed)
    std::fprintf(stderr, "arcnet_mpi_tests: %lld test case(s) failed on other ranks\n",
                 static_cast<long long>(total - failed));
  return total == 0 ? 0 : 1;
}
