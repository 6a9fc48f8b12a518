#!/usr/bin/python3
"""prefopt.torch against PyTorch's own CPU ops, in one process, on the same tensors.

Token log-probs (float32, N x V in {4096 x 32000, 1024 x 128256}, 1 and 2 threads):
  - prefopt.torch.token_log_probs                              (forward; forward + backward)
  - torch.log_softmax(z, -1).gather(-1, t[:, None])            (same)
  - -torch.nn.functional.cross_entropy(z, t, reduction='none') (same)
Fused linear log-probs (N = 1024, D = 1024, V = 32000): prefopt.torch.linear_log_probs against
F.linear + log_softmax + gather, time and peak memory (each measured in a fresh subprocess as the
growth of the peak resident set over the inputs).
Python-side overhead per call: a 1 x 8 batch, where the kernel itself takes nanoseconds.

Not a test: a program that prints a Markdown table (and --json FILE writes the raw numbers).
Run it on a quiet machine:

    PYTHONPATH=build/py/python nice -n 19 /usr/bin/python3 benchmarks/python/bench_torch.py
    ... --tiny          (seconds: small shapes, to check that the script runs)
"""

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

import prefopt
import prefopt.torch as pt


def set_threads(n):
    torch.set_num_threads(n)
    prefopt.set_num_threads(n)


def timeit(fn, repeats, warmup=1):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def token_methods():
    return {
        "prefopt.torch.token_log_probs": lambda z, t: pt.token_log_probs(z, t),
        "log_softmax+gather": lambda z, t: torch.log_softmax(z, -1).gather(-1, t[:, None])[:, 0],
        "cross_entropy(none)": lambda z, t: -F.cross_entropy(z, t, reduction="none"),
    }


def bench_token(n, v, threads, repeats, rows):
    gen = torch.Generator().manual_seed(0)
    z = 4 * torch.randn(n, v, generator=gen)
    t = torch.randint(0, v, (n,), generator=gen)
    zg = z.clone().requires_grad_()
    g = torch.randn(n, generator=gen)
    set_threads(threads)
    results = {}
    for name, f in token_methods().items():
        with torch.no_grad():
            fwd = timeit(lambda: f(z, t), repeats)

        def fwd_bwd():
            zg.grad = None
            f(zg, t).backward(g)

        both = timeit(fwd_bwd, repeats)
        results[name] = (fwd, both)
        print(f"  {n}x{v} threads={threads} {name}: forward {1e3 * fwd[0]:.1f} ms, "
              f"fwd+bwd {1e3 * both[0]:.1f} ms", file=sys.stderr, flush=True)
    base = results["log_softmax+gather"]
    for name, (fwd, both) in results.items():
        rows.append({
            "bench": "token_log_probs", "shape": f"{n}x{v}", "threads": threads, "method": name,
            "forward_ms": 1e3 * fwd[0], "forward_min_ms": 1e3 * fwd[1],
            "fwd_bwd_ms": 1e3 * both[0], "fwd_bwd_min_ms": 1e3 * both[1],
            "forward_speedup": base[0][0] / fwd[0], "fwd_bwd_speedup": base[1][0] / both[0],
            "forward_GBps": n * v * 4 / fwd[0] / 1e9,
        })
    # Agreement on the same tensors (so the table compares like with like).
    with torch.no_grad():
        a = pt.token_log_probs(z, t)
        b = torch.log_softmax(z.double(), -1).gather(-1, t[:, None])[:, 0]
    rows[-1]["max_abs_diff_vs_float64"] = float((a.double() - b).abs().max())


def linear_case(method, n, d, v, repeats):
    """Runs in a subprocess: times one linear method and reports the peak RSS growth."""
    gen = torch.Generator().manual_seed(1)
    h = torch.randn(n, d, generator=gen) / d**0.5
    w = torch.randn(v, d, generator=gen)
    t = torch.randint(0, v, (n,), generator=gen)
    g = torch.randn(n, generator=gen)
    hg = h.clone().requires_grad_()
    wg = w.clone().requires_grad_()
    if method == "prefopt":
        def f(h_, w_):
            return pt.linear_log_probs(h_, w_, t)
    else:
        def f(h_, w_):
            return torch.log_softmax(F.linear(h_, w_), -1).gather(-1, t[:, None])[:, 0]
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with torch.no_grad():
        f(h, w)
    fwd_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss
    with torch.no_grad():
        fwd = timeit(lambda: f(h, w), repeats, warmup=0)

    def fwd_bwd():
        hg.grad = None
        wg.grad = None
        f(hg, wg).backward(g)

    fwd_bwd()
    both_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss
    both = timeit(fwd_bwd, repeats, warmup=0)
    return {"forward_ms": 1e3 * fwd[0], "fwd_bwd_ms": 1e3 * both[0],
            "forward_peak_MiB": fwd_peak / 1024, "fwd_bwd_peak_MiB": both_peak / 1024}


