#include "prefopt/solvers/rlhf.hpp"

#include <catch2/catch.hpp>

#include <cmath>

#include "prefopt/diagnostics/divergence.hpp"
#include "prefopt/games/catalog.hpp"

using prefopt::preference_game;
using prefopt::row_matrix_d;
using prefopt::vector_d;

namespace {
/// A reward model only this test defines: r(c, a) = scale * a, no parameters (cannot be fitted).
struct linear_reward {
  using batch_type = prefopt::tabular_batch;
  double scale = 1.0;
  void reward(const prefopt::tabular_batch& batch, Eigen::Ref<vector_d> out) const {
    for (std::size_t i = 0; i < batch.actions.size(); ++i) {
      out[static_cast<prefopt::index_t>(i)] = scale * static_cast<double>(batch.actions[i]);
    }
  }
};

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

TEST_CASE("PPO takes any given reward model and converges to the optimum of that reward",
          "[alignment][rlhf]") {
  // The game's own preferences would favour action 0; the given reward favours the last action,
  // so reaching rlhf_optimum(linear reward) proves PPO scored with the given model.
  const auto game = prefopt::bradley_terry_game(vector_d::LinSpaced(4, 1.5, 0.0));
  prefopt::rlhf_ppo_config config;
  config.tau = 0.5;
  config.optimizer.learning_rate = 0.01;
  config.seed = 7;
  const prefopt::tabular_rlhf_ppo solver(config);
  const linear_reward given{0.5};
  const prefopt::tabular_rlhf_problem<linear_reward> problem{&game, &given, false};
  auto state = solver.init(problem);
  CHECK(state.reward_fit().rewards(0, 3) == 1.5);
  const auto target = prefopt::rlhf_optimum(game, state.reward_fit().rewards, config.tau);
  for (int t = 0; t < 300; ++t) solver.step(problem, state);
  CHECK(prefopt::kl_divergence(game, target, state.policy()) < 5e-3);
  vector_d p(4);
  state.policy().probabilities(0, p);
  CHECK(p(3) > p(0));

  // Fitting needs parameters: a model without them is refused by name.
  const prefopt::tabular_rlhf_problem<linear_reward> fit_it{&game, &given, true};
  CHECK_THROWS_WITH(solver.init(fit_it), Catch::Contains("problem.fit = true"));
  // A given table fitted on the game's pairs is the same fit as the bare game's.
  const prefopt::tabular_reward_model zero(row_matrix_d::Zero(1, 4));
  const prefopt::tabular_rlhf_problem<prefopt::tabular_reward_model> fitted{&game, &zero, true};
  prefopt::rlhf_ppo_config small = config;
  small.reward.pairs = 500;
  small.reward.iterations = 50;
  const prefopt::tabular_rlhf_ppo quick(small);
  CHECK(quick.init(fitted).reward_fit().rewards == quick.init(game).reward_fit().rewards);
  CHECK(quick.init(fitted).reward_model().table() == quick.init(game).reward_fit().rewards);
  CHECK(quick.init(game).reward_fit().rewards(0, 0) > 0.1);  // the fit moved off zero
}

TEST_CASE("the tabular reward model's gradient is the one-hot of each pair", "[alignment][rlhf]") {
  prefopt::tabular_reward_model m(row_matrix_d::Zero(2, 3));
  const std::vector<prefopt::index_t> contexts{0, 1, 1}, actions{2, 0, 0};
  vector_d g = vector_d::Zero(6);
  m.accumulate_reward_gradient({contexts, actions}, vector_d::Constant(3, 0.5), g);
  CHECK(g == (vector_d(6) << 0, 0, 0.5, 1.0, 0, 0).finished());
  m.parameters() << 1, 2, 3, 4, 5, 9;
  m.center();
  CHECK(m.table().row(1).sum() == Approx(0.0).margin(1e-12));
  CHECK(m.table()(0, 2) == 1.0);
  vector_d bad(5);
  CHECK_THROWS_WITH(m.accumulate_reward_gradient({contexts, actions}, vector_d::Zero(3), bad),
                    Catch::Contains("gradient has 5 entries"));
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
