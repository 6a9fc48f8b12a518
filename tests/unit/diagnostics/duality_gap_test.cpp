#include "prefopt/diagnostics/duality_gap.hpp"

#include <catch2/catch.hpp>

#include "prefopt/diagnostics/divergence.hpp"
#include "prefopt/diagnostics/equilibrium.hpp"
#include "prefopt/diagnostics/win_rate.hpp"
#include "prefopt/games/catalog.hpp"
#include "test_games.hpp"

using namespace prefopt;
using test::vec;

namespace {
vector_d random_simplex(rng& gen, prefopt::index_t n) {
  vector_d p(n);
  for (prefopt::index_t i = 0; i < n; ++i) p[i] = -std::log(1.0 - gen.uniform());
  return p / p.sum();
}
}  // namespace

TEST_CASE("P(pi > pi) = P_tau(pi > pi) = 1/2 and P(pi > pi') = 1 - P(pi' > pi) to 1e-15") {
  rng gen(3);
  const auto game = random_intransitive_game(8, 11, random_reference(8, 5), 0.3);
  for (int k = 0; k < 20; ++k) {
    const row_matrix_d p = random_simplex(gen, 8).transpose();
    const row_matrix_d q = random_simplex(gen, 8).transpose();
    CHECK(std::abs(win_rate(game, p, p) - 0.5) <= 1e-15);
    CHECK(std::abs(regularised_win_rate(game, p, p) - 0.5) <= 1e-15);
    CHECK(std::abs(win_rate(game, p, q) + win_rate(game, q, p) - 1.0) <= 1e-15);
    CHECK(std::abs(regularised_win_rate(game, p, q) + regularised_win_rate(game, q, p) - 1.0) <=
          1e-14);
  }
}

TEST_CASE("Dice, tau = 0.1: P_tau(pi* > pi) - 1/2 = tau KL(pi, pi*) = 0.0226125244 at uniform") {
  const auto game = efron_dice_game(vec({0.6, 0.3, 0.1}), 0.1);
  const auto eq = solve_regularised(game);
  const row_matrix_d uniform = test::row(preference_game::uniform(3));
  const row_matrix_d mu = game.reference();
  const vector_d pistar = eq.probabilities.row(0).transpose();
  CHECK(regularised_win_rate(game, eq.probabilities, uniform) - 0.5 ==
        Approx(0.0226125244).margin(1e-10));
  CHECK(0.1 * test::kl(preference_game::uniform(3), pistar) == Approx(0.0226125244).margin(1e-10));
  CHECK(regularised_win_rate(game, eq.probabilities, mu) - 0.5 ==
        Approx(0.0014958732).margin(1e-10));
  CHECK(0.1 * kl_divergence(game, mu, eq.probabilities) == Approx(0.0014958732).margin(1e-10));
  const double gap = duality_gap(game, uniform);
  CHECK(gap == Approx(0.0481031).margin(1e-7));
  CHECK(gap >= 2 * 0.1 * kl_divergence(game, uniform, eq.probabilities));
  CHECK(2 * 0.1 * kl_divergence(game, uniform, eq.probabilities) == Approx(0.0452250).margin(1e-7));
}

TEST_CASE("The closed-form gap equals 2 V_tau(p, pi) - 1 at the Gibbs maximiser and is >= 0") {
  rng gen(9);
  const vector_d mu = random_reference(7, 2);
  const matrix_d P = random_preference_matrix(7, 4);
  for (double tau : {1.0, 0.1, 0.01}) {
    const preference_game game(P, mu, tau);
    for (int k = 0; k < 10; ++k) {
      const vector_d pi = random_simplex(gen, 7);
      // Gibbs maximiser p ∝ mu exp(P pi / tau), computed directly.
      vector_d logits = mu.array().log().matrix() + P * pi / tau, best(7);
      softmax(logits, best);
      const double direct = 2.0 * test::value(P, mu, tau, best, pi) - 1.0;
      const double closed = duality_gap(game, row_matrix_d(pi.transpose()));
      CHECK(closed == Approx(direct).margin(1e-12));
      CHECK(closed >= 0.0);
      CHECK(duality_gap(P, mu, tau, pi) == Approx(closed).margin(1e-15));
      CHECK(exploitability(game, row_matrix_d(pi.transpose())) == Approx(closed / 2).margin(1e-15));
      // No p beats the Gibbs maximiser.
      const vector_d other = random_simplex(gen, 7);
      CHECK(test::value(P, mu, tau, other, pi) <= test::value(P, mu, tau, best, pi) + 1e-15);
    }
  }
}

