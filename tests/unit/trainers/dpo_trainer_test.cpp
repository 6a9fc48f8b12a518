// The generic DPO-family trainer on a model only the tests define (the bigram network): the
// minibatch loss's gradient against central differences for several variants, offline training
// raises the chosen margin, the dataset's reference columns are used when present, online training
// with a judge raises the judge's win rate against the reference, determinism, bad configs named,
// and a non-finite loss ending the run as diverged.
#include "prefopt/solvers/dpo_trainer.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "prefopt/sequence/evaluation.hpp"
#include "prefopt/sequence/quality_task.hpp"
#include "prefopt/solvers/common/run.hpp"
#include "trainer_models.hpp"

namespace {
using index_t = prefopt::index_t;
using prefopt::sequence_batch;
using prefopt::vector_d;
using dpo_model = prefopt::test::bigram_model<double, false>;

prefopt::length_biased_quality_task dpo_test_task() {
  prefopt::quality_task_config c;
  c.content_tokens = 3;
  c.num_prompts = 6;
  c.prompt_length = 1;
  c.quality_scale = 1.5;
  c.length_bonus = 0.3;
  c.seed = 5;
  return prefopt::length_biased_quality_task::random(c);
}

prefopt::generation_config dpo_test_generation() {
  prefopt::generation_config g;
  g.max_new_tokens = 4;
  return g;
}

dpo_model dpo_test_reference() {
  return dpo_model(4, 3, 3, /*seed=*/21, /*scale=*/0.5);
}

template <class Variant>
double dpo_fd_loss(const prefopt::losses::dpo_loss<Variant>& loss, const dpo_model& m,
                   const prefopt::data::preference_batch& b, const vector_d& r_w,
                   const vector_d& r_l, vector_d& gradient) {
  const sequence_batch chosen{b.prompts.view(), b.chosen.view()};
  const sequence_batch rejected{b.prompts.view(), b.rejected.view()};
  return prefopt::dpo_minibatch_loss(loss, m, chosen, rejected, r_w, r_l, gradient).loss;
}

}  // namespace

TEMPLATE_TEST_CASE("dpo_minibatch_loss: the gradient matches central differences", "[trainers]",
                   prefopt::losses::dpo_variant::sigmoid, prefopt::losses::dpo_variant::ipo,
                   prefopt::losses::dpo_variant::robust, prefopt::losses::dpo_variant::simpo,
                   prefopt::losses::dpo_variant::label_smoothed) {
  const auto task = dpo_test_task();
  const dpo_model reference = dpo_test_reference();
  const auto pairs = prefopt::test::judged_dataset(reference, task.judge(), task.prompts(), 8,
                                                   dpo_test_generation(), 3);
  std::vector<index_t> all{0, 1, 2, 3, 4, 5, 6, 7};
  const auto b = pairs.batch(all);
  // The policy is another network, so the log-ratios are not zero.
  dpo_model policy(4, 3, 3, /*seed=*/99, /*scale=*/0.7);
  vector_d r_w(8), r_l(8);
  prefopt::sequence_log_probs(reference, {b.prompts.view(), b.chosen.view()}, r_w);
  prefopt::sequence_log_probs(reference, {b.prompts.view(), b.rejected.view()}, r_l);
  for (const bool average : {false, true}) {
    prefopt::losses::dpo_config c;
    c.beta_dpo = 0.7;
    c.length_average = average;
    c.eps_ls = 0.2;
    c.gamma_simpo = 0.3;
    const prefopt::losses::dpo_loss<TestType> loss(c);
    vector_d g = vector_d::Zero(policy.num_parameters());
    vector_d scratch(policy.num_parameters());
    dpo_fd_loss(loss, policy, b, r_w, r_l, g);
    REQUIRE(g.norm() > 1e-3);  // a real signal
    vector_d theta = policy.parameters();
    const vector_d fd = prefopt::test::trainer_central_differences(theta, [&] {
      policy.parameters() = theta;
      scratch.setZero();
      return dpo_fd_loss(loss, policy, b, r_w, r_l, scratch);
    });
    policy.parameters() = theta;
    CHECK((g - fd).lpNorm<Eigen::Infinity>() < 1e-7 * (1.0 + fd.lpNorm<Eigen::Infinity>()));
  }
}

