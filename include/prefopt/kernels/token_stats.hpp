#pragma once
/// \file
/// The fused single-pass entry point: target log-prob, log-sum-exp, entropy and (given a second
/// logits matrix) both KL directions, all from one read of each row, plus the fused backward that
/// turns any combination of their upstream gradients into one dlogits sweep.
///
/// Training usually needs several of these per token (PPO: log-probs and an entropy or KL
/// diagnostic; KL-regularised objectives: log-probs and the full KL to the reference), and each
/// separate kernel would read the logits again. Formulas: `token_log_probs.hpp`, `entropy.hpp`,
/// `kl.hpp`. Guarantees, accuracy and threading: `kernels/options.hpp`. Every output is bitwise
/// identical to the one the dedicated kernel produces.
/// Half formats: the logits (and gradient matrices) may be `Eigen::bfloat16` or `Eigen::half`; the
/// per-row spans are then float (`result_scalar_t`) and gradients are written in the logits' format
/// (`kernels/options.hpp`, "Half formats").

#include <Eigen/Core>

#include <span>

#include "prefopt/kernels/detail/drivers.hpp"
#include "prefopt/kernels/options.hpp"

namespace prefopt::kernels {

/// Outputs of `token_stats`: each `[N]`, or empty to skip it. Asking for `entropy` adds a little
/// arithmetic; asking for nothing else costs nothing extra.
template <class T>
struct token_stats_outputs {
  std::span<T> log_probs{};    ///< log p(target_i); needs targets
  std::span<T> logsumexp{};    ///< lse of the (first) logits, saved for the backward
  std::span<T> entropy{};      ///< H(p_i)
  std::span<T> kl{};           ///< KL(p_i || q_i) (two-matrix form only)
  std::span<T> kl_reverse{};   ///< KL(q_i || p_i) (two-matrix form only)
  std::span<T> logsumexp_q{};  ///< lse of q_logits (two-matrix form only)
};

/// Upstream gradients for `token_stats_backward`: each `[N]`, or empty for zero.
template <class T>
struct token_stats_grads {
  std::span<const T> log_probs{};  ///< dL/d log p(target_i)
  std::span<const T> entropy{};    ///< dL/d H(p_i)
  std::span<const T> kl{};         ///< dL/d KL(p_i || q_i)
};

/// Forward values the backward needs: `logsumexp` always; `entropy` when a gradient for it is
/// given; `kl` and `logsumexp_q` when a KL gradient is given.
template <class T>
struct token_stats_saved {
  std::span<const T> logsumexp{};
  std::span<const T> entropy{};
  std::span<const T> kl{};
  std::span<const T> logsumexp_q{};
};

/// One pass over each row of `logits` (row-major `[N, V]`) producing the requested outputs.
/// `targets` (`[N]`, in `[0, V)`) is needed only for `log_probs` (may be empty otherwise).
template <class Logits>
void token_stats(const Eigen::DenseBase<Logits>& logits, std::span<const token_id> targets,
                 const token_stats_outputs<result_scalar_t<typename Logits::Scalar>>& out,
                 const options& opt = {}) {
  detail::forward_request<typename Logits::Scalar> r;
  r.kernel = "token_stats";
  r.p = detail::view_of(logits);
  PREFOPT_CHECK(out.kl.empty() && out.kl_reverse.empty() && out.logsumexp_q.empty(),
                invalid_argument, "token_stats: kl outputs need q_logits (two-matrix overload)");
  r.targets = targets;
  r.log_probs = out.log_probs;
  r.lse = out.logsumexp;
  r.entropy = out.entropy;
  detail::run_forward(r, opt);
}

/// Two-matrix form: one pass over each row of `logits` (p) and `q_logits` (q, e.g. the reference
/// model), same shape and type.
template <class Logits, class Q>
void token_stats(const Eigen::DenseBase<Logits>& logits, const Eigen::DenseBase<Q>& q_logits,
                 std::span<const token_id> targets,
                 const token_stats_outputs<result_scalar_t<typename Logits::Scalar>>& out,
                 const options& opt = {}) {
  static_assert(std::is_same_v<typename Logits::Scalar, typename Q::Scalar>,
                "token_stats: logits and q_logits must have the same scalar type");
  detail::forward_request<typename Logits::Scalar> r;
  r.kernel = "token_stats";
  r.p = detail::view_of(logits);
  r.has_q = true;
  r.q = detail::view_of(q_logits);
  r.targets = targets;
  r.log_probs = out.log_probs;
  r.lse = out.logsumexp;
  r.entropy = out.entropy;
  r.kl = out.kl;
  r.kl_reverse = out.kl_reverse;
  r.lse_q = out.logsumexp_q;
  detail::run_forward(r, opt);
}

/// dlogits(i, j) (= or +=) g_lp,i (1[j = t_i] - p_ij) - g_H,i p_ij (log p_ij + H_i)
///                         + g_KL,i p_ij ((log p_ij - log q_ij) - KL_i), in one sweep.
/// Single-matrix form: `grads.kl` must be empty.
template <class Logits, class Grad>
void token_stats_backward(const Eigen::DenseBase<Logits>& logits, std::span<const token_id> targets,
                          const token_stats_saved<result_scalar_t<typename Logits::Scalar>>& saved,
                          const token_stats_grads<result_scalar_t<typename Logits::Scalar>>& grads,
                          const Eigen::DenseBase<Grad>& dlogits, const options& opt = {}) {
  static_assert(std::is_same_v<typename Logits::Scalar, typename Grad::Scalar>,
                "token_stats_backward: logits and dlogits must have the same scalar type");
  detail::backward_request<typename Logits::Scalar> r;
  r.kernel = "token_stats_backward";
  r.p = detail::view_of(logits);
  r.dp = detail::mutable_view_of(dlogits);
  r.targets = targets;
  r.lse = saved.logsumexp;
  r.entropy = saved.entropy;
  r.g_lp = grads.log_probs;
  r.g_h = grads.entropy;
  r.g_kl = grads.kl;
  detail::run_backward(r, opt);
}

/// Two-matrix form: also accumulates the KL gradient into `dq_logits` (`dq(i, j) = g_KL,i (q_ij -
/// p_ij)`) unless it is empty (0 x 0, a frozen reference; the overload without `dq_logits` below
/// says so without a dummy matrix).
template <class Logits, class Q, class Grad, class GradQ>
void token_stats_backward(const Eigen::DenseBase<Logits>& logits,
                          const Eigen::DenseBase<Q>& q_logits, std::span<const token_id> targets,
                          const token_stats_saved<result_scalar_t<typename Logits::Scalar>>& saved,
                          const token_stats_grads<result_scalar_t<typename Logits::Scalar>>& grads,
                          const Eigen::DenseBase<Grad>& dlogits,
                          const Eigen::DenseBase<GradQ>& dq_logits, const options& opt = {}) {
  using T = typename Logits::Scalar;
  static_assert(std::is_same_v<T, typename Q::Scalar> && std::is_same_v<T, typename Grad::Scalar> &&
                    std::is_same_v<T, typename GradQ::Scalar>,
                "token_stats_backward: all matrices must have the same scalar type");
  detail::backward_request<T> r;
  r.kernel = "token_stats_backward";
  r.p = detail::view_of(logits);
  r.has_q = true;
  r.q = detail::view_of(q_logits);
  r.dp = detail::mutable_view_of(dlogits);
  const auto dq = detail::mutable_view_of(dq_logits);
  r.has_dq = !(dq.rows == 0 && dq.cols == 0);
  if (r.has_dq) r.dq = dq;
  r.targets = targets;
  r.lse = saved.logsumexp;
  r.entropy = saved.entropy;
  r.kl = saved.kl;
  r.lse_q = saved.logsumexp_q;
  r.g_lp = grads.log_probs;
  r.g_h = grads.entropy;
  r.g_kl = grads.kl;
  detail::run_backward(r, opt);
}

/// Two-matrix form with a frozen reference (`q_logits` a stop-gradient, e.g. the reference model
/// of a KL penalty): only `dlogits` (= or +=, `opt.mode`) gets the sweep of the two-matrix form
/// above, including the KL term `g_KL,i p_ij ((log p_ij - log q_ij) - KL_i)`; nothing is written
/// for q. Same inputs, checks and results as passing an empty 0 x 0 `dq_logits`.
template <class Logits, class Q, class Grad>
void token_stats_backward(const Eigen::DenseBase<Logits>& logits,
                          const Eigen::DenseBase<Q>& q_logits, std::span<const token_id> targets,
                          const token_stats_saved<result_scalar_t<typename Logits::Scalar>>& saved,
                          const token_stats_grads<result_scalar_t<typename Logits::Scalar>>& grads,
                          const Eigen::DenseBase<Grad>& dlogits, const options& opt = {}) {
  using T = typename Logits::Scalar;
  static_assert(std::is_same_v<T, typename Q::Scalar> && std::is_same_v<T, typename Grad::Scalar>,
                "token_stats_backward: all matrices must have the same scalar type");
  row_matrix_t<T> frozen;  // 0 x 0, allocates nothing: q gets no gradient
  token_stats_backward(logits, q_logits, targets, saved, grads, dlogits, frozen, opt);
}

}  // namespace prefopt::kernels
