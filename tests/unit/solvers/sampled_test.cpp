#include <catch2/catch.hpp>

#include "prefopt/solvers/nash/mirror_descent.hpp"
#include "prefopt/solvers/nash/onpo.hpp"
#include "solver_helpers.hpp"

using namespace prefopt;
using test::vec;

TEST_CASE(
    "sampled_payoff is unbiased: its mean over many calls matches P pi within 4 standard errors") {
  const auto game = random_intransitive_game(6, 1);
  const vector_d pi = vec({0.3, 0.1, 0.2, 0.15, 0.05, 0.2});
  const sampled_payoff estimator{8, 5};
  payoff_workspace w;
  estimator.resize(w, 6);
  rng gen(5);
  vector_d out(6), mean = vector_d::Zero(6);
  const int calls = 4000;
  for (int k = 0; k < calls; ++k) {
    estimator(game.preference(0), pi, out, gen, w);
    CHECK(out.minCoeff() >= 0.0);
    CHECK(out.maxCoeff() <= 1.0);
    mean += out / calls;
  }
  const vector_d exact = game.preference(0) * pi;
  // Var of one estimate <= 1/(4 m): standard error of the mean <= 1/sqrt(4 m calls).
  const double se = 1.0 / std::sqrt(4.0 * 8 * calls);
  CHECK((mean - exact).cwiseAbs().maxCoeff() <= 4 * se);
}

TEST_CASE(
    "Sampled Nash-MD meets the theory bound E KL(pi*, pi_T) <= 8/(tau^2 (T+1)) and is seeded") {
  // Unbiased payoff estimates in [0, 1] keep Theorem 1's one-step inequality in expectation, so the
  // bound holds for the mean over seeds; the sampling error shows as a KL above exact mode's.
  const auto game = rock_paper_scissors_game(vec({0.7, 0.2, 0.1}), 0.5);
  const auto eq = solve_regularised(game);
  const prefopt::index_t T = 2000;
  const double bound = 8.0 / (0.25 * static_cast<double>(T + 1));
  double mean = 0;
  for (std::uint64_t seed = 1; seed <= 5; ++seed) {
    const auto state = test::run_steps(
        nash_md<theory_step, sampled_payoff>(theory_step{}, sampled_payoff{16, seed}), game, T);
    mean += kl_divergence(game, eq.probabilities, state.policy()) / 5;
  }
  const auto exact = test::run_steps(nash_md<>{}, game, T);
  const double exact_kl = kl_divergence(game, eq.probabilities, exact.policy());
  INFO("sampled mean KL " << mean << ", exact KL " << exact_kl << ", bound " << bound);
  CHECK(mean <= bound);
  CHECK(mean > exact_kl);
  // Deterministic given the seed; different seeds differ.
  const nash_md<theory_step, sampled_payoff> s{theory_step{}, sampled_payoff{16, 9}};
  const auto a = test::run_steps(s, game, 20);
  const auto b = test::run_steps(s, game, 20);
  CHECK(a.policy().logits() == b.policy().logits());
  const auto c = test::run_steps(
      nash_md<theory_step, sampled_payoff>{theory_step{}, sampled_payoff{16, 10}}, game, 20);
  CHECK(a.policy().logits() != c.policy().logits());
}

TEST_CASE("Sampled self-play MWU and ONPO reach the exact equilibrium within the sampling error") {
  // Noise of variance <= 1/(4m) per payoff adds at most eta T/(8m)-type regret to MWU's bound;
  // with eta = sqrt(D/T) the average gap stays within 4 sqrt(D/T) + sqrt(1/(m T)) * 4.
  const auto game = efron_dice_game();
  const double d = std::log(10.0);
  const prefopt::index_t T = 4000;
  const prefopt::index_t m = 16;
  const auto init = initial_policy::from_probabilities(vec({0.7, 0.2, 0.1}));
  const double margin = 4 * std::sqrt(d / T) + 4 / std::sqrt(static_cast<double>(m * T));
  const self_play_mwu<constant_step, sampled_payoff> mwu(constant_step::for_horizon(d, T),
                                                         sampled_payoff{m, 3}, init);
  const auto a = test::run_steps(mwu, game, T);
  CHECK(unregularised_duality_gap(game, a.average_probabilities()) <= margin);
  const onpo<sampled_payoff> opt(constant_step(0.1), sampled_payoff{m, 4}, init);
  const auto b = test::run_steps(opt, game, T);
  CHECK(unregularised_duality_gap(game, b.average_probabilities()) <= margin);
}
