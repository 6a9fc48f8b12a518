#pragma once
/// \file
/// Metrics for callbacks: a metric is any callable `double(const Problem&, const State&)`.
/// Ready-made metrics for states with `policy()` / `average_policy()` on a tabular problem (a
/// `preference_game` or a `tabular_preference_problem`, through `as_preference_game`; every
/// tabular solver's state):
/// - `gap_metric`: `DualGap_tau` of the current policy (game's `tau`, or a fixed `tau`);
/// - `average_gap_metric`: the same for the average iterate;
/// - `kl_to_metric`: `KL_rho(target, pi_t)` (equilibrium first, as in Nash-MD's Theorem 1).
/// All evaluate one `P pi` product per context (O(n^2)): use `every` on the callback for large n.

#include <limits>
#include <utility>

#include "prefopt/core/types.hpp"
#include "prefopt/diagnostics/divergence.hpp"
#include "prefopt/diagnostics/duality_gap.hpp"
#include "prefopt/games/preference_game.hpp"

namespace prefopt {

/// `DualGap_tau(state.policy())`; `tau` NaN = the game's.
struct gap_metric {
  double tau = std::numeric_limits<double>::quiet_NaN();
  static constexpr const char* name = "gap";
  template <class Problem, class State>
  double operator()(const Problem& problem, const State& state) const {
    const preference_game& game = as_preference_game(problem);
    return duality_gap(game, state.policy(), tau);
  }
};

/// `DualGap_tau(state.average_policy())`; `tau` NaN = the game's.
struct average_gap_metric {
  double tau = std::numeric_limits<double>::quiet_NaN();
  static constexpr const char* name = "average_gap";
  template <class Problem, class State>
  double operator()(const Problem& problem, const State& state) const {
    const preference_game& game = as_preference_game(problem);
    return duality_gap(game, state.average_probabilities(), tau);
  }
};

/// `KL_rho(target, state.policy())` for a `[contexts, n]` target (e.g. an equilibrium).
struct kl_to_metric {
  row_matrix_d target;
  static constexpr const char* name = "kl_from_target";
  template <class Problem, class State>
  double operator()(const Problem& problem, const State& state) const {
    const preference_game& game = as_preference_game(problem);
    return kl_divergence(game, target, state.policy());
  }
};

namespace detail {
/// A metric's name: its static `name` member, else `fallback`.
template <class M>
const char* metric_name(const char* fallback) {
  if constexpr (requires { M::name; }) {
    return M::name;
  } else {
    return fallback;
  }
}
}  // namespace detail

}  // namespace prefopt
