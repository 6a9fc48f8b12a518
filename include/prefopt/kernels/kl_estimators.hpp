#pragma once
/// \file
/// Sampled per-token KL estimators from per-token log-probabilities, with gradients
/// (ALGORITHMS.md §2.2; Schulman, "Approximating KL Divergence", and the PPO-for-LM references:
/// Ziegler et al., arXiv 1909.08593; Stiennon et al., arXiv 2009.01325).
///
/// With `d_t = l_t - lr_t` (policy minus reference log-prob of the sampled token):
///   - `k1 = d_t`                       unbiased, can be negative (TRL `kl`); dk/dd = 1
///   - `k2 = d_t^2 / 2`                 non-negative, biased (TRL `mse`);     dk/dd = d
///   - `k3 = (e^{-d_t} - 1) + d_t`      non-negative, unbiased;               dk/dd = 1 - e^{-d}
///   - `abs = |d_t|`                                                          dk/dd = sign(d) (0 at
///   0)
/// and dk/dlr = -dk/dd. The fifth estimator, `full` (exact KL over the vocabulary), needs logits:
/// see `kl.hpp`. k3 is evaluated with `expm1` and, for |d| < 0.5, a Taylor series, so it keeps full
/// relative accuracy as d -> 0. Masked positions (options::mask) give 0 and a 0 gradient (or an
/// untouched one under `accumulate`). Non-finite log-probs at unmasked positions are an error.

#include <cmath>
#include <cstdint>
#include <span>

#include "prefopt/core/assert.hpp"
#include "prefopt/core/types.hpp"
#include "prefopt/kernels/detail/plumbing.hpp"
#include "prefopt/kernels/options.hpp"

