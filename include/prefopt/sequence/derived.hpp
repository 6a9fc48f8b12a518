#pragma once
/// \file
/// What the library derives from any `SequenceModel` (`core/concepts.hpp`): per-token and
/// sequence log-probs, per-token entropies, the exact per-token KL to another model, the sampled
/// k1/k2/k3/abs estimators, and the gradients of all of them into the model's parameters — all
/// through `kernels/`. With `l_t = log pi(y_t | x, y_<t)` over the response tokens of a
/// `sequence_batch` (ALGORITHMS.md §0.1):
///
///     sequence log-prob  S(y) = sum_t l_t                          (convention §0.2.1)
///     entropy            H_t = -sum_v pi(v | ctx_t) log pi(v | ctx_t)
///     exact KL           KL_t = sum_v pi(v | ctx_t) (log pi(v | ctx_t) - log mu(v | ctx_t))
///     estimators         k(l_t - lr_t), k in {k1, k2, k3, abs}     (ALGORITHMS.md §2.2)
///
/// Per-token values are laid out like the responses: token `t` of sequence `i` is entry
/// `(responses.offsets[i] - responses.offsets[0]) + t` of a `[T]` vector, `T =
/// responses.total_length()`. Gradients take per-token upstream weights (what PPO needs:
/// `dL/dl_t`, `dL/dH_t`, `dL/dKL_t`) and accumulate `dL/dtheta`; the reference model of a KL is
/// a stop-gradient (ALGORITHMS.md §0.2.5). The estimators' gradients are pathwise in `l_t` (the
/// sampled tokens are fixed), the gradient PPO-style KL penalties use.
///
/// **Memory.** The batch is processed in chunks of whole sequences holding at most
/// `sequence_options::max_positions` response positions (a longer sequence is a chunk by
/// itself). Per chunk the logits path holds `[chunk, V]` logits (two with a reference model, one
/// more for their gradient); a `LinearHeadSequenceModel` goes through the fused linear kernel
/// instead for log-probs and entropies (`[chunk, D]` hidden states and their gradient, plus the
/// kernel's workspace, `kernels/linear_log_probs.hpp`) and never builds `[chunk, V]`. The exact
/// KL always uses the logits path (the fused kernel has no two-model form). Gradients are
/// accumulated into a private `[num_parameters()]` buffer and added to the caller's at the end.
///
/// **Errors.** Before any work: mismatched prompt / response counts, bad offsets, token ids
/// outside `[0, V)` (naming the sequence and the token), prompts shorter than the model's
/// optional `min_prompt_length()`, models of different vocabularies, output sizes. A model that
/// writes non-finite logits (or hidden states) is reported naming the sequence, the token and the
/// vocabulary entry. Outputs and gradients are written only when the whole call succeeds.

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <exception>
#include <limits>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include "prefopt/core/assert.hpp"
#include "prefopt/core/concepts.hpp"
#include "prefopt/core/types.hpp"
#include "prefopt/kernels/kl_estimators.hpp"
#include "prefopt/kernels/linear_log_probs.hpp"
#include "prefopt/kernels/options.hpp"
#include "prefopt/kernels/token_stats.hpp"

