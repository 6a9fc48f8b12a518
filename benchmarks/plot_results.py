#!/usr/bin/python3
"""Figures from prefopt-arena results files (PNG and SVG).

Usage: /usr/bin/python3 benchmarks/plot_results.py RESULTS.json [RESULTS.json ...] --out FOLDER

For every results file of a preference game:
  gap_<name>.{png,svg}        duality gap against iteration (log-log), one line per solver
                              (mean over seeds), the regularised gap and the tau = 0 gap side by
                              side;
and, when the game carries lengths and gold rewards:
  length_tradeoff_<name>      expected length against gold reward of every solver's iterates
                              (the length/score trade-off), final points marked;
  reward_vs_sqrt_kl_<name>    gold-reward gain over the reference against sqrt(KL(pi, mu)) along
                              the RLHF-PPO runs, with the small-KL slope sqrt(2 Var_mu(r)) of the
                              closed-form optimum (Bai et al. 2022, arXiv 2204.05862, Sec. 4.3);
for a goal task (HIR):
  success_<name>              success rate against the number of rounds;
for a sequence task (a config with "sequence_task", on the shipped transformer):
  sequence_<name>             every metric against iteration, one line per trainer (mean over
                              seeds) with its mean 95% interval shaded;
  head_to_head_<name>         the judge's win rate of each trainer's final policy (row) against
                              each other's (column), mean over seeds;
  and where the task has a gold reward (the quality task):
  sequence_reward_vs_sqrt_kl_<name>  gold-reward gain against sqrt(KL(pi, mu)) along every run,
                              with the least-squares slope through the origin of the first half
                              of each PPO run's points (Bai et al.: linear early, bending later);
  sequence_length_vs_kl_<name>       response length against KL(pi, mu) along the DPO runs, DPO
                              and length-averaged DPO apart (Grinsztajn et al.: at matched KL,
                              DPO's answers grow longer);
for a token-level length sweep (examples/03_token_length_bias --output FILE):
  length_tradeoff_<name>      expected length against KL(pi, mu) and against gold reward for DPO
                              and length-averaged DPO over a sweep of beta (matched-KL view).
Needs matplotlib from Debian (python3-matplotlib); call it with /usr/bin/python3.
"""
import argparse
import json
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def mean_curve(runs, metric):
    """Mean over seeds of a metric curve (None entries skipped), with the iterations."""
    curves = [r["metrics"][metric] for r in runs if metric in r["metrics"]]
    if not curves:
        return None, None
    iterations = runs[0]["iterations"]
    length = min(len(c) for c in curves)
    mean = []
    for k in range(length):
        values = [c[k] for c in curves if c[k] is not None]
        mean.append(sum(values) / len(values) if values else None)
    return iterations[:length], mean


def save(fig, folder, stem):
    for ext in ("png", "svg"):
        fig.savefig(os.path.join(folder, f"{stem}.{ext}"), dpi=120, bbox_inches="tight")
    plt.close(fig)


def positive_points(xs, ys):
    pts = [(x, y) for x, y in zip(xs, ys) if x is not None and y is not None and x > 0 and y > 0]
    return [p[0] for p in pts], [p[1] for p in pts]


def plot_gaps(res, name, folder):
    tau = res["problem"]["tau"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=False)
    for ax, metric, title in ((axes[0], "duality_gap", f"regularised gap (tau = {tau:g})"),
                              (axes[1], "unregularised_gap", "unregularised gap (tau = 0)")):
        for solver in res["solvers"]:
            its, gap = mean_curve(solver["runs"], metric)
            if its is None:
                continue
            xs, ys = positive_points([i if i > 0 else None for i in its], gap)
            if xs:
                style = "--" if solver["evaluates"] == "average_iterate" else "-"
                ax.loglog(xs, ys, style, label=solver["name"])
        ax.set_xlabel("iteration")
        ax.set_ylabel("duality gap")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    axes[1].legend(fontsize=7, loc="lower left")
    fig.suptitle(f"{name}: duality gap (dashed: average iterate)")
    save(fig, folder, f"gap_{name}")


