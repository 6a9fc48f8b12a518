#!/usr/bin/python3
"""Turns Google Benchmark JSON from prefopt_bench_kernels into the markdown table of
benchmarks/README.md: median time and bandwidth per kernel and shape, the fraction of the matching
streaming roofline (read for one-matrix forwards, two-matrix read for KL, read+write for gradients
and log_softmax) and the speed-up over the naive Eigen baseline. Variants "<kernel>@<path>[+fast]" (another
instruction-set path, the fast exp) and the measuring stick `stick_lse_two_pass` are listed beside
the kernels; "<kernel>.bf16" / ".fp16" (half-format logits) get their own table against the float
path and the roofline.

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
    "stick_lse_two_pass": "roofline_read",
    "stick_lse_two_pass_deg4": "roofline_read",
}


def roofline_of(name):
    """Variants "<kernel>@<path>[+fast]" and "<kernel>.bf16" / ".fp16" share the kernel's roofline."""
    return ROOFLINE.get(name.split("@")[0].split(".")[0])


HALF_FORMATS = ("bf16", "fp16")

CEILING_SHAPE = "2x32000"        # L2-resident: arithmetic only
OUT_OF_CACHE_SHAPE = "4096x32000"  # the shape the targets are stated for


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
                 b.get("GFLOPS", 0.0), b.get("extra_mem_frac", None),
                 b.get("elements_per_second", 0.0)))
    return runs


def main(paths):
    runs = load(paths)
    med = {k: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v),
               statistics.median(r[2] for r in v), statistics.median(r[3] for r in v),
               v[0][4], statistics.median(r[5] for r in v)) for k, v in runs.items()}
    print("| kernel | N x V | threads | median real time (ms) | GB/s | % of roofline | x naive | GB/s per CPU-second |")
    print("|---|---|---|---|---|---|---|---|")
    for (name, shape, threads), (ms, bps, cpu, gflops, mem, eps) in sorted(med.items(), key=lambda kv: (kv[0][1], kv[0][2], kv[0][0])):
        if name.startswith("bare_gemm") or name.startswith("linear"):
            continue
        roof = roofline_of(name)
        frac = ""
        if roof and (roof, shape, threads) in med and med[(roof, shape, threads)][1] > 0:
            frac = f"{100.0 * bps / med[(roof, shape, threads)][1]:.0f}%"
        naive = ""
        if name == "token_log_probs" and ("naive_token_log_probs", shape, threads) in med:
            naive = f"{med[('naive_token_log_probs', shape, threads)][0] / ms:.1f}"
        cpu_rate = f"{bps * ms / cpu / 1e9:.2f}" if threads == 1 and cpu > 0 else ""
        mstxt = f"{ms:.1f}" if ms >= 1 else f"{ms:.3f}"
        print(f"| {name} | {shape} | {threads} | {mstxt} | {bps / 1e9:.2f} | {frac} | {naive} | {cpu_rate} |")
    print()
    # One thread only: the 2-row batch is below the kernels' threading threshold.
    ceiling_rows = [(name, threads) for (name, shape, threads) in med
                    if shape == CEILING_SHAPE and threads == 1 and roofline_of(name)
                    and not name.startswith("naive")]
    if ceiling_rows:
        print(f"Compute ceiling: each kernel on the L2-resident {CEILING_SHAPE} batch (no memory traffic) "
              f"as a fraction of the out-of-cache roofline at {OUT_OF_CACHE_SHAPE}, same run:")
        print()
        print("| kernel | threads | GB/s in cache | roofline GB/s out of cache | ceiling (% of roofline) | achieved out of cache |")
        print("|---|---|---|---|---|---|")
        for name, threads in sorted(ceiling_rows, key=lambda x: (x[1], x[0])):
            roof = med.get((roofline_of(name), OUT_OF_CACHE_SHAPE, threads))
            out = med.get((name, OUT_OF_CACHE_SHAPE, threads))
            if roof is None or roof[1] <= 0:
                continue
            bps = med[(name, CEILING_SHAPE, threads)][1]
            achieved = f"{100.0 * out[1] / roof[1]:.0f}%" if out else ""
            print(f"| {name} | {threads} | {bps / 1e9:.2f} | {roof[1] / 1e9:.2f} | "
                  f"{100.0 * bps / roof[1]:.0f}% | {achieved} |")
        print()
    half_table(med)
    print("| kernel | shape | threads | median time (ms) | GFLOP/s | vs bare GEMM | extra memory / [N, V] |")
    print("|---|---|---|---|---|---|---|")
    for (name, shape, threads), (ms, bps, cpu, gflops, mem, eps) in sorted(med.items(), key=lambda kv: (kv[0][1], kv[0][2], kv[0][0])):
        if not (name.startswith("bare_gemm") or name.startswith("linear")):
            continue
        gemm = med.get(("bare_gemm", shape, threads))
        ratio = f"{gemm[0] / ms:.2f}x" if gemm else ""
        memtxt = f"{100.0 * mem:.1f}%" if mem is not None else ""
        print(f"| {name} | {shape} | {threads} | {ms:.0f} | {gflops:.1f} | {ratio} | {memtxt} |")


def half_table(med):
    """bf16 / fp16 logits against the float kernel of the same shape and thread count: bytes moved
    (2 per element), GB/s of logits represented (the float bytes the same elements would be, so
    directly comparable with the float row), its ratio to float, elements/s, and the bytes moved as
    a fraction of the float read roofline."""
    rows = sorted({(name, shape, threads) for (name, shape, threads) in med
                   if "." in name and name.split(".")[-1] in HALF_FORMATS},
                  key=lambda k: (k[1], k[2], k[0]))
    if not rows:
        return
    print("Half-format logits (bf16 / fp16) against the float path, same run:")
    print()
    print("| kernel | format | N x V | threads | ms | GB/s moved | GB/s of logits represented | "
          "x float | Gelem/s | float Gelem/s | % of read roofline |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, shape, threads in rows:
        base, fmt = name.rsplit(".", 1)
        ms, bps, _, _, _, eps = med[(name, shape, threads)]
        flt = med.get((base, shape, threads))
        roof = med.get((roofline_of(name), shape, threads))
        represented = 2.0 * bps  # 2-byte elements counted as the 4-byte floats they replace
        ratio = f"{represented / flt[1]:.2f}x" if flt and flt[1] > 0 else ""
        feps = f"{flt[5] / 1e9:.3f}" if flt else ""
        frac = f"{100.0 * bps / roof[1]:.0f}%" if roof and roof[1] > 0 else ""
        mstxt = f"{ms:.1f}" if ms >= 1 else f"{ms:.3f}"
        print(f"| {base} | {fmt} | {shape} | {threads} | {mstxt} | {bps / 1e9:.2f} | "
              f"{represented / 1e9:.2f} | {ratio} | {eps / 1e9:.3f} | {feps} | {frac} |")
    print()


if __name__ == "__main__":
    main(sys.argv[1:])
