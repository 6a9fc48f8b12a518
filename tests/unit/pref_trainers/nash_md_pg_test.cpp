#include "prefopt/solvers/nash_md_pg.hpp"

#include <catch2/catch.hpp>

#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "../sequence/bigram_model.hpp"
#include "pref_helpers.hpp"
#include "prefopt/solvers/common/run.hpp"

using namespace prefopt;

namespace {
using nash_test_model = test::bigram_model<double, false>;

/// A policy different from the reference (so the KL terms are not zero).
nash_test_model nash_perturbed(const nash_test_model& m, std::uint64_t seed) {
  nash_test_model p = m;
  rng gen(seed, 3);
  for (prefopt::index_t k = 0; k < p.num_parameters(); ++k) p.parameters()(k) += 0.3 * gen.normal();
  return p;
}

/// Nash-MD-PG's class-level gaps at every `every` steps (index 0: the reference).
std::vector<double> nash_gap_curve(const nash_md_pg_config& c, std::uint64_t model_seed, long steps,
                                   long every) {
  test::class_task_fixture f;
  const nash_test_model ref(4, 4, 3, model_seed, 1.0);
  generation_config gen;
  gen.max_new_tokens = 2;
  const auto problem = make_sequence_problem(ref, f.judge, f.prompts(), gen);
  const nash_md_pg solver(c);
  auto state = solver.init(problem);
  std::vector<double> gaps{
      test::class_duality_gap(f.task, test::exact_class_distribution(ref, f.task, f.prompts(), 2))};
  for (long t = 1; t <= steps; ++t) {
    (void)solver.step(problem, state);
    if (t % every == 0) {
      gaps.push_back(test::class_duality_gap(
          f.task, test::exact_class_distribution(state.policy(), f.task, f.prompts(), 2)));
    }
  }
  return gaps;
}
}  // namespace

TEST_CASE(
    "nash_md_pg_loss_gradient equals central differences of the frozen-multiplier surrogate") {
  test::class_task_fixture f;
  const nash_test_model ref(4, 3, 3, 11, 1.0);
  const nash_test_model policy = nash_perturbed(ref, 5);
  generation_config gen;
  gen.max_new_tokens = 3;
  gen.samples_per_prompt = 4;
  const generation_result ys = generate(policy, f.prompts(), gen, 21);
  const generation_result yo = generate_mixture(policy, ref, 0.3, f.prompts(), gen, 22);
  vector_d p(ys.size());
  f.judge.preference(pair_batch<sequence_batch>{ys.batch(), yo.batch()}, p);
  const double beta = 0.7;
  for (const auto credit : {losses::kl_credit::reward_to_go, losses::kl_credit::same_position}) {
    // The stop-gradient multipliers at theta_0, computed here from the derived log-probs.
    const prefopt::index_t t = static_cast<prefopt::index_t>(ys.tokens.size());
    vector_d l(t), lr(t);
    token_log_probs(policy, ys.batch(), l);
    token_log_probs(ref, ys.batch(), lr);
    vector_d mult(t);
    for (prefopt::index_t i = 0; i < ys.size(); ++i) {
      const auto u = static_cast<std::size_t>(i);
      double to_go = 0.0;
      for (prefopt::index_t k = ys.offsets[u + 1]; k-- > ys.offsets[u];) {
        to_go += l(k) - lr(k);
        const double c = credit == losses::kl_credit::reward_to_go ? to_go : l(k) - lr(k);
        mult(k) = p(i) - 0.5 - beta * c;
      }
    }
    const double b = static_cast<double>(ys.size());
    auto surrogate = [&](const vector_d& theta) {
      nash_test_model m = policy;
      m.parameters() = theta;
      vector_d lt(t);
      token_log_probs(m, ys.batch(), lt);
      return -mult.dot(lt) / b;
    };
    vector_d grad = vector_d::Zero(policy.num_parameters());
    const auto stats = nash_md_pg_loss_gradient(policy, ref, ys.batch(), p, beta, credit, grad);
    CHECK(stats.loss == Approx(surrogate(policy.parameters())).epsilon(1e-12));
    double worst = 0.0;
    for (prefopt::index_t k = 0; k < grad.size(); ++k) {
      const double fd = test::pref_central_difference(surrogate, policy.parameters(), k);
      worst = std::max(worst, std::abs(fd - grad(k)) / std::max(1e-3, std::abs(fd)));
    }
    CHECK(worst < 1e-6);
    CHECK(grad.norm() > 1e-3);
  }
}

