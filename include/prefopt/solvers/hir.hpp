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

#include <Eigen/Core>

#include <cmath>
#include <cstdint>
#include <string_view>
#include <vector>

#include "prefopt/core/random.hpp"
#include "prefopt/games/goal_task.hpp"
#include "prefopt/losses/hir.hpp"
#include "prefopt/policies/tabular_softmax.hpp"
#include "prefopt/solvers/common/optimizers.hpp"

namespace prefopt {

enum class hir_mode { hindsight, no_relabeling, successes_only };
enum class hir_contrast { two_way, k_way };

[[nodiscard]] constexpr std::string_view to_string(hir_mode m) noexcept {
  return m == hir_mode::hindsight       ? "hindsight"
         : m == hir_mode::no_relabeling ? "no_relabeling"
                                        : "successes_only";
}

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
    [[nodiscard]] const tabular_softmax_policy& policy() const noexcept { return policy_; }
    [[nodiscard]] index_t iteration() const noexcept { return t_; }
    /// Samples drawn so far (the sample budget spent).
    [[nodiscard]] long samples() const noexcept { return samples_; }

   private:
    friend class tabular_hir;
    state(tabular_softmax_policy policy, const hir_config& c)
        : policy_(std::move(policy)),
          optimizer_(c.optimizer, policy_.num_parameters()),
          gen_(c.seed, /*stream=*/0x41d) {}
    tabular_softmax_policy policy_;
    optimizer optimizer_;
    rng gen_;
    index_t t_ = 0;
    long samples_ = 0;
  };

  explicit tabular_hir(const hir_config& config = {}) : config_(config) {
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
  }

  [[nodiscard]] const hir_config& config() const noexcept { return config_; }

  [[nodiscard]] state init(const goal_task& task) const {
    return state(task.reference_policy(), config_);
  }

  /// One round: sample, relabel, `updates_per_round` updates.
  step_stats step(const goal_task& task, state& s) const {
    const index_t goals = task.num_goals(), n = task.num_responses();
    std::vector<index_t> positive, negative, responses;
    index_t successes = 0;
    for (index_t i = 0; i < config_.batch_size; ++i) {
      const index_t g = s.gen_.uniform_index(goals);
      const index_t y = s.policy_.sample(g, s.gen_);
      const bool ok = task.success(g, y);
      successes += ok ? 1 : 0;
      switch (config_.mode) {
        case hir_mode::hindsight:
          positive.push_back(task.outcome(y));
          negative.push_back(ok ? other_goal(g, goals, s.gen_) : g);
          break;
        case hir_mode::no_relabeling:
          positive.push_back(g);
          negative.push_back(other_goal(g, goals, s.gen_));
          break;
        case hir_mode::successes_only:
          if (!ok) continue;
          positive.push_back(g);
          negative.push_back(g);  // unused: no contrast in this mode
          break;
      }
      responses.push_back(y);
    }
    s.samples_ += config_.batch_size;
    ++s.t_;
    step_stats stats;
    stats.batch_success = static_cast<double>(successes) / static_cast<double>(config_.batch_size);
    if (responses.empty()) return stats;  // successes_only with no success: nothing to learn

    const index_t b = static_cast<index_t>(responses.size());
    const bool contrastive = config_.mode != hir_mode::successes_only && config_.w_con > 0.0;
    const bool entropy = config_.mode != hir_mode::successes_only && config_.w_ent > 0.0;
    const std::vector<token_id> targets(responses.begin(), responses.end());
    row_matrix_d rows(b, n), grad_rows(b, n), ent_grad(b, n), log_probs(goals, n), probs(goals, n);
    row_matrix_d ell(b, goals), grad_ell(b, goals);
    vector_d ell_pos(b), ell_neg(b), g_pos(b), g_neg(b), gradient(s.policy_.num_parameters());
    for (index_t u = 0; u < config_.updates_per_round; ++u) {
      // Every instruction's log pi(. | g) once per update; the contrast reads its scores from it.
      for (index_t g = 0; g < goals; ++g) {
        s.policy_.log_probabilities(g, log_probs.row(g).transpose());
      }
      probs = log_probs.array().exp().matrix();
      gradient.setZero();
      auto row_gradient = [&](index_t g) { return gradient.segment(g * n, n); };
      // d log pi(y | g) / d z[g, .] = onehot(y) - pi(. | g), weighted by w.
      auto add_log_prob_gradient = [&](index_t g, index_t y, double w) {
        row_gradient(g) -= w * probs.row(g).transpose();
        row_gradient(g)[y] += w;
      };

      for (index_t i = 0; i < b; ++i)
        rows.row(i) = s.policy_.logits().row(positive[std::size_t(i)]);
      double loss =
          losses::label_smoothed_cross_entropy<double>(rows, targets, config_.eps_ls, grad_rows);
      if (entropy) {
        loss += losses::entropy_bonus<double>(rows, config_.w_ent, ent_grad);
        grad_rows += ent_grad;
      }
      for (index_t i = 0; i < b; ++i) {
        row_gradient(positive[static_cast<std::size_t>(i)]) += grad_rows.row(i).transpose();
      }
      if (contrastive && config_.contrast == hir_contrast::two_way) {
        for (index_t i = 0; i < b; ++i) {
          const auto k = static_cast<std::size_t>(i);
          ell_pos[i] = log_probs(positive[k], responses[k]);
          ell_neg[i] = log_probs(negative[k], responses[k]);
        }
        loss += config_.w_con * losses::contrastive_instruction_loss_2way<double>(
                                    ell_pos, ell_neg, config_.eps_ls, g_pos, g_neg);
        for (index_t i = 0; i < b; ++i) {
          const auto k = static_cast<std::size_t>(i);
          add_log_prob_gradient(positive[k], responses[k], config_.w_con * g_pos[i]);
          add_log_prob_gradient(negative[k], responses[k], config_.w_con * g_neg[i]);
        }
      } else if (contrastive) {  // k-way: softmax over all instructions
        for (index_t i = 0; i < b; ++i) {
          ell.row(i) = log_probs.col(responses[static_cast<std::size_t>(i)]).transpose();
        }
        loss += config_.w_con * losses::contrastive_instruction_loss<double>(
                                    ell, positive, config_.eps_ls, grad_ell);
        // sum_i grad_ell(i, g) (onehot(y_i) - pi(.|g)): a scatter and one row update per g.
        for (index_t i = 0; i < b; ++i) {
          const index_t y = responses[static_cast<std::size_t>(i)];
          for (index_t g = 0; g < goals; ++g) row_gradient(g)[y] += config_.w_con * grad_ell(i, g);
        }
        for (index_t g = 0; g < goals; ++g) {
          row_gradient(g) -= config_.w_con * grad_ell.col(g).sum() * probs.row(g).transpose();
        }
      }
      s.optimizer_.step(s.policy_.parameters(), gradient);
      s.policy_.recenter();
      stats.loss = loss;
    }
    return stats;
  }

 private:
  static index_t other_goal(index_t g, index_t goals, rng& gen) {
    const index_t k = gen.uniform_index(goals - 1);
    return k >= g ? k + 1 : k;
  }

  hir_config config_;
};

}  // namespace prefopt
