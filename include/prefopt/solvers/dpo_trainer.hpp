#pragma once
/// \file
/// The direct-alignment family (DPO, IPO, hinge/SLiC, label-smoothed/cDPO, robust DPO, SimPO; any
/// `losses::dpo_variant`, `length_average` on every one) for any `SequenceModel` policy: one
/// `Solver` driven by `run`, offline from a `data::preference_dataset` or online with a judge.
///
/// Each step takes a minibatch of `batch_size` labelled pairs `(x, y_w, y_l)`, the sequence
/// log-probs `S_w, S_l` of the policy (`sequence/derived.hpp`), the reference's `R_w, R_l`, the
/// loss of `losses::dpo_loss<Variant>` (ALGORITHMS.md §3)
///
///     h = (S_w - R_w)/a_w - (S_l - R_l)/a_l,   a = max(n, 1) with length_average, else 1,
///
/// (n = response length in tokens, eos included: every token is a decision of the model), reduced
/// by its mean, and its gradient with respect to `S_w, S_l`, back-propagated into the policy's
/// parameters (`accumulate_sequence_log_prob_gradient`), then one optimizer step.
///
/// Where the pairs come from is the problem's `Feedback` type (`sequence_problem`):
/// - `data::preference_dataset` (**offline**, e.g. from the JSONL loader): minibatches cycle
///   through the records in an order reshuffled every epoch. The reference sums are the dataset's
///   `reference_chosen_logps` / `reference_rejected_logps` columns when both are present (for
///   instance from the reference log-prob cache, `io::apply_logprob_cache`), else they are
///   computed once in `init` with `problem.reference`. `problem.prompts` is not read (pass
///   `dataset.prompts().view()`).
/// - a `PreferenceModel` over `pair_batch<sequence_batch>` (**online** / iterative DPO): every
///   step draws `batch_size` prompts from `problem.prompts` (uniformly, with replacement), two
///   responses each from the current policy (`generate` with `problem.generation`), and one
///   Bernoulli label from the judge's `P(first > second)`; the reference sums are computed on the
///   fly.
///
/// The policy is a copy of `problem.reference` (its type must be copyable) held in the state. The
/// run is deterministic for a seed (the generator of the state draws prompts, sampling seeds and
/// labels), and bitwise the same for any thread count (the derived quantities' rows are
/// independent). A non-finite loss (e.g. IPO with a tiny `beta_dpo`, whose target 1/(2 beta_dpo)
/// overflows) is reported in `stats.loss` and the update is skipped, so `run` ends `diverged`.
/// Papers: Direct Preference Optimization (arXiv 2305.18290); A General Theoretical Paradigm to
/// Understand Learning from Human Preferences (IPO, arXiv 2310.12036); SLiC-HF (arXiv 2305.10425);
/// Provably Robust DPO (arXiv 2403.00409); SimPO (arXiv 2405.14734); Averaging log-likelihoods in
/// direct alignment (arXiv 2406.19188); iterative / online DPO (Xiong et al., arXiv 2312.11456).

#include <Eigen/Core>

#include <array>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <limits>
#include <span>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "prefopt/core/assert.hpp"
#include "prefopt/core/concepts.hpp"
#include "prefopt/core/random.hpp"
#include "prefopt/core/types.hpp"
#include "prefopt/data/preference_dataset.hpp"
#include "prefopt/losses/dpo.hpp"
#include "prefopt/sequence/derived.hpp"
#include "prefopt/solvers/common/optimizers.hpp"
#include "prefopt/solvers/common/sequence_problem.hpp"
#include "prefopt/solvers/common/sequence_sampling.hpp"

namespace prefopt {

/// Hyperparameters of `dpo_trainer`.
struct dpo_trainer_config {
  losses::dpo_config loss{};     ///< beta_dpo, length_average, eps_ls, gamma_simpo (mean reduction)
  index_t batch_size = 16;       ///< pairs per step, > 0
  optimizer_config optimizer{};  ///< Adam, lr 0.05 by default
  sequence_options scoring{};    ///< chunking of the derived log-probs (temperature must stay 1)
  std::uint64_t seed = 0;

