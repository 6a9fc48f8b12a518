#pragma once
/// \file
/// Per-run state shared by the tabular game solvers (Nash-MD, OMD/INPO, self-play MWU, ONPO) and
/// the statistics of one step.
///
/// Accessors used by `run`, the callbacks and the diagnostics (every tabular solver's state
/// provides them, so an experiment runner treats every solver's output the same way):
/// - `policy()`: the current iterate as a `tabular_softmax_policy` (logits re-centred, max 0);
/// - `average_policy()`, `average_probabilities()`: the uniform average of the played iterates
///   (the policies each step evaluated the payoff at: `pi_0..pi_{T-1}` for Nash-MD/OMD,
///   `pi_1..pi_T` for MWU/ONPO, in each paper's indexing);
/// - `iteration()`: number of completed steps.

#include <Eigen/Core>

#include <algorithm>
#include <limits>

#include "prefopt/core/random.hpp"
#include "prefopt/core/types.hpp"
#include "prefopt/policies/tabular_softmax.hpp"
#include "prefopt/solvers/common/payoff.hpp"

namespace prefopt {

/// Statistics of one tabular step.
struct tabular_step_stats {
  /// Index of the step just taken (0 for the first).
  index_t iteration = 0;
  /// Step size used.
  double eta = 0.0;
};

/// How a tabular solver picks its first iterate.
struct initial_policy {
  enum class kind { reference, uniform, given };
  kind which = kind::reference;
  /// `[contexts, n]` logits when `which == given`.
  row_matrix_d logits;

  static initial_policy reference() { return {kind::reference, {}}; }
  static initial_policy uniform() { return {kind::uniform, {}}; }
  /// From `[contexts, n]` strictly positive probabilities (rows summing to 1).
  static initial_policy from_probabilities(const row_matrix_d& probabilities) {
    return {kind::given, tabular_softmax_policy::from_probabilities(probabilities).logits()};
  }
  /// Single-context convenience.
  static initial_policy from_probabilities(const vector_d& probabilities) {
    return from_probabilities(row_matrix_d(probabilities.transpose()));
  }

  /// The first iterate's logits for a game with `log_mu` (`[contexts, n]`).
  [[nodiscard]] row_matrix_d make(const row_matrix_d& log_mu) const {
    switch (which) {
      case kind::reference:
        return log_mu;
      case kind::uniform:
        return row_matrix_d::Zero(log_mu.rows(), log_mu.cols());
      case kind::given:
        break;
    }
    PREFOPT_CHECK(logits.rows() == log_mu.rows() && logits.cols() == log_mu.cols(), shape_error,
                  "initial_policy: given policy is ", logits.rows(), "x", logits.cols(),
                  ", expected the game's ", log_mu.rows(), "x", log_mu.cols());
    return logits;
  }
};

/// State of a tabular game solver.
class tabular_game_state {
 public:
  tabular_game_state(row_matrix_d logits, bool auxiliary, std::uint64_t seed)
      : policy_(std::move(logits)), gen_(seed, /*stream=*/0x5eed) {
    policy_.recenter();
    sum_ = row_matrix_d::Zero(policy_.num_contexts(), policy_.num_actions());
    if (auxiliary) auxiliary_ = policy_.logits();
    const index_t n = policy_.num_actions();
    played_.resize(n);
    opponent_.resize(n);
    payoff_.resize(n);
    mixed_.resize(n);
  }

  /// The current iterate.
  [[nodiscard]] const tabular_softmax_policy& policy() const noexcept { return policy_; }
  /// Number of completed steps.
  [[nodiscard]] index_t iteration() const noexcept { return t_; }
  /// Average of the played iterates, `[contexts, n]` (the current policy before any step).
  [[nodiscard]] row_matrix_d average_probabilities() const {
    if (t_ == 0) {
      row_matrix_d p(policy_.num_contexts(), policy_.num_actions());
      for (index_t x = 0; x < p.rows(); ++x) {
        vector_d row(p.cols());
        policy_.probabilities(x, row);
        p.row(x) = row.transpose();
      }
      return p;
    }
    return sum_ / static_cast<double>(t_);
  }
  /// The average iterate as a policy (probabilities below the smallest double are clamped).
  [[nodiscard]] tabular_softmax_policy average_policy() const {
    tabular_softmax_policy p(row_matrix_d(
        average_probabilities().array().max(std::numeric_limits<double>::min()).log()));
    p.recenter();
    return p;
  }
  /// ONPO's auxiliary sequence `pi'_t` (logits; empty for single-sequence solvers).
  [[nodiscard]] const row_matrix_d& auxiliary_logits() const noexcept { return auxiliary_; }

  // --- solver internals (used by the solvers in solvers/nash/) -------------------------------
  /// Mutable logits of the current iterate (writes are not validated).
  Eigen::Map<row_matrix_d> mutable_logits() noexcept {
    return {policy_.parameters().data(), policy_.num_contexts(), policy_.num_actions()};
  }
  row_matrix_d& mutable_auxiliary() noexcept { return auxiliary_; }
  row_matrix_d& probability_sum() noexcept { return sum_; }
  void advance() noexcept { ++t_; }
  rng& generator() noexcept { return gen_; }
  payoff_workspace& workspace() noexcept { return workspace_; }
  vector_d& played() noexcept { return played_; }
  vector_d& opponent() noexcept { return opponent_; }
  vector_d& payoff() noexcept { return payoff_; }
  vector_d& mixed() noexcept { return mixed_; }

 private:
  tabular_softmax_policy policy_;
  row_matrix_d sum_;
  row_matrix_d auxiliary_;
  index_t t_ = 0;
  rng gen_;
  payoff_workspace workspace_;
  vector_d played_, opponent_, payoff_, mixed_;
};

}  // namespace prefopt
