#pragma once
/// \file
/// Tabular direct alignment: DPO, length-averaged DPO, IPO, SimPO (and the other `dpo_variant`s)
/// trained on a tabular softmax policy over a preference game.
///
/// Each step draws a minibatch of labelled pairs `(x, y_w, y_l)` and takes one optimizer step on
/// the batch-mean loss of `losses::dpo_loss<Variant>` (ALGORITHMS.md §3):
///
///     h = (S_w - R_w)/a_w - (S_l - R_l)/a_l,   S = log pi_theta(y|x),  R = log mu(y|x),
///     a = max(len(y), 1) with length averaging (lengths from the game's metadata, 1 without),
///
/// then `d loss / d theta` through `d log pi(y|x) / d z[x, .] = onehot(y) - pi(.|x)`.
/// Data: `offline` draws a fixed dataset of `dataset_size` pairs from `mu` once, in `init`
/// (responses from the reference, labels from the game's `P`) and cycles through shuffled
/// minibatches; `online` (iterative / on-policy DPO) draws fresh pairs from the current policy each
/// step. The reference is the game's `mu`, and the policy starts at `mu`.
/// Papers: Direct Preference Optimization (arXiv 2305.18290); IPO (arXiv 2310.12036); Averaging
/// log-likelihoods in direct alignment (arXiv 2406.19188); SimPO (arXiv 2405.14734).
/// Not a solver of the regularised game: on intransitive games its fixed point is the RLHF optimum
/// of a Bradley-Terry fit, not the Nash equilibrium (which is the point of comparing them).

#include <Eigen/Core>

#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include "prefopt/core/random.hpp"
#include "prefopt/games/preference_game.hpp"
#include "prefopt/losses/dpo.hpp"
#include "prefopt/policies/tabular_softmax.hpp"
#include "prefopt/solvers/common/game_sampling.hpp"
#include "prefopt/solvers/common/optimizers.hpp"

namespace prefopt {

/// Where the preference pairs come from.
enum class pair_source { offline, online };

/// Hyperparameters of `tabular_direct_alignment`.
struct direct_alignment_config {
  losses::dpo_config loss{};  ///< beta_dpo, length_average, eps_ls, gamma_simpo
  pair_source source = pair_source::offline;
  index_t dataset_size = 4096;   ///< offline pairs drawn from mu in init
  index_t batch_size = 64;       ///< pairs per step
  optimizer_config optimizer{};  ///< Adam, lr 0.05 by default
  std::uint64_t seed = 0;

  /// Throws `prefopt::invalid_argument` naming `function` and the bad field (the loss's own
  /// fields are checked by `losses::dpo_loss`).
  void validate(const char* function) const {
    PREFOPT_CHECK(batch_size > 0, invalid_argument, function, ": batch_size = ", batch_size,
                  ", expected > 0");
    PREFOPT_CHECK(source == pair_source::online || dataset_size > 0, invalid_argument, function,
                  ": dataset_size = ", dataset_size, ", expected > 0 for offline training");
    optimizer.validate(function);
  }
};

/// Per-step statistics: the loss and the TRL-style metrics of the minibatch.
struct direct_alignment_stats {
  double loss = 0.0;
  double rewards_accuracies = 0.0;
  double rewards_margins = 0.0;
};

namespace detail {

/// Scratch of one DPO-family minibatch update, sized once.
struct dpo_buffers {
  vector_d s_w, s_l, r_w, r_l, losses, g_w, g_l, gradient;

  void resize(index_t batch_size, index_t num_parameters) {
    for (auto* v : {&s_w, &s_l, &r_w, &r_l, &losses, &g_w, &g_l}) v->resize(batch_size);
    gradient.resize(num_parameters);
  }
};

/// One update of `policy` on a minibatch of `chosen` / `rejected` responses (any
/// `DifferentiablePolicy` and its batch type): sequence log-probs of the policy and the reference,
/// the loss and its gradient with respect to them, back-propagated into the parameters, one
/// optimizer step, then `recenter()` when the policy has one (softmax tables do).
template <class Variant, class P, class Batch>
direct_alignment_stats dpo_update(const losses::dpo_loss<Variant>& loss, P& policy,
                                  const P& reference, const Batch& chosen, const Batch& rejected,
                                  std::span<const index_t> chosen_lengths,
                                  std::span<const index_t> rejected_lengths, dpo_buffers& b,
                                  optimizer& opt) {
  policy.log_prob(chosen, b.s_w);
  policy.log_prob(rejected, b.s_l);
  reference.log_prob(chosen, b.r_w);
  reference.log_prob(rejected, b.r_l);
  const losses::dpo_inputs<double> in{b.s_w, b.s_l, b.r_w, b.r_l, chosen_lengths, rejected_lengths};
  const auto metrics = loss.template compute<double>(in, b.losses, b.g_w, b.g_l);
  b.gradient.setZero();
  policy.accumulate_log_prob_gradient(chosen, b.g_w, b.gradient);
  policy.accumulate_log_prob_gradient(rejected, b.g_l, b.gradient);
  opt.step(policy.parameters(), b.gradient);
  if constexpr (requires { policy.recenter(); }) policy.recenter();
  return {metrics.loss, metrics.rewards_accuracies, metrics.rewards_margins};
}

}  // namespace detail

template <class Variant>
class tabular_direct_alignment {
 public:
  using config_type = direct_alignment_config;
  using step_stats = direct_alignment_stats;