namespace prefopt {

/// Options of the derived quantities.
struct sequence_options {
  /// Response positions per chunk (>= 1): bounds the `[chunk, V]` (or `[chunk, D]`) buffers.
  /// Never changes results: the kernels' rows are independent and the model's rows must be.
  index_t max_positions = 2048;
  /// Tile arithmetic of the kernels (`kernels/options.hpp`).
  kernels::accumulation accumulate = kernels::accumulation::input;
  /// Use the fused linear kernel when the model is a `LinearHeadSequenceModel`.
  bool fused = true;
  /// Let the kernels split rows across OpenMP threads (never changes the forward results).
  bool parallel = true;
  /// Every model's logits are divided by it (finite, > 0): the tempered distributions
  /// `softmax(z / temperature)` that generation samples at `generation_config::temperature`
  /// (PPO recomputes log-probs at the sampling temperature, ALGORITHMS.md §2.3). Applies to the
  /// reference model of a KL too. Gradients include the 1 / temperature factor.
  double temperature = 1.0;
};

/// Per-token upstream gradients for `accumulate_token_gradient`: each `[T]` or empty (zero).
struct token_weights {
  std::span<const double> log_probs{};  ///< dL/dl_t
  std::span<const double> entropy{};    ///< dL/dH_t
  std::span<const double> kl{};         ///< dL/dKL_t (two-model form only)
};

namespace detail {

/// Sequences [s0, s1) of `b` as a batch (offsets subspans; the values stay whole).
[[nodiscard]] inline sequence_batch sub_batch(const sequence_batch& b, index_t s0, index_t s1) {
  const auto u0 = static_cast<std::size_t>(s0);
  const auto n = static_cast<std::size_t>(s1 - s0 + 1);
  return {{b.prompts.offsets.subspan(u0, n), b.prompts.values},
          {b.responses.offsets.subspan(u0, n), b.responses.values}};
}

/// Validates a batch for `model` once, at entry (errors name `fn`).
template <class M>
void check_sequence_batch(const char* fn, const M& model, const sequence_batch& b) {
  b.prompts.validate(fn, "batch.prompts");
  b.responses.validate(fn, "batch.responses");
  PREFOPT_CHECK(b.prompts.num_sequences() == b.responses.num_sequences(), shape_error, fn,
                ": batch has ", b.prompts.num_sequences(), " prompts and ",
                b.responses.num_sequences(), " responses, expected one prompt per response");
  const index_t v = static_cast<index_t>(model.vocab_size());
  PREFOPT_CHECK(v >= 1, invalid_argument, fn, ": model.vocab_size() = ", v, ", expected >= 1");
  for (index_t i = 0; i < b.size(); ++i) {
    const auto y = b.responses.sequence(i);
    for (std::size_t t = 0; t < y.size(); ++t) {
      PREFOPT_CHECK(y[t] >= 0 && y[t] < v, invalid_argument, fn, ": batch.responses[", i, "][", t,
                    "] = ", y[t], ", expected a token id in [0, ", v, ") (model.vocab_size())");
    }
    const auto x = b.prompts.sequence(i);
    for (std::size_t t = 0; t < x.size(); ++t) {
      PREFOPT_CHECK(x[t] >= 0 && x[t] < v, invalid_argument, fn, ": batch.prompts[", i, "][", t,
                    "] = ", x[t], ", expected a token id in [0, ", v, ") (model.vocab_size())");
    }
    if constexpr (requires { model.min_prompt_length(); }) {
      const auto need = static_cast<index_t>(model.min_prompt_length());
      PREFOPT_CHECK(static_cast<index_t>(x.size()) >= need, invalid_argument, fn,
                    ": batch.prompts[", i, "] has ", x.size(),
                    " tokens, expected at least model.min_prompt_length() = ", need);
    }
  }
}

/// Output spans must be empty or `[n]`.
inline void check_span(const char* fn, const char* argument, std::size_t size, index_t n) {
  PREFOPT_CHECK(size == 0 || static_cast<index_t>(size) == n, shape_error, fn, ": ", argument,
                " has ", size, " entries, expected ", n, " (one per response token) or none");
}

/// The (sequence, token) of row `r` of the chunk starting at sequence `s0`.
inline void locate_row(const sequence_batch& b, index_t s0, index_t r, index_t& seq, index_t& tok) {
  const auto offsets = b.responses.offsets;
  const index_t target = offsets[static_cast<std::size_t>(s0)] + r;
  const auto it = std::upper_bound(offsets.begin() + s0, offsets.end(), target);
  seq = static_cast<index_t>(it - offsets.begin()) - 1;
  tok = target - offsets[static_cast<std::size_t>(seq)];
}

/// On the error path of a kernel: names the first non-finite row of `m` (NaN, +inf, or no finite
/// entry) as (sequence, token, column) and throws; rethrows the kernel's error otherwise.
template <class T>
[[noreturn]] void report_non_finite(const char* fn, const char* what, const row_matrix_t<T>& m,
                                    const sequence_batch& b, index_t s0) {
  for (index_t r = 0; r < m.rows(); ++r) {
    index_t bad = -1;
    bool any_finite = false;
    for (index_t c = 0; c < m.cols(); ++c) {
      const T x = m(r, c);
      if (std::isfinite(x)) {
        any_finite = true;
      } else if (!(x < T(0))) {  // NaN or +inf
        bad = c;
        break;
      }
    }
    if (bad >= 0 || (!any_finite && m.cols() > 0)) {
      index_t seq = 0, tok = 0;
      locate_row(b, s0, r, seq, tok);
      if (bad >= 0) {
        PREFOPT_THROW(invalid_argument, fn, ": ", what, " wrote ", m(r, bad),
                      " for batch.responses[", seq, "][", tok, "] at entry ", bad,
                      ", expected finite values");
      }
      PREFOPT_THROW(invalid_argument, fn, ": ", what, " wrote only -inf for batch.responses[", seq,
                    "][", tok, "], expected at least one finite logit");
    }
  }
  std::rethrow_exception(std::current_exception());
}

/// Outputs of one pass, each `[T]` or empty.
struct pass_outputs {
  std::span<double> log_probs{};
  std::span<double> entropy{};
  std::span<double> kl{};
};

template <class T>
void to_scalar(std::span<const double> in, std::vector<T>& out) {
  out.resize(in.size());
  for (std::size_t u = 0; u < in.size(); ++u) out[u] = static_cast<T>(in[u]);
}

/// The one engine behind every derived quantity: chunks of sequences, the model's logits (or
/// hidden states), the kernels' forward and, given `gradient`, their backward and the model's.
/// `ref` is null for one-model quantities.
template <class M, class R>
void sequence_pass(const char* fn, const M& model, const R* ref, const sequence_batch& b,
                   const pass_outputs& out, const token_weights& g,
                   vector_t<typename M::scalar_type>* gradient, const sequence_options& opt) {
  using T = typename M::scalar_type;
  check_sequence_batch(fn, model, b);
  PREFOPT_CHECK(opt.max_positions >= 1, invalid_argument, fn,
                ": options.max_positions = ", opt.max_positions, ", expected >= 1");
  PREFOPT_CHECK(std::isfinite(opt.temperature) && opt.temperature > 0.0, invalid_argument, fn,
                ": options.temperature = ", opt.temperature, ", expected a finite value > 0");
  const bool tempered = opt.temperature != 1.0;
  const auto inv_t = static_cast<T>(1.0 / opt.temperature);
  const index_t n_tok = b.responses.total_length();
  const index_t v = static_cast<index_t>(model.vocab_size());
  check_span(fn, "log_probs output", out.log_probs.size(), n_tok);
  check_span(fn, "entropy output", out.entropy.size(), n_tok);
  check_span(fn, "kl output", out.kl.size(), n_tok);
  check_span(fn, "weights.log_probs", g.log_probs.size(), n_tok);
  check_span(fn, "weights.entropy", g.entropy.size(), n_tok);
  check_span(fn, "weights.kl", g.kl.size(), n_tok);
  if constexpr (!std::is_same_v<R, std::nullptr_t>) {
    PREFOPT_CHECK(ref != nullptr, invalid_argument, fn, ": reference is null");
    PREFOPT_CHECK(static_cast<index_t>(ref->vocab_size()) == v, shape_error, fn,
                  ": reference.vocab_size() = ", ref->vocab_size(),
                  ", expected model.vocab_size() = ", v);
    static_assert(std::is_same_v<typename R::scalar_type, T>,
                  "prefopt: a model and its reference must have the same scalar_type");
  }
  const bool want_kl = !out.kl.empty() || !g.kl.empty();
  const bool want_entropy = !out.entropy.empty() || !g.entropy.empty();
  const bool want_lp = !out.log_probs.empty() || !g.log_probs.empty();
  const bool backward = gradient != nullptr;
  const index_t n_par = model.num_parameters();
  vector_t<T> local;
  if (backward) local = vector_t<T>::Zero(n_par);

  // Results of the whole call, copied to `out` only at the end.
  std::vector<double> lp_all(want_lp && !out.log_probs.empty() ? static_cast<std::size_t>(n_tok)
                                                               : 0);
  std::vector<double> ent_all(!out.entropy.empty() ? static_cast<std::size_t>(n_tok) : 0);
  std::vector<double> kl_all(!out.kl.empty() ? static_cast<std::size_t>(n_tok) : 0);

  constexpr bool has_head = LinearHeadSequenceModel<M>;
  const bool fused = has_head && opt.fused && !want_kl;
  std::vector<T> lp, lse, ent, kl, lse_q, glp, gent, gkl, scaled_bias, dbias_buffer;
  row_matrix_t<T> z, zq, dz, h, dh;
  const auto offsets = b.responses.offsets;
  const index_t base = b.responses.offsets.empty() ? 0 : offsets.front();

  for (index_t s0 = 0; s0 < b.size();) {
    index_t s1 = s0 + 1;
    while (s1 < b.size() &&
           offsets[static_cast<std::size_t>(s1 + 1)] - offsets[static_cast<std::size_t>(s0)] <=
               opt.max_positions) {
      ++s1;
    }
    const sequence_batch sub = sub_batch(b, s0, s1);
    const index_t row0 = offsets[static_cast<std::size_t>(s0)];
    const index_t rows = offsets[static_cast<std::size_t>(s1)] - row0;
    const auto first = static_cast<std::size_t>(row0 - base);
    const auto urows = static_cast<std::size_t>(rows);
    if (rows == 0) {
      s0 = s1;
      continue;
    }
    const std::span<const token_id> targets =
        b.responses.values.subspan(static_cast<std::size_t>(row0), urows);
    lp.assign(urows, T(0));
    lse.assign(urows, T(0));
    ent.assign(want_entropy ? urows : 0, T(0));
    kl.assign(want_kl ? urows : 0, T(0));
    lse_q.assign(want_kl ? urows : 0, T(0));
    if (backward) {
      to_scalar(g.log_probs.empty() ? g.log_probs : g.log_probs.subspan(first, urows), glp);
      to_scalar(g.entropy.empty() ? g.entropy : g.entropy.subspan(first, urows), gent);
      to_scalar(g.kl.empty() ? g.kl : g.kl.subspan(first, urows), gkl);
    }
    if constexpr (has_head) {
      if (fused) {
        const index_t d = static_cast<index_t>(model.hidden_size());
        const index_t w_off = static_cast<index_t>(model.output_weight_offset());
        PREFOPT_CHECK(w_off >= 0 && w_off + v * d <= n_par, invalid_argument, fn,
                      ": model.output_weight_offset() = ", w_off, " with vocab_size ", v,
                      " and hidden_size ", d, " does not fit in num_parameters() = ", n_par);
        index_t b_off = -1;
        if constexpr (requires { model.output_bias_offset(); }) {
          b_off = static_cast<index_t>(model.output_bias_offset());
          PREFOPT_CHECK(b_off >= 0 && b_off + v <= n_par, invalid_argument, fn,
                        ": model.output_bias_offset() = ", b_off, " with vocab_size ", v,
                        " does not fit in num_parameters() = ", n_par);
        }
        const auto params = model.parameters();
        const Eigen::Ref<const vector_t<T>> theta = params;
        const const_row_matrix_map<T> w(theta.data() + w_off, v, d);
        std::span<const T> bias =
            b_off >= 0 ? std::span<const T>(theta.data() + b_off, static_cast<std::size_t>(v))
                       : std::span<const T>{};
        h.setZero(rows, d);
        model.hidden_states(sub, h);
        if (tempered) {  // z / temperature = W (h / temperature) + b / temperature
          h *= inv_t;
          scaled_bias.assign(bias.begin(), bias.end());
          for (T& x : scaled_bias) x *= inv_t;
          bias = scaled_bias;
        }
        kernels::linear_options lo;
        lo.accumulate = opt.accumulate;
        lo.parallel = opt.parallel;
        try {
          kernels::linear_log_probs(h, w, bias, targets,
                                    {std::span<T>(lp), std::span<T>(lse), std::span<T>(ent)}, lo);
        } catch (const invalid_argument&) {
          report_non_finite(fn, "model.hidden_states", h, b, s0);
        }
        if (backward) {
          dh.setZero(rows, d);
          Eigen::Map<row_matrix_t<T>> dw(local.data() + w_off, v, d);
          // dW from the (scaled) hidden states is already exact; db and dh carry 1 / temperature.
          dbias_buffer.assign(b_off >= 0 ? static_cast<std::size_t>(v) : 0, T(0));
          lo.mode = kernels::write_mode::accumulate;
          kernels::linear_log_probs_backward(h, w, bias, targets,
                                             {std::span<const T>(lse), std::span<const T>(ent)},
                                             {std::span<const T>(glp), std::span<const T>(gent)},
                                             dh, dw, std::span<T>(dbias_buffer), lo);
          if (b_off >= 0) {
            const Eigen::Map<const vector_t<T>> db(dbias_buffer.data(), v);
            local.segment(b_off, v) += tempered ? (db * inv_t).eval() : db.eval();
          }
          if (tempered) dh *= inv_t;
          model.accumulate_hidden_gradient(sub, dh, local);
        }
      }
    }
    if (!fused) {
      kernels::options ko;
      ko.accumulate = opt.accumulate;
      ko.parallel = opt.parallel;
      z.setZero(rows, v);
      model.logits(sub, z);
      if (tempered) z *= inv_t;
      if constexpr (!std::is_same_v<R, std::nullptr_t>) {
        if (want_kl) {
          zq.setZero(rows, v);
          ref->logits(sub, zq);
          if (tempered) zq *= inv_t;
        }
      }
      try {
        if (want_kl) {
          kernels::token_stats(z, zq, targets,
                               {std::span<T>(lp),
                                std::span<T>(lse),
                                std::span<T>(ent),
                                std::span<T>(kl),
                                {},
                                std::span<T>(lse_q)},
                               ko);
        } else {
          kernels::token_stats(z, targets, {std::span<T>(lp), std::span<T>(lse), std::span<T>(ent)},
                               ko);
        }
      } catch (const invalid_argument&) {
        // Which matrix: scan the model's logits first, then the reference's.
        bool model_finite = true;
        for (index_t r = 0; r < rows && model_finite; ++r) {
          model_finite = !z.row(r).array().isNaN().any() &&
                         !(z.row(r).array() == std::numeric_limits<T>::infinity()).any() &&
                         z.row(r).array().isFinite().any();
        }
        if (!model_finite || !want_kl) report_non_finite(fn, "model.logits", z, b, s0);
        report_non_finite(fn, "reference.logits", zq, b, s0);
      }
      if (backward) {
        dz.setZero(rows, v);
        const kernels::token_stats_saved<T> saved{std::span<const T>(lse), std::span<const T>(ent),
                                                  std::span<const T>(kl),
                                                  std::span<const T>(lse_q)};
        const kernels::token_stats_grads<T> grads{std::span<const T>(glp), std::span<const T>(gent),
                                                  std::span<const T>(gkl)};
        if (want_kl) {
          kernels::token_stats_backward(z, zq, targets, saved, grads, dz, ko);  // mu frozen
        } else {
          kernels::token_stats_backward(z, targets, saved, grads, dz, ko);
        }
        if (tempered) dz *= inv_t;
        model.accumulate_logits_gradient(sub, dz, local);
      }
    }
    for (std::size_t u = 0; u < urows; ++u) {
      if (!lp_all.empty()) lp_all[first + u] = static_cast<double>(lp[u]);
      if (!ent_all.empty()) ent_all[first + u] = static_cast<double>(ent[u]);
      if (!kl_all.empty()) kl_all[first + u] = static_cast<double>(kl[u]);
    }
    s0 = s1;
  }
  std::copy(lp_all.begin(), lp_all.end(), out.log_probs.begin());
  std::copy(ent_all.begin(), ent_all.end(), out.entropy.begin());
  std::copy(kl_all.begin(), kl_all.end(), out.kl.begin());
  if (backward) *gradient += local;
}

template <class M>
void check_gradient_size(const char* fn, const M& model, index_t size) {
  PREFOPT_CHECK(size == model.num_parameters(), shape_error, fn, ": gradient has ", size,
                " entries, expected model.num_parameters() = ", model.num_parameters());
}

template <class V>
[[nodiscard]] std::span<double> span_d(V& v) {
  return {v.data(), static_cast<std::size_t>(v.size())};
}
template <class V>
[[nodiscard]] std::span<const double> cspan_d(const V& v) {
  return {v.data(), static_cast<std::size_t>(v.size())};
}

}  // namespace detail

/// `out[k] = l_t = log pi(y_t | x, y_<t)` for every response token (`[T]`, layout in the file
/// comment). Through the fused linear kernel for a `LinearHeadSequenceModel`.
template <SequenceModel M>
void token_log_probs(const M& model, const sequence_batch& batch, Eigen::Ref<vector_d> out,
                     const sequence_options& opt = {}) {
  const char* fn = "prefopt::token_log_probs";
  PREFOPT_CHECK(out.size() == batch.responses.total_length(), shape_error, fn, ": out has ",
                out.size(), " entries, expected ", batch.responses.total_length());
  detail::sequence_pass<M, std::nullptr_t>(fn, model, nullptr, batch, {detail::span_d(out)}, {},
                                           nullptr, opt);
}

/// `out[i] = S(y_i) = sum_t l_t` (`[batch.size()]`; an empty response scores 0).
template <SequenceModel M>
void sequence_log_probs(const M& model, const sequence_batch& batch, Eigen::Ref<vector_d> out,
                        const sequence_options& opt = {}) {
  const char* fn = "prefopt::sequence_log_probs";
  PREFOPT_CHECK(out.size() == batch.size(), shape_error, fn, ": out has ", out.size(),
                " entries, expected ", batch.size(), " (one per sequence)");
  vector_d per_token(batch.responses.total_length());
  detail::sequence_pass<M, std::nullptr_t>(fn, model, nullptr, batch, {detail::span_d(per_token)},
                                           {}, nullptr, opt);
  const index_t base = batch.responses.offsets.empty() ? 0 : batch.responses.offsets.front();
  for (index_t i = 0; i < batch.size(); ++i) {
    double s = 0.0;
    const auto u = static_cast<std::size_t>(i);
    for (index_t k = batch.responses.offsets[u]; k < batch.responses.offsets[u + 1]; ++k) {
      s += per_token(k - base);
    }
    out(i) = s;
  }
}

/// `out[k] = H_t`, the entropy in nats of the model's next-token distribution at every response
/// position (`[T]`). Through the fused linear kernel for a `LinearHeadSequenceModel`.
template <SequenceModel M>
void token_entropies(const M& model, const sequence_batch& batch, Eigen::Ref<vector_d> out,
                     const sequence_options& opt = {}) {
  const char* fn = "prefopt::token_entropies";
  PREFOPT_CHECK(out.size() == batch.responses.total_length(), shape_error, fn, ": out has ",
                out.size(), " entries, expected ", batch.responses.total_length());
  detail::sequence_pass<M, std::nullptr_t>(fn, model, nullptr, batch, {{}, detail::span_d(out)}, {},
                                           nullptr, opt);
}

/// `out[k] = KL_t = KL(pi(. | ctx_t) || mu(. | ctx_t))`, the exact full-vocabulary KL from
/// `model` (pi, the sampling distribution) to `reference` (mu) at every response position
/// (`[T]`; the `full` estimator of ALGORITHMS.md §2.2). Both models must share the vocabulary and
/// scalar type. `[chunk, V]` logits of both models per chunk.
template <SequenceModel M, SequenceModel R>
void token_kl(const M& model, const R& reference, const sequence_batch& batch,
              Eigen::Ref<vector_d> out, const sequence_options& opt = {}) {
  const char* fn = "prefopt::token_kl";
  PREFOPT_CHECK(out.size() == batch.responses.total_length(), shape_error, fn, ": out has ",
                out.size(), " entries, expected ", batch.responses.total_length());
  detail::sequence_pass<M, R>(fn, model, &reference, batch, {{}, {}, detail::span_d(out)}, {},
                              nullptr, opt);
}

/// `out[k] = estimator(l_t - lr_t)`, the sampled per-token KL estimate from `model` (l) to
/// `reference` (lr) on the batch's tokens (`[T]`; k1, k2, k3 or abs, ALGORITHMS.md §2.2).
template <SequenceModel M, SequenceModel R>
void token_kl_estimates(const M& model, const R& reference, const sequence_batch& batch,
                        kernels::kl_estimator estimator, Eigen::Ref<vector_d> out,
                        const sequence_options& opt = {}) {
  const char* fn = "prefopt::token_kl_estimates";
  const index_t n = batch.responses.total_length();
  PREFOPT_CHECK(out.size() == n, shape_error, fn, ": out has ", out.size(), " entries, expected ",
                n);
  vector_d l(n), lr(n);
  detail::sequence_pass<M, std::nullptr_t>(fn, model, nullptr, batch, {detail::span_d(l)}, {},
                                           nullptr, opt);
  detail::sequence_pass<R, std::nullptr_t>(fn, reference, nullptr, batch, {detail::span_d(lr)}, {},
                                           nullptr, opt);
  vector_d result(n);
  kernels::sampled_kl(estimator, detail::cspan_d(l), detail::cspan_d(lr), detail::span_d(result));
  out = result;
}

/// `gradient += sum_t (w.log_probs[t] dl_t/dtheta + w.entropy[t] dH_t/dtheta)` for per-token
/// weights (`[T]` each, or empty); `w.kl` must be empty (use the two-model overload).
/// `gradient` has `model.num_parameters()` entries.
template <SequenceModel M>
void accumulate_token_gradient(const M& model, const sequence_batch& batch, const token_weights& w,
                               Eigen::Ref<vector_t<typename M::scalar_type>> gradient,
                               const sequence_options& opt = {}) {
  const char* fn = "prefopt::accumulate_token_gradient";
  PREFOPT_CHECK(w.kl.empty(), invalid_argument, fn,
                ": weights.kl given without a reference model (use the two-model overload)");
  detail::check_gradient_size(fn, model, gradient.size());
  vector_t<typename M::scalar_type> g = gradient;
  detail::sequence_pass<M, std::nullptr_t>(fn, model, nullptr, batch, {}, w, &g, opt);
  gradient = g;
}

/// Two-model form: also `+ sum_t w.kl[t] dKL(pi || mu)_t / dtheta` (mu = `reference`, frozen).
template <SequenceModel M, SequenceModel R>
void accumulate_token_gradient(const M& model, const R& reference, const sequence_batch& batch,
                               const token_weights& w,
                               Eigen::Ref<vector_t<typename M::scalar_type>> gradient,
                               const sequence_options& opt = {}) {
  const char* fn = "prefopt::accumulate_token_gradient";
  detail::check_gradient_size(fn, model, gradient.size());
  vector_t<typename M::scalar_type> g = gradient;
  detail::sequence_pass<M, R>(fn, model, &reference, batch, {}, w, &g, opt);
  gradient = g;
}

/// `gradient += sum_i weights[i] dS(y_i)/dtheta` (`weights` `[batch.size()]`): the
/// `DifferentiablePolicy` gradient, e.g. with the DPO loss's dL/dS as weights.
template <SequenceModel M>
void accumulate_sequence_log_prob_gradient(const M& model, const sequence_batch& batch,
                                           Eigen::Ref<const vector_d> weights,
                                           Eigen::Ref<vector_t<typename M::scalar_type>> gradient,
                                           const sequence_options& opt = {}) {
  const char* fn = "prefopt::accumulate_sequence_log_prob_gradient";
  PREFOPT_CHECK(weights.size() == batch.size(), shape_error, fn, ": weights has ", weights.size(),
                " entries, expected ", batch.size(), " (one per sequence)");
  batch.responses.validate(fn, "batch.responses");
  const index_t base = batch.responses.offsets.empty() ? 0 : batch.responses.offsets.front();
  vector_d per_token(batch.responses.total_length());
  for (index_t i = 0; i < batch.size(); ++i) {
    const auto u = static_cast<std::size_t>(i);
    for (index_t k = batch.responses.offsets[u]; k < batch.responses.offsets[u + 1]; ++k) {
      per_token(k - base) = weights(i);
    }
  }
  token_weights w;
  w.log_probs = detail::cspan_d(per_token);
  detail::check_gradient_size(fn, model, gradient.size());
  vector_t<typename M::scalar_type> g = gradient;
  detail::sequence_pass<M, std::nullptr_t>(fn, model, nullptr, batch, {}, w, &g, opt);
  gradient = g;
}

/// `gradient += sum_t grad[t] k'(l_t - lr_t) dl_t/dtheta`: the pathwise gradient of
/// `sum_t grad[t] estimator(l_t - lr_t)` with the batch's tokens fixed and the reference frozen.
template <SequenceModel M, SequenceModel R>
void accumulate_kl_estimate_gradient(const M& model, const R& reference,
                                     const sequence_batch& batch, kernels::kl_estimator estimator,
                                     Eigen::Ref<const vector_d> grad,
                                     Eigen::Ref<vector_t<typename M::scalar_type>> gradient,
                                     const sequence_options& opt = {}) {
  const char* fn = "prefopt::accumulate_kl_estimate_gradient";
  const index_t n = batch.responses.total_length();
  PREFOPT_CHECK(grad.size() == n, shape_error, fn, ": grad has ", grad.size(),
                " entries, expected ", n, " (one per response token)");
  detail::check_gradient_size(fn, model, gradient.size());
  vector_d l(n), lr(n), d_l(n);
  detail::sequence_pass<M, std::nullptr_t>(fn, model, nullptr, batch, {detail::span_d(l)}, {},
                                           nullptr, opt);
  detail::sequence_pass<R, std::nullptr_t>(fn, reference, nullptr, batch, {detail::span_d(lr)}, {},
                                           nullptr, opt);
  const vector_d g_copy = grad;
  kernels::sampled_kl_backward(estimator, detail::cspan_d(l), detail::cspan_d(lr),
                               detail::cspan_d(g_copy), detail::span_d(d_l));
  token_weights w;
  w.log_probs = detail::cspan_d(d_l);
  vector_t<typename M::scalar_type> g = gradient;
  detail::sequence_pass<M, std::nullptr_t>(fn, model, nullptr, batch, {}, w, &g, opt);
  gradient = g;
}

/// Reached only by a type that is not a `SequenceModel`: the compiler then reports the sentences
/// of `check_sequence_model` naming the missing members.
template <class M>
class sequence_policy {
  static_assert(check_sequence_model<M>());

