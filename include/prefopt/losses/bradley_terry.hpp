#pragma once
/// \file
/// Bradley-Terry reward-model losses (ALGORITHMS.md §1), their gradients with respect to the
/// rewards, the metrics practitioners log, the Elo helpers and post-training normalisation.
///
/// Papers: Fine-Tuning Language Models from Human Preferences (Ziegler et al., arXiv 1909.08593);
/// Training language models to follow instructions with human feedback (InstructGPT, arXiv
/// 2203.02155); Training a Helpful and Harmless Assistant with RLHF (Bai et al., arXiv 2204.05862);
/// Llama 2 (arXiv 2307.09288, margin); Helping or Herding? (Eisenstein et al., arXiv 2312.09244,
/// reward centring).
///
/// Functions on Eigen `Ref`s take the scalar type explicitly (`bradley_terry_loss<double>(...)`:
/// a `Ref` parameter does not deduce it); `bradley_terry_loss` also has overloads on plain
/// `vector_t<T>` (`vector_d`, `vector_f`) that deduce it, with or without a margin. All write
/// gradients of the returned, reduced loss into caller buffers.

#include <Eigen/Core>

#include <array>
#include <cmath>
#include <numbers>
#include <span>
#include <string_view>
#include <type_traits>
#include <utility>

#include "prefopt/core/math.hpp"
#include "prefopt/losses/common.hpp"

namespace prefopt::losses {

/// Options of `bradley_terry_loss`.
struct bradley_terry_options {
  /// Reward-centring weight `c_center` (Eisenstein et al.): adds `c_center * (r_w + r_l)^2` per
  /// pair. Off by default; 0.01 is the recommended value.
  double c_center = 0.0;
  reduction reduce = reduction::mean;
};

/// Metrics of a Bradley-Terry batch (TRL RewardTrainer names in `named()`).
template <class T>
struct reward_model_metrics {
  T loss = T(0);                  ///< the reduced loss
  T accuracy = T(0);              ///< fraction of pairs with `r_w > r_l` (ties count as wrong)
  T margin = T(0);                ///< mean `r_w - r_l`
  T mean_reward = T(0);           ///< mean of all `2N` rewards
  T mean_reward_chosen = T(0);    ///< mean `r_w`
  T mean_reward_rejected = T(0);  ///< mean `r_l`

