#include <catch2/catch.hpp>

#include <cmath>

#include "prefopt/diagnostics/divergence.hpp"
#include "prefopt/games/catalog.hpp"
#include "prefopt/solvers/common/game_sampling.hpp"
#include "prefopt/solvers/dpo_trainer.hpp"
#include "prefopt/solvers/rlhf.hpp"

using prefopt::dpo_trainer_config;
using prefopt::preference_game;
using prefopt::vector_d;

namespace {
template <class Solver>
auto train(const Solver& solver, const preference_game& game, int steps) {
  auto state = solver.init(game);
  for (int t = 0; t < steps; ++t) solver.step(game, state);
  return state;
}

/// The tabular setting: offline pairs of the reference, minibatches of 64.
dpo_trainer_config offline_config() {
  dpo_trainer_config c;
  c.source = prefopt::pair_source::offline;
  c.batch_size = 64;
  return c;
}
}  // namespace

TEST_CASE("DPO on Bradley-Terry data approaches the RLHF optimum with tau = beta_dpo",
          "[alignment][dpo]") {
  // Substituting pi* = mu exp(r / beta) / Z into Bradley-Terry gives the DPO loss (§3.1): with
  // enough data its minimiser is the RLHF optimum of the true rewards.
  const vector_d r = vector_d::LinSpaced(4, 0.0, 1.5);
  const auto game = prefopt::bradley_terry_game(r);
  dpo_trainer_config config;
  config.loss.beta_dpo = 1.0;
  config.source = prefopt::pair_source::online;  // fresh pairs: no finite-dataset bias
  config.batch_size = 256;
  config.optimizer.learning_rate = 0.02;
  config.seed = 2;
  const prefopt::tabular_dpo dpo(config);
  const auto state = train(dpo, game, 1500);
  const auto optimum = prefopt::rlhf_optimum(game, prefopt::row_matrix_d(r.transpose()), 1.0);
  CHECK(prefopt::kl_divergence(game, optimum, state.policy()) < 5e-3);
}

TEST_CASE("the first DPO step from the reference has loss log 2", "[alignment][dpo]") {
  const auto game = prefopt::efron_dice_game();
  const prefopt::tabular_dpo dpo;
  auto state = dpo.init(game);
  CHECK(dpo.step(game, state).loss == Approx(std::log(2.0)).epsilon(1e-12));
}

TEST_CASE("every direct-alignment variant finds the Condorcet winner of a Bradley-Terry game",
          "[alignment][dpo]") {
  vector_d r(4);
  r << 0.0, 1.0, 0.3, -0.5;  // Condorcet winner: response 1
  const auto game = prefopt::bradley_terry_game(r);
  dpo_trainer_config config = offline_config();
  config.loss.beta_dpo = 0.05;  // strong alignment (tau -> 0)
  config.seed = 5;
  vector_d p(4);
  train(prefopt::tabular_dpo(config), game, 600).policy().probabilities(0, p);
  CHECK(p[1] > 0.9);
  train(prefopt::tabular_ipo(config), game, 600).policy().probabilities(0, p);
  CHECK(p[1] > 0.9);
  train(prefopt::tabular_simpo(config), game, 600).policy().probabilities(0, p);
  CHECK(p[1] > 0.9);
}

TEST_CASE("length-averaged DPO divides each log-ratio by the response length", "[alignment][dpo]") {
  // With lengths attached, averaging changes the update: the long winner's log-ratio is divided by
  // 8, so averaged DPO needs a larger move to reach the same margin. It still finds the winner,
  // and the two runs differ. Without lengths (every length 1) averaging is plain DPO, bit for bit.
  vector_d r(4);
  r << 0.0, 1.0, 0.3, -0.5;
  const auto plain_game = prefopt::bradley_terry_game(r);
  prefopt::row_matrix_d lengths(1, 4);
  lengths << 2.0, 8.0, 1.0, 3.0;
  const auto game = plain_game.with_lengths(lengths);
  dpo_trainer_config config = offline_config();
  config.loss.beta_dpo = 0.05;
  config.seed = 5;
  const auto dpo = train(prefopt::tabular_dpo(config), game, 600);
  config.loss.length_average = true;
  const auto averaged = train(prefopt::tabular_dpo(config), game, 600);
  vector_d p(4);
  averaged.policy().probabilities(0, p);
  CHECK(p[1] > 0.9);
  CHECK((averaged.policy().logits() - dpo.policy().logits()).cwiseAbs().maxCoeff() > 1e-3);
  // Control: the same runs on the game without lengths are identical.
  const auto without_lengths = train(prefopt::tabular_dpo(config), plain_game, 20);
  config.loss.length_average = false;
  const auto plain = train(prefopt::tabular_dpo(config), plain_game, 20);
  CHECK(without_lengths.policy().logits() == plain.policy().logits());
}

TEST_CASE("offline training uses a fixed dataset, online training fresh pairs; both are seeded",
          "[alignment][dpo]") {
  // A DPO step moves the logits along e_chosen - e_rejected only (the log-ratio difference of a
  // pair does not depend on the other logits, and Adam leaves zero-gradient coordinates alone);
  // the policy then shifts each row by its maximum (a gauge change, the same for every logit). A
  // one-pair offline dataset over three responses therefore moves the third logit by exactly the
  // mean move of the other two (to rounding); online pairs, drawn afresh every step, break that.
  const auto game = prefopt::rock_paper_scissors_game();
  const prefopt::row_matrix_d start = prefopt::reference_policy(game).logits();
  const auto untouched = [&](const auto& state) {
    const prefopt::row_matrix_d moved = state.policy().logits() - start;
    const double total = moved.sum();
    int count = 0;
    for (prefopt::index_t k = 0; k < 3; ++k) {
      const double off_pair = std::abs(moved(0, k) - (total - moved(0, k)) / 2);
      CHECK((off_pair < 1e-9 || off_pair > 1e-3));
      count += off_pair < 1e-9 ? 1 : 0;
    }
    CHECK(moved.maxCoeff() - moved.minCoeff() > 1e-2);
    return count;
  };
  for (auto source : {prefopt::pair_source::offline, prefopt::pair_source::online}) {
    dpo_trainer_config config;
    config.source = source;
    config.dataset_size = 1;
    config.batch_size = 16;
    config.seed = 9;
    const auto one_pair = train(prefopt::tabular_dpo(config), game, 20);
    CHECK(untouched(one_pair) == (source == prefopt::pair_source::offline ? 1 : 0));

    config.dataset_size = 128;
    const prefopt::tabular_dpo dpo(config);
    const auto a = train(dpo, game, 20), b = train(dpo, game, 20);
    CHECK(a.policy().logits() == b.policy().logits());
    config.seed = 10;
    const auto c = train(prefopt::tabular_dpo(config), game, 20);
    CHECK(a.policy().logits() != c.policy().logits());
  }
}

TEST_CASE("direct alignment rejects bad hyperparameters by name", "[alignment][dpo]") {
  dpo_trainer_config c;
  c.batch_size = 0;
  CHECK_THROWS_WITH(prefopt::tabular_dpo(c), Catch::Contains("config.batch_size = 0"));
  c = offline_config();
  c.dataset_size = 0;
  CHECK_THROWS_WITH(prefopt::tabular_dpo(c), Catch::Contains("config.dataset_size = 0"));
  c.source = prefopt::pair_source::online;  // online training never reads the dataset size
  CHECK_NOTHROW(prefopt::tabular_dpo(c));
  c = offline_config();
  c.loss.beta_dpo = -0.1;
  CHECK_THROWS_AS(prefopt::tabular_dpo(c), prefopt::invalid_argument);
}
