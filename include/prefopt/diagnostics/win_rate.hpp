#pragma once
/// \file
/// Win rates in a preference game (ALGORITHMS.md §4):
/// `P(pi > pi') = sum_x rho(x) pi(.|x)^T P[x] pi'(.|x)`, with `P(pi > pi') + P(pi' > pi) = 1` and
/// `P(pi > pi) = 1/2`; the regularised preference
/// `P_tau(pi > pi') = P(pi > pi') - tau KL_rho(pi, mu) + tau KL_rho(pi', mu)`.
/// Arguments are `TabularPolicy` objects or `[contexts, n]` probability tables.

#include <Eigen/Core>

#include <limits>

#include "prefopt/core/types.hpp"
#include "prefopt/diagnostics/divergence.hpp"
#include "prefopt/diagnostics/duality_gap.hpp"
#include "prefopt/games/preference_game.hpp"

namespace prefopt {

/// Per-context `P(pi > pi' | x) = pi(.|x)^T P[x] pi'(.|x)`.
template <class A, class B>
[[nodiscard]] vector_d win_rates(const preference_game& game, const A& pi, const B& other) {
  detail::check_policy_shape("win_rates (pi)", game, pi);
  detail::check_policy_shape("win_rates (other)", game, other);
  const index_t n = game.num_actions();
  vector_d p(n), lp(n), q(n), lq(n), out(game.num_contexts());
  for (index_t x = 0; x < game.num_contexts(); ++x) {
    detail::policy_row(pi, x, p, lp);
    detail::policy_row(other, x, q, lq);
    out[x] = p.dot(game.preference(x) * q);
  }
  return out;
}

/// `P(pi > pi') = sum_x rho(x) pi(.|x)^T P[x] pi'(.|x)`.
template <class A, class B>
[[nodiscard]] double win_rate(const preference_game& game, const A& pi, const B& other) {
  return game.context_weights().dot(win_rates(game, pi, other));
}

/// `P_tau(pi > pi') = P(pi > pi') - tau KL_rho(pi, mu) + tau KL_rho(pi', mu)` (the game's `tau`
/// by default).
template <class A, class B>
[[nodiscard]] double regularised_win_rate(const preference_game& game, const A& pi, const B& other,
                                          double tau = std::numeric_limits<double>::quiet_NaN()) {
  if (std::isnan(tau)) tau = game.tau();
  return win_rate(game, pi, other) - tau * kl_to_reference(game, pi) +
         tau * kl_to_reference(game, other);
}

}  // namespace prefopt
