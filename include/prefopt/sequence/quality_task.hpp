#pragma once
/// \file
/// `length_biased_quality_task`: a sequence-level problem for any `SequenceModel` — prompts, a
/// gold reward (`RewardModel` over `sequence_batch`) and a raters' judge (`PreferenceModel` over
/// `pair_batch<sequence_batch>`) whose preference is biased toward length.
///
/// Vocabulary: `K` content tokens `0 .. K-1` and eos `= K` (`V = K + 1`). A prompt is a sequence
/// of tokens whose first token `c = x_0` is its topic; a response `y` scores
///
///     gold reward     r(x, y) = sum_{t : y_t != eos} Q[c, y_t]
///     raters' score   s(x, y) = r(x, y) + length_bonus * n(y),   n(y) = #content tokens of y
///     judge           P(y > y' | x) = sigma(s(x, y) - s(x, y'))            (Bradley-Terry)
///
/// with qualities `Q[c, k] ~ N(0, quality_scale^2)` centred per topic (a uniformly random token
/// gains nothing on average, so under the judge the only systematic gain is length). Tokens after
/// the first eos are not scored. This is the setting of Bai et al.'s reward vs sqrt(KL) curve
/// ("Training a Helpful and Harmless Assistant with RLHF", arXiv 2204.05862, ALGORITHMS.md §2.5)
/// and of Grinsztajn et al.'s length / score trade-off ("Averaging log-likelihoods in direct
/// alignment", arXiv 2406.19188): optimising the judge lengthens responses, the gold reward says
/// whether quality improved. `sequence/evaluation.hpp` estimates expected rewards, win rates and
/// KL with confidence intervals for any model on it.
/// Not supported: rewards that depend on token order; topics other than the first prompt token.

#include <Eigen/Core>

#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include "prefopt/core/assert.hpp"
#include "prefopt/core/concepts.hpp"
#include "prefopt/core/math.hpp"
#include "prefopt/core/random.hpp"
#include "prefopt/core/types.hpp"

namespace prefopt {

/// Parameters of a random `length_biased_quality_task`.
struct quality_task_config {
  index_t content_tokens = 4;  ///< K >= 1 (eos = K)
  index_t num_prompts = 8;     ///< >= 1
  index_t prompt_length = 2;   ///< >= 1 tokens per prompt, content tokens drawn uniformly
  double quality_scale = 1.0;  ///< Q ~ N(0, scale^2), centred per topic; finite, >= 0
  double length_bonus = 0.5;   ///< the raters' bonus per content token; finite
  std::uint64_t seed = 0;      ///< draws the prompts and the qualities
};

class length_biased_quality_task {
 public:
  /// The gold reward r(x, y) as a `RewardModel` (points into the task, which must outlive it).
  class gold_reward_model {
   public:
    using batch_type = sequence_batch;
    explicit gold_reward_model(const length_biased_quality_task& task) : task_(&task) {}
    /// out[i] = r(prompts[i], responses[i]).
    void reward(const sequence_batch& batch, Eigen::Ref<vector_d> out) const {
      task_->scores("length_biased_quality_task::gold_reward_model::reward", batch, 0.0, out);
    }

   private:
    const length_biased_quality_task* task_;
  };

  /// The raters' Bradley-Terry judge on s = r + length_bonus * n as a `PreferenceModel`.
  class judge_model {
   public:
    using batch_type = sequence_batch;
    explicit judge_model(const length_biased_quality_task& task) : task_(&task) {}
    /// out[i] = sigma(s(x_i, first_i) - s(x_i, second_i)); the two batches share their prompts.
    void preference(const pair_batch<sequence_batch>& pairs, Eigen::Ref<vector_d> out) const {
      constexpr const char* fn = "length_biased_quality_task::judge_model::preference";
      PREFOPT_CHECK(pairs.first.size() == pairs.second.size() && out.size() == pairs.size(),
                    shape_error, fn, ": first has ", pairs.first.size(), " pairs, second ",
                    pairs.second.size(), ", out ", out.size(), ", expected equal sizes");
      vector_d a(pairs.size()), b(pairs.size());
      task_->scores(fn, pairs.first, task_->length_bonus_, a);
      task_->scores(fn, pairs.second, task_->length_bonus_, b);
      for (index_t i = 0; i < out.size(); ++i) out(i) = sigmoid(a(i) - b(i));
    }

   private:
    const length_biased_quality_task* task_;
  };

  /// The task with given prompts (ragged, copied) and qualities `[K + 1, K]` (row = topic, one
  /// row per token id a prompt may start with).
  length_biased_quality_task(std::vector<index_t> prompt_offsets,
                             std::vector<token_id> prompt_tokens, row_matrix_d quality,
                             double length_bonus)
      : offsets_(std::move(prompt_offsets)),
        tokens_(std::move(prompt_tokens)),
        quality_(std::move(quality)),
        length_bonus_(length_bonus) {
    constexpr const char* fn = "length_biased_quality_task";
    PREFOPT_CHECK(quality_.cols() >= 1 && quality_.rows() == quality_.cols() + 1, shape_error, fn,
                  ": quality is ", quality_.rows(), "x", quality_.cols(),
                  ", expected (K + 1) x K with K >= 1");
    PREFOPT_CHECK(quality_.allFinite(), invalid_argument, fn, ": quality has a non-finite entry");
    PREFOPT_CHECK(std::isfinite(length_bonus), invalid_argument, fn,
                  ": length_bonus = ", length_bonus, ", expected a finite value");
    prompts().validate(fn, "prompts");
    for (index_t i = 0; i < prompts().num_sequences(); ++i) {
      const auto x = prompts().sequence(i);
      PREFOPT_CHECK(!x.empty(), invalid_argument, fn, ": prompts[", i,
                    "] is empty, expected a topic token first");
      for (std::size_t t = 0; t < x.size(); ++t) {
        PREFOPT_CHECK(x[t] >= 0 && x[t] < vocab_size(), invalid_argument, fn, ": prompts[", i, "][",
                      t, "] = ", x[t], ", expected a token id in [0, ", vocab_size(), ")");
      }
    }
  }