  /// Throws `prefopt::invalid_argument` naming `function` and the bad field (the loss's own fields
  /// are checked by `losses::dpo_loss`).
  void validate(const char* function) const {
    PREFOPT_CHECK(batch_size > 0, invalid_argument, function, ": config.batch_size = ", batch_size,
                  ", expected > 0");
    PREFOPT_CHECK(loss.reduce == losses::reduction::mean, invalid_argument, function,
                  ": config.loss.reduce is not mean, expected the mean over the minibatch");
    PREFOPT_CHECK(scoring.max_positions >= 1, invalid_argument, function,
                  ": config.scoring.max_positions = ", scoring.max_positions, ", expected >= 1");
    PREFOPT_CHECK(scoring.temperature == 1.0, invalid_argument, function,
                  ": config.scoring.temperature = ", scoring.temperature,
                  ", expected 1 (DPO scores the model's own distribution)");
    optimizer.validate(function);
  }
};

/// Per-step statistics: the loss and the minibatch metrics under TRL's DPOTrainer names.
struct dpo_trainer_stats {
  double loss = 0.0;
  double rewards_chosen = 0.0;      ///< mean beta_dpo (log-ratio of y_w), `rewards/chosen`
  double rewards_rejected = 0.0;    ///< `rewards/rejected`
  double rewards_margins = 0.0;     ///< `rewards/margins`
  double rewards_accuracies = 0.0;  ///< `rewards/accuracies`
  double logps_chosen = 0.0;        ///< mean S_w, `logps/chosen`
  double logps_rejected = 0.0;      ///< `logps/rejected`
  double lengths_chosen = 0.0;      ///< `lengths/chosen`
  double lengths_rejected = 0.0;    ///< `lengths/rejected`

