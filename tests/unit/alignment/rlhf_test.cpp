#include "prefopt/solvers/rlhf.hpp"

#include <catch2/catch.hpp>

#include <cmath>

#include "prefopt/diagnostics/divergence.hpp"
#include "prefopt/games/catalog.hpp"

using prefopt::preference_game;
using prefopt::row_matrix_d;
using prefopt::vector_d;

namespace {
double expected_reward(const preference_game& game, const prefopt::tabular_softmax_policy& pi,
                       const row_matrix_d& r) {
  vector_d p(game.num_actions());
  pi.probabilities(0, p);
  return p.dot(r.row(0).transpose());
}
}  // namespace

TEST_CASE("the RLHF optimum's reward gain is linear in sqrt(KL) for small KL (Bai et al.)",
          "[alignment][rlhf]") {
  // ALGORITHMS.md §2.5: mu uniform on 3 actions, r = (0, 1, 2): sqrt(2 Var) = 1.1547005 and
  // dR / sqrt(KL) = 1.1546957 (tau = 100), 1.1542204 (10), 1.1148311 (1).
  const auto game = prefopt::bradley_terry_game(vector_d::LinSpaced(3, 0.0, 2.0));
  const row_matrix_d r{{0.0, 1.0, 2.0}};
  const double base = expected_reward(game, prefopt::reference_policy(game), r);
  const double expected[] = {1.1546957, 1.1542204, 1.1148311};
  const double taus[] = {100.0, 10.0, 1.0};
  for (int k = 0; k < 3; ++k) {
    const auto pi = prefopt::rlhf_optimum(game, r, taus[k]);
    const double gain = expected_reward(game, pi, r) - base;
    const double kl = prefopt::kl_to_reference(game, pi);
    CHECK(gain / std::sqrt(kl) == Approx(expected[k]).epsilon(1e-6));
    if (k == 0) {
      CHECK(taus[k] * gain == Approx(2.0 / 3.0).epsilon(1e-2));
      CHECK(taus[k] * taus[k] * kl == Approx(1.0 / 3.0).epsilon(1e-2));
    }
  }
}

TEST_CASE("the Bradley-Terry fit recovers centred rewards within 0.1", "[alignment][rlhf]") {
  // ALGORITHMS.md §1: 5 items, 2e4 pairs sampled from sigma(r_i - r_j).
  vector_d r(5);
  r << 0.0, 0.5, -1.0, 1.5, 0.25;
  const auto game = prefopt::bradley_terry_game(r);
  prefopt::reward_fit_config config;
  config.pairs = 20000;
  config.iterations = 600;
  prefopt::rng gen(3);
  const auto fit = prefopt::fit_bradley_terry_rewards(game, config, gen);
  const vector_d centred = r.array() - r.mean();
  CHECK((fit.rewards.row(0).transpose() - centred).cwiseAbs().maxCoeff() < 0.1);
  CHECK(std::abs(fit.rewards.row(0).sum()) < 1e-12);
}

TEST_CASE("PPO converges to the closed-form optimum of its fitted reward", "[alignment][rlhf]") {
  const auto game = prefopt::bradley_terry_game(vector_d::LinSpaced(4, 0.0, 1.5));
  prefopt::rlhf_ppo_config config;
  config.tau = 0.5;
  config.reward.pairs = 4000;
  config.reward.iterations = 400;
  config.optimizer.learning_rate = 0.01;
  config.seed = 7;
  const prefopt::tabular_rlhf_ppo solver(config);
  auto state = solver.init(game);
  const auto target = prefopt::rlhf_optimum(game, state.reward_fit().rewards, config.tau);
  const double kl_start = prefopt::kl_divergence(game, target, state.policy());
  for (int t = 0; t < 300; ++t) solver.step(game, state);
  const double kl_end = prefopt::kl_divergence(game, target, state.policy());
  CHECK(kl_start > 0.05);
  CHECK(kl_end < 5e-3);
}

TEST_CASE("the adaptive KL controller drives the rollout KL toward its target",
          "[alignment][rlhf]") {
  const auto game = prefopt::bradley_terry_game(vector_d::LinSpaced(5, 0.0, 4.0));
  prefopt::rlhf_ppo_config config;
  config.tau = 0.05;  // far too weak: KL overshoots the target and the controller raises tau
  config.control = prefopt::kl_control::adaptive;
  config.kl_target = 0.3;
  config.kl_horizon = 1280.0;  // gain batch/horizon = 0.2 per iteration
  config.reward.iterations = 300;
  config.seed = 1;
  const prefopt::tabular_rlhf_ppo solver(config);
  auto state = solver.init(game);
  for (int t = 0; t < 150; ++t) solver.step(game, state);
  CHECK(state.kl_coefficient() > config.tau * 2);
  double kl = 0.0;
  for (int t = 0; t < 50; ++t) kl += solver.step(game, state).mean_kl / 50;
  CHECK(kl == Approx(config.kl_target).epsilon(0.5));
}

TEST_CASE("RLHF-PPO is deterministic given its seed", "[alignment][rlhf]") {
  const auto game = prefopt::rock_paper_scissors_game();
  prefopt::rlhf_ppo_config config;
  config.reward.iterations = 50;
  config.seed = 11;
  const prefopt::tabular_rlhf_ppo solver(config);
  auto a = solver.init(game), b = solver.init(game);
  for (int t = 0; t < 5; ++t) {
    solver.step(game, a);
    solver.step(game, b);
  }
  CHECK(a.policy().logits() == b.policy().logits());
  // Control: another seed gives other rollouts, hence another policy.
  config.seed = 12;
  const prefopt::tabular_rlhf_ppo other(config);
  auto c = other.init(game);
  for (int t = 0; t < 5; ++t) other.step(game, c);
  CHECK(a.policy().logits() != c.policy().logits());
}

TEST_CASE("RLHF-PPO rejects bad hyperparameters by name", "[alignment][rlhf]") {
  prefopt::rlhf_ppo_config c;
  c.tau = 0.0;
  CHECK_THROWS_WITH(prefopt::tabular_rlhf_ppo(c), Catch::Contains("tabular_rlhf_ppo: tau = 0"));
  c = {};
  c.minibatch_size = 1000;
  CHECK_THROWS_WITH(prefopt::tabular_rlhf_ppo(c), Catch::Contains("minibatch_size = 1000"));
  c = {};
  c.eps_clip = 1.5;
  CHECK_THROWS_WITH(prefopt::tabular_rlhf_ppo(c), Catch::Contains("eps_clip = 1.5"));
  c = {};
  c.control = prefopt::kl_control::adaptive;
  c.kl_target = -1.0;
  CHECK_THROWS_AS(prefopt::tabular_rlhf_ppo(c), prefopt::invalid_argument);
  const auto game = prefopt::rock_paper_scissors_game();
  CHECK_THROWS_WITH(prefopt::rlhf_optimum(game, row_matrix_d::Zero(1, 3), -1.0),
                    Catch::Contains("rlhf_optimum: tau = -1"));
}
