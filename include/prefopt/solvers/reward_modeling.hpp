#pragma once
/// \file
/// Reward modelling: fits any `DifferentiableRewardModel` over `sequence_batch` (the user's own,
/// or a transformer's scalar head) on preference pairs with the Bradley-Terry loss
/// (`losses/bradley_terry.hpp`, ALGORITHMS.md §1)
///
///     l_i = -log sigma(r(x_i, y_w) - r(x_i, y_l)) + c_center (r(x_i, y_w) + r(x_i, y_l))^2,
///
/// mean over a minibatch of `batch_size` pairs per step, back-propagated through the model's
/// `accumulate_reward_gradient`, one optimizer step. In `init` the dataset's records are shuffled
/// once and the last `validation_fraction` of them are held out; steps cycle through the training
/// part (reshuffled every epoch) and every `eval_every` steps the held-out pairs are scored
/// (`eval_accuracy`: fraction with `r_w > r_l`, ties wrong; `eval_loss`), the accuracy TRL's
/// RewardTrainer reports. The fitted model is `state.model()` (a copy of the problem's initial
/// model). Deterministic for a seed. Non-finite rewards (or a non-finite loss) give `loss = NaN`
/// and no update, so `run` ends `diverged`.
/// Papers: Fine-Tuning Language Models from Human Preferences (arXiv 1909.08593); InstructGPT
/// (arXiv 2203.02155); Helping or Herding? (reward centring, arXiv 2312.09244).

#include <Eigen/Core>

#include <algorithm>
#include <array>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <limits>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "prefopt/core/assert.hpp"
#include "prefopt/core/concepts.hpp"
#include "prefopt/core/random.hpp"
#include "prefopt/core/types.hpp"
#include "prefopt/data/preference_dataset.hpp"
#include "prefopt/losses/bradley_terry.hpp"
#include "prefopt/solvers/common/optimizers.hpp"

namespace prefopt {

/// What reward modelling trains on: the initial reward model (copied into the state) and the
/// preference pairs (non-owning; both must outlive every `init` / `step` / `run` call).
template <class R>
struct reward_modeling_problem {
  const R* model = nullptr;
  const data::preference_dataset* pairs = nullptr;

  void validate(const char* function) const {
    PREFOPT_CHECK(model != nullptr, invalid_argument, function,
                  ": problem.model is null, expected the initial reward model");
    PREFOPT_CHECK(pairs != nullptr, invalid_argument, function,
                  ": problem.pairs is null, expected a preference dataset");
    PREFOPT_CHECK(pairs->size() >= 2, invalid_argument, function, ": problem.pairs has ",
                  pairs->size(), " records, expected at least 2 (training and held-out)");
  }
};

/// `reward_modeling_problem` from references.
template <class R>
[[nodiscard]] reward_modeling_problem<R> make_reward_modeling_problem(
    const R& model, const data::preference_dataset& pairs) {
  return {&model, &pairs};
}

/// Hyperparameters of `reward_modeling`.
struct reward_modeling_config {
  index_t batch_size = 32;           ///< pairs per step, > 0
  double validation_fraction = 0.2;  ///< held-out share of the records, in [0, 1)
  index_t eval_every = 1;            ///< steps between held-out evaluations, >= 1
  double c_center = 0.0;             ///< reward-centring weight (Eisenstein et al.), >= 0
  optimizer_config optimizer{};      ///< Adam, lr 0.05 by default
  std::uint64_t seed = 0;

  void validate(const char* function) const {
    PREFOPT_CHECK(batch_size > 0, invalid_argument, function, ": config.batch_size = ", batch_size,
                  ", expected > 0");
    PREFOPT_CHECK(validation_fraction >= 0.0 && validation_fraction < 1.0, invalid_argument,
                  function, ": config.validation_fraction = ", validation_fraction,
                  ", expected a value in [0, 1)");
    PREFOPT_CHECK(eval_every >= 1, invalid_argument, function, ": config.eval_every = ", eval_every,
                  ", expected >= 1");
    PREFOPT_CHECK(std::isfinite(c_center) && c_center >= 0.0, invalid_argument, function,
                  ": config.c_center = ", c_center, ", expected a finite value >= 0");
    optimizer.validate(function);
  }
};

/// Per-step statistics (TRL RewardTrainer names in `named()`).
struct reward_modeling_stats {
  double loss = 0.0;           ///< minibatch Bradley-Terry loss
  double accuracy = 0.0;       ///< minibatch fraction with r_w > r_l
  double margin = 0.0;         ///< minibatch mean r_w - r_l
  double eval_loss = 0.0;      ///< held-out loss at the last evaluation (NaN without a split)
  double eval_accuracy = 0.0;  ///< held-out accuracy at the last evaluation (NaN without a split)

