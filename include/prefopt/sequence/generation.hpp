#pragma once
/// \file
/// Generation owned by the library, for any `SequenceModel`: batched sampling with temperature,
/// top-k, top-p (nucleus), greedy decoding, a limit on new tokens and stop at eos; and the
/// token-level geometric mixture of two models used by Nash-MD-PG (Munos et al., "Nash Learning
/// from Human Feedback", arXiv 2312.00886, App. F.1; ALGORITHMS.md §6):
///
///     pi_mix(v | ctx) = pi(v | ctx)^(1 - beta_mix) mu(v | ctx)^beta_mix / Z(ctx)
///                     = softmax((1 - beta_mix) log pi(. | ctx) + beta_mix log mu(. | ctx))_v,
///
/// normalised at every step (not the intractable sequence-level mixture).
///
/// At each step, for each live sequence: the base distribution is the model's softmax (or the
/// mixture); greedy takes its most probable token (lowest id on ties) and ignores temperature,
/// top-k and top-p; otherwise the base log-probs are divided by `temperature`, the `top_k` most
/// probable tokens are kept (ties broken by lower id), then the smallest set of the most probable
/// remaining tokens whose tempered probability reaches `top_p` (the order of Hugging Face's
/// samplers: temperature, top-k, top-p), renormalised, and one token is drawn by inverse CDF in
/// token-id order (`rng::categorical`, one uniform). A sequence stops at eos (included in the
/// response) or after `max_new_tokens` tokens (then `truncated` is set).
///
/// **Outputs.** Responses as ragged token ids (response `r = i * samples_per_prompt + s` answers
/// prompt `i`, sample `s`), per-token log-probs under the sampling distribution (tempered,
/// truncated, mixed; 0 for greedy) and under the model itself at temperature 1 (they differ when
/// tempered, truncated or mixed; PPO needs the second, ALGORITHMS.md §2.3), the truncation flags,
/// and a copy of the prompts aligned with the responses (`batch()` scores them).
///
/// **Determinism.** Response `(prompt id, sample s)` is drawn from its own stream
/// `rng(seed, (prompt id << 32) ^ s)`, one uniform per sampled token, so it is bitwise the same
/// whatever the batch size and composition, as long as the model's next-token logits of a
/// sequence do not depend on the other sequences (the concept's rule). Prompt ids are
/// `0 .. n-1` unless given (`prompt_ids`, e.g. the prompts' indices in a dataset); `s < 2^32`.
/// Single-threaded (the model's own calls may use threads).
///
/// **Errors** (`prefopt::invalid_argument`, before anything is sampled): `max_new_tokens < 1`,
/// temperature not finite and > 0, `top_k < 0`, `top_p` outside (0, 1], `beta_mix` outside
/// [0, 1], `samples_per_prompt < 1`, token ids outside the vocabulary (prompt i, token t), prompts
/// shorter than the model's `min_prompt_length()`, models of different vocabularies. A model that
/// writes NaN or +inf logits (or only -inf) is reported naming the model, the sequence, the prompt,
/// the sample, the new token's position and the vocabulary entry. Nothing is returned on error.
/// Not supported: repetition penalties, beam search, stop strings.

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <span>
#include <type_traits>
#include <vector>

#include "prefopt/core/assert.hpp"
#include "prefopt/core/concepts.hpp"
#include "prefopt/core/random.hpp"
#include "prefopt/core/types.hpp"

namespace prefopt {

/// Sampling settings (the library's generation; see the file comment for the order of operations).
struct generation_config {
  index_t max_new_tokens = 32;     ///< >= 1
  double temperature = 1.0;        ///< > 0, finite (`T_gen` of ALGORITHMS.md §0.1)
  index_t top_k = 0;               ///< keep the k most probable tokens; 0: off
  double top_p = 1.0;              ///< nucleus mass in (0, 1]; 1: off
  bool greedy = false;             ///< most probable token; ignores the three settings above
  index_t samples_per_prompt = 1;  ///< >= 1
};

/// Responses drawn by `generate` / `generate_mixture`, owning their storage.
struct generation_result {
  std::vector<index_t> prompt_offsets;     ///< [N + 1]: the prompts, repeated per sample
  std::vector<token_id> prompt_tokens;     ///< prompt of response r at [prompt_offsets[r], ...)
  std::vector<index_t> offsets;            ///< [N + 1], offsets[0] = 0
  std::vector<token_id> tokens;            ///< [T] response tokens (eos included when hit)
  std::vector<double> sampling_log_probs;  ///< [T] log q(y_t) under the sampling distribution
  std::vector<double> model_log_probs;     ///< [T] log pi(y_t) under the (first) model, T = 1
  std::vector<std::uint8_t> truncated;     ///< [N] 1: hit max_new_tokens without eos
  std::vector<index_t> prompt_index;       ///< [N] the row of the prompts batch it answers
  std::vector<index_t> sample_index;       ///< [N] its sample number s

