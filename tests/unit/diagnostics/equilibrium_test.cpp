#include "prefopt/diagnostics/equilibrium.hpp"

#include <catch2/catch.hpp>

#include "prefopt/diagnostics/divergence.hpp"
#include "prefopt/diagnostics/duality_gap.hpp"
#include "prefopt/games/catalog.hpp"
#include "test_games.hpp"

using namespace prefopt;
using test::vec;

namespace {
/// max_y |BR_tau(pi)(y) - pi(y)| with BR_tau(pi) = softmax(log mu + P pi / tau), computed directly.
double fixed_point_residual(const preference_game& game, const row_matrix_d& pi) {
  const vector_d p = pi.row(0).transpose();
  const vector_d logits =
      game.log_reference().row(0).transpose() + game.preference(0) * p / game.tau();
  vector_d br(p.size());
  softmax(logits, br);
  return (br - p).cwiseAbs().maxCoeff();
}

void check_probabilities(const row_matrix_d& got, const vector_d& expected, double tol) {
  for (prefopt::index_t i = 0; i < expected.size(); ++i) {
    CHECK(got(0, i) == Approx(expected[i]).margin(tol));
  }
}
}  // namespace

TEST_CASE("Dice, mu = (0.6, 0.3, 0.1), tau = 0.1: pi*_tau = (0.643730, 0.228498, 0.127772)") {
  const auto game = efron_dice_game(vec({0.6, 0.3, 0.1}), 0.1);
  const auto eq = solve_regularised(game);
  check_probabilities(eq.probabilities, vec({0.643730, 0.228498, 0.127772}), 1e-6);
  CHECK(eq.gap <= 1e-12);
  CHECK(eq.kl_bound == Approx(eq.gap / 0.2).margin(1e-18));
  CHECK(fixed_point_residual(game, eq.probabilities) <= 1e-13);
  CHECK(duality_gap(game, eq.policy()) <= 1e-12);
}

TEST_CASE("RPS, mu = (0.7, 0.2, 0.1): pi*_0.5 and pi*_0.05 match ALGORITHMS.md") {
  const vector_d mu = vec({0.7, 0.2, 0.1});
  const auto a = solve_regularised(rock_paper_scissors_game(mu, 0.5));
  check_probabilities(a.probabilities, vec({0.690341, 0.125919, 0.183739}), 1e-6);
  const auto game = rock_paper_scissors_game(mu, 0.05);
  const auto b = solve_regularised(game);
  check_probabilities(b.probabilities, vec({0.366630, 0.268643, 0.364726}), 1e-6);
  CHECK(fixed_point_residual(game, b.probabilities) <= 1e-13);
}

TEST_CASE("BT r = (0,1,2), tau = 1: pi*_tau = (0.268659, 0.327558, 0.403783), not softmax(r)") {
  const auto game = bradley_terry_game(vec({0.0, 1.0, 2.0}), {}, 1.0);
  const auto eq = solve_regularised(game);
  check_probabilities(eq.probabilities, vec({0.268659, 0.327558, 0.403783}), 1e-6);
  vector_d rlhf(3);
  softmax(vec({0.0, 1.0, 2.0}), rlhf);
  CHECK(rlhf[2] == Approx(0.665241).margin(1e-6));
  CHECK(std::abs(eq.probabilities(0, 2) - rlhf[2]) > 0.2);
}

TEST_CASE("MMD with eta = tau/4 reaches gap < 1e-12 within 3e4 iterations and agrees with Newton") {
  struct cfg {
    preference_game game;
  };
  for (const auto& game : {efron_dice_game(vec({0.6, 0.3, 0.1}), 0.1),
                           rock_paper_scissors_game(vec({0.7, 0.2, 0.1}), 0.05)}) {
    const double tau = game.tau();
    const vector_d mu = game.reference().row(0).transpose();
    int iterations = 0;
    const vector_d pi = test::mmd(
        game.preference(0), mu, tau, tau / 4, 30000, 1e-12,
        [&](const vector_d& p) { return duality_gap(game.preference(0), mu, tau, p); }, iterations);
    CHECK(iterations < 30000);
    CHECK(duality_gap(game.preference(0), mu, tau, pi) < 1e-12);
    const auto eq = solve_regularised(game);
    CHECK(test::kl(pi, eq.probabilities.row(0).transpose()) <= 1e-11);
  }
}

