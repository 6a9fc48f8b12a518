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
  losses::dpo_config loss{};              ///< beta_dpo, length_average, eps_ls, gamma_simpo
  pair_source source = pair_source::offline;
  index dataset_size = 4096;              ///< offline pairs drawn from mu in init
  index batch_size = 64;                  ///< pairs per step
  optimizer_config optimizer{};           ///< Adam, lr 0.05 by default
  std::uint64_t seed = 0;
};

/// Per-step statistics: the loss and the TRL-style metrics of the minibatch.
struct direct_alignment_stats {
  double loss = 0.0;
  double rewards_accuracies = 0.0;
  double rewards_margins = 0.0;
};

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
    state(tabular_softmax_policy policy, tabular_softmax_policy reference, const optimizer_config& o,
          std::uint64_t seed)
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
    std::vector<index> contexts_, chosen_, rejected_, chosen_len_, rejected_len_;
    vector_d s_w_, s_l_, r_w_, r_l_, losses_, g_w_, g_l_, gradient_;
  };

  explicit tabular_direct_alignment(const direct_alignment_config& config = {})
      : config_(config), loss_(config.loss) {
    constexpr const char* fn = "tabular_direct_alignment";
    PREFOPT_CHECK(config.batch_size > 0, invalid_argument, fn, ": batch_size = ",
                  config.batch_size, ", expected > 0");
    PREFOPT_CHECK(config.source == pair_source::online || config.dataset_size > 0,
                  invalid_argument, fn, ": dataset_size = ", config.dataset_size,
                  ", expected > 0 for offline training");
    config.optimizer.validate(fn);
  }

  [[nodiscard]] const direct_alignment_config& config() const noexcept { return config_; }

  /// Starts at `mu`; offline mode draws the dataset here.
  [[nodiscard]] state init(const preference_game& game) const {
    state s(reference_policy(game), reference_policy(game), config_.optimizer, config_.seed);
    if (config_.source == pair_source::offline) {
      s.dataset_.reserve(static_cast<std::size_t>(config_.dataset_size));
      for (index i = 0; i < config_.dataset_size; ++i) {
        s.dataset_.push_back(sample_labelled_pair(game, s.reference_, s.reference_, s.gen_));
      }
      s.gen_.shuffle(std::span<labelled_pair>(s.dataset_));
    }
    const auto b = static_cast<std::size_t>(config_.batch_size);
    for (auto* v : {&s.contexts_, &s.chosen_, &s.rejected_, &s.chosen_len_, &s.rejected_len_}) {
      v->resize(b);
    }
    for (auto* v : {&s.s_w_, &s.s_l_, &s.r_w_, &s.r_l_, &s.losses_, &s.g_w_, &s.g_l_}) {
      v->resize(config_.batch_size);
    }
    s.gradient_.resize(s.policy_.num_parameters());
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
    s.policy_.log_prob(chosen, s.s_w_);
    s.policy_.log_prob(rejected, s.s_l_);
    s.reference_.log_prob(chosen, s.r_w_);
    s.reference_.log_prob(rejected, s.r_l_);
    const losses::dpo_inputs<double> in{s.s_w_, s.s_l_, s.r_w_, s.r_l_, s.chosen_len_,
                                        s.rejected_len_};
    const auto metrics = loss_.template compute<double>(in, s.losses_, s.g_w_, s.g_l_);
    s.gradient_.setZero();
    s.policy_.accumulate_log_prob_gradient(chosen, s.g_w_, s.gradient_);
    s.policy_.accumulate_log_prob_gradient(rejected, s.g_l_, s.gradient_);
    s.optimizer_.step(s.policy_.parameters(), s.gradient_);
    s.policy_.recenter();
    ++s.t_;
    return {metrics.loss, metrics.rewards_accuracies, metrics.rewards_margins};
  }

 private:
  static index response_length(const preference_game& game, index x, index y) {
    return game.has_lengths() ? static_cast<index>(std::llround(game.lengths()(x, y))) : 1;
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
