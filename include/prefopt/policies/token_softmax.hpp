#pragma once
/// \file
/// `token_softmax_policy`: the smallest token-level policy — an autoregressive model whose
/// next-token distribution depends only on the position, over `K` content tokens and an
/// end-of-sequence token.
///
/// Responses are token sequences `y = (y_0, ..., y_{n-1})` with `y_{n-1} = eos() = K`, content
/// tokens `y_t` in `[0, K)` before it and `1 <= n <= L = max_length()`. At positions
/// `t = 0 .. L-2` the policy is `pi_t = softmax(theta[t, .])` over the `K + 1` tokens; at the last
/// position `L - 1` only `eos` is allowed (probability 1), so every response stops within `L`
/// tokens. So
///
///     log pi(y) = sum_{t < min(n, L-1)} log softmax(theta[t])[y_t],
///     d log pi(y) / d theta[t, .] = onehot(y_t) - pi_t        for t < min(n, L-1).
///
/// Unlike a response-level table, the length of a response is decided token by token (one `eos`
/// decision per position), which is what makes length averaging in DPO matter (Grinsztajn et al.,
/// "Averaging log-likelihoods in direct alignment", arXiv 2406.19188): the summed log-likelihood
/// of a long response carries many more terms than that of a short one.
///
/// The policy models `DifferentiablePolicy` over `sequence_batch` (prompts are ignored: one
/// context). Because the state is the position only, expectations over all responses are exact
/// sums over positions: `length_distribution`, `expected_length`, `expected_token_sum` (any
/// per-token additive score) and `kl_divergence` (exact sequence-level KL).

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <limits>
#include <span>
#include <vector>

#include "prefopt/core/assert.hpp"
#include "prefopt/core/concepts.hpp"
#include "prefopt/core/math.hpp"
#include "prefopt/core/random.hpp"
#include "prefopt/core/types.hpp"

namespace prefopt {

class token_softmax_policy {
 public:
  using batch_type = sequence_batch;
  using scalar_type = double;

  /// Uniform over the `vocab_size + 1` tokens at every free position. `vocab_size >= 1`
  /// content tokens, responses of at most `max_length >= 1` tokens (eos included).
  token_softmax_policy(index_t vocab_size, index_t max_length) : k_(vocab_size), l_(max_length) {
    constexpr const char* fn = "token_softmax_policy";
    PREFOPT_CHECK(vocab_size >= 1, invalid_argument, fn, ": vocab_size = ", vocab_size,
                  ", expected >= 1");
    PREFOPT_CHECK(max_length >= 1, invalid_argument, fn, ": max_length = ", max_length,
                  ", expected >= 1");
    // eos = K must be a token_id, and the table (L-1) x (K+1) must be addressable.
    constexpr index_t max_vocab = std::numeric_limits<token_id>::max() - 1;
    PREFOPT_CHECK(vocab_size <= max_vocab, invalid_argument, fn, ": vocab_size = ", vocab_size,
                  ", expected at most ", max_vocab, " (eos = vocab_size must fit in token_id)");
    PREFOPT_CHECK(max_length - 1 <= std::numeric_limits<index_t>::max() / (vocab_size + 1),
                  invalid_argument, fn, ": max_length = ", max_length,
                  " with vocab_size = ", vocab_size,
                  " gives a parameter table too large to address");
    theta_ = vector_d::Zero((l_ - 1) * (k_ + 1));
  }

  /// Content tokens uniform and `eos` with probability `stop_probability` in (0, 1) at every free
  /// position: response lengths are geometric, truncated at `max_length`.
  [[nodiscard]] static token_softmax_policy with_stop_probability(index_t vocab_size,
                                                                  index_t max_length,
                                                                  double stop_probability) {
    PREFOPT_CHECK(stop_probability > 0.0 && stop_probability < 1.0, invalid_argument,
                  "token_softmax_policy::with_stop_probability: stop_probability = ",
                  stop_probability, ", expected a value in (0, 1)");
    token_softmax_policy p(vocab_size, max_length);
    const double content = std::log((1.0 - stop_probability) / static_cast<double>(vocab_size));
    for (index_t t = 0; t + 1 < p.l_; ++t) {
      p.logits(t).head(p.k_).setConstant(content);
      p.logits(t)(p.k_) = std::log(stop_probability);
    }
    return p;
  }

  /// Number of content tokens K (token ids 0 .. K-1).
  [[nodiscard]] index_t vocab_size() const noexcept { return k_; }
  /// The end-of-sequence token id, K.
  [[nodiscard]] token_id eos() const noexcept { return static_cast<token_id>(k_); }
  /// Maximum response length L (eos included).
  [[nodiscard]] index_t max_length() const noexcept { return l_; }

