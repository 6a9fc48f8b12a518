#pragma once
/// \file
/// Equilibria of preference games, computed to a certified duality gap (ALGORITHMS.md §9.2, §9.3).
///
/// Regularised game (`tau > 0`), unique equilibrium `pi*_tau`, the fixed point
/// `pi*_tau = softmax(log mu + P pi*_tau / tau)` (Nash Learning from Human Feedback, Munos et al.,
/// arXiv 2312.00886, Prop. 1). `solve_regularised` runs a damped Newton method on
///
///     F(z) = z - log mu - P softmax(z) / tau,   J(z) = I - P (diag(pi) - pi pi^T) / tau,
///
/// whose Jacobian is never singular (`J v = 0` gives `v^T D v = (Dv)^T A (Dv) / tau = 0` with
/// `A = P - 1/2` skew and `D = diag(pi) - pi pi^T` PSD, so `Dv = 0` and `v = 0`), so the Armijo
/// backtracking on `||F||^2` converges globally and Newton's quadratic rate takes over near the
/// solution. For `tau < 0.1` it follows a continuation path `tau 8^k -> tau` (each stage
/// warm-started from the previous one's equilibrium), which keeps the Newton step count small as
/// `tau -> 0`. The Newton system is solved by LU for `n <= dense_limit` and matrix-free by
/// restarted GMRES otherwise (one `P v` product per Krylov step), which keeps `n = 4096` practical.
/// It stops at `DualGap_tau <= target_gap` (default 1e-12) and reports the certificate `KL(pi,
/// pi*_tau) <= gap / (2 tau)`; missing the target throws `prefopt::convergence_error`.
///
/// Unregularised game (`tau = 0`, equilibria may be a face). `solve_unregularised` per context:
/// a Condorcet winner (`P(y* > y) >= 1/2` for all `y`) is returned as a pure equilibrium (gap 0);
/// for `n = 3` with a strict cycle the unique equilibrium is `pi ∝ (b, c, a)` with
/// `a = A_01, b = A_12, c = A_20`; otherwise, up to `n = interior_point_limit` (default 4096),
/// the linear program of §9.3 is solved by the self-dual interior-point method with crossover of
/// `symmetric_game_lp.hpp` (exact to rounding: gaps about 1e-15 at n = 2000); above it (where
/// `n x n` LU factorisations are too slow, `O(n^3)` per iteration) by optimistic multiplicative
/// weights (ONPO, arXiv 2502.16852, §8) with `eta = 1/2`, averaged, until the `tau = 0` gap of the
/// average (or of the last iterate) is `<= target_gap`. Missing the target throws
/// `prefopt::convergence_error`. The method used is reported per context (`equilibrium::methods`).
///
/// Reported gaps are `max(0, gap)`: a duality gap is `>= 0` by definition, and rounding in `P pi`
/// can make the computed value about `-1e-16`; the unclamped values are kept in `raw_gaps`.

#include <Eigen/Core>
#include <Eigen/LU>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "prefopt/core/assert.hpp"
#include "prefopt/core/math.hpp"
#include "prefopt/core/types.hpp"
#include "prefopt/diagnostics/duality_gap.hpp"
#include "prefopt/diagnostics/symmetric_game_lp.hpp"
#include "prefopt/games/preference_game.hpp"
#include "prefopt/policies/tabular_softmax.hpp"

