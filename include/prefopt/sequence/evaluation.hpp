#pragma once
/// \file
/// Monte-Carlo evaluation of sequence models with confidence intervals: the win rate of one model
/// against another under a judge, the expected reward under a reward model, and per-prompt KL and
/// length statistics between two models. Every estimate samples with the library's generation
/// (`sequence/generation.hpp`, `config.samples_per_prompt` responses per prompt, so prompts weigh
/// equally) and reports the sample mean, its standard error `sd / sqrt(n)` (sd with Bessel's
/// correction) and the normal-approximation 95% interval `mean +- 1.96 se` (Wald; it assumes
/// enough samples for the central limit theorem, e.g. n >= 30 and a mean not within a few se of
/// a bound). Deterministic for a seed.
///
///     win_rate          P(a > b) = E_x E_{y ~ a(.|x), y' ~ b(.|x)} P(y > y' | x)
///     expected_reward   E_x E_{y ~ pi(.|x)} r(x, y)
///     kl_and_length     per prompt: E_{y ~ pi} sum_t KL_t(y) = KL(pi(.|x) || mu(.|x)) (chain rule
///                       over positions; exact per-token KL, so lower variance than summed k1),
///                       and E_{y ~ pi} |y| (tokens, eos included)
///
/// The KL identity holds for samples drawn from pi itself: pass the default temperature 1, no
/// top-k / top-p, and a `max_new_tokens` the model stops within; otherwise it is the KL along
/// the sampling distribution's paths (still a well-defined statistic, not the KL of what was
/// sampled).

#include <Eigen/Core>

#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include "prefopt/core/assert.hpp"
#include "prefopt/core/concepts.hpp"
#include "prefopt/core/random.hpp"
#include "prefopt/core/types.hpp"
#include "prefopt/sequence/derived.hpp"
#include "prefopt/sequence/generation.hpp"

