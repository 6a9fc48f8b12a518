#pragma once
/// \file
/// A tabular preference game (ALGORITHMS.md §4): contexts `x` with weights `rho(x)`, `n` responses
/// per context, one preference matrix `P[x](i, j) = P(y_i > y_j | x)` per context, a strictly
/// positive reference policy `mu(. | x)` and the KL weight `tau >= 0` of the regularised game
///
///     P_tau(pi > pi') = P(pi > pi') - tau KL_rho(pi, mu) + tau KL_rho(pi', mu),
///     P(pi > pi') = sum_x rho(x) pi(.|x)^T P[x] pi'(.|x).
///
/// Nash Learning from Human Feedback (Munos et al., arXiv 2312.00886), Prop. 1: for `tau > 0` the
/// regularised game has a unique symmetric Nash equilibrium `pi*_tau`.
///
/// Optional per-response metadata (response length in tokens, a gold reward) travels with the game
/// for experiments that report length statistics or gold-reward win rates; solvers ignore it.
/// Validation on construction: every `P[x]` is a preference matrix (entries in [0, 1],
/// `P + P^T = 1`, diagonal 1/2, within `preference_tolerance`); `mu` rows are strictly positive and
/// sum to 1 (within 1e-9); `rho` is non-negative with sum 1 (within 1e-9); `tau` is finite and
/// `>= 0`. Contexts are independent: every multi-context quantity is a `rho`-weighted average.

#include <Eigen/Core>

#include <cmath>
#include <utility>
#include <vector>

#include "prefopt/core/assert.hpp"
#include "prefopt/core/types.hpp"
#include "prefopt/models/preference/tabular.hpp"
#include "prefopt/models/preference/validate.hpp"

namespace prefopt {

/// Tolerance on `sum mu = 1` and `sum rho = 1`.
inline constexpr double distribution_tolerance = 1e-9;

class preference_game {
 public:
  /// A game with `preferences.size()` contexts.
  /// - `preferences[x]`: `n x n` preference matrix of context `x` (all of the same size `n`);
  /// - `reference`: `[contexts, n]`, row `x` is `mu(. | x)`, strictly positive, summing to 1;
  /// - `tau`: KL weight, finite and `>= 0`;
  /// - `context_weights`: `rho`, length `contexts`, non-negative, summing to 1; empty = uniform.
  preference_game(std::vector<matrix_d> preferences, row_matrix_d reference, double tau,
                  vector_d context_weights = {})
      : preferences_(std::move(preferences)),
        reference_(std::move(reference)),
        rho_(std::move(context_weights)),
        tau_(tau) {
    constexpr const char* fn = "preference_game";
    PREFOPT_CHECK(!preferences_.empty(), shape_error, fn,
                  ": preferences is empty, expected at least one context");
    const index_t n = preferences_.front().rows();
    const index_t contexts = num_contexts();
    for (index_t x = 0; x < contexts; ++x) {
      validate_preference_matrix(preferences_[static_cast<std::size_t>(x)], fn, "P", x, n);
    }
    PREFOPT_CHECK(reference_.rows() == contexts && reference_.cols() == n, shape_error, fn,
                  ": reference is ", reference_.rows(), "x", reference_.cols(), ", expected ",
                  contexts, "x", n, " (contexts x responses)");
    for (index_t x = 0; x < contexts; ++x) {
      for (index_t a = 0; a < n; ++a) {
        const double m = reference_(x, a);
        PREFOPT_CHECK(std::isfinite(m) && m > 0.0, invalid_argument, fn, ": reference(context ", x,
                      ", response ", a, ") = ", m,
                      ", expected a strictly positive probability (mu must cover every response)");
      }
      const double sum = reference_.row(x).sum();
      PREFOPT_CHECK(std::abs(sum - 1.0) <= distribution_tolerance, invalid_argument, fn,
                    ": reference row of context ", x, " sums to ", sum, ", expected 1 (tolerance ",
                    distribution_tolerance, ")");
    }
    PREFOPT_CHECK(std::isfinite(tau_) && tau_ >= 0.0, invalid_argument, fn, ": tau = ", tau_,
                  ", expected a finite tau >= 0");
    if (rho_.size() == 0) {
      rho_ = vector_d::Constant(contexts, 1.0 / static_cast<double>(contexts));
    }
    PREFOPT_CHECK(rho_.size() == contexts, shape_error, fn, ": context_weights has ", rho_.size(),
                  " entries, expected one per context (", contexts, ")");
    for (index_t x = 0; x < contexts; ++x) {
      PREFOPT_CHECK(std::isfinite(rho_[x]) && rho_[x] >= 0.0, invalid_argument, fn,
                    ": context_weights[", x, "] = ", rho_[x], ", expected a weight >= 0");
    }
    PREFOPT_CHECK(std::abs(rho_.sum() - 1.0) <= distribution_tolerance, invalid_argument, fn,
                  ": context_weights sum to ", rho_.sum(), ", expected 1 (tolerance ",
                  distribution_tolerance, ")");
    log_reference_ = reference_.array().log().matrix();
  }

  /// A single-context game: `P` is `n x n`, `mu` has length `n`.
  preference_game(matrix_d preference, const vector_d& reference, double tau)
      : preference_game(std::vector<matrix_d>{std::move(preference)},
                        row_matrix_d(reference.transpose()), tau) {}

  /// A single-context game with the uniform reference.
  static preference_game with_uniform_reference(matrix_d preference, double tau) {
    const index_t n = preference.rows();
    return {std::move(preference), uniform(n), tau};
  }