TEST_CASE("Certificate KL(pi, pi*_tau) <= gap / (2 tau) holds for random policies") {
  const auto game = random_intransitive_game(12, 5, random_reference(12, 6), 0.05);
  const auto eq = solve_regularised(game);
  CHECK(eq.gap <= 1e-12);
  rng gen(4);
  for (int k = 0; k < 20; ++k) {
    vector_d logits(12);
    for (prefopt::index_t i = 0; i < 12; ++i) logits[i] = 2 * gen.normal();
    vector_d p(12);
    softmax(logits, p);
    const row_matrix_d pi = p.transpose();
    CHECK(kl_divergence(game, pi, eq.probabilities) <= duality_gap(game, pi) / (2 * 0.05) + 1e-12);
    // The identity is exact: P_tau(pi* > pi) - 1/2 = tau KL(pi, pi*).
  }
}

TEST_CASE("Newton-GMRES (matrix-free) and dense LU give the same equilibrium") {
  const auto game = random_intransitive_game(120, 17, random_reference(120, 2), 0.02);
  regularised_equilibrium_options dense, krylov;
  krylov.dense_limit = 10;
  const auto a = solve_regularised(game, dense);
  const auto b = solve_regularised(game, krylov);
  CHECK(a.gap <= 1e-12);
  CHECK(b.gap <= 1e-12);
  CHECK(kl_divergence(game, a.probabilities, b.probabilities) <= 1e-12);
}

TEST_CASE("Multi-context equilibria solve each context; rho-weighted gap and certificate") {
  vector_d w(2);
  w << 0.4, 0.6;
  const auto game = mixture_game({efron_dice_game(vec({0.6, 0.3, 0.1}), 0.1),
                                  rock_paper_scissors_game(vec({0.6, 0.3, 0.1}), 0.1)},
                                 w);
  const auto eq = solve_regularised(game);
  CHECK(eq.gaps.size() == 2);
  CHECK(eq.probabilities(0, 0) == Approx(0.643730).margin(1e-6));
  CHECK(eq.gap == Approx(0.4 * eq.gaps[0] + 0.6 * eq.gaps[1]).margin(1e-20));
}

TEST_CASE("solve_regularised fails loudly: tau = 0 is invalid, an unreachable target throws") {
  CHECK_THROWS_AS(solve_regularised(efron_dice_game()), invalid_argument);
  regularised_equilibrium_options options;
  options.max_newton_iterations = 1;
  options.target_gap = 1e-15;
  CHECK_THROWS_AS(solve_regularised(random_intransitive_game(10, 1, {}, 0.001), options),
                  convergence_error);
}

TEST_CASE(
    "tau = 0: dice and Condorcet give uniform, eps-population its NE, BT the Condorcet winner") {
  const auto dice = solve_unregularised(efron_dice_game());
  check_probabilities(dice.probabilities, preference_game::uniform(3), 1e-15);
  CHECK(dice.gap <= 1e-15);
  const auto condorcet = solve_unregularised(condorcet_voters_game(3));
  check_probabilities(condorcet.probabilities, preference_game::uniform(3), 1e-15);
  const auto eps = solve_unregularised(epsilon_population_game(0.1));
  check_probabilities(eps.probabilities, vec({0.383333333333, 0.383333333333, 0.233333333333}),
                      1e-12);
  CHECK(eps.gap <= 1e-12);
  const auto bt = solve_unregularised(bradley_terry_game(vec({0.3, 2.0, -1.0, 1.0})));
  CHECK(bt.probabilities(0, 1) == 1.0);
  CHECK(bt.gap == 0.0);
  // a, b, c of the biased game: pi ∝ (b, c, a).
  const auto biased = solve_unregularised(biased_rock_paper_scissors_game(0.9, 0.7, 0.6));
  check_probabilities(biased.probabilities, vec({0.2 / 0.7, 0.1 / 0.7, 0.4 / 0.7}), 1e-14);
}

