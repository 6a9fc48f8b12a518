#include <catch2/catch.hpp>

#include "prefopt/solvers/nash/mirror_descent.hpp"
#include "solver_helpers.hpp"

using namespace prefopt;
using test::vec;

namespace {

/// Average-iterate and last-played-iterate tau = 0 gaps of MWU with eta = sqrt(D/T) after T plays.
std::pair<double, double> mwu_gaps(const preference_game& game, const initial_policy& init,
                                   double d, prefopt::index_t T) {
  const self_play_mwu<> solver(constant_step::for_horizon(d, T), exact_payoff{}, init);
  const auto before_last = test::run_steps(solver, game, T - 1);  // policy() = pi_T
  const double last = unregularised_duality_gap(game, before_last.policy());
  auto state = before_last;
  (void)solver.step(game, state);  // plays pi_T: average of pi_1..pi_T
  return {unregularised_duality_gap(game, state.average_probabilities()), last};
}
}  // namespace

TEST_CASE("MWU closed form is the Gibbs maximiser of <pi, r> - (1/eta) KL(pi || pi_t)") {
  const auto game = random_intransitive_game(6, 3);
  const double eta = 0.7;
  const self_play_mwu<> solver(constant_step(eta), exact_payoff{},
                               initial_policy::from_probabilities(row_matrix_d(
                                   (vec({0.1, 0.2, 0.3, 0.15, 0.05, 0.2})).transpose())));
  auto state = solver.init(game);
  vector_d pt(6), next(6);
  state.policy().probabilities(0, pt);
  const vector_d r = game.preference(0) * pt;
  (void)solver.step(game, state);
  state.policy().probabilities(0, next);
  // The maximum value is (1/eta) log sum_y pi_t(y) exp(eta r_y) (Gibbs variational principle).
  const double max_value = std::log((pt.array() * (eta * r.array()).exp()).sum()) / eta;
  double kl = 0;
  for (prefopt::index_t i = 0; i < 6; ++i) kl += next[i] * std::log(next[i] / pt[i]);
  CHECK(next.dot(r) - kl / eta == Approx(max_value).margin(1e-12));
}

TEST_CASE("Uniform start on dice or RPS: every MWU iterate stays uniform") {
  for (const auto& game : {efron_dice_game(), rock_paper_scissors_game()}) {
    const self_play_mwu<> solver(constant_step(0.3));
    auto state = solver.init(game);
    for (int t = 0; t < 50; ++t) {
      CHECK(unregularised_duality_gap(game, state.policy()) < 1e-12);
      (void)solver.step(game, state);
    }
    CHECK(unregularised_duality_gap(game, state.average_probabilities()) < 1e-12);
  }
}

TEST_CASE("MWU on RPS from (0.7,0.2,0.1): average gap 0.1957/0.0532/0.0161, last iterate >= 0.3") {
  const auto game = rock_paper_scissors_game();
  const double d = std::log(10.0);
  const auto init = initial_policy::from_probabilities(test::skewed_start);
  const double expected[] = {0.1957, 0.0532, 0.0161};
  int k = 0;
  for (prefopt::index_t T : {100, 1000, 10000}) {
    const auto [avg, last] = mwu_gaps(game, init, d, T);
    INFO("T = " << T);
    CHECK(avg == Approx(expected[k++]).epsilon(0.05));
    CHECK(avg <= 4 * std::sqrt(d / static_cast<double>(T)));
    CHECK(last >= 0.3);  // the last iterate cycles
  }
}

TEST_CASE("MWU on dice from (0.7,0.2,0.1): average gap 0.0620/0.0614/0.0156") {
  const auto game = efron_dice_game();
  const auto init = initial_policy::from_probabilities(test::skewed_start);
  const double expected[] = {0.0620, 0.0614, 0.0156};
  int k = 0;
  for (prefopt::index_t T : {100, 1000, 10000}) {
    CHECK(mwu_gaps(game, init, std::log(10.0), T).first == Approx(expected[k++]).epsilon(0.05));
  }
}

TEST_CASE("MWU average-iterate gap decreases like 1/sqrt(T) on a random 10-action game") {
  const auto game = random_intransitive_game(10, 2026);
  const double d = std::log(10.0);
  std::vector<double> ts, gaps, lasts;
  for (prefopt::index_t T : {100, 300, 1000, 3000, 10000}) {
    const auto [avg, last] = mwu_gaps(game, initial_policy::uniform(), d, T);
    ts.push_back(static_cast<double>(T));
    gaps.push_back(avg);
    lasts.push_back(last);
    CHECK(avg <= 4 * std::sqrt(d / static_cast<double>(T)));
  }
  const double slope = test::log_log_slope(ts, gaps);
  INFO("slope = " << slope);
  CHECK(slope >= -0.65);
  CHECK(slope <= -0.35);
}

TEST_CASE("INPO conversion: from_inverse_eta(0.0075) with tau = 0.0025 gives eta tau = 1/3") {
  const auto step = constant_step::from_inverse_eta(0.0075);
  CHECK(step.eta(0, 0.0025) * 0.0025 == Approx(1.0 / 3).margin(1e-12));
}