  class state {
   public:
    /// The current iterate.
    [[nodiscard]] const tabular_softmax_policy& policy() const noexcept { return policy_; }
    /// Steps taken.
    [[nodiscard]] long iteration() const noexcept { return t_; }

   private:
    friend class tabular_direct_alignment;
    state(tabular_softmax_policy policy, tabular_softmax_policy reference,
          const optimizer_config& o, std::uint64_t seed)
        : policy_(std::move(policy)),
          reference_(std::move(reference)),
          optimizer_(o, policy_.num_parameters()),
          gen_(seed, /*stream=*/0x5d0) {}

    tabular_softmax_policy policy_;
    tabular_softmax_policy reference_;
    optimizer optimizer_;
    rng gen_;
    std::vector<labelled_pair> dataset_;
    std::size_t cursor_ = 0;
    long t_ = 0;
    // Minibatch scratch, sized once.
    std::vector<index_t> contexts_, chosen_, rejected_, chosen_len_, rejected_len_;
    detail::dpo_buffers buffers_;
  };

  explicit tabular_direct_alignment(const direct_alignment_config& config = {})
      : config_(config), loss_(config.loss) {
    config.validate("tabular_direct_alignment");
  }

  [[nodiscard]] const direct_alignment_config& config() const noexcept { return config_; }

  /// Starts at `mu`; offline mode draws the dataset here.
  [[nodiscard]] state init(const preference_game& game) const {
    state s(reference_policy(game), reference_policy(game), config_.optimizer, config_.seed);
    if (config_.source == pair_source::offline) {
      s.dataset_.reserve(static_cast<std::size_t>(config_.dataset_size));
      for (index_t i = 0; i < config_.dataset_size; ++i) {
        s.dataset_.push_back(sample_labelled_pair(game, s.reference_, s.reference_, s.gen_));
      }
      s.gen_.shuffle(std::span<labelled_pair>(s.dataset_));
    }
    const auto b = static_cast<std::size_t>(config_.batch_size);
    for (auto* v : {&s.contexts_, &s.chosen_, &s.rejected_, &s.chosen_len_, &s.rejected_len_}) {
      v->resize(b);
    }
    s.buffers_.resize(config_.batch_size, s.policy_.num_parameters());
    return s;
  }

  /// One minibatch, one optimizer step.
  step_stats step(const preference_game& game, state& s) const {
    const auto b = static_cast<std::size_t>(config_.batch_size);
    for (std::size_t i = 0; i < b; ++i) {
      const labelled_pair pair = next_pair(game, s);
      s.contexts_[i] = pair.context;
      s.chosen_[i] = pair.chosen;
      s.rejected_[i] = pair.rejected;
      s.chosen_len_[i] = response_length(game, pair.context, pair.chosen);
      s.rejected_len_[i] = response_length(game, pair.context, pair.rejected);
    }
    const tabular_batch chosen{s.contexts_, s.chosen_}, rejected{s.contexts_, s.rejected_};
    const auto stats = detail::dpo_update(loss_, s.policy_, s.reference_, chosen, rejected,
                                          s.chosen_len_, s.rejected_len_, s.buffers_, s.optimizer_);
    ++s.t_;
    return stats;
  }

 private:
  static index_t response_length(const preference_game& game, index_t x, index_t y) {
    return game.has_lengths() ? static_cast<index_t>(std::llround(game.lengths()(x, y))) : 1;
  }

  labelled_pair next_pair(const preference_game& game, state& s) const {
    if (config_.source == pair_source::online) {
      return sample_labelled_pair(game, s.policy_, s.policy_, s.gen_);
    }
    if (s.cursor_ == s.dataset_.size()) {  // next epoch: reshuffle
      s.cursor_ = 0;
      s.gen_.shuffle(std::span<labelled_pair>(s.dataset_));
    }
    return s.dataset_[s.cursor_++];
  }

  direct_alignment_config config_;
  losses::dpo_loss<Variant> loss_;
};

/// DPO (sigmoid); set `loss.length_average = true` for length-averaged DPO.
using tabular_dpo = tabular_direct_alignment<losses::dpo_variant::sigmoid>;
/// IPO.
using tabular_ipo = tabular_direct_alignment<losses::dpo_variant::ipo>;
/// SimPO (reference-free; set `loss.length_average = true` and `gamma_simpo` for the paper's form).
using tabular_simpo = tabular_direct_alignment<losses::dpo_variant::simpo>;
/// Hinge (SLiC) with reference.
using tabular_slic = tabular_direct_alignment<losses::dpo_variant::hinge>;

}  // namespace prefopt
