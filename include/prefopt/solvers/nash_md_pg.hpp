#pragma once
/// \file
/// Nash-MD-PG and Nash-EMA-PG for any `SequenceModel` (Nash Learning from Human Feedback, Munos et
/// al., arXiv 2312.00886, §7 and App. F; ALGORITHMS.md §6), driven by `prefopt::run` on a
/// `sequence_problem<Reference, Judge>` whose feedback is a `PreferenceModel` over
/// `pair_batch<sequence_batch>` (possibly intransitive: no reward model is needed).
///
/// One `step`, for `batch_size` prompts `x_i` drawn from the pool:
/// 1. `y_i ~ pi_theta(. | x_i)` (the library's generation with `problem.generation`);
/// 2. the opponent `y'_i ~ pi'(. | x_i)`: the per-token geometric mixture
///    `pi' ∝ pi_theta^(1 - beta_mix) mu^beta_mix` (`generate_mixture`; `opponent = mixture`,
///    Nash-MD-PG), or the model whose parameters are an exponential moving average of the
///    policy's, `theta_bar <- ema_decay theta_bar + (1 - ema_decay) theta` after every step
///    (`opponent = ema`, Nash-EMA-PG, started at the reference);
/// 3. `p_i = P(y_i > y'_i | x_i)` from the judge (a probability or a 0/1 outcome);
/// 4. the KL-regularised policy-gradient surrogate (`losses::nash_md_pg_surrogate`), with
///    `l_n = log pi_theta(y_n | x, y_<n)` and `d_n = l_n - log mu(y_n | x, y_<n)` at the sampling
///    temperature:
///
///        L(theta) = -(1/B) sum_i sum_n sg(p_i - 1/2 - beta c_n) l_n,
///        c_n = sum_{m >= n} d_m (kl_credit::reward_to_go, unbiased; default)
///            = d_n          (kl_credit::same_position, TRL >= v0.12),
///
///    whose gradient is, in expectation, minus the gradient of the regularised preference
///    `P(pi_theta > pi') - beta KL(pi_theta, mu)` against the frozen opponent;
/// 5. one optimizer step on theta (`config.optimizer`, Adam by default).
///
/// The policy is a copy of the reference held in the state (`state.policy()`); the reference and
/// the judge are the problem's. Deterministic for `config.seed` (every random stream derives from
/// it and the step number). Not supported: a reward model as the judge (wrap it with
/// `bradley_terry_preference`), per-step schedules of `beta` or `mixture_coef`, missing-eos
/// penalties.
///
/// Metrics (`nash_md_pg_step_stats`), named after the ones TRL's `NashMDTrainer` logged (TRL
/// removed the trainer in 2026), with the meaning they have here:
/// - `loss`: the surrogate `L` above at the step's parameters;
/// - `score_loss` ("loss/score"): `-(1/B) sum_i (p_i - 1/2) S_theta(y_i)`, the preference part;
/// - `kl_loss` ("loss/kl"): `(beta/B) sum_i sum_n c_n l_n`, the KL part (`loss = score_loss +
///   kl_loss`);
/// - `objective_kl` ("objective/kl"): `(1/B) sum_i sum_n d_n`, the k1 estimate of
///   `KL(pi_theta, mu)` on the policy's samples;
/// - `objective_entropy` ("objective/entropy"): `-(1/B) sum_i S_theta(y_i)`, the sequence entropy
///   estimate;
/// - `objective_non_score_reward` ("objective/non_score_reward"): `-beta objective_kl`;
/// - `objective_scores` ("objective/scores"): the mean preference `(1/B) sum_i p_i` (TRL: the
///   reward model's mean score of `y`; here the judge's probability);
/// - `objective_rlhf_reward` ("objective/rlhf_reward"): `objective_scores - beta objective_kl`;
/// - `rewards_probabilities` ("rewards/probabilities"): `(1/B) sum_i p_i` (the same number);
/// - `rewards_accuracies` ("rewards/accuracies"): the fraction of pairs with `p_i > 1/2`;
/// - `rewards_margins` ("rewards/margins"): `(1/B) sum_i (2 p_i - 1) = P(y > y') - P(y' > y)`.
///   TRL's code logged the mean difference of reward-model scores of `y` and `y'` while its
///   docs described a margin of implicit rewards; with a pairwise judge there are no scores, so
///   prefopt logs the preference margin;
/// - `logps_chosen` / `logps_rejected` ("logps/chosen", "logps/rejected"): mean `S_theta` of the
///   policy's samples `y` and of the opponent's samples `y'` (TRL's naming: "chosen" is the
///   policy's sample whether or not it won);
/// - `model_contain_eos` / `opponent_contain_eos` ("val/model_contain_eos_token",
///   "val/ref_contain_eos_token"): fraction of `y` / `y'` that ended with eos;
/// - `beta`, `mixture_coef`: the settings used.

