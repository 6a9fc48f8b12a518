#include <catch2/catch.hpp>

#include "prefopt/callbacks/metric_tracker.hpp"
#include "prefopt/callbacks/metrics.hpp"
#include "prefopt/solvers/nash/mirror_descent.hpp"
#include "solver_helpers.hpp"

using namespace prefopt;
using test::vec;

namespace {
const vector_d dice_mu = vec({0.6, 0.3, 0.1});
const vector_d rps_mu = vec({0.7, 0.2, 0.1});

/// KL(pi*_tau, pi_t) for t = 0, every, 2 every, ..., T under `solver`.
template <class S>
std::vector<double> kl_sequence(const S& solver, const preference_game& game, prefopt::index_t T,
                                prefopt::index_t every = 1) {
  const auto eq = solve_regularised(game);
  metric_tracker tracker(kl_to_metric{eq.probabilities}, every);
  const auto result = run(solver, game, {.max_iterations = T}, tracker);
  REQUIRE(result.status == run_status::completed);
  REQUIRE(static_cast<prefopt::index_t>(tracker.values().size()) == T / every + 1);
  return tracker.values();
}
}  // namespace

TEST_CASE("Nash-MD theory schedule: pi_1 = (0.660026, 0.223686, 0.116289) on dice for any pi_0") {
  const auto game = efron_dice_game(dice_mu, 0.1);
  for (const auto& start : {initial_policy::reference(), initial_policy::uniform(),
                            initial_policy::from_probabilities(vec({0.1, 0.1, 0.8}))}) {
    const nash_md<> solver(theory_step{}, exact_payoff{}, start);
    const auto state = test::run_steps(solver, game, 1);
    vector_d p(3);
    state.policy().probabilities(0, p);
    CHECK(p[0] == Approx(0.660026).margin(1e-6));
    CHECK(p[1] == Approx(0.223686).margin(1e-6));
    CHECK(p[2] == Approx(0.116289).margin(1e-6));
  }
}

TEST_CASE("Nash-MD with the theory schedule satisfies KL(pi*, pi_T) <= 8/(tau^2 (T+1)) for all T") {
  const std::vector<preference_game> games = {
      efron_dice_game(dice_mu, 0.1), rock_paper_scissors_game(rps_mu, 0.5),
      rock_paper_scissors_game(rps_mu, 0.05),
      random_intransitive_game(10, 42, random_reference(10, 43), 0.1)};
  for (const auto& game : games) {
    const double tau = game.tau();
    const auto kl = kl_sequence(nash_md<>{}, game, 1000);
    for (std::size_t t = 1; t < kl.size(); ++t) {
      INFO("tau = " << tau << ", T = " << t);
      CHECK(kl[t] <= 8.0 / (tau * tau * static_cast<double>(t + 1)));
    }
  }
}

TEST_CASE("Nash-MD dice KL(pi*, pi_T) = 9.26e-7 / 9.56e-9 / 9.54e-11 at T = 1e2 / 1e3 / 1e4") {
  const auto game = efron_dice_game(dice_mu, 0.1);
  const auto kl = kl_sequence(nash_md<>{}, game, 10000);
  CHECK(kl[100] == Approx(9.26e-7).epsilon(0.05));
  CHECK(kl[1000] == Approx(9.56e-9).epsilon(0.05));
  CHECK(kl[10000] == Approx(9.54e-11).epsilon(0.05));
}

TEST_CASE(
    "Nash-MD RPS KL values: tau = 0.5 6.93e-6 at T=100; tau = 0.05 3.32e-2 / 1.50e-5 / 1.18e-8") {
  const auto a = kl_sequence(nash_md<>{}, rock_paper_scissors_game(rps_mu, 0.5), 100);
  CHECK(a[100] == Approx(6.93e-6).epsilon(0.05));
  const auto b = kl_sequence(nash_md<>{}, rock_paper_scissors_game(rps_mu, 0.05), 10000);
  CHECK(b[100] == Approx(3.32e-2).epsilon(0.05));
  CHECK(b[1000] == Approx(1.50e-5).epsilon(0.05));
  CHECK(b[10000] == Approx(1.18e-8).epsilon(0.05));
  CHECK(b[1000] < b[100]);
  CHECK(b[10000] < b[1000]);
}