  [[nodiscard]] index_t num_parameters() const noexcept { return theta_.size(); }
  /// theta, row-major [L-1, K+1]: logits of position t at [t (K+1), (t+1)(K+1)).
  [[nodiscard]] Eigen::Ref<vector_d> parameters() noexcept { return theta_; }
  [[nodiscard]] Eigen::Ref<const vector_d> parameters() const noexcept { return theta_; }

  /// Logits of free position `t` in [0, L-1) (K+1 entries).
  [[nodiscard]] Eigen::VectorBlock<vector_d> logits(index_t t) {
    PREFOPT_ASSERT(t >= 0 && t + 1 < l_);
    return theta_.segment(t * (k_ + 1), k_ + 1);
  }
  [[nodiscard]] Eigen::VectorBlock<const vector_d> logits(index_t t) const {
    PREFOPT_ASSERT(t >= 0 && t + 1 < l_);
    return theta_.segment(t * (k_ + 1), k_ + 1);
  }

  /// Number of token decisions behind a response of `n` tokens, i.e. of terms in its
  /// log-probability: `min(n, L-1)` (the eos forced at the last position is not a decision).
  /// Length-averaged losses divide by this.
  [[nodiscard]] index_t decisions(index_t n) const noexcept { return std::min(n, l_ - 1); }

  /// pi_t over the K+1 tokens for any position t in [0, L) (the last is eos with probability 1).
  void probabilities(index_t t, Eigen::Ref<vector_d> out) const {
    PREFOPT_CHECK(t >= 0 && t < l_, invalid_argument,
                  "token_softmax_policy::probabilities: t = ", t, ", expected a position in [0, ",
                  l_, ")");
    PREFOPT_CHECK(out.size() == k_ + 1, shape_error,
                  "token_softmax_policy::probabilities: out has ", out.size(),
                  " entries, expected ", k_ + 1);
    if (t == l_ - 1) {
      out.setZero();
      out(k_) = 1.0;
      return;
    }
    const auto z = logits(t);
    const double m = z.maxCoeff();
    out = (z.array() - m).exp().matrix();
    out /= out.sum();
  }

  /// Writes `out[i] = log pi(responses[i])`. Throws naming the response and position of a bad
  /// token (outside [0, K], eos before the end, missing final eos, longer than L).
  void log_prob(const sequence_batch& batch, Eigen::Ref<vector_d> out) const {
    constexpr const char* fn = "token_softmax_policy::log_prob";
    check_batch(fn, batch);
    PREFOPT_CHECK(out.size() == batch.size(), shape_error, fn, ": out has ", out.size(),
                  " entries, expected ", batch.size());
    const matrix_d lp = log_probability_table();
    for (index_t i = 0; i < batch.size(); ++i) {
      const auto y = batch.responses.sequence(i);
      double s = 0.0;
      for (index_t t = 0; t < free_positions(y); ++t) s += lp(t, y[static_cast<std::size_t>(t)]);
      out(i) = s;
    }
  }

  /// `gradient += sum_i weights[i] * d log pi(responses[i]) / d theta`.
  void accumulate_log_prob_gradient(const sequence_batch& batch, Eigen::Ref<const vector_d> weights,
                                    Eigen::Ref<vector_d> gradient) const {
    constexpr const char* fn = "token_softmax_policy::accumulate_log_prob_gradient";
    check_batch(fn, batch);
    PREFOPT_CHECK(weights.size() == batch.size(), shape_error, fn, ": weights has ", weights.size(),
                  " entries, expected ", batch.size());
    PREFOPT_CHECK(gradient.size() == num_parameters(), shape_error, fn, ": gradient has ",
                  gradient.size(), " entries, expected ", num_parameters());
    // Per position: sum of weights of responses reaching it (times -pi_t), plus the one-hot terms.
    vector_d reach = vector_d::Zero(std::max<index_t>(l_ - 1, 0));
    for (index_t i = 0; i < batch.size(); ++i) {
      const auto y = batch.responses.sequence(i);
      const double w = weights(i);
      for (index_t t = 0; t < free_positions(y); ++t) {
        reach(t) += w;
        gradient(t * (k_ + 1) + y[static_cast<std::size_t>(t)]) += w;
      }
    }
    vector_d p(k_ + 1);
    for (index_t t = 0; t + 1 < l_; ++t) {
      if (reach(t) == 0.0) continue;
      probabilities(t, p);
      gradient.segment(t * (k_ + 1), k_ + 1) -= reach(t) * p;
    }
  }

  /// Appends one response drawn from the policy to `out` (eos included); returns its length.
  index_t sample(rng& gen, std::vector<token_id>& out) const {
    vector_d p(k_ + 1);
    for (index_t t = 0; t < l_; ++t) {
      probabilities(t, p);
      const auto tok = static_cast<token_id>(gen.categorical(p));
      out.push_back(tok);
      if (tok == eos()) return t + 1;
    }
    return l_;  // unreachable: the last position is eos with probability 1
  }

