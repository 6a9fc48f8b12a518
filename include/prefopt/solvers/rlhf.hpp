#pragma once
/// \file
/// Tabular RLHF: a reward model fitted by Bradley-Terry maximum likelihood (or given), then PPO on
/// the KL-regularised objective (ALGORITHMS.md §1, §2).
///
/// The problem is a `preference_game` (the reward model is a `tabular_reward_model` fitted from
/// zero) or a `tabular_rlhf_problem<R>`: the game and any `RewardModel` `R` over `tabular_batch`,
/// either used as given or, with `fit = true`, a copy of it fitted first (then `R` must be a
/// `DifferentiableRewardModel`: the fit goes through its `accumulate_reward_gradient`).
///
/// Stage 1 (in `init`, when fitting; `fit_bradley_terry`): draw `reward.pairs` labelled pairs
/// `(x, y_w, y_l)` with both responses from `mu` and labels from the game's `P`; fit the model's
/// parameters theta by minimising
///
///     L(theta) = mean_i -log sigma(r(x_i, w_i) - r(x_i, l_i)) + (reward.l2 / 2) |theta|^2
///
/// with `losses::bradley_terry_loss` and full-batch Adam (the small L2 term keeps the maximiser
/// finite when some response always wins); a model with `center()` (the table) is then centred
/// per context.
/// Stage 2 (`step`): one PPO iteration on the tabular policy, scored by the reward model (Ziegler
/// et al., arXiv 1909.08593; Stiennon et al., arXiv 2009.01325; PPO, arXiv 1707.06347): sample
/// `batch_size` responses `y ~ pi(.|x)`, shape the reward `r_hat(x, y) - tau_t k1(y)` with `k1 =
/// log pi(y|x) - log mu(y|x)`
/// (`losses::shape_rewards`), advantages by GAE (one-step episodes, no value head, `gamma =
/// lambda = 1`) whitened over the batch, then `epochs` passes of shuffled minibatches minimising
/// the clipped surrogate `losses::ppo_policy_loss` with the optimizer. The KL coefficient `tau_t`
/// is fixed (`tau`) or follows `losses::adaptive_kl_controller` (target KL, horizon), updated
/// once per iteration with the rollout batch's mean sequence KL.
/// The target of stage 2 is the closed-form optimum `pi*(y|x) ∝ mu(y|x) exp(r_hat(x, y) / tau)`
/// (`rlhf_optimum`), which on an intransitive game is not the Nash equilibrium.

#include <Eigen/Core>

#include <cmath>
#include <concepts>
#include <cstdint>
#include <numeric>
#include <utility>
#include <variant>
#include <vector>

#include "prefopt/core/concepts.hpp"
#include "prefopt/core/math.hpp"
#include "prefopt/core/random.hpp"
#include "prefopt/games/preference_game.hpp"
#include "prefopt/losses/bradley_terry.hpp"
#include "prefopt/losses/ppo.hpp"
#include "prefopt/models/reward/tabular.hpp"
#include "prefopt/policies/tabular_softmax.hpp"
#include "prefopt/solvers/common/game_sampling.hpp"
#include "prefopt/solvers/common/optimizers.hpp"

