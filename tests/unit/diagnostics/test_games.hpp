#pragma once
// Shared helpers of the diagnostics tests: vectors from lists, independent reference computations.

#include <initializer_list>

#include "prefopt/core/math.hpp"
#include "prefopt/core/types.hpp"

namespace test {
inline prefopt::vector_d vec(std::initializer_list<double> values) {
  prefopt::vector_d v(static_cast<prefopt::index_t>(values.size()));
  prefopt::index_t i = 0;
  for (double x : values) v[i++] = x;
  return v;
}
inline prefopt::row_matrix_d row(const prefopt::vector_d& v) {
  return v.transpose();
}

/// KL(p, q) from probabilities (plain formula, independent of the library's).
inline double kl(const prefopt::vector_d& p, const prefopt::vector_d& q) {
  double s = 0.0;
  for (prefopt::index_t i = 0; i < p.size(); ++i) {
    if (p[i] > 0) s += p[i] * std::log(p[i] / q[i]);
  }
  return s;
}

/// V_tau(p, q) = p^T P q - tau KL(p, mu) + tau KL(q, mu).
inline double value(const prefopt::matrix_d& P, const prefopt::vector_d& mu, double tau,
                    const prefopt::vector_d& p, const prefopt::vector_d& q) {
  return p.dot(P * q) - tau * kl(p, mu) + tau * kl(q, mu);
}

/// Magnetic mirror descent (ALGORITHMS.md §9.2), written independently of the library's solver:
/// z <- (z + eta tau log mu + eta P softmax(z)) / (1 + eta tau), until the gap check passes.
template <class GapFn>
inline prefopt::vector_d mmd(const prefopt::matrix_d& P, const prefopt::vector_d& mu, double tau,
                             double eta, int max_iterations, double target, GapFn gap,
                             int& iterations) {
  prefopt::vector_d z = mu.array().log().matrix(), pi(mu.size());
  for (iterations = 0; iterations < max_iterations; ++iterations) {
    prefopt::softmax(z, pi);
    if (iterations % 100 == 0 && gap(pi) < target) return pi;
    z = (z + eta * tau * mu.array().log().matrix() + eta * (P * pi)) / (1.0 + eta * tau);
  }
  prefopt::softmax(z, pi);
  return pi;
}
}  // namespace test
