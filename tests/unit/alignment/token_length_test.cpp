// Token-level direct alignment and the length claim of issue 6: with length-biased preferences,
// DPO increases the expected length more than length-averaged DPO at comparable strength
// (matched KL(pi, mu)); Grinsztajn et al. 2024, arXiv 2406.19188.

#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "prefopt/diagnostics/length_bias.hpp"
#include "prefopt/solvers/common/sequence_problem.hpp"
#include "prefopt/solvers/dpo_trainer.hpp"
#include "support/laws.hpp"

using prefopt::length_bias_sweep_config;
using prefopt::token_preference_task;
using prefopt::vector_d;

namespace {
/// The task as `dpo_trainer` sees it: mu as a sequence model, the judge, one empty prompt.
struct token_problem {
  explicit token_problem(const token_preference_task& task)
      : reference(task.reference_model()), judge(task.judge()) {
    prefopt::generation_config sampling;
    sampling.max_new_tokens = task.max_length();
    problem = prefopt::make_sequence_problem(reference, judge, task.prompts(), sampling);
  }
  token_problem(const token_problem&) = delete;
  token_problem& operator=(const token_problem&) = delete;

  prefopt::positional_sequence_model reference;
  token_preference_task::judge_model judge;
  prefopt::sequence_problem<prefopt::positional_sequence_model, token_preference_task::judge_model>
      problem;
};
}  // namespace

TEST_CASE("token DPO: the judge's preferred responses gain probability and the loss falls",
          "[alignment][token]") {
  // No length bias, one clearly better token: DPO must move mass onto it.
  const token_preference_task task(vector_d::LinSpaced(3, -1.0, 1.0), 0.0, 5, 0.3);
  const token_problem tp(task);
  prefopt::dpo_trainer_config c;
  c.source = prefopt::pair_source::offline;
  c.batch_size = 64;
  c.loss.beta_dpo = 0.5;
  c.seed = 4;
  const prefopt::sequence_dpo solver(c);
  auto s = solver.init(tp.problem);
  CHECK(s.drawn_pairs().size() == c.dataset_size);
  const double first = solver.step(tp.problem, s).loss;
  double last = first;
  for (int t = 0; t < 300; ++t) last = solver.step(tp.problem, s).loss;
  CHECK(last < first);
  const prefopt::token_softmax_policy& pi = s.policy().policy();
  vector_d p(4);
  pi.probabilities(0, p);
  CHECK(p(2) > 0.5);  // the best content token (reference: 0.7 / 3)
  CHECK(task.expected_gold_reward(pi) > task.expected_gold_reward(task.reference()) + 0.3);
  CHECK(s.iteration() == 301);
}

TEST_CASE("token DPO is deterministic for a seed, online and offline", "[alignment][token]") {
  prefopt::token_task_config tc;
  tc.seed = 3;
  const auto task = token_preference_task::random(tc);
  const token_problem tp(task);
  for (const auto source : {prefopt::pair_source::offline, prefopt::pair_source::online}) {
    prefopt::dpo_trainer_config c;
    c.source = source;
    c.dataset_size = 512;
    c.seed = 9;
    c.loss.length_average = true;
    const prefopt::sequence_dpo solver(c);
    auto a = solver.init(tp.problem);
    auto b = solver.init(tp.problem);
    CHECK(a.drawn_pairs().size() == (source == prefopt::pair_source::offline ? 512 : 0));
    for (int t = 0; t < 20; ++t) {
      (void)solver.step(tp.problem, a);
      (void)solver.step(tp.problem, b);
    }
    CHECK((a.policy().parameters() - b.policy().parameters()).cwiseAbs().maxCoeff() == 0.0);
    // Control: another seed draws other pairs, hence other parameters.
    c.seed = 10;
    const prefopt::sequence_dpo other(c);
    auto d = other.init(tp.problem);
    for (int t = 0; t < 20; ++t) (void)other.step(tp.problem, d);
    CHECK((a.policy().parameters() - d.policy().parameters()).cwiseAbs().maxCoeff() > 1e-6);
  }
}

TEST_CASE("the task's judge is its preference on each pair", "[alignment][token]") {
  const token_preference_task task(vector_d::LinSpaced(3, -1.0, 1.0), 0.2, 5, 0.3);
  const std::vector<prefopt::index_t> po{0, 0, 0}, ao{0, 2, 3}, bo{0, 1, 4};
  const std::vector<prefopt::token_id> a{2, 3, 3}, b{3, 0, 1, 3};
  const prefopt::sequence_batch first{{po, {}}, {ao, a}}, second{{po, {}}, {bo, b}};
  vector_d out(2);
  task.judge().preference({first, second}, out);
  CHECK(out(0) == task.preference(std::span(a).first(2), std::span(b).first(1)));
  CHECK(out(1) == task.preference(std::span(a).last(1), std::span(b).last(3)));
  CHECK(out(0) > 0.5);  // [best token, eos] beats [eos]
}

TEST_CASE("token DPO rejects bad configurations by name", "[alignment][token]") {
  using prefopt::test::contains;
  prefopt::dpo_trainer_config c;
  c.batch_size = 0;
  CHECK_THROWS_WITH(prefopt::sequence_dpo(c), contains("dpo_trainer: config.batch_size = 0"));
  c = {};
  c.loss.beta_dpo = -1.0;
  CHECK_THROWS_WITH(prefopt::sequence_dpo(c), contains("beta_dpo"));
  length_bias_sweep_config s;
  s.betas = {1.0, 0.0};
  CHECK_THROWS_WITH(prefopt::run_length_bias_sweep(s), contains("betas[1] = 0"));
}

TEST_CASE(
    "with length-biased preferences DPO lengthens responses more than length-averaged DPO "
    "at matched KL",
    "[alignment][token][length]") {
  // Three independently drawn tasks (token qualities from the seed, centred, length bonus 0.5);
  // the default sweep (beta 0.5 .. 32, 1000 Adam steps on 8192 pairs from mu) on each.
  for (const std::uint64_t seed : {1u, 2u, 3u}) {
    length_bias_sweep_config config;
    config.task.seed = seed;
    const auto result = prefopt::run_length_bias_sweep(config);
    INFO("seed " << seed << ", mu expected length " << result.reference_length);
    for (const auto& p : result.points) {
      INFO((p.length_average ? "averaged" : "dpo")
           << " beta " << p.beta << ": KL " << p.kl << ", length " << p.length);
      // Both variants follow the length-biased judge: longer than mu once they move at all.
      if (p.kl >= 0.05) CHECK(p.length > result.reference_length + 0.1);
    }
    REQUIRE(result.matched.size() >= 3);
    for (const auto& m : result.matched) {
      INFO("KL " << m.kl << ": DPO " << m.length_dpo << ", averaged " << m.length_averaged);
      CHECK(m.length_dpo > m.length_averaged);
      if (m.kl >= 0.1) CHECK(m.length_dpo > m.length_averaged + 0.1);
    }
  }
}

TEST_CASE("interpolate_length_at_kl is linear inside the curve and refuses outside",
          "[alignment][token]") {
  double v = 0.0;
  CHECK(prefopt::interpolate_length_at_kl({{1.0, 4.0}, {0.0, 2.0}}, 0.25, v));
  CHECK(v == Approx(2.5));
  CHECK_FALSE(prefopt::interpolate_length_at_kl({{1.0, 4.0}, {0.0, 2.0}}, 1.5, v));
}