 public:
  explicit sequence_policy(M&, sequence_options = {}) {}
};

/// Any `SequenceModel` as a `DifferentiablePolicy` over `sequence_batch`: `log_prob` writes the
/// sequence log-probs `S(y_i)`, `accumulate_log_prob_gradient` carries per-sequence weights into
/// the model's parameters. Holds a pointer to the model (which must outlive it); parameters are
/// the model's own.
template <SequenceModel M>
class sequence_policy<M> {
 public:
  using batch_type = sequence_batch;
  using scalar_type = typename M::scalar_type;

  explicit sequence_policy(M& model, sequence_options options = {})
      : model_(&model), options_(options) {}

  [[nodiscard]] M& model() const noexcept { return *model_; }
  [[nodiscard]] index_t num_parameters() const { return model_->num_parameters(); }
  [[nodiscard]] Eigen::Ref<vector_t<scalar_type>> parameters() { return model_->parameters(); }
  [[nodiscard]] Eigen::Ref<const vector_t<scalar_type>> parameters() const {
    return std::as_const(*model_).parameters();
  }

  /// out[i] = S(y_i).
  void log_prob(const sequence_batch& batch, Eigen::Ref<vector_d> out) const {
    sequence_log_probs(*model_, batch, out, options_);
  }

  /// gradient += sum_i weights[i] dS(y_i)/dtheta.
  void accumulate_log_prob_gradient(const sequence_batch& batch, Eigen::Ref<const vector_d> weights,
                                    Eigen::Ref<vector_t<scalar_type>> gradient) const {
    accumulate_sequence_log_prob_gradient(*model_, batch, weights, gradient, options_);
  }

