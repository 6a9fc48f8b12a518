#pragma once
/// \file
/// The direct-alignment family on sequence log-prob sums (ALGORITHMS.md §3): DPO (sigmoid), IPO,
/// hinge (SLiC), label-smoothed (conservative) DPO, robust DPO and SimPO, behind one interface
/// `dpo_loss<Variant>`.
///
/// For pair `i` with policy sums `S_w, S_l`, reference sums `R_w, R_l` (response tokens only) and
/// response lengths `n_w, n_l`, the contrast is
///
///     h = (S_w - R_w)/a_w - (S_l - R_l)/a_l,    a = max(n, 1) if length_average else 1,
///
/// (SimPO drops the reference terms) and the variant maps `h` to a loss:
///
/// - `sigmoid`: `-log sigma(u)`, `u = beta_dpo h` (DPO, arXiv 2305.18290);
/// - `label_smoothed`: `-(1-eps_ls) log sigma(u) - eps_ls log sigma(-u)` (conservative DPO; TRL's
///   `label_smoothing` with `loss_type="sigmoid"`; a smoothed target, minimal at
///   `u* = log((1-eps_ls)/eps_ls)`);
/// - `robust`: `((1-eps_ls) softplus(-u) - eps_ls softplus(u)) / (1 - 2 eps_ls)` (Provably Robust
///   DPO, Chowdhury et al., arXiv 2403.00409; TRL `robust`; unbiased under label noise `eps_ls`);
/// - `ipo`: `(h - 1/(2 beta_dpo))^2` (IPO, arXiv 2310.12036);
/// - `hinge`: `max(0, 1 - u)` (SLiC-HF, arXiv 2305.10425, with reference, as TRL `hinge`);
/// - `simpo`: `-log sigma(u - gamma_simpo)`, no reference (SimPO, arXiv 2405.14734).
///
/// Length averaging (Averaging log-likelihoods in direct alignment, Grinsztajn et al., arXiv
/// 2406.19188; TRL `sigmoid_norm`) divides policy and reference log-ratios by their own length and
/// applies to every variant (TRL offline IPO = `ipo_loss` with `length_average = true`; the SimPO
/// paper = `simpo_loss` with `length_average = true`).
///
/// Outputs: per-pair losses, gradients of the reduced loss with respect to the policy sums `S_w`,
/// `S_l` (reference sums are stop-gradient), and metrics under TRL's names. Because `dS/dl_t = 1`,
/// `spread_sequence_gradients` (losses/common.hpp) turns them into per-token gradients; with length
/// averaging the `1/a` factor is already included (`dL/dl_t^w = -beta_dpo sigma(-u)/n_w`).
/// Precision: everything is computed in the scalar type `T` with stable `softplus` / `sigmoid`, so
/// any finite contrast works (tested up to |u| = 50 against finite differences in double). In
/// `float` the loss agrees with the double result to 1e-5 relative and the gradients to 1e-5
/// relative or 1e-8 absolute (tested for sums up to 30 nats in magnitude); summed log-probs of very
/// long responses lose absolute precision in float, so sum them in double when that matters.
/// Not supported: LD-DPO, f-DPO, WPO weighting (ALGORITHMS.md §3.4 lists them as optional).

#include <Eigen/Core>

#include <array>
#include <cmath>
#include <span>
#include <string_view>
#include <utility>

#include "prefopt/core/math.hpp"
#include "prefopt/losses/common.hpp"