  [[nodiscard]] std::array<std::pair<std::string_view, T>, 6> named() const {
    return {{{"loss", loss},
             {"accuracy", accuracy},
             {"margin", margin},
             {"rewards/mean", mean_reward},
             {"rewards/chosen", mean_reward_chosen},
             {"rewards/rejected", mean_reward_rejected}}};
  }
};

namespace detail {
/// The body of every `bradley_terry_loss` overload; `pair_losses` (if not null) is resized to
/// `[N]` and receives the unreduced `l_i`.
template <class T>
reward_model_metrics<T> bradley_terry_loss_impl(const Eigen::Ref<const vector_t<T>>& r_chosen,
                                                const Eigen::Ref<const vector_t<T>>& r_rejected,
                                                const Eigen::Ref<const vector_t<T>>& margin,
                                                Eigen::Ref<vector_t<T>> grad_chosen,
                                                Eigen::Ref<vector_t<T>> grad_rejected,
                                                vector_t<T>* pair_losses,
                                                const bradley_terry_options& options) {
  constexpr const char* fn = "bradley_terry_loss";
  const index_t n = r_chosen.size();
  PREFOPT_CHECK(n > 0, shape_error, fn, ": r_chosen is empty, expected at least one pair");
  detail::check_size(fn, "r_rejected", r_rejected.size(), n);
  if (margin.size() != 0) detail::check_size(fn, "margin", margin.size(), n);
  detail::check_size(fn, "grad_chosen", grad_chosen.size(), n);
  detail::check_size(fn, "grad_rejected", grad_rejected.size(), n);
  detail::check_lower(fn, "options.c_center", options.c_center, 0.0, false);
  detail::check_finite(fn, "r_chosen", r_chosen);
  detail::check_finite(fn, "r_rejected", r_rejected);
  detail::check_finite(fn, "margin", margin);
  if (pair_losses != nullptr) pair_losses->resize(n);  // only once every input is valid
  const T scale = detail::reduction_scale<T>(options.reduce, n);
  const T c = static_cast<T>(options.c_center);
  reward_model_metrics<T> m;
  T total = T(0);
  for (index_t i = 0; i < n; ++i) {
    const T rw = r_chosen(i);
    const T rl = r_rejected(i);
    const T z = rw - rl - (margin.size() != 0 ? margin(i) : T(0));
    const T s = rw + rl;
    const T l = softplus(-z) + c * s * s;
    total += l;
    if (pair_losses != nullptr) (*pair_losses)(i) = l;
    const T p = sigmoid(-z);  // = 1 - sigma(z)
    grad_chosen(i) = (-p + T(2) * c * s) * scale;
    grad_rejected(i) = (p + T(2) * c * s) * scale;
    m.accuracy += rw > rl ? T(1) : T(0);
    m.margin += rw - rl;
    m.mean_reward_chosen += rw;
    m.mean_reward_rejected += rl;
  }
  const T inv_n = T(1) / static_cast<T>(n);
  m.loss = total * scale;
  m.accuracy *= inv_n;
  m.margin *= inv_n;
  m.mean_reward_chosen *= inv_n;
  m.mean_reward_rejected *= inv_n;
  m.mean_reward = (m.mean_reward_chosen + m.mean_reward_rejected) / T(2);
  return m;
}

}  // namespace detail

/// Pairwise Bradley-Terry loss `l_i = -log sigma(r_w - r_l - m_i) + c_center (r_w + r_l)^2`
/// (ALGORITHMS.md §1), reduced by `options.reduce` (mean by default).
///
/// - `r_chosen`, `r_rejected`: `[N]` rewards of the preferred and dispreferred responses.
/// - `margin`: `[N]` per-pair margins `m_i` (Llama-2), or size 0 for no margin. It enters inside
///   the sigmoid as `r_w - r_l - m`.
/// - `grad_chosen`, `grad_rejected`: `[N]` outputs,
///   `dL/dr_w = -sigma(-(r_w - r_l - m)) + 2 c (r_w + r_l)` and
///   `dL/dr_l = +sigma(-(r_w - r_l - m)) + 2 c (r_w + r_l)`, times the reduction scale.
/// Stable for any finite rewards (log sigma through softplus). Throws on shape mismatch or
/// non-finite input. `N = 0` is an error.
template <class T>
reward_model_metrics<T> bradley_terry_loss(const Eigen::Ref<const vector_t<T>>& r_chosen,
                                           const Eigen::Ref<const vector_t<T>>& r_rejected,
                                           const Eigen::Ref<const vector_t<T>>& margin,
                                           Eigen::Ref<vector_t<T>> grad_chosen,
                                           Eigen::Ref<vector_t<T>> grad_rejected,
                                           const bradley_terry_options& options = {}) {
  return detail::bradley_terry_loss_impl<T>(r_chosen, r_rejected, margin, grad_chosen,
                                            grad_rejected, nullptr, options);
}

/// As above, and the per-pair (unreduced) losses `l_i` into `pair_losses` (resized to `[N]`).
template <class T>
reward_model_metrics<T> bradley_terry_loss(const Eigen::Ref<const vector_t<T>>& r_chosen,
                                           const Eigen::Ref<const vector_t<T>>& r_rejected,
                                           const Eigen::Ref<const vector_t<T>>& margin,
                                           Eigen::Ref<vector_t<T>> grad_chosen,
                                           Eigen::Ref<vector_t<T>> grad_rejected,
                                           vector_t<T>& pair_losses,
                                           const bradley_terry_options& options = {}) {
  return detail::bradley_terry_loss_impl<T>(r_chosen, r_rejected, margin, grad_chosen,
                                            grad_rejected, &pair_losses, options);
}

/// `bradley_terry_loss` without a margin on plain vectors (`vector_d` or `vector_f`; the scalar
/// is deduced): `l_i = -log sigma(r_w - r_l) + c_center (r_w + r_l)^2`, reduced. Shapes and
/// gradients as above.
template <class T>
reward_model_metrics<T> bradley_terry_loss(const vector_t<T>& r_chosen,
                                           const vector_t<T>& r_rejected, vector_t<T>& grad_chosen,
                                           vector_t<T>& grad_rejected,
                                           const bradley_terry_options& options = {}) {
  return detail::bradley_terry_loss_impl<T>(r_chosen, r_rejected, vector_t<T>(), grad_chosen,
                                            grad_rejected, nullptr, options);
}

/// `bradley_terry_loss` with a margin (`[N]`, or size 0) on plain vectors, the scalar deduced.
template <class T>
reward_model_metrics<T> bradley_terry_loss(const vector_t<T>& r_chosen,
                                           const vector_t<T>& r_rejected, const vector_t<T>& margin,
                                           vector_t<T>& grad_chosen, vector_t<T>& grad_rejected,
                                           const bradley_terry_options& options = {}) {
  return detail::bradley_terry_loss_impl<T>(r_chosen, r_rejected, margin, grad_chosen,
                                            grad_rejected, nullptr, options);
}

/// K-wise ranking loss (InstructGPT): row `p` of `rewards` holds the `K >= 2` rewards of one
/// prompt's responses *ranked best first*; the loss of the prompt is the mean over its `C(K,2)`
/// pairs `i < j` of `-log sigma(r_i - r_j)`, then reduced over prompts by `reduce`.
/// `grad` (same shape as `rewards`) receives the gradient of the returned value. Returns the loss.
template <class T>
T bradley_terry_ranking_loss(const Eigen::Ref<const row_matrix_t<T>>& rewards,
                             Eigen::Ref<row_matrix_t<T>> grad, reduction reduce = reduction::mean) {
  constexpr const char* fn = "bradley_terry_ranking_loss";
  const index_t prompts = rewards.rows();
  const index_t k = rewards.cols();
  PREFOPT_CHECK(prompts > 0 && k >= 2, shape_error, fn, ": rewards is ", prompts, "x", k,
                ", expected at least 1 prompt and K >= 2 ranked responses");
  PREFOPT_CHECK(grad.rows() == prompts && grad.cols() == k, shape_error, fn, ": grad is ",
                grad.rows(), "x", grad.cols(), ", expected ", prompts, "x", k);
  detail::check_finite(fn, "rewards", rewards.reshaped());
  const T pair_scale =
      detail::reduction_scale<T>(reduce, prompts) / static_cast<T>(k * (k - 1) / 2);
  T total = T(0);
  grad.setZero();
  for (index_t p = 0; p < prompts; ++p) {
    for (index_t i = 0; i < k; ++i) {
      for (index_t j = i + 1; j < k; ++j) {
        const T z = rewards(p, i) - rewards(p, j);
        total += softplus(-z);
        const T g = sigmoid(-z) * pair_scale;
        grad(p, i) -= g;
        grad(p, j) += g;
      }
    }
  }
  return total * pair_scale;
}

/// Best-of-K cross-entropy (Ziegler et al. `best_of_4`): for row `i` of `rewards` (`[N, K]`) the
/// loss is `logsumexp(r_i) - r_i[chosen[i]]` (softmax cross-entropy with target `chosen[i]`),
/// reduced over rows. `grad` (`[N, K]`) receives `(softmax(r_i) - onehot(chosen[i])) * scale`.
/// With all rewards equal the loss is `log K`. Returns the loss.
template <class T>
T best_of_k_loss(const Eigen::Ref<const row_matrix_t<T>>& rewards, std::span<const index_t> chosen,
                 Eigen::Ref<row_matrix_t<T>> grad, reduction reduce = reduction::mean) {
  constexpr const char* fn = "best_of_k_loss";
  const index_t n = rewards.rows();
  const index_t k = rewards.cols();
  PREFOPT_CHECK(n > 0 && k >= 1, shape_error, fn, ": rewards is ", n, "x", k,
                ", expected at least one row and one column");
  detail::check_size(fn, "chosen", static_cast<index_t>(chosen.size()), n);
  PREFOPT_CHECK(grad.rows() == n && grad.cols() == k, shape_error, fn, ": grad is ", grad.rows(),
                "x", grad.cols(), ", expected ", n, "x", k);
  detail::check_finite(fn, "rewards", rewards.reshaped());
  const T scale = detail::reduction_scale<T>(reduce, n);
  T total = T(0);
  for (index_t i = 0; i < n; ++i) {
    const index_t c = chosen[static_cast<std::size_t>(i)];
    PREFOPT_CHECK(c >= 0 && c < k, invalid_argument, fn, ": chosen[", i, "] = ", c,
                  ", expected an index in [0, ", k, ")");
    const T lse = logsumexp(rewards.row(i));
    total += lse - rewards(i, c);
    grad.row(i) = ((rewards.row(i).array() - lse).exp() * scale).matrix();
    grad(i, c) -= scale;
  }
  return total * scale;
}

/// Ziegler et al. `scalar_rating`: `loss = reduce_i (r_i - y_i)^2` for `[N]` rewards and target
/// ratings; `grad = 2 (r - y) * scale`. Returns the loss.
template <class T>
T scalar_rating_loss(const Eigen::Ref<const vector_t<T>>& rewards,
                     const Eigen::Ref<const vector_t<T>>& targets, Eigen::Ref<vector_t<T>> grad,
                     reduction reduce = reduction::mean) {
  constexpr const char* fn = "scalar_rating_loss";
  const index_t n = rewards.size();
  PREFOPT_CHECK(n > 0, shape_error, fn, ": rewards is empty, expected at least one element");
  detail::check_size(fn, "targets", targets.size(), n);
  detail::check_size(fn, "grad", grad.size(), n);
  detail::check_finite(fn, "rewards", rewards);
  detail::check_finite(fn, "targets", targets);
  const T scale = detail::reduction_scale<T>(reduce, n);
  grad = (T(2) * scale) * (rewards - targets);
  return (rewards - targets).squaredNorm() * scale;
}

/// Ziegler et al. `scalar_compare`: `loss = reduce_i (r_a - r_b - y_i)^2` with `y_i` the labelled
/// reward difference; `grad_a = 2 (r_a - r_b - y) * scale = -grad_b`. Returns the loss.
template <class T>
T scalar_compare_loss(const Eigen::Ref<const vector_t<T>>& r_a,
                      const Eigen::Ref<const vector_t<T>>& r_b,
                      const Eigen::Ref<const vector_t<T>>& target_difference,
                      Eigen::Ref<vector_t<T>> grad_a, Eigen::Ref<vector_t<T>> grad_b,
                      reduction reduce = reduction::mean) {
  constexpr const char* fn = "scalar_compare_loss";
  const index_t n = r_a.size();
  PREFOPT_CHECK(n > 0, shape_error, fn, ": r_a is empty, expected at least one pair");
  detail::check_size(fn, "r_b", r_b.size(), n);
  detail::check_size(fn, "target_difference", target_difference.size(), n);
  detail::check_size(fn, "grad_a", grad_a.size(), n);
  detail::check_size(fn, "grad_b", grad_b.size(), n);
  detail::check_finite(fn, "r_a", r_a);
  detail::check_finite(fn, "r_b", r_b);
  detail::check_finite(fn, "target_difference", target_difference);
  const T scale = detail::reduction_scale<T>(reduce, n);
  const vector_t<T> d = r_a - r_b - target_difference;
  grad_a = (T(2) * scale) * d;
  grad_b = -grad_a;
  return d.squaredNorm() * scale;
}

/// Elo points per nat of Bradley-Terry score: `400 / ln 10 = 173.7178` (Bai et al. eq. 2.1,
/// `dElo ~ 174 dPM`).
inline constexpr double elo_per_nat = 400.0 / std::numbers::ln10;

/// Win fraction of A over B from `d_elo = Elo(A) - Elo(B)`: `1 / (1 + 10^(-d_elo/400))`.
[[nodiscard]] inline double elo_win_fraction(double d_elo) {
  return 1.0 / (1.0 + std::pow(10.0, -d_elo / 400.0));
}

/// Elo difference corresponding to a preference-model score difference `d_pm` (natural-log BT
/// scores): `d_elo = (400 / ln 10) d_pm`, so `elo_win_fraction(elo_from_score_difference(d)) =
/// sigma(d)` exactly.
[[nodiscard]] inline double elo_from_score_difference(double d_pm) {
  return elo_per_nat * d_pm;
}

/// Affine reward normalisation `r' = gain * r + bias` (Ziegler et al.): fitted on rewards of
/// reference-policy samples so that they get mean `target_mean` and (population) standard
/// deviation `target_std`, "so the KL coefficient always has the same meaning". An explicit
/// post-training step, not part of any loss.
struct reward_normalization {
  double gain = 1.0;
  double bias = 0.0;

