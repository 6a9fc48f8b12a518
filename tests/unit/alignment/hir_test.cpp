#include "prefopt/solvers/hir.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

using prefopt::goal_task;
using prefopt::hir_config;
using prefopt::hir_mode;

namespace {
double success_after(const goal_task& task, hir_config config, int rounds) {
  const prefopt::tabular_hir hir(config);
  auto state = hir.init(task);
  for (int t = 0; t < rounds; ++t) hir.step(task, state);
  return task.success_rate(state.policy());
}
}  // namespace

TEST_CASE("under the reference, success is rare: 1/G on average", "[alignment][hir]") {
  const auto task = goal_task::random(400, 50, 1.0, 7);
  CHECK(task.success_rate(task.reference_policy()) == Approx(1.0 / 50).epsilon(1e-12));
}

TEST_CASE("HIR beats both baselines within the same sample budget when success is rare",
          "[alignment][hir]") {
  const auto task = goal_task::random(400, 50, 1.0, 7);
  hir_config config;
  config.seed = 3;
  const int rounds = 30;  // 30 x 64 = 1920 samples, ~38 successes under the reference
  const double hir = success_after(task, config, rounds);
  config.mode = hir_mode::no_relabeling;
  const double no_relabel = success_after(task, config, rounds);
  config.mode = hir_mode::successes_only;
  const double successes_only = success_after(task, config, rounds);
  CHECK(hir > 0.3);
  CHECK(hir > 2 * successes_only);
  CHECK(hir > 2 * no_relabel);
  // The k-way contrast over all instructions works as well.
  config.mode = hir_mode::hindsight;
  config.contrast = prefopt::hir_contrast::k_way;
  CHECK(success_after(task, config, rounds) > 2 * successes_only);
}

TEST_CASE("hindsight relabeling trains on the instruction each response achieved",
          "[alignment][hir]") {
  // One round with a single response per goal: afterwards every response y is more likely under
  // its own goal outcome(y) than before, whichever instruction it was sampled for.
  std::vector<prefopt::index_t> outcome{0, 1, 2};
  const goal_task task(outcome, 3, prefopt::vector_d::Constant(3, 1.0 / 3));
  hir_config config;
  config.batch_size = 32;
  config.updates_per_round = 1;
  const prefopt::tabular_hir hir(config);
  auto state = hir.init(task);
  hir.step(task, state);
  prefopt::vector_d p(3);
  for (prefopt::index_t g = 0; g < 3; ++g) {
    state.policy().probabilities(g, p);
    CHECK(p[g] > 1.0 / 3);
  }
}

TEST_CASE("goal tasks and HIR reject bad input by name", "[alignment][hir]") {
  std::vector<prefopt::index_t> outcome{0, 3};
  CHECK_THROWS_WITH(goal_task(outcome, 2, prefopt::vector_d::Constant(2, 0.5)),
                    Catch::Contains("outcome[1] = 3"));
  outcome = {0, 1};
  CHECK_THROWS_WITH(goal_task(outcome, 2, prefopt::vector_d::Constant(2, 0.4)),
                    Catch::Contains("reference sums to 0.8"));
  hir_config c;
  c.eps_ls = 0.7;
  CHECK_THROWS_WITH(prefopt::tabular_hir(c), Catch::Contains("eps_ls = 0.7"));
}