namespace prefopt::losses {

/// Hyperparameters of `dpo_loss` (ALGORITHMS.md §3 names; `beta_dpo` is never called `tau`).
struct dpo_config {
  double beta_dpo = 0.1;        ///< temperature, > 0 (also sets the IPO target 1/(2 beta_dpo))
  bool length_average = false;  ///< divide each log-ratio by its own length max(n, 1)
  double eps_ls = 0.0;  ///< label smoothing / noise rate in [0, 0.5); `label_smoothed`, `robust`
  double gamma_simpo = 0.0;  ///< SimPO target margin (finite); `simpo` only
  reduction reduce = reduction::mean;
};

/// The variants: each maps the contrast `h` to `(l(h), dl/dh)`.
namespace dpo_variant {

/// DPO: `l = softplus(-u)`, `dl/dh = -beta_dpo sigma(-u)`.
struct sigmoid {
  static constexpr bool uses_reference = true;
  static constexpr std::string_view name = "sigmoid";
  template <class T>
  static std::pair<T, T> evaluate(T h, const dpo_config& c) noexcept {
    const T beta = static_cast<T>(c.beta_dpo);
    const T u = beta * h;
    return {softplus(-u), -beta * prefopt::sigmoid(-u)};
  }
};

/// Label-smoothed DPO: `l = (1-eps) softplus(-u) + eps softplus(u)`,
/// `dl/dh = beta_dpo (sigma(u) - (1 - eps))`; minimiser `u* = log((1-eps)/eps)`.
struct label_smoothed {
  static constexpr bool uses_reference = true;
  static constexpr std::string_view name = "label_smoothed";
  template <class T>
  static std::pair<T, T> evaluate(T h, const dpo_config& c) noexcept {
    const T beta = static_cast<T>(c.beta_dpo);
    const T eps = static_cast<T>(c.eps_ls);
    const T u = beta * h;
    return {(T(1) - eps) * softplus(-u) + eps * softplus(u),
            beta * (prefopt::sigmoid(u) - (T(1) - eps))};
  }
};

/// Robust DPO (Provably Robust DPO, Chowdhury et al., arXiv 2403.00409; TRL `robust`), with
/// `eps = eps_ls` the label-flip rate:
///
///     l = ((1 - eps) softplus(-u) - eps softplus(u)) / (1 - 2 eps),
///     dl/dh = -beta_dpo ((1 - eps) sigma(-u) + eps sigma(u)) / (1 - 2 eps).
///
/// Unbiased under labels flipped with probability `eps`: `(1-eps) l(u) + eps l(-u) =
/// softplus(-u)`, the DPO loss of the clean label. Unlike `label_smoothed` it has no minimiser: for
/// `eps > 0` it decreases like `-eps u / (1 - 2 eps)` as `u -> inf` (the paper's estimator, not a
/// smoothed target). `l(0) = log 2`; `eps = 0` is DPO.
struct robust {
  static constexpr bool uses_reference = true;
  static constexpr std::string_view name = "robust";
  template <class T>
  static std::pair<T, T> evaluate(T h, const dpo_config& c) noexcept {
    const T beta = static_cast<T>(c.beta_dpo);
    const T eps = static_cast<T>(c.eps_ls);
    const T u = beta * h;
    const T norm = T(1) / (T(1) - T(2) * eps);
    return {((T(1) - eps) * softplus(-u) - eps * softplus(u)) * norm,
            -beta * ((T(1) - eps) * prefopt::sigmoid(-u) + eps * prefopt::sigmoid(u)) * norm};
  }
};

/// IPO: `l = (h - 1/(2 beta_dpo))^2`, `dl/dh = 2 (h - 1/(2 beta_dpo))`.
struct ipo {
  static constexpr bool uses_reference = true;
  static constexpr std::string_view name = "ipo";
  template <class T>
  static std::pair<T, T> evaluate(T h, const dpo_config& c) noexcept {
    const T d = h - T(1) / (T(2) * static_cast<T>(c.beta_dpo));
    return {d * d, T(2) * d};
  }
};

/// Hinge (SLiC): `l = max(0, 1 - u)`; gradient `-beta_dpo` where `u < 1`, exactly 0 for `u >= 1`.
struct hinge {
  static constexpr bool uses_reference = true;
  static constexpr std::string_view name = "hinge";
  template <class T>
  static std::pair<T, T> evaluate(T h, const dpo_config& c) noexcept {
    const T beta = static_cast<T>(c.beta_dpo);
    const T u = beta * h;
    return u < T(1) ? std::pair<T, T>{T(1) - u, -beta} : std::pair<T, T>{T(0), T(0)};
  }
};

/// SimPO: reference-free, `l = softplus(-(beta_dpo h - gamma_simpo))`, `h = S_w/a_w - S_l/a_l`.
struct simpo {
  static constexpr bool uses_reference = false;
  static constexpr std::string_view name = "simpo";
  template <class T>
  static std::pair<T, T> evaluate(T h, const dpo_config& c) noexcept {
    const T beta = static_cast<T>(c.beta_dpo);
    const T u = beta * h - static_cast<T>(c.gamma_simpo);
    return {softplus(-u), -beta * prefopt::sigmoid(-u)};
  }
};

}  // namespace dpo_variant

/// Inputs of `dpo_loss`: `[N]` sequence log-prob sums (response tokens only) and lengths.
/// `reference_*` may be empty for SimPO (ignored there; `reference_free` builds such inputs without
/// empty vectors spelled out); lengths may be empty when
/// `length_average` is false (then the length metrics are 0). Lengths must be >= 0.
template <class T>
struct dpo_inputs {
  Eigen::Ref<const vector_t<T>> policy_chosen;
  Eigen::Ref<const vector_t<T>> policy_rejected;
  Eigen::Ref<const vector_t<T>> reference_chosen;
  Eigen::Ref<const vector_t<T>> reference_rejected;
  std::span<const index_t> chosen_lengths = {};
  std::span<const index_t> rejected_lengths = {};

