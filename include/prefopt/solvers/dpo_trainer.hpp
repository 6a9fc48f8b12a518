#pragma once
/// \file
/// The direct-alignment family (DPO, IPO, hinge/SLiC, label-smoothed/cDPO, robust DPO, SimPO; any
/// `losses::dpo_variant`, `length_average` on every one) for any `SequenceModel` policy and for
/// tabular preference games: one `Solver` driven by `run`, offline from a
/// `data::preference_dataset` or from pairs of the reference, or online with a judge.
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
/// - a `PreferenceModel` over `pair_batch<sequence_batch>` with `config.source = online`
///   (**online** / iterative DPO, the default): every step draws `batch_size` prompts from
///   `problem.prompts` (uniformly, with replacement), two responses each from the current policy
///   (`generate` with `problem.generation`), and one Bernoulli label from the judge's
///   `P(first > second)`; the reference sums are computed on the fly. With `config.source =
///   offline` (the original DPO setting), `init` draws `dataset_size` such pairs from the
///   reference once and the steps cycle through them as through a dataset.
/// - a `preference_game` (tabular DPO): the policy is the game's table viewed as a one-token
///   model (`tabular_sequence_model`, starting at `mu`), the pairs are `x ~ rho`, responses from
///   the reference (`offline`: `dataset_size` pairs drawn once) or from the current policy
///   (`online`), labels from `P[x]` (`sample_labelled_pair`); the lengths of length averaging are
///   the game's response lengths (`game.lengths()`, 1 without them). `state.policy()` is the
///   table; its logits are re-centred after every step (the softmax gauge).
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
#include "prefopt/games/preference_game.hpp"
#include "prefopt/losses/dpo.hpp"
#include "prefopt/policies/sequence_adapters.hpp"
#include "prefopt/sequence/derived.hpp"
#include "prefopt/solvers/common/game_sampling.hpp"
#include "prefopt/solvers/common/optimizers.hpp"
#include "prefopt/solvers/common/sequence_problem.hpp"
#include "prefopt/solvers/common/sequence_sampling.hpp"

namespace prefopt {

/// Where `dpo_trainer`'s pairs come from when the problem labels its own (a judge or a game).
enum class pair_source {
  /// `dataset_size` pairs of the reference, drawn once in `init` (the original DPO setting).
  offline,
  /// Fresh pairs of the current policy every step (online / iterative DPO).
  online
};

/// Hyperparameters of `dpo_trainer`.
struct dpo_trainer_config {
  losses::dpo_config loss{};  ///< beta_dpo, length_average, eps_ls, gamma_simpo (mean reduction)
  /// With a judge or a `preference_game`: pairs of the reference once, or of the current policy
  /// every step. Not read with a `data::preference_dataset` (offline by nature).
  pair_source source = pair_source::online;
  index_t dataset_size = 4096;   ///< pairs drawn in `init` for `source = offline`, > 0
  index_t batch_size = 16;       ///< pairs per step, > 0
  optimizer_config optimizer{};  ///< Adam, lr 0.05 by default
  sequence_options scoring{};    ///< chunking of the derived log-probs (temperature must stay 1)
  std::uint64_t seed = 0;

