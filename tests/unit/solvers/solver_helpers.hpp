#pragma once
// Helpers of the solver tests: run a solver for T steps, evaluate KL to an equilibrium, fit slopes.

#include <cmath>
#include <initializer_list>
#include <vector>

#include "prefopt/diagnostics/divergence.hpp"
#include "prefopt/diagnostics/duality_gap.hpp"
#include "prefopt/diagnostics/equilibrium.hpp"
#include "prefopt/games/catalog.hpp"
#include "prefopt/solvers/common/run.hpp"

namespace test {
inline prefopt::vector_d vec(std::initializer_list<double> values) {
  prefopt::vector_d v(static_cast<prefopt::index_t>(values.size()));
  prefopt::index_t i = 0;
  for (double x : values) v[i++] = x;
  return v;
}

/// The skewed first iterate (0.7, 0.2, 0.1) of the 3-action MWU and ONPO rate tests.
inline const prefopt::vector_d skewed_start = vec({0.7, 0.2, 0.1});

/// The state after `steps` steps of `solver` on `game`.
template <class S>
auto run_steps(const S& solver, const prefopt::preference_game& game, prefopt::index_t steps) {
  auto result = prefopt::run(solver, game, {.max_iterations = steps});
  REQUIRE(result.status == prefopt::run_status::completed);
  return std::move(result.state);
}

/// Least-squares slope of log(y) against log(x).
inline double log_log_slope(const std::vector<double>& x, const std::vector<double>& y) {
  const auto n = static_cast<double>(x.size());
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double lx = std::log(x[i]), ly = std::log(y[i]);
    sx += lx;
    sy += ly;
    sxx += lx * lx;
    sxy += lx * ly;
  }
  return (n * sxy - sx * sy) / (n * sxx - sx * sx);
}
}  // namespace test
