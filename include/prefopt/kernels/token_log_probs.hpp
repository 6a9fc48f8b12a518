#pragma once
/// \file
/// Per-token log-probabilities of target tokens from logits, and their gradient.
///
/// Forward: `log p_i = z_{i, t_i} - lse_i`, `lse_i = log sum_j exp(z_ij)`, one read of the logits.
/// Backward: `dlogits(i, j) = g_i (1[j = t_i] - softmax(z_i)_j)`, one read + one write sweep using
/// the saved `lse`. This is the per-token `l_t` of ALGORITHMS.md §0.1 (the input of the DPO and PPO
/// losses), and its derivative `dl_t/dz_{t,k} = 1[k = y_t] - p_{t,k}` (§3.1). Masked rows
/// (options::mask, e.g. prompt and padding positions) are not read and give exactly 0 (convention
/// §0.2.1). Guarantees, accuracy and threading: `kernels/options.hpp`.
/// Half formats: the logits (and gradient matrices) may be `Eigen::bfloat16` or `Eigen::half`; the
/// per-row spans are then float (`result_scalar_t`) and gradients are written in the logits' format
/// (`kernels/options.hpp`, "Half formats").

#include <Eigen/Core>

#include <span>

#include "prefopt/kernels/detail/drivers.hpp"
#include "prefopt/kernels/options.hpp"

namespace prefopt::kernels {

/// log_probs[i] = log softmax(logits(i, :))[targets[i]].
///
/// `logits`: row-major `[N, V]`, float, double, bf16 or fp16; `targets`: `[N]` token ids in `[0,
/// V)` (checked for unmasked rows); `log_probs`: `[N]` output; `lse`: optional `[N]` output of the
/// row log-sum-exp (save it for `token_log_probs_backward`), empty to skip. A target whose logit is
/// -inf gives -inf.
template <class Logits>
void token_log_probs(const Eigen::DenseBase<Logits>& logits, std::span<const token_id> targets,
                     std::span<result_scalar_t<typename Logits::Scalar>> log_probs,
                     const options& opt = {},
                     std::span<result_scalar_t<typename Logits::Scalar>> lse = {}) {
  detail::forward_request<typename Logits::Scalar> r;
  r.kernel = "token_log_probs";
  r.p = detail::view_of(logits);
  detail::check_rows(r.kernel, "log_probs", log_probs.size(), r.p.rows);
  r.targets = targets;
  r.log_probs = log_probs;
  r.lse = lse;
  detail::run_forward(r, opt);
}

/// `token_log_probs` with the log-sum-exp output and no options spelled before it:
/// `token_log_probs(logits, targets, log_probs, lse)` (same as passing `{}` options). Write the
/// options after `lse` when they are needed; a lone `{}` fourth argument is ambiguous.
template <class Logits>
void token_log_probs(const Eigen::DenseBase<Logits>& logits, std::span<const token_id> targets,
                     std::span<result_scalar_t<typename Logits::Scalar>> log_probs,
                     std::span<result_scalar_t<typename Logits::Scalar>> lse,
                     const options& opt = {}) {
  token_log_probs(logits, targets, log_probs, opt, lse);
}

/// dlogits(i, :) (= or +=, options::mode) grad[i] * (onehot(targets[i]) - softmax(logits(i, :))).
///
/// `lse`: `[N]` from the forward; `grad`: `[N]` upstream dL/dlog_probs; `dlogits`: row-major
/// `[N, V]` output (may not alias `logits`). Masked rows: 0 (`overwrite`) or untouched
/// (`accumulate`). Logits are not re-validated (the forward did it).
template <class Logits, class Grad>
void token_log_probs_backward(const Eigen::DenseBase<Logits>& logits,
                              std::span<const token_id> targets,
                              std::span<const result_scalar_t<typename Logits::Scalar>> lse,
                              std::span<const result_scalar_t<typename Logits::Scalar>> grad,
                              const Eigen::DenseBase<Grad>& dlogits, const options& opt = {}) {
  static_assert(std::is_same_v<typename Logits::Scalar, typename Grad::Scalar>,
                "token_log_probs_backward: logits and dlogits must have the same scalar type");
  detail::backward_request<typename Logits::Scalar> r;
  r.kernel = "token_log_probs_backward";
  r.p = detail::view_of(logits);
  r.dp = detail::mutable_view_of(dlogits);
  detail::check_rows(r.kernel, "grad", grad.size(), r.p.rows);
  r.targets = targets;
  r.lse = lse;
  r.g_lp = grad;
  detail::run_backward(r, opt);
}

}  // namespace prefopt::kernels
