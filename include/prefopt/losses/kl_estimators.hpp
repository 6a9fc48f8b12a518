#pragma once
/// \file
/// Scalar per-token KL estimators (ALGORITHMS.md §2.2), used by PPO reward shaping.
///
/// Each estimator maps the per-token log-ratio of the *sampled* token, `d = log pi(y_t|ctx) -
/// log pi_ref(y_t|ctx)`, to an estimate of `KL(pi(.|ctx), pi_ref(.|ctx))`:
///
/// | tag       | value                    | properties |
/// |-----------|--------------------------|------------|
/// | `kl_k1`   | `d`                      | unbiased, can be negative (TRL `kl`) |
/// | `kl_k2`   | `d^2 / 2`                | >= 0, biased, ~KL for close policies (TRL v0.11 `mse`)
/// | | `kl_k3`   | `(exp(-d) - 1) + d`      | >= 0, unbiased, lower variance | | `kl_abs`  |
/// `abs(d)`                 | >= 0, biased |
///
/// plus `full_kl`, the exact per-position KL over the vocabulary from two log-prob rows.
/// `derivative(d)` is `d(value)/d(d)` (for users who differentiate the penalty; PPO shaping treats
/// the penalty as a stop-gradient reward). These are small, documented scalar references; the
/// batched kernels live in `kernels/`. The values and derivatives are those of
/// `kernels::kl_estimate` / `kernels::kl_estimate_derivative` (one implementation: k3 in double
/// with a Taylor series for |d| < 0.5 and `expm1` beyond, full relative accuracy as d -> 0).
/// References: J. Schulman, "Approximating KL divergence" (2020 note); TRL `_kl_penalty`.

#include <Eigen/Core>

#include <cmath>
#include <limits>
#include <string_view>

#include "prefopt/core/assert.hpp"
#include "prefopt/core/types.hpp"
#include "prefopt/kernels/kl_estimators.hpp"

namespace prefopt::losses {

/// k1 = d.
struct kl_k1 {
  static constexpr std::string_view name = "k1";
  template <class T>
  static T value(T d) noexcept {
    return kernels::kl_estimate(kernels::kl_estimator::k1, d);
  }
  template <class T>
  static T derivative(T d) noexcept {
    return kernels::kl_estimate_derivative(kernels::kl_estimator::k1, d);
  }
};

/// k2 = d^2 / 2.
struct kl_k2 {
  static constexpr std::string_view name = "k2";
  template <class T>
  static T value(T d) noexcept {
    return kernels::kl_estimate(kernels::kl_estimator::k2, d);
  }
  template <class T>
  static T derivative(T d) noexcept {
    return kernels::kl_estimate_derivative(kernels::kl_estimator::k2, d);
  }
};

/// k3 = (exp(-d) - 1) + d (derivative 1 - exp(-d)).
struct kl_k3 {
  static constexpr std::string_view name = "k3";
  template <class T>
  static T value(T d) noexcept {
    return kernels::kl_estimate(kernels::kl_estimator::k3, d);
  }
  template <class T>
  static T derivative(T d) noexcept {
    return kernels::kl_estimate_derivative(kernels::kl_estimator::k3, d);
  }
};

/// abs = |d| (derivative: sign(d), 0 at d = 0).
struct kl_abs {
  static constexpr std::string_view name = "abs";
  template <class T>
  static T value(T d) noexcept {
    return kernels::kl_estimate(kernels::kl_estimator::abs, d);
  }
  template <class T>
  static T derivative(T d) noexcept {
    return kernels::kl_estimate_derivative(kernels::kl_estimator::abs, d);
  }
};

/// Exact KL over the vocabulary at one position: `sum_v exp(logp_v) (logp_v - logq_v)`, from
/// normalized log-probability rows of the same size (`logp` of the sampling policy first). Entries
/// with `logp_v = -inf` contribute 0; throws if `logq_v = -inf` where `logp_v` is finite.
template <class DerivedP, class DerivedQ>
[[nodiscard]] typename DerivedP::Scalar full_kl(const Eigen::MatrixBase<DerivedP>& logp,
                                                const Eigen::MatrixBase<DerivedQ>& logq) {
  using T = typename DerivedP::Scalar;
  PREFOPT_CHECK(logp.size() == logq.size(), shape_error, "full_kl: logp has size ", logp.size(),
                ", logq has size ", logq.size(), ", expected equal sizes");
  T kl = T(0);
  for (index_t v = 0; v < logp.size(); ++v) {
    const T lp = logp.derived().coeff(v);
    if (lp == -std::numeric_limits<T>::infinity()) continue;
    const T lq = static_cast<T>(logq.derived().coeff(v));
    PREFOPT_CHECK(std::isfinite(lq), invalid_argument, "full_kl: logq[", v, "] = ", lq,
                  " where logp[", v, "] = ", lp, ", expected a finite log-probability");
    kl += std::exp(lp) * (lp - lq);
  }
  return kl;
}

}  // namespace prefopt::losses