  [[nodiscard]] std::array<std::pair<std::string_view, double>, 5> named() const {
    return {{{"loss", loss},
             {"accuracy", accuracy},
             {"margin", margin},
             {"eval/loss", eval_loss},
             {"eval/accuracy", eval_accuracy}}};
  }
};

/// The Bradley-Terry metrics of `model` on the records `records` of `pairs` (all when empty),
/// scored `batch_size` pairs at a time (no gradient): `accuracy` is the fraction of pairs with
/// `r_w > r_l`. Non-finite rewards give `loss = accuracy = NaN`.
template <RewardModel R>
requires std::same_as<typename R::batch_type, sequence_batch>
[[nodiscard]] losses::reward_model_metrics<double> evaluate_reward_model(
    const R& model, const data::preference_dataset& pairs, std::span<const index_t> records = {},
    index_t batch_size = 256) {
  PREFOPT_CHECK(batch_size > 0, invalid_argument,
                "evaluate_reward_model: batch_size = ", batch_size, ", expected > 0");
  std::vector<index_t> all;
  if (records.empty()) {
    all.resize(static_cast<std::size_t>(pairs.size()));
    for (std::size_t k = 0; k < all.size(); ++k) all[k] = static_cast<index_t>(k);
    records = all;
  }
  const index_t n = static_cast<index_t>(records.size());
  PREFOPT_CHECK(n > 0, invalid_argument, "evaluate_reward_model: no records to evaluate");
  vector_d r_w(n), r_l(n);
  for (index_t start = 0; start < n; start += batch_size) {
    const index_t count = std::min(batch_size, n - start);
    const auto b = pairs.batch(
        records.subspan(static_cast<std::size_t>(start), static_cast<std::size_t>(count)));
    model.reward({b.prompts.view(), b.chosen.view()}, r_w.segment(start, count));
    model.reward({b.prompts.view(), b.rejected.view()}, r_l.segment(start, count));
  }
  losses::reward_model_metrics<double> m;
  if (!r_w.allFinite() || !r_l.allFinite()) {
    m.loss = m.accuracy = std::numeric_limits<double>::quiet_NaN();
    return m;
  }
  vector_d g_w(n), g_l(n);
  return losses::bradley_terry_loss(r_w, r_l, g_w, g_l);
}

/// The Bradley-Terry loss of one minibatch (`chosen[i]` preferred to `rejected[i]`, same
/// prompts) and its gradient, `gradient += dL/dtheta` (every `reward_modeling` step is this call;
/// public for gradient checks and custom loops). Non-finite rewards give `loss = NaN` and leave
/// `gradient` unchanged.
template <DifferentiableRewardModel R>
losses::reward_model_metrics<double> reward_modeling_minibatch_loss(
    const R& model, const sequence_batch& chosen, const sequence_batch& rejected,
    Eigen::Ref<vector_t<typename R::scalar_type>> gradient, double c_center = 0.0) {
  const index_t b = chosen.size();
  PREFOPT_CHECK(rejected.size() == b, shape_error, "reward_modeling_minibatch_loss: chosen has ", b,
                " responses, rejected ", rejected.size(), ", expected equal counts");
  vector_d r_w(b), r_l(b), g_w(b), g_l(b);
  model.reward(chosen, r_w);
  model.reward(rejected, r_l);
  losses::reward_model_metrics<double> m;
  if (!r_w.allFinite() || !r_l.allFinite()) {
    m.loss = std::numeric_limits<double>::quiet_NaN();
    return m;
  }
  losses::bradley_terry_options options;
  options.c_center = c_center;
  m = losses::bradley_terry_loss(r_w, r_l, g_w, g_l, options);
  if (!std::isfinite(m.loss)) return m;
  model.accumulate_reward_gradient(chosen, g_w, gradient);
  model.accumulate_reward_gradient(rejected, g_l, gradient);
  return m;
}

/// Bradley-Terry reward modelling for any `DifferentiableRewardModel` over `sequence_batch`
/// (file comment). `Solver` of `reward_modeling_problem<R>`.
class reward_modeling {
 public:
  using config_type = reward_modeling_config;
  using step_stats = reward_modeling_stats;

