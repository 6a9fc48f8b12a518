#include "prefopt/solvers/online_pair_trainers.hpp"

#include <catch2/catch.hpp>

#include <cstdio>
#include <string>
#include <vector>

#include "../sequence/bigram_model.hpp"
#include "pref_helpers.hpp"
#include "prefopt/solvers/common/run.hpp"

using namespace prefopt;

namespace {
using pair_test_model = test::bigram_model<double, false>;

/// The class-level gaps of `Solver` every `every` iterations (index 0: the reference).
template <class Solver>
std::vector<double> pair_gap_curve(const Solver& solver, std::uint64_t model_seed, long steps,
                                   long every) {
  test::class_task_fixture f;
  const pair_test_model ref(4, 4, 3, model_seed, 1.0);
  generation_config gen;
  gen.max_new_tokens = 2;
  const auto problem = make_sequence_problem(ref, f.judge, f.prompts(), gen);
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

std::string pair_gap_line(const char* name, std::uint64_t seed, const std::vector<double>& gaps,
                          long every) {
  std::string line = std::string(name) + " class gap, model seed " + std::to_string(seed) + ":";
  for (std::size_t k = 0; k < gaps.size(); ++k) {
    char buf[32];
    std::snprintf(buf, sizeof buf, " %ld:%.3f", static_cast<long>(k) * every, gaps[k]);
    line += buf;
  }
  return line;
}

/// The standard comparison settings (Adam, eta = 1, 128 pairs, 8 inner steps).
template <class Config>
Config pair_comparison_config(double tau) {
  Config c;
  c.eta = 1.0;
  c.tau = tau;
  c.batch_size = 128;
  c.inner_steps = 8;
  c.optimizer.learning_rate = 0.02;
  return c;
}
}  // namespace

TEST_CASE(
    "online_pair_loss: its value is the labelled squared loss and its gradient matches "
    "central differences (ONPO and INPO anchors)") {
  test::class_task_fixture f;
  const pair_test_model ref(4, 3, 3, 4, 1.0);
  pair_test_model policy = ref;
  rng gen_p(8, 1);
  for (prefopt::index_t k = 0; k < policy.num_parameters(); ++k) {
    policy.parameters()(k) += 0.4 * gen_p.normal();
  }
  pair_test_model anchor_model = ref;
  for (prefopt::index_t k = 0; k < anchor_model.num_parameters(); ++k) {
    anchor_model.parameters()(k) -= 0.2 * gen_p.normal();
  }
  generation_config gen;
  gen.max_new_tokens = 3;
  gen.samples_per_prompt = 6;  // three pairs per prompt
  const generation_result y = generate(policy, f.prompts(), gen, 3);
  const prefopt::index_t n = y.size() / 2;
  vector_d w(n);
  for (prefopt::index_t i = 0; i < n; ++i) w(i) = 0.1 + 0.8 * gen_p.uniform();
  vector_d a(2 * n), r(2 * n), s(2 * n);
  sequence_log_probs(anchor_model, y.batch(), a);
  sequence_log_probs(ref, y.batch(), r);
  sequence_log_probs(policy, y.batch(), s);
  const double eta = 0.8;
  for (const double eta_tau : {0.0, 0.3}) {
    double expected = 0.0;
    for (prefopt::index_t i = 0; i < n; ++i) {
      double h = (s(2 * i) - s(2 * i + 1)) - (1.0 - eta_tau) * (a(2 * i) - a(2 * i + 1)) -
                 eta_tau * (r(2 * i) - r(2 * i + 1));
      expected +=
          w(i) * (h - eta / 2) * (h - eta / 2) + (1.0 - w(i)) * (-h - eta / 2) * (-h - eta / 2);
    }
    expected /= static_cast<double>(n);
    vector_d grad = vector_d::Zero(policy.num_parameters());
    const double loss = online_pair_loss(policy, y.batch(), w, a, r, eta, eta_tau, grad);
    CHECK(loss == Approx(expected).epsilon(1e-12));
    auto f_of = [&](const vector_d& theta) {
      pair_test_model m = policy;
      m.parameters() = theta;
      vector_d none;
      return online_pair_loss(m, y.batch(), w, a, r, eta, eta_tau, none);
    };
    double worst = 0.0;
    for (prefopt::index_t k = 0; k < grad.size(); ++k) {
      const double fd = test::pref_central_difference(f_of, policy.parameters(), k);
      worst = std::max(worst, std::abs(fd - grad(k)) / std::max(1e-3, std::abs(fd)));
    }
    CHECK(worst < 1e-6);
    CHECK(grad.norm() > 1e-3);
  }
  vector_d none;
  CHECK_THROWS_WITH(online_pair_loss(policy, y.batch(), w, a, r, eta, 1.5, none),
                    Catch::Contains("eta_tau = 1.5"));
  CHECK_THROWS_AS(online_pair_loss(policy, y.batch(), vector_d(n + 1), a, r, eta, 0.0, none),
                  shape_error);
}

TEST_CASE(
    "ONPO, INPO and self-play on the intransitive task: ONPO's class gap falls, and it ends "
    "below self-play's") {
  // CI size: 200 iterations of 128 pairs. Reported: the gaps every 25 iterations; asserted:
  // ONPO's mean gap over iterations 100..200 is below the reference's on seeds 1 and 2, and its
  // mean over seeds 1..3 below self-play's; "falls faster": ONPO's mean gap over every checkpoint
  // after the start (the area under its curve), averaged over seeds 1..3, is below INPO's and
  // self-play's (per seed INPO's rank against ONPO varies: reported, not asserted).
  const onpo_trainer onpo(pair_comparison_config<onpo_trainer_config>(0.0));
  const inpo_trainer inpo(pair_comparison_config<inpo_trainer_config>(0.1));
  const inpo_trainer self_play(pair_comparison_config<inpo_trainer_config>(0.0));
  double onpo_late = 0.0, inpo_late = 0.0, self_late = 0.0;
  double onpo_area = 0.0, inpo_area = 0.0, self_area = 0.0;
  for (const std::uint64_t seed : {1U, 2U, 3U}) {
    const auto go = pair_gap_curve(onpo, seed, 200, 25);
    const auto gi = pair_gap_curve(inpo, seed, 200, 25);
    const auto gs = pair_gap_curve(self_play, seed, 200, 25);
    WARN(pair_gap_line("onpo_trainer", seed, go, 25));
    WARN(pair_gap_line("inpo_trainer (tau 0.1)", seed, gi, 25));
    WARN(pair_gap_line("self-play (inpo, tau 0)", seed, gs, 25));
    onpo_late += test::mean_after(go, 4) / 3.0;
    inpo_late += test::mean_after(gi, 4) / 3.0;
    self_late += test::mean_after(gs, 4) / 3.0;
    onpo_area += test::mean_after(go, 1) / 3.0;
    inpo_area += test::mean_after(gi, 1) / 3.0;
    self_area += test::mean_after(gs, 1) / 3.0;
    if (seed != 3U) CHECK(test::mean_after(go, 4) < gs.front());
  }
  WARN("mean class gap over iterations 100..200 and seeds 1..3: onpo "
       << onpo_late << ", inpo " << inpo_late << ", self-play " << self_late);
  CHECK(onpo_late < self_late);
  WARN("mean class gap over every checkpoint after the start, seeds 1..3: onpo "
       << onpo_area << ", inpo " << inpo_area << ", self-play " << self_area);
  CHECK(onpo_area < inpo_area);
  CHECK(onpo_area < self_area);
}

TEST_CASE(
    "onpo_trainer and inpo_trainer are deterministic, keep their anchors, and name bad "
    "config fields") {
  test::class_task_fixture f;
  const pair_test_model ref(4, 4, 3, 2, 1.0);
  generation_config gen;
  gen.max_new_tokens = 2;
  const auto problem = make_sequence_problem(ref, f.judge, f.prompts(), gen);
  run_options o;
  o.max_iterations = 3;
  onpo_trainer_config oc;
  oc.batch_size = 8;
  oc.inner_steps = 2;
  const auto a = prefopt::run(onpo_trainer(oc), problem, o);
  const auto b = prefopt::run(onpo_trainer(oc), problem, o);
  CHECK(a.status == run_status::completed);
  CHECK(a.state.iteration() == 3);
  CHECK(a.state.policy().parameters() == b.state.policy().parameters());
  CHECK(a.state.auxiliary().parameters() == b.state.auxiliary().parameters());
  CHECK(a.state.auxiliary().parameters() != a.state.policy().parameters());
  CHECK(a.state.auxiliary().parameters() != ref.parameters());

  for (const auto labels : {pair_labels::expected, pair_labels::sampled}) {
    inpo_trainer_config ic;
    ic.tau = 0.2;
    ic.batch_size = 8;
    ic.inner_steps = 2;
    ic.labels = labels;
    const auto c = prefopt::run(inpo_trainer(ic), problem, o);
    const auto d = prefopt::run(inpo_trainer(ic), problem, o);
    CHECK(c.state.policy().parameters() == d.state.policy().parameters());
    CHECK(c.state.policy().parameters() != ref.parameters());
  }

  oc.tau = 0.1;
  CHECK_THROWS_WITH(onpo_trainer(oc), Catch::Contains("onpo_trainer: config.tau = 0.1"));
  inpo_trainer_config bad;
  bad.eta = 4.0;
  bad.tau = 0.5;
  CHECK_THROWS_WITH(inpo_trainer(bad), Catch::Contains("config.eta * config.tau = 2"));
  bad = {};
  bad.inner_steps = 0;
  CHECK_THROWS_WITH(inpo_trainer(bad), Catch::Contains("inpo_trainer: config.inner_steps = 0"));
  bad = {};
  bad.eta = -1.0;
  CHECK_THROWS_WITH(inpo_trainer(bad), Catch::Contains("inpo_trainer: config.eta = -1"));

  inpo_trainer_config huge;
  huge.optimizer.kind = optimizer_kind::sgd;
  huge.optimizer.learning_rate = 1e308;
  huge.batch_size = 8;
  o.max_iterations = 20;
  CHECK(prefopt::run(inpo_trainer(huge), problem, o).status == run_status::diverged);
}
