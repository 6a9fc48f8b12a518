#pragma once
/// \file
/// RLHF with PPO for any `SequenceModel` policy, any `RewardModel` over `sequence_batch` and any
/// `ValueModel` critic (ALGORITHMS.md §2): the `ppo_trainer` solver, driven by `run`.
///
/// One step (TRL's PPO trainer / Ziegler et al.'s loop, one rollout batch):
/// 1. **Rollout.** `rollout_batch_size` prompts drawn uniformly (with replacement) from
///    `problem.prompts`, one response each from the current policy through `generate`
///    (`problem.generation`: temperature, top-k/p, max_new_tokens).
/// 2. **Scoring.** Per-token log-probs `l_t` of the policy and `lr_t` of the reference at the
///    sampling temperature (ALGORITHMS.md §2.3), the critic's values `V_t`, the reward model's
///    score `r(x, y)`, minus `missing_eos_penalty` when the response hit the length limit without
///    eos.
/// 3. **Rewards.** `rew_t = -tau kl_t`, plus the score at the last token, with `kl_t` the k1
///    estimate `l_t - lr_t`, k3 `exp(lr_t - l_t) - 1 + l_t - lr_t`, or the exact full-vocabulary
///    KL (`token_kl`); `tau` fixed (`kl_coef`) or adaptive (Ziegler et al.'s controller fed with
///    the mean sequence k1 KL, `losses::adaptive_kl_controller`). Optionally whitened without
///    shifting the mean (`whiten_rewards`).
/// 4. **GAE(gamma, lambda)** advantages and returns (`losses::generalized_advantages`),
///    advantages whitened over the batch (`whiten_advantages`).
/// 5. **Updates.** `ppo_epochs` epochs over the responses in a fresh random order, split into
///    `num_minibatches` minibatches; on each, `ppo_minibatch_loss`: the clipped surrogate
///    `L_pg` (`clip_range`) plus `vf_coef` times the clipped value loss `L_vf`
///    (`clip_range_value`), token means over the minibatch; one optimizer step for the policy
///    and one for the critic (separate Adam states).
///
/// Metrics (TRL names in `named()`): `objective/kl` (mean sequence sum of the penalty's kl_t),
/// `objective/entropy` (mean of `-sum_t l_t`, the sampled entropy estimate), `objective/scores`,
/// `objective/non_score_reward`, `objective/rlhf_reward`, `policy/approxkl_avg`,
/// `policy/clipfrac_avg`, `loss/policy_avg`, `loss/value_avg`, `val/clipfrac_avg`, `val/vpred`,
/// `val/ratio`, `val/num_eos_tokens`, `kl_coef`, `lengths/mean`.
/// The problem is `sequence_problem<M, rlhf_feedback<Reward, Critic>>`: the reward model (frozen)
/// and the initial critic (copied into the state, as the policy is copied from the reference).
/// Deterministic for a seed; bitwise the same for any thread count. A non-finite loss, score or
/// value ends the step with `loss = NaN` and no update, so `run` ends `diverged`.
/// Papers: Proximal Policy Optimization Algorithms (arXiv 1707.06347); GAE (arXiv 1506.02438);
/// Fine-Tuning Language Models from Human Preferences (arXiv 1909.08593); Learning to summarize
/// from human feedback (arXiv 2009.01325); InstructGPT (arXiv 2203.02155); The N+ Implementation
/// Details of RLHF with PPO (Huang et al., arXiv 2403.17031).

#include <Eigen/Core>

#include <algorithm>
#include <array>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "prefopt/core/assert.hpp"
#include "prefopt/core/concepts.hpp"
#include "prefopt/core/random.hpp"
#include "prefopt/core/types.hpp"
#include "prefopt/data/preference_dataset.hpp"
#include "prefopt/losses/kl_estimators.hpp"
#include "prefopt/losses/ppo.hpp"
#include "prefopt/sequence/derived.hpp"
#include "prefopt/sequence/generation.hpp"
#include "prefopt/solvers/common/optimizers.hpp"
#include "prefopt/solvers/common/sequence_problem.hpp"
#include "prefopt/solvers/common/sequence_sampling.hpp"

