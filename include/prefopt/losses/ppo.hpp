#pragma once
/// \file
/// PPO building blocks for language-model RLHF over ragged token sequences (ALGORITHMS.md §2):
/// per-token reward shaping, GAE with returns, masked whitening, the clipped policy surrogate and
/// clipped value loss with their gradients, diagnostics, and the fixed / adaptive KL controllers.
///
/// Papers: Proximal Policy Optimization Algorithms (arXiv 1707.06347); High-Dimensional Continuous
/// Control Using Generalized Advantage Estimation (arXiv 1506.02438); Fine-Tuning Language Models
/// from Human Preferences (Ziegler et al., arXiv 1909.08593; adaptive KL controller); Learning to
/// summarize from human feedback (arXiv 2009.01325); InstructGPT (arXiv 2203.02155).
///
/// Ragged layout: every `ragged_view` covers the *valid response tokens* of each sequence, so the
/// "mask" is the ragged structure itself (values outside every sequence are neither read nor
/// written). Views passed together must have the same layout (number of sequences and lengths).
/// Token-level losses take the flat valid tokens of a minibatch (e.g. `view.values` restricted to
/// the sequences) and return their *mean* (the masked mean of ALGORITHMS.md §0.2 item 4); gradients
/// are of that mean. Stop-gradient inputs: old log-probs, old values, rewards, advantages, returns,
/// reference log-probs.

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>

#include "prefopt/losses/common.hpp"
#include "prefopt/losses/kl_estimators.hpp"