  /// Inputs without reference sums, for reference-free variants (SimPO):
  /// `dpo_inputs<double>::reference_free(policy_chosen, policy_rejected, lengths_w, lengths_l)`.
  /// A variant that uses the reference rejects them (`shape_error` naming `reference_chosen`).
  [[nodiscard]] static dpo_inputs reference_free(Eigen::Ref<const vector_t<T>> policy_chosen,
                                                 Eigen::Ref<const vector_t<T>> policy_rejected,
                                                 std::span<const index_t> chosen_lengths = {},
                                                 std::span<const index_t> rejected_lengths = {}) {
    const Eigen::Map<const vector_t<T>> none(nullptr, 0);
    return {policy_chosen, policy_rejected, none, none, chosen_lengths, rejected_lengths};
  }
};

/// Batch metrics, as TRL's DPOTrainer logs them (`named()`): `rewards/*` are the implicit rewards
/// `beta_dpo * (log-ratio used in the loss)` (averaged when `length_average`; SimPO: `beta_dpo *`
/// averaged policy log-prob), `logps/*` the mean *summed* policy log-probs, `lengths/*` the mean
/// response lengths.
template <class T>
struct dpo_metrics {
  T loss = T(0);
  T rewards_chosen = T(0);
  T rewards_rejected = T(0);
  T rewards_margins = T(0);
  T rewards_accuracies = T(0);  ///< fraction of pairs with reward_chosen > reward_rejected
  T logps_chosen = T(0);
  T logps_rejected = T(0);
  T lengths_chosen = T(0);
  T lengths_rejected = T(0);

  [[nodiscard]] std::array<std::pair<std::string_view, T>, 9> named() const {
    return {{{"loss", loss},
             {"rewards/chosen", rewards_chosen},
             {"rewards/rejected", rewards_rejected},
             {"rewards/margins", rewards_margins},
             {"rewards/accuracies", rewards_accuracies},
             {"logps/chosen", logps_chosen},
             {"logps/rejected", logps_rejected},
             {"lengths/chosen", lengths_chosen},
             {"lengths/rejected", lengths_rejected}}};
  }
};

/// One interface for the direct-alignment family; `Variant` is a type from `dpo_variant`.
/// Construct with a `dpo_config` (validated), then call `compute`.
template <class Variant>
class dpo_loss {
 public:
  using variant_type = Variant;

  explicit dpo_loss(const dpo_config& config = {}) : config_(config) {
    constexpr const char* fn = "dpo_loss";
    detail::check_lower(fn, "beta_dpo", config.beta_dpo, 0.0, true);
    PREFOPT_CHECK(config.eps_ls >= 0.0 && config.eps_ls < 0.5, invalid_argument, fn,
                  ": eps_ls = ", config.eps_ls, ", expected a value in [0, 0.5)");
    PREFOPT_CHECK(std::isfinite(config.gamma_simpo), invalid_argument, fn,
                  ": gamma_simpo = ", config.gamma_simpo, ", expected a finite value");
  }

  [[nodiscard]] const dpo_config& config() const noexcept { return config_; }

  /// The loss of one contrast `h` and its derivative `dl/dh` (no reduction).
  template <class T>
  [[nodiscard]] std::pair<T, T> evaluate(T h) const noexcept {
    return Variant::template evaluate<T>(h, config_);
  }