namespace prefopt {

/// The per-token KL penalty of PPO's shaped rewards.
enum class ppo_kl_penalty {
  k1,   ///< `l_t - lr_t` (TRL `kl`, unbiased, can be negative)
  k3,   ///< `exp(lr_t - l_t) - 1 + (l_t - lr_t)` (>= 0, unbiased)
  full  ///< the exact KL over the vocabulary at every position (`token_kl`)
};

/// The feedback of RLHF-PPO: the reward model that scores responses (frozen) and the initial
/// critic (copied into the state). Non-owning; both must outlive the run.
template <class Reward, class Critic>
struct rlhf_feedback {
  const Reward* reward = nullptr;
  const Critic* critic = nullptr;
};

/// `rlhf_feedback` from references.
template <class Reward, class Critic>
[[nodiscard]] rlhf_feedback<Reward, Critic> make_rlhf_feedback(const Reward& reward,
                                                               const Critic& critic) {
  return {&reward, &critic};
}

/// Hyperparameters of `ppo_trainer` (names as ALGORITHMS.md §2 / TRL's PPOConfig).
struct ppo_trainer_config {
  index_t rollout_batch_size = 16;  ///< prompts (= responses) per step, >= 1
  index_t ppo_epochs = 4;           ///< passes over each rollout batch, >= 1
  index_t num_minibatches = 2;      ///< per epoch, in [1, rollout_batch_size]
  double clip_range = 0.2;          ///< policy ratio clip eps, in (0, 1)
  double clip_range_value = 0.2;    ///< value clip eps_v, > 0
  double vf_coef = 0.1;             ///< value-loss weight, finite, >= 0
  double gamma = 1.0;               ///< discount, in [0, 1]
  double lambda = 0.95;             ///< GAE lambda, in [0, 1]
  ppo_kl_penalty kl_penalty = ppo_kl_penalty::k1;
  double kl_coef = 0.05;  ///< tau (the initial tau when adaptive), finite, >= 0 (> 0 if adaptive)
  bool adaptive_kl = false;            ///< Ziegler et al.'s controller
  double kl_target = 6.0;              ///< adaptive: target sequence KL, > 0
  double kl_horizon = 10000.0;         ///< adaptive: horizon, > 0
  double missing_eos_penalty = 0.0;    ///< subtracted from the score without eos, finite, >= 0
  bool whiten_rewards = false;         ///< whiten shaped rewards (mean kept)
  bool whiten_advantages = true;       ///< whiten advantages (mean removed)
  optimizer_config optimizer{};        ///< the policy's optimizer
  optimizer_config value_optimizer{};  ///< the critic's optimizer
  sequence_options scoring{};  ///< chunking (temperature must be 1: the sampling one is used)
  std::uint64_t seed = 0;