  /// Throws `prefopt::invalid_argument` naming `function` and the bad field (the loss's own fields
  /// are checked by `losses::dpo_loss`).
  void validate(const char* function) const {
    PREFOPT_CHECK(batch_size > 0, invalid_argument, function, ": config.batch_size = ", batch_size,
                  ", expected > 0");
    PREFOPT_CHECK(source == pair_source::online || dataset_size > 0, invalid_argument, function,
                  ": config.dataset_size = ", dataset_size,
                  ", expected > 0 for config.source = offline");
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
/// Lengths are the responses' token counts, unless `chosen_lengths` / `rejected_lengths` give
/// them (`[N]` each, >= 0: e.g. a game's response lengths). Returns the metrics; when the
/// policy's log-probs are not finite, returns `loss = NaN` and leaves `gradient` unchanged.
template <class Variant, SequenceModel M>
dpo_trainer_stats dpo_minibatch_loss(const losses::dpo_loss<Variant>& loss, const M& policy,
                                     const sequence_batch& chosen, const sequence_batch& rejected,
                                     Eigen::Ref<const vector_d> reference_chosen,
                                     Eigen::Ref<const vector_d> reference_rejected,
                                     Eigen::Ref<vector_t<typename M::scalar_type>> gradient,
                                     const sequence_options& scoring = {},
                                     std::span<const index_t> chosen_lengths = {},
                                     std::span<const index_t> rejected_lengths = {}) {
  constexpr const char* fn = "dpo_minibatch_loss";
  const index_t n = chosen.size();
  PREFOPT_CHECK(rejected.size() == n, shape_error, fn, ": chosen has ", n, " responses, rejected ",
                rejected.size(), ", expected one rejected response per chosen one");
  auto lengths_of = [&](const sequence_batch& b, std::span<const index_t> given, const char* what) {
    PREFOPT_CHECK(given.empty() || static_cast<index_t>(given.size()) == n, shape_error, fn, ": ",
                  what, " has ", given.size(), " entries, expected ", n, " (or none)");
    std::vector<index_t> out(static_cast<std::size_t>(n));
    for (index_t i = 0; i < n; ++i) {
      const auto u = static_cast<std::size_t>(i);
      out[u] = given.empty() ? static_cast<index_t>(b.responses.sequence(i).size()) : given[u];
      PREFOPT_CHECK(out[u] >= 0, invalid_argument, fn, ": ", what, "[", i, "] = ", out[u],
                    ", expected >= 0");
    }
    return out;
  };
  const std::vector<index_t> len_w = lengths_of(chosen, chosen_lengths, "chosen_lengths");
  const std::vector<index_t> len_l = lengths_of(rejected, rejected_lengths, "rejected_lengths");
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

/// A DPO-family trainer (`Variant` from `losses::dpo_variant`) for any `SequenceModel` and for
/// preference games (file comment). `Solver` of `sequence_problem<M, data::preference_dataset>`,
/// of `sequence_problem<M, Judge>` for a `PreferenceModel` `Judge` over `sequence_batch`, and of
/// `preference_game`.
template <class Variant>
class dpo_trainer {
 public:
  using config_type = dpo_trainer_config;
  using step_stats = dpo_trainer_stats;

  /// The per-run state of a sequence problem: the policy (a copy of the reference), the
  /// optimizer, the offline pairs and their order.
  template <class M>
  class state {
   public:
    /// The current policy.
    [[nodiscard]] const M& policy() const noexcept { return policy_; }
    /// Steps taken.
    [[nodiscard]] index_t iteration() const noexcept { return t_; }
    /// Offline: the reference sums of every record (`[dataset size]`); online: empty.
    [[nodiscard]] const vector_d& reference_chosen() const noexcept { return ref_w_; }
    [[nodiscard]] const vector_d& reference_rejected() const noexcept { return ref_l_; }
    /// The pairs drawn from the reference in `init` (a judge with `source = offline`; else empty).
    [[nodiscard]] const data::preference_dataset& drawn_pairs() const noexcept { return drawn_; }

   private:
    friend class dpo_trainer;
    state(const M& reference, const optimizer_config& o, std::uint64_t seed)
        : policy_(reference), optimizer_(o, reference.num_parameters()), gen_(seed, 0xd90) {}

    M policy_;
    optimizer optimizer_;
    rng gen_;
    vector_d ref_w_, ref_l_;
    data::preference_dataset drawn_;
    std::vector<index_t> order_;
    std::size_t cursor_ = 0;
    index_t t_ = 0;
  };

  /// The per-run state of a preference game: the table (viewed as a one-token model) and the
  /// reference `mu`, the optimizer, the offline pairs.
  class game_state {
   public:
    /// The current iterate (logits re-centred).
    [[nodiscard]] const tabular_softmax_policy& policy() const noexcept { return policy_.policy(); }
    /// Steps taken.
    [[nodiscard]] index_t iteration() const noexcept { return t_; }

   private:
    friend class dpo_trainer;
    game_state(const preference_game& game, const optimizer_config& o, std::uint64_t seed)
        : policy_(reference_policy(game)),
          reference_(reference_policy(game)),
          optimizer_(o, policy_.num_parameters()),
          gen_(seed, /*stream=*/0x5d0) {}

    tabular_sequence_model policy_, reference_;
    optimizer optimizer_;
    rng gen_;
    std::vector<labelled_pair> dataset_;
    std::size_t cursor_ = 0;
    index_t t_ = 0;
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
    check_copyable<M>();
    problem.validate(name());
    const data::preference_dataset& d = *problem.feedback;
    PREFOPT_CHECK(!d.empty(), invalid_argument, name(),
                  ": problem.feedback (the dataset) is empty, expected at least one pair");
    state<M> s(*problem.reference, config_.optimizer, config_.seed);
    prepare_offline(*problem.reference, d, s);
    return s;
  }

  /// With a judge: copies the reference; `offline` draws the reference's pairs here, `online`
  /// draws pairs in `step`. A judge of the wrong shape fails with the `check_preference_model`
  /// sentences.
  template <SequenceModel M, class Judge>
  [[nodiscard]] state<M> init(const sequence_problem<M, Judge>& problem) const {
    static_assert(check_preference_model<Judge>());
    static_assert(std::same_as<typename Judge::batch_type, sequence_batch>,
                  "prefopt::dpo_trainer: the judge's batch_type must be prefopt::sequence_batch "
                  "(or pass a data::preference_dataset for offline training)");
    check_copyable<M>();
    problem.validate(name());
    state<M> s(*problem.reference, config_.optimizer, config_.seed);
    if (config_.source == pair_source::offline) {
      draw_pairs(*problem.reference, problem, config_.dataset_size, 0, s.gen_, s.drawn_);
      prepare_offline(*problem.reference, s.drawn_, s);
    }
    return s;
  }

  /// A game: starts at `mu`; `offline` draws the reference's pairs here.
  [[nodiscard]] game_state init(const preference_game& game) const {
    game_state s(game, config_.optimizer, config_.seed);
    if (config_.source == pair_source::offline) {
      s.dataset_.reserve(static_cast<std::size_t>(config_.dataset_size));
      for (index_t i = 0; i < config_.dataset_size; ++i) {
        s.dataset_.push_back(
            sample_labelled_pair(game, s.reference_.policy(), s.reference_.policy(), s.gen_));
      }
      s.gen_.shuffle(std::span<labelled_pair>(s.dataset_));
    }
    return s;
  }

  /// Offline step: the next `batch_size` records (reshuffled every epoch), one optimizer step.
  template <SequenceModel M>
  step_stats step(const sequence_problem<M, data::preference_dataset>& problem, state<M>& s) const {
    return offline_step(*problem.feedback, s);
  }

  /// With a judge: the next offline records, or fresh pairs from the current policy.
  template <SequenceModel M, class Judge>
  step_stats step(const sequence_problem<M, Judge>& problem, state<M>& s) const {
    if (config_.source == pair_source::offline) return offline_step(s.drawn_, s);
    data::preference_dataset fresh;
    draw_pairs(s.policy_, problem, config_.batch_size, s.t_ * config_.batch_size, s.gen_, fresh);
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
    return update(s.policy_, s.optimizer_, {b.prompts.view(), b.chosen.view()},
                  {b.prompts.view(), b.rejected.view()}, r_w, r_l, {}, {}, s.t_);
  }

  /// A game: the next offline pairs or fresh pairs of the current policy, one optimizer step on
  /// the one-token sequences `[x] -> [y, eos]` with the game's lengths.
  step_stats step(const preference_game& game, game_state& s) const {
    const auto n = static_cast<std::size_t>(config_.batch_size);
    std::vector<index_t> contexts(n), chosen(n), rejected(n), len_w(n), len_l(n);
    for (std::size_t i = 0; i < n; ++i) {
      labelled_pair pair;
      if (config_.source == pair_source::online) {
        pair = sample_labelled_pair(game, s.policy_.policy(), s.policy_.policy(), s.gen_);
      } else {
        if (s.cursor_ == s.dataset_.size()) {  // next epoch: reshuffle
          s.cursor_ = 0;
          s.gen_.shuffle(std::span<labelled_pair>(s.dataset_));
        }
        pair = s.dataset_[s.cursor_++];
      }
      contexts[i] = pair.context;
      chosen[i] = pair.chosen;
      rejected[i] = pair.rejected;
      len_w[i] = response_length(game, pair.context, pair.chosen);
      len_l[i] = response_length(game, pair.context, pair.rejected);
    }
    std::vector<index_t> po_w, ro_w, po_l, ro_l;
    std::vector<token_id> pt_w, rt_w, pt_l, rt_l;
    const sequence_batch w = s.policy_.to_sequences({contexts, chosen}, po_w, pt_w, ro_w, rt_w);
    const sequence_batch l = s.policy_.to_sequences({contexts, rejected}, po_l, pt_l, ro_l, rt_l);
    vector_d r_w = vector_d::Zero(config_.batch_size), r_l = r_w;
    if constexpr (Variant::uses_reference) {
      sequence_log_probs(s.reference_, w, r_w, config_.scoring);
      sequence_log_probs(s.reference_, l, r_l, config_.scoring);
    }
    const step_stats stats = update(s.policy_, s.optimizer_, w, l, r_w, r_l, len_w, len_l, s.t_);
    s.policy_.policy().recenter();
    return stats;
  }

 private:
  [[nodiscard]] static constexpr const char* name() noexcept { return "dpo_trainer"; }

  template <class M>
  static void check_copyable() {
    static_assert(std::copy_constructible<M>,
                  "prefopt::dpo_trainer: the model type must be copyable (the state holds the "
                  "policy, a copy of the reference)");
  }

  static index_t response_length(const preference_game& game, index_t x, index_t y) {
    return game.has_lengths() ? static_cast<index_t>(std::llround(game.lengths()(x, y))) : 1;
  }

  /// `count` prompts drawn uniformly from the problem's pool, two responses each from `sampler`,
  /// labelled by the judge (`first_id` numbers the prompts' sampling streams).
  template <SequenceModel M, class Judge>
  static void draw_pairs(const M& sampler, const sequence_problem<M, Judge>& problem, index_t count,
                         index_t first_id, rng& gen, data::preference_dataset& out) {
    std::vector<index_t> picks;
    detail::draw_prompt_indices(gen, problem.prompts.num_sequences(), count, picks);
    data::ragged_buffer<token_id> prompts;
    detail::gather_sequences(problem.prompts, picks, prompts);
    std::vector<index_t> ids(picks.size());
    for (std::size_t k = 0; k < ids.size(); ++k) ids[k] = first_id + static_cast<index_t>(k);
    detail::sample_judged_pairs(sampler, *problem.feedback, prompts.view(), ids, problem.generation,
                                gen, out);
  }

  /// The reference sums of every record of `d` (its columns, or computed with `reference`) and a
  /// shuffled order.
  template <SequenceModel M>
  void prepare_offline(const M& reference, const data::preference_dataset& d, state<M>& s) const {
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
      sequence_log_probs(reference, {d.prompts().view(), d.chosen().view()}, s.ref_w_,
                         config_.scoring);
      sequence_log_probs(reference, {d.prompts().view(), d.rejected().view()}, s.ref_l_,
                         config_.scoring);
    } else {
      s.ref_w_.setZero();
      s.ref_l_.setZero();
    }
    s.order_.resize(static_cast<std::size_t>(n));
    for (index_t i = 0; i < n; ++i) s.order_[static_cast<std::size_t>(i)] = i;
    s.gen_.shuffle(std::span<index_t>(s.order_));
  }

  template <SequenceModel M>
  step_stats offline_step(const data::preference_dataset& d, state<M>& s) const {
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
    return update(s.policy_, s.optimizer_, {b.prompts.view(), b.chosen.view()},
                  {b.prompts.view(), b.rejected.view()}, r_w, r_l, {}, {}, s.t_);
  }

  /// The minibatch loss and gradient, one optimizer step unless the loss is not finite.
  template <SequenceModel M>
  step_stats update(M& policy, optimizer& opt, const sequence_batch& chosen,
                    const sequence_batch& rejected, const vector_d& r_w, const vector_d& r_l,
                    std::span<const index_t> len_w, std::span<const index_t> len_l,
                    index_t& t) const {
    using T = typename M::scalar_type;
    vector_t<T> gradient = vector_t<T>::Zero(policy.num_parameters());
    const step_stats stats = dpo_minibatch_loss(loss_, policy, chosen, rejected, r_w, r_l, gradient,
                                                config_.scoring, len_w, len_l);
    if (std::isfinite(stats.loss)) opt.step(policy.parameters(), gradient);
    ++t;
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

/// The same trainers under the names of their tabular use (`step` on a `preference_game`).
using tabular_dpo = sequence_dpo;
using tabular_ipo = sequence_ipo;
using tabular_slic = sequence_slic;
using tabular_simpo = sequence_simpo;

}  // namespace prefopt