#include <Eigen/Core>

#include <cmath>
#include <concepts>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "prefopt/core/assert.hpp"
#include "prefopt/core/concepts.hpp"
#include "prefopt/core/error.hpp"
#include "prefopt/core/types.hpp"
#include "prefopt/losses/nash_pg.hpp"
#include "prefopt/sequence/derived.hpp"
#include "prefopt/sequence/generation.hpp"
#include "prefopt/solvers/common/optimizers.hpp"
#include "prefopt/solvers/common/prompt_batch.hpp"
#include "prefopt/solvers/common/sequence_problem.hpp"

namespace prefopt {

/// The opponent Nash-MD-PG plays against.
enum class nash_pg_opponent {
  mixture,  ///< per-token geometric mixture of policy and reference (Nash-MD-PG)
  ema,      ///< exponential moving average of the policy's parameters (Nash-EMA-PG)
};

/// Hyperparameters of `nash_md_pg` (defaults: TRL's `beta = 0.1`, `mixture_coef = 0.5`; the
/// paper's best `beta = 0.008`, `beta_mix = 0.125` on TL;DR).
struct nash_md_pg_config {
  double beta = 0.1;          ///< KL weight `tau` (>= 0)
  double mixture_coef = 0.5;  ///< `beta_mix` of the mixture opponent, in [0, 1]
  losses::kl_credit kl_credit = losses::kl_credit::reward_to_go;
  nash_pg_opponent opponent = nash_pg_opponent::mixture;
  double ema_decay = 0.99;  ///< Nash-EMA-PG's `beta_ema`, in [0, 1)
  index_t batch_size = 16;  ///< prompts per step (>= 1), one policy and one opponent sample each
  optimizer_config optimizer{};
  std::uint64_t seed = 0;
  /// Chunking of the derived quantities (its `temperature` is replaced by the sampling one).
  sequence_options scoring{};