def bench_linear(n, d, v, threads, repeats, rows):
    for method in ("prefopt", "torch"):
        out = subprocess.run(
            [sys.executable, __file__, "--linear-case", method, str(n), str(d), str(v),
             str(threads), str(repeats)],
            check=True, capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(f"  linear {method} threads={threads}: {r}", file=sys.stderr, flush=True)
        rows.append({"bench": "linear_log_probs", "shape": f"N{n}_D{d}_V{v}", "threads": threads,
                     "method": ("prefopt.torch.linear_log_probs" if method == "prefopt"
                                else "F.linear+log_softmax+gather"), **r,
                     "logits_MiB": n * v * 4 / 2**20})


def bench_overhead(rows, calls=20000):
    set_threads(1)
    z = torch.randn(1, 8)
    t = torch.zeros(1, dtype=torch.int64)
    zn, tn = z.numpy(), t.numpy().astype("int32")
    out = torch.empty(1).numpy()
    cases = {
        "prefopt.kernels.token_log_probs (numpy, out=)":
            lambda: prefopt.kernels.token_log_probs(zn, tn, out=out),
        "prefopt.kernels.token_log_probs (torch tensors)":
            lambda: prefopt.kernels.token_log_probs(z, t),
        "prefopt.torch.token_log_probs (no_grad)": lambda: pt.token_log_probs(z, t),
        "log_softmax+gather (no_grad)":
            lambda: torch.log_softmax(z, -1).gather(-1, t[:, None])[:, 0],
    }
    with torch.no_grad():
        for name, f in cases.items():
            per = []
            for _ in range(5):
                start = time.perf_counter()
                for _ in range(calls):
                    f()
                per.append((time.perf_counter() - start) / calls)
            rows.append({"bench": "overhead", "shape": "1x8", "threads": 1, "method": name,
                         "us_per_call": 1e6 * min(per)})


def print_tables(rows):
    tok = [r for r in rows if r["bench"] == "token_log_probs"]
    if tok:
        print("| shape | threads | method | forward (ms) | x PyTorch | fwd+bwd (ms) | x PyTorch | "
              "forward GB/s |")
        print("|---|---|---|---|---|---|---|---|")
        for r in tok:
            print(f"| {r['shape']} | {r['threads']} | {r['method']} | {r['forward_ms']:.1f} | "
                  f"{r['forward_speedup']:.1f} | {r['fwd_bwd_ms']:.1f} | "
                  f"{r['fwd_bwd_speedup']:.1f} | {r['forward_GBps']:.2f} |")
    lin = [r for r in rows if r["bench"] == "linear_log_probs"]
    if lin:
        print()
        print("| shape | threads | method | forward (ms) | fwd+bwd (ms) | forward peak (MiB) | "
              "fwd+bwd peak (MiB) | [N, V] logits (MiB) |")
        print("|---|---|---|---|---|---|---|---|")
        for r in lin:
            print(f"| {r['shape']} | {r['threads']} | {r['method']} | {r['forward_ms']:.0f} | "
                  f"{r['fwd_bwd_ms']:.0f} | {r['forward_peak_MiB']:.0f} | "
                  f"{r['fwd_bwd_peak_MiB']:.0f} | {r['logits_MiB']:.0f} |")
    ov = [r for r in rows if r["bench"] == "overhead"]
    if ov:
        print()
        print("| call (1 x 8 batch) | us per call |")
        print("|---|---|")
        for r in ov:
            print(f"| {r['method']} | {r['us_per_call']:.2f} |")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--linear-case":
        method, n, d, v, threads, repeats = sys.argv[2], *map(int, sys.argv[3:8])
        set_threads(threads)
        print(json.dumps(linear_case(method, n, d, v, repeats)))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="small shapes, a few seconds")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--no-linear", action="store_true")
    ap.add_argument("--no-token", action="store_true")
    ap.add_argument("--linear-shape", type=int, nargs=3, metavar=("N", "D", "V"),
                    default=[1024, 1024, 32000])
    ap.add_argument("--json", help="write the raw rows here")
    a = ap.parse_args()
    shapes = [(64, 1000)] if a.tiny else [(4096, 32000), (1024, 128256)]
    linear = (64, 64, 2000) if a.tiny else tuple(a.linear_shape)
    repeats = 2 if a.tiny else a.repeats
    rows = []
    print(f"torch {torch.__version__}, prefopt SIMD: {prefopt.simd_instruction_sets}, "
          f"OpenMP: {prefopt.openmp}", file=sys.stderr)
    for n, v in [] if a.no_token else shapes:
        for threads in a.threads:
            bench_token(n, v, threads, repeats, rows)
    if not a.no_linear:
        for threads in a.threads:
            bench_linear(*linear, threads, max(1, repeats // 2), rows)
    bench_overhead(rows, calls=200 if a.tiny else 20000)
    print_tables(rows)
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