namespace prefopt {

/// Hyperparameters of the Bradley-Terry reward fit (stage 1).
struct reward_fit_config {
  index_t pairs = 8192;         ///< labelled pairs drawn from mu x mu
  index_t iterations = 1500;    ///< full-batch Adam iterations
  double learning_rate = 0.05;  ///< Adam step
  double l2 = 1e-4;             ///< weight of (l2/2) sum r^2, >= 0
};

/// Result of a Bradley-Terry fit.
struct reward_fit_result {
  row_matrix_d rewards;   ///< `[contexts, n]`: the fitted model's reward of every response
  double loss = 0.0;      ///< final mean BT loss (without the L2 term)
  double accuracy = 0.0;  ///< fraction of training pairs ranked correctly
};

/// The rewards of every (context, response) of `game` under `model` (a `RewardModel` over
/// `tabular_batch`), `[contexts, n]`.
template <RewardModel R>
[[nodiscard]] row_matrix_d tabulate_rewards(const R& model, const preference_game& game) {
  static_assert(std::same_as<typename R::batch_type, tabular_batch>,
                "prefopt::tabulate_rewards: the reward model's batch_type must be "
                "prefopt::tabular_batch");
  const index_t c = game.num_contexts(), n = game.num_actions();
  std::vector<index_t> contexts(static_cast<std::size_t>(c * n)), actions(contexts.size());
  for (index_t i = 0; i < c * n; ++i) {
    contexts[static_cast<std::size_t>(i)] = i / n;
    actions[static_cast<std::size_t>(i)] = i % n;
  }
  vector_d r(c * n);
  model.reward(tabular_batch{contexts, actions}, r);
  return Eigen::Map<const row_matrix_d>(r.data(), c, n);
}

/// Stage 1 for any `DifferentiableRewardModel` `model` over `tabular_batch` (trained in place):
/// draws `config.pairs` labelled pairs from `mu x mu` with `gen` and fits the model by maximum
/// likelihood (file comment); centres it per context when it has `center()`.
template <DifferentiableRewardModel R>
reward_fit_result fit_bradley_terry(const preference_game& game, R& model,
                                    const reward_fit_config& config, rng& gen) {
  static_assert(std::same_as<typename R::batch_type, tabular_batch>,
                "prefopt::fit_bradley_terry: the reward model's batch_type must be "
                "prefopt::tabular_batch");
  constexpr const char* fn = "fit_bradley_terry";
  PREFOPT_CHECK(config.pairs > 0, invalid_argument, fn, ": config.pairs = ", config.pairs,
                ", expected > 0");
  PREFOPT_CHECK(config.iterations > 0, invalid_argument, fn,
                ": config.iterations = ", config.iterations, ", expected > 0");
  PREFOPT_CHECK(config.l2 >= 0.0 && std::isfinite(config.l2), invalid_argument, fn,
                ": config.l2 = ", config.l2, ", expected a finite value >= 0");
  using T = typename R::scalar_type;
  const tabular_softmax_policy mu = reference_policy(game);
  const index_t n_pairs = config.pairs;
  const auto u = static_cast<std::size_t>(n_pairs);
  std::vector<index_t> contexts(u), chosen(u), rejected(u);
  for (std::size_t i = 0; i < u; ++i) {
    const labelled_pair p = sample_labelled_pair(game, mu, mu, gen);
    contexts[i] = p.context;
    chosen[i] = p.chosen;
    rejected[i] = p.rejected;
  }
  const tabular_batch w{contexts, chosen}, l{contexts, rejected};
  optimizer opt(optimizer_config{optimizer_kind::adam, config.learning_rate},
                model.num_parameters());
  vector_d r_w(n_pairs), r_l(n_pairs), g_w(n_pairs), g_l(n_pairs);
  vector_t<T> gradient(model.num_parameters());
  losses::reward_model_metrics<double> metrics;
  for (index_t it = 0; it < config.iterations; ++it) {
    model.reward(w, r_w);
    model.reward(l, r_l);
    metrics = losses::bradley_terry_loss<double>(r_w, r_l, vector_d(), g_w, g_l);
    gradient = static_cast<T>(config.l2) * std::as_const(model).parameters();
    model.accumulate_reward_gradient(w, g_w, gradient);
    model.accumulate_reward_gradient(l, g_l, gradient);
    opt.step(model.parameters(), gradient);
  }
  if constexpr (requires { model.center(); }) model.center();
  return {tabulate_rewards(model, game), metrics.loss, metrics.accuracy};
}

/// Stage 1 with a `tabular_reward_model` fitted from zero (see the file comment).
[[nodiscard]] inline reward_fit_result fit_bradley_terry_rewards(const preference_game& game,
                                                                 const reward_fit_config& config,
                                                                 rng& gen) {
  tabular_reward_model model(row_matrix_d::Zero(game.num_contexts(), game.num_actions()));
  return fit_bradley_terry(game, model, config, gen);
}

/// What `tabular_rlhf_ppo` trains on besides a bare game: the game and a reward model over
/// `tabular_batch`, used as given (`fit = false`) or fitted first (`fit = true`, a
/// `DifferentiableRewardModel`). Non-owning: both must outlive the run.
template <RewardModel R>
struct tabular_rlhf_problem {
  const preference_game* game = nullptr;
  const R* reward = nullptr;
  bool fit = false;
};

/// The KL-regularised RLHF optimum `pi*(y|x) ∝ mu(y|x) exp(r(x, y) / tau)` (ALGORITHMS.md §2.1)
/// for rewards `[contexts, n]` and `tau > 0`.
[[nodiscard]] inline tabular_softmax_policy rlhf_optimum(const preference_game& game,
                                                         const row_matrix_d& rewards, double tau) {
  PREFOPT_CHECK(tau > 0.0 && std::isfinite(tau), invalid_argument, "rlhf_optimum: tau = ", tau,
                ", expected a finite tau > 0");
  PREFOPT_CHECK(rewards.rows() == game.num_contexts() && rewards.cols() == game.num_actions(),
                shape_error, "rlhf_optimum: rewards is ", rewards.rows(), "x", rewards.cols(),
                ", expected ", game.num_contexts(), "x", game.num_actions());
  tabular_softmax_policy pi(row_matrix_d(game.log_reference() + rewards / tau));
  pi.recenter();
  return pi;
}

/// How the PPO stage sets its KL coefficient.
enum class kl_control { fixed, adaptive };

/// Hyperparameters of `tabular_rlhf_ppo`.
struct rlhf_ppo_config {
  reward_fit_config reward{};
  double tau = 0.1;  ///< KL coefficient (initial value when adaptive), > 0
  kl_control control = kl_control::fixed;
  double kl_target = 0.05;      ///< adaptive: target mean sequence KL, > 0
  double kl_horizon = 10000.0;  ///< adaptive: horizon (per-step gain batch_size/horizon)
  index_t batch_size = 256;     ///< rollouts per PPO iteration
  index_t minibatch_size = 64;  ///< samples per gradient step
  index_t epochs = 4;           ///< passes over the rollout batch
  double eps_clip = 0.2;
  optimizer_config optimizer{optimizer_kind::adam, 0.02};
  std::uint64_t seed = 0;
};

/// Per-iteration statistics.
struct rlhf_ppo_stats {
  double loss = 0.0;            ///< mean clipped surrogate over the epochs' minibatches
  double mean_score = 0.0;      ///< mean fitted reward of the rollouts
  double mean_kl = 0.0;         ///< mean k1 sequence KL of the rollouts (controller input)
  double kl_coefficient = 0.0;  ///< tau_t used for this iteration's shaping
  double clip_fraction = 0.0;
};

class tabular_rlhf_ppo {
 public:
  using config_type = rlhf_ppo_config;
  using step_stats = rlhf_ppo_stats;

