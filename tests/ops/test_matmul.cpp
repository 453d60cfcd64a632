#include "test_util.hpp"

#include <arcnet/ops/matmul.hpp>

using namespace arcnet;

namespace matmul_test {
using arcnet::testing::max_relative_difference;
using arcnet::testing::random_variable;
using arcnet::testing::require_gradients_match;
using dtensor = tensor<double, cpu>;
using dvar = variable<double, cpu>;

/// The plain triple loop: op(a) (m, k) x op(b) (k, n).
inline dtensor reference_matmul(dtensor const& a, dtensor const& b, ops::matmul_options o) {
  index_t m = o.transpose_a ? a.size(1) : a.size(0), k = o.transpose_a ? a.size(0) : a.size(1);
  index_t n = o.transpose_b ? b.size(0) : b.size(1);
  dtensor y(shape{m, n});
  for (index_t i = 0; i < m; ++i)
    for (index_t j = 0; j < n; ++j)
      for (index_t l = 0; l < k; ++l)
        y.at(i, j) += (o.transpose_a ? a.at(l, i) : a.at(i, l)) * (o.transpose_b ? b.at(j, l) : b.at(l, j));
  return y;
}
}  // namespace matmul_test

TEST_CASE("matmul: hand-computed product", "[ops][matmul]") {
  using namespace matmul_test;
  dvar a(dtensor::from_vector(shape{2, 2}, {1, 2, 3, 4}));
  dvar b(dtensor::from_vector(shape{2, 2}, {5, 6, 7, 8}));
  CHECK(ops::matmul(a, b).value().to_vector() == std::vector<double>{19, 22, 43, 50});
  CHECK(ops::matmul(a, b, {true, false}).value().to_vector() == std::vector<double>{26, 30, 38, 44});
  CHECK(ops::matmul(a, b, ops::transpose_rhs).value().to_vector() == std::vector<double>{17, 23, 39, 53});
  CHECK(ops::matmul(a, b, {true, true}).value().to_vector() == std::vector<double>{23, 31, 34, 46});
  dvar row(dtensor::from_vector(shape{1, 3}, {1, 2, 3}));
  dvar col(dtensor::from_vector(shape{3, 1}, {4, 5, 6}));
  CHECK(ops::matmul(row, col).value().to_vector() == std::vector<double>{32});
  CHECK(ops::matmul(col, row).shape() == shape{3, 3});
}

TEST_CASE("matmul: every transpose combination matches the reference loop and finite differences",
          "[ops][matmul]") {
  using namespace matmul_test;
  generator g(61);
  index_t m = 3, k = 5, n = 7;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      INFO("transpose_a " << ta << ", transpose_b " << tb);
      ops::matmul_options o{ta, tb};
      auto a = random_variable(ta ? shape{k, m} : shape{m, k}, g);
      auto b = random_variable(tb ? shape{n, k} : shape{k, n}, g);
      auto y = ops::matmul(a, b, o);
      REQUIRE(y.shape() == shape{m, n});
      CHECK(max_relative_difference(y.value(), reference_matmul(a.value(), b.value(), o)) < 1e-12);
      require_gradients_match([&] { return ops::matmul(a, b, o); }, {a, b});
    }
}

TEST_CASE("matmul: the raw backward accumulates into existing gradients", "[ops][matmul]") {
  using namespace matmul_test;
  generator g(62);
  auto a = randn<double>(shape{3, 4}, g);
  auto b = randn<double>(shape{4, 2}, g);
  auto dy = randn<double>(shape{3, 2}, g);
  dtensor da(a.shape()), db(b.shape());
  ops::matmul_backward(a, b, dy, {}, &da, &db);
  auto da1 = da.clone(), db1 = db.clone();
  ops::matmul_backward(a, b, dy, {}, &da, &db);
  for (index_t i = 0; i < da.numel(); ++i) CHECK(da[i] == Approx(2 * da1[i]));
  for (index_t i = 0; i < db.numel(); ++i) CHECK(db[i] == Approx(2 * db1[i]));
  // da = dy b^T
  CHECK(max_relative_difference(da1, reference_matmul(dy, b, ops::transpose_rhs)) < 1e-12);
}

TEST_CASE("linear: x W^T + b with and without bias", "[ops][matmul]") {
  using namespace matmul_test;
  dvar x(dtensor::from_vector(shape{2, 3}, {1, 0, -1, 2, 1, 0}));
  dvar w(dtensor::from_vector(shape{2, 3}, {1, 2, 3, -1, 0, 1}));  // (out, in)
  dvar b(dtensor::from_vector(shape{2}, {0.5, -0.5}));
  CHECK(ops::linear(x, w).value().to_vector() == std::vector<double>{-2, -2, 4, -2});
  CHECK(ops::linear(x, w, b).value().to_vector() == std::vector<double>{-1.5, -2.5, 4.5, -2.5});

  generator g(63);
  auto xi = random_variable(shape{5, 7}, g);
  auto wi = random_variable(shape{3, 7}, g);
  auto bi = random_variable(shape{3}, g);
  require_gradients_match([&] { return ops::linear(xi, wi); }, {xi, wi});
  require_gradients_match([&] { return ops::linear(xi, wi, bi); }, {xi, wi, bi});
}

TEST_CASE("matmul, linear: float and double agree", "[ops][matmul]") {
  using namespace matmul_test;
  generator g(64);
  auto a = randn<double>(shape{9, 33}, g), b = randn<double>(shape{33, 5}, g), bias = randn<double>(shape{5}, g);
  auto yd = ops::matmul_forward(a, b);
  auto yf = ops::matmul_forward(a.cast<float>(), b.cast<float>());
  CHECK(max_relative_difference(yf, yd, 1.0) < 1e-5);  // sums of 33 products: judge small entries absolutely
  auto ld = ops::linear(dvar(a), dvar(b.view({5, 33})), dvar(bias));
  auto lf = ops::linear(variable<float>(a.cast<float>()), variable<float>(b.cast<float>().view({5, 33})),
                        variable<float>(bias.cast<float>()));
  CHECK(max_relative_difference(lf.value(), ld.value(), 1.0) < 1e-5);
}

TEST_CASE("matmul, linear: mismatched shapes are shape errors that name them", "[ops][matmul]") {
  using namespace matmul_test;
  dvar a(dtensor::zeros(shape{2, 3})), b(dtensor::zeros(shape{4, 5}));
  CHECK_THROWS_MATCHES(ops::matmul(a, b), shape_error,
                       Catch::Message("arcnet: matmul: inner dimensions differ: (2, 3) x (4, 5) (3 vs 4)"));
  CHECK_THROWS_WITH(ops::matmul(a, b, {true, false}), Catch::Contains("(2, 3)^T x (4, 5)"));
  CHECK_THROWS_WITH(ops::matmul(a, dvar(dtensor::zeros(shape{3}))),
                    Catch::Contains("expected the right operand of rank 2, got shape (3,)"));
  CHECK_THROWS_WITH(ops::linear(a, dvar(dtensor::zeros(shape{4, 2}))),
                    Catch::Contains("linear: expected input features 2 (weight (4, 2)), got input (2, 3)"));
  CHECK_THROWS_WITH(ops::linear(a, dvar(dtensor::zeros(shape{4, 3})), dvar(dtensor::zeros(shape{3}))),
                    Catch::Contains("linear: expected bias of shape (4,), got (3,)"));
}
