#pragma once
// CPU backend of ops/loss.hpp: one row of (rows, C) at a time, OpenMP over rows; exponentials
// in T (their arguments are <= 0), their sums in double.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "arcnet/core/tensor.hpp"

namespace arcnet::ops {

template <>
struct loss_impl<cpu> {
  static constexpr index_t parallel_threshold = 1 << 14;

  /// The row maximum and log(sum(exp(row - max))); exp(row - max) goes to `exps` when given.
  template <class T>
  static void row_log_sum_exp(T const* row, index_t cols, T& max, double& log_sum, T* exps = nullptr) {
    T mx = -std::numeric_limits<T>::infinity();
    for (index_t j = 0; j < cols; ++j) mx = std::max(mx, row[j]);
    double s = 0;
    for (index_t j = 0; j < cols; ++j) {
      T e = std::exp(row[j] - mx);  // in [0, 1]: T is precise enough, the sum is kept in double
      if (exps) exps[j] = e;
      s += static_cast<double>(e);
    }
    max = mx;
    log_sum = std::log(s);
  }

  /// y = softmax(x) (or log_softmax when log) over rows of length cols.
  template <class T>
  static void softmax(tensor<T, cpu> const& x, tensor<T, cpu>& y, index_t rows, index_t cols, bool log) {
    T const* xs = x.data();
    T* ys = y.data();
#pragma omp parallel for if (rows * cols > parallel_threshold)
    for (index_t r = 0; r < rows; ++r) {
      T const* xr = xs + r * cols;
      T* yr = ys + r * cols;
      T mx;
      double ls;
      if (log) {
        row_log_sum_exp(xr, cols, mx, ls);
        for (index_t j = 0; j < cols; ++j) yr[j] = static_cast<T>(static_cast<double>(xr[j] - mx) - ls);
      } else {
        row_log_sum_exp(xr, cols, mx, ls, yr);
        T inv = static_cast<T>(std::exp(-ls));
        for (index_t j = 0; j < cols; ++j) yr[j] *= inv;
      }
    }
  }

  /// softmax: dx += y * (dy - sum(dy * y)); log-softmax: dx += dy - exp(y) * sum(dy).
  template <class T>
  static void softmax_backward(tensor<T, cpu> const& y, tensor<T, cpu> const& dy, tensor<T, cpu>& dx, index_t rows,
                               index_t cols, bool log) {
    T const* ys = y.data();
    T const* g = dy.data();
    T* out = dx.data();
#pragma omp parallel for if (rows * cols > parallel_threshold)
    for (index_t r = 0; r < rows; ++r) {
      T const* yr = ys + r * cols;
      T const* gr = g + r * cols;
      T* o = out + r * cols;
      double s = 0;
      if (log) {
        for (index_t j = 0; j < cols; ++j) s += static_cast<double>(gr[j]);
        T st = static_cast<T>(s);
        for (index_t j = 0; j < cols; ++j) o[j] += gr[j] - std::exp(yr[j]) * st;
      } else {
        for (index_t j = 0; j < cols; ++j) s += static_cast<double>(gr[j]) * static_cast<double>(yr[j]);
        for (index_t j = 0; j < cols; ++j) o[j] += yr[j] * (gr[j] - static_cast<T>(s));
      }
    }
  }

  /// loss = mean_i [(1 - ls) (lse_i - x[i, t_i]) + ls (lse_i - mean_c x[i, c])], prob = softmax(x).
  template <class T>
  static void cross_entropy(tensor<T, cpu> const& logits, std::vector<std::int64_t> const& targets,
                            double label_smoothing, tensor<T, cpu>& prob, tensor<T, cpu>& loss) {
    index_t n = logits.size(0), c = logits.size(1);
    T const* xs = logits.data();
    T* ps = prob.data();
    std::vector<double> row_loss(static_cast<size_t>(n));
#pragma omp parallel for if (n * c > parallel_threshold)
    for (index_t i = 0; i < n; ++i) {
      T const* xr = xs + i * c;
      T* pr = ps + i * c;
      T mx;
      double ls;
      row_log_sum_exp(xr, c, mx, ls, pr);
      double lse = static_cast<double>(mx) + ls, sum_x = 0;
      T inv = static_cast<T>(std::exp(-ls));
      for (index_t j = 0; j < c; ++j) {
        pr[j] *= inv;
        sum_x += static_cast<double>(xr[j]);
      }
      double nll = lse - static_cast<double>(xr[targets[static_cast<size_t>(i)]]);
      double smooth = lse - sum_x / static_cast<double>(c);
      row_loss[static_cast<size_t>(i)] = (1 - label_smoothing) * nll + label_smoothing * smooth;
    }
    double total = 0;
    for (double l : row_loss) total += l;  // in row order: reproducible for any thread count
    loss.data()[0] = static_cast<T>(total / static_cast<double>(n));
  }

  /// dlogits += dy * (prob - (1 - ls) onehot - ls / C) / N.
  template <class T>
  static void cross_entropy_backward(tensor<T, cpu> const& prob, std::vector<std::int64_t> const& targets,
                                     double label_smoothing, tensor<T, cpu> const& dy, tensor<T, cpu>& dlogits) {
    index_t n = prob.size(0), c = prob.size(1);
    T scale = static_cast<T>(static_cast<double>(dy.data()[0]) / static_cast<double>(n));
    T uniform = static_cast<T>(label_smoothing / static_cast<double>(c));
    T hit = static_cast<T>(1 - label_smoothing);
    T const* ps = prob.data();
    T* out = dlogits.data();
#pragma omp parallel for if (n * c > parallel_threshold)
    for (index_t i = 0; i < n; ++i) {
      T const* pr = ps + i * c;
      T* o = out + i * c;
      for (index_t j = 0; j < c; ++j) o[j] += scale * (pr[j] - uniform);
      o[targets[static_cast<size_t>(i)]] -= scale * hit;
    }
  }
};

}  // namespace arcnet::ops
