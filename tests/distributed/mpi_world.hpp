#pragma once
// The MPI communicator shared by the test cases of arcnet_mpi_tests (created on first use, MPI
// finalised at exit).
#include <arcnet/distributed/mpi.hpp>

namespace arcnet::test {
inline distributed::mpi_communicator& mpi_world() {
  static distributed::mpi_communicator world;
  return world;
}
}  // namespace arcnet::test
