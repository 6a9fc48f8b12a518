#pragma once
/// \file
/// Nash-learning losses as pure functions with gradients:
/// - the Nash-MD-PG per-sequence policy-gradient surrogate (ALGORITHMS.md §6; Nash Learning from
///   Human Feedback, Munos et al., arXiv 2312.00886; TRL `NashMDTrainer` as an option),
/// - the exact tabular gradient `pi ⊙ (h - <pi, h>)` of the regularised preference (§6),
/// - the INPO squared loss with its reference and previous-iterate anchors (§7.2; Iterative Nash
///   Policy Optimization, arXiv 2407.00617),
/// - the ONPO squared loss with its auxiliary-policy anchor (§8.3; Improving LLM General Preference
///   Alignment via Optimistic Online Mirror Descent, arXiv 2502.16852).
///
/// Sequence log-probs are sums over response tokens. `eta` is always a step size (never its
/// inverse; `eta_from_inverse` converts published INPO/ONPO values).

#include <Eigen/Core>

#include <cmath>
#include <cstdint>
#include <span>

#include "prefopt/losses/common.hpp"

namespace prefopt::losses {

/// Which KL terms multiply `grad l_n` in the Nash-MD-PG surrogate.
enum class kl_credit {
  reward_to_go,   ///< `tau sum_{m >= n} d_m` (App. F.2, unbiased; prefopt default)
  same_position,  ///< `tau d_n` only (TRL >= v0.12, a biased per-token surrogate)
};

/// Summary of `nash_md_pg_surrogate`.
template <class T>
struct nash_pg_stats {
  T loss = T(0);              ///< the reduced surrogate value
  T mean_advantage = T(0);    ///< batch mean of `P(y > y') - 1/2`
  T mean_sequence_kl = T(0);  ///< batch mean of `sum_t d_t`
};

/// Nash-MD-PG surrogate. For sequence `i` with per-token log-ratios `d_t = l_t - lr_t` and
/// preference `p_i = P(y_i > y'_i)` (a probability, or the 0/1 oracle outcome):
///
///     loss_i = -sum_n sg(p_i - 1/2 - tau c_n) l_n,
///     c_n = sum_{m >= n} d_m (reward_to_go)   or   c_n = d_n (same_position, TRL),
///
/// reduced over sequences by `reduce`. The multiplier is a stop-gradient, so
/// `token_grads[n] = dloss/dl_n = -(p_i - 1/2 - tau c_n) * scale`; its expectation over
/// `y ~ pi_theta`, `y' ~ pi'` is minus the gradient of `P_tau(pi_theta > pi')`.
/// Views (`policy_logps`, `reference_logps`, `token_grads`) share one layout of response tokens;
/// `preferences` is `[B]` in [0, 1]; `tau >= 0`.
template <class T>
nash_pg_stats<T> nash_md_pg_surrogate(ragged_view<const T> policy_logps,
                                      ragged_view<const T> reference_logps,
                                      const detail::cref_t<T>& preferences, double tau,
                                      ragged_view<T> token_grads,
                                      kl_credit credit = kl_credit::reward_to_go,
                                      reduction reduce = reduction::mean) {
  constexpr const char* fn = "nash_md_pg_surrogate";
  policy_logps.validate(fn, "policy_logps");
  reference_logps.validate(fn, "reference_logps");
  token_grads.validate(fn, "token_grads");
  detail::check_same_layout(fn, "policy_logps", policy_logps, "reference_logps", reference_logps);
  detail::check_same_layout(fn, "policy_logps", policy_logps, "token_grads", token_grads);
  const index_t b = policy_logps.num_sequences();
  PREFOPT_CHECK(b > 0, shape_error, fn, ": the batch is empty, expected at least one sequence");
  detail::check_size(fn, "preferences", preferences.size(), b);
  detail::check_lower(fn, "tau", tau, 0.0, false);
  const T t = static_cast<T>(tau);
  const T scale = detail::reduction_scale<T>(reduce, b);
  nash_pg_stats<T> s;
  for (index_t i = 0; i < b; ++i) {
    const T p = preferences(i);
    PREFOPT_CHECK(p >= T(0) && p <= T(1), invalid_argument, fn, ": preferences[", i, "] = ", p,
                  ", expected a probability in [0, 1]");
    const auto l = policy_logps.sequence(i);
    const auto lr = reference_logps.sequence(i);
    const auto g = token_grads.sequence(i);
    T to_go = T(0);
    T loss = T(0);
    for (std::size_t k = l.size(); k-- > 0;) {
      PREFOPT_CHECK(std::isfinite(l[k]) && std::isfinite(lr[k]), invalid_argument, fn,
                    ": sequence ", i, " token ", k, ": log-probs (", l[k], ", ", lr[k],
                    "), expected finite values");
      const T d = l[k] - lr[k];
      to_go += d;
      const T multiplier = p - T(0.5) - t * (credit == kl_credit::reward_to_go ? to_go : d);
      loss -= multiplier * l[k];
      g[k] = -multiplier * scale;
    }
    s.loss += loss;
    s.mean_advantage += p - T(0.5);
    s.mean_sequence_kl += to_go;
  }
  const T inv_b = T(1) / static_cast<T>(b);
  s.loss *= scale;
  s.mean_advantage *= inv_b;
  s.mean_sequence_kl *= inv_b;
  return s;
}

/// Regularised preference of a tabular policy against a fixed opponent, one context:
/// `P_tau(pi > pi') - 1/2 + tau KL(pi', mu) = pi^T P pi' - tau KL(pi, mu)` (the part that depends
/// on `pi`). `pi`, `pi_opponent`, `mu`: `[n]` distributions (`mu > 0`); `P`: `[n, n]`.
[[nodiscard]] inline double tabular_regularized_preference(
    const Eigen::Ref<const vector_d>& pi, const Eigen::Ref<const matrix_d>& P,
    const Eigen::Ref<const vector_d>& pi_opponent, const Eigen::Ref<const vector_d>& mu,
    double tau) {
  constexpr const char* fn = "tabular_regularized_preference";
  const index_t n = pi.size();
  PREFOPT_CHECK(P.rows() == n && P.cols() == n, shape_error, fn, ": P is ", P.rows(), "x", P.cols(),
                ", expected ", n, "x", n);
  detail::check_size(fn, "pi_opponent", pi_opponent.size(), n);
  detail::check_size(fn, "mu", mu.size(), n);
  double kl = 0.0;
  for (index_t y = 0; y < n; ++y) {
    if (pi(y) > 0.0) kl += pi(y) * (std::log(pi(y)) - std::log(mu(y)));
  }
  return pi.dot(P * pi_opponent) - tau * kl;
}

/// Exact gradient of `P_tau(pi_theta > pi')` with respect to the logits `theta` of
/// `pi = softmax(theta)` (ALGORITHMS.md §6): with `h = P pi' - tau (log pi - log mu)`,
/// `grad = pi ⊙ (h - <pi, h>)`. Components sum to 0. `pi > 0`, `mu > 0`; writes `[n]` into `out`.
inline void tabular_nash_gradient(const Eigen::Ref<const vector_d>& pi,
                                  const Eigen::Ref<const matrix_d>& P,
                                  const Eigen::Ref<const vector_d>& pi_opponent,
                                  const Eigen::Ref<const vector_d>& mu, double tau,
                                  Eigen::Ref<vector_d> out) {
  constexpr const char* fn = "tabular_nash_gradient";
  const index_t n = pi.size();
  PREFOPT_CHECK(P.rows() == n && P.cols() == n, shape_error, fn, ": P is ", P.rows(), "x", P.cols(),
                ", expected ", n, "x", n);
  detail::check_size(fn, "pi_opponent", pi_opponent.size(), n);
  detail::check_size(fn, "mu", mu.size(), n);
  detail::check_size(fn, "out", out.size(), n);
  detail::check_lower(fn, "tau", tau, 0.0, false);
  for (index_t y = 0; y < n; ++y) {
    PREFOPT_CHECK(pi(y) > 0.0 && mu(y) > 0.0, invalid_argument, fn, ": pi[", y, "] = ", pi(y),
                  ", mu[", y, "] = ", mu(y), ", expected positive probabilities");
  }
  const vector_d h = P * pi_opponent - tau * (pi.array().log() - mu.array().log()).matrix();
  out = (pi.array() * (h.array() - pi.dot(h))).matrix();
}

/// Per-token geometric-mixture logits of the Nash-MD-PG opponent (ALGORITHMS.md §6, App. F.1;
/// TRL `GeometricMixtureWrapper`): `out = (1 - beta_mix) z_theta + beta_mix z_mu`, then softmax.
/// `beta_mix = 0` gives the policy's logits, `beta_mix = 1` the reference's (exactly). Tabular:
/// `log pi^{beta_mix} = (1 - beta_mix) log pi + beta_mix log mu + c` with `c = -log sum_y
/// pi^{1-beta_mix} mu^{beta_mix}`, so `KL(pi, pi^{beta_mix}) = beta_mix KL(pi, mu) - c`.
/// `beta_mix` in [0, 1]; `z_theta`, `z_mu`, `out` have equal sizes (`out` may alias an input).
template <class T>
void mixture_logits(const detail::cref_t<T>& z_theta, const detail::cref_t<T>& z_mu,
                    double beta_mix, detail::ref_t<T> out) {
  constexpr const char* fn = "mixture_logits";
  detail::check_size(fn, "z_mu", z_mu.size(), z_theta.size());
  detail::check_size(fn, "out", out.size(), z_theta.size());
  PREFOPT_CHECK(beta_mix >= 0.0 && beta_mix <= 1.0, invalid_argument, fn, ": beta_mix = ", beta_mix,
                ", expected a value in [0, 1]");
  const T b = static_cast<T>(beta_mix);
  if (beta_mix == 0.0) {
    out = z_theta;
  } else if (beta_mix == 1.0) {
    out = z_mu;
  } else {
    out = (T(1) - b) * z_theta + b * z_mu;
  }
}

/// `eta = 1 / eta_inv`: converts the inverse step sizes some INPO / ONPO sources report
/// (e.g. `eta_inv = 7.5e-3` gives `eta = 133.3`).
[[nodiscard]] inline double eta_from_inverse(double eta_inv) {
  detail::check_lower("eta_from_inverse", "eta_inv", eta_inv, 0.0, true);
  return 1.0 / eta_inv;
}

namespace detail {
/// `loss_i = (h_i - target)^2`, `h_i = (S_w - S_l) - c_ref (R_w - R_l) - c_anchor (A_w - A_l)`.
template <class T>
T anchored_squared_loss(const char* fn, const cref_t<T>& s_w, const cref_t<T>& s_l,
                        const cref_t<T>& r_w, const cref_t<T>& r_l, const cref_t<T>& a_w,
                        const cref_t<T>& a_l, T c_ref, T c_anchor, T target, ref_t<T> grad_w,
                        ref_t<T> grad_l, reduction reduce) {
  const index_t n = s_w.size();
  PREFOPT_CHECK(n > 0, shape_error, fn, ": policy_chosen is empty, expected at least one pair");
  check_size(fn, "policy_rejected", s_l.size(), n);
  if (c_ref != T(0)) {
    check_size(fn, "reference_chosen", r_w.size(), n);
    check_size(fn, "reference_rejected", r_l.size(), n);
    check_finite(fn, "reference_chosen", r_w);
    check_finite(fn, "reference_rejected", r_l);
  }
  check_size(fn, "anchor_chosen", a_w.size(), n);
  check_size(fn, "anchor_rejected", a_l.size(), n);
  check_size(fn, "grad_chosen", grad_w.size(), n);
  check_size(fn, "grad_rejected", grad_l.size(), n);
  check_finite(fn, "policy_chosen", s_w);
  check_finite(fn, "policy_rejected", s_l);
  check_finite(fn, "anchor_chosen", a_w);
  check_finite(fn, "anchor_rejected", a_l);
  const T scale = reduction_scale<T>(reduce, n);
  T total = T(0);
  for (index_t i = 0; i < n; ++i) {
    T h = (s_w(i) - s_l(i)) - c_anchor * (a_w(i) - a_l(i));
    if (c_ref != T(0)) h -= c_ref * (r_w(i) - r_l(i));
    const T d = h - target;
    total += d * d;
    grad_w(i) = T(2) * d * scale;
    grad_l(i) = -T(2) * d * scale;
  }
  return total * scale;
}
}  // namespace detail

/// INPO loss (ALGORITHMS.md §7.2) on oracle-labelled pairs `(y_w, y_l)` sampled from `pi_t`:
///
///     h = log(pi(y_w)/pi(y_l)) - eta tau log(pi_ref(y_w)/pi_ref(y_l))
///         - (1 - eta tau) log(pi_t(y_w)/pi_t(y_l)),      loss_i = (h - eta/2)^2,
///
/// reduced by `reduce`. Inputs are `[N]` sequence log-prob sums of the trained policy
/// (`policy_*`), the reference (`reference_*`) and the previous iterate `pi_t` (`anchor_*`);
/// gradients with respect to the policy sums go to `grad_chosen` / `grad_rejected`
/// (`±2 (h - eta/2) * scale`). Requires `eta > 0`, `tau >= 0`, `eta tau <= 1`. Returns the loss.
/// Its minimiser over tabular policies is `pi_t^{1-eta tau} pi_ref^{eta tau} exp(eta P pi_t)`.
template <class T>
T inpo_loss(const detail::cref_t<T>& policy_chosen, const detail::cref_t<T>& policy_rejected,
            const detail::cref_t<T>& reference_chosen, const detail::cref_t<T>& reference_rejected,
            const detail::cref_t<T>& anchor_chosen, const detail::cref_t<T>& anchor_rejected,
            double eta, double tau, detail::ref_t<T> grad_chosen, detail::ref_t<T> grad_rejected,
            reduction reduce = reduction::mean) {
  constexpr const char* fn = "inpo_loss";
  detail::check_lower(fn, "eta", eta, 0.0, true);
  detail::check_lower(fn, "tau", tau, 0.0, false);
  PREFOPT_CHECK(eta * tau <= 1.0, invalid_argument, fn, ": eta * tau = ", eta * tau,
                ", expected <= 1");
  const double c = eta * tau;
  if (c == 0.0) {  // the reference term vanishes; still validate shapes the caller gave
    detail::check_size(fn, "reference_chosen", reference_chosen.size(), policy_chosen.size());
    detail::check_size(fn, "reference_rejected", reference_rejected.size(), policy_chosen.size());
  }
  return detail::anchored_squared_loss<T>(
      fn, policy_chosen, policy_rejected, reference_chosen, reference_rejected, anchor_chosen,
      anchor_rejected, static_cast<T>(c), static_cast<T>(1.0 - c), static_cast<T>(eta / 2.0),
      grad_chosen, grad_rejected, reduce);
}

/// ONPO loss (ALGORITHMS.md §8.3): `g = log(pi(y_w)/pi(y_l)) - log(pi'(y_w)/pi'(y_l))`,
/// `loss_i = (g - eta/2)^2`, reduced by `reduce`; `anchor_*` are the sequence log-probs of the
/// anchor policy (`pi'_t` for the auxiliary update, `pi'_{t+1}` for the played one). `eta > 0`.
/// Gradients with respect to the policy sums go to `grad_chosen` / `grad_rejected`. Its tabular
/// minimiser is `pi ∝ pi' exp(eta P pi_{t-1})` (pairs from `pi_{t-1}`). Returns the loss.
template <class T>
T onpo_loss(const detail::cref_t<T>& policy_chosen, const detail::cref_t<T>& policy_rejected,
            const detail::cref_t<T>& anchor_chosen, const detail::cref_t<T>& anchor_rejected,
            double eta, detail::ref_t<T> grad_chosen, detail::ref_t<T> grad_rejected,
            reduction reduce = reduction::mean) {
  constexpr const char* fn = "onpo_loss";
  detail::check_lower(fn, "eta", eta, 0.0, true);
  const vector_t<T> none;
  return detail::anchored_squared_loss<T>(
      fn, policy_chosen, policy_rejected, none, none, anchor_chosen, anchor_rejected, T(0), T(1),
      static_cast<T>(eta / 2.0), grad_chosen, grad_rejected, reduce);
}

}  // namespace prefopt::losses
