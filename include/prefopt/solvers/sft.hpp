#pragma once
/// \file
/// Supervised fine-tuning (SFT) of any `SequenceModel` on demonstrations: the step that makes a
/// sequence task's reference policy a trained model (the `pi_SFT = mu` of ALGORITHMS.md's
/// notation table; Ouyang et al., "Training language models to follow instructions with human
/// feedback", arXiv 2203.02155, §3.5).
///
/// A demonstration is a prompt `x` and a response `y` (ragged token ids, `sequence_batch`). The
/// loss of a minibatch `B` is the mean over its response tokens of the negative log-likelihood,
/// masked to the responses (prompt tokens are context only, they contribute nothing):
///
///     L(theta) = -(1 / N_B) sum_{(x, y) in B} sum_t log pi_theta(y_t | x, y_<t),
///     N_B = sum_{(x, y) in B} |y|,
///
/// computed with `sequence/derived.hpp` (per-token log-probs and their backward in one pass; the
/// fused linear kernel for a `LinearHeadSequenceModel`, which never builds `[T, V]` logits). Each
/// `step` draws the next `batch_size` demonstrations of a seeded shuffle (without replacement
/// within an epoch, reshuffled at every epoch; a minibatch may straddle two epochs), computes
/// `L` and `g = dL/dtheta`, clips `g` to `max_grad_norm` in global norm, and takes one Adam step
/// (Kingma and Ba, arXiv 1412.6980) at the learning rate of a linear-warmup + cosine schedule
/// (`warmup_cosine_schedule`, `solvers/common/schedules.hpp`).
///
/// **Determinism.** Minibatches come from the solver's own `rng(config.seed, stream)`; the
/// derived quantities are bitwise independent of chunking, so the same seed, problem and model
/// give bitwise the same parameters (as long as the model's own forward / backward is
/// deterministic).
///
/// **Divergence.** A step whose loss or gradient is not finite, or whose model writes non-finite
/// logits (a diverged model, after the first step), reports `loss = NaN` and leaves the
/// parameters as they were; `prefopt::run` then stops with status `diverged` (it also checks the
/// parameters themselves). A model that writes non-finite logits on the first step is a bad input
/// and throws, naming the sequence and the token.
///
/// **Errors.** `sft_config::validate` names the bad field ("sft: config.batch_size = 0, expected
/// >= 1"); `init` checks the problem (null model, empty training set, no response tokens, token
/// ids outside the vocabulary, non-finite initial parameters).
/// Not supported: label smoothing, weight decay, packing several demonstrations per row (the
/// model's batches are ragged, so there is no padding to pack away).

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "prefopt/core/assert.hpp"
#include "prefopt/core/concepts.hpp"
#include "prefopt/core/error.hpp"
#include "prefopt/core/random.hpp"
#include "prefopt/core/types.hpp"
#include "prefopt/data/preference_dataset.hpp"
#include "prefopt/sequence/derived.hpp"
#include "prefopt/sequence/generation.hpp"
#include "prefopt/solvers/common/optimizers.hpp"
#include "prefopt/solvers/common/schedules.hpp"

namespace prefopt {

// ---------------------------------------------------------------------------------------------
// Demonstrations
// ---------------------------------------------------------------------------------------------

/// Prompt + response pairs (owning; columnar ragged storage, `data::ragged_buffer`).
class demonstration_set {
 public:
  demonstration_set() = default;

  /// Appends one demonstration (copied).
  void add(std::span<const token_id> prompt, std::span<const token_id> response) {
    prompts_.push_back(prompt);
    responses_.push_back(response);
  }

  /// Number of demonstrations.
  [[nodiscard]] index_t size() const noexcept { return responses_.size(); }
  /// Total response tokens (the tokens the loss averages over).
  [[nodiscard]] index_t num_response_tokens() const noexcept { return responses_.total_length(); }
  [[nodiscard]] const data::ragged_buffer<token_id>& prompts() const noexcept { return prompts_; }
  [[nodiscard]] const data::ragged_buffer<token_id>& responses() const noexcept {
    return responses_;
  }
  /// All demonstrations as one batch (a view: valid while this set lives and is not modified).
  [[nodiscard]] sequence_batch batch() const noexcept {
    return {prompts_.view(), responses_.view()};
  }