  void validate(const char* function) const {
    PREFOPT_CHECK(rollout_batch_size >= 1, invalid_argument, function,
                  ": config.rollout_batch_size = ", rollout_batch_size, ", expected >= 1");
    PREFOPT_CHECK(ppo_epochs >= 1, invalid_argument, function, ": config.ppo_epochs = ", ppo_epochs,
                  ", expected >= 1");
    PREFOPT_CHECK(num_minibatches >= 1 && num_minibatches <= rollout_batch_size, invalid_argument,
                  function, ": config.num_minibatches = ", num_minibatches,
                  ", expected a value in [1, rollout_batch_size = ", rollout_batch_size, "]");
    PREFOPT_CHECK(clip_range > 0.0 && clip_range < 1.0, invalid_argument, function,
                  ": config.clip_range = ", clip_range, ", expected a value in (0, 1)");
    PREFOPT_CHECK(std::isfinite(clip_range_value) && clip_range_value > 0.0, invalid_argument,
                  function, ": config.clip_range_value = ", clip_range_value, ", expected > 0");
    PREFOPT_CHECK(std::isfinite(vf_coef) && vf_coef >= 0.0, invalid_argument, function,
                  ": config.vf_coef = ", vf_coef, ", expected a finite value >= 0");
    PREFOPT_CHECK(gamma >= 0.0 && gamma <= 1.0, invalid_argument, function,
                  ": config.gamma = ", gamma, ", expected a value in [0, 1]");
    PREFOPT_CHECK(lambda >= 0.0 && lambda <= 1.0, invalid_argument, function,
                  ": config.lambda = ", lambda, ", expected a value in [0, 1]");
    PREFOPT_CHECK(std::isfinite(kl_coef) && kl_coef >= 0.0 && (!adaptive_kl || kl_coef > 0.0),
                  invalid_argument, function, ": config.kl_coef = ", kl_coef,
                  adaptive_kl ? ", expected a finite value > 0 (adaptive controller)"
                              : ", expected a finite value >= 0");
    PREFOPT_CHECK(!adaptive_kl || (std::isfinite(kl_target) && kl_target > 0.0), invalid_argument,
                  function, ": config.kl_target = ", kl_target, ", expected > 0");
    PREFOPT_CHECK(!adaptive_kl || (std::isfinite(kl_horizon) && kl_horizon > 0.0), invalid_argument,
                  function, ": config.kl_horizon = ", kl_horizon, ", expected > 0");
    PREFOPT_CHECK(std::isfinite(missing_eos_penalty) && missing_eos_penalty >= 0.0,
                  invalid_argument, function,
                  ": config.missing_eos_penalty = ", missing_eos_penalty,
                  ", expected a finite value >= 0");
    PREFOPT_CHECK(scoring.max_positions >= 1, invalid_argument, function,
                  ": config.scoring.max_positions = ", scoring.max_positions, ", expected >= 1");
    PREFOPT_CHECK(scoring.temperature == 1.0, invalid_argument, function,
                  ": config.scoring.temperature = ", scoring.temperature,
                  ", expected 1 (problem.generation.temperature is used)");
    optimizer.validate(function);
    value_optimizer.validate(function);
  }
};

/// Per-step statistics of `ppo_trainer` (TRL names in `named()`; update metrics are averaged over
/// every minibatch of every epoch).
struct ppo_trainer_stats {
  double loss = 0.0;              ///< mean of L_pg + vf_coef L_vf over the updates
  double kl = 0.0;                ///< `objective/kl`
  double entropy = 0.0;           ///< `objective/entropy`
  double scores = 0.0;            ///< `objective/scores` (after the missing-eos penalty)
  double non_score_reward = 0.0;  ///< `objective/non_score_reward` = mean -tau sum_t kl_t
  double rlhf_reward = 0.0;       ///< `objective/rlhf_reward` = scores + non_score_reward
  double approxkl = 0.0;          ///< `policy/approxkl_avg`
  double clipfrac = 0.0;          ///< `policy/clipfrac_avg`
  double policy_loss = 0.0;       ///< `loss/policy_avg`
  double value_loss = 0.0;        ///< `loss/value_avg`
  double value_clipfrac = 0.0;    ///< `val/clipfrac_avg`
  double vpred = 0.0;             ///< `val/vpred`: mean predicted value
  double ratio = 0.0;             ///< `val/ratio`: mean probability ratio
  double num_eos_tokens = 0.0;    ///< `val/num_eos_tokens`: responses that ended with eos
  double kl_coef = 0.0;           ///< `kl_coef`: tau used by this step
  double mean_length = 0.0;       ///< `lengths/mean`: mean response length in tokens

