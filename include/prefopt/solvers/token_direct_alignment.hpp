#pragma once
/// \file
/// Token-level direct alignment: DPO, length-averaged DPO, IPO, SimPO (any `dpo_variant`) trained
/// on a `token_softmax_policy` from the pairwise judgements of a `token_preference_task`.
///
/// The same loss as the tabular solver (`losses::dpo_loss<Variant>`, ALGORITHMS.md §3), but the
/// log-likelihoods are sums over the tokens of each response and the lengths are the numbers of
/// token decisions behind them (`token_softmax_policy::decisions`: the token count, eos included,
/// except that an eos forced at the maximum length is not a decision), so length averaging divides
/// each log-ratio by the number of terms it sums. Each step draws a minibatch of labelled pairs
/// (responses from `mu` once into an offline `data::preference_dataset`, or fresh from the current
/// policy each step when `online`), computes the batch-mean loss and its gradient with respect to
/// each sequence log-likelihood, back-propagates it through the policy
/// (`accumulate_log_prob_gradient`) and takes one optimizer step. The policy starts at `mu`, the
/// task's reference.

#include <Eigen/Core>

#include <cstdint>
#include <span>
#include <vector>

#include "prefopt/core/random.hpp"
#include "prefopt/core/types.hpp"
#include "prefopt/data/preference_dataset.hpp"
#include "prefopt/games/token_task.hpp"
#include "prefopt/losses/dpo.hpp"
#include "prefopt/policies/token_softmax.hpp"
#include "prefopt/solvers/common/optimizers.hpp"
#include "prefopt/solvers/direct_alignment.hpp"

namespace prefopt {

/// Hyperparameters of `token_direct_alignment` (as for the tabular solver).
using token_alignment_config = direct_alignment_config;

template <class Variant>
class token_direct_alignment {
 public:
  using config_type = token_alignment_config;
  using step_stats = direct_alignment_stats;

  class state {
   public:
    [[nodiscard]] const token_softmax_policy& policy() const noexcept { return policy_; }
    [[nodiscard]] long iteration() const noexcept { return t_; }

   private:
    friend class token_direct_alignment;
    state(const token_softmax_policy& reference, const optimizer_config& o, std::uint64_t seed)
        : policy_(reference),
          reference_(reference),
          optimizer_(o, reference.num_parameters()),
          gen_(seed, /*stream=*/0x70d) {}

    token_softmax_policy policy_;
    token_softmax_policy reference_;
    optimizer optimizer_;
    rng gen_;
    data::preference_dataset dataset_;  // offline pairs (no prompts)
    std::vector<index_t> order_;
    std::size_t cursor_ = 0;
    long t_ = 0;
    std::vector<index_t> picked_;
    std::vector<token_id> draw_a_, draw_b_;
    detail::dpo_buffers buffers_;
  };

  explicit token_direct_alignment(const token_alignment_config& config = {})
      : config_(config), loss_(config.loss) {
    config.validate("token_direct_alignment");
  }

  [[nodiscard]] const token_alignment_config& config() const noexcept { return config_; }

  /// Starts at the task's reference; offline mode draws the dataset here.
  [[nodiscard]] state init(const token_preference_task& task) const {
    state s(task.reference(), config_.optimizer, config_.seed);
    if (config_.source == pair_source::offline) {
      for (index_t i = 0; i < config_.dataset_size; ++i) {
        draw_pair(task, s.reference_, s, s.dataset_);
      }
      s.order_.resize(static_cast<std::size_t>(config_.dataset_size));
      for (std::size_t i = 0; i < s.order_.size(); ++i) s.order_[i] = static_cast<index_t>(i);
      s.gen_.shuffle(std::span<index_t>(s.order_));
    }
    s.buffers_.resize(config_.batch_size, s.policy_.num_parameters());
    return s;
  }

  /// One minibatch, one optimizer step.
  step_stats step(const token_preference_task& task, state& s) const {
    data::preference_dataset fresh;  // online pairs of this step
    const data::preference_dataset* pairs = &s.dataset_;
    s.picked_.clear();
    for (index_t i = 0; i < config_.batch_size; ++i) {
      if (config_.source == pair_source::online) {
        draw_pair(task, s.policy_, s, fresh);
        s.picked_.push_back(i);
        pairs = &fresh;
        continue;
      }
      if (s.cursor_ == s.order_.size()) {  // next epoch: reshuffle
        s.cursor_ = 0;
        s.gen_.shuffle(std::span<index_t>(s.order_));
      }
      s.picked_.push_back(s.order_[s.cursor_++]);
    }
    data::preference_batch b = pairs->batch(s.picked_);
    for (auto* lengths : {&b.chosen_lengths, &b.rejected_lengths}) {
      for (index_t& n : *lengths) n = s.policy_.decisions(n);  // tokens -> token decisions
    }
    const sequence_batch chosen{b.prompts.view(), b.chosen.view()};
    const sequence_batch rejected{b.prompts.view(), b.rejected.view()};
    const auto stats =
        detail::dpo_update(loss_, s.policy_, s.reference_, chosen, rejected, b.chosen_lengths,
                           b.rejected_lengths, s.buffers_, s.optimizer_);
    ++s.t_;
    return stats;
  }

 private:
  /// Two responses from `sampler`, labelled by the task's judge, appended to `pairs`.
  static void draw_pair(const token_preference_task& task, const token_softmax_policy& sampler,
                        state& s, data::preference_dataset& pairs) {
    s.draw_a_.clear();
    s.draw_b_.clear();
    (void)sampler.sample(s.gen_, s.draw_a_);
    (void)sampler.sample(s.gen_, s.draw_b_);
    const bool a_wins = s.gen_.bernoulli(task.preference(s.draw_a_, s.draw_b_));
    pairs.add({}, a_wins ? s.draw_a_ : s.draw_b_, a_wins ? s.draw_b_ : s.draw_a_);
  }

  token_alignment_config config_;
  losses::dpo_loss<Variant> loss_;
};

/// DPO on token sequences; `loss.length_average = true` gives length-averaged DPO.
using token_dpo = token_direct_alignment<losses::dpo_variant::sigmoid>;
/// IPO on token sequences.
using token_ipo = token_direct_alignment<losses::dpo_variant::ipo>;
/// SimPO on token sequences (reference-free).
using token_simpo = token_direct_alignment<losses::dpo_variant::simpo>;

}  // namespace prefopt
