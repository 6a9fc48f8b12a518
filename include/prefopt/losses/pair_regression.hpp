#pragma once
/// \file
/// The squared pair-regression losses through which INPO and ONPO implement their closed-form
/// updates without estimating `P(y > pi_t)` (the "IPO trick"; ALGORITHMS.md §7.2 and §8.3), in
/// tabular form with their gradients in the logits `z` of the policy being fitted.
///
/// With sampling policy `q` (INPO: `pi_t`; ONPO: `pi_{t-1}`), anchor logits `a` (INPO:
/// `eta tau log mu + (1 - eta tau) log pi_t`; ONPO: `log pi'_t`), `h(y, y') = (z_y - z_y') -
/// (a_y - a_y')` and `r = P q`:
///
///     labelled:   L(z) = E_{y, y' ~ q} E_{(y_w, y_l) ~ lambda_P(y, y')} (h(y_w, y_l) - eta/2)^2
///                      = 2 sum_{y, y'} q(y) q(y') P(y > y') (h(y, y') - eta/2)^2,
///     regression: R(z) = E_{y, y' ~ q} (h(y, y') - eta (r_y - r_y'))^2,
///
/// where `lambda_P(y, y') = (y, y')` with probability `P(y > y')`, else `(y', y)`. `L - R` does not
/// depend on `z`, and both are minimised (when `q > 0`) exactly by `z = a + eta P q + const`, the
/// closed-form INPO / ONPO update. Papers: Iterative Nash Policy Optimization (arXiv 2407.00617);
/// Improving LLM General Preference Alignment via Optimistic Online Mirror Descent
/// (arXiv 2502.16852). Cost O(n^2) per evaluation; one context. The sampled, sequence-level forms
/// of the same losses are `inpo_loss` / `onpo_loss` (`losses/nash_pg.hpp`).

#include <Eigen/Core>

#include "prefopt/core/assert.hpp"
#include "prefopt/core/types.hpp"

namespace prefopt::losses {

namespace detail {
inline void check_pair_loss_shapes(const char* fn, const matrix_d& p, const vector_d& q,
                                   const vector_d& anchor, const vector_d& z,
                                   const Eigen::Ref<vector_d>& gradient) {
  const index_t n = p.rows();
  PREFOPT_CHECK(p.cols() == n && q.size() == n && anchor.size() == n && z.size() == n &&
                    (gradient.size() == 0 || gradient.size() == n),
                shape_error, fn, ": P is ", p.rows(), "x", p.cols(), ", q has ", q.size(),
                ", anchor ", anchor.size(), ", z ", z.size(), ", gradient ", gradient.size(),
                " entries; expected n x n and n (gradient n or empty)");
}
}  // namespace detail

/// Labelled form `L(z)` (see the file comment); adds nothing to `gradient` when it is empty,
/// otherwise writes `dL/dz` into it.
inline double labelled_pair_loss(const matrix_d& p, const vector_d& q, const vector_d& anchor,
                                 double eta, const vector_d& z, Eigen::Ref<vector_d> gradient) {
  detail::check_pair_loss_shapes("labelled_pair_loss", p, q, anchor, z, gradient);
  const index_t n = p.rows();
  const vector_d u = z - anchor;
  if (gradient.size() > 0) gradient.setZero();
  double loss = 0.0;
  for (index_t j = 0; j < n; ++j) {
    for (index_t i = 0; i < n; ++i) {
      const double w = 2.0 * q[i] * q[j] * p(i, j);
      const double e = u[i] - u[j] - 0.5 * eta;
      loss += w * e * e;
      if (gradient.size() > 0) {
        gradient[i] += 2.0 * w * e;
        gradient[j] -= 2.0 * w * e;
      }
    }
  }
  return loss;
}

/// Regression form `R(z)` (see the file comment); gradient as for `labelled_pair_loss`.
inline double regression_pair_loss(const matrix_d& p, const vector_d& q, const vector_d& anchor,
                                   double eta, const vector_d& z, Eigen::Ref<vector_d> gradient) {
  detail::check_pair_loss_shapes("regression_pair_loss", p, q, anchor, z, gradient);
  const index_t n = p.rows();
  const vector_d u = z - anchor;
  const vector_d r = p * q;
  if (gradient.size() > 0) gradient.setZero();
  double loss = 0.0;
  for (index_t j = 0; j < n; ++j) {
    for (index_t i = 0; i < n; ++i) {
      const double w = q[i] * q[j];
      const double e = u[i] - u[j] - eta * (r[i] - r[j]);
      loss += w * e * e;
      if (gradient.size() > 0) {
        gradient[i] += 2.0 * w * e;
        gradient[j] -= 2.0 * w * e;
      }
    }
  }
  return loss;
}

}  // namespace prefopt::losses