TEST_CASE("dpo_trainer offline: the loss starts at log 2 and falls, the chosen margin grows",
          "[trainers]") {
  const auto task = dpo_test_task();
  const dpo_model reference = dpo_test_reference();
  const auto pairs = prefopt::test::judged_dataset(reference, task.judge(), task.prompts(), 96,
                                                   dpo_test_generation(), 4);
  const auto problem = prefopt::make_sequence_problem(reference, pairs, pairs.prompts().view());
  prefopt::dpo_trainer_config c;
  c.loss.beta_dpo = 0.5;
  c.batch_size = 16;
  c.optimizer.learning_rate = 0.05;
  const prefopt::sequence_dpo solver(c);
  auto s = solver.init(problem);
  const auto first = solver.step(problem, s);
  CHECK(first.loss == Approx(std::log(2.0)).epsilon(1e-12));
  CHECK(first.rewards_margins == Approx(0.0).margin(1e-12));
  const auto result = prefopt::run_from(solver, problem, std::move(s), {60});
  REQUIRE(result.status == prefopt::run_status::completed);
  CHECK(result.state.iteration() == 61);

  // On the whole dataset: the loss of the trained policy is well below log 2.
  std::vector<index_t> all(96);
  for (index_t i = 0; i < 96; ++i) all[static_cast<std::size_t>(i)] = i;
  const auto b = pairs.batch(all);
  vector_d g = vector_d::Zero(reference.num_parameters());
  const auto after = prefopt::dpo_minibatch_loss(
      solver.loss(), result.state.policy(), {b.prompts.view(), b.chosen.view()},
      {b.prompts.view(), b.rejected.view()}, result.state.reference_chosen(),
      result.state.reference_rejected(), g);
  CHECK(after.loss < 0.9 * std::log(2.0));
  CHECK(after.rewards_margins > 0.1);
  CHECK(after.rewards_accuracies >
        0.5);  // noisy labels and a bigram policy: margins, not all pairs
}

TEST_CASE("dpo_trainer offline: reference sums come from the dataset's columns when present",
          "[trainers]") {
  const auto task = dpo_test_task();
  const dpo_model reference = dpo_test_reference();
  auto pairs = prefopt::test::judged_dataset(reference, task.judge(), task.prompts(), 12,
                                             dpo_test_generation(), 6);
  const prefopt::sequence_dpo solver;
  {  // computed once with the reference
    const auto problem = prefopt::make_sequence_problem(reference, pairs, pairs.prompts().view());
    const auto s = solver.init(problem);
    vector_d r_w(12);
    prefopt::sequence_log_probs(reference, {pairs.prompts().view(), pairs.chosen().view()}, r_w);
    CHECK(s.reference_chosen() == r_w);
  }
  // Columns from elsewhere (e.g. the log-prob cache) win over the reference model.
  std::vector<double> w(12), l(12);
  for (std::size_t i = 0; i < 12; ++i) {
    w[i] = -1.0 - 0.1 * static_cast<double>(i);
    l[i] = -2.0 - 0.1 * static_cast<double>(i);
  }
  pairs.set_sequence_logps(prefopt::data::logprob_column::reference_chosen, w);
  pairs.set_sequence_logps(prefopt::data::logprob_column::reference_rejected, l);
  const auto problem = prefopt::make_sequence_problem(reference, pairs, pairs.prompts().view());
  const auto s = solver.init(problem);
  for (index_t i = 0; i < 12; ++i) {
    CHECK(s.reference_chosen()(i) == w[static_cast<std::size_t>(i)]);
    CHECK(s.reference_rejected()(i) == l[static_cast<std::size_t>(i)]);
  }
}

TEST_CASE("dpo_trainer online: pairs from the policy and the judge raise the win rate",
          "[trainers]") {
  const auto task = dpo_test_task();
  const dpo_model reference = dpo_test_reference();
  const auto judge = task.judge();
  const auto problem =
      prefopt::make_sequence_problem(reference, judge, task.prompts(), dpo_test_generation());
  prefopt::dpo_trainer_config c;
  c.loss.beta_dpo = 0.5;
  c.batch_size = 16;
  c.seed = 8;
  const prefopt::sequence_dpo solver(c);
  const auto result = prefopt::run(solver, problem, {50});
  REQUIRE(result.status == prefopt::run_status::completed);
  // Many prompts: each task prompt repeated.
  prefopt::data::ragged_buffer<prefopt::token_id> many;
  for (index_t r = 0; r < 100; ++r) {
    for (index_t i = 0; i < task.prompts().num_sequences(); ++i) {
      many.push_back(task.prompts().sequence(i));
    }
  }
  const auto wr = prefopt::win_rate(result.state.policy(), reference, judge, many.view(),
                                    dpo_test_generation(), 77);
  CHECK(wr.lower > 0.55);
}