  /// Throws `prefopt::invalid_argument` naming `function` and the bad field.
  void validate(const char* function) const {
    PREFOPT_CHECK(std::isfinite(beta) && beta >= 0.0, invalid_argument, function,
                  ": config.beta = ", beta, ", expected a finite value >= 0");
    PREFOPT_CHECK(mixture_coef >= 0.0 && mixture_coef <= 1.0, invalid_argument, function,
                  ": config.mixture_coef = ", mixture_coef, ", expected a value in [0, 1]");
    PREFOPT_CHECK(ema_decay >= 0.0 && ema_decay < 1.0, invalid_argument, function,
                  ": config.ema_decay = ", ema_decay, ", expected a value in [0, 1)");
    PREFOPT_CHECK(batch_size >= 1, invalid_argument, function, ": config.batch_size = ", batch_size,
                  ", expected >= 1");
    PREFOPT_CHECK(scoring.max_positions >= 1, invalid_argument, function,
                  ": config.scoring.max_positions = ", scoring.max_positions, ", expected >= 1");
    optimizer.validate(function);
  }
};

/// One step's statistics (see the file comment for each metric's meaning).
struct nash_md_pg_step_stats {
  double loss = 0.0;
  double score_loss = 0.0;
  double kl_loss = 0.0;
  double objective_kl = 0.0;
  double objective_entropy = 0.0;
  double objective_non_score_reward = 0.0;
  double objective_scores = 0.0;
  double objective_rlhf_reward = 0.0;
  double rewards_probabilities = 0.0;
  double rewards_accuracies = 0.0;
  double rewards_margins = 0.0;
  double logps_chosen = 0.0;
  double logps_rejected = 0.0;
  double model_contain_eos = 0.0;
  double opponent_contain_eos = 0.0;
  double beta = 0.0;
  double mixture_coef = 0.0;
  double gradient_norm = 0.0;  ///< Euclidean norm of `dL/dtheta` before the optimizer step
};

/// The value of the Nash-MD-PG surrogate on a scored batch and its gradient (`+=` into
/// `gradient`, `[policy.num_parameters()]`; the multiplier is a stop-gradient, file comment).
/// `batch` holds the policy's samples `y_i`, `preferences[i] = P(y_i > y'_i)`; log-probs are
/// computed at `options.temperature`. Returns the surrogate's statistics
/// (`losses::nash_pg_stats`); `token_policy_logps` / `token_reference_logps`, when given, receive
/// the per-token `l_n` and `log mu` (`[T]`).
template <SequenceModel M, SequenceModel R>
losses::nash_pg_stats<double> nash_md_pg_loss_gradient(
    const M& policy, const R& reference, const sequence_batch& batch,
    Eigen::Ref<const vector_d> preferences, double beta, losses::kl_credit credit,
    Eigen::Ref<vector_t<typename M::scalar_type>> gradient, const sequence_options& options = {},
    vector_d* token_policy_logps = nullptr, vector_d* token_reference_logps = nullptr) {
  const index_t t = batch.responses.total_length();
  vector_d l(t), lr(t), g(t);
  token_log_probs(policy, batch, l, options);
  token_log_probs(reference, batch, lr, options);
  const std::span<const index_t> offsets = batch.responses.offsets;
  std::vector<index_t> rel(offsets.begin(), offsets.end());
  for (auto& o : rel) o -= offsets.front();
  const ragged_view<const double> lv{rel, {l.data(), static_cast<std::size_t>(t)}};
  const ragged_view<const double> lrv{rel, {lr.data(), static_cast<std::size_t>(t)}};
  const ragged_view<double> gv{rel, {g.data(), static_cast<std::size_t>(t)}};
  const auto stats = losses::nash_md_pg_surrogate<double>(lv, lrv, preferences, beta, gv, credit);
  token_weights w;
  w.log_probs = {g.data(), static_cast<std::size_t>(t)};
  accumulate_token_gradient(policy, batch, w, gradient, options);
  if (token_policy_logps != nullptr) *token_policy_logps = std::move(l);
  if (token_reference_logps != nullptr) *token_reference_logps = std::move(lr);
  return stats;
}

/// Nash-MD-PG / Nash-EMA-PG trainer (file comment). `Reference` is the user's `SequenceModel`
/// (copyable: the policy is a copy), `Judge` a `PreferenceModel` over `sequence_batch` pairs.
class nash_md_pg {
 public:
  using config_type = nash_md_pg_config;
  using step_stats = nash_md_pg_step_stats;
  static constexpr const char* name = "nash_md_pg";

  /// The trainer's state: the policy, the EMA opponent (Nash-EMA-PG) and the optimizer.
  template <class Model>
  class state {
   public:
    state(const Model& reference, const optimizer_config& opt, bool ema)
        : policy_(reference), optimizer_(opt, reference.num_parameters()) {
      if (ema) ema_.emplace(reference);
    }
    [[nodiscard]] const Model& policy() const noexcept { return policy_; }
    [[nodiscard]] Model& mutable_policy() noexcept { return policy_; }
    /// The Nash-EMA-PG opponent (null for the mixture opponent).
    [[nodiscard]] const Model* ema_opponent() const noexcept { return ema_ ? &*ema_ : nullptr; }
    [[nodiscard]] index_t iteration() const noexcept { return iteration_; }

   private:
    friend class nash_md_pg;
    Model policy_;
    std::optional<Model> ema_;
    optimizer optimizer_;
    index_t iteration_ = 0;
  };

  explicit nash_md_pg(const config_type& config = {}) : config_(config) { config_.validate(name); }
  [[nodiscard]] const config_type& config() const noexcept { return config_; }

  template <SequenceModel Reference, PreferenceModel Judge>
  requires std::copy_constructible<Reference> &&
      std::same_as<typename Judge::batch_type, sequence_batch>
  [[nodiscard]] state<Reference> init(const sequence_problem<Reference, Judge>& problem) const {
    static_assert(check_sequence_model<Reference>());
    static_assert(check_preference_model<Judge>());
    problem.validate("nash_md_pg::init");
    return state<Reference>(*problem.reference, config_.optimizer,
                            config_.opponent == nash_pg_opponent::ema);
  }