namespace prefopt::losses {

/// Summary of `shape_rewards`.
template <class T>
struct reward_shaping_stats {
  T mean_sequence_kl = T(0);  ///< batch mean of `sum_t kl_t` (the chosen estimator)
  T mean_score = T(0);        ///< batch mean of the scores after the missing-EOS penalty
  T mean_kl_reward = T(0);    ///< batch mean of `-tau sum_t kl_t`
};

/// Per-token shaped rewards `rew_t = -tau * kl_t` with `kl_t = Estimator::value(l_t - lr_t)`, plus
/// the sequence score at the last real token `t = L`: `rew_L += score - penalty * [no EOS]`
/// (ALGORITHMS.md §2.2, prefopt placement). `Estimator` is `kl_k1` (default), `kl_k2`, `kl_k3` or
/// `kl_abs`.
///
/// - `policy_logps`, `reference_logps`: per-token log-probs of the sampled tokens (same layout).
/// - `scores`: `[B]` reward-model scores. `has_eos`: `[B]` flags (non-zero = the response ended
///   with EOS) or empty (every response has one); `missing_eos_penalty` (>= 0) is subtracted from
///   the score of responses without EOS (TRL).
/// - `rewards`: output, same layout. Every sequence needs at least one token (the score's slot).
template <class Estimator = kl_k1, class T>
reward_shaping_stats<T> shape_rewards(ragged_view<const T> policy_logps,
                                      ragged_view<const T> reference_logps,
                                      const detail::cref_t<T>& scores,
                                      std::span<const std::uint8_t> has_eos, double tau,
                                      double missing_eos_penalty, ragged_view<T> rewards) {
  constexpr const char* fn = "shape_rewards";
  policy_logps.validate(fn, "policy_logps");
  reference_logps.validate(fn, "reference_logps");
  rewards.validate(fn, "rewards");
  detail::check_same_layout(fn, "policy_logps", policy_logps, "reference_logps", reference_logps);
  detail::check_same_layout(fn, "policy_logps", policy_logps, "rewards", rewards);
  const index_t b = policy_logps.num_sequences();
  PREFOPT_CHECK(b > 0, shape_error, fn, ": the batch is empty, expected at least one sequence");
  detail::check_size(fn, "scores", scores.size(), b);
  if (!has_eos.empty()) detail::check_size(fn, "has_eos", static_cast<index_t>(has_eos.size()), b);
  detail::check_lower(fn, "tau", tau, 0.0, false);
  detail::check_lower(fn, "missing_eos_penalty", missing_eos_penalty, 0.0, false);
  detail::check_finite(fn, "scores", scores);
  const T t = static_cast<T>(tau);
  reward_shaping_stats<T> stats;
  for (index_t i = 0; i < b; ++i) {
    const auto l = policy_logps.sequence(i);
    const auto lr = reference_logps.sequence(i);
    const auto out = rewards.sequence(i);
    PREFOPT_CHECK(!l.empty(), shape_error, fn, ": sequence ", i,
                  " has no tokens, expected at least one (the score is added at the last token)");
    T kl_sum = T(0);
    for (std::size_t k = 0; k < l.size(); ++k) {
      PREFOPT_CHECK(std::isfinite(l[k]) && std::isfinite(lr[k]), invalid_argument, fn,
                    ": sequence ", i, " token ", k, ": log-probs (", l[k], ", ", lr[k],
                    "), expected finite values");
      const T kl = Estimator::value(l[k] - lr[k]);
      kl_sum += kl;
      out[k] = -t * kl;
    }
    T score = scores(i);
    if (!has_eos.empty() && has_eos[static_cast<std::size_t>(i)] == 0) {
      score -= static_cast<T>(missing_eos_penalty);
    }
    out[l.size() - 1] += score;
    stats.mean_sequence_kl += kl_sum;
    stats.mean_score += score;
    stats.mean_kl_reward += -t * kl_sum;
  }
  const T inv_b = T(1) / static_cast<T>(b);
  stats.mean_sequence_kl *= inv_b;
  stats.mean_score *= inv_b;
  stats.mean_kl_reward *= inv_b;
  return stats;
}

/// Batch mean of the sequence KL `sum_t Estimator::value(l_t - lr_t)`: with `kl_k1` (default) the
/// quantity the adaptive controller is fed (measured on the rollout batch before the PPO epochs).
template <class Estimator = kl_k1, class T>
[[nodiscard]] T mean_sequence_kl(ragged_view<const T> policy_logps,
                                 ragged_view<const T> reference_logps) {
  constexpr const char* fn = "mean_sequence_kl";
  policy_logps.validate(fn, "policy_logps");
  reference_logps.validate(fn, "reference_logps");
  detail::check_same_layout(fn, "policy_logps", policy_logps, "reference_logps", reference_logps);
  const index_t b = policy_logps.num_sequences();
  PREFOPT_CHECK(b > 0, shape_error, fn, ": the batch is empty, expected at least one sequence");
  T total = T(0);
  for (index_t i = 0; i < b; ++i) {
    const auto l = policy_logps.sequence(i);
    const auto lr = reference_logps.sequence(i);
    for (std::size_t k = 0; k < l.size(); ++k) total += Estimator::value(l[k] - lr[k]);
  }
  return total / static_cast<T>(b);
}

/// Generalized advantage estimation per sequence, backward over `t = L..1` with `V_{L+1} = 0`:
/// `delta_t = rew_t + gamma V_{t+1} - V_t`, `A_t = delta_t + gamma lambda A_{t+1}`,
/// `Ret_t = A_t + V_t` (returns from un-whitened advantages). `gamma`, `lambda` in [0, 1].
/// `lambda = 1` gives reward-to-go minus value (gamma = 1); `lambda = 0` the TD error.
/// All four views share one layout; `advantages` and `returns` are outputs.
template <class T>
void generalized_advantages(ragged_view<const T> rewards, ragged_view<const T> values, double gamma,
                            double lambda, ragged_view<T> advantages, ragged_view<T> returns) {
  constexpr const char* fn = "generalized_advantages";
  rewards.validate(fn, "rewards");
  values.validate(fn, "values");
  advantages.validate(fn, "advantages");
  returns.validate(fn, "returns");
  detail::check_same_layout(fn, "rewards", rewards, "values", values);
  detail::check_same_layout(fn, "rewards", rewards, "advantages", advantages);
  detail::check_same_layout(fn, "rewards", rewards, "returns", returns);
  PREFOPT_CHECK(gamma >= 0.0 && gamma <= 1.0, invalid_argument, fn, ": gamma = ", gamma,
                ", expected a value in [0, 1]");
  PREFOPT_CHECK(lambda >= 0.0 && lambda <= 1.0, invalid_argument, fn, ": lambda = ", lambda,
                ", expected a value in [0, 1]");
  const T g = static_cast<T>(gamma);
  const T gl = static_cast<T>(gamma * lambda);
  for (index_t i = 0; i < rewards.num_sequences(); ++i) {
    const auto r = rewards.sequence(i);
    const auto v = values.sequence(i);
    const auto a = advantages.sequence(i);
    const auto ret = returns.sequence(i);
    T next_value = T(0);
    T next_advantage = T(0);
    for (std::size_t k = r.size(); k-- > 0;) {
      const T delta = r[k] + g * next_value - v[k];
      next_advantage = delta + gl * next_advantage;
      next_value = v[k];
      a[k] = next_advantage;
      ret[k] = next_advantage + v[k];
    }
  }
}

/// Masked whitening over every token of every sequence (ALGORITHMS.md §2.3 items 1 and 3):
/// `x <- (x - mean) / sqrt(var + eps)`, `var` Bessel-corrected (divides by count - 1), `eps = 1e-8`
/// by default. `shift_mean = false` adds the mean back (the OpenAI reward whitening
/// `(x - mean)/std + mean`). Needs at least 2 tokens. Accumulates in double.
template <class T>
void whiten(ragged_view<T> values, bool shift_mean = true, double eps = 1e-8) {
  constexpr const char* fn = "whiten";
  values.validate(fn, "values");
  detail::check_lower(fn, "eps", eps, 0.0, false);
  double sum = 0.0;
  index_t count = 0;
  for (index_t i = 0; i < values.num_sequences(); ++i) {
    for (const T x : values.sequence(i)) {
      PREFOPT_CHECK(std::isfinite(x), invalid_argument, fn, ": sequence ", i, " holds ", x,
                    ", expected finite values");
      sum += static_cast<double>(x);
      ++count;
    }
  }
  PREFOPT_CHECK(count >= 2, invalid_argument, fn, ": ", count,
                " valid tokens, expected at least 2 (Bessel-corrected variance)");
  const double mean = sum / static_cast<double>(count);
  double ss = 0.0;
  for (index_t i = 0; i < values.num_sequences(); ++i) {
    for (const T x : values.sequence(i)) {
      const double d = static_cast<double>(x) - mean;
      ss += d * d;
    }
  }
  const double inv_std = 1.0 / std::sqrt(ss / static_cast<double>(count - 1) + eps);
  const double back = shift_mean ? 0.0 : mean;
  for (index_t i = 0; i < values.num_sequences(); ++i) {
    for (T& x : values.sequence(i)) {
      x = static_cast<T>((static_cast<double>(x) - mean) * inv_std + back);
    }
  }
}

/// Statistics of `ppo_policy_loss`.
template <class T>
struct ppo_policy_stats {
  T loss = T(0);           ///< `L_pg` (token mean)
  T clip_fraction = T(0);  ///< fraction of tokens where the clipped term is strictly larger
  T approx_kl = T(0);      ///< `0.5 mean (l_new - l_old)^2`
  T mean_ratio = T(0);     ///< mean `exp(l_new - l_old)`
};

/// Clipped surrogate `L_pg = mean_t max(-A_t rho_t, -A_t clip(rho_t, 1-eps_clip, 1+eps_clip))`,
/// `rho_t = exp(l_new_t - l_old_t)` over `N` valid tokens (flat `[N]` arrays).
/// `grad_new_logps[t] = dL_pg/dl_new_t = -A_t rho_t / N` where the unclipped term is selected
/// (ties included), and exactly 0 in the clipped region. Scalar type explicit:
/// `ppo_policy_loss<float>(...)`.
template <class T>
ppo_policy_stats<T> ppo_policy_loss(const detail::cref_t<T>& new_logps,
                                    const detail::cref_t<T>& old_logps,
                                    const detail::cref_t<T>& advantages, double eps_clip,
                                    detail::ref_t<T> grad_new_logps) {
  constexpr const char* fn = "ppo_policy_loss";
  const index_t n = new_logps.size();
  PREFOPT_CHECK(n > 0, shape_error, fn, ": new_logps is empty, expected at least one token");
  detail::check_size(fn, "old_logps", old_logps.size(), n);
  detail::check_size(fn, "advantages", advantages.size(), n);
  detail::check_size(fn, "grad_new_logps", grad_new_logps.size(), n);
  PREFOPT_CHECK(eps_clip > 0.0 && eps_clip < 1.0, invalid_argument, fn, ": eps_clip = ", eps_clip,
                ", expected a value in (0, 1)");
  detail::check_finite(fn, "new_logps", new_logps);
  detail::check_finite(fn, "old_logps", old_logps);
  detail::check_finite(fn, "advantages", advantages);
  const T lo = static_cast<T>(1.0 - eps_clip);
  const T hi = static_cast<T>(1.0 + eps_clip);
  const T inv_n = T(1) / static_cast<T>(n);
  ppo_policy_stats<T> s;
  for (index_t t = 0; t < n; ++t) {
    const T d = new_logps(t) - old_logps(t);
    const T ratio = std::exp(d);
    const T a = advantages(t);
    const T unclipped = -a * ratio;
    const T clipped = -a * std::clamp(ratio, lo, hi);
    if (unclipped >= clipped) {
      s.loss += unclipped;
      grad_new_logps(t) = unclipped * inv_n;
    } else {
      s.loss += clipped;
      s.clip_fraction += T(1);
      grad_new_logps(t) = T(0);
    }
    s.approx_kl += d * d;
    s.mean_ratio += ratio;
  }
  s.loss *= inv_n;
  s.clip_fraction *= inv_n;
  s.approx_kl *= inv_n / T(2);
  s.mean_ratio *= inv_n;
  return s;
}

/// Statistics of `ppo_value_loss`.
template <class T>
struct ppo_value_stats {
  T loss = T(0);           ///< `L_vf` (token mean, with the 1/2)
  T clip_fraction = T(0);  ///< fraction of tokens where the clipped term is strictly larger
};

/// Clipped value loss `L_vf = 0.5 mean_t max((V_new - Ret)^2, (clip(V_new, V_old - eps_v,
/// V_old + eps_v) - Ret)^2)` over `N` valid tokens. `grad_new_values[t] = (V_new - Ret)/N` where
/// the unclipped term is selected, else 0 (the clipped value is constant in `V_new` there).
/// Scalar type explicit.
template <class T>
ppo_value_stats<T> ppo_value_loss(const detail::cref_t<T>& new_values,
                                  const detail::cref_t<T>& old_values,
                                  const detail::cref_t<T>& returns, double eps_v,
                                  detail::ref_t<T> grad_new_values) {
  constexpr const char* fn = "ppo_value_loss";
  const index_t n = new_values.size();
  PREFOPT_CHECK(n > 0, shape_error, fn, ": new_values is empty, expected at least one token");
  detail::check_size(fn, "old_values", old_values.size(), n);
  detail::check_size(fn, "returns", returns.size(), n);
  detail::check_size(fn, "grad_new_values", grad_new_values.size(), n);
  detail::check_lower(fn, "eps_v", eps_v, 0.0, true);
  detail::check_finite(fn, "new_values", new_values);
  detail::check_finite(fn, "old_values", old_values);
  detail::check_finite(fn, "returns", returns);
  const T e = static_cast<T>(eps_v);
  const T inv_n = T(1) / static_cast<T>(n);
  ppo_value_stats<T> s;
  for (index_t t = 0; t < n; ++t) {
    const T v = new_values(t);
    const T unclipped = (v - returns(t)) * (v - returns(t));
    const T vc = std::clamp(v, old_values(t) - e, old_values(t) + e);
    const T clipped = (vc - returns(t)) * (vc - returns(t));
    if (unclipped >= clipped) {
      s.loss += unclipped;
      grad_new_values(t) = (v - returns(t)) * inv_n;
    } else {
      s.loss += clipped;
      s.clip_fraction += T(1);
      grad_new_values(t) = T(0);
    }
  }
  s.loss *= inv_n / T(2);
  s.clip_fraction *= inv_n;
  return s;
}

/// A constant KL coefficient `tau` (recent TRL, `kl_coef = 0.05`). Same interface as
/// `adaptive_kl_controller`; `update` does nothing.
class fixed_kl_controller {
 public:
  explicit fixed_kl_controller(double tau) : tau_(tau) {
    detail::check_lower("fixed_kl_controller", "tau", tau, 0.0, false);
  }
  [[nodiscard]] double coefficient() const noexcept { return tau_; }
  void update(double /*kl*/, index_t /*n_steps*/) noexcept {}

