#pragma once
/// \file
/// ONPO: optimistic online mirror descent in self-play (Improving LLM General Preference Alignment
/// via Optimistic Online Mirror Descent, Zhang et al., arXiv 2502.16852; ALGORITHMS.md §8),
/// tabular. Two sequences per context: the played `pi_t = softmax(z_t)` and the auxiliary
/// `pi'_t = softmax(z'_t)`, `pi_1 = pi'_1` (predictor `m_1 = 0`). With `r_t = P pi_t`:
///
///     z'_{t+1} = z'_t + eta r_t,      z_{t+1} = z'_{t+1} + eta r_t     (= z'_t + 2 eta r_t).
///
/// Theorem 2: `eta = min{1/2, sqrt(D)}` gives `DualGap(pi_bar) <= 4 sqrt(D) / T` for the uniform
/// average of `pi_1..pi_T` (constant uncertain, see ALGORITHMS.md §0.5); Theorem 3: unique Nash and
/// `eta <= 1/8` give linear last-iterate convergence. Tabular default `eta = 1/2`, uniform start.
///
/// `regularised_onpo` is prefopt's extension, NOT in the ONPO paper: the same optimistic scheme on
/// the KL-regularised game, `z'_{t+1} = (1 - eta tau) z'_t + eta tau log mu + eta r_t`,
/// `z_{t+1} = (1 - eta tau) z'_{t+1} + eta tau log mu + eta r_t` (requires `eta tau <= 1`); it
/// converges to `pi*_tau`. Payoffs come from `exact_payoff` or `sampled_payoff`. Problem: any
/// `TabularPreferenceProblem` (a `preference_game`, or a `tabular_preference_problem` over the
/// user's `TabularPreferenceModel`). Only constant step sizes are supported.

#include <Eigen/Core>

#include <utility>

#include "prefopt/core/concepts.hpp"
#include "prefopt/core/math.hpp"
#include "prefopt/games/preference_game.hpp"
#include "prefopt/games/tabular_preference_problem.hpp"
#include "prefopt/solvers/common/payoff.hpp"
#include "prefopt/solvers/common/schedules.hpp"
#include "prefopt/solvers/common/tabular_state.hpp"

namespace prefopt {

template <bool Regularised, class Payoff = exact_payoff>
class tabular_optimistic_mirror_descent {
 public:
  using state = tabular_game_state;
  using step_stats = tabular_step_stats;

  static constexpr const char* name = Regularised ? "regularised_onpo" : "onpo";

  explicit tabular_optimistic_mirror_descent(constant_step eta = constant_step(0.5),
                                             Payoff payoff = {},
                                             initial_policy initial = initial_policy::uniform())
      : eta_(eta), payoff_(std::move(payoff)), initial_(std::move(initial)) {}

  [[nodiscard]] double eta() const noexcept { return eta_.value; }

  template <TabularPreferenceProblem Game>
  [[nodiscard]] state init(const Game& game) const {
    std::uint64_t seed = 0;
    if constexpr (Payoff::is_sampled) seed = payoff_.seed;
    state s(initial_.make(game.log_reference()), /*auxiliary=*/true, seed);
    payoff_.resize(s.workspace(), game.num_actions());
    return s;
  }

  template <TabularPreferenceProblem Game>
  step_stats step(const Game& game, state& s) const {
    const index_t t = s.iteration();
    const double tau = Regularised ? game.tau() : 0.0;
    const double eta = eta_.value;
    detail::check_step(name, eta, tau, t, Regularised);
    const double lambda = eta * tau;
    auto logits = s.mutable_logits();
    row_matrix_d& aux = s.mutable_auxiliary();
    vector_d& played = s.played();
    vector_d& g = s.payoff();
    for (index_t x = 0; x < game.num_contexts(); ++x) {
      auto z = logits.row(x).transpose();
      auto za = aux.row(x).transpose();
      softmax(z, played);
      s.probability_sum().row(x) += played.transpose();
      payoff_(game.preference(x), played, g, s.generator(), s.workspace());
      if constexpr (Regularised) {
        const auto log_mu = game.log_reference().row(x).transpose();
        za = (1.0 - lambda) * za + lambda * log_mu + eta * g;
        z = (1.0 - lambda) * za + lambda * log_mu + eta * g;
      } else {
        za += eta * g;
        z = za + eta * g;
      }
      za.array() -= za.maxCoeff();
      z.array() -= z.maxCoeff();
    }
    s.advance();
    return {t, eta};
  }

 private:
  constant_step eta_;
  Payoff payoff_;
  initial_policy initial_;
};

/// ONPO (unregularised game; the game's `tau` is ignored).
template <class Payoff = exact_payoff>
using onpo = tabular_optimistic_mirror_descent<false, Payoff>;

/// prefopt's extension: optimistic OMD on the KL-regularised game (not in the ONPO paper).
template <class Payoff = exact_payoff>
using regularised_onpo = tabular_optimistic_mirror_descent<true, Payoff>;

static_assert(Solver<onpo<>, preference_game>);
static_assert(Solver<regularised_onpo<>, preference_game>);
static_assert(Solver<onpo<>, tabular_preference_problem<tabular_preference_model>>);

}  // namespace prefopt
