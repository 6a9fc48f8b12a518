// The tabular Nash solvers on a user's TabularPreferenceModel: a judge that only this file defines
// (its preferences in closed form, no `preference_matrix` member, so the library derives the
// matrices from `preference` on all pairs) goes into `tabular_preference_problem`, and every solver
// runs on it through the same code as on the `preference_game` written out by hand here.
#include <catch2/catch.hpp>

#include <cmath>
#include <string>

#include "prefopt/callbacks/metrics.hpp"
#include "prefopt/games/tabular_preference_problem.hpp"
#include "prefopt/solvers/nash/mirror_descent.hpp"
#include "prefopt/solvers/nash/onpo.hpp"
#include "solver_helpers.hpp"

namespace {
using prefopt::index_t;
using prefopt::matrix_d;
using prefopt::row_matrix_d;
using prefopt::vector_d;

/// Two contexts, three responses: context 0 is rock-paper-scissors with margins
/// (0.1, 0.2, 0.3) (`P(0 > 1) = 0.6`, `P(1 > 2) = 0.7`, `P(2 > 0) = 0.8`); context 1 is
/// Bradley-Terry on scores (0, 1, 2). `broken` breaks `P(y > y) = 1/2` in context 1.
struct closed_form_judge {
  using batch_type = prefopt::tabular_batch;
  bool broken = false;
  [[nodiscard]] index_t num_contexts() const { return 2; }
  [[nodiscard]] index_t num_actions() const { return 3; }
  void preference(const prefopt::pair_batch<prefopt::tabular_batch>& pairs,
                  Eigen::Ref<vector_d> out) const {
    for (std::size_t k = 0; k < pairs.first.actions.size(); ++k) {
      out[static_cast<index_t>(k)] =
          value(pairs.first.contexts[k], pairs.first.actions[k], pairs.second.actions[k]);
    }
  }
  [[nodiscard]] double value(index_t context, index_t i, index_t j) const {
    if (i == j) return broken && context == 1 ? 0.6 : 0.5;
    if (context == 1) return 1.0 / (1.0 + std::exp(static_cast<double>(j - i)));
    const double margin[3] = {0.1, 0.2, 0.3};  // i beats i + 1 (mod 3) by margin[i]
    if ((i + 1) % 3 == j) return 0.5 + margin[i];
    return 0.5 - margin[j];
  }
};
static_assert(prefopt::TabularPreferenceModel<closed_form_judge>);

/// The same two matrices, written out.
std::vector<matrix_d> closed_form_matrices() {
  matrix_d rps(3, 3), bt(3, 3);
  rps << 0.5, 0.6, 0.2, 0.4, 0.5, 0.7, 0.8, 0.3, 0.5;
  for (index_t i = 0; i < 3; ++i) {
    for (index_t j = 0; j < 3; ++j) bt(i, j) = 1.0 / (1.0 + std::exp(static_cast<double>(j - i)));
  }
  return {rps, bt};
}

row_matrix_d closed_form_reference() {
  row_matrix_d mu(2, 3);
  mu << 0.5, 0.3, 0.2, 0.2, 0.2, 0.6;
  return mu;
}

/// Runs `solver` for `steps` steps on the user's problem and on the written-out game; both must
/// end at bitwise the same logits.
template <class Solver>
void same_as_written_game(const char* name, const Solver& solver, double tau, index_t steps) {
  INFO(name);
  const prefopt::tabular_preference_problem<closed_form_judge> problem(
      closed_form_judge{}, closed_form_reference(), tau);
  const prefopt::preference_game game(closed_form_matrices(), closed_form_reference(), tau);
  const auto a = prefopt::run(solver, problem, {.max_iterations = steps});
  const auto b = prefopt::run(solver, game, {.max_iterations = steps});
  REQUIRE(a.status == prefopt::run_status::completed);
  CHECK(a.state.policy().logits() == b.state.policy().logits());
  CHECK(a.state.average_probabilities() == b.state.average_probabilities());
}
}  // namespace

TEST_CASE("tabular_preference_problem reads the model's matrices through preference_matrix()") {
  const prefopt::tabular_preference_problem<closed_form_judge> problem(
      closed_form_judge{}, closed_form_reference(), 0.1);
  const auto expected = closed_form_matrices();
  CHECK(problem.num_contexts() == 2);
  CHECK(problem.num_actions() == 3);
  CHECK(problem.tau() == 0.1);
  for (index_t x = 0; x < 2; ++x) {
    CHECK(problem.preference(x) == expected[static_cast<std::size_t>(x)]);
  }
  CHECK((problem.log_reference() - closed_form_reference().array().log().matrix())
            .cwiseAbs()
            .maxCoeff() < 1e-15);
  CHECK(&prefopt::as_preference_game(problem) == &problem.game());
}

TEST_CASE("Every tabular Nash solver runs on a user's model as on the same game written out") {
  same_as_written_game("nash_md, theory step", prefopt::nash_md<>{}, 0.2, 300);
  same_as_written_game("omd / inpo, constant step",
                       prefopt::omd<prefopt::constant_step>{prefopt::constant_step(0.5)}, 0.2, 300);
  same_as_written_game("self_play_mwu", prefopt::self_play_mwu<>{prefopt::constant_step(0.3)}, 0.0,
                       300);
  same_as_written_game("onpo", prefopt::onpo<>{}, 0.0, 300);
  same_as_written_game("regularised_onpo", prefopt::regularised_onpo<>{prefopt::constant_step(0.5)},
                       0.2, 300);
  same_as_written_game("nash_md, sampled payoff",
                       prefopt::nash_md<prefopt::theory_step, prefopt::sampled_payoff>{{}, {8, 11}},
                       0.2, 100);
}

TEST_CASE(
    "Nash-MD on a user's model reaches the regularised equilibrium; metrics take the problem") {
  const prefopt::tabular_preference_problem<closed_form_judge> problem(
      closed_form_judge{}, closed_form_reference(), 0.2);
  const auto result = prefopt::run(prefopt::nash_md<>{}, problem, {.max_iterations = 2000});
  const auto eq = prefopt::solve_regularised(problem.game());
  const double gap = prefopt::gap_metric{}(problem, result.state);
  CHECK(gap == prefopt::duality_gap(problem.game(), result.state.policy()));
  CHECK(gap < 1e-3);
  CHECK(prefopt::kl_to_metric{eq.probabilities}(problem, result.state) < 1e-3);
}

TEST_CASE("tabular_preference_problem: bad input is a named error and builds nothing") {
  CHECK_THROWS_WITH(
      prefopt::tabular_preference_problem<closed_form_judge>(
          closed_form_judge{}, row_matrix_d::Constant(1, 3, 1.0 / 3), 0.1),
      Catch::Contains("tabular_preference_problem: reference is 1x3, expected the model's 2x3"));
  CHECK_THROWS_WITH(prefopt::tabular_preference_problem<closed_form_judge>(
                        closed_form_judge{true}, closed_form_reference(), 0.1),
                    Catch::Contains("tabular_preference_problem: model.preference_matrix[context "
                                    "1](0, 0) = 0.6, expected 1/2 on the diagonal"));
  CHECK_THROWS_WITH(prefopt::tabular_preference_problem<closed_form_judge>(
                        closed_form_judge{}, closed_form_reference(), -1.0),
                    Catch::Contains("tau = -1"));
  const auto uniform =
      prefopt::tabular_preference_problem<closed_form_judge>::with_uniform_reference(
          closed_form_judge{}, 0.0);
  CHECK(uniform.reference() == row_matrix_d::Constant(2, 3, 1.0 / 3));
}
