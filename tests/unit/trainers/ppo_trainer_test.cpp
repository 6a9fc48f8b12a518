// RLHF-PPO for any SequenceModel, RewardModel and ValueModel: the gold reward of the
// length-biased quality task rises under PPO with a critic only the tests define; the minibatch
// loss (policy + value) matches central differences in both parameter vectors; the KL penalties,
// the adaptive controller and the missing-eos penalty act as documented; determinism; bad configs
// named; a non-finite critic ends the run as diverged.
#include "prefopt/solvers/ppo_trainer.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "prefopt/sequence/evaluation.hpp"
#include "prefopt/sequence/quality_task.hpp"
#include "prefopt/solvers/common/run.hpp"
#include "trainer_models.hpp"

namespace {
using index_t = prefopt::index_t;
using prefopt::vector_d;
using ppo_policy_model = prefopt::test::bigram_model<double, false>;
using ppo_critic_model = prefopt::test::table_critic<double>;

prefopt::length_biased_quality_task ppo_test_task() {
  prefopt::quality_task_config c;
  c.content_tokens = 3;
  c.num_prompts = 6;
  c.prompt_length = 1;
  c.quality_scale = 1.5;
  c.length_bonus = 0.0;
  c.seed = 23;
  return prefopt::length_biased_quality_task::random(c);
}

prefopt::generation_config ppo_test_generation() {
  prefopt::generation_config g;
  g.max_new_tokens = 4;
  return g;
}

prefopt::ppo_trainer_config ppo_test_config() {
  prefopt::ppo_trainer_config c;
  c.rollout_batch_size = 16;
  c.ppo_epochs = 2;
  c.num_minibatches = 2;
  c.kl_coef = 0.02;
  c.optimizer.learning_rate = 0.03;
  c.value_optimizer.learning_rate = 0.05;
  return c;
}

prefopt::data::ragged_buffer<prefopt::token_id> ppo_many_prompts(
    const prefopt::length_biased_quality_task& task, index_t copies) {
  prefopt::data::ragged_buffer<prefopt::token_id> many;
  for (index_t r = 0; r < copies; ++r) {
    for (index_t i = 0; i < task.prompts().num_sequences(); ++i) {
      many.push_back(task.prompts().sequence(i));
    }
  }
  return many;
}
struct ppo_score_log {
  std::vector<double>* out;
  template <class E>
  void on_step(const E& e) {
    out->push_back(e.stats.scores);
  }
};
struct ppo_min_kl {
  double* out;
  template <class E>
  void on_step(const E& e) {
    *out = std::min(*out, e.stats.kl);
  }
};
}  // namespace

TEST_CASE("ppo_trainer raises the gold reward of the quality task", "[trainers]") {
  const auto task = ppo_test_task();
  const ppo_policy_model reference(4, 3, 3, /*seed=*/41, /*scale=*/0.5);
  const ppo_critic_model critic(4, 4, /*seed=*/1);
  const auto gold = task.gold_reward();
  const auto feedback = prefopt::make_rlhf_feedback(gold, critic);
  const auto problem =
      prefopt::make_sequence_problem(reference, feedback, task.prompts(), ppo_test_generation());
  const prefopt::ppo_trainer solver(ppo_test_config());
  std::vector<double> scores;
  ppo_score_log log{&scores};
  const auto result = prefopt::run(solver, problem, {40}, log);
  REQUIRE(result.status == prefopt::run_status::completed);
  const auto many = ppo_many_prompts(task, 100);
  const auto before =
      prefopt::expected_reward(reference, gold, many.view(), ppo_test_generation(), 5);
  const auto after =
      prefopt::expected_reward(result.state.policy(), gold, many.view(), ppo_test_generation(), 5);
  INFO("expected gold reward " << before.mean << " -> " << after.mean);
  CHECK(after.lower > before.upper + 0.3);
  // The logged objective/scores rise too (first five steps against the last five).
  double early = 0.0, late = 0.0;
  for (std::size_t k = 0; k < 5; ++k) {
    early += scores[k];
    late += scores[scores.size() - 1 - k];
  }
  CHECK(late > early);
}