  [[nodiscard]] std::array<std::pair<std::string_view, double>, 9> named() const {
    return {{{"loss", loss},
             {"rewards/chosen", rewards_chosen},
             {"rewards/rejected", rewards_rejected},
             {"rewards/margins", rewards_margins},
             {"rewards/accuracies", rewards_accuracies},
             {"logps/chosen", logps_chosen},
             {"logps/rejected", logps_rejected},
             {"lengths/chosen", lengths_chosen},
             {"lengths/rejected", lengths_rejected}}};
  }
};

/// The loss of one minibatch and its gradient, for any `SequenceModel` policy (the computation
/// every `dpo_trainer` step makes, public for gradient checks and custom loops):
/// `gradient += d loss / d theta` (`gradient` has `policy.num_parameters()` entries), where
/// `loss` is the batch mean of `dpo_loss<Variant>` on the policy's sequence log-probs of `chosen`
/// and `rejected` (same prompts, one pair per sequence) against the reference sums
/// `reference_chosen` / `reference_rejected` (`[N]`; ignored, and may be empty, for SimPO).
/// Lengths are the responses' token counts. Returns the metrics; when the policy's log-probs are
/// not finite, returns `loss = NaN` and leaves `gradient` unchanged.
template <class Variant, SequenceModel M>
dpo_trainer_stats dpo_minibatch_loss(const losses::dpo_loss<Variant>& loss, const M& policy,
                                     const sequence_batch& chosen, const sequence_batch& rejected,
                                     Eigen::Ref<const vector_d> reference_chosen,
                                     Eigen::Ref<const vector_d> reference_rejected,
                                     Eigen::Ref<vector_t<typename M::scalar_type>> gradient,
                                     const sequence_options& scoring = {}) {
  constexpr const char* fn = "dpo_minibatch_loss";
  const index_t n = chosen.size();
  PREFOPT_CHECK(rejected.size() == n, shape_error, fn, ": chosen has ", n, " responses, rejected ",
                rejected.size(), ", expected one rejected response per chosen one");
  std::vector<index_t> len_w(static_cast<std::size_t>(n)), len_l(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i) {
    len_w[static_cast<std::size_t>(i)] = static_cast<index_t>(chosen.responses.sequence(i).size());
    len_l[static_cast<std::size_t>(i)] =
        static_cast<index_t>(rejected.responses.sequence(i).size());
  }
  // One concatenated batch (chosen, then rejected): one forward and one backward of 2N
  // sequences rather than two of each, and a model that keeps its forward for the backward that
  // follows (the shipped transformer does) computes it once.
  std::vector<index_t> prompt_offsets{0}, response_offsets{0};
  std::vector<token_id> prompt_tokens, response_tokens;
  for (const sequence_batch* b : {&chosen, &rejected}) {
    for (index_t i = 0; i < n; ++i) {
      const auto x = b->prompts.sequence(i);
      const auto y = b->responses.sequence(i);
      prompt_tokens.insert(prompt_tokens.end(), x.begin(), x.end());
      response_tokens.insert(response_tokens.end(), y.begin(), y.end());
      prompt_offsets.push_back(static_cast<index_t>(prompt_tokens.size()));
      response_offsets.push_back(static_cast<index_t>(response_tokens.size()));
    }
  }
  const sequence_batch both{{prompt_offsets, prompt_tokens}, {response_offsets, response_tokens}};
  vector_d s(2 * n), g(2 * n), losses(n), g_w(n), g_l(n);
  sequence_log_probs(policy, both, s, scoring);
  const vector_d s_w = s.head(n), s_l = s.tail(n);
  if (!s_w.allFinite() || !s_l.allFinite()) {
    dpo_trainer_stats bad;
    bad.loss = std::numeric_limits<double>::quiet_NaN();
    return bad;
  }
  const losses::dpo_inputs<double> in{s_w, s_l, reference_chosen, reference_rejected, len_w, len_l};
  const auto m = loss.template compute<double>(in, losses, g_w, g_l);
  const dpo_trainer_stats stats{
      m.loss,         m.rewards_chosen, m.rewards_rejected, m.rewards_margins, m.rewards_accuracies,
      m.logps_chosen, m.logps_rejected, m.lengths_chosen,   m.lengths_rejected};
  if (!std::isfinite(m.loss) || !g_w.allFinite() || !g_l.allFinite()) {
    return stats;  // run() reports the divergence; the gradient stays untouched
  }
  g << g_w, g_l;
  accumulate_sequence_log_prob_gradient(policy, both, g, gradient, scoring);
  return stats;
}

/// A DPO-family trainer (`Variant` from `losses::dpo_variant`) for any `SequenceModel`, offline or
/// online (file comment). `Solver` of `sequence_problem<M, data::preference_dataset>` and of
/// `sequence_problem<M, Judge>` for a `PreferenceModel` `Judge` over `sequence_batch`.
template <class Variant>
class dpo_trainer {
 public:
  using config_type = dpo_trainer_config;
  using step_stats = dpo_trainer_stats;

  /// The per-run state: the policy (a copy of the reference) and the optimizer, the data order.
  template <class M>
  class state {
   public:
    /// The current policy.
    [[nodiscard]] const M& policy() const noexcept { return policy_; }
    /// Steps taken.
    [[nodiscard]] long iteration() const noexcept { return t_; }
    /// Offline: the reference sums of every record (`[dataset size]`); online: empty.
    [[nodiscard]] const vector_d& reference_chosen() const noexcept { return ref_w_; }
    [[nodiscard]] const vector_d& reference_rejected() const noexcept { return ref_l_; }

   private:
    friend class dpo_trainer;
    state(const M& reference, const optimizer_config& o, std::uint64_t seed)
        : policy_(reference), optimizer_(o, reference.num_parameters()), gen_(seed, 0xd90) {}

    M policy_;
    optimizer optimizer_;
    rng gen_;
    vector_d ref_w_, ref_l_;
    std::vector<index_t> order_;
    std::size_t cursor_ = 0;
    long t_ = 0;
  };

