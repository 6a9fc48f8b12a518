#include "prefopt/games/catalog.hpp"

#include <catch2/catch.hpp>

using namespace prefopt;

TEST_CASE("Efron dice: each die beats the next with probability 5/9") {
  const auto g = efron_dice_game();
  const matrix_d& p = g.preference(0);
  CHECK(p(0, 1) == Approx(5.0 / 9).epsilon(1e-15));
  CHECK(p(1, 2) == Approx(5.0 / 9).epsilon(1e-15));
  CHECK(p(2, 0) == Approx(5.0 / 9).epsilon(1e-15));
  CHECK(p(1, 0) == Approx(4.0 / 9).epsilon(1e-15));
}

TEST_CASE("Rock-paper-scissors matrix is [[1/2,1,0],[0,1/2,1],[1,0,1/2]]") {
  matrix_d expected(3, 3);
  expected << 0.5, 1, 0, 0, 0.5, 1, 1, 0, 0.5;
  CHECK(rock_paper_scissors_game().preference(0) == expected);
}

TEST_CASE("epsilon-population: P(y2>y1) = 2/3 - eps/2, P(y1>y3) = P(y3>y2) = 2/3 + eps/4") {
  const double eps = 0.1;
  const auto game = epsilon_population_game(eps);
  const auto& p = game.preference(0);
  CHECK(p(1, 0) == Approx(2.0 / 3 - eps / 2).epsilon(1e-14));
  CHECK(p(0, 2) == Approx(2.0 / 3 + eps / 4).epsilon(1e-14));
  CHECK(p(2, 1) == Approx(2.0 / 3 + eps / 4).epsilon(1e-14));
  CHECK_THROWS_AS(epsilon_population_game(0.5), invalid_argument);
}

TEST_CASE("Condorcet voters: each cyclic preference is 2/3") {
  const auto game = condorcet_voters_game(3);
  const auto& p = game.preference(0);
  CHECK(p(0, 1) == Approx(2.0 / 3).epsilon(1e-15));
  CHECK(p(1, 2) == Approx(2.0 / 3).epsilon(1e-15));
  CHECK(p(2, 0) == Approx(2.0 / 3).epsilon(1e-15));
}

TEST_CASE("Random intransitive game: lower triangle from the seeded rng, P_ji = 1 - P_ij") {
  const auto g = random_intransitive_game(10, 7);
  const matrix_d& p = g.preference(0);
  rng gen(7, 0);
  for (prefopt::index_t i = 0; i < 10; ++i) {
    CHECK(p(i, i) == 0.5);
    for (prefopt::index_t j = 0; j < i; ++j) {
      CHECK(p(i, j) == gen.uniform());
      CHECK(p(j, i) == 1.0 - p(i, j));
    }
  }
  CHECK(random_intransitive_game(10, 8).preference(0) != p);
  const vector_d mu = random_reference(10, 3);
  CHECK(mu.sum() == Approx(1.0).epsilon(1e-14));
  CHECK(mu.minCoeff() > 0.0);
}

TEST_CASE("Bradley-Terry game: P_ij = sigma(r_i - r_j), gold rewards attached") {
  vector_d r(3);
  r << 0, 1, 2;
  const auto g = bradley_terry_game(r);
  CHECK(g.preference(0)(2, 0) == Approx(1.0 / (1.0 + std::exp(-2.0))).epsilon(1e-15));
  CHECK(g.gold_rewards()(0, 2) == 2.0);
}

TEST_CASE("mixture_game stacks contexts with weights w_k rho_k") {
  vector_d w(2);
  w << 0.25, 0.75;
  const auto g = mixture_game({efron_dice_game(), rock_paper_scissors_game()}, w);
  CHECK(g.num_contexts() == 2);
  CHECK(g.context_weights()[1] == 0.75);
  CHECK(g.preference(1) == rock_paper_scissors_game().preference(0));
  CHECK_THROWS_AS(mixture_game({efron_dice_game(), condorcet_voters_game(4)}), shape_error);
  CHECK_THROWS_AS(mixture_game({efron_dice_game({}, 0.1), rock_paper_scissors_game()}),
                  invalid_argument);
}
