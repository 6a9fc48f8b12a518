#pragma once
/// \file
/// Exact full-vocabulary KL divergence per row between the softmaxes of two logits matrices, both
/// directions, with gradients (the `full` estimator of ALGORITHMS.md §2.2).
///
/// With p = softmax(zp), q = softmax(zq) row-wise:
///   `KL(p || q) = sum_j p_j (log p_j - log q_j) = A / s_p - log s_p + log s_q`,
///   `A = sum_j e^{zp_j - mp} ((zp_j - mp) - (zq_j - mq))`, `s_p = sum_j e^{zp_j - mp}`,
/// and symmetrically `KL(q || p)`; both come out of the same single pass over the two matrices.
/// Convention of ALGORITHMS.md §0.1: the first argument is the sampling distribution.
/// Gradients of `KL(p || q)`: `dKL/dzp_j = p_j ((log p_j - log q_j) - KL)`, `dKL/dzq_j = q_j -
/// p_j`. For the reverse direction swap the roles of the two matrices.
/// `-inf` logits: entries with p_j = 0 contribute 0; `KL(p || q) = +inf` exactly when p_j > 0 for
/// some j with zq_j = -inf (its gradient is then undefined and `kl_divergence_backward` throws).
/// KL values are clamped at 0 from below. Guarantees, accuracy and threading:
/// `kernels/options.hpp`.
/// Half formats: the logits (and gradient matrices) may be `Eigen::bfloat16` or `Eigen::half`; the
/// per-row spans are then float (`result_scalar_t`) and gradients are written in the logits' format
/// (`kernels/options.hpp`, "Half formats").

#include <Eigen/Core>

#include <span>

#include "prefopt/kernels/detail/drivers.hpp"
#include "prefopt/kernels/options.hpp"

namespace prefopt::kernels {

/// kl[i] = KL(p_i || q_i) and kl_reverse[i] = KL(q_i || p_i), p_i = softmax(p_logits(i, :)),
/// q_i = softmax(q_logits(i, :)). Both logits are row-major `[N, V]` of the same type and shape;
/// every output is `[N]` or empty (not computed): `kl`, `kl_reverse`, `lse_p`, `lse_q` (the last
/// two are saved for the backward). One read of each matrix.
template <class P, class Q>
void kl_divergence(const Eigen::DenseBase<P>& p_logits, const Eigen::DenseBase<Q>& q_logits,
                   std::span<result_scalar_t<typename P::Scalar>> kl,
                   std::span<result_scalar_t<typename P::Scalar>> kl_reverse,
                   const options& opt = {},
                   std::span<result_scalar_t<typename P::Scalar>> lse_p = {},
                   std::span<result_scalar_t<typename P::Scalar>> lse_q = {}) {
  static_assert(std::is_same_v<typename P::Scalar, typename Q::Scalar>,
                "kl_divergence: p_logits and q_logits must have the same scalar type");
  detail::forward_request<typename P::Scalar> r;
  r.kernel = "kl_divergence";
  r.p_name = "p_logits";
  r.p = detail::view_of(p_logits);
  r.has_q = true;
  r.q = detail::view_of(q_logits);
  r.kl = kl;
  r.kl_reverse = kl_reverse;
  r.lse = lse_p;
  r.lse_q = lse_q;
  detail::run_forward(r, opt);
}

/// Gradient of KL(p || q) scaled by `grad[i]`: dp_logits(i, j) (= or +=) grad[i] p_j ((log p_j -
/// log q_j) - kl[i]) and, unless `dq_logits` is empty (0 x 0, e.g. a frozen reference model),
/// dq_logits(i, j) (= or +=) grad[i] (q_j - p_j). `lse_p`, `lse_q`, `kl`: `[N]` from the forward;
/// `grad`: `[N]` upstream dL/dKL. One read of both matrices, one write of each gradient.
template <class P, class Q, class DP, class DQ>
void kl_divergence_backward(const Eigen::DenseBase<P>& p_logits,
                            const Eigen::DenseBase<Q>& q_logits,
                            std::span<const result_scalar_t<typename P::Scalar>> lse_p,
                            std::span<const result_scalar_t<typename P::Scalar>> lse_q,
                            std::span<const result_scalar_t<typename P::Scalar>> kl,
                            std::span<const result_scalar_t<typename P::Scalar>> grad,
                            const Eigen::DenseBase<DP>& dp_logits,
                            const Eigen::DenseBase<DQ>& dq_logits, const options& opt = {}) {
  using T = typename P::Scalar;
  static_assert(std::is_same_v<T, typename Q::Scalar> && std::is_same_v<T, typename DP::Scalar> &&
                    std::is_same_v<T, typename DQ::Scalar>,
                "kl_divergence_backward: all matrices must have the same scalar type");
  detail::backward_request<T> r;
  r.kernel = "kl_divergence_backward";
  r.p_name = "p_logits";
  r.dp_name = "dp_logits";
  r.p = detail::view_of(p_logits);
  r.has_q = true;
  r.q = detail::view_of(q_logits);
  r.dp = detail::mutable_view_of(dp_logits);
  const auto dq = detail::mutable_view_of(dq_logits);
  r.has_dq = !(dq.rows == 0 && dq.cols == 0);
  if (r.has_dq) r.dq = dq;
  detail::check_rows(r.kernel, "grad", grad.size(), r.p.rows);
  r.lse = lse_p;
  r.lse_q = lse_q;
  r.kl = kl;
  r.g_kl = grad;
  detail::run_backward(r, opt);
}

/// Frozen reference (`q_logits` a stop-gradient): only `dp_logits(i, j)` (= or +=, `opt.mode`)
/// `grad[i] p_j ((log p_j - log q_j) - kl[i])`, with the same inputs, checks and results as the
/// form above given an empty 0 x 0 `dq_logits`, and no dummy matrix to build.
template <class P, class Q, class DP>
void kl_divergence_backward(const Eigen::DenseBase<P>& p_logits,
                            const Eigen::DenseBase<Q>& q_logits,
                            std::span<const result_scalar_t<typename P::Scalar>> lse_p,
                            std::span<const result_scalar_t<typename P::Scalar>> lse_q,
                            std::span<const result_scalar_t<typename P::Scalar>> kl,
                            std::span<const result_scalar_t<typename P::Scalar>> grad,
                            const Eigen::DenseBase<DP>& dp_logits, const options& opt = {}) {
  row_matrix_t<typename P::Scalar> frozen;  // 0 x 0, allocates nothing: q gets no gradient
  kl_divergence_backward(p_logits, q_logits, lse_p, lse_q, kl, grad, dp_logits, frozen, opt);
}

}  // namespace prefopt::kernels
