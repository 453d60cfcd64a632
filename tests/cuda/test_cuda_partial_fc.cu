// CUDA tests of distributed::partial_fc_head (insightface's Partial FC): on one rank its loss and
// gradients on the CUDA device must be the CPU head's (tests/distributed checks the CPU head on
// two MPI ranks against the plain head), with and without sampling, with sub-centers; and the
// margin backends must treat a target of -1 (a row whose class is on another rank) as "s * cos
// only" on both devices.
#include "cuda/cuda_test_util.hpp"

#include <arcnet/distributed/partial_fc.hpp>

#include <cstdint>
#include <vector>

using namespace arcnet;

namespace cuda_pfc_test {
using cuda_testing::max_difference;
using cuda_testing::random_tensor;
using cuda_testing::tolerance;

models::arcface_options options(int classes, int k) {
  models::arcface_options o;
  o.num_classes = classes;
  o.in_features = 24;
  o.num_subcenters = k;
  o.scale = 16;
  for (int c = 0; c < classes; ++c) o.margins.push_back(0.1 + 0.4 * c / (classes - 1.0));
  return o;
}
}  // namespace cuda_pfc_test

TEST_CASE("cuda partial_fc_head: loss and gradients equal the CPU head's", "[cuda][partial_fc]") {
  ARCNET_REQUIRE_CUDA_DEVICE();
  using namespace cuda_pfc_test;
  distributed::single_process one;
  for (int k : {1, 3})
    for (double rate : {1.0, 0.4}) {
      INFO("sub-centers " << k << ", sample rate " << rate);
      auto o = options(23, k);
      generator g1(7), g2(7);
      distributed::partial_fc_head<cpu> head(one, o, rate, g1, 99);
      distributed::partial_fc_head<cuda> head_d(one, o, rate, g2, 99);
      CHECK(max_difference(head.weight().value(), head_d.weight().value()) == 0);
      auto x = random_tensor<float>(shape{10, 24}, 5);
      std::vector<std::int64_t> labels{0, 3, 22, 7, 7, 11, 19, 2, 16, 5};
      for (int step = 0; step < 2; ++step) {  // the second step draws other negatives
        variable<float, cpu> xv(x, true);
        variable<float, cuda> xd(x.to<cuda>(), true);
        head.weight().zero_grad();
        head_d.weight().zero_grad();
        auto loss = head.loss(xv, labels);
        auto loss_d = head_d.loss(xd, labels);
        CHECK(head_d.last_sampled_classes() == head.last_sampled_classes());
        if (rate < 1) CHECK(static_cast<int>(head.last_sampled_classes().size()) < 23);
        CHECK(loss_d.value().to<cpu>().item() == Approx(loss.value().item()).epsilon(1e-5));
        loss.backward();
        loss_d.backward();
        // The device's exp(z - max) is computed in float, the CPU's in double: the default float tolerance.
        CHECK(max_difference(xv.grad(), xd.grad()) <= tolerance<float>());
        CHECK(max_difference(head.weight().grad(), head_d.weight().grad()) <= tolerance<float>());
      }
      // The whole weight, gathered, is the plain head's initialisation on both devices.
      CHECK(max_difference(head.gather_weight(), head_d.gather_weight().to<cuda>()) == 0);
    }
}

TEST_CASE("cuda partial_fc_head: bad labels throw, and a row owned by no rank is an error", "[cuda][partial_fc]") {
  ARCNET_REQUIRE_CUDA_DEVICE();
  using namespace cuda_pfc_test;
  distributed::single_process one;
  generator g(3);
  distributed::partial_fc_head<cuda> head(one, options(5, 1), 1.0, g);
  variable<float, cuda> x(random_tensor<float>(shape{2, 24}, 4).to<cuda>(), true);
  CHECK_THROWS_AS(head.loss(x, {0, 5}), shape_error);
  // sharded_cross_entropy: with one rank every row must have its target here.
  variable<float, cuda> logits(random_tensor<float>(shape{2, 3}, 6).to<cuda>(), true);
  CHECK_THROWS_WITH(distributed::sharded_cross_entropy(one, logits, {1, -1}),
                    Catch::Contains("row 1 has its target class on 0 ranks"));
}

TEST_CASE("cuda margin: a target of -1 leaves its row s * cos, as on the CPU", "[cuda][partial_fc]") {
  ARCNET_REQUIRE_CUDA_DEVICE();
  using namespace cuda_pfc_test;
  auto cosine = random_tensor<float>(shape{4, 6}, 8);
  auto dy = random_tensor<float>(shape{4, 6}, 9);
  std::vector<std::int64_t> targets{2, -1, 5, -1};
  std::vector<double> margins{0.1, 0.2, 0.3, 0.4, 0.5, 0.6};
  ops::margin_options o;
  o.scale = 16;
  auto y = tensor<float, cpu>::uninitialized(cosine.shape());
  auto y_d = tensor<float, cuda>::uninitialized(cosine.shape());
  ops::margin_impl<cpu>::forward(cosine, targets, margins, o, y);
  ops::margin_impl<cuda>::forward(cosine.to<cuda>(), targets, margins, o, y_d);
  CHECK(max_difference(y, y_d) == 0);
  for (index_t j = 0; j < 6; ++j) {
    CHECK(y.at(1, j) == 16 * cosine.at(1, j));
    CHECK(y.at(3, j) == 16 * cosine.at(3, j));
  }
  CHECK(y.at(0, 2) != 16 * cosine.at(0, 2));  // a real target gets its margin
  auto d = tensor<float, cpu>::zeros(cosine.shape());
  auto d_d = tensor<float, cuda>::zeros(cosine.shape());
  ops::margin_impl<cpu>::backward(cosine, targets, margins, o, dy, d);
  ops::margin_impl<cuda>::backward(cosine.to<cuda>(), targets, margins, o, dy.to<cuda>(), d_d);
  CHECK(max_difference(d, d_d) == 0);
  for (index_t j = 0; j < 6; ++j) CHECK(d.at(1, j) == 16 * dy.at(1, j));
}
