#pragma once
/// \file
/// Tabular hindsight instruction relabeling (HIR; The Wisdom of Hindsight Makes Language Models
/// Better Instruction Followers, Zhang et al., arXiv 2302.05206; ALGORITHMS.md §10) on a
/// goal-conditioned task, with its two baselines.
///
/// The task (`goal_task`, now in `games/goal_task.hpp`, included here): instructions are goals `g
/// in [0, G)`; a response `y in [0, n)` achieves exactly one goal, `outcome(y)`; the binary
/// feedback for instruction `g` is `success = [outcome(y) == g]`. The policy is a tabular softmax
/// `pi(y | g)` (one context per goal) that starts at the task's reference `mu` (the same under
/// every instruction), under which success is rare (`1/G` on average).
///
/// Each `step` is one round of the two-stage loop: (1) sample `batch_size` instructions uniformly
/// and a response from the current policy for each; (2) relabel and update with
///
///     L = L_sup(g+, y) + w_con L_con(y; g+, g-) + w_ent L_ent(pi(. | g+))
///
/// (`losses::label_smoothed_cross_entropy`, `losses::contrastive_instruction_loss_2way` or the
/// k-way `losses::contrastive_instruction_loss` over all G instructions, `losses::entropy_bonus`),
/// `updates_per_round` optimizer steps on the round's data. The three `hir_mode`s differ only in
/// the instructions they train on:
/// - `hindsight` (HIR): `g+ = outcome(y)`, the instruction the response does satisfy;
///   `g- = g` when the response failed, else a uniformly drawn other instruction;
/// - `no_relabeling` (baseline): `g+ = g` as sampled, `g-` a uniformly drawn other instruction;
/// - `successes_only` (baseline; filtered supervised learning / rejection-sampling fine-tuning):
///   `L_sup(g, y)` on the successful samples only (no contrast, no entropy term).
///
/// It is the generic `hir_trainer` (`solvers/hir_trainer.hpp`) on the one-token view of the table
/// (`tabular_sequence_model`: prompts `[g]`, responses `[y]`), the task posed through
/// `goal_task_relabeler`, with `hir_negatives::sampled` and summed likelihoods: the same code
/// trains a language model and this table. Instructions are drawn through the generic trainer's
/// prompt sampler, so its numbers agree with the earlier table-only implementation within noise,
/// not bitwise (success rates after 30 rounds on `goal_task::random(400, 50, 1, 7)`, mean of six
/// seeds: 0.498 against 0.502 with the 2-way contrast, 0.573 against 0.572 k-way; tested in
/// `tests/unit/alignment/hir_test.cpp`). The price of one code path: the generic k-way contrast
/// scores every response under every goal as its own sequence (G x batch_size per update), about
/// 20x the time of a table's one `[G, n]` log-prob pass at 50 goals (1.0 s against 0.05 s for 30
/// rounds); the 2-way form takes about twice the table-only time.

#include <Eigen/Core>

#include <cstdint>
#include <utility>

#include "prefopt/games/goal_task.hpp"
#include "prefopt/losses/hir.hpp"
#include "prefopt/policies/sequence_adapters.hpp"
#include "prefopt/policies/tabular_softmax.hpp"
#include "prefopt/solvers/common/optimizers.hpp"
#include "prefopt/solvers/common/sequence_problem.hpp"
#include "prefopt/solvers/hir_trainer.hpp"

namespace prefopt {

/// Hyperparameters of `tabular_hir` (defaults from the reference code, ALGORITHMS.md §10.2).
struct hir_config {
  hir_mode mode = hir_mode::hindsight;
  hir_contrast contrast = hir_contrast::two_way;
  index_t batch_size = 64;        ///< samples per round
  index_t updates_per_round = 4;  ///< optimizer steps on each round's data
  double eps_ls = losses::hir_defaults::eps_ls;
  double w_con = losses::hir_defaults::w_con;
  double w_ent = losses::hir_defaults::w_ent;
  optimizer_config optimizer{optimizer_kind::adam, 0.05};
  std::uint64_t seed = 0;
};

/// Per-round statistics.
struct hir_stats {
  double loss = 0.0;           ///< total loss at the round's last update
  double batch_success = 0.0;  ///< fraction of the round's samples that succeeded
};

class tabular_hir {
 public:
  using config_type = hir_config;
  using step_stats = hir_stats;

