#pragma once
/// \file
/// Tabular reward model: a `[contexts, actions]` table of finite rewards, `r(c, a) = table(c, a)`.
/// Its parameters are the table (row-major), so it is a `DifferentiableRewardModel`: the
/// Bradley-Terry fit of tabular RLHF trains it like any other (`fit_bradley_terry`).

#include <Eigen/Core>

#include "prefopt/core/concepts.hpp"
#include "prefopt/core/types.hpp"
#include "prefopt/detail/tabular_checks.hpp"

namespace prefopt {

class tabular_reward_model {
 public:
  using batch_type = tabular_batch;
  using scalar_type = double;

  /// `rewards(c, a)` is the reward of action `a` in context `c`; every entry must be finite.
  explicit tabular_reward_model(row_matrix_d rewards) : rewards_(std::move(rewards)) {
    PREFOPT_CHECK(rewards_.rows() > 0 && rewards_.cols() > 0, shape_error,
                  "tabular_reward_model: rewards is ", rewards_.rows(), "x", rewards_.cols(),
                  ", expected at least one context and one action");
    detail::check_finite_table("tabular_reward_model", "rewards", rewards_);
  }

  [[nodiscard]] index_t num_contexts() const noexcept { return rewards_.rows(); }
  [[nodiscard]] index_t num_actions() const noexcept { return rewards_.cols(); }
  [[nodiscard]] const row_matrix_d& table() const noexcept { return rewards_; }

  /// The table as a flat parameter vector (row-major: entry `c * num_actions() + a`).
  [[nodiscard]] index_t num_parameters() const noexcept { return rewards_.size(); }
  [[nodiscard]] Eigen::Map<vector_d> parameters() noexcept {
    return {rewards_.data(), rewards_.size()};
  }
  [[nodiscard]] Eigen::Map<const vector_d> parameters() const noexcept {
    return {rewards_.data(), rewards_.size()};
  }

  /// gradient[c_i * num_actions() + a_i] += weights[i] (d r(c, a) / d table = onehot).
  void accumulate_reward_gradient(const tabular_batch& batch, Eigen::Ref<const vector_d> weights,
                                  Eigen::Ref<vector_d> gradient) const {
    constexpr const char* fn = "tabular_reward_model::accumulate_reward_gradient";
    detail::check_tabular_batch(fn, batch, num_contexts(), num_actions(), weights.size());
    PREFOPT_CHECK(gradient.size() == num_parameters(), shape_error, fn, ": gradient has ",
                  gradient.size(), " entries, expected num_parameters() = ", num_parameters());
    for (std::size_t i = 0; i < batch.actions.size(); ++i) {
      gradient[batch.contexts[i] * num_actions() + batch.actions[i]] +=
          weights[static_cast<index_t>(i)];
    }
  }

  /// Subtracts each context's mean reward (preferences and RLHF optima do not change).
  void center() { rewards_.colwise() -= rewards_.rowwise().mean(); }

  /// out[i] = r(contexts[i], actions[i]).
  void reward(const tabular_batch& batch, Eigen::Ref<vector_d> out) const {
    detail::check_tabular_batch("tabular_reward_model::reward", batch, num_contexts(),
                                num_actions(), out.size());
    for (std::size_t i = 0; i < batch.actions.size(); ++i) {
      out[static_cast<index_t>(i)] = rewards_(batch.contexts[i], batch.actions[i]);
    }
  }

  /// out = r(context, .).
  void rewards(index_t context, Eigen::Ref<vector_d> out) const {
    PREFOPT_CHECK(context >= 0 && context < num_contexts(), invalid_argument,
                  "tabular_reward_model::rewards: context = ", context,
                  ", expected a context in [0, ", num_contexts(), ")");
    PREFOPT_CHECK(out.size() == num_actions(), shape_error,
                  "tabular_reward_model::rewards: out has ", out.size(),
                  " entries, expected num_actions() = ", num_actions());
    out = rewards_.row(context).transpose();
  }

 private:
  row_matrix_d rewards_;
};

static_assert(RewardModel<tabular_reward_model>);

}  // namespace prefopt