TEST_CASE("DualGap_tau -> DualGap_0 as tau -> 0 and stays finite and exact at tau = 1e-6") {
  rng gen(1);
  const auto game = random_intransitive_game(10, 2, random_reference(10, 3), 1e-4);
  const row_matrix_d pi = random_simplex(gen, 10).transpose();
  const double gap0 = unregularised_duality_gap(game, pi);
  CHECK(std::abs(duality_gap(game, pi) - gap0) <= 1e-3);
  const double tiny = duality_gap(game.with_tau(1e-6), pi);
  CHECK(std::isfinite(tiny));
  CHECK(std::abs(tiny - gap0) <= 1e-4);
  CHECK(tiny >= 0.0);
  // Same formula at tau = 1e-8: the Gibbs value tends to max_y g_y from below by tau log mu.
  CHECK(std::abs(duality_gap(game.with_tau(1e-8), pi) - gap0) <= 1e-6);
}

TEST_CASE("Known tau = 0 equilibria have zero gap; the eps-population NE and uniform gap 0.05") {
  const row_matrix_d uniform = test::row(preference_game::uniform(3));
  CHECK(unregularised_duality_gap(efron_dice_game(), uniform) <= 1e-12);
  CHECK(unregularised_duality_gap(condorcet_voters_game(3), uniform) <= 1e-12);
  CHECK(unregularised_duality_gap(condorcet_voters_game(6),
                                  test::row(preference_game::uniform(6))) <= 1e-12);
  CHECK(unregularised_duality_gap(rock_paper_scissors_game(), uniform) <= 1e-12);
  const auto eps = epsilon_population_game(0.1);
  CHECK(unregularised_duality_gap(eps, test::row(vec({0.383333333333333333, 0.38333333333333333,
                                                      0.233333333333333333}))) <= 1e-12);
  CHECK(unregularised_duality_gap(eps, uniform) == Approx(0.05).margin(1e-12));
  const auto bt = bradley_terry_game(vec({0.0, 1.0, 2.0}));
  CHECK(unregularised_duality_gap(bt, test::row(vec({0.0, 0.0, 1.0}))) <= 1e-15);
}

TEST_CASE("Constrained BT (Nash-MD App. A): P(pi_P > pi_R) = 50/99") {
  const auto game = bradley_terry_game(vec({0.0, std::log(9.0), std::log(2.0)}));
  const row_matrix_d pi_r = test::row(vec({2.0 / 3, 1.0 / 3, 0.0}));
  const row_matrix_d pi_p = test::row(vec({0.0, 0.0, 1.0}));
  CHECK(win_rate(game, pi_p, pi_r) == Approx(50.0 / 99).margin(1e-12));
}

TEST_CASE("Gaps and KL are rho-weighted averages over contexts") {
  vector_d w(2);
  w << 0.25, 0.75;
  const auto game = mixture_game({efron_dice_game({}, 0.1), rock_paper_scissors_game({}, 0.1)}, w);
  const row_matrix_d pi = row_matrix_d::Constant(2, 3, 1.0 / 3) +
                          (row_matrix_d(2, 3) << 0.1, -0.1, 0, 0.2, 0, -0.2).finished();
  const vector_d gaps = duality_gaps(game, pi);
  CHECK(duality_gap(game, pi) == Approx(0.25 * gaps[0] + 0.75 * gaps[1]).margin(1e-15));
  CHECK(gaps[0] == Approx(duality_gap(game.preference(0), preference_game::uniform(3), 0.1,
                                      pi.row(0).transpose()))
                       .margin(1e-15));
  CHECK(kl_to_reference(game, pi) ==
        Approx(0.75 * test::kl(pi.row(1).transpose(), preference_game::uniform(3)) +
               0.25 * test::kl(pi.row(0).transpose(), preference_game::uniform(3)))
            .margin(1e-15));
  CHECK_THROWS_AS(duality_gap(game, row_matrix_d(row_matrix_d::Constant(1, 3, 1.0 / 3))),
                  shape_error);
}

TEST_CASE("diagnostics take a single-context probability vector like a one-row table") {
  const auto game = efron_dice_game(vec({0.6, 0.3, 0.1}), 0.1);
  const vector_d pi = vec({0.5, 0.2, 0.3});
  const row_matrix_d table = test::row(pi);
  const vector_d other = vec({0.2, 0.2, 0.6});
  CHECK(duality_gap(game, pi) == duality_gap(game, table));
  CHECK(duality_gap(game, pi) > 0.0);
  CHECK(unregularised_duality_gap(game, pi) == unregularised_duality_gap(game, table));
  CHECK(exploitability(game, pi) == exploitability(game, table));
  CHECK(kl_divergence(game, pi, other) == kl_divergence(game, table, test::row(other)));
  CHECK(kl_to_reference(game, pi) == kl_to_reference(game, table));
  CHECK(win_rate(game, pi, other) == win_rate(game, table, test::row(other)));
  const auto two = mixture_game({efron_dice_game(), rock_paper_scissors_game()});
  CHECK_THROWS_WITH(duality_gap(two, pi),
                    Catch::Contains("duality_gaps") && Catch::Contains("2 contexts"));
  CHECK_THROWS_AS(duality_gap(game, vec({0.5, 0.5})), shape_error);
}