  template <SequenceModel Reference, PreferenceModel Judge>
  requires std::copy_constructible<Reference> &&
      std::same_as<typename Judge::batch_type, sequence_batch>
          step_stats step(const sequence_problem<Reference, Judge>& problem, state<Reference>& s)
  const {
    using T = typename Reference::scalar_type;
    problem.validate("nash_md_pg::step");
    const Reference& reference = *problem.reference;
    Reference& policy = s.policy_;
    generation_config gen = problem.generation;
    gen.samples_per_prompt = 1;
    const auto prompts = detail::draw_prompts(problem.prompts, config_.batch_size,
                                              detail::step_seed(config_.seed, s.iteration_, 0));
    const generation_result ys =
        generate(policy, prompts.view(), gen, detail::step_seed(config_.seed, s.iteration_, 1));
    const std::uint64_t opponent_seed = detail::step_seed(config_.seed, s.iteration_, 2);
    const generation_result yo = config_.opponent == nash_pg_opponent::ema
                                     ? generate(*s.ema_, prompts.view(), gen, opponent_seed)
                                     : generate_mixture(policy, reference, config_.mixture_coef,
                                                        prompts.view(), gen, opponent_seed);
    const index_t b = ys.size();
    vector_d p(b);
    problem.feedback->preference(pair_batch<sequence_batch>{ys.batch(), yo.batch()}, p);
    for (index_t i = 0; i < b; ++i) {
      PREFOPT_CHECK(std::isfinite(p(i)) && p(i) >= 0.0 && p(i) <= 1.0, invalid_argument,
                    "nash_md_pg::step: the judge gave P(y > y') = ", p(i), " for pair ", i,
                    ", expected a probability in [0, 1]");
    }

    sequence_options opt = config_.scoring;
    opt.temperature = gen.temperature;
    vector_t<T> grad = vector_t<T>::Zero(policy.num_parameters());
    vector_d l, lr;
    const auto sur = nash_md_pg_loss_gradient(policy, reference, ys.batch(), p, config_.beta,
                                              config_.kl_credit, grad, opt, &l, &lr);

    step_stats st;
    st.loss = sur.loss;
    const vector_d log_ratio = l - lr;
    const vector_d seq_l = detail::sum_per_sequence(ys.offsets, detail::cspan_d(l));
    const vector_d seq_kl = detail::sum_per_sequence(ys.offsets, detail::cspan_d(log_ratio));
    const vector_d seq_lo = detail::sum_per_sequence(yo.offsets, yo.model_log_probs);
    const double inv_b = 1.0 / static_cast<double>(b);
    for (index_t i = 0; i < b; ++i) {
      st.score_loss -= (p(i) - 0.5) * seq_l(i) * inv_b;
      st.rewards_accuracies += (p(i) > 0.5 ? 1.0 : 0.0) * inv_b;
      const auto u = static_cast<std::size_t>(i);
      st.model_contain_eos +=
          (ys.offsets[u + 1] > ys.offsets[u] &&
                   ys.tokens[static_cast<std::size_t>(ys.offsets[u + 1] - 1)] == reference.eos()
               ? inv_b
               : 0.0);
      st.opponent_contain_eos +=
          (yo.offsets[u + 1] > yo.offsets[u] &&
                   yo.tokens[static_cast<std::size_t>(yo.offsets[u + 1] - 1)] == reference.eos()
               ? inv_b
               : 0.0);
    }
    st.kl_loss = st.loss - st.score_loss;
    st.objective_kl = seq_kl.mean();
    st.objective_entropy = -seq_l.mean();
    st.objective_non_score_reward = -config_.beta * st.objective_kl;
    st.objective_scores = p.mean();
    st.objective_rlhf_reward = st.objective_scores - config_.beta * st.objective_kl;
    st.rewards_probabilities = p.mean();
    st.rewards_margins = (2.0 * p.array() - 1.0).mean();
    st.logps_chosen = seq_l.mean();
    st.logps_rejected = seq_lo.mean();
    st.beta = config_.beta;
    st.mixture_coef = config_.opponent == nash_pg_opponent::mixture ? config_.mixture_coef : 0.0;
    st.gradient_norm = static_cast<double>(grad.template cast<double>().norm());

    s.optimizer_.step(policy.parameters(), grad);
    if (s.ema_) {
      const T d = static_cast<T>(config_.ema_decay);
      s.ema_->parameters() = d * s.ema_->parameters() + (T(1) - d) * policy.parameters();
    }
    ++s.iteration_;
    return st;
  }

 private:
  config_type config_;
};

}  // namespace prefopt