 private:
  double tau_;
};

/// The log-space proportional KL controller of Ziegler et al. (arXiv 1909.08593), in the code form
/// of `openai/lm-human-preferences` and TRL <= v0.11:
/// `err = clip(KL/target - 1, -0.2, 0.2)`, `tau <- tau (1 + err * n_steps/horizon)`,
/// with `KL` the batch mean of sequence k1 sums and `n_steps` the episodes in the batch.
/// The paper's gain `K_p` (`tau <- tau (1 + K_p e)`) is `horizon = horizon_for_gain(n_steps, K_p)
/// = n_steps / K_p`. Defaults (TRL v0.11): `tau_0 = 0.2`, `target = 6`, `horizon = 10000`.
class adaptive_kl_controller {
 public:
  adaptive_kl_controller(double initial_tau = 0.2, double target = 6.0, double horizon = 10000.0)
      : tau_(initial_tau), target_(target), horizon_(horizon) {
    constexpr const char* fn = "adaptive_kl_controller";
    detail::check_lower(fn, "initial_tau", initial_tau, 0.0, true);
    detail::check_lower(fn, "target", target, 0.0, true);
    detail::check_lower(fn, "horizon", horizon, 0.0, true);
  }

  /// `horizon` that makes the code form's per-step gain `n_steps/horizon` equal the paper's `K_p`.
  [[nodiscard]] static double horizon_for_gain(index_t n_steps, double k_p) {
    PREFOPT_CHECK(n_steps > 0, invalid_argument,
                  "adaptive_kl_controller::horizon_for_gain: n_steps = ", n_steps,
                  ", expected > 0");
    detail::check_lower("adaptive_kl_controller::horizon_for_gain", "k_p", k_p, 0.0, true);
    return static_cast<double>(n_steps) / k_p;
  }

  [[nodiscard]] double coefficient() const noexcept { return tau_; }
  [[nodiscard]] double target() const noexcept { return target_; }
  [[nodiscard]] double horizon() const noexcept { return horizon_; }

  /// One update after a PPO step: `kl` = measured KL (finite), `n_steps` = episodes in the batch.
  void update(double kl, index_t n_steps) {
    constexpr const char* fn = "adaptive_kl_controller::update";
    PREFOPT_CHECK(std::isfinite(kl), invalid_argument, fn, ": kl = ", kl, ", expected finite");
    PREFOPT_CHECK(n_steps >= 0, invalid_argument, fn, ": n_steps = ", n_steps, ", expected >= 0");
    const double err = std::clamp(kl / target_ - 1.0, -0.2, 0.2);
    tau_ *= 1.0 + err * static_cast<double>(n_steps) / horizon_;
  }

 private:
  double tau_;
  double target_;
  double horizon_;
};

}  // namespace prefopt::losses