TEST_CASE("ppo_minibatch_loss: policy and critic gradients match central differences",
          "[trainers]") {
  const auto task = ppo_test_task();
  const ppo_policy_model reference(4, 3, 3, /*seed=*/41, /*scale=*/0.5);
  const auto roll = prefopt::generate(reference, task.prompts(), ppo_test_generation(), 3);
  const auto batch = roll.batch();
  const index_t n = batch.responses.total_length();
  ppo_policy_model policy(4, 3, 3, /*seed=*/42, /*scale=*/0.5);
  ppo_critic_model critic(4, 4, /*seed=*/2, /*scale=*/0.5);
  vector_d old_lp(n), old_v(n), adv(n), ret(n);
  prefopt::token_log_probs(policy, batch, old_lp);
  critic.values(batch, old_v);
  prefopt::rng gen(9, 1);
  for (index_t k = 0; k < n; ++k) {
    old_lp(k) += 0.4 * gen.normal();  // some ratios outside [0.8, 1.2]: clipped tokens
    old_v(k) += 0.3 * gen.normal();
    adv(k) = gen.normal();
    ret(k) = gen.normal();
  }
  const auto sp = [n](const vector_d& x) {
    return std::span<const double>(x.data(), static_cast<std::size_t>(n));
  };
  const prefopt::ppo_minibatch mb{batch, sp(old_lp), sp(old_v), sp(adv), sp(ret)};
  constexpr double vf_coef = 0.7;
  vector_d gp = vector_d::Zero(policy.num_parameters()),
           gc = vector_d::Zero(critic.num_parameters());
  const auto st = prefopt::ppo_minibatch_loss(policy, critic, mb, 0.2, 0.2, vf_coef, gp, gc);
  INFO("clipfrac " << st.clipfrac << ", value clipfrac " << st.value_clipfrac);
  CHECK(st.clipfrac > 0.0);
  CHECK(st.clipfrac < 1.0);
  CHECK(st.loss == Approx(st.policy_loss + vf_coef * st.value_loss).epsilon(1e-14));
  REQUIRE(gp.norm() > 1e-3);
  REQUIRE(gc.norm() > 1e-3);
  vector_d sgp(gp.size()), sgc(gc.size());
  auto loss = [&] {
    sgp.setZero();
    sgc.setZero();
    return prefopt::ppo_minibatch_loss(policy, critic, mb, 0.2, 0.2, vf_coef, sgp, sgc).loss;
  };
  vector_d tp = policy.parameters();
  const vector_d fdp = prefopt::test::trainer_central_differences(tp, [&] {
    policy.parameters() = tp;
    return loss();
  });
  policy.parameters() = tp;
  vector_d tc = critic.parameters();
  const vector_d fdc = prefopt::test::trainer_central_differences(tc, [&] {
    critic.parameters() = tc;
    return loss();
  });
  critic.parameters() = tc;
  CHECK((gp - fdp).lpNorm<Eigen::Infinity>() < 1e-7);
  CHECK((gc - fdc).lpNorm<Eigen::Infinity>() < 1e-7);
}

TEST_CASE("ppo_trainer: KL penalties, the adaptive controller and the missing-eos penalty",
          "[trainers]") {
  const auto task = ppo_test_task();
  const ppo_policy_model reference(4, 3, 3, /*seed=*/41, /*scale=*/0.5);
  const ppo_critic_model critic(4, 4, /*seed=*/1);
  const auto gold = task.gold_reward();
  const auto feedback = prefopt::make_rlhf_feedback(gold, critic);
  const auto problem =
      prefopt::make_sequence_problem(reference, feedback, task.prompts(), ppo_test_generation());
  SECTION("the first step's rollout is the reference's: every KL is 0") {
    for (const auto kl : {prefopt::ppo_kl_penalty::k1, prefopt::ppo_kl_penalty::k3,
                          prefopt::ppo_kl_penalty::full}) {
      auto c = ppo_test_config();
      c.kl_penalty = kl;
      const prefopt::ppo_trainer solver(c);
      auto s = solver.init(problem);
      const auto first = solver.step(problem, s);
      CHECK(first.kl == Approx(0.0).margin(1e-12));
      CHECK(first.rlhf_reward == Approx(first.scores).margin(1e-12));
      const auto later = prefopt::run_from(solver, problem, std::move(s), {10});
      REQUIRE(later.status == prefopt::run_status::completed);
    }
  }
  SECTION("the exact KL is nonnegative and k3 is too; k1 may not be") {
    for (const auto kl : {prefopt::ppo_kl_penalty::k3, prefopt::ppo_kl_penalty::full}) {
      auto c = ppo_test_config();
      c.kl_penalty = kl;
      const prefopt::ppo_trainer solver(c);
      double smallest = 1.0;
      ppo_min_kl cb{&smallest};
      (void)prefopt::run(solver, problem, {8}, cb);
      CHECK(smallest >= 0.0);
    }
  }
  SECTION("the adaptive coefficient grows while the KL is above target") {
    auto c = ppo_test_config();
    c.adaptive_kl = true;
    c.kl_coef = 0.05;
    c.kl_target = 1e-6;
    c.kl_horizon = 16.0;  // gain n_steps / horizon = 1 per step
    const prefopt::ppo_trainer solver(c);
    const auto r = prefopt::run(solver, problem, {6});
    CHECK(r.state.kl_coef() > 0.05 * 1.1);
    c.adaptive_kl = false;
    CHECK(prefopt::run(prefopt::ppo_trainer(c), problem, {6}).state.kl_coef() == 0.05);
  }
  SECTION("the missing-eos penalty is subtracted from truncated responses' scores") {
    auto c = ppo_test_config();
    const prefopt::ppo_trainer plain(c);
    c.missing_eos_penalty = 10.0;
    const prefopt::ppo_trainer penalised(c);
    auto s1 = plain.init(problem);
    auto s2 = penalised.init(problem);
    const auto a = plain.step(problem, s1);
    const auto b = penalised.step(problem, s2);
    const double truncated = 16.0 - a.num_eos_tokens;
    REQUIRE(truncated > 0.0);
    CHECK(b.scores == Approx(a.scores - 10.0 * truncated / 16.0).epsilon(1e-12));
  }
}

