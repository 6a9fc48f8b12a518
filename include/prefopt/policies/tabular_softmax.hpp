#pragma once
/// \file
/// Tabular softmax policy: `pi(a | c) = exp(z[c, a]) / sum_b exp(z[c, b])` over a table of
/// `num_contexts()` x `num_actions()` finite logits `z`.
///
/// Parameters theta are the logits, flattened row-major (`theta[c * num_actions() + a] = z[c, a]`).
/// Gradient of one log-prob with respect to its context's logits: `d log pi(a|c) / d z[c, b] =
/// 1[a = b] - pi(b | c)`; zero for other contexts. Softmax is invariant to adding a constant per
/// row; `recenter()` subtracts each row's maximum (the gauge fix of ALGORITHMS.md §0.2).
/// Not supported: infinite logits (a zero-probability action); use a large negative finite logit.

#include <Eigen/Core>

#include <cmath>

#include "prefopt/core/assert.hpp"
#include "prefopt/core/concepts.hpp"
#include "prefopt/core/math.hpp"
#include "prefopt/core/random.hpp"
#include "prefopt/core/types.hpp"
#include "prefopt/detail/tabular_checks.hpp"

namespace prefopt {

class tabular_softmax_policy {
 public:
  using batch_type = tabular_batch;
  using scalar_type = double;

  /// The uniform policy (all logits 0).
  tabular_softmax_policy(index_t contexts, index_t actions)
      : logits_(row_matrix_d::Zero(checked_shape(contexts, actions), actions)) {}

  /// A policy with the given `[contexts, actions]` logits; every entry must be finite.
  explicit tabular_softmax_policy(row_matrix_d logits) : logits_(std::move(logits)) {
    checked_shape(logits_.rows(), logits_.cols());
    detail::check_finite_table("tabular_softmax_policy", "logits", logits_);
  }

  /// The policy whose rows are `probabilities` (strictly positive, each row summing to 1 within
  /// `tolerance`); logits are their logs.
  static tabular_softmax_policy from_probabilities(const row_matrix_d& probabilities,
                                                   double tolerance = 1e-9) {
    checked_shape(probabilities.rows(), probabilities.cols());
    for (index_t c = 0; c < probabilities.rows(); ++c) {
      for (index_t a = 0; a < probabilities.cols(); ++a) {
        const double p = probabilities(c, a);
        PREFOPT_CHECK(p > 0.0 && p <= 1.0, invalid_argument,
                      "tabular_softmax_policy::from_probabilities: probabilities(context ", c,
                      ", action ", a, ") = ", p, ", expected a probability in (0, 1]");
      }
      const double sum = probabilities.row(c).sum();
      PREFOPT_CHECK(std::abs(sum - 1.0) <= tolerance, invalid_argument,
                    "tabular_softmax_policy::from_probabilities: row of context ", c, " sums to ",
                    sum, ", expected 1 (tolerance ", tolerance, ")");
    }
    return tabular_softmax_policy(row_matrix_d(probabilities.array().log()));
  }

  [[nodiscard]] index_t num_contexts() const noexcept { return logits_.rows(); }
  [[nodiscard]] index_t num_actions() const noexcept { return logits_.cols(); }
  [[nodiscard]] index_t num_parameters() const noexcept { return logits_.size(); }

  [[nodiscard]] const row_matrix_d& logits() const noexcept { return logits_; }

  /// Replaces the logits (same shape, finite).
  void set_logits(const row_matrix_d& logits) {
    PREFOPT_CHECK(logits.rows() == logits_.rows() && logits.cols() == logits_.cols(), shape_error,
                  "tabular_softmax_policy::set_logits: logits is ", logits.rows(), "x",
                  logits.cols(), ", expected ", logits_.rows(), "x", logits_.cols());
    detail::check_finite_table("tabular_softmax_policy::set_logits", "logits", logits);
    logits_ = logits;
  }

  /// Flat view of the logits (row-major), length `num_parameters()`. Writes through it are not
  /// validated: keep them finite.
  [[nodiscard]] Eigen::Map<vector_d> parameters() noexcept {
    return {logits_.data(), logits_.size()};
  }
  [[nodiscard]] Eigen::Map<const vector_d> parameters() const noexcept {
    return {logits_.data(), logits_.size()};
  }