  /// Number of responses N.
  [[nodiscard]] index_t size() const noexcept { return static_cast<index_t>(truncated.size()); }
  /// The responses as a ragged view.
  [[nodiscard]] ragged_view<const token_id> responses() const { return {offsets, tokens}; }
  /// Prompts and responses as a batch (for scoring; valid while this result lives).
  [[nodiscard]] sequence_batch batch() const {
    return {{prompt_offsets, prompt_tokens}, {offsets, tokens}};
  }
};

namespace detail {

inline void check_generation_config(const char* fn, const generation_config& c) {
  PREFOPT_CHECK(c.max_new_tokens >= 1, invalid_argument, fn,
                ": config.max_new_tokens = ", c.max_new_tokens, ", expected >= 1");
  PREFOPT_CHECK(std::isfinite(c.temperature) && c.temperature > 0.0, invalid_argument, fn,
                ": config.temperature = ", c.temperature, ", expected a finite value > 0");
  PREFOPT_CHECK(c.top_k >= 0, invalid_argument, fn, ": config.top_k = ", c.top_k,
                ", expected >= 0 (0: off)");
  PREFOPT_CHECK(c.top_p > 0.0 && c.top_p <= 1.0, invalid_argument, fn, ": config.top_p = ", c.top_p,
                ", expected a value in (0, 1]");
  PREFOPT_CHECK(c.samples_per_prompt >= 1, invalid_argument, fn,
                ": config.samples_per_prompt = ", c.samples_per_prompt, ", expected >= 1");
}

template <class M>
void check_prompts(const char* fn, const M& model, ragged_view<const token_id> prompts) {
  prompts.validate(fn, "prompts");
  const auto v = static_cast<index_t>(model.vocab_size());
  PREFOPT_CHECK(v >= 1, invalid_argument, fn, ": model.vocab_size() = ", v, ", expected >= 1");
  const auto eos = static_cast<index_t>(model.eos());
  PREFOPT_CHECK(eos >= 0 && eos < v, invalid_argument, fn, ": model.eos() = ", eos,
                ", expected a token id in [0, ", v, ")");
  for (index_t i = 0; i < prompts.num_sequences(); ++i) {
    const auto x = prompts.sequence(i);
    for (std::size_t t = 0; t < x.size(); ++t) {
      PREFOPT_CHECK(x[t] >= 0 && x[t] < v, invalid_argument, fn, ": prompts[", i, "][", t,
                    "] = ", x[t], ", expected a token id in [0, ", v, ") (model.vocab_size())");
    }
    if constexpr (requires { model.min_prompt_length(); }) {
      const auto need = static_cast<index_t>(model.min_prompt_length());
      PREFOPT_CHECK(static_cast<index_t>(x.size()) >= need, invalid_argument, fn, ": prompts[", i,
                    "] has ", x.size(),
                    " tokens, expected at least model.min_prompt_length() = ", need);
    }
  }
}

/// The sampling weights of a row of log-probs: `weights[u] = exp(a[u] - max)` (exactly 0 where
/// `a[u] = -inf`, which Eigen's vectorised exp would round to a denormal) and their sum.
struct row_weights {
  std::vector<double> w;
  double total = 0.0;
};

/// In place: log-softmax of finite-or--inf values (at least one finite, maximum `m`); fills
/// `weights` with `exp(a - m)` (one vectorised pass: the sampler draws from them).
inline void log_normalize(std::vector<double>& a, double m, row_weights& weights) {
  const auto v = static_cast<index_t>(a.size());
  weights.w.resize(a.size());
  Eigen::Map<Eigen::ArrayXd> x(a.data(), v), w(weights.w.data(), v);
  constexpr double minus_inf = -std::numeric_limits<double>::infinity();
  w = (x - m).exp();  // vectorised; Eigen's `select` would evaluate it one scalar at a time
  for (index_t u = 0; u < v; ++u) {
    if (x(u) == minus_inf) w(u) = 0.0;
  }
  weights.total = w.sum();
  x -= m + std::log(weights.total);
}

inline void log_normalize(std::vector<double>& a, row_weights& weights) {
  double m = -std::numeric_limits<double>::infinity();
  for (const double x : a) m = std::max(m, x);
  log_normalize(a, m, weights);
}

/// Row `r` of a model's logits into `out` as log-softmax in double (and its sampling weights).
/// Throws naming the position: `convergence_error` when the row holds NaN / +inf (the model's
/// numbers went bad; inside a solver's step, `run` ends the run as diverged), `invalid_argument`
/// when no entry is finite.
template <class Row>
void checked_log_softmax(const char* fn, const char* who, const Row& z, index_t seq, index_t prompt,
                         index_t sample, index_t step, std::vector<double>& out,
                         row_weights& weights) {
  const auto v = static_cast<std::size_t>(z.size());
  out.resize(v);
  double m = -std::numeric_limits<double>::infinity();
  for (std::size_t u = 0; u < v; ++u) {
    const auto x = static_cast<double>(z(static_cast<index_t>(u)));
    if (std::isnan(x) || x == std::numeric_limits<double>::infinity()) {
      PREFOPT_THROW(convergence_error, fn, ": ", who, " wrote ", x, " for sequence ", seq,
                    " (prompt ", prompt, ", sample ", sample, ") at new token ", step,
                    ", vocabulary entry ", u, ", expected finite logits");
    }
    out[u] = x;
    m = std::max(m, x);
  }
  PREFOPT_CHECK(std::isfinite(m), invalid_argument, fn, ": ", who, " wrote only -inf for sequence ",
                seq, " (prompt ", prompt, ", sample ", sample, ") at new token ", step,
                ", expected at least one finite logit");
  log_normalize(out, m, weights);
}

/// Chooses the next token from base log-probs `base` (normalised, with their sampling weights
/// `weights`); writes log q(token).
inline token_id choose_token(const generation_config& c, std::vector<double>& base,
                             row_weights& weights, std::vector<index_t>& order, rng& gen,
                             double& log_q) {
  const auto v = static_cast<index_t>(base.size());
  if (c.greedy) {
    const auto it = std::max_element(base.begin(), base.end());  // first maximum: lowest id
    log_q = 0.0;
    return static_cast<token_id>(it - base.begin());
  }
  if (c.temperature != 1.0) {
    for (double& x : base) x /= c.temperature;
    log_normalize(base, weights);
  }
  const bool top_k = c.top_k > 0 && c.top_k < v;
  if (top_k || c.top_p < 1.0) {
    order.resize(base.size());
    std::iota(order.begin(), order.end(), index_t{0});
    auto more_probable = [&](index_t a, index_t b) {
      const double pa = base[static_cast<std::size_t>(a)], pb = base[static_cast<std::size_t>(b)];
      return pa > pb || (pa == pb && a < b);
    };
    index_t keep = top_k ? c.top_k : v;
    if (top_k) {
      std::nth_element(order.begin(), order.begin() + keep - 1, order.end(), more_probable);
      std::sort(order.begin(), order.begin() + keep, more_probable);
    } else {
      std::sort(order.begin(), order.end(), more_probable);
    }
    if (c.top_p < 1.0) {
      // Mass of the kept set (renormalised after top-k), smallest prefix reaching top_p.
      double kept_mass = 0.0;
      for (index_t r = 0; r < keep; ++r) {
        kept_mass += std::exp(base[static_cast<std::size_t>(order[static_cast<std::size_t>(r)])]);
      }
      double cumulative = 0.0;
      index_t prefix = 0;
      while (prefix < keep) {
        cumulative +=
            std::exp(base[static_cast<std::size_t>(order[static_cast<std::size_t>(prefix)])]) /
            kept_mass;
        ++prefix;
        if (cumulative >= c.top_p) break;
      }
      keep = prefix;
    }
    for (index_t r = keep; r < v; ++r) {
      base[static_cast<std::size_t>(order[static_cast<std::size_t>(r)])] =
          -std::numeric_limits<double>::infinity();
    }
    log_normalize(base, weights);
  }
  const index_t tok =
      gen.categorical(Eigen::Map<const Eigen::ArrayXd>(weights.w.data(), v), weights.total);
  log_q = base[static_cast<std::size_t>(tok)];
  return static_cast<token_id>(tok);
}

template <class M, class R>
generation_result generate_impl(const char* fn, const M& model, const R* ref, double beta_mix,
                                ragged_view<const token_id> prompts, const generation_config& c,
                                std::uint64_t seed, std::span<const index_t> prompt_ids) {
  using T = typename M::scalar_type;
  check_generation_config(fn, c);
  check_prompts(fn, model, prompts);
  const index_t n = prompts.num_sequences();
  const auto v = static_cast<index_t>(model.vocab_size());
  if constexpr (!std::is_same_v<R, std::nullptr_t>) {
    PREFOPT_CHECK(beta_mix >= 0.0 && beta_mix <= 1.0, invalid_argument, fn,
                  ": beta_mix = ", beta_mix, ", expected a value in [0, 1]");
    PREFOPT_CHECK(static_cast<index_t>(ref->vocab_size()) == v, shape_error, fn,
                  ": reference.vocab_size() = ", ref->vocab_size(),
                  ", expected model.vocab_size() = ", v);
    check_prompts(fn, *ref, prompts);
    static_assert(std::is_same_v<typename R::scalar_type, T>,
                  "prefopt: a model and its reference must have the same scalar_type");
  }
  PREFOPT_CHECK(prompt_ids.empty() || static_cast<index_t>(prompt_ids.size()) == n, shape_error, fn,
                ": prompt_ids has ", prompt_ids.size(), " entries, expected 0 or ", n);
  const token_id eos = model.eos();
  const index_t s_count = c.samples_per_prompt;
  const index_t total = n * s_count;

  generation_result out;
  out.prompt_offsets.reserve(static_cast<std::size_t>(total + 1));
  out.prompt_offsets.push_back(0);
  for (index_t i = 0; i < n; ++i) {
    const auto x = prompts.sequence(i);
    for (index_t s = 0; s < s_count; ++s) {
      out.prompt_tokens.insert(out.prompt_tokens.end(), x.begin(), x.end());
      out.prompt_offsets.push_back(static_cast<index_t>(out.prompt_tokens.size()));
      out.prompt_index.push_back(i);
      out.sample_index.push_back(s);
    }
  }
  const ragged_view<const token_id> rp{out.prompt_offsets, out.prompt_tokens};

  std::vector<rng> gens;
  gens.reserve(static_cast<std::size_t>(total));
  for (index_t r = 0; r < total; ++r) {
    const auto u = static_cast<std::size_t>(r);
    const auto pid = static_cast<std::uint64_t>(
        prompt_ids.empty() ? out.prompt_index[u]
                           : prompt_ids[static_cast<std::size_t>(out.prompt_index[u])]);
    gens.emplace_back(seed, (pid << 32U) ^ static_cast<std::uint64_t>(out.sample_index[u]));
  }
  std::vector<std::vector<token_id>> toks(static_cast<std::size_t>(total));
  std::vector<std::vector<double>> lq(static_cast<std::size_t>(total));
  std::vector<std::vector<double>> lm(static_cast<std::size_t>(total));
  std::vector<std::uint8_t> truncated(static_cast<std::size_t>(total), 0);

  auto state = model.start_decoding(rp);
  std::vector<index_t> live(static_cast<std::size_t>(total));
  std::iota(live.begin(), live.end(), index_t{0});
  std::vector<index_t> next_live;
  std::vector<token_id> chosen;
  row_matrix_t<T> z, zr;
  std::vector<double> base, ref_lp, model_lp;
  row_weights weights, ref_weights;
  std::vector<index_t> order;

  auto run = [&](auto* ref_state) {
    for (index_t step = 0; step < c.max_new_tokens && !live.empty(); ++step) {
      const auto n_live = static_cast<index_t>(live.size());
      z.setZero(n_live, v);
      model.next_logits(state, live, z);
      if constexpr (!std::is_same_v<R, std::nullptr_t>) {
        zr.setZero(n_live, v);
        ref->next_logits(*ref_state, live, zr);
      }
      next_live.clear();
      chosen.clear();
      for (index_t r = 0; r < n_live; ++r) {
        const index_t j = live[static_cast<std::size_t>(r)];
        const auto uj = static_cast<std::size_t>(j);
        checked_log_softmax(fn, "model.next_logits", z.row(r), j, out.prompt_index[uj],
                            out.sample_index[uj], step, base, weights);
        model_lp = base;
        if constexpr (!std::is_same_v<R, std::nullptr_t>) {
          checked_log_softmax(fn, "reference.next_logits", zr.row(r), j, out.prompt_index[uj],
                              out.sample_index[uj], step, ref_lp, ref_weights);
          bool any = false;
          for (index_t k = 0; k < v; ++k) {
            const auto u = static_cast<std::size_t>(k);
            double a = 0.0;
            if (beta_mix < 1.0) a += (1.0 - beta_mix) * model_lp[u];
            if (beta_mix > 0.0) a += beta_mix * ref_lp[u];
            base[u] = a;
            any = any || std::isfinite(a);
          }
          PREFOPT_CHECK(any, invalid_argument, fn,
                        ": the mixture has no token of positive "
                        "probability for sequence ",
                        j, " at new token ", step, " (model and reference have disjoint supports)");
          log_normalize(base, weights);
        }
        double log_q = 0.0;
        const token_id tok = choose_token(c, base, weights, order, gens[uj], log_q);
        toks[uj].push_back(tok);
        lq[uj].push_back(log_q);
        lm[uj].push_back(model_lp[static_cast<std::size_t>(tok)]);
        if (tok == eos) continue;
        if (step + 1 == c.max_new_tokens) {
          truncated[uj] = 1;
          continue;
        }
        next_live.push_back(j);
        chosen.push_back(tok);
      }
      if (!next_live.empty()) {
        model.append(state, next_live, chosen);
        if constexpr (!std::is_same_v<R, std::nullptr_t>)
          ref->append(*ref_state, next_live, chosen);
      }
      live.swap(next_live);
    }
  };
  if constexpr (std::is_same_v<R, std::nullptr_t>) {
    run(static_cast<int*>(nullptr));
  } else {
    auto ref_state = ref->start_decoding(rp);
    run(&ref_state);
  }

  out.offsets.reserve(static_cast<std::size_t>(total + 1));
  out.offsets.push_back(0);
  for (index_t r = 0; r < total; ++r) {
    const auto u = static_cast<std::size_t>(r);
    out.tokens.insert(out.tokens.end(), toks[u].begin(), toks[u].end());
    out.sampling_log_probs.insert(out.sampling_log_probs.end(), lq[u].begin(), lq[u].end());
    out.model_log_probs.insert(out.model_log_probs.end(), lm[u].begin(), lm[u].end());
    out.offsets.push_back(static_cast<index_t>(out.tokens.size()));
  }
  out.truncated = std::move(truncated);
  return out;
}

}  // namespace detail

/// Samples `config.samples_per_prompt` responses per prompt from `model` (file comment).
/// `prompts`: ragged token ids; `seed`: the run's seed; `prompt_ids`: optional `[n]` stable ids of
/// the prompts for the per-response random streams (default `0 .. n-1`).
template <SequenceModel M>
[[nodiscard]] generation_result generate(const M& model, ragged_view<const token_id> prompts,
                                         const generation_config& config, std::uint64_t seed,
                                         std::span<const index_t> prompt_ids = {}) {
  return detail::generate_impl<M, std::nullptr_t>("prefopt::generate", model, nullptr, 0.0, prompts,
                                                  config, seed, prompt_ids);
}

/// Samples from the per-token geometric mixture `pi^(1 - beta_mix) mu^beta_mix` (normalised per
/// step) of `model` (pi) and `reference` (mu), `beta_mix` in [0, 1]: the Nash-MD-PG opponent
/// (ALGORITHMS.md §6; TRL's `GeometricMixtureWrapper`). `beta_mix = 0` samples pi, 1 samples mu.
/// Temperature, top-k and top-p then apply to the mixture; `model_log_probs` are pi's.
template <SequenceModel M, SequenceModel R>
[[nodiscard]] generation_result generate_mixture(
    const M& model, const R& reference, double beta_mix, ragged_view<const token_id> prompts,
    const generation_config& config, std::uint64_t seed, std::span<const index_t> prompt_ids = {}) {
  return detail::generate_impl<M, R>("prefopt::generate_mixture", model, &reference, beta_mix,
                                     prompts, config, seed, prompt_ids);
}

// Readable rejections (viable only when an argument is not a `SequenceModel`): the sentences of
// `check_sequence_model` naming the missing members.

template <class M>
requires(!SequenceModel<M>) void generate(const M&, ragged_view<const token_id>,
                                          const generation_config&, std::uint64_t,
                                          std::span<const index_t> = {}) {
  static_assert(check_sequence_model<M>());
}

template <class M, class R>
requires(!(SequenceModel<M> && SequenceModel<R>)) void generate_mixture(
    const M&, const R&, double, ragged_view<const token_id>, const generation_config&,
    std::uint64_t, std::span<const index_t> = {}) {
  static_assert(check_sequence_model<M>() && check_sequence_model<R>());
}

}  // namespace prefopt