TEST_CASE("tau = 0 on a random 10-action game: optimistic MWU certifies the target gap") {
  const auto game = random_intransitive_game(10, 3);
  unregularised_equilibrium_options options;
  options.method = unregularised_method::optimistic_mwu;
  options.target_gap = 1e-6;
  const auto eq = solve_unregularised(game, options);
  CHECK(eq.method() == "optimistic_mwu");
  CHECK(eq.gap <= 1e-6);
  CHECK(unregularised_duality_gap(game, eq.probabilities) == Approx(eq.gap).margin(1e-15));
  options.max_iterations = 100;
  options.target_gap = 1e-14;
  CHECK_THROWS_AS(solve_unregularised(game, options), convergence_error);
}

TEST_CASE("tau = 0 on random 30- and 50-action games: the LP gives gap <= 1e-10 where MWU failed") {
  // n = 50, seed 3 is the arena config of issue 11 (optimistic MWU stopped at 3.9e-6).
  for (const auto& [n, seed] : {std::pair<prefopt::index_t, std::uint64_t>{30, 1}, {50, 3}}) {
    const auto game = random_intransitive_game(n, seed);
    const auto eq = solve_unregularised(game);
    CAPTURE(n, seed);
    CHECK(eq.method() == "interior_point");
    CHECK(eq.gap <= 1e-10);
    CHECK(unregularised_duality_gap(game, eq.probabilities) == Approx(eq.gap).margin(1e-15));
    CHECK(eq.iterations <= 40);
  }
}

TEST_CASE("solve_unregularised reports the method of every context") {
  const auto game =
      mixture_game({condorcet_voters_game(3), efron_dice_game(),
                    bradley_terry_game(vec({0.0, 1.0, 0.5})), random_intransitive_game(3, 7)});
  const auto eq = solve_unregularised(game);
  REQUIRE(eq.methods.size() == 4);
  CHECK(eq.methods[2] == equilibrium_method::condorcet_winner);
  CHECK(eq.methods[1] == equilibrium_method::three_action_closed_form);
  const auto five = solve_unregularised(mixture_game(
      {bradley_terry_game(vec({0.0, 1.0, 0.5, 0.2, 0.1})), random_intransitive_game(5, 2)}));
  CHECK(five.method() == "condorcet_winner+interior_point");
  CHECK(five.gap <= 1e-10);
  unregularised_equilibrium_options mwu;
  mwu.method = unregularised_method::optimistic_mwu;
  mwu.target_gap = 1e-6;
  const auto g = random_intransitive_game(6, 5);
  CHECK(solve_unregularised(g, mwu).methods[0] == equilibrium_method::optimistic_mwu);
  CHECK(solve_regularised(random_intransitive_game(6, 5, {}, 0.1)).method() == "newton");
}

TEST_CASE("reported gaps and KL bounds are never negative; the raw values are kept") {
  // tau = 0.1, n = 10, seed 1: the computed gap at the Newton solution is -5.6e-16.
  const auto game = random_intransitive_game(10, 1, {}, 0.1);
  const auto eq = solve_regularised(game);
  REQUIRE(eq.raw_gaps[0] < 0.0);  // the case the clamp is for
  CHECK(eq.gaps[0] == 0.0);
  CHECK(eq.gap == 0.0);
  CHECK(eq.kl_bound == 0.0);
  int negative_raw = 0;
  for (std::uint64_t seed = 1; seed <= 12; ++seed) {
    const auto g = random_intransitive_game(10, seed, {}, 0.001);
    const auto e = solve_regularised(g);
    CHECK(e.gaps.minCoeff() >= 0.0);
    CHECK(e.kl_bound >= 0.0);
    const vector_d raw = raw_duality_gaps(g, e.probabilities);
    negative_raw += raw[0] < 0.0 ? 1 : 0;
    CHECK(duality_gaps(g, e.probabilities)[0] == std::max(0.0, raw[0]));
    CHECK(duality_gap(g, e.probabilities) >= 0.0);
    CHECK(exploitability(g, e.probabilities) >= 0.0);
    CHECK(duality_gap(g.preference(0), g.reference().row(0).transpose(), g.tau(),
                      vector_d(e.probabilities.row(0).transpose())) >= 0.0);
  }
  CHECK(negative_raw > 0);  // rounding did go below 0 on some of them
  const auto zero = solve_unregularised(random_intransitive_game(40, 2));
  CHECK(zero.gaps.minCoeff() >= 0.0);
  CHECK((zero.gaps - zero.raw_gaps.cwiseMax(0.0)).cwiseAbs().maxCoeff() == 0.0);
}