  /// out = pi(. | context).
  void probabilities(index_t context, Eigen::Ref<vector_d> out) const {
    check_row("tabular_softmax_policy::probabilities", context, out.size());
    softmax(logits_.row(context).transpose(), out);
  }

  /// out = log pi(. | context).
  void log_probabilities(index_t context, Eigen::Ref<vector_d> out) const {
    check_row("tabular_softmax_policy::log_probabilities", context, out.size());
    log_softmax(logits_.row(context).transpose(), out);
  }

  /// out[i] = log pi(actions[i] | contexts[i]).
  void log_prob(const tabular_batch& batch, Eigen::Ref<vector_d> out) const {
    detail::check_tabular_batch("tabular_softmax_policy::log_prob", batch, num_contexts(),
                                num_actions(), out.size());
    for (std::size_t i = 0; i < batch.actions.size(); ++i) {
      const auto row = logits_.row(batch.contexts[i]);
      out[static_cast<index_t>(i)] = row(batch.actions[i]) - logsumexp(row);
    }
  }

  /// gradient += sum_i weights[i] * d log pi(actions[i] | contexts[i]) / d theta.
  void accumulate_log_prob_gradient(const tabular_batch& batch, Eigen::Ref<const vector_d> weights,
                                    Eigen::Ref<vector_d> gradient) const {
    detail::check_tabular_batch("tabular_softmax_policy::accumulate_log_prob_gradient", batch,
                                num_contexts(), num_actions(), weights.size());
    PREFOPT_CHECK(gradient.size() == num_parameters(), shape_error,
                  "tabular_softmax_policy::accumulate_log_prob_gradient: gradient has ",
                  gradient.size(), " entries, expected num_parameters() = ", num_parameters());
    const index_t n = num_actions();
    for (std::size_t i = 0; i < batch.actions.size(); ++i) {
      const index_t c = batch.contexts[i];
      const double w = weights[static_cast<index_t>(i)];
      const auto row = logits_.row(c);
      const double lse = logsumexp(row);
      auto g = gradient.segment(c * n, n);
      g.array() -= w * (row.transpose().array() - lse).exp();
      g[batch.actions[i]] += w;
    }
  }

  /// out = d log pi(action | context) / d z[context, .] = onehot(action) - pi(. | context).
  void log_prob_gradient(index_t context, index_t action, Eigen::Ref<vector_d> out) const {
    check_row("tabular_softmax_policy::log_prob_gradient", context, out.size());
    PREFOPT_CHECK(action >= 0 && action < num_actions(), invalid_argument,
                  "tabular_softmax_policy::log_prob_gradient: action = ", action,
                  ", expected an action in [0, ", num_actions(), ")");
    softmax(logits_.row(context).transpose(), out);
    out = -out;
    out[action] += 1.0;
  }

  /// Draws an action from pi(. | context): inverse CDF over exp(z - max z), one draw from `gen`.
  [[nodiscard]] index_t sample(index_t context, rng& gen) const {
    check_row("tabular_softmax_policy::sample", context, num_actions());
    return gen.categorical((logits_.row(context).array() - logits_.row(context).maxCoeff()).exp());
  }

  /// Subtracts each row's maximum from its logits (the policy is unchanged).
  void recenter() noexcept { logits_.colwise() -= logits_.rowwise().maxCoeff(); }

 private:
  /// Returns `contexts` after checking the shape is non-empty.
  static index_t checked_shape(index_t contexts, index_t actions) {
    PREFOPT_CHECK(contexts > 0 && actions > 0, shape_error, "tabular_softmax_policy: shape ",
                  contexts, "x", actions, ", expected at least one context and one action");
    return contexts;
  }

  void check_row(const char* function, index_t context, index_t size) const {
    PREFOPT_CHECK(context >= 0 && context < num_contexts(), invalid_argument, function,
                  ": context = ", context, ", expected a context in [0, ", num_contexts(), ")");
    PREFOPT_CHECK(size == num_actions(), shape_error, function, ": out has ", size,
                  " entries, expected num_actions() = ", num_actions());
  }

  row_matrix_d logits_;
};

static_assert(TabularPolicy<tabular_softmax_policy>);
static_assert(DifferentiablePolicy<tabular_softmax_policy>);

}  // namespace prefopt
