#pragma once
/// \file
/// KL divergences between tabular policies, per context and `rho`-weighted:
/// `KL(p, q) = sum_y p(y) log(p(y) / q(y))` (first argument is the sampling distribution).
/// - `kl_divergences(game, p, q)` / `kl_divergence(game, p, q)`: `KL(p(.|x), q(.|x))`;
/// - `kl_to_reference(game, pi)`: `KL_rho(pi, mu)`, the regulariser of the game;
/// - `KL(pi*_tau, pi_T)` (equilibrium first, as in Nash-MD's Theorem 1) is
///   `kl_divergence(game, equilibrium, pi_T)`.
/// Arguments are `TabularPolicy` objects or `[contexts, n]` probability tables; log-probabilities
/// come from the policy (exact for underflowed probabilities).

#include <Eigen/Core>

#include "prefopt/core/types.hpp"
#include "prefopt/diagnostics/duality_gap.hpp"
#include "prefopt/games/preference_game.hpp"

namespace prefopt {

/// Per-context `KL(p(.|x), q(.|x))`.
template <class A, class B>
[[nodiscard]] vector_d kl_divergences(const preference_game& game, const A& p, const B& q) {
  detail::check_policy_shape("kl_divergences (p)", game, p);
  detail::check_policy_shape("kl_divergences (q)", game, q);
  const index_t n = game.num_actions();
  vector_d pp(n), lp(n), pq(n), lq(n), out(game.num_contexts());
  for (index_t x = 0; x < game.num_contexts(); ++x) {
    detail::policy_row(p, x, pp, lp);
    detail::policy_row(q, x, pq, lq);
    out[x] = kl_from_log_probabilities(lp, lq);
  }
  return out;
}

/// `sum_x rho(x) KL(p(.|x), q(.|x))`.
template <class A, class B>
[[nodiscard]] double kl_divergence(const preference_game& game, const A& p, const B& q) {
  return game.context_weights().dot(kl_divergences(game, p, q));
}

/// `KL_rho(pi, mu) = sum_x rho(x) KL(pi(.|x), mu(.|x))`.
template <class A>
[[nodiscard]] double kl_to_reference(const preference_game& game, const A& pi) {
  return kl_divergence(game, pi, game.reference());
}

}  // namespace prefopt
