// Example 04: tabular Nash learning on rock-paper-scissors.
//
// Shows how to build a preference game from the catalog, compute its exact regularised equilibrium
// (with its certificate), and drive two solvers through the shared run loop with callbacks:
// - Nash-MD (Munos et al., arXiv 2312.00886) on the KL-regularised game (tau = 0.1), theory step
//   size 2/(tau (t+2)); its last iterate converges to pi*_tau;
// - ONPO (Zhang et al., arXiv 2502.16852) on the unregularised game, eta = 1/2; its average
//   iterate's duality gap decays like 1/T.
// The duality gap is printed every few steps by the `progress` callback (plain lines when the
// output is not a terminal), and an `early_stop` callback ends Nash-MD once the gap is below 1e-6.

#include <cstdio>

#include "prefopt/callbacks/early_stop.hpp"
#include "prefopt/callbacks/metrics.hpp"
#include "prefopt/callbacks/progress.hpp"
#include "prefopt/diagnostics/equilibrium.hpp"
#include "prefopt/games/catalog.hpp"
#include "prefopt/solvers/common/run.hpp"
#include "prefopt/solvers/nash/mirror_descent.hpp"
#include "prefopt/solvers/nash/onpo.hpp"

int main() {
  using namespace prefopt;
  vector_d mu(3);
  mu << 0.7, 0.2, 0.1;  // a reference policy that prefers rock
  const preference_game game = rock_paper_scissors_game(mu, /*tau=*/0.1);

  const equilibrium eq = solve_regularised(game);
  std::printf("pi*_tau = (%.6f, %.6f, %.6f), gap %.2e, KL(pi, pi*) <= %.2e\n",
              eq.probabilities(0, 0), eq.probabilities(0, 1), eq.probabilities(0, 2), eq.gap,
              eq.kl_bound);

  std::printf("\nNash-MD, tau = 0.1, eta_t = 2/(tau (t+2)): regularised gap of the last iterate\n");
  early_stop stop(gap_metric{}, 1e-6, 10);
  const auto nash = run(nash_md<>{}, game, {.max_iterations = 2000},
                        progress(100, gap_metric{}, stdout, /*bar=*/0), stop);
  std::printf("KL(pi*, pi_T) = %.3e after %ld steps\n",
              kl_divergence(game, eq.probabilities, nash.state.policy()),
              static_cast<long>(nash.iterations));

  std::printf("\nONPO, tau = 0 game, eta = 1/2: unregularised gap of the average iterate\n");
  const auto optimistic = run(
      onpo<>{constant_step(0.5), exact_payoff{}, initial_policy::from_probabilities(mu)}, game,
      {.max_iterations = 1000}, progress(100, average_gap_metric{/*tau=*/0.0}, stdout, /*bar=*/0));
  const row_matrix_d average = optimistic.state.average_probabilities();
  std::printf("average policy (%.4f, %.4f, %.4f); the tau = 0 equilibrium is uniform\n",
              average(0, 0), average(0, 1), average(0, 2));
  return 0;
}