  /// The per-run state; `R` is the reward model's type (`tabular_reward_model` for a bare game).
  template <class R>
  class state {
   public:
    [[nodiscard]] const tabular_softmax_policy& policy() const noexcept { return policy_; }
    /// The reward model PPO scores with (fitted in stage 1, or a copy of the given one).
    [[nodiscard]] const R& reward_model() const noexcept { return reward_; }
    /// Its rewards `[contexts, n]`, with the fit's loss and accuracy (0 when given).
    [[nodiscard]] const reward_fit_result& reward_fit() const noexcept { return fit_; }
    /// The KL coefficient the next iteration will use.
    [[nodiscard]] double kl_coefficient() const noexcept {
      return std::visit([](const auto& c) { return c.coefficient(); }, controller_);
    }
    [[nodiscard]] index_t iteration() const noexcept { return t_; }

   private:
    friend class tabular_rlhf_ppo;
    state(const preference_game& game, R reward, const rlhf_ppo_config& c)
        : reward_(std::move(reward)),
          policy_(reference_policy(game)),
          reference_(reference_policy(game)),
          optimizer_(c.optimizer, policy_.num_parameters()),
          gen_(c.seed, /*stream=*/0x991f),
          controller_(make_controller(c)) {}

    static std::variant<losses::fixed_kl_controller, losses::adaptive_kl_controller>
    make_controller(const rlhf_ppo_config& c) {
      if (c.control == kl_control::fixed) return losses::fixed_kl_controller(c.tau);
      return losses::adaptive_kl_controller(c.tau, c.kl_target, c.kl_horizon);
    }

    R reward_;
    tabular_softmax_policy policy_;
    tabular_softmax_policy reference_;
    optimizer optimizer_;
    rng gen_;
    std::variant<losses::fixed_kl_controller, losses::adaptive_kl_controller> controller_;
    reward_fit_result fit_;
    index_t t_ = 0;
    // Rollout scratch, sized once.
    std::vector<index_t> contexts_, actions_, offsets_, order_, mb_contexts_, mb_actions_;
    vector_d old_logp_, ref_logp_, scores_, rewards_, values_, advantages_, returns_;
    vector_d mb_new_, mb_old_, mb_adv_, mb_grad_, gradient_;
  };

