#include "prefopt/solvers/nash/onpo.hpp"

#include <catch2/catch.hpp>

#include "solver_helpers.hpp"

using namespace prefopt;
using test::vec;

namespace {

/// Average gap of pi_1..pi_T and gap of the last played pi_T for ONPO after T plays.
std::pair<double, double> onpo_gaps(const preference_game& game, const initial_policy& init,
                                    prefopt::index_t T, double eta = 0.5) {
  const onpo<> solver(constant_step(eta), exact_payoff{}, init);
  auto state = test::run_steps(solver, game, T - 1);  // policy() = pi_T
  const double last = unregularised_duality_gap(game, state.policy());
  (void)solver.step(game, state);
  return {unregularised_duality_gap(game, state.average_probabilities()), last};
}
}  // namespace

TEST_CASE("ONPO: z_{t+1} - z'_t = 2 eta P pi_t (up to the gauge constant)") {
  const auto game = random_intransitive_game(7, 5);
  const onpo<> solver(constant_step(0.4));
  auto state = solver.init(game);
  for (int t = 0; t < 5; ++t) (void)solver.step(game, state);
  const vector_d aux = state.auxiliary_logits().row(0).transpose();
  vector_d pi(7);
  state.policy().probabilities(0, pi);
  const vector_d r = game.preference(0) * pi;
  (void)solver.step(game, state);
  const vector_d diff = state.policy().logits().row(0).transpose() - aux - 2 * 0.4 * r;
  CHECK(diff.maxCoeff() - diff.minCoeff() <= 1e-12);
}

TEST_CASE("Uniform start on dice or RPS: every ONPO iterate stays uniform") {
  for (const auto& game : {efron_dice_game(), rock_paper_scissors_game()}) {
    const onpo<> solver;
    auto state = solver.init(game);
    for (int t = 0; t < 50; ++t) {
      CHECK(unregularised_duality_gap(game, state.policy()) < 1e-12);
      (void)solver.step(game, state);
    }
  }
}

TEST_CASE(
    "ONPO on RPS from (0.7,0.2,0.1), eta = 1/2: average 2.769e-2/3.519e-3/3.519e-4, last "
    "0.297/1.27e-5/<=1e-11") {
  const auto game = rock_paper_scissors_game();
  const auto init = initial_policy::from_probabilities(test::skewed_start);
  const double avg[] = {2.769e-2, 3.519e-3, 3.519e-4};
  int k = 0;
  const auto [a100, l100] = onpo_gaps(game, init, 100);
  const auto [a1000, l1000] = onpo_gaps(game, init, 1000);
  const auto [a10000, l10000] = onpo_gaps(game, init, 10000);
  CHECK(a100 == Approx(avg[k++]).epsilon(0.05));
  CHECK(a1000 == Approx(avg[k++]).epsilon(0.05));
  CHECK(a10000 == Approx(avg[k++]).epsilon(0.05));
  CHECK(l100 == Approx(0.297).epsilon(0.05));
  CHECK(l1000 == Approx(1.27e-5).epsilon(0.05));
  CHECK(l10000 <= 1e-11);  // last-iterate convergence: the equilibrium is unique
}

TEST_CASE(
    "ONPO on dice from (0.7,0.2,0.1): average gap 6.067e-2/3.347e-3/4.017e-4 <= 4 max(D, sqrt "
    "D)/T") {
  const auto game = efron_dice_game();
  const auto init = initial_policy::from_probabilities(test::skewed_start);
  const double d = std::log(10.0);
  const double expected[] = {6.067e-2, 3.347e-3, 4.017e-4};
  int k = 0;
  for (prefopt::index_t T : {100, 1000, 10000}) {
    const double avg = onpo_gaps(game, init, T).first;
    CHECK(avg == Approx(expected[k++]).epsilon(0.05));
    CHECK(avg <= 4 * std::max(d, std::sqrt(d)) / static_cast<double>(T));
  }
}

TEST_CASE(
    "ONPO average gap decreases like 1/T on random 10-action games, gap T <= 4 max(D, sqrt D)") {
  const double d = std::log(10.0);
  for (std::uint64_t seed : {2026u, 7u, 11u}) {
    const auto game = random_intransitive_game(10, seed);
    std::vector<double> ts, gaps;
    for (prefopt::index_t T : {100, 300, 1000, 3000, 10000}) {
      const double avg = onpo_gaps(game, initial_policy::uniform(), T).first;
      ts.push_back(static_cast<double>(T));
      gaps.push_back(avg);
      INFO("seed " << seed << " T = " << T << " gap T = " << avg * static_cast<double>(T));
      CHECK(avg * static_cast<double>(T) <= 4 * std::max(d, std::sqrt(d)));
    }
    const double slope = test::log_log_slope(ts, gaps);
    INFO("seed " << seed << " slope = " << slope);
    CHECK(slope <= -0.85);
  }
}

TEST_CASE("Regularised ONPO (prefopt extension) converges to pi*_tau") {
  const auto game = rock_paper_scissors_game(vec({0.7, 0.2, 0.1}), 0.05);
  const auto eq = solve_regularised(game);
  const regularised_onpo<> solver(constant_step(0.5), exact_payoff{}, initial_policy::reference());
  const auto state = test::run_steps(solver, game, 3000);
  CHECK(kl_divergence(game, eq.probabilities, state.policy()) <= 1e-10);
  CHECK_THROWS_AS(test::run_steps(regularised_onpo<>(constant_step(30.0)), game, 1),
                  invalid_argument);
}
