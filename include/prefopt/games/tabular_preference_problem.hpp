#pragma once
/// \file
/// A tabular Nash-learning problem built from any `TabularPreferenceModel`: the user's pairwise
/// judge over a table, a strictly positive reference `mu` and the KL weight `tau`. Every tabular
/// Nash solver (`nash_md`, `omd` / `inpo`, `self_play_mwu`, `onpo`, `regularised_onpo`) takes it
/// as a `TabularPreferenceProblem`, exactly as it takes a `preference_game`.
///
/// The model's preference matrices are read once, on construction, through
/// `preference_matrix(model, context, out)` (the model's own `preference_matrix` when it has one,
/// else its `preference` on all ordered pairs), and validated: entries in [0, 1], `P + P^T = 1`,
/// diagonal 1/2 (within `preference_tolerance`). A tabular model is fixed while a solver runs and
/// every step reads every matrix, so reading them once costs `n^2` preferences per context instead
/// of that much per step. The problem keeps the model (`model()`) and the game its matrices make
/// (`game()`, for the diagnostics and metrics, which take a `preference_game`; see
/// `as_preference_game`).
///
/// Errors name `tabular_preference_problem`, the argument and the context: a reference whose shape
/// is not the model's, a model whose matrix is not a preference matrix, and whatever
/// `preference_game` rejects (reference rows, `tau`, context weights).

#include <Eigen/Core>

#include <utility>
#include <vector>

#include "prefopt/core/assert.hpp"
#include "prefopt/core/concepts.hpp"
#include "prefopt/core/customization.hpp"
#include "prefopt/core/types.hpp"
#include "prefopt/games/preference_game.hpp"
#include "prefopt/models/preference/validate.hpp"

namespace prefopt {

template <TabularPreferenceModel M>
class tabular_preference_problem {
 public:
  using model_type = M;

  /// The model's game against `reference` (`[contexts, n]`, the model's shape, strictly positive
  /// rows summing to 1) with KL weight `tau >= 0`; `context_weights` as in `preference_game`
  /// (empty = uniform).
  tabular_preference_problem(M model, row_matrix_d reference, double tau,
                             vector_d context_weights = {})
      : model_(std::move(model)),
        game_(make_game(model_, std::move(reference), tau, std::move(context_weights))) {}

  /// A one-context model against the uniform reference.
  static tabular_preference_problem with_uniform_reference(M model, double tau) {
    const index_t contexts = model.num_contexts();
    const index_t n = model.num_actions();
    PREFOPT_CHECK(n > 0 && contexts > 0, shape_error,
                  "tabular_preference_problem::with_uniform_reference: the model is ", contexts,
                  "x", n, ", expected at least one context and one response");
    return {std::move(model), row_matrix_d::Constant(contexts, n, 1.0 / static_cast<double>(n)),
            tau};
  }

  /// The user's model, as given.
  [[nodiscard]] const M& model() const noexcept { return model_; }
  /// The game the model's matrices make with the reference and `tau`.
  [[nodiscard]] const preference_game& game() const noexcept { return game_; }

  [[nodiscard]] index_t num_contexts() const noexcept { return game_.num_contexts(); }
  [[nodiscard]] index_t num_actions() const noexcept { return game_.num_actions(); }
  [[nodiscard]] double tau() const noexcept { return game_.tau(); }
  /// `P[context]`, read from the model on construction.
  [[nodiscard]] const matrix_d& preference(index_t context) const {
    return game_.preference(context);
  }
  [[nodiscard]] const row_matrix_d& reference() const noexcept { return game_.reference(); }
  [[nodiscard]] const row_matrix_d& log_reference() const noexcept { return game_.log_reference(); }
  [[nodiscard]] const vector_d& context_weights() const noexcept { return game_.context_weights(); }

 private:
  static preference_game make_game(const M& model, row_matrix_d reference, double tau,
                                   vector_d context_weights) {
    constexpr const char* fn = "tabular_preference_problem";
    const index_t contexts = model.num_contexts();
    const index_t n = model.num_actions();
    PREFOPT_CHECK(contexts > 0 && n > 0, shape_error, fn, ": model is ", contexts, "x", n,
                  " (contexts x responses), expected at least one context and one response");
    PREFOPT_CHECK(reference.rows() == contexts && reference.cols() == n, shape_error, fn,
                  ": reference is ", reference.rows(), "x", reference.cols(),
                  ", expected the model's ", contexts, "x", n, " (contexts x responses)");
    std::vector<matrix_d> matrices(static_cast<std::size_t>(contexts), matrix_d(n, n));
    for (index_t x = 0; x < contexts; ++x) {
      matrix_d& p = matrices[static_cast<std::size_t>(x)];
      preference_matrix(model, x, p);
      validate_preference_matrix(p, fn, "model.preference_matrix", x, n);
    }
    return {std::move(matrices), std::move(reference), tau, std::move(context_weights)};
  }

  M model_;
  preference_game game_;
};

/// The problem's game (see `as_preference_game(const preference_game&)`).
template <TabularPreferenceModel M>
[[nodiscard]] const preference_game& as_preference_game(
    const tabular_preference_problem<M>& problem) noexcept {
  return problem.game();
}

static_assert(TabularPreferenceProblem<preference_game>);
static_assert(TabularPreferenceProblem<tabular_preference_problem<tabular_preference_model>>);

}  // namespace prefopt
