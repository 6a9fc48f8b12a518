#pragma once
/// \file
/// Entropy of the softmax of each logits row, and its gradient.
///
/// `H_i = -sum_j p_ij log p_ij = log s_i - (sum_j w_ij (z_ij - m_i)) / s_i` with `w = exp(z - m)`,
/// `s = sum w`, computed in one streaming pass. Gradient: `dH_i/dz_ij = -p_ij (log p_ij + H_i)`.
/// `-inf` logits contribute 0 (p log p -> 0). The entropy is clamped at 0 from below. Guarantees,
/// accuracy and threading: `kernels/options.hpp`.
/// Half formats: the logits (and gradient matrices) may be `Eigen::bfloat16` or `Eigen::half`; the
/// per-row spans are then float (`result_scalar_t`) and gradients are written in the logits' format
/// (`kernels/options.hpp`, "Half formats").

#include <Eigen/Core>

#include <span>

#include "prefopt/kernels/detail/drivers.hpp"
#include "prefopt/kernels/options.hpp"

namespace prefopt::kernels {

/// entropy[i] = H(softmax(logits(i, :))) in nats. `logits`: row-major `[N, V]`; `entropy`: `[N]`;
/// `lse`: optional `[N]` log-sum-exp output (needed by `entropy_backward`), empty to skip.
template <class Logits>
void entropy(const Eigen::DenseBase<Logits>& logits,
             std::span<result_scalar_t<typename Logits::Scalar>> entropy, const options& opt = {},
             std::span<result_scalar_t<typename Logits::Scalar>> lse = {}) {
  detail::forward_request<typename Logits::Scalar> r;
  r.kernel = "entropy";
  r.p = detail::view_of(logits);
  detail::check_rows(r.kernel, "entropy", entropy.size(), r.p.rows);
  r.entropy = entropy;
  r.lse = lse;
  detail::run_forward(r, opt);
}

/// dlogits(i, j) (= or +=) -grad[i] p_ij (log p_ij + H_i). `lse`, `entropy`: `[N]` from the
/// forward; `grad`: `[N]` upstream dL/dH; `dlogits`: row-major `[N, V]`.
template <class Logits, class Grad>
void entropy_backward(const Eigen::DenseBase<Logits>& logits,
                      std::span<const result_scalar_t<typename Logits::Scalar>> lse,
                      std::span<const result_scalar_t<typename Logits::Scalar>> entropy,
                      std::span<const result_scalar_t<typename Logits::Scalar>> grad,
                      const Eigen::DenseBase<Grad>& dlogits, const options& opt = {}) {
  static_assert(std::is_same_v<typename Logits::Scalar, typename Grad::Scalar>,
                "entropy_backward: logits and dlogits must have the same scalar type");
  detail::backward_request<typename Logits::Scalar> r;
  r.kernel = "entropy_backward";
  r.p = detail::view_of(logits);
  r.dp = detail::mutable_view_of(dlogits);
  detail::check_rows(r.kernel, "grad", grad.size(), r.p.rows);
  r.lse = lse;
  r.g_h = grad;
  r.entropy = entropy;
  detail::run_backward(r, opt);
}

}  // namespace prefopt::kernels
