#include "test_util.hpp"

using namespace arcnet;

TEST_CASE("tensor: zero-filled construction, shape and element access", "[core]") {
  tensor<float, cpu> t(shape{2, 3, 4});
  CHECK(t.rank() == 3);
  CHECK(t.numel() == 24);
  CHECK(t.size(-1) == 4);
  CHECK(t.at(1, 2, 3) == 0.0f);
  t.at(1, 2, 3) = 5.0f;
  CHECK(t[23] == 5.0f);
  CHECK(reinterpret_cast<std::uintptr_t>(t.data()) % 64 == 0);
}

TEST_CASE("tensor: views share storage, clone copies", "[core]") {
  auto t = tensor<double, cpu>::from_vector(shape{2, 3}, {1, 2, 3, 4, 5, 6});
  auto v = t.view({3, -1});
  CHECK(v.shape() == shape{3, 2});
  v.at(2, 1) = 60;
  CHECK(t.at(1, 2) == 60);
  CHECK(v.shares_storage_with(t));
  auto c = t.clone();
  c.at(0, 0) = -1;
  CHECK(t.at(0, 0) == 1);
  auto row = t.narrow(1, 1);
  CHECK(row.shape() == shape{1, 3});
  CHECK(row.at(0, 0) == 4);
  CHECK(t.cast<float>().at(1, 1) == 5.0f);
}

TEST_CASE("tensor: bad shapes and indices throw arcnet errors naming the problem", "[core]") {
  tensor<float, cpu> t(shape{2, 3});
  CHECK_THROWS_AS(t.view({4, 2}), shape_error);
  CHECK_THROWS_WITH(t.view({4, 2}), Catch::Contains("(2, 3)") && Catch::Contains("(4, 2)"));
  CHECK_THROWS_AS(t.at(2, 0), shape_error);
  CHECK_THROWS_AS(t.at(0), shape_error);
  CHECK_THROWS_AS(t.size(2), shape_error);
  CHECK_THROWS_WITH(t.size(-3), Catch::Contains("axis -3 is out of range"));
  CHECK_THROWS_AS(t.narrow(1, 2), shape_error);
  CHECK_THROWS_AS((tensor<float, cpu>::from_vector(shape{2}, {1, 2, 3})), shape_error);
  CHECK_THROWS_AS(shape({2, -1}), shape_error);
  tensor<float, cpu> undefined;
  CHECK_FALSE(undefined.defined());
  CHECK_THROWS_AS(undefined.clone(), error);
}

TEST_CASE("generator: the same seed gives the same numbers - normal has mean 0, variance 1", "[core]") {
  generator a(42), b(42);
  for (int i = 0; i < 10; ++i) CHECK(a.normal() == b.normal());
  auto t = randn<double>(shape{20000}, a);
  double m = 0, v = 0;
  for (index_t i = 0; i < t.numel(); ++i) m += t[i];
  m /= t.numel();
  for (index_t i = 0; i < t.numel(); ++i) v += (t[i] - m) * (t[i] - m);
  v /= t.numel();
  CHECK(std::abs(m) < 0.03);
  CHECK(std::abs(v - 1) < 0.05);
}