TEST_CASE("ppo_trainer is deterministic for a seed", "[trainers]") {
  const auto task = ppo_test_task();
  const ppo_policy_model reference(4, 3, 3, /*seed=*/41, /*scale=*/0.5);
  const ppo_critic_model critic(4, 4, /*seed=*/1);
  const auto gold = task.gold_reward();
  const auto feedback = prefopt::make_rlhf_feedback(gold, critic);
  const auto problem =
      prefopt::make_sequence_problem(reference, feedback, task.prompts(), ppo_test_generation());
  auto c = ppo_test_config();
  const prefopt::ppo_trainer solver(c);
  c.seed = 1;
  const prefopt::ppo_trainer other(c);
  const auto r1 = prefopt::run(solver, problem, {5});
  const auto r2 = prefopt::run(solver, problem, {5});
  const auto r3 = prefopt::run(other, problem, {5});
  CHECK(r1.state.policy().parameters() == r2.state.policy().parameters());
  CHECK(r1.state.critic().parameters() == r2.state.critic().parameters());
  CHECK(r1.state.policy().parameters() != r3.state.policy().parameters());
}

TEST_CASE("ppo_trainer: a bad config names the field; a non-finite critic diverges", "[trainers]") {
  auto c = ppo_test_config();
  c.clip_range = -1.0;
  CHECK_THROWS_WITH(
      prefopt::ppo_trainer(c),
      Catch::Contains("ppo_trainer: config.clip_range = -1, expected a value in (0, 1)"));
  c = ppo_test_config();
  c.num_minibatches = 17;
  CHECK_THROWS_WITH(prefopt::ppo_trainer(c), Catch::Contains("config.num_minibatches = 17"));
  c = ppo_test_config();
  c.lambda = 1.5;
  CHECK_THROWS_WITH(prefopt::ppo_trainer(c), Catch::Contains("config.lambda = 1.5"));
  c = ppo_test_config();
  c.adaptive_kl = true;
  c.kl_coef = 0.0;
  CHECK_THROWS_WITH(prefopt::ppo_trainer(c), Catch::Contains("config.kl_coef = 0"));
  c = ppo_test_config();
  c.value_optimizer.learning_rate = 0.0;
  CHECK_THROWS_WITH(prefopt::ppo_trainer(c), Catch::Contains("optimizer.learning_rate = 0"));

  const auto task = ppo_test_task();
  const ppo_policy_model reference(4, 3, 3, /*seed=*/41, /*scale=*/0.5);
  ppo_critic_model critic(4, 4, /*seed=*/1);
  critic.parameters().setConstant(std::numeric_limits<double>::quiet_NaN());
  const auto gold = task.gold_reward();
  const auto feedback = prefopt::make_rlhf_feedback(gold, critic);
  const auto problem =
      prefopt::make_sequence_problem(reference, feedback, task.prompts(), ppo_test_generation());
  const auto r = prefopt::run(prefopt::ppo_trainer(ppo_test_config()), problem, {5});
  CHECK(r.status == prefopt::run_status::diverged);
  CHECK(r.iterations == 1);
  CHECK_THAT(r.message, Catch::Contains("loss is nan"));
}
