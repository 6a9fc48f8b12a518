#pragma once
/// \file
/// Step-size schedules `eta_t` of the tabular mirror-descent solvers; `t` counts completed steps
/// from 0. A schedule is any type with `double eta(index t, double tau) const`.
/// - `theory_step`: `eta_t = 2 / (tau (t + 2))`, the schedule of Nash-MD's Theorem 1 (Nash Learning
///   from Human Feedback, arXiv 2312.00886), giving `KL(pi*_tau, pi_T) <= 8 / (tau^2 (T + 1))`;
///   needs `tau > 0`; `eta_0 tau = 1` erases the initial condition.
/// - `constant_step`: `eta_t = eta`; `constant_step::for_horizon(D, T)` is `sqrt(D / T)`, the
///   self-play MWU choice of ONPO's Theorem 1 (arXiv 2502.16852).
/// - `custom_step<F>`: `eta_t = f(t)` for a user callable.
/// The solvers check `eta_t > 0` (and `eta_t tau <= 1` where the update requires it) every step.
///
/// Learning-rate schedules of the gradient-based trainers (`warmup_cosine_schedule`, used by
/// `solvers/sft.hpp`) have `double learning_rate(index t) const` instead.

#include <algorithm>
#include <cmath>
#include <numbers>
#include <utility>

#include "prefopt/core/assert.hpp"
#include "prefopt/core/types.hpp"

namespace prefopt {

/// `eta_t = 2 / (tau (t + 2))` (Nash-MD Theorem 1).
struct theory_step {
  [[nodiscard]] double eta(index_t t, double tau) const {
    PREFOPT_CHECK(tau > 0.0, invalid_argument, "theory_step: tau = ", tau,
                  ", expected tau > 0 (eta_t = 2 / (tau (t + 2)))");
    return 2.0 / (tau * static_cast<double>(t + 2));
  }
};

/// `eta_t = eta`.
struct constant_step {
  double value = 0.5;

  constant_step() = default;
  explicit constant_step(double eta) : value(eta) {
    PREFOPT_CHECK(std::isfinite(eta) && eta > 0.0, invalid_argument, "constant_step: eta = ", eta,
                  ", expected a finite eta > 0");
  }
  /// `eta = sqrt(D / T)` for a KL radius `D > 0` and horizon `T > 0` (ONPO Thm 1).
  static constant_step for_horizon(double d, index_t horizon) {
    PREFOPT_CHECK(d > 0.0 && horizon > 0, invalid_argument, "constant_step::for_horizon: D = ", d,
                  ", T = ", horizon, ", expected D > 0 and T > 0");
    return constant_step(std::sqrt(d / static_cast<double>(horizon)));
  }
  /// From a published inverse step size `eta_inv = 1 / eta` (INPO / ONPO grids).
  static constant_step from_inverse_eta(double eta_inv) {
    PREFOPT_CHECK(std::isfinite(eta_inv) && eta_inv > 0.0, invalid_argument,
                  "constant_step::from_inverse_eta: eta_inv = ", eta_inv, ", expected > 0");
    return constant_step(1.0 / eta_inv);
  }
  [[nodiscard]] double eta(index_t /*t*/, double /*tau*/) const noexcept { return value; }
};

/// `eta_t = f(t)` for a callable `double f(index t)`.
template <class F>
struct custom_step {
  F f;
  [[nodiscard]] double eta(index_t t, double /*tau*/) const { return static_cast<double>(f(t)); }
};
template <class F>
custom_step(F) -> custom_step<F>;

/// Linear warmup, then cosine decay (Loshchilov and Hutter, "SGDR: Stochastic Gradient Descent
/// with Warm Restarts", arXiv 1608.03983, without restarts; the warmup of Goyal et al., arXiv
/// 1706.02677). With `t` completed steps (0 for the first step), `W = warmup_steps`,
/// `D = decay_steps`, `eta = peak`, `eta_min = final_ratio * peak`:
///
///     lr(t) = eta (t + 1) / W                                       t < W
///     lr(t) = eta_min + (eta - eta_min) (1 + cos(pi p)) / 2,        p = min(1, (t - W) / D)
///
/// and `lr(t) = eta` after the warmup when `D = 0` (no decay). Every value is > 0.
struct warmup_cosine_schedule {
  double peak = 1e-3;        ///< eta: finite, > 0
  index_t warmup_steps = 0;  ///< W >= 0
  index_t decay_steps = 0;   ///< D >= 0; 0: constant after the warmup
  double final_ratio = 0.1;  ///< eta_min / eta, in (0, 1]

  /// Throws `prefopt::invalid_argument` naming `function`, `prefix` and the bad field.
  void validate(const char* function, const char* prefix = "schedule") const {
    PREFOPT_CHECK(std::isfinite(peak) && peak > 0.0, invalid_argument, function, ": ", prefix,
                  ".peak = ", peak, ", expected a finite value > 0");
    PREFOPT_CHECK(warmup_steps >= 0, invalid_argument, function, ": ", prefix,
                  ".warmup_steps = ", warmup_steps, ", expected >= 0");
    PREFOPT_CHECK(decay_steps >= 0, invalid_argument, function, ": ", prefix,
                  ".decay_steps = ", decay_steps, ", expected >= 0 (0: no decay)");
    PREFOPT_CHECK(final_ratio > 0.0 && final_ratio <= 1.0, invalid_argument, function, ": ", prefix,
                  ".final_ratio = ", final_ratio, ", expected a value in (0, 1]");
  }

  /// lr(t) for `t >= 0` completed steps.
  [[nodiscard]] double learning_rate(index_t t) const noexcept {
    if (t < warmup_steps) {
      return peak * static_cast<double>(t + 1) / static_cast<double>(warmup_steps);
    }
    if (decay_steps == 0) return peak;
    const double p =
        std::min(1.0, static_cast<double>(t - warmup_steps) / static_cast<double>(decay_steps));
    const double low = final_ratio * peak;
    return low + (peak - low) * 0.5 * (1.0 + std::cos(std::numbers::pi * p));
  }
};

namespace detail {
/// Checks one step size: `eta > 0` finite and, when `require_eta_tau`, `eta tau <= 1`.
inline void check_step(const char* solver, double eta, double tau, index_t t,
                       bool require_eta_tau) {
  PREFOPT_CHECK(std::isfinite(eta) && eta > 0.0, invalid_argument, solver, ": step ", t,
                ": eta = ", eta, ", expected a finite eta > 0");
  PREFOPT_CHECK(!require_eta_tau || eta * tau <= 1.0 + 1e-12, invalid_argument, solver, ": step ",
                t, ": eta * tau = ", eta * tau, " (eta = ", eta, ", tau = ", tau,
                "), expected eta * tau <= 1");
}
}  // namespace detail

}  // namespace prefopt
