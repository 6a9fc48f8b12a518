#pragma once
/// \file
/// `token_preference_task`: a token-level preference problem for `token_softmax_policy` — a
/// Bradley-Terry judge over whole responses whose gold reward adds a per-token quality and a
/// length bonus:
///
///     r(y) = sum_{t < n-1} quality[y_t] + length_bonus * (n - 1),      P(y > y') = sigma(r(y) -
///     r(y')),
///
/// for a response `y` of `n` tokens (the last one eos, which scores 0). With `length_bonus > 0`
/// the judge prefers longer responses at equal quality: the length-biased preferences under
/// which DPO is known to lengthen responses (Park et al. 2024, arXiv 2403.19159) and length
/// averaging to curb it (Grinsztajn et al. 2024, arXiv 2406.19188). The reference policy `mu`
/// stops with a fixed probability at every position (geometric lengths truncated at L).
///
/// Because `r` is additive over tokens, `expected_gold_reward(pi)` is exact for the positional
/// policy (`token_softmax_policy::expected_token_sum`). For the generic trainers the task is a
/// `sequence_problem`: `reference_model()` (mu as a `SequenceModel`), `judge()` (a
/// `PreferenceModel` over sequences) and `prompts()` (one empty prompt: the task has one context),
/// e.g. `make_sequence_problem(mu, judge, task.prompts(), generation)` with `max_new_tokens >=
/// max_length()`.

#include <Eigen/Core>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <span>
#include <utility>

#include "prefopt/core/assert.hpp"
#include "prefopt/core/concepts.hpp"
#include "prefopt/core/math.hpp"
#include "prefopt/core/random.hpp"
#include "prefopt/core/types.hpp"
#include "prefopt/policies/sequence_adapters.hpp"
#include "prefopt/policies/token_softmax.hpp"

namespace prefopt {

/// Parameters of a random `token_preference_task`.
struct token_task_config {
  index_t vocab_size = 4;         ///< content tokens K >= 1
  index_t max_length = 8;         ///< L >= 2 (eos included)
  double stop_probability = 0.3;  ///< mu's eos probability per free position, in (0, 1)
  double length_bonus = 0.5;      ///< gold reward per content token (> 0: length-biased judge)
  double quality_scale = 1.0;     ///< token qualities ~ N(0, quality_scale^2), then centred; >= 0
  std::uint64_t seed = 0;         ///< draws the qualities
};

class token_preference_task {
 public:
  /// `quality` has one entry per content token (K >= 1); `max_length >= 2`.
  token_preference_task(vector_d quality, double length_bonus, index_t max_length,
                        double stop_probability)
      : quality_(std::move(quality)),
        length_bonus_(length_bonus),
        reference_(make_reference(quality_, length_bonus, max_length, stop_probability)) {}

  /// Qualities drawn from `config.seed` and centred (mean 0), so that a response of uniformly
  /// drawn content tokens gains `length_bonus` per token on average: the judge's bias is length.
  [[nodiscard]] static token_preference_task random(const token_task_config& config) {
    PREFOPT_CHECK(config.vocab_size >= 1, invalid_argument,
                  "token_preference_task::random: vocab_size = ", config.vocab_size,
                  ", expected >= 1");
    PREFOPT_CHECK(config.quality_scale >= 0.0 && std::isfinite(config.quality_scale),
                  invalid_argument,
                  "token_preference_task::random: quality_scale = ", config.quality_scale,
                  ", expected a finite value >= 0");
    rng gen(config.seed, /*stream=*/0x70c);
    vector_d q(config.vocab_size);
    for (index_t k = 0; k < q.size(); ++k) q(k) = config.quality_scale * gen.normal();
    q.array() -= q.mean();  // centred: under uniform content tokens, length is the only bias
    return {std::move(q), config.length_bonus, config.max_length, config.stop_probability};
  }

  [[nodiscard]] index_t vocab_size() const noexcept { return quality_.size(); }
  [[nodiscard]] index_t max_length() const noexcept { return reference_.max_length(); }
  [[nodiscard]] const vector_d& quality() const noexcept { return quality_; }
  [[nodiscard]] double length_bonus() const noexcept { return length_bonus_; }
  /// The reference policy mu (also where offline preference data come from).
  [[nodiscard]] const token_softmax_policy& reference() const noexcept { return reference_; }

  /// Per-token gold score (K+1 entries, eos last and 0): quality + length bonus.
  [[nodiscard]] vector_d token_values() const {
    vector_d v(vocab_size() + 1);
    v.head(vocab_size()) = quality_.array() + length_bonus_;
    v(vocab_size()) = 0.0;
    return v;
  }

  /// r(y) for a well-formed response (content tokens, then eos).
  [[nodiscard]] double gold_reward(std::span<const token_id> y) const {
    return checked_reward("token_preference_task::gold_reward", "response", y);
  }