  explicit tabular_rlhf_ppo(const rlhf_ppo_config& config = {}) : config_(config) {
    constexpr const char* fn = "tabular_rlhf_ppo";
    PREFOPT_CHECK(config.tau > 0.0 && std::isfinite(config.tau), invalid_argument, fn,
                  ": tau = ", config.tau, ", expected a finite tau > 0");
    PREFOPT_CHECK(config.batch_size >= 2, invalid_argument, fn,
                  ": batch_size = ", config.batch_size,
                  ", expected >= 2 (advantages are whitened over the batch)");
    PREFOPT_CHECK(config.minibatch_size > 0 && config.minibatch_size <= config.batch_size,
                  invalid_argument, fn, ": minibatch_size = ", config.minibatch_size,
                  ", expected a value in [1, batch_size]");
    PREFOPT_CHECK(config.epochs > 0, invalid_argument, fn, ": epochs = ", config.epochs,
                  ", expected > 0");
    PREFOPT_CHECK(config.eps_clip > 0.0 && config.eps_clip < 1.0, invalid_argument, fn,
                  ": eps_clip = ", config.eps_clip, ", expected a value in (0, 1)");
    config.optimizer.validate(fn);
    (void)state<tabular_reward_model>::make_controller(config);  // validates the controller
  }

  [[nodiscard]] const rlhf_ppo_config& config() const noexcept { return config_; }

  /// Stage 1 (a `tabular_reward_model` fitted from zero); the policy starts at `mu`.
  [[nodiscard]] state<tabular_reward_model> init(const preference_game& game) const {
    state<tabular_reward_model> s(
        game, tabular_reward_model(row_matrix_d::Zero(game.num_contexts(), game.num_actions())),
        config_);
    s.fit_ = fit_bradley_terry(game, s.reward_, config_.reward, s.gen_);
    size_scratch(s);
    return s;
  }

  /// The problem's reward model, copied and fitted (`fit`) or used as given; starts at `mu`.
  template <RewardModel R>
  [[nodiscard]] state<R> init(const tabular_rlhf_problem<R>& problem) const {
    constexpr const char* fn = "tabular_rlhf_ppo::init";
    static_assert(std::same_as<typename R::batch_type, tabular_batch>,
                  "prefopt::tabular_rlhf_ppo: the reward model's batch_type must be "
                  "prefopt::tabular_batch");
    static_assert(std::copy_constructible<R>,
                  "prefopt::tabular_rlhf_ppo: the reward model must be copyable (the state holds "
                  "its own copy)");
    PREFOPT_CHECK(problem.game != nullptr && problem.reward != nullptr, invalid_argument, fn,
                  ": problem.game or problem.reward is null, expected both");
    const preference_game& game = *problem.game;
    state<R> s(game, *problem.reward, config_);
    if (problem.fit) {
      if constexpr (DifferentiableRewardModel<R>) {
        s.fit_ = fit_bradley_terry(game, s.reward_, config_.reward, s.gen_);
      } else {
        PREFOPT_CHECK(false, invalid_argument, fn,
                      ": problem.fit = true, but the reward model has no parameters and "
                      "accumulate_reward_gradient to fit (a DifferentiableRewardModel)");
      }
    } else {
      s.fit_.rewards = tabulate_rewards(s.reward_, game);
    }
    PREFOPT_CHECK(s.fit_.rewards.allFinite(), invalid_argument, fn,
                  ": the reward model gives non-finite rewards");
    size_scratch(s);
    return s;
  }

  /// One PPO iteration: rollouts, shaping, advantages, `epochs` passes of minibatch updates.
  template <class Problem, class R>
  step_stats step(const Problem& problem, state<R>& s) const {
    if constexpr (std::same_as<Problem, preference_game>) {
      return ppo_iteration(problem, s);
    } else {
      return ppo_iteration(*problem.game, s);
    }
  }