namespace prefopt::kernels {

/// The sampled estimators of ALGORITHMS.md §2.2 (prefopt's default is k1).
enum class kl_estimator : std::uint8_t { k1, k2, k3, abs };

/// Value of estimator `e` at d = l - lr.
template <class T>
[[nodiscard]] T kl_estimate(kl_estimator e, T d) noexcept {
  switch (e) {
    case kl_estimator::k1:
      return d;
    case kl_estimator::k2:
      return T(0.5) * d * d;
    case kl_estimator::k3: {
      const double x = static_cast<double>(d);
      if (std::abs(x) < 0.5) {
        // (e^{-x} - 1 + x) = x^2 sum_{n>=2} (-x)^{n-2} / n!, Horner to n = 18 (< 1e-17 relative).
        double c = 0;
        for (int n = 18; n >= 2; --n) {
          double inv_fact = 1;
          for (int k = 2; k <= n; ++k) inv_fact /= k;
          c = inv_fact + (-x) * c;
        }
        return static_cast<T>(x * x * c);
      }
      return static_cast<T>(std::expm1(-x) + x);
    }
    case kl_estimator::abs:
      return std::abs(d);
  }
  return d;
}

/// Derivative dk/dd of estimator `e` at d (dk/dl = dk/dd, dk/dlr = -dk/dd).
template <class T>
[[nodiscard]] T kl_estimate_derivative(kl_estimator e, T d) noexcept {
  switch (e) {
    case kl_estimator::k1:
      return T(1);
    case kl_estimator::k2:
      return d;
    case kl_estimator::k3:
      return static_cast<T>(-std::expm1(-static_cast<double>(d)));
    case kl_estimator::abs:
      return d > T(0) ? T(1) : (d < T(0) ? T(-1) : T(0));
  }
  return T(0);
}

namespace detail {
template <class T>
void check_estimator_inputs(const char* kernel, std::span<const T> lp, std::span<const T> lr,
                            std::size_t n_out, const options& opt) {
  const auto n = static_cast<index_t>(lp.size());
  PREFOPT_CHECK(lr.size() == lp.size(), shape_error, kernel, ": ref_log_probs has ", lr.size(),
                " entries, expected ", lp.size(), " (one per log_probs entry)");
  PREFOPT_CHECK(n_out == lp.size(), shape_error, kernel, ": output has ", n_out,
                " entries, expected ", lp.size());
  check_optional_rows(kernel, "mask", opt.mask.size(), n);
  for (index_t i = 0; i < n; ++i) {
    if (!row_on(opt.mask, i)) continue;
    const auto u = static_cast<std::size_t>(i);
    PREFOPT_CHECK(std::isfinite(lp[u]) && std::isfinite(lr[u]), invalid_argument, kernel,
                  ": log_probs[", i, "] = ", lp[u], ", ref_log_probs[", i, "] = ", lr[u],
                  ", expected finite log-probabilities");
  }
}

template <class T>
void sampled_kl_impl(kl_estimator e, std::span<const T> lp, std::span<const T> lr, std::span<T> out,
                     const options& opt) {
  check_estimator_inputs("sampled_kl", lp, lr, out.size(), opt);
  for (std::size_t u = 0; u < lp.size(); ++u) {
    out[u] = row_on(opt.mask, static_cast<index_t>(u)) ? kl_estimate(e, lp[u] - lr[u]) : T(0);
  }
}

template <class T>
void sampled_kl_backward_impl(kl_estimator e, std::span<const T> lp, std::span<const T> lr,
                              std::span<const T> grad, std::span<T> d_lp, std::span<T> d_lr,
                              const options& opt) {
  const char* kernel = "sampled_kl_backward";
  check_estimator_inputs(kernel, lp, lr, d_lp.size(), opt);
  PREFOPT_CHECK(grad.size() == lp.size(), shape_error, kernel, ": grad has ", grad.size(),
                " entries, expected ", lp.size());
  PREFOPT_CHECK(d_lr.empty() || d_lr.size() == lp.size(), shape_error, kernel,
                ": d_ref_log_probs has ", d_lr.size(), " entries, expected 0 or ", lp.size());
  const bool acc = opt.mode == write_mode::accumulate;
  for (std::size_t u = 0; u < lp.size(); ++u) {
    const T g = row_on(opt.mask, static_cast<index_t>(u))
                    ? grad[u] * kl_estimate_derivative(e, lp[u] - lr[u])
                    : T(0);
    d_lp[u] = acc ? d_lp[u] + g : g;
    if (!d_lr.empty()) d_lr[u] = acc ? d_lr[u] - g : -g;
  }
}
}  // namespace detail

/// out[t] = estimator(log_probs[t] - ref_log_probs[t]); all spans `[T]` (tokens).
inline void sampled_kl(kl_estimator e, std::span<const float> log_probs,
                       std::span<const float> ref_log_probs, std::span<float> out,
                       const options& opt = {}) {
  detail::sampled_kl_impl(e, log_probs, ref_log_probs, out, opt);
}
/// Double overload of `sampled_kl`.
inline void sampled_kl(kl_estimator e, std::span<const double> log_probs,
                       std::span<const double> ref_log_probs, std::span<double> out,
                       const options& opt = {}) {
  detail::sampled_kl_impl(e, log_probs, ref_log_probs, out, opt);
}

/// d_log_probs[t] (= or +=) grad[t] k'(d_t); d_ref_log_probs[t] (= or +=) -grad[t] k'(d_t) unless
/// empty (the reference is usually a stop-gradient, ALGORITHMS.md §0.2.5).
inline void sampled_kl_backward(kl_estimator e, std::span<const float> log_probs,
                                std::span<const float> ref_log_probs, std::span<const float> grad,
                                std::span<float> d_log_probs, std::span<float> d_ref_log_probs = {},
                                const options& opt = {}) {
  detail::sampled_kl_backward_impl(e, log_probs, ref_log_probs, grad, d_log_probs, d_ref_log_probs,
                                   opt);
}
/// Double overload of `sampled_kl_backward`.
inline void sampled_kl_backward(kl_estimator e, std::span<const double> log_probs,
                                std::span<const double> ref_log_probs, std::span<const double> grad,
                                std::span<double> d_log_probs,
                                std::span<double> d_ref_log_probs = {}, const options& opt = {}) {
  detail::sampled_kl_backward_impl(e, log_probs, ref_log_probs, grad, d_log_probs, d_ref_log_probs,
                                   opt);
}

}  // namespace prefopt::kernels