  /// Fits on `samples` (at least 2 finite values, not all equal).
  template <class Derived>
  static reward_normalization fit(const Eigen::DenseBase<Derived>& samples,
                                  double target_mean = 0.0, double target_std = 1.0) {
    constexpr const char* fn = "reward_normalization::fit";
    const index_t n = samples.size();
    PREFOPT_CHECK(n >= 2, invalid_argument, fn, ": ", n, " samples, expected at least 2");
    detail::check_finite(fn, "samples", samples);
    detail::check_lower(fn, "target_std", target_std, 0.0, true);
    double mean = 0.0;
    for (index_t i = 0; i < n; ++i) mean += static_cast<double>(samples.derived().coeff(i));
    mean /= static_cast<double>(n);
    double var = 0.0;
    for (index_t i = 0; i < n; ++i) {
      const double d = static_cast<double>(samples.derived().coeff(i)) - mean;
      var += d * d;
    }
    var /= static_cast<double>(n);
    PREFOPT_CHECK(var > 0.0, invalid_argument, fn, ": all samples equal ", mean,
                  ", cannot normalise a zero spread");
    const double gain = target_std / std::sqrt(var);
    return {gain, target_mean - gain * mean};
  }

  /// Applies `r <- gain * r + bias` in place.
  template <class Derived>
  void apply(Eigen::DenseBase<Derived>& rewards) const {
    using T = typename Derived::Scalar;
    rewards.derived() = (rewards.derived().array() * static_cast<T>(gain) + static_cast<T>(bias));
  }
};

}  // namespace prefopt::losses
