#pragma once
/// \file
/// The length experiment of the direct-alignment family: DPO against length-averaged DPO on a
/// token-level task whose judge prefers longer responses (`token_preference_task` with
/// `length_bonus > 0`), compared at matched strength.
///
/// For each `beta` of the sweep, both variants train a `token_softmax_policy` from `mu` (through
/// `dpo_trainer` on the task's `sequence_problem`, offline) on the same dataset of the reference's
/// pairs (same seed) for the same number of steps; each final policy is summarised
/// exactly (KL(pi, mu), expected length, expected gold reward). "Comparable strength" is matched
/// KL(pi, mu): the two variants' temperatures are not on the same scale (the averaged implicit
/// reward divides the log-ratio by the length), so the averaged variant's (KL, length) curve is
/// interpolated linearly in KL at each DPO point that falls inside its KL range.
///
/// Why DPO lengthens more (Grinsztajn et al. 2024, arXiv 2406.19188; Park et al. 2024, arXiv
/// 2403.19159): the DPO gradient of a pair raises every token decision of the chosen response and
/// lowers every decision of the rejected one; when the chosen response is the longer one, the
/// "continue" decisions at the positions both share cancel and the extra positions of the chosen
/// response push "continue" up. With averaging, the chosen response's decisions are weighted by
/// 1/|y_w| < 1/|y_l|, so the shared "continue" decisions are pushed *down* — the averaged loss
/// resists lengthening even though its judge prefers length.

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "prefopt/core/assert.hpp"
#include "prefopt/games/token_task.hpp"
#include "prefopt/solvers/common/sequence_problem.hpp"
#include "prefopt/solvers/dpo_trainer.hpp"

namespace prefopt {

/// Configuration of `run_length_bias_sweep`.
struct length_bias_sweep_config {
  token_task_config task{};                                        ///< the judge and mu
  std::vector<double> betas{0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0};  ///< beta_dpo values, > 0
  long steps = 1000;                                               ///< optimizer steps per run, > 0
  index_t dataset_size = 8192;                                     ///< offline pairs from mu
  index_t batch_size = 64;
  optimizer_config optimizer{.learning_rate = 0.02};  ///< Adam
};

/// One trained policy of the sweep.
struct length_bias_point {
  bool length_average = false;
  double beta = 0.0;
  double kl = 0.0;      ///< KL(pi, mu), exact
  double length = 0.0;  ///< E_pi |y| (eos counted), exact
  double gold = 0.0;    ///< E_pi r(y), exact
};

/// Expected lengths of both variants at one KL(pi, mu).
struct length_bias_match {
  double kl = 0.0;
  double length_dpo = 0.0;
  double length_averaged = 0.0;
};

struct length_bias_result {
  double reference_length = 0.0;
  double reference_gold = 0.0;
  std::vector<length_bias_point> points;   ///< DPO points, then averaged points, in beta order
  std::vector<length_bias_match> matched;  ///< one per DPO point inside the averaged KL range
};

/// The averaged variant's expected length at `kl`, interpolated linearly in KL between its
/// points (sorted by KL); false when `kl` is outside their range.
[[nodiscard]] inline bool interpolate_length_at_kl(std::vector<std::pair<double, double>> curve,
                                                   double kl, double& length) {
  std::sort(curve.begin(), curve.end());
  for (std::size_t i = 0; i + 1 < curve.size(); ++i) {
    const auto [k0, l0] = curve[i];
    const auto [k1, l1] = curve[i + 1];
    if (kl >= k0 && kl <= k1 && k1 > k0) {
      length = l0 + (l1 - l0) * (kl - k0) / (k1 - k0);
      return true;
    }
  }
  return false;
}

[[nodiscard]] inline length_bias_result run_length_bias_sweep(
    const length_bias_sweep_config& config) {
  constexpr const char* fn = "run_length_bias_sweep";
  PREFOPT_CHECK(!config.betas.empty(), invalid_argument, fn, ": betas is empty");
  for (std::size_t i = 0; i < config.betas.size(); ++i) {
    PREFOPT_CHECK(config.betas[i] > 0.0, invalid_argument, fn, ": betas[", i,
                  "] = ", config.betas[i], ", expected > 0");
  }
  PREFOPT_CHECK(config.steps > 0, invalid_argument, fn, ": steps = ", config.steps,
                ", expected > 0");
  dpo_trainer_config base;
  base.source = pair_source::offline;
  base.dataset_size = config.dataset_size;
  base.batch_size = config.batch_size;
  base.optimizer = config.optimizer;
  base.seed = config.task.seed;  // same dataset for every run
  base.validate(fn);
  const auto task = token_preference_task::random(config.task);
  const token_softmax_policy& mu = task.reference();
  const positional_sequence_model reference = task.reference_model();
  const auto judge = task.judge();
  generation_config sampling;
  sampling.max_new_tokens = task.max_length();  // mu stops by itself within max_length tokens
  const auto problem = make_sequence_problem(reference, judge, task.prompts(), sampling);
  length_bias_result out;
  out.reference_length = mu.expected_length();
  out.reference_gold = task.expected_gold_reward(mu);
  for (const bool averaged : {false, true}) {
    for (const double beta : config.betas) {
      dpo_trainer_config c = base;
      c.loss.beta_dpo = beta;
      c.loss.length_average = averaged;
      const sequence_dpo solver(c);
      auto state = solver.init(problem);
      for (long t = 0; t < config.steps; ++t) (void)solver.step(problem, state);
      const token_softmax_policy& pi = state.policy().policy();
      out.points.push_back({averaged, beta, pi.kl_divergence(mu), pi.expected_length(),
                            task.expected_gold_reward(pi)});
    }
  }
  std::vector<std::pair<double, double>> averaged_curve;
  for (const auto& p : out.points) {
    if (p.length_average) averaged_curve.emplace_back(p.kl, p.length);
  }
  for (const auto& p : out.points) {
    double length = 0.0;
    if (!p.length_average && interpolate_length_at_kl(averaged_curve, p.kl, length)) {
      out.matched.push_back({p.kl, p.length, length});
    }
  }
  return out;
}

}  // namespace prefopt