  [[nodiscard]] std::array<std::pair<std::string_view, double>, 16> named() const {
    return {{{"loss", loss},
             {"objective/kl", kl},
             {"objective/entropy", entropy},
             {"objective/scores", scores},
             {"objective/non_score_reward", non_score_reward},
             {"objective/rlhf_reward", rlhf_reward},
             {"policy/approxkl_avg", approxkl},
             {"policy/clipfrac_avg", clipfrac},
             {"loss/policy_avg", policy_loss},
             {"loss/value_avg", value_loss},
             {"val/clipfrac_avg", value_clipfrac},
             {"val/vpred", vpred},
             {"val/ratio", ratio},
             {"val/num_eos_tokens", num_eos_tokens},
             {"kl_coef", kl_coef},
             {"lengths/mean", mean_length}}};
  }
};

/// One PPO minibatch: the responses and their rollout quantities, each `[T]` laid out like the
/// batch's response tokens (stop-gradient).
struct ppo_minibatch {
  sequence_batch batch;
  std::span<const double> old_log_probs;
  std::span<const double> old_values;
  std::span<const double> advantages;
  std::span<const double> returns;
};

/// What `ppo_minibatch_loss` measured.
struct ppo_minibatch_stats {
  double loss = 0.0;  ///< L_pg + vf_coef L_vf
  double policy_loss = 0.0;
  double value_loss = 0.0;
  double clipfrac = 0.0;
  double approxkl = 0.0;
  double ratio = 0.0;
  double value_clipfrac = 0.0;
  double vpred = 0.0;
};

/// The PPO loss of one minibatch, `L = L_pg + vf_coef L_vf` (`losses::ppo_policy_loss` on the
/// policy's per-token log-probs at `scoring.temperature`, `losses::ppo_value_loss` on the critic's
/// values; token means), and its gradients: `policy_gradient += dL/dtheta_policy`,
/// `critic_gradient += dL/dtheta_critic`. Public for gradient checks and custom loops; every
/// `ppo_trainer` update is this call. Non-finite log-probs or values give `loss = NaN` and leave
/// both gradients unchanged.
template <SequenceModel M, ValueModel V>
ppo_minibatch_stats ppo_minibatch_loss(
    const M& policy, const V& critic, const ppo_minibatch& mb, double clip_range,
    double clip_range_value, double vf_coef,
    Eigen::Ref<vector_t<typename M::scalar_type>> policy_gradient,
    Eigen::Ref<vector_t<typename V::scalar_type>> critic_gradient,
    const sequence_options& scoring = {}) {
  constexpr const char* fn = "ppo_minibatch_loss";
  const index_t n = mb.batch.responses.total_length();
  for (const auto& [name, size] :
       {std::pair{"old_log_probs", mb.old_log_probs.size()},
        std::pair{"old_values", mb.old_values.size()},
        std::pair{"advantages", mb.advantages.size()}, std::pair{"returns", mb.returns.size()}}) {
    PREFOPT_CHECK(static_cast<index_t>(size) == n, shape_error, fn, ": minibatch.", name, " has ",
                  size, " entries, expected ", n, " (one per response token)");
  }
  ppo_minibatch_stats out;
  vector_d lp(n), v(n), g_lp(n), g_v(n);
  token_log_probs(policy, mb.batch, lp, scoring);
  critic.values(mb.batch, v);
  if (!lp.allFinite() || !v.allFinite()) {
    out.loss = std::numeric_limits<double>::quiet_NaN();
    return out;
  }
  using cmap = Eigen::Map<const vector_d>;
  const cmap old_lp(mb.old_log_probs.data(), n), old_v(mb.old_values.data(), n);
  const cmap adv(mb.advantages.data(), n), ret(mb.returns.data(), n);
  const auto pg = losses::ppo_policy_loss<double>(lp, old_lp, adv, clip_range, g_lp);
  const auto vf = losses::ppo_value_loss<double>(v, old_v, ret, clip_range_value, g_v);
  out.policy_loss = pg.loss;
  out.value_loss = vf.loss;
  out.loss = pg.loss + vf_coef * vf.loss;
  out.clipfrac = pg.clip_fraction;
  out.approxkl = pg.approx_kl;
  out.ratio = pg.mean_ratio;
  out.value_clipfrac = vf.clip_fraction;
  out.vpred = v.mean();
  if (!std::isfinite(out.loss)) return out;
  token_weights w;
  w.log_probs = std::span<const double>(g_lp.data(), static_cast<std::size_t>(n));
  accumulate_token_gradient(policy, mb.batch, w, policy_gradient, scoring);
  g_v *= vf_coef;
  critic.accumulate_value_gradient(mb.batch, g_v, critic_gradient);
  return out;
}

/// RLHF-PPO (file comment). `Solver` of `sequence_problem<M, rlhf_feedback<Reward, Critic>>` for
/// any `SequenceModel` M, `RewardModel` Reward over `sequence_batch` and `ValueModel` Critic.
class ppo_trainer {
 public:
  using config_type = ppo_trainer_config;
  using step_stats = ppo_trainer_stats;

  template <class M, class V>
  class state {
   public:
    /// The current policy.
    [[nodiscard]] const M& policy() const noexcept { return policy_; }
    /// The current critic.
    [[nodiscard]] const V& critic() const noexcept { return critic_; }
    /// Steps taken.
    [[nodiscard]] index_t iteration() const noexcept { return t_; }
    /// The KL coefficient the next step uses.
    [[nodiscard]] double kl_coef() const noexcept {
      return adaptive_ ? adaptive_->coefficient() : tau_;
    }

   private:
    friend class ppo_trainer;
    state(const M& reference, const V& critic, const ppo_trainer_config& c)
        : policy_(reference),
          critic_(critic),
          policy_optimizer_(c.optimizer, reference.num_parameters()),
          critic_optimizer_(c.value_optimizer, critic.num_parameters()),
          gen_(c.seed, 0x99f),
          tau_(c.kl_coef) {
      if (c.adaptive_kl) adaptive_.emplace(c.kl_coef, c.kl_target, c.kl_horizon);
    }

    M policy_;
    V critic_;
    optimizer policy_optimizer_;
    optimizer critic_optimizer_;
    rng gen_;
    double tau_;
    std::optional<losses::adaptive_kl_controller> adaptive_;
    index_t t_ = 0;
  };

