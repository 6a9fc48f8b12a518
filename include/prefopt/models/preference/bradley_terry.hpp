#pragma once
/// \file
/// Bradley-Terry adapter: turns any reward model into a preference model,
/// `P(y > y' | x) = sigma(r(x, y) - r(x, y'))` (Bradley and Terry 1952; the RLHF reward-model
/// likelihood of Ziegler et al., arXiv 1909.08593, and Bai et al., arXiv 2204.05862, eq. 4.2).
///
/// The resulting preferences are transitive by construction: the response with the highest reward
/// is a Condorcet winner. Tabular reward models give a tabular preference model with a closed-form
/// `preference_matrix`.

#include <Eigen/Core>

#include <utility>

#include "prefopt/core/concepts.hpp"
#include "prefopt/core/customization.hpp"
#include "prefopt/core/math.hpp"
#include "prefopt/core/types.hpp"

namespace prefopt {

/// Reached only by a type that is not a `RewardModel`: the compiler then reports the one sentence
/// of `check_reward_model` naming the missing member, instead of a failed deduction.
template <class R>
class bradley_terry_preference {
  static_assert(check_reward_model<R>());

 public:
  explicit bradley_terry_preference(const R&) {}
};

/// `P(y > y' | x) = sigma(r(x, y) - r(x, y'))` for a `RewardModel` `R` (file comment).
template <RewardModel R>
class bradley_terry_preference<R> {
 public:
  using batch_type = typename R::batch_type;

  explicit bradley_terry_preference(R reward_model) : reward_(std::move(reward_model)) {}

  [[nodiscard]] const R& reward_model() const noexcept { return reward_; }

  [[nodiscard]] index_t num_contexts() const requires has_table_shape<R> {
    return reward_.num_contexts();
  }
  [[nodiscard]] index_t num_actions() const requires has_table_shape<R> {
    return reward_.num_actions();
  }

  /// out[i] = sigma(r(first_i) - r(second_i)).
  void preference(const pair_batch<batch_type>& pairs, Eigen::Ref<vector_d> out) const {
    PREFOPT_CHECK(pairs.second.size() == pairs.first.size() && out.size() == pairs.first.size(),
                  shape_error, "bradley_terry_preference::preference: pairs.first has ",
                  pairs.first.size(), " elements, pairs.second ", pairs.second.size(), ", out ",
                  out.size(), "; expected all equal");
    vector_d second(pairs.second.size());
    reward_.reward(pairs.first, out);
    reward_.reward(pairs.second, second);
    for (index_t i = 0; i < out.size(); ++i) out[i] = sigmoid(out[i] - second[i]);
  }

  /// out(i, j) = sigma(r(context, i) - r(context, j)) (tabular reward models only).
  void preference_matrix(index_t context, Eigen::Ref<matrix_d> out)
      const requires std::same_as<batch_type, tabular_batch> && has_table_shape<R> {
    const index_t n = reward_.num_actions();
    PREFOPT_CHECK(out.rows() == n && out.cols() == n, shape_error,
                  "bradley_terry_preference::preference_matrix: out is ", out.rows(), "x",
                  out.cols(), ", expected ", n, "x", n);
    vector_d r(n);
    rewards(reward_, context, r);
    for (index_t i = 0; i < n; ++i) {
      for (index_t j = 0; j < n; ++j) out(i, j) = i == j ? 0.5 : sigmoid(r[i] - r[j]);
    }
  }

 private:
  R reward_;
};

template <class R>
bradley_terry_preference(R) -> bradley_terry_preference<R>;

}  // namespace prefopt