  explicit dpo_trainer(const dpo_trainer_config& config = {})
      : config_(config), loss_(config.loss) {
    config.validate(name());
  }

  [[nodiscard]] const dpo_trainer_config& config() const noexcept { return config_; }
  [[nodiscard]] const losses::dpo_loss<Variant>& loss() const noexcept { return loss_; }

  /// Offline: copies the reference; takes the reference sums from the dataset or computes them.
  template <SequenceModel M>
  [[nodiscard]] state<M> init(const sequence_problem<M, data::preference_dataset>& problem) const {
    static_assert(std::copy_constructible<M>,
                  "prefopt::dpo_trainer: the model type must be copyable (the state holds the "
                  "policy, a copy of the reference)");
    problem.validate(name());
    const data::preference_dataset& d = *problem.feedback;
    PREFOPT_CHECK(!d.empty(), invalid_argument, name(),
                  ": problem.feedback (the dataset) is empty, expected at least one pair");
    state<M> s(*problem.reference, config_.optimizer, config_.seed);
    const index_t n = d.size();
    s.ref_w_.resize(n);
    s.ref_l_.resize(n);
    using data::logprob_column;
    using data::logprob_layout;
    if (d.layout(logprob_column::reference_chosen) != logprob_layout::none &&
        d.layout(logprob_column::reference_rejected) != logprob_layout::none) {
      const auto& w = d.sequence_logps(logprob_column::reference_chosen);
      const auto& l = d.sequence_logps(logprob_column::reference_rejected);
      for (index_t i = 0; i < n; ++i) {
        s.ref_w_(i) = w[static_cast<std::size_t>(i)];
        s.ref_l_(i) = l[static_cast<std::size_t>(i)];
      }
    } else if (Variant::uses_reference) {
      const sequence_batch chosen{d.prompts().view(), d.chosen().view()};
      const sequence_batch rejected{d.prompts().view(), d.rejected().view()};
      sequence_log_probs(*problem.reference, chosen, s.ref_w_, config_.scoring);
      sequence_log_probs(*problem.reference, rejected, s.ref_l_, config_.scoring);
    } else {
      s.ref_w_.setZero();
      s.ref_l_.setZero();
    }
    s.order_.resize(static_cast<std::size_t>(n));
    for (index_t i = 0; i < n; ++i) s.order_[static_cast<std::size_t>(i)] = i;
    s.gen_.shuffle(std::span<index_t>(s.order_));
    return s;
  }

  /// Online: copies the reference; pairs are drawn in `step`.
  /// A judge of the wrong shape fails with the `check_preference_model` sentences.
  template <SequenceModel M, class Judge>
  [[nodiscard]] state<M> init(const sequence_problem<M, Judge>& problem) const {
    static_assert(check_preference_model<Judge>());
    static_assert(std::same_as<typename Judge::batch_type, sequence_batch>,
                  "prefopt::dpo_trainer: the judge's batch_type must be prefopt::sequence_batch "
                  "(or pass a data::preference_dataset for offline training)");
    static_assert(std::copy_constructible<M>,
                  "prefopt::dpo_trainer: the model type must be copyable (the state holds the "
                  "policy, a copy of the reference)");
    problem.validate(name());
    return state<M>(*problem.reference, config_.optimizer, config_.seed);
  }

  /// Offline step: the next `batch_size` records (reshuffled every epoch), one optimizer step.
  template <SequenceModel M>
  step_stats step(const sequence_problem<M, data::preference_dataset>& problem, state<M>& s) const {
    const data::preference_dataset& d = *problem.feedback;
    std::vector<index_t> picked(static_cast<std::size_t>(config_.batch_size));
    for (auto& p : picked) {
      if (s.cursor_ == s.order_.size()) {  // next epoch: reshuffle
        s.cursor_ = 0;
        s.gen_.shuffle(std::span<index_t>(s.order_));
      }
      p = s.order_[s.cursor_++];
    }
    const data::preference_batch b = d.batch(picked);
    vector_d r_w(config_.batch_size), r_l(config_.batch_size);
    for (index_t k = 0; k < config_.batch_size; ++k) {
      r_w(k) = s.ref_w_(picked[static_cast<std::size_t>(k)]);
      r_l(k) = s.ref_l_(picked[static_cast<std::size_t>(k)]);
    }
    return update(s, b, r_w, r_l);
  }