 private:
  data::ragged_buffer<token_id> prompts_;
  data::ragged_buffer<token_id> responses_;
};

/// A training / held-out split of demonstrations.
struct demonstration_split {
  demonstration_set train;
  demonstration_set held_out;
};

/// Splits `all` at random: `held_out` demonstrations (chosen by a shuffle of `rng(seed)`) go to
/// the held-out set, the rest to the training set; each keeps the original order.
/// Throws `prefopt::invalid_argument` unless `0 <= held_out <= all.size()`.
[[nodiscard]] inline demonstration_split split_demonstrations(const demonstration_set& all,
                                                              index_t held_out,
                                                              std::uint64_t seed) {
  PREFOPT_CHECK(held_out >= 0 && held_out <= all.size(), invalid_argument,
                "split_demonstrations: held_out = ", held_out, ", expected a count in [0, ",
                all.size(), "] (all.size())");
  std::vector<index_t> order(static_cast<std::size_t>(all.size()));
  std::iota(order.begin(), order.end(), index_t{0});
  rng gen(seed, /*stream=*/0x5f7);
  gen.shuffle(std::span<index_t>(order));
  std::vector<char> is_held(order.size(), 0);
  for (index_t k = 0; k < held_out; ++k)
    is_held[static_cast<std::size_t>(order[static_cast<std::size_t>(k)])] = 1;
  demonstration_split out;
  for (index_t i = 0; i < all.size(); ++i) {
    (is_held[static_cast<std::size_t>(i)] != 0 ? out.held_out : out.train)
        .add(all.prompts()[i], all.responses()[i]);
  }
  return out;
}

/// Settings of `best_of_n_demonstrations`.
struct best_of_n_config {
  /// n >= 1 candidates sampled per prompt (overrides `generation.samples_per_prompt`).
  index_t samples_per_prompt = 8;
  /// k in [1, n]: the k best candidates of each prompt are kept.
  index_t keep = 1;
  /// How candidates are sampled (`sequence/generation.hpp`).
  generation_config generation{};
  /// Seed of the sampling.
  std::uint64_t seed = 0;
};

/// Demonstrations by best-of-n (rejection) sampling: for every prompt, `n` responses are sampled
/// from `sampler` and the `k` of highest `reward` are kept (ties: the earlier sample), best first,
/// in prompt order. This is the data of rejection-sampling fine-tuning (Touvron et al., "Llama 2",
/// arXiv 2307.09288, §3.2.3; Dong et al., "RAFT", arXiv 2304.06767), and how a sequence task's
/// reference policy gets demonstrations: e.g. `sampler` an untrained model, `reward`
/// `length_biased_quality_task::gold_reward()`. Deterministic for a seed (generation's streams).
template <SequenceModel M, RewardModel R>
requires std::same_as<typename R::batch_type, sequence_batch>
[[nodiscard]] demonstration_set best_of_n_demonstrations(const M& sampler, const R& reward,
                                                         ragged_view<const token_id> prompts,
                                                         const best_of_n_config& config) {
  constexpr const char* fn = "best_of_n_demonstrations";
  PREFOPT_CHECK(config.samples_per_prompt >= 1, invalid_argument, fn,
                ": config.samples_per_prompt = ", config.samples_per_prompt, ", expected >= 1");
  PREFOPT_CHECK(config.keep >= 1 && config.keep <= config.samples_per_prompt, invalid_argument, fn,
                ": config.keep = ", config.keep,
                ", expected a count in [1, samples_per_prompt = ", config.samples_per_prompt, "]");
  generation_config g = config.generation;
  g.samples_per_prompt = config.samples_per_prompt;
  const generation_result drawn = generate(sampler, prompts, g, config.seed);
  vector_d r(drawn.size());
  reward.reward(drawn.batch(), r);
  const index_t n = config.samples_per_prompt;
  demonstration_set out;
  std::vector<index_t> candidates(static_cast<std::size_t>(n));
  for (index_t i = 0; i < prompts.num_sequences(); ++i) {
    std::iota(candidates.begin(), candidates.end(), i * n);
    std::stable_sort(candidates.begin(), candidates.end(),
                     [&r](index_t a, index_t b) { return r(a) > r(b); });
    for (index_t k = 0; k < config.keep; ++k) {
      out.add(prompts.sequence(i),
              drawn.responses().sequence(candidates[static_cast<std::size_t>(k)]));
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The loss
// ---------------------------------------------------------------------------------------------

namespace detail {

/// L of `batch` (file comment) and, given `gradient`, `*gradient += dL/dtheta`, in one pass.
/// `batch` must have at least one response token.
template <class M>
double cross_entropy_pass(const char* fn, const M& model, const sequence_batch& batch,
                          vector_t<typename M::scalar_type>* gradient,
                          const sequence_options& opt) {
  batch.responses.validate(fn, "batch.responses");
  const index_t n = batch.responses.total_length();
  PREFOPT_CHECK(n >= 1, invalid_argument, fn,
                ": batch has no response tokens, expected at least one (the loss is a mean over "
                "response tokens)");
  std::vector<double> lp(static_cast<std::size_t>(n));
  std::vector<double> weight;
  token_weights w;
  if (gradient != nullptr) {
    weight.assign(static_cast<std::size_t>(n), -1.0 / static_cast<double>(n));
    w.log_probs = weight;
  }
  sequence_pass<M, std::nullptr_t>(fn, model, nullptr, batch, {std::span<double>(lp)}, w, gradient,
                                   opt);
  double sum = 0.0;
  for (const double l : lp) sum += l;
  return -sum / static_cast<double>(n);
}

}  // namespace detail

/// The mean per-token cross-entropy of `model` on demonstrations, in nats per response token:
/// `-(1 / N) sum_{(x, y)} sum_t log pi(y_t | x, y_<t)` (the SFT loss `L` of the file comment, over
/// the whole batch; prompts contribute nothing). `exp` of it is the per-token perplexity.
/// Throws `prefopt::invalid_argument` when the batch has no response tokens or a token id is
/// outside the vocabulary, naming the sequence and the token.
template <SequenceModel M>
[[nodiscard]] double held_out_cross_entropy(const M& model, const sequence_batch& demonstrations,
                                            const sequence_options& opt = {}) {
  return detail::cross_entropy_pass<M>("prefopt::held_out_cross_entropy", model, demonstrations,
                                       nullptr, opt);
}

/// The same over all of a `demonstration_set`.
template <SequenceModel M>
[[nodiscard]] double held_out_cross_entropy(const M& model, const demonstration_set& demonstrations,
                                            const sequence_options& opt = {}) {
  return held_out_cross_entropy(model, demonstrations.batch(), opt);
}

/// `gradient += dL/dtheta` for the SFT loss `L` of `batch` (file comment); returns `L`.
/// `gradient` has `model.num_parameters()` entries; it is written only when the call succeeds.
template <SequenceModel M>
double accumulate_cross_entropy_gradient(const M& model, const sequence_batch& batch,
                                         Eigen::Ref<vector_t<typename M::scalar_type>> gradient,
                                         const sequence_options& opt = {}) {
  constexpr const char* fn = "prefopt::accumulate_cross_entropy_gradient";
  detail::check_gradient_size(fn, model, gradient.size());
  vector_t<typename M::scalar_type> g = gradient;
  const double loss = detail::cross_entropy_pass<M>(fn, model, batch, &g, opt);
  gradient = g;
  return loss;
}

// ---------------------------------------------------------------------------------------------
// The solver
// ---------------------------------------------------------------------------------------------

/// What `sft` trains: the initial model (copied into the state) and the demonstrations (views;
/// the storage must outlive every `init` / `step` / `run` call, e.g. a `demonstration_set`'s
/// `batch()`). `held_out` is optional and never read by the solver: it is where callbacks and
/// tests measure `held_out_cross_entropy`.
template <SequenceModel M>
struct sft_problem {
  const M* initial = nullptr;
  sequence_batch train{};
  sequence_batch held_out{};

  /// Throws `prefopt::invalid_argument` naming `function`: null model, no training
  /// demonstrations or response tokens, token ids outside the vocabulary (sequence, token).
  void validate(const char* function) const {
    PREFOPT_CHECK(initial != nullptr, invalid_argument, function,
                  ": problem.initial is null, expected the model to fine-tune");
    detail::check_sequence_batch(function, *initial, train);
    PREFOPT_CHECK(train.size() >= 1, invalid_argument, function,
                  ": problem.train is empty, expected at least one demonstration");
    PREFOPT_CHECK(train.responses.total_length() >= 1, invalid_argument, function,
                  ": problem.train has no response tokens, expected at least one");
    if (held_out.size() > 0) detail::check_sequence_batch(function, *initial, held_out);
  }
};

/// `sft_problem` from references (the arguments must outlive the problem).
template <SequenceModel M>
[[nodiscard]] sft_problem<M> make_sft_problem(const M& initial, const sequence_batch& train,
                                              const sequence_batch& held_out = {}) {
  return {&initial, train, held_out};
}

/// Hyperparameters of `sft`.
struct sft_config {
  /// Demonstrations per step (>= 1).
  index_t batch_size = 16;
  /// The learning rate: `schedule.peak`, linear warmup over `schedule.warmup_steps`, cosine decay
  /// to `schedule.final_ratio * peak` over `schedule.decay_steps` (0: constant).
  warmup_cosine_schedule schedule{1e-3, 0, 0, 0.1};
  /// Adam's first- and second-moment decays, in [0, 1), and its denominator guard (> 0).
  double beta1 = 0.9;
  double beta2 = 0.999;
  double epsilon = 1e-8;
  /// Global-norm gradient clipping threshold (> 0), or 0 for none.
  double max_grad_norm = 1.0;
  /// Chunking and kernel options of the loss (`sequence/derived.hpp`).
  sequence_options sequence{};
  /// Seed of the minibatch shuffles.
  std::uint64_t seed = 0;

  /// Throws `prefopt::invalid_argument` naming `function` and the first bad field.
  void validate(const char* function) const {
    PREFOPT_CHECK(batch_size >= 1, invalid_argument, function, ": config.batch_size = ", batch_size,
                  ", expected >= 1");
    schedule.validate(function, "config.schedule");
    PREFOPT_CHECK(beta1 >= 0.0 && beta1 < 1.0, invalid_argument, function,
                  ": config.beta1 = ", beta1, ", expected a value in [0, 1)");
    PREFOPT_CHECK(beta2 >= 0.0 && beta2 < 1.0, invalid_argument, function,
                  ": config.beta2 = ", beta2, ", expected a value in [0, 1)");
    PREFOPT_CHECK(std::isfinite(epsilon) && epsilon > 0.0, invalid_argument, function,
                  ": config.epsilon = ", epsilon, ", expected a finite value > 0");
    PREFOPT_CHECK(std::isfinite(max_grad_norm) && max_grad_norm >= 0.0, invalid_argument, function,
                  ": config.max_grad_norm = ", max_grad_norm,
                  ", expected a finite value >= 0 (0: no clipping)");
    PREFOPT_CHECK(sequence.max_positions >= 1, invalid_argument, function,
                  ": config.sequence.max_positions = ", sequence.max_positions, ", expected >= 1");
    PREFOPT_CHECK(std::isfinite(sequence.temperature) && sequence.temperature > 0.0,
                  invalid_argument, function,
                  ": config.sequence.temperature = ", sequence.temperature,
                  ", expected a finite value > 0");
  }
};

/// Statistics of one `sft` step.
struct sft_step_stats {
  /// L of the minibatch before the update (nats per response token); NaN when the step diverged.
  double loss = 0.0;
  /// ||dL/dtheta||_2 before clipping.
  double grad_norm = 0.0;
  /// The learning rate of this step.
  double learning_rate = 0.0;
  /// Response tokens (the loss's N_B) and demonstrations in the minibatch.
  index_t tokens = 0;
  index_t sequences = 0;
  /// True when the gradient was clipped.
  bool clipped = false;
};

/// Supervised fine-tuning (file comment): a `Solver` of `sft_problem<M>` for any `SequenceModel`.
class sft {
 public:
  using config_type = sft_config;
  using step_stats = sft_step_stats;

  /// Per-run state: the model being trained (a copy of `problem.initial`), Adam's moments, the
  /// shuffle and the minibatch buffers.
  template <SequenceModel M>
  class state {
   public:
    using scalar_type = typename M::scalar_type;

    /// The current model.
    [[nodiscard]] const M& policy() const noexcept { return policy_; }
    /// Steps taken.
    [[nodiscard]] index_t iteration() const noexcept { return t_; }
    /// Completed passes over the training set.
    [[nodiscard]] long epoch() const noexcept { return epoch_; }
    /// Why the last step reported a NaN loss (the model's error message), empty otherwise.
    [[nodiscard]] const std::string& failure() const noexcept { return failure_; }

   private:
    friend class sft;
    state(const M& initial, const sft_config& c, index_t n)
        : policy_(initial),
          optimizer_(
              optimizer_config{optimizer_kind::adam, c.schedule.peak, c.beta1, c.beta2, c.epsilon},
              initial.num_parameters()),
          gen_(c.seed, /*stream=*/0x5f7),
          order_(static_cast<std::size_t>(n)),
          gradient_(vector_t<scalar_type>::Zero(initial.num_parameters())) {
      std::iota(order_.begin(), order_.end(), index_t{0});
      gen_.shuffle(std::span<index_t>(order_));
    }

    M policy_;
    optimizer optimizer_;
    rng gen_;
    std::vector<index_t> order_;
    std::size_t cursor_ = 0;
    index_t t_ = 0;
    long epoch_ = 0;
    std::string failure_;
    vector_t<scalar_type> gradient_;
    std::vector<index_t> prompt_offsets_, response_offsets_;
    std::vector<token_id> prompt_tokens_, response_tokens_;
  };

  explicit sft(const sft_config& config = {}) : config_(config) { config_.validate("sft"); }

  [[nodiscard]] const sft_config& config() const noexcept { return config_; }

  /// Validates the problem and copies the initial model.
  template <SequenceModel M>
  [[nodiscard]] state<M> init(const sft_problem<M>& problem) const {
    constexpr const char* fn = "sft::init";
    problem.validate(fn);
    const auto theta = problem.initial->parameters();
    for (index_t k = 0; k < theta.size(); ++k) {
      PREFOPT_CHECK(std::isfinite(static_cast<double>(theta[k])), invalid_argument, fn,
                    ": problem.initial parameter ", k, " is ", static_cast<double>(theta[k]),
                    ", expected finite parameters");
    }
    return state<M>(*problem.initial, config_, problem.train.size());
  }

  /// One minibatch, one clipped Adam step (file comment).
  template <SequenceModel M>
  sft_step_stats step(const sft_problem<M>& problem, state<M>& s) const {
    constexpr const char* fn = "sft::step";
    using T = typename M::scalar_type;
    PREFOPT_CHECK(static_cast<index_t>(s.order_.size()) == problem.train.size(), invalid_argument,
                  fn, ": problem.train has ", problem.train.size(),
                  " demonstrations, the state was created for ", s.order_.size());
    const sequence_batch batch = next_minibatch(problem.train, s);
    sft_step_stats stats;
    stats.learning_rate = config_.schedule.learning_rate(static_cast<index_t>(s.t_));
    stats.sequences = batch.size();
    stats.tokens = batch.responses.total_length();
    s.failure_.clear();
    ++s.t_;
    if (stats.tokens == 0) return stats;  // only empty responses: nothing to learn, no update

    s.gradient_.setZero();
    double loss = 0.0;
    try {
      loss = detail::cross_entropy_pass<M>(fn, s.policy_, batch, &s.gradient_, config_.sequence);
    } catch (const invalid_argument& e) {
      // The batch was validated by `init`: this is the model writing non-finite values.
      if (s.t_ == 1) throw;  // the initial model: a bad input, not a divergence
      s.failure_ = e.what();
      stats.loss = std::numeric_limits<double>::quiet_NaN();
      return stats;
    }
    stats.grad_norm = clip_global_norm<T>(s.gradient_, config_.max_grad_norm);
    if (!std::isfinite(loss) || !std::isfinite(stats.grad_norm)) {
      s.failure_ = detail::concat("loss ", loss, ", gradient norm ", stats.grad_norm);
      stats.loss = std::numeric_limits<double>::quiet_NaN();
      return stats;
    }
    stats.loss = loss;
    stats.clipped = config_.max_grad_norm > 0.0 && stats.grad_norm > config_.max_grad_norm;
    s.optimizer_.set_learning_rate(stats.learning_rate);
    s.optimizer_.step(s.policy_.parameters(), s.gradient_);
    return stats;
  }

 private:
  /// Copies the next `batch_size` demonstrations of the shuffle into the state's buffers.
  template <SequenceModel M>
  sequence_batch next_minibatch(const sequence_batch& train, state<M>& s) const {
    s.prompt_offsets_.assign(1, 0);
    s.response_offsets_.assign(1, 0);
    s.prompt_tokens_.clear();
    s.response_tokens_.clear();
    for (index_t k = 0; k < config_.batch_size; ++k) {
      const index_t i = s.order_[s.cursor_++];
      if (s.cursor_ == s.order_.size()) {  // a pass is complete: reshuffle for the next
        s.cursor_ = 0;
        ++s.epoch_;
        s.gen_.shuffle(std::span<index_t>(s.order_));
      }
      const auto x = train.prompts.sequence(i);
      const auto y = train.responses.sequence(i);
      s.prompt_tokens_.insert(s.prompt_tokens_.end(), x.begin(), x.end());
      s.response_tokens_.insert(s.response_tokens_.end(), y.begin(), y.end());
      s.prompt_offsets_.push_back(static_cast<index_t>(s.prompt_tokens_.size()));
      s.response_offsets_.push_back(static_cast<index_t>(s.response_tokens_.size()));
    }
    return {{s.prompt_offsets_, s.prompt_tokens_}, {s.response_offsets_, s.response_tokens_}};
  }

  sft_config config_;
};

}  // namespace prefopt
