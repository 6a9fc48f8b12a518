// Reward modelling for any DifferentiableRewardModel: on pairs labelled by a known Bradley-Terry
// score, the fitted model's held-out accuracy is well above chance and it ranks held-out pairs as
// the true score does; the minibatch loss's gradient matches central differences; determinism; bad
// configs named; non-finite parameters end the run as diverged.
#include "prefopt/solvers/reward_modeling.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include "prefopt/sequence/quality_task.hpp"
#include "prefopt/solvers/common/run.hpp"
#include "trainer_models.hpp"

namespace {
using index_t = prefopt::index_t;
using prefopt::vector_d;
using rm_model = prefopt::test::bag_reward_model<double>;
using rm_policy = prefopt::test::bigram_model<double, false>;

prefopt::length_biased_quality_task rm_test_task() {
  prefopt::quality_task_config c;
  c.content_tokens = 3;
  c.num_prompts = 6;
  c.prompt_length = 1;
  c.quality_scale = 3.0;
  c.length_bonus = 0.3;
  c.seed = 12;
  return prefopt::length_biased_quality_task::random(c);
}

prefopt::data::preference_dataset rm_test_pairs(const prefopt::length_biased_quality_task& task,
                                                index_t n, std::uint64_t seed) {
  const rm_policy sampler(4, 3, 3, /*seed=*/31, /*scale=*/0.3);
  prefopt::generation_config g;
  g.max_new_tokens = 4;
  return prefopt::test::judged_dataset(sampler, task.judge(), task.prompts(), n, g, seed);
}

/// The raters' score s = r + length_bonus * n of the chosen and rejected responses.
void rm_true_scores(const prefopt::length_biased_quality_task& task,
                    const prefopt::data::preference_batch& b, vector_d& s_w, vector_d& s_l) {
  s_w.resize(b.size());
  s_l.resize(b.size());
  const auto gold = task.gold_reward();
  gold.reward({b.prompts.view(), b.chosen.view()}, s_w);
  gold.reward({b.prompts.view(), b.rejected.view()}, s_l);
  for (index_t i = 0; i < b.size(); ++i) {
    for (const auto* y : {&b.chosen, &b.rejected}) {
      index_t content = 0;
      for (const auto t : (*y)[i]) {
        if (t == task.eos()) break;
        ++content;
      }
      (y == &b.chosen ? s_w : s_l)(i) += task.length_bonus() * static_cast<double>(content);
    }
  }
}
}  // namespace

TEST_CASE("reward_modeling: held-out accuracy well above chance on a known Bradley-Terry score",
          "[trainers]") {
  const auto task = rm_test_task();
  const auto pairs = rm_test_pairs(task, 600, 1);
  const rm_model initial(4, 3, /*seed=*/2);
  const auto problem = prefopt::make_reward_modeling_problem(initial, pairs);
  prefopt::reward_modeling_config c;
  c.batch_size = 32;
  c.validation_fraction = 0.25;
  c.eval_every = 10;
  c.optimizer.learning_rate = 0.05;
  const prefopt::reward_modeling solver(c);
  auto s = solver.init(problem);
  REQUIRE(s.held_out_records().size() == 150);
  REQUIRE(s.training_records().size() == 450);
  prefopt::reward_modeling_stats first = solver.step(problem, s), last = first;
  for (int t = 1; t < 200; ++t) last = solver.step(problem, s);
  INFO("eval accuracy " << first.eval_accuracy << " -> " << last.eval_accuracy);
  CHECK(last.eval_loss < first.eval_loss);
  CHECK(last.eval_accuracy > 0.65);
  // Against the noise-free order of the raters' score (the labels are Bernoulli draws).
  const auto held = pairs.batch(s.held_out_records());
  vector_d s_w, s_l, r_w(held.size()), r_l(held.size());
  rm_true_scores(task, held, s_w, s_l);
  s.model().reward({held.prompts.view(), held.chosen.view()}, r_w);
  s.model().reward({held.prompts.view(), held.rejected.view()}, r_l);
  index_t agree = 0, decided = 0;
  for (index_t i = 0; i < held.size(); ++i) {
    if (std::abs(s_w(i) - s_l(i)) < 1e-9) continue;
    ++decided;
    agree += ((s_w(i) > s_l(i)) == (r_w(i) > r_l(i))) ? 1 : 0;
  }
  const double agreement = static_cast<double>(agree) / static_cast<double>(decided);
  // The best any model can do on these labels: the true score's own held-out accuracy.
  index_t bayes = 0;
  for (index_t i = 0; i < held.size(); ++i) bayes += s_w(i) > s_l(i) ? 1 : 0;
  const double bayes_accuracy = static_cast<double>(bayes) / static_cast<double>(held.size());
  INFO("agreement with the true score order " << agreement << " over " << decided
                                              << "; the true score's accuracy " << bayes_accuracy);
  CHECK(agreement > 0.8);
  CHECK(last.eval_accuracy > bayes_accuracy - 0.08);
  const auto e = prefopt::evaluate_reward_model(s.model(), pairs, s.held_out_records());
  CHECK(e.accuracy == last.eval_accuracy);
}