  /// Online step: fresh pairs from the current policy, labelled by the judge.
  template <SequenceModel M, class Judge>
  step_stats step(const sequence_problem<M, Judge>& problem, state<M>& s) const {
    std::vector<index_t> picks;
    detail::draw_prompt_indices(s.gen_, problem.prompts.num_sequences(), config_.batch_size, picks);
    data::ragged_buffer<token_id> prompts;
    detail::gather_sequences(problem.prompts, picks, prompts);
    std::vector<index_t> ids(picks.size());
    for (std::size_t k = 0; k < ids.size(); ++k) {
      ids[k] = static_cast<index_t>(s.t_) * config_.batch_size + static_cast<index_t>(k);
    }
    data::preference_dataset fresh;
    detail::sample_judged_pairs(s.policy_, *problem.feedback, prompts.view(), ids,
                                problem.generation, s.gen_, fresh);
    std::vector<index_t> all(static_cast<std::size_t>(fresh.size()));
    for (std::size_t k = 0; k < all.size(); ++k) all[k] = static_cast<index_t>(k);
    const data::preference_batch b = fresh.batch(all);
    vector_d r_w = vector_d::Zero(b.size()), r_l = vector_d::Zero(b.size());
    if constexpr (Variant::uses_reference) {
      sequence_log_probs(*problem.reference, {b.prompts.view(), b.chosen.view()}, r_w,
                         config_.scoring);
      sequence_log_probs(*problem.reference, {b.prompts.view(), b.rejected.view()}, r_l,
                         config_.scoring);
    }
    return update(s, b, r_w, r_l);
  }

 private:
  [[nodiscard]] static constexpr const char* name() noexcept { return "dpo_trainer"; }

  template <SequenceModel M>
  step_stats update(state<M>& s, const data::preference_batch& b, const vector_d& r_w,
                    const vector_d& r_l) const {
    using T = typename M::scalar_type;
    vector_t<T> gradient = vector_t<T>::Zero(s.policy_.num_parameters());
    const sequence_batch chosen{b.prompts.view(), b.chosen.view()};
    const sequence_batch rejected{b.prompts.view(), b.rejected.view()};
    const step_stats stats =
        dpo_minibatch_loss(loss_, s.policy_, chosen, rejected, r_w, r_l, gradient, config_.scoring);
    if (std::isfinite(stats.loss)) s.optimizer_.step(s.policy_.parameters(), gradient);
    ++s.t_;
    return stats;
  }

  dpo_trainer_config config_;
  losses::dpo_loss<Variant> loss_;
};

/// DPO (sigmoid); `loss.length_average = true` gives length-averaged DPO.
using sequence_dpo = dpo_trainer<losses::dpo_variant::sigmoid>;
/// IPO (`loss.length_average = true`: TRL's offline IPO).
using sequence_ipo = dpo_trainer<losses::dpo_variant::ipo>;
/// Hinge (SLiC-HF) with reference.
using sequence_slic = dpo_trainer<losses::dpo_variant::hinge>;
/// Conservative (label-smoothed) DPO, `loss.eps_ls` in [0, 0.5).
using sequence_cdpo = dpo_trainer<losses::dpo_variant::label_smoothed>;
/// Robust DPO, `loss.eps_ls` = label-flip rate.
using sequence_robust_dpo = dpo_trainer<losses::dpo_variant::robust>;
/// SimPO (reference-free; the paper's form with `loss.length_average = true`).
using sequence_simpo = dpo_trainer<losses::dpo_variant::simpo>;

}  // namespace prefopt
