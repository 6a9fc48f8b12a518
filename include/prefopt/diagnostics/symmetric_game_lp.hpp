#pragma once
/// \file
/// Exact `tau = 0` equilibrium of one symmetric preference game, as a linear program solved by a
/// primal-dual interior-point method written for this problem (ALGORITHMS.md §9.3).
///
/// With `A = P - 1/2` (skew-symmetric, `P + P^T = 1`), a symmetric Nash equilibrium is a point of
///
///     min t   s.t.   A x <= t 1,   1^T x = 1,   x >= 0        (optimum t = 0),
///
/// whose slack is `s = t 1 - A x >= 0`. The LP is self-dual: its dual variables are `(y, z) =
/// (x, s)` with multiplier `-t`, so the primal-dual Newton direction from a symmetric point is
/// symmetric, and only `(x, s, t)` are iterated. One Newton step solves, with `D = diag(s / x)`,
///
///     (D - A) dx + dt 1 = r_c / x + r_p,   1^T dx = 1 - 1^T x,   ds = dt 1 - A dx - r_p,
///
/// (`r_p = s - t 1 + A x`, `r_c` the complementarity target) by one LU of the `n x n` matrix
/// `D - A` (its symmetric part `D` is positive definite, so it is never singular) and two
/// triangular solves; Mehrotra's predictor-corrector sets the centring `sigma = (mu_aff / mu)^3`.
/// The start `x = 1/n`, `t = max(A x) + 1` is feasible, so every iterate is. Since
/// `x^T A x = 0`, the LP duality gap of an iterate is `x^T s = t 1^T x`.
///
/// Crossover: once the iterate's gap bound `2 t` (`A x <= t 1`) is below `crossover_gap`, each time
/// the estimated support `S = {i : x_i > s_i}` changes, the support system `A_SS x_S = t 1, 1^T x_S
/// = 1` is solved exactly (an LU of size `|S| + 1`, about `n / 2` on random games), clipped to `x
/// >= 0`, and kept if its certificate meets the target. The iteration stops when either point's
/// certificate
///
///     DualGap_0(pi) = 2 max_y (P pi)_y - 1     (pi = x / 1^T x; ONPO, arXiv 2502.16852, §3)
///
/// is `<= target_gap`, evaluated from `P` directly (not from the IPM's own gap estimate). Cost:
/// `O(n^3)` per iteration, 10-25 iterations; memory: three `n x n` matrices. Not supported: games
/// with `n` so large that `n x n` LU factorisations do not fit (use optimistic MWU there, see
/// `solve_unregularised`). References: Mehrotra, "On the implementation of a primal-dual interior
/// point method" (SIAM J. Optim. 2(4), 1992); Wright, "Primal-Dual Interior-Point Methods" (SIAM
/// 1997), ch. 10 (crossover from a strictly complementary limit).

#include <Eigen/Core>
#include <Eigen/LU>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "prefopt/core/assert.hpp"
#include "prefopt/core/types.hpp"
#include "prefopt/models/preference/validate.hpp"