  explicit ppo_trainer(const ppo_trainer_config& config = {}) : config_(config) {
    config.validate("ppo_trainer");
  }

  [[nodiscard]] const ppo_trainer_config& config() const noexcept { return config_; }

  /// Copies the reference and the critic. A reward model or critic of the wrong shape fails with
  /// the `check_*` sentence naming the missing member.
  template <SequenceModel M, class Reward, class V>
  [[nodiscard]] state<M, V> init(
      const sequence_problem<M, rlhf_feedback<Reward, V>>& problem) const {
    static_assert(check_reward_model<Reward>());
    static_assert(std::same_as<typename Reward::batch_type, sequence_batch>,
                  "prefopt::ppo_trainer: the reward model's batch_type must be "
                  "prefopt::sequence_batch");
    static_assert(check_value_model<V>());
    static_assert(std::copy_constructible<M> && std::copy_constructible<V>,
                  "prefopt::ppo_trainer: the policy and critic types must be copyable (the state "
                  "holds copies)");
    problem.validate("ppo_trainer");
    PREFOPT_CHECK(problem.feedback->reward != nullptr, invalid_argument,
                  "ppo_trainer: problem.feedback->reward is null, expected the reward model");
    PREFOPT_CHECK(problem.feedback->critic != nullptr, invalid_argument,
                  "ppo_trainer: problem.feedback->critic is null, expected the initial critic");
    return state<M, V>(*problem.reference, *problem.feedback->critic, config_);
  }

