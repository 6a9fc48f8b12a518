#pragma once
/// \file
/// HIR losses (ALGORITHMS.md §10; The Wisdom of Hindsight Makes Language Models Better Instruction
/// Followers, Zhang et al., arXiv 2302.05206; reference code `tianjunz/HIR`):
/// `L = L_sup + w_con L_con + w_ent L_ent` with
/// - `label_smoothed_cross_entropy`: token CE with label smoothing (`eps_ls = 0.2` in the code),
/// - `contrastive_instruction_loss_2way`: the code's binary smoothed contrast between the relabeled
///   instruction `c+` and the negated one `c-`,
/// - `contrastive_instruction_loss`: the paper's k-way softmax over a batch of instructions, with
///   label smoothing (k = 2, eps_ls = 0 equals the 2-way form),
/// - `entropy_bonus`: `-w_ent * mean entropy` (`w_ent = 0.001` in the code).
/// The contrast acts on per-instruction scores `ell`, by default mean-token log-likelihoods
/// (`sequence_log_likelihoods` with `likelihood_reduction::mean_token`);
/// `spread_sequence_gradients` (with `divide_by_length` for `mean_token`) maps its gradients back
/// to tokens. The relabeling interface lives in `data/relabeling.hpp`.

#include <Eigen/Core>

#include <cmath>
#include <cstdint>
#include <span>

#include "prefopt/core/math.hpp"
#include "prefopt/losses/common.hpp"