  /// Per-pair losses into `losses` (`[N]`), gradients of the reduced loss with respect to the
  /// policy sums into `grad_policy_chosen` / `grad_policy_rejected` (`[N]`); returns the metrics
  /// (`loss` = reduced loss). Throws on shape mismatch, negative lengths or non-finite inputs.
  template <class T>
  dpo_metrics<T> compute(const dpo_inputs<T>& in, detail::ref_t<T> losses,
                         detail::ref_t<T> grad_policy_chosen,
                         detail::ref_t<T> grad_policy_rejected) const {
    constexpr const char* fn = "dpo_loss::compute";
    const index_t n = in.policy_chosen.size();
    PREFOPT_CHECK(n > 0, shape_error, fn, ": policy_chosen is empty, expected at least one pair");
    detail::check_size(fn, "policy_rejected", in.policy_rejected.size(), n);
    if (Variant::uses_reference || in.reference_chosen.size() != 0) {
      detail::check_size(fn, "reference_chosen", in.reference_chosen.size(), n);
      detail::check_size(fn, "reference_rejected", in.reference_rejected.size(), n);
    }
    const bool have_lengths = !in.chosen_lengths.empty() || !in.rejected_lengths.empty();
    PREFOPT_CHECK(have_lengths || !config_.length_average, shape_error, fn,
                  ": length_average is on but chosen_lengths / rejected_lengths are empty");
    if (have_lengths) {
      detail::check_size(fn, "chosen_lengths", static_cast<index_t>(in.chosen_lengths.size()), n);
      detail::check_size(fn, "rejected_lengths", static_cast<index_t>(in.rejected_lengths.size()),
                         n);
    }
    detail::check_size(fn, "losses", losses.size(), n);
    detail::check_size(fn, "grad_policy_chosen", grad_policy_chosen.size(), n);
    detail::check_size(fn, "grad_policy_rejected", grad_policy_rejected.size(), n);
    detail::check_finite(fn, "policy_chosen", in.policy_chosen);
    detail::check_finite(fn, "policy_rejected", in.policy_rejected);
    if (Variant::uses_reference) {
      detail::check_finite(fn, "reference_chosen", in.reference_chosen);
      detail::check_finite(fn, "reference_rejected", in.reference_rejected);
    }

    const T beta = static_cast<T>(config_.beta_dpo);
    const T scale = detail::reduction_scale<T>(config_.reduce, n);
    dpo_metrics<T> m;
    T total = T(0);
    for (index_t i = 0; i < n; ++i) {
      T a_w = T(1);
      T a_l = T(1);
      if (have_lengths) {
        const index_t len_w = in.chosen_lengths[static_cast<std::size_t>(i)];
        const index_t len_l = in.rejected_lengths[static_cast<std::size_t>(i)];
        PREFOPT_CHECK(len_w >= 0 && len_l >= 0, invalid_argument, fn, ": lengths of pair ", i,
                      " are (", len_w, ", ", len_l, "), expected >= 0");
        m.lengths_chosen += static_cast<T>(len_w);
        m.lengths_rejected += static_cast<T>(len_l);
        if (config_.length_average) {
          a_w = detail::clamped_length<T>(len_w);
          a_l = detail::clamped_length<T>(len_l);
        }
      }
      T ratio_w = in.policy_chosen(i);
      T ratio_l = in.policy_rejected(i);
      if constexpr (Variant::uses_reference) {
        ratio_w -= in.reference_chosen(i);
        ratio_l -= in.reference_rejected(i);
      }
      ratio_w /= a_w;
      ratio_l /= a_l;
      const auto [loss, slope] = Variant::template evaluate<T>(ratio_w - ratio_l, config_);
      losses(i) = loss;
      total += loss;
      grad_policy_chosen(i) = slope / a_w * scale;
      grad_policy_rejected(i) = -slope / a_l * scale;
      const T reward_w = beta * ratio_w;
      const T reward_l = beta * ratio_l;
      m.rewards_chosen += reward_w;
      m.rewards_rejected += reward_l;
      m.rewards_accuracies += reward_w > reward_l ? T(1) : T(0);
      m.logps_chosen += in.policy_chosen(i);
      m.logps_rejected += in.policy_rejected(i);
    }
    const T inv_n = T(1) / static_cast<T>(n);
    m.loss = total * scale;
    m.rewards_chosen *= inv_n;
    m.rewards_rejected *= inv_n;
    m.rewards_margins = m.rewards_chosen - m.rewards_rejected;
    m.rewards_accuracies *= inv_n;
    m.logps_chosen *= inv_n;
    m.logps_rejected *= inv_n;
    m.lengths_chosen *= inv_n;
    m.lengths_rejected *= inv_n;
    return m;
  }

 private:
  dpo_config config_;
};

/// DPO (Rafailov et al., arXiv 2305.18290); with `length_average = true`, averaged DPO.
using sigmoid_dpo_loss = dpo_loss<dpo_variant::sigmoid>;
/// Conservative / label-smoothed DPO (`eps_ls` in [0, 0.5)).
using label_smoothed_dpo_loss = dpo_loss<dpo_variant::label_smoothed>;
/// Robust DPO (Chowdhury et al., arXiv 2403.00409; `eps_ls` = label-flip rate in [0, 0.5)).
using robust_dpo_loss = dpo_loss<dpo_variant::robust>;
/// IPO (Azar et al., arXiv 2310.12036).
using ipo_loss = dpo_loss<dpo_variant::ipo>;
/// Hinge / SLiC-HF with reference (arXiv 2305.10425).
using hinge_dpo_loss = dpo_loss<dpo_variant::hinge>;
/// SimPO (arXiv 2405.14734); use with `length_average = true` for the paper's form.
using simpo_loss = dpo_loss<dpo_variant::simpo>;

}  // namespace prefopt::losses