namespace prefopt {

/// A Monte-Carlo mean with its standard error and 95% normal-approximation interval.
struct interval_estimate {
  double mean = 0.0;
  double std_error = 0.0;
  double lower = 0.0;  ///< mean - 1.96 std_error
  double upper = 0.0;  ///< mean + 1.96 std_error
  index_t samples = 0;
};

/// Mean, standard error (Bessel-corrected sd / sqrt(n)) and the 95% interval of `values`
/// (n >= 1; one value gives a zero-width interval).
[[nodiscard]] inline interval_estimate mean_with_interval(std::span<const double> values) {
  PREFOPT_CHECK(!values.empty(), invalid_argument, "mean_with_interval: values is empty");
  const auto n = static_cast<double>(values.size());
  double mean = 0.0;
  for (const double v : values) mean += v;
  mean /= n;
  double ss = 0.0;
  for (const double v : values) ss += (v - mean) * (v - mean);
  interval_estimate e;
  e.mean = mean;
  e.samples = static_cast<index_t>(values.size());
  e.std_error = values.size() > 1 ? std::sqrt(ss / (n - 1.0) / n) : 0.0;
  constexpr double z = 1.959963984540054;  // the 97.5% standard normal quantile
  e.lower = mean - z * e.std_error;
  e.upper = mean + z * e.std_error;
  return e;
}

namespace detail {
/// An independent seed for the second model's samples.
[[nodiscard]] inline std::uint64_t second_seed(std::uint64_t seed) noexcept {
  std::uint64_t x = seed ^ 0x5eed5eed5eed5eedULL;
  return splitmix64(x);
}
}  // namespace detail

/// `P(a > b)` with a 95% interval: `config.samples_per_prompt` responses per prompt from each
/// model (independent streams derived from `seed`), paired in order and judged by `judge` (a
/// `PreferenceModel` over `pair_batch<sequence_batch>`); the per-pair probabilities are
/// averaged (a judge returning 0/1 outcomes gives the empirical win rate).
template <SequenceModel A, SequenceModel B, PreferenceModel J>
requires std::same_as<typename J::batch_type, sequence_batch>
[[nodiscard]] interval_estimate win_rate(const A& a, const B& b, const J& judge,
                                         ragged_view<const token_id> prompts,
                                         const generation_config& config, std::uint64_t seed) {
  const generation_result ya = generate(a, prompts, config, seed);
  const generation_result yb = generate(b, prompts, config, detail::second_seed(seed));
  PREFOPT_CHECK(ya.size() >= 1, invalid_argument, "win_rate: prompts is empty");
  vector_d p(ya.size());
  judge.preference(pair_batch<sequence_batch>{ya.batch(), yb.batch()}, p);
  for (index_t i = 0; i < p.size(); ++i) {
    PREFOPT_CHECK(p(i) >= 0.0 && p(i) <= 1.0, invalid_argument, "win_rate: judge.preference gave ",
                  p(i), " for pair ", i, " (prompt ", ya.prompt_index[static_cast<std::size_t>(i)],
                  "), expected a probability in [0, 1]");
  }
  return mean_with_interval({p.data(), static_cast<std::size_t>(p.size())});
}

/// `E r(x, y)` over `y ~ model(.|x)` with a 95% interval (`reward` a `RewardModel` over
/// `sequence_batch`).
template <SequenceModel M, RewardModel R>
requires std::same_as<typename R::batch_type, sequence_batch>
[[nodiscard]] interval_estimate expected_reward(const M& model, const R& reward,
                                                ragged_view<const token_id> prompts,
                                                const generation_config& config,
                                                std::uint64_t seed) {
  const generation_result y = generate(model, prompts, config, seed);
  PREFOPT_CHECK(y.size() >= 1, invalid_argument, "expected_reward: prompts is empty");
  vector_d r(y.size());
  reward.reward(y.batch(), r);
  return mean_with_interval({r.data(), static_cast<std::size_t>(r.size())});
}

/// Per-prompt KL and length statistics of `model` against `reference` (file comment).
struct kl_length_statistics {
  std::vector<interval_estimate> kl;      ///< [prompts] KL(pi(.|x) || mu(.|x)) estimates
  std::vector<interval_estimate> length;  ///< [prompts] E |y| estimates
  interval_estimate mean_kl;              ///< over all responses (prompts weigh equally)
  interval_estimate mean_length;
};

/// Samples `config.samples_per_prompt` responses per prompt from `model` and reports, per prompt
/// and overall, the summed exact per-token KL to `reference` and the response length.
template <SequenceModel M, SequenceModel R>
[[nodiscard]] kl_length_statistics kl_and_length(const M& model, const R& reference,
                                                 ragged_view<const token_id> prompts,
                                                 const generation_config& config,
                                                 std::uint64_t seed) {
  const generation_result y = generate(model, prompts, config, seed);
  PREFOPT_CHECK(y.size() >= 1, invalid_argument, "kl_and_length: prompts is empty");
  vector_d token_kl_values(static_cast<index_t>(y.tokens.size()));
  token_kl(model, reference, y.batch(), token_kl_values);
  std::vector<double> kl(static_cast<std::size_t>(y.size())), len(kl.size());
  for (std::size_t r = 0; r < kl.size(); ++r) {
    double s = 0.0;
    for (index_t k = y.offsets[r]; k < y.offsets[r + 1]; ++k) s += token_kl_values(k);
    kl[r] = s;
    len[r] = static_cast<double>(y.offsets[r + 1] - y.offsets[r]);
  }
  kl_length_statistics out;
  const auto per = static_cast<std::size_t>(config.samples_per_prompt);
  for (index_t i = 0; i < prompts.num_sequences(); ++i) {
    const auto first = static_cast<std::size_t>(i) * per;
    out.kl.push_back(mean_with_interval(std::span<const double>(kl).subspan(first, per)));
    out.length.push_back(mean_with_interval(std::span<const double>(len).subspan(first, per)));
  }
  out.mean_kl = mean_with_interval(kl);
  out.mean_length = mean_with_interval(len);
  return out;
}

// Readable rejections (viable only when an argument does not model what the function above
// needs): the sentences of `check_sequence_model`, `check_preference_model` and
// `check_reward_model` naming the missing members.

template <class A, class B, class J>
requires(!(SequenceModel<A> && SequenceModel<B> && PreferenceModel<J> &&
           batch_type_is<J, sequence_batch>)) void win_rate(const A&, const B&, const J&,
                                                            ragged_view<const token_id>,
                                                            const generation_config&,
                                                            std::uint64_t) {
  static_assert(check_sequence_model<A>() && check_sequence_model<B>() &&
                check_preference_model<J>());
  static_assert(!has_batch_type<J> || batch_type_is<J, sequence_batch>,
                "prefopt::win_rate: the judge's `batch_type` must be prefopt::sequence_batch (it "
                "judges pairs of sampled responses)");
}

template <class M, class R>
requires(!(SequenceModel<M> && RewardModel<R> &&
           batch_type_is<R, sequence_batch>)) void expected_reward(const M&, const R&,
                                                                   ragged_view<const token_id>,
                                                                   const generation_config&,
                                                                   std::uint64_t) {
  static_assert(check_sequence_model<M>() && check_reward_model<R>());
  static_assert(!has_batch_type<R> || batch_type_is<R, sequence_batch>,
                "prefopt::expected_reward: the reward model's `batch_type` must be "
                "prefopt::sequence_batch (it scores sampled responses)");
}

template <class M, class R>
requires(!(SequenceModel<M> &&
           SequenceModel<R>)) void kl_and_length(const M&, const R&, ragged_view<const token_id>,
                                                 const generation_config&, std::uint64_t) {
  static_assert(check_sequence_model<M>() && check_sequence_model<R>());
}

}  // namespace prefopt