TEST_CASE("reward_modeling_minibatch_loss: the gradient matches central differences",
          "[trainers]") {
  const auto task = rm_test_task();
  const auto pairs = rm_test_pairs(task, 10, 2);
  std::vector<index_t> all{0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  const auto b = pairs.batch(all);
  const prefopt::sequence_batch chosen{b.prompts.view(), b.chosen.view()};
  const prefopt::sequence_batch rejected{b.prompts.view(), b.rejected.view()};
  rm_model m(4, 3, /*seed=*/5, /*scale=*/0.8);
  vector_d g = vector_d::Zero(m.num_parameters()), scratch(m.num_parameters());
  (void)prefopt::reward_modeling_minibatch_loss(m, chosen, rejected, g, 0.05);
  REQUIRE(g.norm() > 1e-3);
  vector_d theta = m.parameters();
  const vector_d fd = prefopt::test::trainer_central_differences(theta, [&] {
    m.parameters() = theta;
    scratch.setZero();
    return prefopt::reward_modeling_minibatch_loss(m, chosen, rejected, scratch, 0.05).loss;
  });
  CHECK((g - fd).lpNorm<Eigen::Infinity>() < 1e-8);
}

TEST_CASE("reward_modeling is deterministic for a seed, in float and double", "[trainers]") {
  const auto task = rm_test_task();
  const auto pairs = prefopt::data::preference_dataset(rm_test_pairs(task, 80, 3));
  prefopt::reward_modeling_config c;
  c.batch_size = 8;
  c.seed = 1;
  const prefopt::reward_modeling solver(c);
  c.seed = 2;
  const prefopt::reward_modeling other(c);
  const rm_model d(4, 3, 7);
  const prefopt::test::bag_reward_model<float> f(4, 3, 7);
  const auto pd = prefopt::make_reward_modeling_problem(d, pairs);
  const auto pf = prefopt::make_reward_modeling_problem(f, pairs);
  const auto d1 = prefopt::run(solver, pd, {15});
  const auto d2 = prefopt::run(solver, pd, {15});
  const auto d3 = prefopt::run(other, pd, {15});
  CHECK(d1.state.model().parameters() == d2.state.model().parameters());
  CHECK(d1.state.model().parameters() != d3.state.model().parameters());
  const auto f1 = prefopt::run(solver, pf, {15});
  const auto f2 = prefopt::run(solver, pf, {15});
  CHECK(f1.state.model().parameters() == f2.state.model().parameters());
  // float follows double up to rounding.
  CHECK((f1.state.model().parameters().cast<double>() - d1.state.model().parameters())
            .lpNorm<Eigen::Infinity>() < 1e-4);
}

TEST_CASE("reward_modeling: bad configs and problems are named", "[trainers]") {
  prefopt::reward_modeling_config c;
  c.validation_fraction = 1.0;
  CHECK_THROWS_WITH(prefopt::reward_modeling(c),
                    Catch::Contains("reward_modeling: config.validation_fraction = 1"));
  c = {};
  c.batch_size = -2;
  CHECK_THROWS_WITH(prefopt::reward_modeling(c), Catch::Contains("config.batch_size = -2"));
  c = {};
  c.c_center = -1.0;
  CHECK_THROWS_WITH(prefopt::reward_modeling(c), Catch::Contains("config.c_center"));
  const rm_model m(4, 3, 1);
  prefopt::data::preference_dataset empty;
  CHECK_THROWS_WITH(
      prefopt::reward_modeling().init(prefopt::make_reward_modeling_problem(m, empty)),
      Catch::Contains("problem.pairs has 0 records"));
}

TEST_CASE("reward_modeling: a non-finite model ends the run as diverged", "[trainers]") {
  const auto task = rm_test_task();
  const auto pairs = rm_test_pairs(task, 20, 4);
  rm_model m(4, 3, 1);
  m.parameters()(0) = std::numeric_limits<double>::quiet_NaN();
  const auto result = prefopt::run(prefopt::reward_modeling(),
                                   prefopt::make_reward_modeling_problem(m, pairs), {5});
  CHECK(result.status == prefopt::run_status::diverged);
  CHECK(result.iterations == 1);
  CHECK_THAT(result.message, Catch::Contains("model parameter 0 is nan"));
}
