#pragma once
/// \file
/// Tabular preference model: one `n x n` matrix per context, `P[c](i, j) = P(y_i > y_j | c)`.
/// Matrices are validated on construction (`models/preference/validate.hpp`); the model may be
/// intransitive (rock-paper-scissors, Condorcet cycles).

#include <Eigen/Core>

#include <utility>
#include <vector>

#include "prefopt/core/concepts.hpp"
#include "prefopt/core/types.hpp"
#include "prefopt/detail/tabular_checks.hpp"
#include "prefopt/models/preference/validate.hpp"

namespace prefopt {

class tabular_preference_model {
 public:
  using batch_type = tabular_batch;

  /// One matrix per context, all of the same size; each validated within `tolerance`.
  explicit tabular_preference_model(std::vector<matrix_d> matrices,
                                    double tolerance = preference_tolerance)
      : matrices_(std::move(matrices)) {
    PREFOPT_CHECK(!matrices_.empty(), shape_error,
                  "tabular_preference_model: matrices is empty, expected at least one context");
    const index_t n = matrices_.front().rows();
    for (std::size_t c = 0; c < matrices_.size(); ++c) {
      validate_preference_matrix(matrices_[c], "tabular_preference_model", "P",
                                 static_cast<index_t>(c), n, tolerance);
    }
  }

  /// A single-context model.
  explicit tabular_preference_model(matrix_d matrix, double tolerance = preference_tolerance)
      : tabular_preference_model(std::vector<matrix_d>{std::move(matrix)}, tolerance) {}

  [[nodiscard]] index_t num_contexts() const noexcept {
    return static_cast<index_t>(matrices_.size());
  }
  [[nodiscard]] index_t num_actions() const noexcept { return matrices_.front().rows(); }

  /// The matrix of `context`.
  [[nodiscard]] const matrix_d& matrix(index_t context) const {
    check_context("tabular_preference_model::matrix", context);
    return matrices_[static_cast<std::size_t>(context)];
  }

  /// out[i] = P(first.actions[i] > second.actions[i] | contexts[i]); both halves must name the
  /// same contexts.
  void preference(const pair_batch<tabular_batch>& pairs, Eigen::Ref<vector_d> out) const {
    constexpr const char* fn = "tabular_preference_model::preference";
    detail::check_tabular_batch(fn, pairs.first, num_contexts(), num_actions(), out.size());
    detail::check_tabular_batch(fn, pairs.second, num_contexts(), num_actions(), out.size());
    for (std::size_t i = 0; i < pairs.first.actions.size(); ++i) {
      const index_t c = pairs.first.contexts[i];
      PREFOPT_CHECK(pairs.second.contexts[i] == c, invalid_argument, fn, ": pairs.first.contexts[",
                    i, "] = ", c, " but pairs.second.contexts[", i,
                    "] = ", pairs.second.contexts[i],
                    ", expected both responses of a pair to share a context");
      out[static_cast<index_t>(i)] =
          matrices_[static_cast<std::size_t>(c)](pairs.first.actions[i], pairs.second.actions[i]);
    }
  }

  /// out = P[context].
  void preference_matrix(index_t context, Eigen::Ref<matrix_d> out) const { out = matrix(context); }

 private:
  void check_context(const char* function, index_t context) const {
    PREFOPT_CHECK(context >= 0 && context < num_contexts(), invalid_argument, function,
                  ": context = ", context, ", expected a context in [0, ", num_contexts(), ")");
  }

  std::vector<matrix_d> matrices_;
};

static_assert(TabularPreferenceModel<tabular_preference_model>);

}  // namespace prefopt