def family(solver):
    """Groups solvers for the trade-off figure: one colour per method family."""
    kind = solver["kind"]
    if kind == "dpo":
        averaged = solver.get("config", {}).get("length_average", False)
        return "DPO (length-averaged)" if averaged else "DPO"
    return {"rlhf_ppo": "RLHF-PPO", "ipo": "IPO", "simpo": "SimPO", "slic": "SLiC"}.get(
        kind, "Nash methods")


FAMILY_STYLE = {
    "DPO": ("tab:blue", "o"),
    "DPO (length-averaged)": ("tab:orange", "s"),
    "RLHF-PPO": ("tab:green", "^"),
    "IPO": ("tab:purple", "v"),
    "SimPO": ("tab:brown", "D"),
    "SLiC": ("tab:pink", "P"),
    "Nash methods": ("tab:gray", "X"),
}


def plot_length_tradeoff(res, name, folder):
    """Final (expected length, gold reward) of every solver, one colour per family, each family's
    points joined in order of KL(pi, mu); faint lines are the training trajectories."""
    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    finals = {}
    for solver in res["solvers"]:
        _, length = mean_curve(solver["runs"], "expected_length")
        _, gold = mean_curve(solver["runs"], "gold_reward")
        _, kl = mean_curve(solver["runs"], "kl_to_reference")
        if length is None or gold is None:
            continue
        fam = family(solver)
        color, marker = FAMILY_STYLE[fam]
        ax.plot(length, gold, "-", color=color, alpha=0.15, linewidth=0.8)
        finals.setdefault(fam, []).append((kl[-1], length[-1], gold[-1], solver["name"]))
    for fam, points in finals.items():
        color, marker = FAMILY_STYLE[fam]
        points.sort()
        ax.plot([p[1] for p in points], [p[2] for p in points], "-" + marker, color=color,
                label=fam, markersize=6)
    ref_len = res["problem"].get("reference_expected_length")
    ref_gold = res["problem"].get("reference_gold_reward")
    if ref_len is not None and ref_gold is not None:
        ax.plot(ref_len, ref_gold, "k*", markersize=12, label="reference mu")
    ax.set_xlabel("expected length")
    ax.set_ylabel("expected gold reward")
    ax.set_title(f"{name}: length / score trade-off\n(markers: final policies, joined by KL(pi, mu);"
                 " faint: trajectories)", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    save(fig, folder, f"length_tradeoff_{name}")


def plot_reward_vs_sqrt_kl(res, name, folder):
    """RLHF-PPO trajectories: gold-reward gain over mu against sqrt(KL(pi, mu)), with the
    small-KL slope sqrt(2 Var_mu(r)) of the closed-form optimum mu exp(r / tau) / Z."""
    problem = res["problem"]
    ref_gold = problem.get("reference_gold_reward")
    fig, ax = plt.subplots(figsize=(7, 5))
    plotted = False
    xmax = 0.0
    for solver in res["solvers"]:
        if solver["kind"] != "rlhf_ppo":
            continue
        _, kl = mean_curve(solver["runs"], "kl_to_reference")
        _, gold = mean_curve(solver["runs"], "gold_reward")
        if kl is None or gold is None:
            continue
        xs = [math.sqrt(max(k, 0.0)) for k in kl]
        ys = [g - ref_gold for g in gold]
        xmax = max(xmax, max(xs))
        ax.plot(xs, ys, ".-", markersize=3, linewidth=0.8, label=solver["name"])
        plotted = True
    if not plotted:
        plt.close(fig)
        return
    if "gold_rewards" in problem and len(problem["reference"]) == 1:
        mu, r = problem["reference"][0], problem["gold_rewards"][0]
        mean = sum(m * x for m, x in zip(mu, r))
        var = sum(m * (x - mean) ** 2 for m, x in zip(mu, r))
        slope = math.sqrt(2 * var)
        ax.plot([0, xmax], [0, slope * xmax], "k--", linewidth=1,
                label=f"small-KL law: slope sqrt(2 Var_mu r) = {slope:.3f}")
    ax.set_xlabel("sqrt(KL(pi, mu))")
    ax.set_ylabel("gold reward gain over mu")
    ax.set_title(f"{name}: RLHF reward gain against sqrt(KL)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    save(fig, folder, f"reward_vs_sqrt_kl_{name}")


def plot_success(res, name, folder):
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for solver in res["solvers"]:
        its, success = mean_curve(solver["runs"], "success_rate")
        if its is not None:
            ax.plot(its, success, label=solver["name"])
    ax.axhline(res["problem"]["reference_success_rate"], color="k", linestyle=":",
               label="reference mu")
    ax.set_xlabel("round (64 samples each)")
    ax.set_ylabel("success rate")
    ax.set_title(f"{name}: HIR against its baselines")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    save(fig, folder, f"success_{name}")


def plot_token_length_sweep(doc, name, folder):
    """Expected length against KL(pi, mu) (left) and against gold reward (right), one line per
    variant over the beta sweep, the reference marked."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    for averaged, fam in ((False, "DPO"), (True, "DPO (length-averaged)")):
        pts = sorted((p["kl"], p["expected_length"], p["gold_reward"], p["beta"])
                     for p in doc["points"] if p["length_average"] == averaged)
        color, marker = FAMILY_STYLE[fam]
        left.plot([p[0] for p in pts], [p[1] for p in pts], "-" + marker, color=color, label=fam)
        right.plot([p[1] for p in pts], [p[2] for p in pts], "-" + marker, color=color, label=fam)
        for kl, length, gold, beta in pts:
            left.annotate(f"{beta:g}", (kl, length), fontsize=7, xytext=(3, 3),
                          textcoords="offset points", color=color)
    ref = doc["reference"]
    left.plot(0.0, ref["expected_length"], "k*", markersize=12, label="reference mu")
    right.plot(ref["expected_length"], ref["gold_reward"], "k*", markersize=12, label="reference mu")
    left.set_xlabel("KL(pi, mu)")
    left.set_ylabel("expected length (tokens, eos included)")
    left.set_title("length at matched KL (labels: beta)", fontsize=10)
    right.set_xlabel("expected length")
    right.set_ylabel("expected gold reward")
    right.set_title("length / score trade-off", fontsize=10)
    for ax in (left, right):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    task = doc["task"]
    fig.suptitle(f"{name}: token-level task, K = {task['vocab_size']}, L = {task['max_length']}, "
                 f"length bonus {task['length_bonus']:g}, {doc['steps']} steps per run", fontsize=10)
    save(fig, folder, f"length_tradeoff_{name}")


def plot_sequence(res, name, folder):
    metrics = res["metrics"]
    cols = min(3, len(metrics))
    rows = (len(metrics) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for m, metric in enumerate(metrics):
        ax = axes[m // cols][m % cols]
        for solver in res["solvers"]:
            runs = [r for r in solver["runs"] if metric in r["curves"]]
            if not runs:
                continue
            xs, mean = seed_mean(runs, metric)
            _, lower = seed_mean(runs, metric, "lower")
            _, upper = seed_mean(runs, metric, "upper")
            (line,) = ax.plot(xs, mean, marker="o", markersize=3, label=solver["name"])
            ax.fill_between(xs, lower, upper, color=line.get_color(), alpha=0.15)
        ax.set_title(metric)
        ax.set_xlabel("iteration")
    for m in range(len(metrics), rows * cols):
        axes[m // cols][m % cols].axis("off")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(res.get("experiment", name))
    fig.tight_layout()
    save(fig, folder, f"sequence_{name}")
    pairs = res.get("head_to_head", [])
    names = [s["name"] for s in res["solvers"]]
    if not pairs or len(names) < 2:
        return
    index = {n: i for i, n in enumerate(names)}
    win = [[0.5] * len(names) for _ in names]
    for p in pairs:
        values = [r["win_rate"]["mean"] for r in p["runs"] if r["win_rate"]["mean"] is not None]
        if not values:
            continue
        a, b = index[p["first"]], index[p["second"]]
        win[a][b] = sum(values) / len(values)
        win[b][a] = 1.0 - win[a][b]
    fig, ax = plt.subplots(figsize=(1.1 * len(names) + 2, 1.0 * len(names) + 1.5))
    image = ax.imshow(win, cmap="coolwarm", vmin=0.3, vmax=0.7)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    for a in range(len(names)):
        for b in range(len(names)):
            ax.text(b, a, "-" if a == b else f"{win[a][b]:.3f}", ha="center", va="center", fontsize=8)
    fig.colorbar(image, ax=ax, label="P(row beats column)")
    ax.set_title("head to head under the judge")
    fig.tight_layout()
    save(fig, folder, f"head_to_head_{name}")


def seed_mean(runs, metric, key="mean"):
    """Seed-mean curve of a sequence metric's `key` ("mean", "lower" or "upper"), and the
    iterations."""
    length = min(len(r["curves"][metric]) for r in runs)
    means = []
    for k in range(length):
        values = [r["curves"][metric][k][key] for r in runs]
        values = [v for v in values if v is not None]
        means.append(sum(values) / len(values) if values else float("nan"))
    return runs[0]["curves"]["iteration"][:length], means


def solver_params(res, name):
    for s in res["config"].get("solvers", []):
        if s.get("name", s.get("kind")) == name:
            return s
    return {}


def plot_sequence_quality(res, name, folder):
    fig, ax = plt.subplots(figsize=(6, 4))
    for solver in res["solvers"]:
        _, kl = seed_mean(solver["runs"], "kl_to_reference")
        _, gold = seed_mean(solver["runs"], "gold_reward")
        x = [math.sqrt(max(v, 0.0)) for v in kl]
        y = [g - gold[0] for g in gold]
        (line,) = ax.plot(x, y, marker="o", markersize=3, label=solver["name"])
        if solver["kind"] == "ppo" and len(x) >= 3:
            half = x[: (len(x) + 1) // 2], y[: (len(y) + 1) // 2]
            den = sum(v * v for v in half[0])
            slope = sum(a * b for a, b in zip(*half)) / den if den > 0 else float("nan")
            ax.plot([0, max(x)], [0, slope * max(x)], "--", color=line.get_color(), linewidth=1)
            print(f"{name}: {solver['name']} early slope d(gold)/d(sqrt KL) = {slope:.3f}, "
                  f"final gain {y[-1]:.3f} at sqrt KL {x[-1]:.3f}")
    ax.axhline(0.0, color="grey", linewidth=0.5)
    ax.set_xlabel("sqrt KL(pi, mu)")
    ax.set_ylabel("gold reward gain over the reference")
    ax.legend(fontsize=7)
    ax.set_title("gold reward against sqrt KL")
    fig.tight_layout()
    save(fig, folder, f"sequence_reward_vs_sqrt_kl_{name}")
    dpo = [s for s in res["solvers"] if s["kind"] in ("dpo", "ipo")]
    if not dpo:
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for solver in dpo:
        averaged = bool(solver_params(res, solver["name"]).get("length_average", False))
        _, kl = seed_mean(solver["runs"], "kl_to_reference")
        _, length = seed_mean(solver["runs"], "length")
        ax.plot(kl, length, marker="o", markersize=3, linestyle="--" if averaged else "-",
                label=solver["name"] + (" (length-averaged)" if averaged else ""))
    ax.set_xlabel("KL(pi, mu)")
    ax.set_ylabel("response length (tokens)")
    ax.legend(fontsize=6)
    ax.set_title("length against KL: DPO and length-averaged DPO")
    fig.tight_layout()
    save(fig, folder, f"sequence_length_vs_kl_{name}")


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", help="prefopt-arena results files")
    parser.add_argument("--out", default=".", help="folder for the figures")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    for path in args.results:
        with open(path) as f:
            doc = json.load(f)
        name = os.path.splitext(os.path.basename(path))[0]
        if doc.get("kind") == "token_length_sweep":
            plot_token_length_sweep(doc, name, args.out)
            print(f"plotted {path}")
            continue
        res = doc["results"]
        if "problem" not in res:  # a sequence task
            plot_sequence(res, name, args.out)
            if "gold_reward" in res["metrics"]:
                plot_sequence_quality(res, name, args.out)
        elif res["problem"]["kind"] == "game":
            plot_gaps(res, name, args.out)
            runs = res["solvers"][0]["runs"] if res["solvers"] else []
            metrics = runs[0]["metrics"] if runs else {}
            if "expected_length" in metrics and "gold_reward" in metrics:
                plot_length_tradeoff(res, name, args.out)
            if "gold_reward" in metrics:
                plot_reward_vs_sqrt_kl(res, name, args.out)
        else:
            plot_success(res, name, args.out)
        print(f"plotted {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