 private:
  template <class R>
  void size_scratch(state<R>& s) const {
    const index_t b = config_.batch_size, m = config_.minibatch_size;
    for (auto* v : {&s.contexts_, &s.actions_, &s.order_}) v->resize(static_cast<std::size_t>(b));
    s.offsets_.resize(static_cast<std::size_t>(b + 1));
    std::iota(s.offsets_.begin(), s.offsets_.end(), index_t{0});  // one token per episode
    for (auto* v : {&s.old_logp_, &s.ref_logp_, &s.scores_, &s.rewards_, &s.values_, &s.advantages_,
                    &s.returns_}) {
      v->setZero(b);
    }
    s.mb_contexts_.resize(static_cast<std::size_t>(m));
    s.mb_actions_.resize(static_cast<std::size_t>(m));
    for (auto* v : {&s.mb_new_, &s.mb_old_, &s.mb_adv_, &s.mb_grad_}) v->resize(m);
    s.gradient_.resize(s.policy_.num_parameters());
  }

  template <class R>
  step_stats ppo_iteration(const preference_game& game, state<R>& s) const {
    const index_t b = config_.batch_size;
    for (index_t i = 0; i < b; ++i) {
      const auto k = static_cast<std::size_t>(i);
      s.contexts_[k] = sample_context(game, s.gen_);
      s.actions_[k] = s.policy_.sample(s.contexts_[k], s.gen_);
    }
    const tabular_batch rollouts{s.contexts_, s.actions_};
    s.reward_.reward(rollouts, s.scores_);
    s.policy_.log_prob(rollouts, s.old_logp_);
    s.reference_.log_prob(rollouts, s.ref_logp_);

    const double tau_t = s.kl_coefficient();
    auto view = [&](vector_d& v) {
      return ragged_view<double>{s.offsets_, {v.data(), static_cast<std::size_t>(v.size())}};
    };
    auto cview = [&](const vector_d& v) {
      return ragged_view<const double>{s.offsets_, {v.data(), static_cast<std::size_t>(v.size())}};
    };
    const auto shaping = losses::shape_rewards<losses::kl_k1, double>(
        cview(s.old_logp_), cview(s.ref_logp_), s.scores_, {}, tau_t, 0.0, view(s.rewards_));
    losses::generalized_advantages<double>(cview(s.rewards_), cview(s.values_), /*gamma=*/1.0,
                                           /*lambda=*/1.0, view(s.advantages_), view(s.returns_));
    losses::whiten<double>(view(s.advantages_));

    step_stats stats;
    stats.mean_score = s.scores_.mean();
    stats.mean_kl = shaping.mean_sequence_kl;
    stats.kl_coefficient = tau_t;
    const index_t m = config_.minibatch_size;
    long updates = 0;
    for (index_t epoch = 0; epoch < config_.epochs; ++epoch) {
      std::iota(s.order_.begin(), s.order_.end(), index_t{0});
      s.gen_.shuffle(std::span<index_t>(s.order_));
      for (index_t start = 0; start + m <= b; start += m) {
        for (index_t j = 0; j < m; ++j) {
          const index_t i = s.order_[static_cast<std::size_t>(start + j)];
          s.mb_contexts_[static_cast<std::size_t>(j)] = s.contexts_[static_cast<std::size_t>(i)];
          s.mb_actions_[static_cast<std::size_t>(j)] = s.actions_[static_cast<std::size_t>(i)];
          s.mb_old_[j] = s.old_logp_[i];
          s.mb_adv_[j] = s.advantages_[i];
        }
        const tabular_batch mb{s.mb_contexts_, s.mb_actions_};
        s.policy_.log_prob(mb, s.mb_new_);
        const auto pg = losses::ppo_policy_loss<double>(s.mb_new_, s.mb_old_, s.mb_adv_,
                                                        config_.eps_clip, s.mb_grad_);
        s.gradient_.setZero();
        s.policy_.accumulate_log_prob_gradient(mb, s.mb_grad_, s.gradient_);
        s.optimizer_.step(s.policy_.parameters(), s.gradient_);
        s.policy_.recenter();
        stats.loss += pg.loss;
        stats.clip_fraction += pg.clip_fraction;
        ++updates;
      }
    }
    stats.loss /= static_cast<double>(updates);
    stats.clip_fraction /= static_cast<double>(updates);
    std::visit([&](auto& c) { c.update(shaping.mean_sequence_kl, b); }, s.controller_);
    ++s.t_;
    return stats;
  }

  rlhf_ppo_config config_;
};

}  // namespace prefopt