namespace prefopt {

/// How the equilibrium of one context was computed.
enum class equilibrium_method {
  newton,                    ///< `tau > 0`: damped Newton with dense LU
  newton_gmres,              ///< `tau > 0`: damped Newton with matrix-free GMRES
  condorcet_winner,          ///< `tau = 0`: a Condorcet winner, pure
  three_action_closed_form,  ///< `tau = 0`, `n = 3` strict cycle: `pi ∝ (b, c, a)`
  interior_point,            ///< `tau = 0`: the linear program, interior point with crossover
  optimistic_mwu,            ///< `tau = 0`: averaged optimistic multiplicative weights
};

/// The name of a method as written in results (`"interior_point"`, ...).
[[nodiscard]] constexpr const char* to_string(equilibrium_method m) noexcept {
  switch (m) {
    case equilibrium_method::newton:
      return "newton";
    case equilibrium_method::newton_gmres:
      return "newton_gmres";
    case equilibrium_method::condorcet_winner:
      return "condorcet_winner";
    case equilibrium_method::three_action_closed_form:
      return "three_action_closed_form";
    case equilibrium_method::interior_point:
      return "interior_point";
    case equilibrium_method::optimistic_mwu:
      return "optimistic_mwu";
  }
  return "unknown";
}

/// A computed equilibrium of every context of a game.
struct equilibrium {
  /// `[contexts, n]` equilibrium probabilities.
  row_matrix_d probabilities;
  /// `[contexts, n]` logits (for `tau > 0`, `log mu + P pi / tau` up to a per-row constant).
  row_matrix_d logits;
  /// Per-context duality gaps at the KL weight the equilibrium solves, `max(0, raw_gaps)`.
  vector_d gaps;
  /// Per-context gaps as computed (rounding can make them about `-1e-16`).
  vector_d raw_gaps;
  /// `rho`-weighted duality gap (`>= 0`).
  double gap = 0.0;
  /// `tau > 0`: the certificate `KL_rho(pi, pi*_tau) <= gap / (2 tau)` (`>= 0`); `tau = 0`: NaN.
  double kl_bound = 0.0;
  /// Total iterations (Newton steps, interior-point steps or optimistic-MWU steps) over all
  /// contexts.
  index_t iterations = 0;
  /// Per-context method.
  std::vector<equilibrium_method> methods;

  /// The method as one string: its name when every context used the same one, else the distinct
  /// names in order of first use joined by `+` (e.g. `"condorcet_winner+interior_point"`).
  [[nodiscard]] std::string method() const {
    std::string out;
    std::vector<equilibrium_method> seen;
    for (const auto m : methods) {
      if (std::find(seen.begin(), seen.end(), m) != seen.end()) continue;
      seen.push_back(m);
      if (!out.empty()) out += '+';
      out += to_string(m);
    }
    return out;
  }

  /// The equilibrium as a policy (logits re-centred).
  [[nodiscard]] tabular_softmax_policy policy() const {
    tabular_softmax_policy p(logits);
    p.recenter();
    return p;
  }
};

/// Options of `solve_regularised`.
struct regularised_equilibrium_options {
  /// Stop when the duality gap is at most this (per context).
  double target_gap = 1e-12;
  /// Newton iterations per context before `convergence_error`.
  index_t max_newton_iterations = 200;
  /// Largest `n` solved by dense LU; larger games use matrix-free GMRES.
  index_t dense_limit = 1024;
  /// GMRES restart length and maximum total Krylov steps per Newton step.
  index_t gmres_restart = 60;
  index_t max_gmres_iterations = 2000;
};

namespace detail {

/// Workspace of the per-context Newton solver.
struct newton_context {
  const matrix_d& p;
  vector_d log_mu;
  double tau;

  /// Evaluates `pi = softmax(z)`, `log pi`, `g = P pi`, `F = z - log mu - g / tau`.
  void evaluate(const vector_d& z, vector_d& pi, vector_d& log_pi, vector_d& g, vector_d& f) const {
    log_softmax(z, log_pi);
    pi = log_pi.array().exp().matrix();
    g.noalias() = p * pi;
    f = z - log_mu - g / tau;
  }

