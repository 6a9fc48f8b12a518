#!/usr/bin/python3
"""Turns Google Benchmark JSON from prefopt_bench_kernels into the markdown table of
benchmarks/README.md: median time and bandwidth per kernel and shape, the fraction of the matching
streaming roofline (read for one-matrix forwards, two-matrix read for KL, read+write for gradients
and log_softmax) and the speed-up over the naive Eigen baseline.

Usage: summarize.py results.json [more.json ...]
"""
import json
import statistics
import sys
from collections import defaultdict

ROOFLINE = {
    "token_log_probs": "roofline_read",
    "entropy": "roofline_read",
    "token_stats_lp_lse_entropy": "roofline_read",
    "naive_token_log_probs": "roofline_read",
    "kl_divergence": "roofline_read2",
    "token_log_probs_backward": "roofline_read_write",
    "log_softmax": "roofline_read_write",
}


def load(paths):
    runs = defaultdict(list)  # (name, shape, threads) -> [(real_ms, bytes_per_second, cpu_ms)]
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        for b in data["benchmarks"]:
            if b.get("run_type") == "aggregate":
                continue
            name, shape = b["run_name"].split("/")[:2]
            threads = int(b.get("omp_threads", 1))
            scale = {"ms": 1.0, "us": 1e-3, "ns": 1e-6, "s": 1e3}[b.get("time_unit", "ms")]
            runs[(name, shape, threads)].append(
                (b["real_time"] * scale, b.get("bytes_per_second", 0.0), b["cpu_time"] * scale,
                 b.get("GFLOPS", 0.0), b.get("extra_mem_frac", None)))
    return runs


def main(paths):
    runs = load(paths)
    med = {k: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v),
               statistics.median(r[2] for r in v), statistics.median(r[3] for r in v),
               v[0][4]) for k, v in runs.items()}
    print("| kernel | N x V | threads | median real time (ms) | GB/s | % of roofline | x naive | GB/s per CPU-second |")
    print("|---|---|---|---|---|---|---|---|")
    for (name, shape, threads), (ms, bps, cpu, gflops, mem) in sorted(med.items(), key=lambda kv: (kv[0][1], kv[0][2], kv[0][0])):
        if name.startswith("bare_gemm") or name.startswith("linear"):
            continue
        roof = ROOFLINE.get(name)
        frac = ""
        if roof and (roof, shape, threads) in med and med[(roof, shape, threads)][1] > 0:
            frac = f"{100.0 * bps / med[(roof, shape, threads)][1]:.0f}%"
        naive = ""
        if name == "token_log_probs" and ("naive_token_log_probs", shape, threads) in med:
            naive = f"{med[('naive_token_log_probs', shape, threads)][0] / ms:.1f}"
        cpu_rate = f"{bps * ms / cpu / 1e9:.2f}" if threads == 1 and cpu > 0 else ""
        print(f"| {name} | {shape} | {threads} | {ms:.1f} | {bps / 1e9:.2f} | {frac} | {naive} | {cpu_rate} |")
    print()
    print("| kernel | shape | threads | median time (ms) | GFLOP/s | vs bare GEMM | extra memory / [N, V] |")
    print("|---|---|---|---|---|---|---|")
    for (name, shape, threads), (ms, bps, cpu, gflops, mem) in sorted(med.items(), key=lambda kv: (kv[0][1], kv[0][2], kv[0][0])):
        if not (name.startswith("bare_gemm") or name.startswith("linear")):
            continue
        gemm = med.get(("bare_gemm", shape, threads))
        ratio = f"{gemm[0] / ms:.2f}x" if gemm else ""
        memtxt = f"{100.0 * mem:.1f}%" if mem is not None else ""
        print(f"| {name} | {shape} | {threads} | {ms:.0f} | {gflops:.1f} | {ratio} | {memtxt} |")


if __name__ == "__main__":
    main(sys.argv[1:])