 private:
  M* model_;
  sequence_options options_;
};

// Readable rejections: each overload below is viable only when an argument is not a
// `SequenceModel`, and its body is the one sentence per missing member of
// `check_sequence_model` (instead of the reasons every candidate failed). Same parameters as the
// functions above, so they never compete with them.

template <class M>
requires(!SequenceModel<M>) void token_log_probs(const M&, const sequence_batch&,
                                                 Eigen::Ref<vector_d>,
                                                 const sequence_options& = {}) {
  static_assert(check_sequence_model<M>());
}

template <class M>
requires(!SequenceModel<M>) void sequence_log_probs(const M&, const sequence_batch&,
                                                    Eigen::Ref<vector_d>,
                                                    const sequence_options& = {}) {
  static_assert(check_sequence_model<M>());
}

template <class M>
requires(!SequenceModel<M>) void token_entropies(const M&, const sequence_batch&,
                                                 Eigen::Ref<vector_d>,
                                                 const sequence_options& = {}) {
  static_assert(check_sequence_model<M>());
}

template <class M, class R>
requires(!(SequenceModel<M> &&
           SequenceModel<R>)) void token_kl(const M&, const R&, const sequence_batch&,
                                            Eigen::Ref<vector_d>, const sequence_options& = {}) {
  static_assert(check_sequence_model<M>() && check_sequence_model<R>());
}

template <class M, class R>
requires(!(SequenceModel<M> &&
           SequenceModel<R>)) void token_kl_estimates(const M&, const R&, const sequence_batch&,
                                                      kernels::kl_estimator, Eigen::Ref<vector_d>,
                                                      const sequence_options& = {}) {
  static_assert(check_sequence_model<M>() && check_sequence_model<R>());
}

template <class M, class G>
requires(!SequenceModel<M>) void accumulate_token_gradient(const M&, const sequence_batch&,
                                                           const token_weights&, const G&,
                                                           const sequence_options& = {}) {
  static_assert(check_sequence_model<M>());
}

template <class M, class R, class G>
requires(!(SequenceModel<M> && SequenceModel<R>)) void accumulate_token_gradient(
    const M&, const R&, const sequence_batch&, const token_weights&, const G&,
    const sequence_options& = {}) {
  static_assert(check_sequence_model<M>() && check_sequence_model<R>());
}

template <class M, class G>
requires(!SequenceModel<M>) void accumulate_sequence_log_prob_gradient(
    const M&, const sequence_batch&, Eigen::Ref<const vector_d>, const G&,
    const sequence_options& = {}) {
  static_assert(check_sequence_model<M>());
}

template <class M, class R, class G>
requires(!(SequenceModel<M> && SequenceModel<R>)) void accumulate_kl_estimate_gradient(
    const M&, const R&, const sequence_batch&, kernels::kl_estimator, Eigen::Ref<const vector_d>,
    const G&, const sequence_options& = {}) {
  static_assert(check_sequence_model<M>() && check_sequence_model<R>());
}

}  // namespace prefopt