  /// P(|y| = n) for n = 1 .. L, as a vector of L entries (entry n-1).
  [[nodiscard]] vector_d length_distribution() const {
    vector_d out(l_);
    vector_d p(k_ + 1);
    double reach = 1.0;
    for (index_t t = 0; t < l_; ++t) {
      probabilities(t, p);
      out(t) = reach * p(k_);
      reach *= 1.0 - p(k_);
    }
    return out;
  }

  /// E_pi[|y|] (eos counted).
  [[nodiscard]] double expected_length() const {
    const vector_d d = length_distribution();
    double e = 0.0;
    for (index_t n = 0; n < l_; ++n) e += static_cast<double>(n + 1) * d(n);
    return e;
  }

  /// E_pi[sum_t value[y_t]] for a per-token score `value` of K+1 entries (eos last).
  [[nodiscard]] double expected_token_sum(Eigen::Ref<const vector_d> value) const {
    PREFOPT_CHECK(value.size() == k_ + 1, shape_error,
                  "token_softmax_policy::expected_token_sum: value has ", value.size(),
                  " entries, expected ", k_ + 1);
    vector_d p(k_ + 1);
    double reach = 1.0;
    double e = 0.0;
    for (index_t t = 0; t < l_; ++t) {
      probabilities(t, p);
      e += reach * p.dot(value);
      reach *= 1.0 - p(k_);
    }
    return e;
  }

  /// Exact KL(pi || q) over whole responses: sum_t P_pi(reach t) KL(pi_t || q_t). `q` must have
  /// the same vocabulary and maximum length. +inf if pi puts mass where q has none.
  [[nodiscard]] double kl_divergence(const token_softmax_policy& q) const {
    PREFOPT_CHECK(q.k_ == k_ && q.l_ == l_, shape_error,
                  "token_softmax_policy::kl_divergence: q has vocab_size ", q.k_,
                  " and max_length ", q.l_, ", expected ", k_, " and ", l_);
    // From log-softmax tables, so a q that underflows in probability still gives a finite KL.
    const matrix_d lp = log_probability_table();
    const matrix_d lq = q.log_probability_table();
    double reach = 1.0;
    double kl = 0.0;
    for (index_t t = 0; t + 1 < l_; ++t) {
      double step = 0.0;
      for (index_t j = 0; j <= k_; ++j) {
        const double pj = std::exp(lp(t, j));
        if (pj > 0.0) step += pj * (lp(t, j) - lq(t, j));
      }
      kl += reach * step;
      reach *= 1.0 - std::exp(lp(t, k_));
    }
    return kl;
  }

  /// Subtracts each position's mean logit (the distribution is unchanged; keeps theta bounded).
  void recenter() noexcept {
    for (index_t t = 0; t + 1 < l_; ++t) {
      auto z = logits(t);
      z.array() -= z.mean();
    }
  }

 private:
  /// Number of positions of `y` that carry a free decision (the last position is forced eos).
  [[nodiscard]] index_t free_positions(std::span<const token_id> y) const noexcept {
    return decisions(static_cast<index_t>(y.size()));
  }

  /// log pi_t(k) for the free positions, [L-1, K+1].
  [[nodiscard]] matrix_d log_probability_table() const {
    matrix_d lp(std::max<index_t>(l_ - 1, 0), k_ + 1);
    for (index_t t = 0; t + 1 < l_; ++t) {
      const auto z = logits(t);
      const double m = z.maxCoeff();
      const double lse = m + std::log((z.array() - m).exp().sum());
      lp.row(t) = (z.array() - lse).matrix().transpose();
    }
    return lp;
  }

  void check_batch(const char* fn, const sequence_batch& batch) const {
    batch.responses.validate(fn, "responses");
    for (index_t i = 0; i < batch.size(); ++i) {
      const auto y = batch.responses.sequence(i);
      const auto n = static_cast<index_t>(y.size());
      PREFOPT_CHECK(n >= 1 && n <= l_, invalid_argument, fn, ": responses[", i, "] has ", n,
                    " tokens, expected 1 to max_length = ", l_, " (eos included)");
      for (index_t t = 0; t + 1 < n; ++t) {
        const token_id tok = y[static_cast<std::size_t>(t)];
        PREFOPT_CHECK(tok >= 0 && tok < static_cast<token_id>(k_), invalid_argument, fn,
                      ": responses[", i, "][", t, "] = ", tok, ", expected a content token in [0, ",
                      k_, ") before the final eos");
      }
      PREFOPT_CHECK(y.back() == eos(), invalid_argument, fn, ": responses[", i, "][", n - 1,
                    "] = ", y.back(), ", expected eos = ", eos(), " at the end of the response");
    }
  }

  index_t k_;
  index_t l_;
  vector_d theta_;
};

static_assert(Policy<token_softmax_policy>);
static_assert(DifferentiablePolicy<token_softmax_policy>);

}  // namespace prefopt