  /// `J v = v - (P (pi ∘ v) - g (pi^T v)) / tau` (needs `pi`, `g` of the current point).
  void apply_jacobian(const vector_d& pi, const vector_d& g, const vector_d& v, vector_d& tmp,
                      vector_d& out) const {
    tmp = pi.cwiseProduct(v);
    out.noalias() = p * tmp;
    out = v - (out - g * pi.dot(v)) / tau;
  }
};

/// Restarted GMRES for `J x = b` (x starts at 0), relative tolerance `rtol`; returns Krylov steps.
inline index_t gmres_solve(const newton_context& ctx, const vector_d& pi, const vector_d& g,
                           const vector_d& b, double rtol, index_t restart, index_t max_iterations,
                           vector_d& x) {
  const index_t n = b.size();
  x.setZero(n);
  const double b_norm = b.norm();
  if (b_norm == 0.0) return 0;
  const index_t m = std::min(restart, n);
  matrix_d v(n, m + 1);
  matrix_d h = matrix_d::Zero(m + 1, m);
  vector_d cs(m), sn(m), s(m + 1), w(n), tmp(n), r(n);
  index_t total = 0;
  while (total < max_iterations) {
    ctx.apply_jacobian(pi, g, x, tmp, r);
    r = b - r;
    const double beta = r.norm();
    if (beta <= rtol * b_norm) break;
    v.col(0) = r / beta;
    s.setZero();
    s[0] = beta;
    h.setZero();
    index_t k = 0;
    for (; k < m && total < max_iterations; ++k, ++total) {
      ctx.apply_jacobian(pi, g, v.col(k), tmp, w);
      for (index_t i = 0; i <= k; ++i) {  // modified Gram-Schmidt
        h(i, k) = w.dot(v.col(i));
        w -= h(i, k) * v.col(i);
      }
      h(k + 1, k) = w.norm();
      if (h(k + 1, k) > 0.0) v.col(k + 1) = w / h(k + 1, k);
      for (index_t i = 0; i < k; ++i) {  // apply previous Givens rotations
        const double t = cs[i] * h(i, k) + sn[i] * h(i + 1, k);
        h(i + 1, k) = -sn[i] * h(i, k) + cs[i] * h(i + 1, k);
        h(i, k) = t;
      }
      const double d = std::hypot(h(k, k), h(k + 1, k));
      cs[k] = h(k, k) / d;
      sn[k] = h(k + 1, k) / d;
      h(k, k) = d;
      h(k + 1, k) = 0.0;
      s[k + 1] = -sn[k] * s[k];
      s[k] = cs[k] * s[k];
      if (std::abs(s[k + 1]) <= rtol * b_norm) {
        ++k;
        ++total;
        break;
      }
    }
    // x += V_k y, with y solving the upper-triangular H_k y = s_k.
    const vector_d y = h.topLeftCorner(k, k).triangularView<Eigen::Upper>().solve(s.head(k));
    x.noalias() += v.leftCols(k) * y;
    if (std::abs(s[k]) <= rtol * b_norm) break;
  }
  return total;
}

/// Newton's method for one context from the logits `z` (updated in place); returns the gap.
/// Throws `convergence_error` when `options.target_gap` is not reached and `must_converge`.
inline double solve_regularised_context(const matrix_d& p, const vector_d& log_mu, double tau,
                                        const regularised_equilibrium_options& options,
                                        index_t context, vector_d& z, index_t& iterations,
                                        bool must_converge = true) {
  const index_t n = p.rows();
  newton_context ctx{p, log_mu, tau};
  vector_d pi(n), log_pi(n), g(n), f(n), d(n), z_try(n), pi_try(n), log_pi_try(n), g_try(n),
      f_try(n);
  ctx.evaluate(z, pi, log_pi, g, f);
  double gap = duality_gap_from_payoff(g, log_mu, tau, log_pi);
  double best_gap = gap;
  const bool dense = n <= options.dense_limit;
  matrix_d jacobian;
  // Once the gap target is met (the gap resolves KL only down to ~1e-16 / tau), Newton continues
  // while it still halves ||F||_inf (at most 8 polishing steps), so the fixed-point residual
  // reaches rounding level; a polishing step whose gap exceeds the target is rejected.
  int polishing = 0;
  double last_residual = std::numeric_limits<double>::infinity();
  for (index_t it = 0; it < options.max_newton_iterations; ++it) {
    if (gap <= options.target_gap) {
      if (!must_converge) return gap;  // a continuation stage: no polishing
      const double residual = f.cwiseAbs().maxCoeff();
      if (polishing >= 8 || !(residual < 0.5 * last_residual) || residual == 0.0) return gap;
      last_residual = residual;
      ++polishing;
    }
    const bool polished = polishing > 0;
    ++iterations;
    const double f2 = f.squaredNorm();
    if (dense) {
      // J = I - (P diag(pi) - g pi^T) / tau.
      jacobian = -(p.array().rowwise() * pi.transpose().array()).matrix() / tau;
      jacobian.noalias() += (g / tau) * pi.transpose();
      jacobian.diagonal().array() += 1.0;
      d = jacobian.partialPivLu().solve(-f);
    } else {
      const double rtol = std::clamp(std::sqrt(f2), 1e-14, 1e-1);
      gmres_solve(ctx, pi, g, -f, rtol, options.gmres_restart, options.max_gmres_iterations, d);
    }
    // Armijo backtracking on ||F||^2 along the Newton direction.
    double alpha = 1.0;
    bool accepted = false;
    for (int k = 0; k < 60; ++k, alpha *= 0.5) {
      z_try = z + alpha * d;
      ctx.evaluate(z_try, pi_try, log_pi_try, g_try, f_try);
      if (f_try.allFinite() && f_try.squaredNorm() <= (1.0 - 1e-4 * alpha) * f2) {
        accepted = true;
        break;
      }
    }
    if (!accepted) break;  // no decrease possible at this precision
    if (polished) {
      const double polished_gap = duality_gap_from_payoff(g_try, log_mu, tau, log_pi_try);
      if (!(polished_gap <= options.target_gap)) return gap;
    }
    z.swap(z_try);
    pi.swap(pi_try);
    log_pi.swap(log_pi_try);
    g.swap(g_try);
    f.swap(f_try);
    gap = duality_gap_from_payoff(g, log_mu, tau, log_pi);
    best_gap = std::min(best_gap, gap);
  }
  PREFOPT_CHECK(!must_converge || gap <= options.target_gap, convergence_error,
                "solve_regularised: context ", context, ": duality gap ", gap, " (best ", best_gap,
                ") after ", iterations,
                " Newton steps, expected <= target_gap = ", options.target_gap, " (tau = ", tau,
                ", n = ", n, ")");
  return gap;
}

}  // namespace detail

/// The regularised equilibrium `pi*_tau` of every context of `game` (`game.tau() > 0`), to
/// duality gap `<= options.target_gap` per context; throws `convergence_error` otherwise. Gaps
/// and the KL bound are reported as `max(0, .)` (the raw per-context gaps in `raw_gaps`).
[[nodiscard]] inline equilibrium solve_regularised(
    const preference_game& game, const regularised_equilibrium_options& options = {}) {
  const double tau = game.tau();
  PREFOPT_CHECK(tau > 0.0, invalid_argument, "solve_regularised: game.tau() = ", tau,
                ", expected tau > 0 (use solve_unregularised for tau = 0)");
  PREFOPT_CHECK(options.target_gap > 0.0, invalid_argument,
                "solve_regularised: options.target_gap = ", options.target_gap, ", expected > 0");
  const index_t n = game.num_actions();
  equilibrium eq;
  eq.probabilities.resize(game.num_contexts(), n);
  eq.logits.resize(game.num_contexts(), n);
  eq.raw_gaps.resize(game.num_contexts());
  eq.methods.assign(
      static_cast<std::size_t>(game.num_contexts()),
      n <= options.dense_limit ? equilibrium_method::newton : equilibrium_method::newton_gmres);
  vector_d z(n), pi(n);
  for (index_t x = 0; x < game.num_contexts(); ++x) {
    const vector_d log_mu = game.log_reference().row(x).transpose();
    // Continuation in tau for small tau: solve loosely (gap 1e-4) at tau * 8^k (k = K..1, the
    // first >= 0.1), warm-starting each stage at z = log mu + P pi / tau_stage; then solve tau to
    // the target.
    z = log_mu;
    int stages = 0;
    while (tau * std::pow(8.0, stages) < 0.1) ++stages;
    regularised_equilibrium_options loose = options;
    loose.target_gap = std::max(options.target_gap, 1e-4);
    for (int k = stages; k >= 0; --k) {
      const double stage_tau = tau * std::pow(8.0, k);
      if (k < stages) {
        softmax(z, pi);
        z = log_mu + game.preference(x) * pi / stage_tau;
      }
      eq.raw_gaps[x] = detail::solve_regularised_context(
          game.preference(x), log_mu, stage_tau, k == 0 ? options : loose, x, z, eq.iterations,
          /*must_converge=*/k == 0);
    }
    softmax(z, pi);
    eq.logits.row(x) = z.transpose();
    eq.probabilities.row(x) = pi.transpose();
  }
  eq.gaps = eq.raw_gaps.cwiseMax(0.0);
  eq.gap = game.context_weights().dot(eq.gaps);
  eq.kl_bound = eq.gap / (2.0 * tau);
  return eq;
}

/// How `solve_unregularised` solves a context without a Condorcet winner or 3-action closed form.
enum class unregularised_method {
  automatic,       ///< interior point up to `interior_point_limit` actions, optimistic MWU above
  interior_point,  ///< always the linear program (`solve_symmetric_game_lp`)
  optimistic_mwu,  ///< always averaged optimistic MWU
};

/// Options of `solve_unregularised`.
struct unregularised_equilibrium_options {
  /// Required `tau = 0` duality gap per context.
  double target_gap = 1e-10;
  /// Method for the contexts that need an iterative solver.
  unregularised_method method = unregularised_method::automatic;
  /// `automatic`: largest `n` solved as a linear program (measured: n = 2000 in 3-8 s, 18 LU
  /// factorisations of 2000 x 2000; the cost grows as `n^3`).
  index_t interior_point_limit = 4096;
  /// Interior-point iterations per context before `convergence_error`.
  index_t max_interior_point_iterations = 100;
  /// Optimistic-MWU iterations per context before `convergence_error`.
  index_t max_iterations = 2'000'000;
  /// Step size of optimistic MWU (`<= 1/2`).
  double eta = 0.5;
  /// The optimistic-MWU gap is evaluated every `check_every` iterations.
  index_t check_every = 50;
};

/// A `tau = 0` equilibrium of every context of `game` (the game's `tau` is ignored), with
/// certified per-context gaps `<= options.target_gap` (exactly 0 for Condorcet winners, about
/// 1e-15 for the 3-action closed form and the interior-point method); throws `convergence_error`
/// otherwise. The method used per context is in `methods`; gaps are `max(0, .)` (raw values in
/// `raw_gaps`). When the equilibrium is not unique, one point of the equilibrium face.
[[nodiscard]] inline equilibrium solve_unregularised(
    const preference_game& game, const unregularised_equilibrium_options& options = {}) {
  PREFOPT_CHECK(options.target_gap > 0.0, invalid_argument,
                "solve_unregularised: options.target_gap = ", options.target_gap, ", expected > 0");
  PREFOPT_CHECK(options.eta > 0.0 && options.eta <= 0.5, invalid_argument,
                "solve_unregularised: options.eta = ", options.eta, ", expected 0 < eta <= 1/2");
  PREFOPT_CHECK(options.check_every > 0, invalid_argument,
                "solve_unregularised: options.check_every = ", options.check_every,
                ", expected > 0");
  const index_t n = game.num_actions();
  equilibrium eq;
  eq.probabilities.resize(game.num_contexts(), n);
  eq.raw_gaps.resize(game.num_contexts());
  eq.methods.resize(static_cast<std::size_t>(game.num_contexts()));
  eq.kl_bound = std::numeric_limits<double>::quiet_NaN();
  vector_d pi(n), g(n), zero = vector_d::Zero(n);
  auto gap_of = [&](const matrix_d& p, const vector_d& q) {
    g.noalias() = p * q;
    return 2.0 * g.maxCoeff() - 1.0;
  };
  const bool use_lp =
      options.method == unregularised_method::interior_point ||
      (options.method == unregularised_method::automatic && n <= options.interior_point_limit);
  for (index_t x = 0; x < game.num_contexts(); ++x) {
    const matrix_d& p = game.preference(x);
    auto& method = eq.methods[static_cast<std::size_t>(x)];
    bool solved = false;
    // 1. Condorcet winner: a pure equilibrium.
    for (index_t y = 0; y < n && !solved; ++y) {
      if (p.row(y).minCoeff() >= 0.5) {
        pi.setZero();
        pi[y] = 1.0;
        solved = true;
        method = equilibrium_method::condorcet_winner;
      }
    }
    // 2. Three actions with a strict cycle: pi ∝ (b, c, a).
    if (!solved && n == 3) {
      const double a = p(0, 1) - 0.5, b = p(1, 2) - 0.5, c = p(2, 0) - 0.5;
      if ((a > 0 && b > 0 && c > 0) || (a < 0 && b < 0 && c < 0)) {
        pi << b, c, a;
        pi /= pi.sum();
        solved = true;
        method = equilibrium_method::three_action_closed_form;
      }
    }
    double gap = solved ? gap_of(p, pi) : 0.0;
    // 3. The linear program.
    if (!solved && use_lp) {
      method = equilibrium_method::interior_point;
      symmetric_game_lp_options lp;
      lp.target_gap = options.target_gap;
      lp.max_iterations = options.max_interior_point_iterations;
      const auto sol = solve_symmetric_game_lp(p, lp);
      eq.iterations += sol.iterations;
      PREFOPT_CHECK(sol.converged, convergence_error, "solve_unregularised: context ", x,
                    ": tau = 0 duality gap ", sol.gap, " after ", sol.iterations,
                    " interior-point iterations (", sol.crossover_attempts,
                    " crossover attempts), expected <= target_gap = ", options.target_gap,
                    " (n = ", n, ")");
      pi = sol.probabilities;
      gap = sol.raw_gap;
      solved = true;
    }
    // 4. Optimistic MWU, average iterate (or last iterate when better).
    if (!solved) {
      method = equilibrium_method::optimistic_mwu;
      vector_d z_aux = vector_d::Zero(n), z = vector_d::Zero(n), played(n), sum = zero, r(n);
      double best = std::numeric_limits<double>::infinity();
      for (index_t t = 1; t <= options.max_iterations; ++t) {
        softmax(z, played);
        r.noalias() = p * played;
        sum += played;
        z_aux += options.eta * r;
        z = z_aux + options.eta * r;
        z.array() -= z.maxCoeff();
        z_aux.array() -= z_aux.maxCoeff();
        ++eq.iterations;
        if (t % options.check_every == 0) {
          const vector_d avg = sum / static_cast<double>(t);
          const double avg_gap = gap_of(p, avg);
          const double last_gap = 2.0 * r.maxCoeff() - 1.0;
          if (avg_gap < best) {
            best = avg_gap;
            pi = avg;
          }
          if (last_gap < best) {
            best = last_gap;
            pi = played;
          }
          if (best <= options.target_gap) break;
        }
      }
      gap = best;
      PREFOPT_CHECK(gap <= options.target_gap, convergence_error, "solve_unregularised: context ",
                    x, ": tau = 0 duality gap ", gap, " after ", options.max_iterations,
                    " optimistic MWU iterations, expected <= target_gap = ", options.target_gap);
    }
    eq.raw_gaps[x] = gap;
    eq.probabilities.row(x) = pi.transpose();
  }
  eq.logits = eq.probabilities.array().max(std::numeric_limits<double>::min()).log().matrix();
  eq.gaps = eq.raw_gaps.cwiseMax(0.0);
  eq.gap = game.context_weights().dot(eq.gaps);
  return eq;
}

}  // namespace prefopt