TEST_CASE("Nash-MD-PG moves the class distribution toward the intransitive task's equilibrium") {
  // CI size: 400 steps of 256 prompts, plain SGD (Adam's normalised steps keep a noise floor
  // on this REINFORCE gradient), beta = 0.05, beta_mix = 0.125. The floor is the gap of the
  // beta-regularised equilibrium, not 0.
  nash_md_pg_config c;
  c.beta = 0.05;
  c.mixture_coef = 0.125;
  c.batch_size = 256;
  c.optimizer.kind = optimizer_kind::sgd;
  c.optimizer.learning_rate = 2.0;
  for (const std::uint64_t seed : {1U, 2U}) {
    const auto gaps = nash_gap_curve(c, seed, 400, 50);
    std::string line = "nash_md_pg class gap, model seed " + std::to_string(seed) + ":";
    for (std::size_t k = 0; k < gaps.size(); ++k) {
      char buf[32];
      std::snprintf(buf, sizeof buf, " %zu:%.3f", k * 50, gaps[k]);
      line += buf;
    }
    WARN(line);
    const double late = test::mean_after(gaps, 5);  // steps 250..400
    CHECK(late < 0.6 * gaps[0]);
  }
}

TEST_CASE("nash_md_pg is deterministic for a seed and runs through prefopt::run") {
  test::class_task_fixture f;
  const nash_test_model ref(4, 4, 3, 2, 1.0);
  generation_config gen;
  gen.max_new_tokens = 2;
  const auto problem = make_sequence_problem(ref, f.judge, f.prompts(), gen);
  for (const auto opponent : {nash_pg_opponent::mixture, nash_pg_opponent::ema}) {
    nash_md_pg_config c;
    c.opponent = opponent;
    c.batch_size = 8;
    c.seed = 9;
    const nash_md_pg solver(c);
    run_options o;
    o.max_iterations = 5;
    const auto a = prefopt::run(solver, problem, o);
    const auto b = prefopt::run(solver, problem, o);
    CHECK(a.status == run_status::completed);
    CHECK(a.state.iteration() == 5);
    CHECK(a.state.policy().parameters() == b.state.policy().parameters());
    CHECK(a.state.policy().parameters() != ref.parameters());
    if (opponent == nash_pg_opponent::ema) {
      REQUIRE(a.state.ema_opponent() != nullptr);
      CHECK(a.state.ema_opponent()->parameters() != ref.parameters());
    } else {
      CHECK(a.state.ema_opponent() == nullptr);
    }
    c.seed = 10;
    const auto d = prefopt::run(nash_md_pg(c), problem, o);
    CHECK(d.state.policy().parameters() != a.state.policy().parameters());
  }
}

TEST_CASE("nash_md_pg names the bad config field and the missing feedback") {
  nash_md_pg_config c;
  c.beta = -1.0;
  CHECK_THROWS_WITH(nash_md_pg(c), Catch::Contains("nash_md_pg: config.beta = -1"));
  c = {};
  c.mixture_coef = 1.5;
  CHECK_THROWS_WITH(nash_md_pg(c), Catch::Contains("config.mixture_coef = 1.5"));
  c = {};
  c.batch_size = 0;
  CHECK_THROWS_WITH(nash_md_pg(c), Catch::Contains("config.batch_size = 0"));
  c = {};
  c.optimizer.learning_rate = 0.0;
  CHECK_THROWS_WITH(nash_md_pg(c), Catch::Contains("optimizer.learning_rate = 0"));

  test::class_task_fixture f;
  const nash_test_model ref(4, 4, 3, 2, 1.0);
  generation_config gen;
  gen.max_new_tokens = 2;
  auto problem = make_sequence_problem(ref, f.judge, f.prompts(), gen);
  problem.feedback = nullptr;
  CHECK_THROWS_WITH(nash_md_pg().init(problem), Catch::Contains("problem.feedback is null"));
}

TEST_CASE("nash_md_pg: a policy whose logits overflow ends the run as diverged, saying where") {
  test::class_task_fixture f;
  const nash_test_model ref(4, 4, 3, 2, 1.0);
  generation_config gen;
  gen.max_new_tokens = 2;
  const auto problem = make_sequence_problem(ref, f.judge, f.prompts(), gen);
  // Adam's first step moves every parameter by about 1e308: finite parameters whose logits
  // overflow when the next step samples (generate's convergence_error, read by run).
  nash_md_pg_config huge;
  huge.optimizer.kind = optimizer_kind::adam;
  huge.optimizer.learning_rate = 1e308;
  huge.batch_size = 8;
  run_options o;
  o.max_iterations = 20;
  const auto r = prefopt::run(nash_md_pg(huge), problem, o);
  CHECK(r.status == run_status::diverged);
  CHECK(r.iterations < 20);
  CHECK_THAT(r.message, Catch::Contains("diverged at step") && Catch::Contains("wrote inf"));
}
