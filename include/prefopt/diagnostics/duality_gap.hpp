#pragma once
/// \file
/// Duality gap and exploitability of a symmetric profile `(pi, pi)` in a preference game
/// (ALGORITHMS.md §9.1). Per context, with `g = P pi` and
/// `V_tau(p, q) = p^T P q - tau KL(p, mu) + tau KL(q, mu)`:
///
///     DualGap_tau(pi) = 2 max_p V_tau(p, pi) - 1
///                     = 2 [ tau log sum_y mu(y) exp(g_y / tau) + tau KL(pi, mu) ] - 1   (tau > 0)
///     DualGap_0(pi)   = 2 max_y g_y - 1                                                  (tau = 0)
///     expl_tau(pi)    = max_p V_tau(p, pi) - 1/2 = DualGap_tau(pi) / 2.
///
/// The inner maximum is the Gibbs variational principle, attained at `p ∝ mu exp(g / tau)`. It is
/// evaluated as `max_y(tau log mu_y + g_y) + tau log sum_y exp((tau log mu_y + g_y - max)/tau)`, so
/// it stays exact for `tau` down to 1e-6 and below (no overflow, no cancellation against 1/tau).
/// `KL(pi, mu)` uses the policy's log-probabilities, so underflowed probabilities contribute 0.
/// Certificate (§4): `KL(pi, pi*_tau) <= DualGap_tau(pi) / (2 tau)`.
/// Multi-context games: `rho`-weighted average of the per-context gaps.
/// The gap is `>= 0` by definition; rounding in `P pi` and the log-sum-exp can make the computed
/// value about `-1e-16`, so every gap and exploitability reported here is `max(0, .)`. The
/// unclamped values: `duality_gap_from_payoff` and `raw_duality_gaps`.
/// Papers: Nash Learning from Human Feedback (arXiv 2312.00886); ONPO (arXiv 2502.16852) for the
/// `tau = 0` definition; EGPO (arXiv 2503.08942) `dual_gap`.

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <limits>

#include "prefopt/core/assert.hpp"
#include "prefopt/core/concepts.hpp"
#include "prefopt/core/customization.hpp"
#include "prefopt/core/types.hpp"
#include "prefopt/games/preference_game.hpp"

