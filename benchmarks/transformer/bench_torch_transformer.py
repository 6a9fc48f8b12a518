#!/usr/bin/env python3
"""The shipped transformer's architecture in PyTorch (eager, CPU): the comparison for
`prefopt_bench_transformer`. Same sizes, same work:

- forward + backward: logits of 16 sequences x 128 positions, then the backward of
  `sum(logits * dlogits)` (what a training step asks of the model);
- decoding with a key/value cache: batch 1 and 16, one prompt token, 128 new tokens, greedy;
- one offline DPO step (`--dpo`, the trainers' benchmark): 16 pairs of 128-token responses, the
  reference log-probs given (cached), the policy's forward + backward on the 32 sequences, the
  sigmoid loss (beta = 0.1) and one Adam step.

Pre-norm GPT-2 blocks (causal multi-head attention, tanh-GELU MLP), learned positions, an untied
output head, exactly as `include/prefopt/models/transformer/transformer.hpp`.

Usage: /usr/bin/python3 bench_torch_transformer.py [--threads N] [--tiny]
Prints one JSON object.
"""

import argparse
import json
import math
import time

import torch
import torch.nn.functional as F


class Block(torch.nn.Module):
    def __init__(self, d, heads, ff):
        super().__init__()
        self.heads = heads
        self.ln1 = torch.nn.LayerNorm(d)
        self.qkv = torch.nn.Linear(d, 3 * d)
        self.o = torch.nn.Linear(d, d)
        self.ln2 = torch.nn.LayerNorm(d)
        self.fc = torch.nn.Linear(d, ff)
        self.proj = torch.nn.Linear(ff, d)

    def attend(self, x, cache=None):
        b, t, d = x.shape
        h = self.heads
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
        q = q.view(b, t, h, d // h).transpose(1, 2)
        k = k.view(b, t, h, d // h).transpose(1, 2)
        v = v.view(b, t, h, d // h).transpose(1, 2)
        if cache is not None:
            if cache.get("k") is not None:
                k = torch.cat([cache["k"], k], dim=2)
                v = torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
        s = (q @ k.transpose(-2, -1)) / math.sqrt(d // h)
        tk = k.shape[2]
        if t > 1:
            mask = torch.ones(t, tk, dtype=torch.bool).tril(tk - t)
            s = s.masked_fill(~mask, float("-inf"))
        y = (s.softmax(-1) @ v).transpose(1, 2).reshape(b, t, d)
        return self.o(y)

    def forward(self, x, cache=None):
        x = x + self.attend(x, cache)
        return x + self.proj(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class Model(torch.nn.Module):
    def __init__(self, vocab, d, layers, heads, max_length):
        super().__init__()
        self.tok = torch.nn.Embedding(vocab, d)
        self.pos = torch.nn.Embedding(max_length, d)
        self.blocks = torch.nn.ModuleList([Block(d, heads, 4 * d) for _ in range(layers)])
        self.ln_f = torch.nn.LayerNorm(d)
        self.head = torch.nn.Linear(d, vocab)

    def forward(self, tokens, start=0, caches=None):
        t = tokens.shape[1]
        x = self.tok(tokens) + self.pos(torch.arange(start, start + t))
        for i, block in enumerate(self.blocks):
            x = block(x, None if caches is None else caches[i])
        return self.head(self.ln_f(x))


def best_of(reps, f):
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t0)
    return best


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--tiny", action="store_true")
    p.add_argument("--dpo", action="store_true", help="also time one offline DPO step")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    vocab, d, layers, heads = (64, 32, 2, 4) if a.tiny else (8192, 256, 4, 4)
    sequences, length, new_tokens = (2, 16, 8) if a.tiny else (16, 128, 128)
    reps = 1 if a.tiny else 3
    model = Model(vocab, d, layers, heads, 160)
    tokens = torch.randint(0, vocab, (sequences, length))
    dlogits = torch.randn(sequences, length, vocab) * 1e-3

    def forward():
        with torch.no_grad():
            model(tokens)

    def forward_backward():
        model.zero_grad(set_to_none=False)
        (model(tokens) * dlogits).sum().backward()

    forward()
    t_fwd = best_of(reps, forward)
    forward_backward()
    t_fb = best_of(reps, forward_backward)

    def decode(batch):
        with torch.no_grad():
            caches = [dict() for _ in range(layers)]
            x = torch.arange(1, batch + 1).view(batch, 1)
            for t in range(new_tokens):
                z = model(x, start=t, caches=caches)
                x = z[:, -1].argmax(-1, keepdim=True)

    decode(1)
    t_d1 = best_of(reps, lambda: decode(1))
    b16 = 2 if a.tiny else 16
    t_d16 = best_of(reps, lambda: decode(b16))
    extra = {}
    if a.dpo:
        pairs = sequences
        chosen = torch.randint(0, vocab, (pairs, length + 1))
        rejected = torch.randint(0, vocab, (pairs, length + 1))
        both = torch.cat([chosen, rejected])
        ref = torch.randn(2 * pairs) - 300.0
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)

        def dpo_step():
            opt.zero_grad(set_to_none=False)
            logits = model(both[:, :-1])
            lp = logits.log_softmax(-1).gather(-1, both[:, 1:, None]).squeeze(-1).sum(-1)
            u = 0.1 * ((lp[:pairs] - ref[:pairs]) - (lp[pairs:] - ref[pairs:]))
            (-F.logsigmoid(u)).mean().backward()
            opt.step()

        dpo_step()
        extra["dpo_step_s"] = round(best_of(reps, dpo_step), 4)
    n = sequences * length
    print(json.dumps({**extra,
        "threads": a.threads,
        "torch": torch.__version__,
        "forward_s": round(t_fwd, 4),
        "forward_backward_s": round(t_fb, 4),
        "forward_backward_tokens_per_s": round(n / t_fb),
        "decode_batch1_tokens_per_s": round(new_tokens / t_d1),
        "decode_batch16_tokens_per_s": round(new_tokens * b16 / t_d16),
    }))


if __name__ == "__main__":
    main()