TEST_CASE(
    "Nash-MD with a constant step stays within (1 - eta tau)^T KL_0 + 2 eta/tau and reaches KL <= "
    "1e-8") {
  // A constant step converges linearly to a point biased by O(eta tau) (the mixture, not pi_t, is
  // the tau/(1 - eta tau) equilibrium), so reaching 1e-8 takes a small step: eta tau = 5e-4.
  for (const auto& game : {efron_dice_game(dice_mu, 0.1), rock_paper_scissors_game(rps_mu, 0.5),
                           random_intransitive_game(10, 7, {}, 0.2)}) {
    const double tau = game.tau();
    for (const double eta_tau : {0.5, 5e-4}) {
      const double eta = eta_tau / tau;
      const prefopt::index_t every = eta_tau > 0.1 ? 1 : 100;
      const auto kl = kl_sequence(nash_md<constant_step>{constant_step(eta)}, game,
                                  eta_tau > 0.1 ? 200 : 50000, every);
      for (std::size_t k = 0; k < kl.size(); ++k) {
        const auto t = static_cast<double>(k) * static_cast<double>(every);
        const double bound = std::pow(1 - eta * tau, t) * kl[0] + 2 * eta / tau;
        CHECK(kl[k] <= bound);
      }
      if (eta_tau < 0.1) {
        INFO("tau = " << tau << ", final KL " << kl.back());
        CHECK(kl.back() <= 1e-8);
      }
    }
  }
}

TEST_CASE("Nash-MD with a user-supplied schedule matches the equivalent built-in schedule") {
  const auto game = rock_paper_scissors_game(rps_mu, 0.5);
  const auto custom =
      custom_step{[](prefopt::index_t t) { return 2.0 / (0.5 * static_cast<double>(t + 2)); }};
  const auto a = test::run_steps(nash_md<decltype(custom)>(custom), game, 50);
  const auto b = test::run_steps(nash_md<>{}, game, 50);
  CHECK((a.policy().logits() - b.policy().logits()).cwiseAbs().maxCoeff() <= 1e-12);
}

TEST_CASE(
    "OMD/INPO with the theory schedule converges on dice from uniform: KL(pi*, pi_100) < 1e-8") {
  const auto game = efron_dice_game(dice_mu, 0.1);
  const auto kl =
      kl_sequence(omd<>(theory_step{}, exact_payoff{}, initial_policy::uniform()), game, 100);
  CHECK(kl[100] < 1e-8);
}

TEST_CASE("Nash-MD on a multi-context game equals independent per-context runs") {
  vector_d w(2);
  w << 0.3, 0.7;
  const auto dice = efron_dice_game(dice_mu, 0.1);
  const auto rps = rock_paper_scissors_game(dice_mu, 0.1);
  const auto game = mixture_game({dice, rps}, w);
  const auto both = test::run_steps(nash_md<>{}, game, 500);
  const auto a = test::run_steps(nash_md<>{}, dice, 500);
  const auto b = test::run_steps(nash_md<>{}, rps, 500);
  CHECK((both.policy().logits().row(0) - a.policy().logits().row(0)).cwiseAbs().maxCoeff() <=
        1e-12);
  CHECK((both.policy().logits().row(1) - b.policy().logits().row(0)).cwiseAbs().maxCoeff() <=
        1e-12);
  const auto eq = solve_regularised(game);
  CHECK(kl_divergence(game, eq.probabilities, both.policy()) <= 8.0 / (0.01 * 501));
}

TEST_CASE("Nash-MD rejects eta <= 0 and eta tau > 1, naming the step") {
  const auto game = efron_dice_game(dice_mu, 0.1);
  CHECK_THROWS_AS(constant_step(0.0), invalid_argument);
  CHECK_THROWS_AS(constant_step(-1.0), invalid_argument);
  const nash_md<constant_step> big{constant_step(20.0)};
  auto state = big.init(game);
  try {
    (void)big.step(game, state);
    FAIL("expected invalid_argument");
  } catch (const invalid_argument& e) {
    CHECK(std::string(e.what()).find("eta * tau = 2") != std::string::npos);
    CHECK(std::string(e.what()).find("step 0") != std::string::npos);
  }
  const auto negative = custom_step{[](prefopt::index_t t) { return t < 3 ? 1.0 : -1.0; }};
  const nash_md<decltype(negative)> s(negative);
  auto st = s.init(game);
  for (int k = 0; k < 3; ++k) (void)s.step(game, st);
  CHECK_THROWS_AS(s.step(game, st), invalid_argument);
  CHECK_THROWS_AS(nash_md<>{}.step(game.with_tau(0.0), st), invalid_argument);
  CHECK_THROWS_AS(
      nash_md<>(theory_step{}, exact_payoff{}, initial_policy::from_probabilities(vec({0.5, 0.5})))
          .init(game),
      shape_error);
}