namespace prefopt {

/// `max_p [p^T g - tau KL(p, mu)] = tau log sum_y mu(y) exp(g_y / tau)`; `max_y g_y` when
/// `tau = 0`. `g` and `log_mu` have the same length.
template <class G, class M>
[[nodiscard]] double regularised_best_response_value(const Eigen::MatrixBase<G>& g,
                                                     const Eigen::MatrixBase<M>& log_mu,
                                                     double tau) {
  if (tau == 0.0) return g.maxCoeff();
  const double m = (tau * log_mu.array() + g.array()).maxCoeff();
  const double s = ((tau * log_mu.array() + g.array() - m) / tau).exp().sum();
  return m + tau * std::log(s);
}

/// `KL(p, q) = sum_y p(y) (log p(y) - log q(y))` from log-probabilities (terms with `p(y) = 0`
/// contribute 0).
template <class A, class B>
[[nodiscard]] double kl_from_log_probabilities(const Eigen::MatrixBase<A>& log_p,
                                               const Eigen::MatrixBase<B>& log_q) {
  double kl = 0.0;
  for (index_t i = 0; i < log_p.size(); ++i) {
    const double lp = log_p.derived().coeff(i);
    const double p = std::exp(lp);
    if (p > 0.0) kl += p * (lp - log_q.derived().coeff(i));
  }
  return kl;
}

/// Single-context gap from `g = P pi`, `log mu`, `tau` and `log pi` (all length `n`), as computed
/// (not clamped: it can be about `-1e-16` at an equilibrium).
template <class G, class M, class L>
[[nodiscard]] double duality_gap_from_payoff(const Eigen::MatrixBase<G>& g,
                                             const Eigen::MatrixBase<M>& log_mu, double tau,
                                             const Eigen::MatrixBase<L>& log_pi) {
  const double best = regularised_best_response_value(g, log_mu, tau);
  const double kl = tau == 0.0 ? 0.0 : kl_from_log_probabilities(log_pi, log_mu);
  return 2.0 * (best + tau * kl) - 1.0;
}

/// Single-context gap of the probability vector `pi` (length `n`, on the simplex) in the game
/// `(P, mu, tau)`; `P` is `n x n`, `mu` strictly positive. Zero entries of `pi` are allowed.
/// Returns `max(0, gap)`.
[[nodiscard]] inline double duality_gap(const matrix_d& p, const vector_d& mu, double tau,
                                        const vector_d& pi) {
  PREFOPT_CHECK(p.rows() == p.cols() && mu.size() == p.rows() && pi.size() == p.rows(), shape_error,
                "duality_gap: P is ", p.rows(), "x", p.cols(), ", mu has ", mu.size(),
                " entries, pi has ", pi.size(), "; expected n x n, n and n");
  PREFOPT_CHECK(tau >= 0.0, invalid_argument, "duality_gap: tau = ", tau, ", expected tau >= 0");
  const vector_d g = p * pi;
  const vector_d log_mu = mu.array().log().matrix();
  const vector_d log_pi = pi.array().log().matrix();
  return std::max(0.0, duality_gap_from_payoff(g, log_mu, tau, log_pi));
}

namespace detail {
/// The policy forms every diagnostic accepts: `row_matrix_d`, `vector_d` or a `TabularPolicy`.
/// Anything else is rejected at compile time with one sentence (an Eigen object of another type
/// is told the two Eigen forms; any other type gets `check_tabular_policy`'s sentences).
template <class Pol>
constexpr bool check_diagnostic_policy() {
  if constexpr (!std::is_same_v<Pol, row_matrix_d> && !std::is_same_v<Pol, vector_d>) {
    if constexpr (std::is_base_of_v<Eigen::EigenBase<Pol>, Pol>) {
      static_assert(std::is_same_v<Pol, row_matrix_d>,
                    "prefopt diagnostics: a policy given as an Eigen object must be a "
                    "prefopt::row_matrix_d [contexts, n] probability table (row-major double) or, "
                    "for a single-context game, a prefopt::vector_d; evaluate or convert it first");
    } else {
      static_assert(check_tabular_policy<Pol>());
    }
  }
  return true;
}

/// Row `context` of a tabular policy, of a `[contexts, n]` probability table or (single-context
/// games) of a length-`n` probability vector, as probabilities and log-probabilities.
template <class Pol>
void policy_row(const Pol& policy, index_t context, Eigen::Ref<vector_d> pi,
                Eigen::Ref<vector_d> log_pi) {
  if constexpr (std::is_same_v<Pol, row_matrix_d>) {
    pi = policy.row(context).transpose();
    log_pi = pi.array().log().matrix();
  } else if constexpr (std::is_same_v<Pol, vector_d>) {
    pi = policy;
    log_pi = pi.array().log().matrix();
  } else if constexpr (TabularPolicy<Pol>) {
    policy.probabilities(context, pi);
    prefopt::log_probabilities(policy, context, log_pi);
  }
}

template <class Pol>
void check_policy_shape(const char* function, const preference_game& game, const Pol& policy) {
  static_assert(check_diagnostic_policy<Pol>());
  index_t contexts = 0, actions = 0;
  if constexpr (std::is_same_v<Pol, row_matrix_d>) {
    contexts = policy.rows();
    actions = policy.cols();
  } else if constexpr (std::is_same_v<Pol, vector_d>) {
    PREFOPT_CHECK(game.num_contexts() == 1, shape_error, function,
                  ": policy is a single probability vector, but the game has ", game.num_contexts(),
                  " contexts; pass a [contexts, n] table");
    contexts = 1;
    actions = policy.size();
  } else if constexpr (TabularPolicy<Pol>) {
    contexts = policy.num_contexts();
    actions = policy.num_actions();
  }
  PREFOPT_CHECK(contexts == game.num_contexts() && actions == game.num_actions(), shape_error,
                function, ": policy is ", contexts, "x", actions, ", expected the game's ",
                game.num_contexts(), "x", game.num_actions(), " (contexts x responses)");
}
}  // namespace detail

/// Per-context duality gaps `DualGap_tau(pi(.|x))` at the KL weight `tau` (the game's by default),
/// as computed (not clamped; `duality_gaps` reports `max(0, .)`). `policy` is a `TabularPolicy`, a
/// `[contexts, n]` probability table, or, for a single-context game, a length-`n` `vector_d`
/// (every diagnostic of `diagnostics/` accepts the same three forms).
template <class Pol>
[[nodiscard]] vector_d raw_duality_gaps(const preference_game& game, const Pol& policy,
                                        double tau = std::numeric_limits<double>::quiet_NaN()) {
  detail::check_policy_shape("duality_gaps", game, policy);
  if (std::isnan(tau)) tau = game.tau();
  PREFOPT_CHECK(tau >= 0.0, invalid_argument, "duality_gaps: tau = ", tau, ", expected tau >= 0");
  const index_t n = game.num_actions();
  vector_d pi(n), log_pi(n), g(n), gaps(game.num_contexts());
  for (index_t x = 0; x < game.num_contexts(); ++x) {
    detail::policy_row(policy, x, pi, log_pi);
    g.noalias() = game.preference(x) * pi;
    gaps[x] = duality_gap_from_payoff(g, game.log_reference().row(x).transpose(), tau, log_pi);
  }
  return gaps;
}

/// Per-context duality gaps `max(0, DualGap_tau(pi(.|x)))` at the KL weight `tau` (the game's by
/// default). `policy` is a `TabularPolicy` or a `[contexts, n]` probability table.
template <class Pol>
[[nodiscard]] vector_d duality_gaps(const preference_game& game, const Pol& policy,
                                    double tau = std::numeric_limits<double>::quiet_NaN()) {
  return raw_duality_gaps(game, policy, tau).cwiseMax(0.0);
}

/// `rho`-weighted duality gap `sum_x rho(x) max(0, DualGap_tau(pi(.|x)))` (the game's `tau` by
/// default).
template <class Pol>
[[nodiscard]] double duality_gap(const preference_game& game, const Pol& policy,
                                 double tau = std::numeric_limits<double>::quiet_NaN()) {
  return game.context_weights().dot(duality_gaps(game, policy, tau));
}

/// The unregularised (`tau = 0`) gap `2 max_y P(y > pi) - 1`, `rho`-weighted.
template <class Pol>
[[nodiscard]] double unregularised_duality_gap(const preference_game& game, const Pol& policy) {
  return duality_gap(game, policy, 0.0);
}

/// Exploitability `max_p V_tau(p, pi) - 1/2 = DualGap_tau(pi) / 2`, `rho`-weighted.
template <class Pol>
[[nodiscard]] double exploitability(const preference_game& game, const Pol& policy,
                                    double tau = std::numeric_limits<double>::quiet_NaN()) {
  return 0.5 * duality_gap(game, policy, tau);
}

}  // namespace prefopt
