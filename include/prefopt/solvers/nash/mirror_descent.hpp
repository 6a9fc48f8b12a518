#pragma once
/// \file
/// Tabular Nash-MD, OMD/INPO and self-play multiplicative weights: one mirror-descent family,
/// variants chosen at compile time (template parameters with readable aliases).
///
/// Per context, logits `z_t` of the current iterate `pi_t = softmax(z_t)`, step `eta_t`, KL weight
/// `tau` (the game's, or 0 for the unregularised variant), reference `mu`:
///
/// - Nash-MD (`nash_md`; Nash Learning from Human Feedback, Munos et al., arXiv 2312.00886, §5 of
///   ALGORITHMS.md): geometric-mixture opponent and mirror step centred at it,
///       z_mix = (1 - eta_t tau) z_t + eta_t tau log mu,   pi_t^mu = softmax(z_mix),
///       z_{t+1} = z_mix + eta_t P pi_t^mu.
///   Theorem 1: with `theory_step` (`eta_t = 2 / (tau (t + 2))`), `KL(pi*_tau, pi_T) <= 8 /
///   (tau^2 (T + 1))`; with a constant step, `<= (1 - eta tau)^T KL_0 + 2 eta / tau`.
/// - OMD / INPO (`omd`, `inpo`; Iterative Nash Policy Optimization, arXiv 2407.00617; Nash-MD
///   eqs. 7-8): same centre, current-policy opponent,
///       z_{t+1} = (1 - eta_t tau) z_t + eta_t tau log mu + eta_t P pi_t.
/// - Self-play MWU (`self_play_mwu`; ONPO's baseline, arXiv 2502.16852 Thm 1): the unregularised
///   OMD, `z_{t+1} = z_t + eta P pi_t` (the game's `tau` is ignored); with
///   `eta = sqrt(D / T)` the average iterate has `DualGap <= 4 sqrt(D / T)`; the last iterate
///   cycles on cyclic games.
///
/// Requirements, checked every step: `eta_t > 0` and, for the regularised variants,
/// `eta_t tau <= 1` (else `invalid_argument`). Logits are re-centred after every update (gauge).
/// Payoffs `P pi'` come from the `Payoff` parameter: `exact_payoff` (matrix product) or
/// `sampled_payoff` (Bernoulli-labelled pairs, seeded). The first iterate is `mu` for Nash-MD and
/// OMD (`initial_policy::reference()`) and uniform for MWU, or any `initial_policy`.
/// Problem: any `TabularPreferenceProblem` (a `preference_game`, or a
/// `tabular_preference_problem` over the user's `TabularPreferenceModel`); state:
/// `tabular_game_state`. Not supported: per-context step sizes (all contexts share `eta_t`).

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

/// Which opponent the mirror step plays against.
enum class nash_opponent {
  /// `pi_t^mu ∝ pi_t^{1 - eta tau} mu^{eta tau}` (Nash-MD).
  geometric_mixture,
  /// `pi_t` itself (OMD / INPO / MWU).
  current
};

template <nash_opponent Opponent, bool Regularised, class Schedule, class Payoff = exact_payoff>
class tabular_mirror_descent {
 public:
  using state = tabular_game_state;
  using step_stats = tabular_step_stats;

  static constexpr const char* name = Opponent == nash_opponent::geometric_mixture
                                          ? "nash_md"
                                          : (Regularised ? "omd" : "self_play_mwu");

  explicit tabular_mirror_descent(Schedule schedule = {}, Payoff payoff = {},
                                  initial_policy initial = Regularised ? initial_policy::reference()
                                                                       : initial_policy::uniform())
      : schedule_(std::move(schedule)), payoff_(std::move(payoff)), initial_(std::move(initial)) {}

  [[nodiscard]] const Schedule& schedule() const noexcept { return schedule_; }
  [[nodiscard]] const Payoff& payoff() const noexcept { return payoff_; }

  /// The first iterate (see `initial_policy`) and a sized workspace.
  template <TabularPreferenceProblem Game>
  [[nodiscard]] state init(const Game& game) const {
    std::uint64_t seed = 0;
    if constexpr (Payoff::is_sampled) seed = payoff_.seed;
    state s(initial_.make(game.log_reference()), /*auxiliary=*/false, seed);
    payoff_.resize(s.workspace(), game.num_actions());
    return s;
  }

  /// One step on every context (see the file comment for the update).
  template <TabularPreferenceProblem Game>
  step_stats step(const Game& game, state& s) const {
    const index_t t = s.iteration();
    const double tau = Regularised ? game.tau() : 0.0;
    const double eta = schedule_.eta(t, tau);
    detail::check_step(name, eta, tau, t, Regularised);
    const double lambda = eta * tau;  // weight of log mu
    auto logits = s.mutable_logits();
    vector_d& played = s.played();
    vector_d& opponent = s.opponent();
    vector_d& g = s.payoff();
    vector_d& mixed = s.mixed();
    for (index_t x = 0; x < game.num_contexts(); ++x) {
      auto z = logits.row(x).transpose();
      const auto log_mu = game.log_reference().row(x).transpose();
      softmax(z, played);
      s.probability_sum().row(x) += played.transpose();
      if constexpr (Opponent == nash_opponent::geometric_mixture) {
        mixed = (1.0 - lambda) * z + lambda * log_mu;
        softmax(mixed, opponent);
        payoff_(game.preference(x), opponent, g, s.generator(), s.workspace());
        z = mixed + eta * g;
      } else {
        payoff_(game.preference(x), played, g, s.generator(), s.workspace());
        if constexpr (Regularised) {
          z = (1.0 - lambda) * z + lambda * log_mu + eta * g;
        } else {
          z += eta * g;
        }
      }
      z.array() -= z.maxCoeff();
    }
    s.advance();
    return {t, eta};
  }

 private:
  Schedule schedule_;
  Payoff payoff_;
  initial_policy initial_;
};

/// Nash-MD (geometric-mixture opponent), default schedule `2 / (tau (t + 2))`.
template <class Schedule = theory_step, class Payoff = exact_payoff>
using nash_md = tabular_mirror_descent<nash_opponent::geometric_mixture, true, Schedule, Payoff>;

/// OMD / INPO: current-policy opponent, regularised (`eta tau <= 1`).
template <class Schedule = theory_step, class Payoff = exact_payoff>
using omd = tabular_mirror_descent<nash_opponent::current, true, Schedule, Payoff>;
template <class Schedule = theory_step, class Payoff = exact_payoff>
using inpo = omd<Schedule, Payoff>;

/// Self-play multiplicative weights on the unregularised game (`tau` ignored).
template <class Schedule = constant_step, class Payoff = exact_payoff>
using self_play_mwu = tabular_mirror_descent<nash_opponent::current, false, Schedule, Payoff>;

static_assert(Solver<nash_md<>, preference_game>);
static_assert(Solver<omd<>, preference_game>);
static_assert(Solver<self_play_mwu<>, preference_game>);
static_assert(Solver<nash_md<>, tabular_preference_problem<tabular_preference_model>>);
static_assert(Solver<omd<>, tabular_preference_problem<tabular_preference_model>>);

}  // namespace prefopt