  template <class R>
  class state {
   public:
    /// The reward model being fitted.
    [[nodiscard]] const R& model() const noexcept { return model_; }
    /// Steps taken.
    [[nodiscard]] index_t iteration() const noexcept { return t_; }
    /// The training and held-out record indices (fixed in `init`).
    [[nodiscard]] std::span<const index_t> training_records() const noexcept { return train_; }
    [[nodiscard]] std::span<const index_t> held_out_records() const noexcept { return held_out_; }

   private:
    friend class reward_modeling;
    state(const R& initial, const optimizer_config& o, std::uint64_t seed)
        : model_(initial), optimizer_(o, initial.num_parameters()), gen_(seed, 0x4e7) {}

    R model_;
    optimizer optimizer_;
    rng gen_;
    std::vector<index_t> train_, held_out_;
    std::size_t cursor_ = 0;
    index_t t_ = 0;
    double eval_loss_ = std::numeric_limits<double>::quiet_NaN();
    double eval_accuracy_ = std::numeric_limits<double>::quiet_NaN();
  };

  explicit reward_modeling(const reward_modeling_config& config = {}) : config_(config) {
    config.validate("reward_modeling");
  }

  [[nodiscard]] const reward_modeling_config& config() const noexcept { return config_; }

  /// Copies the model and splits the records into training and held-out parts.
  /// A model of the wrong shape fails with the `check_differentiable_reward_model` sentences.
  template <class R>
  [[nodiscard]] state<R> init(const reward_modeling_problem<R>& problem) const {
    static_assert(check_differentiable_reward_model<R>());
    static_assert(std::same_as<typename R::batch_type, sequence_batch>,
                  "prefopt::reward_modeling: the reward model's batch_type must be "
                  "prefopt::sequence_batch");
    static_assert(std::copy_constructible<R>,
                  "prefopt::reward_modeling: the reward model must be copyable (the state holds "
                  "the fitted copy)");
    problem.validate("reward_modeling");
    state<R> s(*problem.model, config_.optimizer, config_.seed);
    const index_t n = problem.pairs->size();
    std::vector<index_t> order(static_cast<std::size_t>(n));
    for (index_t i = 0; i < n; ++i) order[static_cast<std::size_t>(i)] = i;
    s.gen_.shuffle(std::span<index_t>(order));
    const auto held =
        static_cast<index_t>(std::floor(config_.validation_fraction * static_cast<double>(n)));
    PREFOPT_CHECK(n - held >= 1, invalid_argument, "reward_modeling: problem.pairs has ", n,
                  " records and config.validation_fraction = ", config_.validation_fraction,
                  " leaves none for training");
    s.train_.assign(order.begin(), order.end() - held);
    s.held_out_.assign(order.end() - held, order.end());
    return s;
  }

  /// One minibatch of training pairs, one optimizer step; the held-out metrics when due.
  template <class R>
  step_stats step(const reward_modeling_problem<R>& problem, state<R>& s) const {
    using T = typename R::scalar_type;
    const index_t b = config_.batch_size;
    std::vector<index_t> picked(static_cast<std::size_t>(b));
    for (auto& p : picked) {
      if (s.cursor_ == s.train_.size()) {
        s.cursor_ = 0;
        s.gen_.shuffle(std::span<index_t>(s.train_));
      }
      p = s.train_[s.cursor_++];
    }
    const data::preference_batch batch = problem.pairs->batch(picked);
    const sequence_batch chosen{batch.prompts.view(), batch.chosen.view()};
    const sequence_batch rejected{batch.prompts.view(), batch.rejected.view()};
    step_stats stats;
    vector_t<T> gradient = vector_t<T>::Zero(s.model_.num_parameters());
    const auto m =
        reward_modeling_minibatch_loss(s.model_, chosen, rejected, gradient, config_.c_center);
    ++s.t_;
    stats.loss = m.loss;
    stats.accuracy = m.accuracy;
    stats.margin = m.margin;
    if (!std::isfinite(m.loss)) return stats;
    s.optimizer_.step(s.model_.parameters(), gradient);
    if (!s.held_out_.empty() && (s.t_ % config_.eval_every == 0 || s.t_ == 1)) {
      const auto e = evaluate_reward_model(s.model_, *problem.pairs, s.held_out_);
      s.eval_loss_ = e.loss;
      s.eval_accuracy_ = e.accuracy;
    }
    stats.eval_loss = s.eval_loss_;
    stats.eval_accuracy = s.eval_accuracy_;
    return stats;
  }

 private:
  reward_modeling_config config_;
};

}  // namespace prefopt
