// Steps of the tabular solvers allocate nothing once the state exists (the benchmark's sub-
// microsecond per-step overhead at n = 10 depends on it). Built as its own executable, because
// EIGEN_RUNTIME_NO_MALLOC must be defined before Eigen in every translation unit that uses it.
// EIGEN_RUNTIME_NO_MALLOC is defined for the whole executable (tests/unit/solvers/CMakeLists.txt).
#include <stdexcept>
// Make Eigen's allocation check fire in every build type (eigen_assert is a no-op under NDEBUG).
#define eigen_assert(x)                                             \
  do {                                                              \
    if (!(x)) throw std::runtime_error("eigen_assert failed: " #x); \
  } while (false)
#include <catch2/catch.hpp>

#include "prefopt/games/catalog.hpp"
#include "prefopt/solvers/nash/mirror_descent.hpp"
#include "prefopt/solvers/nash/onpo.hpp"

using namespace prefopt;

namespace {
template <class S>
void check_steps_do_not_allocate(const S& solver, const preference_game& game) {
  auto state = solver.init(game);
  (void)solver.step(game, state);  // warm-up outside the no-malloc bracket
  Eigen::internal::set_is_malloc_allowed(false);
  bool ok = true;
  try {
    for (int t = 0; t < 20; ++t) (void)solver.step(game, state);
  } catch (...) {
    ok = false;
  }
  Eigen::internal::set_is_malloc_allowed(true);
  CHECK(ok);
  CHECK(state.iteration() == 21);
}
}  // namespace

TEST_CASE("The allocation check detects an Eigen heap allocation (control)") {
  Eigen::internal::set_is_malloc_allowed(false);
  bool thrown = false;
  try {
    vector_d v(100);
    v.setZero();
  } catch (const std::runtime_error&) {
    thrown = true;
  }
  Eigen::internal::set_is_malloc_allowed(true);
  CHECK(thrown);
}

TEST_CASE("Exact and sampled steps of Nash-MD, OMD, MWU and ONPO do not allocate") {
  const auto game = mixture_game(
      {random_intransitive_game(10, 1, {}, 0.1), random_intransitive_game(10, 2, {}, 0.1)});
  check_steps_do_not_allocate(nash_md<>{}, game);
  check_steps_do_not_allocate(nash_md<constant_step>{constant_step(1.0)}, game);
  check_steps_do_not_allocate(omd<>{}, game);
  check_steps_do_not_allocate(self_play_mwu<>{constant_step(0.1)}, game);
  check_steps_do_not_allocate(onpo<>{}, game);
  check_steps_do_not_allocate(regularised_onpo<>{}, game);
  check_steps_do_not_allocate(
      nash_md<theory_step, sampled_payoff>{theory_step{}, sampled_payoff{8, 1}}, game);
}
