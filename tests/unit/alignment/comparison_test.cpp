// Every solver on the same game (issue "every solver on the same game"): the RLHF and DPO
// solutions of an intransitive game keep a duality gap bounded away from zero, while Nash-MD and
// ONPO drive theirs toward zero; on a Bradley-Terry game every solver finds the Condorcet winner
// as tau -> 0.
#include <catch2/catch.hpp>

#include "prefopt/diagnostics/duality_gap.hpp"
#include "prefopt/games/catalog.hpp"
#include "prefopt/solvers/common/run.hpp"
#include "prefopt/solvers/dpo_trainer.hpp"
#include "prefopt/solvers/nash/mirror_descent.hpp"
#include "prefopt/solvers/nash/onpo.hpp"
#include "prefopt/solvers/rlhf.hpp"

using prefopt::preference_game;
using prefopt::row_matrix_d;
using prefopt::vector_d;

namespace {
template <class S>
auto final_state(const S& solver, const preference_game& game, prefopt::index_t steps) {
  auto result = prefopt::run(solver, game, prefopt::run_options{steps});
  REQUIRE(result.status == prefopt::run_status::completed);
  return std::move(result.state);
}

/// Probabilities of a solver's current iterate, `[contexts, n]`.
template <class State>
row_matrix_d probabilities(const State& state) {
  return prefopt::probability_table(state.policy());
}

prefopt::rlhf_ppo_config rlhf_config(double tau) {
  prefopt::rlhf_ppo_config c;
  c.tau = tau;
  c.reward.pairs = 4000;
  c.reward.iterations = 400;
  c.seed = 4;
  return c;
}

prefopt::dpo_trainer_config dpo_config(double beta) {
  prefopt::dpo_trainer_config c;
  c.source = prefopt::pair_source::offline;
  c.batch_size = 64;
  c.loss.beta_dpo = beta;
  c.seed = 4;
  return c;
}
}  // namespace

TEST_CASE("on an intransitive game RLHF and DPO keep a duality gap while Nash-MD and ONPO close it",
          "[alignment][comparison]") {
  // Biased rock-paper-scissors (equilibrium (b, c, a)/(a+b+c) = (0.2, 0.1, 0.4)/0.7, not uniform)
  // with a skewed reference: the equilibria are mixed, and a Bradley-Terry fit of the cyclic
  // preferences says nothing useful about them.
  vector_d mu(3);
  mu << 0.7, 0.2, 0.1;
  const double tau = 0.05;
  const auto game = prefopt::biased_rock_paper_scissors_game(0.9, 0.7, 0.6, mu, tau);

  const double nash_md_gap =
      prefopt::duality_gap(game, final_state(prefopt::nash_md<>{}, game, 3000).policy());
  const auto onpo_state = final_state(prefopt::onpo<>{}, game, 3000);
  const double onpo_gap =
      prefopt::unregularised_duality_gap(game, onpo_state.average_probabilities());
  const double rlhf_gap = prefopt::duality_gap(
      game, final_state(prefopt::tabular_rlhf_ppo(rlhf_config(tau)), game, 200).policy());
  const double dpo_gap = prefopt::duality_gap(
      game, final_state(prefopt::tabular_dpo(dpo_config(tau)), game, 1500).policy());

  CHECK(nash_md_gap < 1e-3);
  CHECK(onpo_gap < 1e-2);
  // Bounded away from zero: a fixed floor, and two orders of magnitude above the Nash methods.
  CHECK(rlhf_gap > 0.05);
  CHECK(dpo_gap > 0.05);
  CHECK(rlhf_gap > 100 * nash_md_gap);
  CHECK(dpo_gap > 100 * nash_md_gap);
  // The unregularised gap tells the same story for the tau = 0 game.
  CHECK(prefopt::unregularised_duality_gap(
            game, final_state(prefopt::tabular_dpo(dpo_config(tau)), game, 1500).policy()) >
        10 * onpo_gap);
}

TEST_CASE("on a Bradley-Terry game every solver finds the Condorcet winner as tau -> 0",
          "[alignment][comparison]") {
  vector_d r(4);
  r << 0.2, -0.4, 1.0, 0.5;  // Condorcet winner: response 2
  vector_d mu(4);
  mu << 0.4, 0.3, 0.1, 0.2;  // the reference does not favour it
  const double tau = 0.01;
  const auto game = prefopt::bradley_terry_game(r, mu, tau);
  auto winner_mass = [](const row_matrix_d& p) { return p(0, 2); };

  CHECK(winner_mass(probabilities(final_state(prefopt::nash_md<>{}, game, 3000))) > 0.9);
  CHECK(winner_mass(probabilities(final_state(prefopt::omd<>{}, game, 3000))) > 0.9);
  CHECK(winner_mass(final_state(prefopt::onpo<>{}, game, 3000).average_probabilities()) > 0.9);
  CHECK(winner_mass(final_state(prefopt::self_play_mwu<>(prefopt::constant_step(0.5)), game, 3000)
                        .average_probabilities()) > 0.9);
  CHECK(winner_mass(probabilities(
            final_state(prefopt::tabular_rlhf_ppo(rlhf_config(tau)), game, 200))) > 0.9);
  CHECK(winner_mass(probabilities(final_state(prefopt::tabular_dpo(dpo_config(tau)), game, 1000))) >
        0.9);
  CHECK(winner_mass(probabilities(final_state(prefopt::tabular_ipo(dpo_config(tau)), game, 1000))) >
        0.9);
  CHECK(winner_mass(
            probabilities(final_state(prefopt::tabular_simpo(dpo_config(tau)), game, 1000))) > 0.9);
}
