#pragma once
// Plain long-double references and input generators shared by the kernel tests.

#include <Eigen/Core>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "prefopt/core/random.hpp"
#include "prefopt/core/types.hpp"

namespace prefopt::test {

using ld = long double;

/// |a - b| computed in long double, returned as double (mixed-precision comparisons).
template <class A, class B>
double err(A a, B b) {
  return static_cast<double>(std::abs(static_cast<ld>(a) - static_cast<ld>(b)));
}

template <class T>
constexpr double unit_roundoff() {
  return static_cast<double>(std::numeric_limits<T>::epsilon()) / 2;
}

/// Logits [n, v] with entries uniform in [-scale, scale]; a fraction `neg_inf` of entries is -inf
/// (never a whole row: column `keep` of each row stays finite).
template <class T>
row_matrix_t<T> random_logits(index_t n, index_t v, double scale, std::uint64_t seed,
                              double neg_inf = 0.0) {
  rng g(seed, 7);
  row_matrix_t<T> z(n, v);
  for (index_t i = 0; i < n; ++i) {
    const index_t keep = g.uniform_index(v);
    for (index_t j = 0; j < v; ++j) {
      z(i, j) = static_cast<T>(g.uniform(-scale, scale));
      if (j != keep && neg_inf > 0 && g.bernoulli(neg_inf)) {
        z(i, j) = -std::numeric_limits<T>::infinity();
      }
    }
  }
  return z;
}

template <class T>
std::vector<token_id> random_targets(index_t n, index_t v, std::uint64_t seed) {
  rng g(seed, 11);
  std::vector<token_id> t(static_cast<std::size_t>(n));
  for (auto& x : t) x = static_cast<token_id>(g.uniform_index(v));
  return t;
}

template <class T>
ld ref_lse(const T* x, index_t v) {
  ld m = -std::numeric_limits<ld>::infinity();
  for (index_t j = 0; j < v; ++j) m = std::max(m, static_cast<ld>(x[j]));
  ld s = 0;
  for (index_t j = 0; j < v; ++j) s += std::exp(static_cast<ld>(x[j]) - m);
  return m + std::log(s);
}

template <class T>
ld ref_entropy(const T* x, index_t v) {
  const ld lse = ref_lse(x, v);
  ld h = 0;
  for (index_t j = 0; j < v; ++j) {
    if (x[j] == -std::numeric_limits<T>::infinity()) continue;
    const ld lp = static_cast<ld>(x[j]) - lse;
    h -= std::exp(lp) * lp;
  }
  return h;
}

template <class T>
ld ref_kl(const T* p, const T* q, index_t v) {
  const ld lp = ref_lse(p, v);
  const ld lq = ref_lse(q, v);
  ld kl = 0;
  for (index_t j = 0; j < v; ++j) {
    if (p[j] == -std::numeric_limits<T>::infinity()) continue;
    if (q[j] == -std::numeric_limits<T>::infinity()) return std::numeric_limits<ld>::infinity();
    const ld a = static_cast<ld>(p[j]) - lp;
    const ld b = static_cast<ld>(q[j]) - lq;
    kl += std::exp(a) * (a - b);
  }
  return kl;
}

template <class T>
ld max_abs(const T* x, index_t v) {
  ld m = 0;
  for (index_t j = 0; j < v; ++j) {
    if (std::isfinite(x[j])) m = std::max(m, std::abs(static_cast<ld>(x[j])));
  }
  return m;
}

/// Documented bound for lse / log p(target): u (|value| + log V + 150).
template <class T>
double value_bound(double value, index_t v) {
  return unit_roundoff<T>() * (std::abs(value) + std::log(static_cast<double>(v)) + 150.0);
}

}  // namespace prefopt::test

namespace prefopt::test {

/// Central finite-difference gradient of a scalar function of a row-major double matrix.
template <class F>
row_matrix_d numeric_gradient(const row_matrix_d& z0, F&& f, double h = 1e-6) {
  row_matrix_d z = z0;
  row_matrix_d g(z.rows(), z.cols());
  for (index_t i = 0; i < z.rows(); ++i) {
    for (index_t j = 0; j < z.cols(); ++j) {
      const double x = z(i, j);
      if (!std::isfinite(x)) {
        g(i, j) = 0;
        continue;
      }
      z(i, j) = x + h;
      const double fp = f(z);
      z(i, j) = x - h;
      const double fm = f(z);
      z(i, j) = x;
      g(i, j) = (fp - fm) / (2 * h);
    }
  }
  return g;
}

}  // namespace prefopt::test