  /// The uniform distribution over `n` responses.
  static vector_d uniform(index_t n) {
    PREFOPT_CHECK(n > 0, shape_error, "preference_game::uniform: n = ", n, ", expected n > 0");
    return vector_d::Constant(n, 1.0 / static_cast<double>(n));
  }

  [[nodiscard]] index_t num_contexts() const noexcept {
    return static_cast<index_t>(preferences_.size());
  }
  /// `n`, the number of responses per context.
  [[nodiscard]] index_t num_actions() const noexcept { return preferences_.front().rows(); }
  [[nodiscard]] double tau() const noexcept { return tau_; }

  /// `P[context]`, `n x n`.
  [[nodiscard]] const matrix_d& preference(index_t context) const {
    check_context("preference_game::preference", context);
    return preferences_[static_cast<std::size_t>(context)];
  }
  [[nodiscard]] const std::vector<matrix_d>& preferences() const noexcept { return preferences_; }
  /// `mu`, `[contexts, n]`.
  [[nodiscard]] const row_matrix_d& reference() const noexcept { return reference_; }
  /// `log mu`, `[contexts, n]`.
  [[nodiscard]] const row_matrix_d& log_reference() const noexcept { return log_reference_; }
  /// `rho`, length `contexts`.
  [[nodiscard]] const vector_d& context_weights() const noexcept { return rho_; }

  /// The same game with another KL weight (validated).
  [[nodiscard]] preference_game with_tau(double tau) const {
    preference_game g = *this;
    PREFOPT_CHECK(std::isfinite(tau) && tau >= 0.0, invalid_argument,
                  "preference_game::with_tau: tau = ", tau, ", expected a finite tau >= 0");
    g.tau_ = tau;
    return g;
  }

  /// The same game with another reference `[contexts, n]` (validated as on construction).
  [[nodiscard]] preference_game with_reference(row_matrix_d reference) const {
    preference_game g(preferences_, std::move(reference), tau_, rho_);
    g.lengths_ = lengths_;
    g.gold_rewards_ = gold_rewards_;
    return g;
  }

  /// Attaches response lengths `[contexts, n]` (finite, `>= 0`; tokens). Empty = none.
  [[nodiscard]] preference_game with_lengths(row_matrix_d lengths) const {
    check_metadata("preference_game::with_lengths", "lengths", lengths, /*non_negative=*/true);
    preference_game g = *this;
    g.lengths_ = std::move(lengths);
    return g;
  }
  /// Attaches gold rewards `[contexts, n]` (finite). Empty = none.
  [[nodiscard]] preference_game with_gold_rewards(row_matrix_d gold_rewards) const {
    check_metadata("preference_game::with_gold_rewards", "gold_rewards", gold_rewards,
                   /*non_negative=*/false);
    preference_game g = *this;
    g.gold_rewards_ = std::move(gold_rewards);
    return g;
  }
  [[nodiscard]] bool has_lengths() const noexcept { return lengths_.size() > 0; }
  [[nodiscard]] bool has_gold_rewards() const noexcept { return gold_rewards_.size() > 0; }
  /// Response lengths `[contexts, n]`; empty when absent.
  [[nodiscard]] const row_matrix_d& lengths() const noexcept { return lengths_; }
  /// Gold rewards `[contexts, n]`; empty when absent.
  [[nodiscard]] const row_matrix_d& gold_rewards() const noexcept { return gold_rewards_; }

  /// The game's preferences as a `TabularPreferenceModel` (for sampled solvers and judges).
  [[nodiscard]] tabular_preference_model preference_model() const {
    return tabular_preference_model(preferences_);
  }

 private:
  void check_context(const char* function, index_t context) const {
    PREFOPT_CHECK(context >= 0 && context < num_contexts(), invalid_argument, function,
                  ": context = ", context, ", expected a context in [0, ", num_contexts(), ")");
  }

  void check_metadata(const char* function, const char* argument, const row_matrix_d& m,
                      bool non_negative) const {
    if (m.size() == 0) return;
    PREFOPT_CHECK(m.rows() == num_contexts() && m.cols() == num_actions(), shape_error, function,
                  ": ", argument, " is ", m.rows(), "x", m.cols(), ", expected ", num_contexts(),
                  "x", num_actions(), " (contexts x responses)");
    for (index_t x = 0; x < m.rows(); ++x) {
      for (index_t a = 0; a < m.cols(); ++a) {
        PREFOPT_CHECK(
            std::isfinite(m(x, a)) && (!non_negative || m(x, a) >= 0.0), invalid_argument, function,
            ": ", argument, "(context ", x, ", response ", a, ") = ", m(x, a),
            non_negative ? ", expected a finite value >= 0" : ", expected a finite value");
      }
    }
  }

  std::vector<matrix_d> preferences_;
  row_matrix_d reference_;
  row_matrix_d log_reference_;
  vector_d rho_;
  double tau_;
  row_matrix_d lengths_;
  row_matrix_d gold_rewards_;
};

/// The `preference_game` of a tabular problem, for the diagnostics (`diagnostics/`) and the
/// metrics (`callbacks/metrics.hpp`), which take a game: a game is its own, a
/// `tabular_preference_problem` has one (`games/tabular_preference_problem.hpp`).
[[nodiscard]] inline const preference_game& as_preference_game(
    const preference_game& game) noexcept {
  return game;
}

}  // namespace prefopt