  /// Prompts of `prompt_length` uniform content tokens and centred Gaussian qualities, from
  /// `config.seed`.
  [[nodiscard]] static length_biased_quality_task random(const quality_task_config& config) {
    constexpr const char* fn = "length_biased_quality_task::random";
    PREFOPT_CHECK(config.content_tokens >= 1, invalid_argument, fn,
                  ": config.content_tokens = ", config.content_tokens, ", expected >= 1");
    PREFOPT_CHECK(config.num_prompts >= 1, invalid_argument, fn,
                  ": config.num_prompts = ", config.num_prompts, ", expected >= 1");
    PREFOPT_CHECK(config.prompt_length >= 1, invalid_argument, fn,
                  ": config.prompt_length = ", config.prompt_length, ", expected >= 1");
    PREFOPT_CHECK(std::isfinite(config.quality_scale) && config.quality_scale >= 0.0,
                  invalid_argument, fn, ": config.quality_scale = ", config.quality_scale,
                  ", expected a finite value >= 0");
    rng gen(config.seed, /*stream=*/0x9a1);
    const index_t k = config.content_tokens;
    row_matrix_d q(k + 1, k);
    for (index_t c = 0; c <= k; ++c) {
      for (index_t v = 0; v < k; ++v) q(c, v) = config.quality_scale * gen.normal();
      q.row(c).array() -= q.row(c).mean();
    }
    std::vector<index_t> offsets{0};
    std::vector<token_id> tokens;
    for (index_t i = 0; i < config.num_prompts; ++i) {
      for (index_t t = 0; t < config.prompt_length; ++t) {
        tokens.push_back(static_cast<token_id>(gen.uniform_index(k)));
      }
      offsets.push_back(static_cast<index_t>(tokens.size()));
    }
    return {std::move(offsets), std::move(tokens), std::move(q), config.length_bonus};
  }

  /// V = K + 1 token ids.
  [[nodiscard]] index_t vocab_size() const noexcept { return quality_.cols() + 1; }
  /// eos = K.
  [[nodiscard]] token_id eos() const noexcept { return static_cast<token_id>(quality_.cols()); }
  [[nodiscard]] double length_bonus() const noexcept { return length_bonus_; }
  /// Q, `[K + 1, K]`: row c is the quality of each content token under topic c.
  [[nodiscard]] const row_matrix_d& quality() const noexcept { return quality_; }
  /// The prompts (views into the task).
  [[nodiscard]] ragged_view<const token_id> prompts() const { return {offsets_, tokens_}; }
  [[nodiscard]] gold_reward_model gold_reward() const { return gold_reward_model(*this); }
  [[nodiscard]] judge_model judge() const { return judge_model(*this); }

 private:
  /// out[i] = r(x_i, y_i) + bonus * n(y_i), validating ids and sizes (errors name `fn`).
  void scores(const char* fn, const sequence_batch& batch, double bonus,
              Eigen::Ref<vector_d> out) const {
    batch.prompts.validate(fn, "batch.prompts");
    batch.responses.validate(fn, "batch.responses");
    PREFOPT_CHECK(batch.prompts.num_sequences() == batch.size() && out.size() == batch.size(),
                  shape_error, fn, ": batch has ", batch.prompts.num_sequences(), " prompts, ",
                  batch.size(), " responses and out ", out.size(), " entries, expected equal");
    for (index_t i = 0; i < batch.size(); ++i) {
      const auto x = batch.prompts.sequence(i);
      PREFOPT_CHECK(!x.empty() && x[0] >= 0 && x[0] < vocab_size(), invalid_argument, fn,
                    ": batch.prompts[", i, "] must start with a topic token in [0, ", vocab_size(),
                    ")");
      const auto y = batch.responses.sequence(i);
      double s = 0.0;
      for (std::size_t t = 0; t < y.size(); ++t) {
        PREFOPT_CHECK(y[t] >= 0 && y[t] < vocab_size(), invalid_argument, fn, ": batch.responses[",
                      i, "][", t, "] = ", y[t], ", expected a token id in [0, ", vocab_size(), ")");
        if (y[t] == eos()) break;
        s += quality_(x[0], y[t]) + bonus;
      }
      out(i) = s;
    }
  }

  std::vector<index_t> offsets_;
  std::vector<token_id> tokens_;
  row_matrix_d quality_;
  double length_bonus_;
};

static_assert(RewardModel<length_biased_quality_task::gold_reward_model>);
static_assert(PreferenceModel<length_biased_quality_task::judge_model>);

}  // namespace prefopt
