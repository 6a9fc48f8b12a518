#!/usr/bin/python3
"""Runs tabular Nash-MD and ONPO on a game of prefopt's catalog from Python and plots their
duality gaps (matplotlib, Agg backend) into a PNG.

Nash-MD (ALGORITHMS.md §5) solves the tau-regularised game: its last iterate converges to the
unique regularised equilibrium pi*_tau with KL(pi*_tau, pi_t) = O(1/t) (Nash-MD, Theorem 1; on
this game the gap DualGap_tau falls faster, about 1/t^2). ONPO (§8) solves the unregularised game:
its average iterate's gap DualGap_0 falls like 1/t, while its last iterate need not settle. Both
run through prefopt::run (prefopt.solvers); the curves are the histories it records, and the final
policies are compared with prefopt.diagnostics' equilibria (solve_regularised and
solve_unregularised). The game is the catalog's random intransitive game (EGPO's generator) with a
random reference.

    PYTHONPATH=build/py/python /usr/bin/python3 examples/python/nash_onpo_gaps.py gaps.png \
        [--actions 10] [--tau 0.1] [--iterations 2000]
"""

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from prefopt import diagnostics, games, solvers  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output", nargs="?", default="nash_onpo_gaps.png", help="PNG to write")
    parser.add_argument("--actions", type=int, default=10, help="responses of the random game")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random game")
    parser.add_argument("--tau", type=float, default=0.1, help="KL weight of Nash-MD's game")
    parser.add_argument("--iterations", type=int, default=2000)
    args = parser.parse_args()

    n = args.actions
    game = games.random_intransitive(n, args.seed, reference=games.random_reference(n, 1))
    regularised = game.with_tau(args.tau)
    every = max(1, args.iterations // 200)

    nash = solvers.nash_md().run(regularised, args.iterations, every=every)
    onpo = solvers.onpo(eta=0.5).run(game, args.iterations, every=every)

    # The final policies against the equilibria, through the diagnostics.
    solved = diagnostics.solve_regularised(regularised)
    star = solved["probabilities"]
    nash_pi = nash["state"].policy()
    kl = diagnostics.kl_divergence(regularised, star, nash_pi)
    nash_gap = diagnostics.duality_gap(regularised, nash_pi)
    onpo_avg = onpo["state"].average_policy()
    onpo_gap = diagnostics.unregularised_duality_gap(game, onpo_avg)
    eq0 = diagnostics.solve_unregularised(game)
    print(f"game: random intransitive, n = {n}, seed {args.seed}; {args.iterations} iterations")
    print(f"Nash-MD (tau = {args.tau}): DualGap_tau = {nash_gap:.3e}, "
          f"KL(pi*_tau, pi_T) = {kl:.3e} (pi*_tau by {solved['method']})")
    support = int(np.sum(eq0["probabilities"] > 1e-9))
    print(f"ONPO (tau = 0): DualGap_0(average) = {onpo_gap:.3e}, "
          f"last iterate {onpo['history']['unregularised_gap'][-1]:.3e} "
          f"(a tau = 0 equilibrium by {eq0['method']} has support {support})")

    fig, ax = plt.subplots(figsize=(7, 4.5))
    it = nash["history"]["iteration"]
    ax.loglog(it[1:], nash["history"]["duality_gap"][1:],
              label=f"Nash-MD, last iterate, DualGap$_{{\\tau={args.tau}}}$")
    ax.loglog(it[1:], onpo["history"]["average_unregularised_gap"][1:],
              label="ONPO, average iterate, DualGap$_0$")
    ax.loglog(it[1:], onpo["history"]["unregularised_gap"][1:], alpha=0.5,
              label="ONPO, last iterate, DualGap$_0$")
    ref = nash["history"]["duality_gap"][1] * it[1] / it[1:]
    ax.loglog(it[1:], ref, "k:", linewidth=1, label="1 / t")
    ax.set_xlabel("iteration")
    ax.set_ylabel("duality gap")
    ax.set_title(f"prefopt.solvers on a random intransitive game, n = {n}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.output, dpi=120)
    print(f"wrote {args.output}")

    # The example fails loudly if the methods stop converging.
    first_nash = nash["history"]["duality_gap"][1]
    first_onpo = onpo["history"]["average_unregularised_gap"][1]
    if not (nash_gap < 0.5 * first_nash and onpo_gap < 0.5 * first_onpo):
        raise SystemExit(f"nash_onpo_gaps: the gaps did not fall (Nash-MD {first_nash:.3g} -> "
                         f"{nash_gap:.3g}, ONPO {first_onpo:.3g} -> {onpo_gap:.3g})")


if __name__ == "__main__":
    main()