TEST_CASE("dpo_trainer is deterministic for a seed, offline and online", "[trainers]") {
  const auto task = dpo_test_task();
  const dpo_model reference = dpo_test_reference();
  const auto judge = task.judge();
  const auto pairs =
      prefopt::test::judged_dataset(reference, judge, task.prompts(), 40, dpo_test_generation(), 9);
  const auto offline = prefopt::make_sequence_problem(reference, pairs, pairs.prompts().view());
  const auto online =
      prefopt::make_sequence_problem(reference, judge, task.prompts(), dpo_test_generation());
  prefopt::dpo_trainer_config c;
  c.batch_size = 8;
  c.seed = 3;
  prefopt::dpo_trainer_config other = c;
  other.seed = 4;
  const prefopt::sequence_ipo a(c), b(other);
  const auto off1 = prefopt::run(a, offline, {7});
  const auto off2 = prefopt::run(a, offline, {7});
  const auto off3 = prefopt::run(b, offline, {7});
  CHECK(off1.state.policy().parameters() == off2.state.policy().parameters());
  CHECK(off1.state.policy().parameters() != off3.state.policy().parameters());
  const auto on1 = prefopt::run(a, online, {7});
  const auto on2 = prefopt::run(a, online, {7});
  const auto on3 = prefopt::run(b, online, {7});
  CHECK(on1.state.policy().parameters() == on2.state.policy().parameters());
  CHECK(on1.state.policy().parameters() != on3.state.policy().parameters());
}

TEST_CASE("dpo_trainer: a bad config names the field", "[trainers]") {
  prefopt::dpo_trainer_config c;
  c.batch_size = 0;
  CHECK_THROWS_AS(prefopt::sequence_dpo(c), prefopt::invalid_argument);
  CHECK_THROWS_WITH(prefopt::sequence_dpo(c),
                    Catch::Contains("dpo_trainer: config.batch_size = 0, expected > 0"));
  c = {};
  c.optimizer.learning_rate = -1.0;
  CHECK_THROWS_WITH(prefopt::sequence_dpo(c), Catch::Contains("optimizer.learning_rate = -1"));
  c = {};
  c.loss.beta_dpo = 0.0;
  CHECK_THROWS_WITH(prefopt::sequence_dpo(c), Catch::Contains("beta_dpo"));
  c = {};
  c.scoring.temperature = 0.5;
  CHECK_THROWS_WITH(prefopt::sequence_dpo(c), Catch::Contains("config.scoring.temperature"));
  c = {};
  c.loss.eps_ls = 0.7;
  CHECK_THROWS_WITH(prefopt::sequence_robust_dpo(c), Catch::Contains("eps_ls"));
}

TEST_CASE("dpo_trainer: a non-finite loss ends the run as diverged, the policy untouched",
          "[trainers]") {
  const auto task = dpo_test_task();
  const dpo_model reference = dpo_test_reference();
  const auto pairs = prefopt::test::judged_dataset(reference, task.judge(), task.prompts(), 16,
                                                   dpo_test_generation(), 10);
  const auto problem = prefopt::make_sequence_problem(reference, pairs, pairs.prompts().view());
  prefopt::dpo_trainer_config c;
  c.loss.beta_dpo = 1e-300;  // IPO's target 1 / (2 beta_dpo) squared overflows
  c.batch_size = 4;
  const prefopt::sequence_ipo solver(c);
  const auto result = prefopt::run(solver, problem, {20});
  CHECK(result.status == prefopt::run_status::diverged);
  CHECK(result.iterations == 1);
  CHECK_THAT(result.message, Catch::Contains("loss is inf"));
  CHECK(result.state.policy().parameters() == reference.parameters());
}