namespace prefopt {

/// Options of `solve_symmetric_game_lp`.
struct symmetric_game_lp_options {
  /// Stop when the certified `tau = 0` duality gap is at most this.
  double target_gap = 1e-12;
  /// Interior-point iterations before giving up (the result then reports `converged = false`).
  index_t max_iterations = 100;
  /// Crossover (support solve) is tried once the iterate's gap bound `2 t` is below this; 0
  /// disables it.
  double crossover_gap = 1e-4;
  /// Gondzio centrality correctors per iteration (each one more solve with the same LU).
  int max_correctors = 3;
};

/// A computed `tau = 0` equilibrium of one game (see `solve_symmetric_game_lp`).
struct symmetric_game_lp_solution {
  /// The equilibrium, length `n`, on the simplex.
  vector_d probabilities;
  /// Its certificate `max(0, 2 max_y (P pi)_y - 1)`.
  double gap = std::numeric_limits<double>::infinity();
  /// The same without the clamp (rounding can make it about `-1e-16`).
  double raw_gap = std::numeric_limits<double>::infinity();
  /// Interior-point iterations (LU factorisations of the `n x n` Newton matrix).
  index_t iterations = 0;
  /// Support solves attempted.
  index_t crossover_attempts = 0;
  /// Whether `probabilities` comes from a support solve (else it is the normalised IPM iterate).
  bool crossover = false;
  /// Whether `gap <= target_gap`.
  bool converged = false;
};

namespace detail {
/// `2 max_y (P pi)_y - 1` with `A = P - 1/2`: `2 max_y (A pi)_y` for `pi` on the simplex.
inline double skew_gap(const matrix_d& a, const vector_d& pi, vector_d& work) {
  work.noalias() = a * pi;
  return 2.0 * work.maxCoeff();
}

/// Largest `alpha <= 1` with `v + alpha dv >= 0` elementwise (for `v > 0`).
inline double max_step(const vector_d& v, const vector_d& dv) {
  double alpha = 1.0;
  for (index_t i = 0; i < v.size(); ++i) {
    if (dv[i] < 0.0) alpha = std::min(alpha, -v[i] / dv[i]);
  }
  return alpha;
}
}  // namespace detail

/// The symmetric Nash equilibrium of the preference matrix `p` (`n x n`, entries in [0, 1],
/// `P + P^T = 1`, checked) by the self-dual interior-point method with crossover described in
/// this file's comment, certified by `DualGap_0 <= options.target_gap`. Does not throw when the
/// target is missed: the result says `converged = false` and carries the best point found.
/// When the equilibrium is not unique (a face), the result is a point of that face.
[[nodiscard]] inline symmetric_game_lp_solution solve_symmetric_game_lp(
    const matrix_d& p, const symmetric_game_lp_options& options = {}) {
  constexpr const char* fn = "solve_symmetric_game_lp";
  validate_preference_matrix(p, fn, "p", 0);
  PREFOPT_CHECK(options.target_gap > 0.0, invalid_argument, fn,
                ": options.target_gap = ", options.target_gap, ", expected > 0");
  PREFOPT_CHECK(options.max_iterations >= 0, invalid_argument, fn,
                ": options.max_iterations = ", options.max_iterations, ", expected >= 0");
  const index_t n = p.rows();
  const double dn = static_cast<double>(n);
  symmetric_game_lp_solution best;
  vector_d work(n);
  const matrix_d a = p.array() - 0.5;

  // Keeps `candidate` (on the simplex) if its certificate is the best so far.
  auto offer = [&](const vector_d& candidate, bool from_crossover) {
    const double raw = detail::skew_gap(a, candidate, work);
    if (std::isfinite(raw) && !(raw >= best.raw_gap)) {
      best.raw_gap = raw;
      best.gap = std::max(0.0, raw);
      best.probabilities = candidate;
      best.crossover = from_crossover;
    }
    return best.gap <= options.target_gap;
  };

  vector_d x = vector_d::Constant(n, 1.0 / dn);
  vector_d ax = a * x;
  double t = ax.maxCoeff() + 1.0;
  vector_d s = t - ax.array();
  if (offer(x, false)) {
    best.converged = true;
    return best;
  }

  matrix_d m(n, n);
  Eigen::PartialPivLU<matrix_d> lu(n);
  vector_d u(n), v(n), rhs(n), rp(n), dx(n), ds(n), dx_aff(n), ds_aff(n), dx_c(n), ds_c(n), pi(n);
  std::vector<index_t> support, last_support;
  const vector_d ones = vector_d::Ones(n);

  // Newton direction for the complementarity target `rc` (needs `lu`, `u`, `rp`).
  auto direction = [&](const vector_d& rc, vector_d& dxo, vector_d& dso) {
    rhs = rc.cwiseQuotient(x) + rp;
    v = lu.solve(rhs);
    const double e = 1.0 - x.sum();
    const double dt = (v.sum() - e) / u.sum();
    dxo = v - dt * u;
    dso.noalias() = -(a * dxo);
    dso.array() += dt;
    dso -= rp;
    return dt;
  };

  for (index_t it = 0; it < options.max_iterations; ++it) {
    ++best.iterations;
    const double mu = x.dot(s) / dn;
    ax.noalias() = a * x;
    rp = s + ax;  // r_p = s - t 1 + A x (0 up to rounding: the iterates are feasible)
    rp.array() -= t;

    m = -a;
    m.diagonal() += s.cwiseQuotient(x);
    lu.compute(m);
    u = lu.solve(ones);

    // Predictor (affine scaling) and Mehrotra's centring.
    direction(-x.cwiseProduct(s), dx_aff, ds_aff);
    const double alpha_aff = std::min(detail::max_step(x, dx_aff), detail::max_step(s, ds_aff));
    const double mu_aff = (x + alpha_aff * dx_aff).dot(s + alpha_aff * ds_aff) / dn;
    const double sigma = std::pow(std::clamp(mu_aff / mu, 0.0, 1.0), 3.0);
    // Corrector.
    vector_d rc = -x.cwiseProduct(s) - dx_aff.cwiseProduct(ds_aff);
    rc.array() += sigma * mu;
    double dt = direction(rc, dx, ds);
    double alpha_max = std::min(detail::max_step(x, dx), detail::max_step(s, ds));
    // Gondzio's centrality correctors: reuse the factorisation to lengthen the step.
    for (int k = 0; k < options.max_correctors && alpha_max < 1.0; ++k) {
      const double target = std::min(1.0, 1.5 * alpha_max + 0.1);
      const double smu = sigma * mu;
      vector_d trial = (x + target * dx).cwiseProduct(s + target * ds);
      vector_d corr = (trial.array() < 0.1 * smu)
                          .select(0.1 * smu - trial.array(),
                                  (trial.array() > 10.0 * smu)
                                      .select((10.0 * smu - trial.array()).max(-10.0 * smu), 0.0))
                          .matrix();
      const double dt_c = direction(rc + corr, dx_c, ds_c);
      const double alpha_c = std::min(detail::max_step(x, dx_c), detail::max_step(s, ds_c));
      if (!(alpha_c >= 1.01 * alpha_max)) break;
      dx.swap(dx_c);
      ds.swap(ds_c);
      dt = dt_c;
      rc += corr;
      alpha_max = alpha_c;
    }
    const double alpha = std::min(1.0, 0.995 * alpha_max);
    x += alpha * dx;
    s += alpha * ds;
    t += alpha * dt;
    if (!x.allFinite() || !s.allFinite() || x.minCoeff() <= 0.0 || s.minCoeff() <= 0.0) break;

    pi = x / x.sum();
    if (offer(pi, false)) break;

    // Crossover: solve the support system exactly when the support estimate changes.
    if (2.0 * t < options.crossover_gap) {
      support.clear();
      for (index_t i = 0; i < n; ++i) {
        if (x[i] > s[i]) support.push_back(i);
      }
      if (support != last_support && !support.empty()) {
        last_support = support;
        ++best.crossover_attempts;
        const index_t k = static_cast<index_t>(support.size());
        matrix_d kkt(k + 1, k + 1);
        kkt.topLeftCorner(k, k) = a(support, support);
        kkt.col(k).head(k).setConstant(-1.0);
        kkt.row(k).head(k).setConstant(1.0);
        kkt(k, k) = 0.0;
        vector_d b = vector_d::Zero(k + 1);
        b[k] = 1.0;
        const vector_d sol = kkt.partialPivLu().solve(b);
        pi.setZero();
        pi(support) = sol.head(k).cwiseMax(0.0);
        const double total = pi.sum();
        if (std::isfinite(total) && total > 0.0) {
          pi /= total;
          if (offer(pi, true)) break;
        }
      }
    }
  }
  best.converged = best.gap <= options.target_gap;
  return best;
}

}  // namespace prefopt