  /// P(a > b) = sigma(r(a) - r(b)).
  [[nodiscard]] double preference(std::span<const token_id> a, std::span<const token_id> b) const {
    constexpr const char* fn = "token_preference_task::preference";
    return sigmoid(checked_reward(fn, "a", a) - checked_reward(fn, "b", b));
  }

  /// The judge `P(first_i > second_i) = preference(first_i, second_i)` as a `PreferenceModel`
  /// over sequences (prompts are not read: the task has one context). Holds a pointer to the
  /// task, which must outlive it.
  class judge_model {
   public:
    using batch_type = sequence_batch;
    explicit judge_model(const token_preference_task& task) : task_(&task) {}
    void preference(const pair_batch<sequence_batch>& pairs, Eigen::Ref<vector_d> out) const {
      PREFOPT_CHECK(pairs.first.size() == pairs.second.size() && out.size() == pairs.size(),
                    shape_error, "token_preference_task::judge_model::preference: first has ",
                    pairs.first.size(), " pairs, second ", pairs.second.size(), ", out ",
                    out.size(), ", expected equal sizes");
      for (index_t i = 0; i < out.size(); ++i) {
        out(i) = task_->preference(pairs.first.responses.sequence(i),
                                   pairs.second.responses.sequence(i));
      }
    }

   private:
    const token_preference_task* task_;
  };

  [[nodiscard]] judge_model judge() const { return judge_model(*this); }
  /// mu as a `SequenceModel` (a copy of `reference()`).
  [[nodiscard]] positional_sequence_model reference_model() const {
    return positional_sequence_model(reference_);
  }
  /// The prompt pool of the task's `sequence_problem`: one empty prompt.
  [[nodiscard]] ragged_view<const token_id> prompts() const noexcept {
    return {std::span<const index_t>(empty_prompt_), {}};
  }

  /// E_pi[r(y)], exact.
  [[nodiscard]] double expected_gold_reward(const token_softmax_policy& pi) const {
    PREFOPT_CHECK(pi.vocab_size() == vocab_size() && pi.max_length() == max_length(), shape_error,
                  "token_preference_task::expected_gold_reward: the policy has vocab_size ",
                  pi.vocab_size(), " and max_length ", pi.max_length(), ", expected ", vocab_size(),
                  " and ", max_length());
    return pi.expected_token_sum(token_values());
  }

 private:
  /// Validates the task's arguments (errors name the task) and builds mu.
  static token_softmax_policy make_reference(const vector_d& quality, double length_bonus,
                                             index_t max_length, double stop_probability) {
    constexpr const char* fn = "token_preference_task";
    PREFOPT_CHECK(quality.size() >= 1, invalid_argument, fn,
                  ": quality is empty, expected one entry per content token");
    for (index_t k = 0; k < quality.size(); ++k) {
      PREFOPT_CHECK(std::isfinite(quality(k)), invalid_argument, fn, ": quality[", k,
                    "] = ", quality(k), ", expected a finite value");
    }
    PREFOPT_CHECK(std::isfinite(length_bonus), invalid_argument, fn,
                  ": length_bonus = ", length_bonus, ", expected a finite value");
    PREFOPT_CHECK(max_length >= 2, invalid_argument, fn, ": max_length = ", max_length,
                  ", expected >= 2 (at least one content token)");
    PREFOPT_CHECK(stop_probability > 0.0 && stop_probability < 1.0, invalid_argument, fn,
                  ": stop_probability = ", stop_probability, ", expected a value in (0, 1)");
    return token_softmax_policy::with_stop_probability(quality.size(), max_length,
                                                       stop_probability);
  }

  [[nodiscard]] double checked_reward(const char* fn, const char* argument,
                                      std::span<const token_id> y) const {
    const auto n = static_cast<index_t>(y.size());
    PREFOPT_CHECK(n >= 1 && n <= max_length(), invalid_argument, fn, ": ", argument, " has ", n,
                  " tokens, expected 1 to max_length = ", max_length(), " (eos included)");
    PREFOPT_CHECK(y.back() == reference_.eos(), invalid_argument, fn, ": ", argument, "[", n - 1,
                  "] = ", y.back(), ", expected eos = ", reference_.eos(),
                  " at the end of the response");
    double r = 0.0;
    for (index_t t = 0; t + 1 < n; ++t) {
      const token_id k = y[static_cast<std::size_t>(t)];
      PREFOPT_CHECK(k >= 0 && k < static_cast<token_id>(vocab_size()), invalid_argument, fn, ": ",
                    argument, "[", t, "] = ", k, ", expected a content token in [0, ", vocab_size(),
                    ") before the final eos");
      r += quality_(k) + length_bonus_;
    }
    return r;
  }

  vector_d quality_;
  double length_bonus_;
  token_softmax_policy reference_;
  std::array<index_t, 2> empty_prompt_{0, 0};  // offsets of one empty prompt
};

}  // namespace prefopt