  template <SequenceModel M, class Reward, class V>
  step_stats step(const sequence_problem<M, rlhf_feedback<Reward, V>>& problem,
                  state<M, V>& s) const {
    using TM = typename M::scalar_type;
    using TV = typename V::scalar_type;
    const index_t b = config_.rollout_batch_size;
    step_stats stats;
    const double tau = s.kl_coef();
    stats.kl_coef = tau;
    ++s.t_;

    // 1. Rollout.
    std::vector<index_t> picks;
    detail::draw_prompt_indices(s.gen_, problem.prompts.num_sequences(), b, picks);
    data::ragged_buffer<token_id> prompts;
    detail::gather_sequences(problem.prompts, picks, prompts);
    std::vector<index_t> ids(picks.size());
    for (std::size_t k = 0; k < ids.size(); ++k) {
      ids[k] = static_cast<index_t>(s.t_ - 1) * b + static_cast<index_t>(k);
    }
    generation_config gc = problem.generation;
    gc.samples_per_prompt = 1;
    const generation_result roll = generate(s.policy_, prompts.view(), gc, s.gen_(), ids);
    const sequence_batch batch = roll.batch();
    const index_t n = batch.responses.total_length();
    sequence_options opts = config_.scoring;
    opts.temperature = gc.temperature;

    // 2. Scoring.
    vector_d old_lp(n), ref_lp(n), kl(n), old_v(n), scores(b);
    token_log_probs(s.policy_, batch, old_lp, opts);
    token_log_probs(*problem.reference, batch, ref_lp, opts);
    problem.feedback->reward->reward(batch, scores);
    s.critic_.values(batch, old_v);
    if (!old_lp.allFinite() || !ref_lp.allFinite() || !scores.allFinite() || !old_v.allFinite()) {
      stats.loss = std::numeric_limits<double>::quiet_NaN();
      return stats;
    }
    switch (config_.kl_penalty) {
      case ppo_kl_penalty::k1:
        kl = old_lp - ref_lp;
        break;
      case ppo_kl_penalty::k3:
        for (index_t k = 0; k < n; ++k) kl(k) = losses::kl_k3::value(old_lp(k) - ref_lp(k));
        break;
      case ppo_kl_penalty::full:
        token_kl(s.policy_, *problem.reference, batch, kl, opts);
        break;
    }

    // 3. Shaped rewards.
    const std::span<const index_t> offsets = roll.offsets;
    vector_d rewards = -tau * kl;
    double k1_total = 0.0;
    for (index_t i = 0; i < b; ++i) {
      const auto u = static_cast<std::size_t>(i);
      const index_t first = offsets[u], last = offsets[u + 1] - 1;
      double score = scores(i);
      if (roll.truncated[u] != 0) {
        score -= config_.missing_eos_penalty;
      } else {
        stats.num_eos_tokens += 1.0;
      }
      rewards(last) += score;
      stats.scores += score;
      for (index_t k = first; k <= last; ++k) {
        stats.kl += kl(k);
        stats.entropy -= old_lp(k);
        k1_total += old_lp(k) - ref_lp(k);
      }
    }
    const double inv_b = 1.0 / static_cast<double>(b);
    stats.scores *= inv_b;
    stats.kl *= inv_b;
    stats.entropy *= inv_b;
    stats.non_score_reward = -tau * stats.kl;
    stats.rlhf_reward = stats.scores + stats.non_score_reward;
    stats.mean_length = static_cast<double>(n) * inv_b;

    // 4. Advantages.
    auto view = [&](vector_d& x) {
      return ragged_view<double>{offsets, std::span<double>(x.data(), static_cast<std::size_t>(n))};
    };
    auto cview = [&](const vector_d& x) {
      return ragged_view<const double>{
          offsets, std::span<const double>(x.data(), static_cast<std::size_t>(n))};
    };
    if (config_.whiten_rewards && n >= 2) losses::whiten(view(rewards), /*shift_mean=*/false);
    vector_d adv(n), ret(n);
    losses::generalized_advantages<double>(cview(rewards), cview(old_v), config_.gamma,
                                           config_.lambda, view(adv), view(ret));
    if (config_.whiten_advantages && n >= 2) losses::whiten(view(adv));

    // 5. Epochs of minibatches.
    std::vector<index_t> order(static_cast<std::size_t>(b));
    for (index_t i = 0; i < b; ++i) order[static_cast<std::size_t>(i)] = i;
    data::ragged_buffer<token_id> mb_prompts, mb_responses;
    std::vector<double> mb_lp, mb_v, mb_adv, mb_ret;
    vector_t<TM> g_policy(s.policy_.num_parameters());
    vector_t<TV> g_critic(s.critic_.num_parameters());
    index_t updates = 0;
    for (index_t e = 0; e < config_.ppo_epochs; ++e) {
      s.gen_.shuffle(std::span<index_t>(order));
      for (index_t m = 0; m < config_.num_minibatches; ++m) {
        const index_t lo = m * b / config_.num_minibatches;
        const index_t hi = (m + 1) * b / config_.num_minibatches;
        mb_prompts.clear();
        mb_responses.clear();
        mb_lp.clear();
        mb_v.clear();
        mb_adv.clear();
        mb_ret.clear();
        for (index_t j = lo; j < hi; ++j) {
          const index_t i = order[static_cast<std::size_t>(j)];
          const auto u = static_cast<std::size_t>(i);
          mb_prompts.push_back(batch.prompts.sequence(i));
          mb_responses.push_back(batch.responses.sequence(i));
          for (index_t k = offsets[u]; k < offsets[u + 1]; ++k) {
            mb_lp.push_back(old_lp(k));
            mb_v.push_back(old_v(k));
            mb_adv.push_back(adv(k));
            mb_ret.push_back(ret(k));
          }
        }
        const ppo_minibatch mb{
            {mb_prompts.view(), mb_responses.view()}, mb_lp, mb_v, mb_adv, mb_ret};
        g_policy.setZero();
        g_critic.setZero();
        const auto r =
            ppo_minibatch_loss(s.policy_, s.critic_, mb, config_.clip_range,
                               config_.clip_range_value, config_.vf_coef, g_policy, g_critic, opts);
        stats.loss += r.loss;
        if (!std::isfinite(r.loss)) return stats;
        stats.policy_loss += r.policy_loss;
        stats.value_loss += r.value_loss;
        stats.clipfrac += r.clipfrac;
        stats.approxkl += r.approxkl;
        stats.ratio += r.ratio;
        stats.value_clipfrac += r.value_clipfrac;
        stats.vpred += r.vpred;
        ++updates;
        s.policy_optimizer_.step(s.policy_.parameters(), g_policy);
        s.critic_optimizer_.step(s.critic_.parameters(), g_critic);
      }
    }
    const double inv_u = 1.0 / static_cast<double>(updates);
    for (double* x : {&stats.loss, &stats.policy_loss, &stats.value_loss, &stats.clipfrac,
                      &stats.approxkl, &stats.ratio, &stats.value_clipfrac, &stats.vpred}) {
      *x *= inv_u;
    }
    if (s.adaptive_) s.adaptive_->update(k1_total * inv_b, b);
    return stats;
  }

 private:
  ppo_trainer_config config_;
};

}  // namespace prefopt