namespace prefopt::losses {

/// Default HIR hyperparameters (reference code): `eps_ls = 0.2`, `w_con = 1`, `w_ent = 0.001`.
struct hir_defaults {
  static constexpr double eps_ls = 0.2;
  static constexpr double w_con = 1.0;
  static constexpr double w_ent = 0.001;
};

/// How token log-likelihoods become one score per (output, instruction).
enum class likelihood_reduction {
  mean_token,  ///< mean over response tokens (`max(L, 1)`; the reference code, default)
  sum,         ///< sum over response tokens (the paper's `log pi(y | c, x)`)
};

/// Per-sequence scores from ragged per-token log-likelihoods: the sum, or the sum / max(L, 1).
/// `out` has `token_logps.num_sequences()` entries.
template <class T>
void sequence_log_likelihoods(ragged_view<const T> token_logps, likelihood_reduction how,
                              detail::ref_t<T> out) {
  constexpr const char* fn = "sequence_log_likelihoods";
  token_logps.validate(fn, "token_logps");
  detail::check_size(fn, "out", out.size(), token_logps.num_sequences());
  for (index_t i = 0; i < token_logps.num_sequences(); ++i) {
    T s = T(0);
    for (const T x : token_logps.sequence(i)) s += x;
    out(i) =
        how == likelihood_reduction::sum ? s : s / detail::clamped_length<T>(token_logps.length(i));
  }
}

/// Label-smoothed token cross-entropy (HF `LabelSmoother`): for row `t` of `logits` (`[N, V]`)
/// with target `y_t`, `loss_t = (1 - eps_ls)(-log p_t[y_t]) + eps_ls mean_v(-log p_t[v])`,
/// averaged over the `N` tokens. `grad` (`[N, V]`) receives
/// `(softmax - ((1 - eps_ls) onehot(y_t) + eps_ls / V)) / N`. At uniform logits the loss is
/// `log V` for every `eps_ls`. `eps_ls` in [0, 1); targets in [0, V). Returns the loss.
template <class T>
T label_smoothed_cross_entropy(const Eigen::Ref<const row_matrix_t<T>>& logits,
                               std::span<const token_id> targets, double eps_ls,
                               Eigen::Ref<row_matrix_t<T>> grad) {
  constexpr const char* fn = "label_smoothed_cross_entropy";
  const index_t n = logits.rows();
  const index_t v = logits.cols();
  PREFOPT_CHECK(n > 0 && v > 0, shape_error, fn, ": logits is ", n, "x", v,
                ", expected at least one token and one vocabulary entry");
  detail::check_size(fn, "targets", static_cast<index_t>(targets.size()), n);
  PREFOPT_CHECK(grad.rows() == n && grad.cols() == v, shape_error, fn, ": grad is ", grad.rows(),
                "x", grad.cols(), ", expected ", n, "x", v);
  PREFOPT_CHECK(eps_ls >= 0.0 && eps_ls < 1.0, invalid_argument, fn, ": eps_ls = ", eps_ls,
                ", expected a value in [0, 1)");
  const T eps = static_cast<T>(eps_ls);
  const T inv_n = T(1) / static_cast<T>(n);
  const T inv_v = T(1) / static_cast<T>(v);
  T total = T(0);
  for (index_t t = 0; t < n; ++t) {
    const index_t y = targets[static_cast<std::size_t>(t)];
    PREFOPT_CHECK(y >= 0 && y < v, invalid_argument, fn, ": targets[", t, "] = ", y,
                  ", expected a token id in [0, ", v, ")");
    detail::check_finite(fn, "logits row", logits.row(t));
    const T lse = logsumexp(logits.row(t));
    const T nll = lse - logits(t, y);
    const T mean_nll = lse - logits.row(t).mean();
    total += (T(1) - eps) * nll + eps * mean_nll;
    grad.row(t) = (((logits.row(t).array() - lse).exp() - eps * inv_v) * inv_n).matrix();
    grad(t, y) -= (T(1) - eps) * inv_n;
  }
  return total * inv_n;
}

/// Entropy bonus `value = -w_ent * mean_t H_t`, `H_t = -sum_v p_tv log p_tv` over the rows of
/// `logits` (`[N, V]`); adding it to a loss rewards entropy. `grad` (`[N, V]`) receives
/// `dvalue/dz_tv = w_ent p_tv (log p_tv + H_t) / N`. Uniform rows have `H = log V`. `w_ent >= 0`.
/// Returns the value (<= 0).
template <class T>
T entropy_bonus(const Eigen::Ref<const row_matrix_t<T>>& logits, double w_ent,
                Eigen::Ref<row_matrix_t<T>> grad) {
  constexpr const char* fn = "entropy_bonus";
  const index_t n = logits.rows();
  const index_t v = logits.cols();
  PREFOPT_CHECK(n > 0 && v > 0, shape_error, fn, ": logits is ", n, "x", v,
                ", expected at least one row and one column");
  PREFOPT_CHECK(grad.rows() == n && grad.cols() == v, shape_error, fn, ": grad is ", grad.rows(),
                "x", grad.cols(), ", expected ", n, "x", v);
  detail::check_lower(fn, "w_ent", w_ent, 0.0, false);
  const T w = static_cast<T>(w_ent);
  const T inv_n = T(1) / static_cast<T>(n);
  T total = T(0);
  for (index_t t = 0; t < n; ++t) {
    detail::check_finite(fn, "logits row", logits.row(t));
    const T lse = logsumexp(logits.row(t));
    const auto logp = (logits.row(t).array() - lse).eval();
    const auto p = logp.exp().eval();
    const T h = -(p * logp).sum();
    total += h;
    grad.row(t) = (w * inv_n * p * (logp + h)).matrix();
  }
  return -w * total * inv_n;
}

/// The 2-way smoothed contrast of the HIR code: with `q+ = s+/(s+ + s-)`, `s± = exp(ell±)`,
/// `loss_i = (1-eps_ls)(-log q+) + eps_ls(-log q-)` (stable: softplus of `ell- - ell+`), averaged
/// over the `[N]` pairs. `dloss_i/d ell+ = q+ - (1 - eps_ls) = -dloss_i/d ell-`; the minimiser is
/// `ell+ - ell- = log((1-eps_ls)/eps_ls)`. Gradients of the mean go to `grad_positive`,
/// `grad_negative`. `eps_ls` in [0, 0.5]. Returns the loss.
template <class T>
T contrastive_instruction_loss_2way(const detail::cref_t<T>& ell_positive,
                                    const detail::cref_t<T>& ell_negative, double eps_ls,
                                    detail::ref_t<T> grad_positive,
                                    detail::ref_t<T> grad_negative) {
  constexpr const char* fn = "contrastive_instruction_loss_2way";
  const index_t n = ell_positive.size();
  PREFOPT_CHECK(n > 0, shape_error, fn, ": ell_positive is empty, expected at least one pair");
  detail::check_size(fn, "ell_negative", ell_negative.size(), n);
  detail::check_size(fn, "grad_positive", grad_positive.size(), n);
  detail::check_size(fn, "grad_negative", grad_negative.size(), n);
  PREFOPT_CHECK(eps_ls >= 0.0 && eps_ls <= 0.5, invalid_argument, fn, ": eps_ls = ", eps_ls,
                ", expected a value in [0, 0.5]");
  detail::check_finite(fn, "ell_positive", ell_positive);
  detail::check_finite(fn, "ell_negative", ell_negative);
  const T eps = static_cast<T>(eps_ls);
  const T inv_n = T(1) / static_cast<T>(n);
  T total = T(0);
  for (index_t i = 0; i < n; ++i) {
    const T delta = ell_positive(i) - ell_negative(i);
    total += (T(1) - eps) * softplus(-delta) + eps * softplus(delta);
    const T g = (sigmoid(delta) - (T(1) - eps)) * inv_n;
    grad_positive(i) = g;
    grad_negative(i) = -g;
  }
  return total * inv_n;
}

/// k-way instruction contrast (the paper's `L_con`) with label smoothing: row `i` of `ell`
/// (`[B, K]`, `K >= 2`) holds the scores of output `i` under `K` instructions, `positive[i]` the
/// column of its relabeled instruction (empty span: column `i` when `K == B`, the paper's batch
/// form `ell_ik`; otherwise column 0). With `q = softmax(ell_i)` and target
/// `(1 - eps_ls)` on the positive, `eps_ls/(K-1)` elsewhere: `loss_i = -sum_k target_k log q_k`,
/// averaged over rows; `grad` (`[B, K]`) receives `(q - target) / B`. With `K = 2` it equals the
/// 2-way form. `eps_ls` in [0, 1). Returns the loss.
template <class T>
T contrastive_instruction_loss(const Eigen::Ref<const row_matrix_t<T>>& ell,
                               std::span<const index_t> positive, double eps_ls,
                               Eigen::Ref<row_matrix_t<T>> grad) {
  constexpr const char* fn = "contrastive_instruction_loss";
  const index_t b = ell.rows();
  const index_t k = ell.cols();
  PREFOPT_CHECK(b > 0 && k >= 2, shape_error, fn, ": ell is ", b, "x", k,
                ", expected at least one row and K >= 2 instructions");
  if (!positive.empty())
    detail::check_size(fn, "positive", static_cast<index_t>(positive.size()), b);
  PREFOPT_CHECK(grad.rows() == b && grad.cols() == k, shape_error, fn, ": grad is ", grad.rows(),
                "x", grad.cols(), ", expected ", b, "x", k);
  PREFOPT_CHECK(eps_ls >= 0.0 && eps_ls < 1.0, invalid_argument, fn, ": eps_ls = ", eps_ls,
                ", expected a value in [0, 1)");
  const T eps = static_cast<T>(eps_ls);
  const T off = eps / static_cast<T>(k - 1);
  const T inv_b = T(1) / static_cast<T>(b);
  T total = T(0);
  for (index_t i = 0; i < b; ++i) {
    const index_t pos =
        !positive.empty() ? positive[static_cast<std::size_t>(i)] : (k == b ? i : 0);
    PREFOPT_CHECK(pos >= 0 && pos < k, invalid_argument, fn, ": positive[", i, "] = ", pos,
                  ", expected a column in [0, ", k, ")");
    detail::check_finite(fn, "ell row", ell.row(i));
    const T lse = logsumexp(ell.row(i));
    T loss = T(0);
    for (index_t c = 0; c < k; ++c) {
      const T target = c == pos ? T(1) - eps : off;
      const T logq = ell(i, c) - lse;
      loss -= target * logq;
      grad(i, c) = (std::exp(logq) - target) * inv_b;
    }
    total += loss;
  }
  return total * inv_b;
}

}  // namespace prefopt::losses