  class state {
   public:
    [[nodiscard]] const tabular_softmax_policy& policy() const noexcept {
      return inner_.policy().policy();
    }
    [[nodiscard]] index_t iteration() const noexcept { return inner_.iteration(); }
    /// Samples drawn so far (the sample budget spent).
    [[nodiscard]] long samples() const noexcept { return samples_; }

   private:
    friend class tabular_hir;
    state(tabular_sequence_model reference, hir_trainer::state<tabular_sequence_model> inner)
        : reference_(std::move(reference)), inner_(std::move(inner)) {}
    tabular_sequence_model reference_;  // the task's reference as a one-token model
    hir_trainer::state<tabular_sequence_model> inner_;
    long samples_ = 0;
  };

  explicit tabular_hir(const hir_config& config = {})
      : config_(config), trainer_(generic(config)) {}

  [[nodiscard]] const hir_config& config() const noexcept { return config_; }

  [[nodiscard]] state init(const goal_task& task) const {
    tabular_sequence_model reference(task.reference_policy());
    auto inner = trainer_.init(problem(reference, goal_task_relabeler(task)));
    return {std::move(reference), std::move(inner)};
  }

  /// One round: sample, relabel, `updates_per_round` updates (`hir_trainer::step`).
  step_stats step(const goal_task& task, state& s) const {
    const auto st = trainer_.step(problem(s.reference_, goal_task_relabeler(task)), s.inner_);
    s.samples_ += config_.batch_size;
    step_stats stats;
    stats.loss = st.loss;
    stats.batch_success = st.success_rate;
    return stats;
  }

 private:
  /// The generic trainer's settings: one-token responses, summed (= the action's) log-likelihood,
  /// the tabular rule for negatives.
  static hir_trainer_config generic(const hir_config& config) {
    constexpr const char* fn = "tabular_hir";
    PREFOPT_CHECK(config.batch_size > 0, invalid_argument, fn, ": batch_size = ", config.batch_size,
                  ", expected > 0");
    PREFOPT_CHECK(config.updates_per_round > 0, invalid_argument, fn,
                  ": updates_per_round = ", config.updates_per_round, ", expected > 0");
    PREFOPT_CHECK(config.eps_ls >= 0.0 && config.eps_ls < 0.5, invalid_argument, fn,
                  ": eps_ls = ", config.eps_ls, ", expected a value in [0, 0.5)");
    PREFOPT_CHECK(config.w_con >= 0.0 && config.w_ent >= 0.0, invalid_argument, fn,
                  ": w_con = ", config.w_con, ", w_ent = ", config.w_ent, ", expected >= 0");
    config.optimizer.validate(fn);
    hir_trainer_config g;
    g.mode = config.mode;
    g.contrast = config.contrast;
    g.negatives = hir_negatives::sampled;
    g.batch_size = config.batch_size;
    g.updates_per_round = config.updates_per_round;
    g.label_smoothing = config.eps_ls;
    g.contrast_weight = config.w_con;
    g.entropy_weight = config.w_ent;
    g.contrast_likelihood = losses::likelihood_reduction::sum;
    g.scoring.max_positions = 128;  // small chunks: the k-way batch is G x batch_size rows
    g.optimizer = config.optimizer;
    g.seed = config.seed;
    return g;
  }
  static sequence_problem<tabular_sequence_model, goal_task_relabeler> problem(
      const tabular_sequence_model& reference, const goal_task_relabeler& relabeler) {
    generation_config one_token;
    one_token.max_new_tokens = 1;  // the response [y]: the table's action
    return make_sequence_problem(reference, relabeler, relabeler.prompts(), one_token);
  }

  hir_config config_;
  hir_trainer trainer_;
};

}  // namespace prefopt
