#!/usr/bin/python3
"""Trains a small torch.nn language model with DPO on CPU, the per-token log-probs going through
prefopt.torch (forward and backward in prefopt's C++ kernels), and logs prefopt.losses' TRL-named
DPO metrics each step.

The task: prompts are a random token; the "chosen" response repeats the prompt token, the
"rejected" one is a random token sequence. A frozen copy of the initial model is the reference.
After a few dozen steps the policy prefers the chosen responses (rewards/accuracies -> 1).

    PYTHONPATH=build/py/python /usr/bin/python3 examples/python/dpo_torch.py [--steps 60]
"""

import argparse
import copy

import torch
import torch.nn.functional as F

import prefopt
import prefopt.torch as pt


class TinyLM(torch.nn.Module):
    """Embedding -> GRU -> output layer: logits [B, T, V] for next-token prediction."""

    def __init__(self, vocab, dim):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, dim)
        self.rnn = torch.nn.GRU(dim, dim, batch_first=True)
        self.head = torch.nn.Linear(dim, vocab)

    def forward(self, tokens):
        h, _ = self.rnn(self.embed(tokens))
        return self.head(h)


def sequence_log_probs(model, seqs, prompt_len):
    """Sum of log p(token_t | tokens_<t) over the response tokens, through prefopt.torch."""
    logits = model(seqs[:, :-1])  # [B, T-1, V], contiguous: viewed as [N, V] without a copy
    targets = seqs[:, 1:]
    mask = torch.zeros_like(targets, dtype=torch.bool)
    mask[:, prompt_len - 1:] = True  # score response tokens only
    lp = pt.token_log_probs(logits, targets, mask)  # [B, T-1], 0 on prompt positions
    return lp.sum(-1)


def batch(gen, b, vocab, resp_len):
    prompt = torch.randint(0, vocab, (b, 1), generator=gen)
    chosen = torch.cat([prompt, prompt.expand(b, resp_len)], 1)
    rejected = torch.cat([prompt, torch.randint(0, vocab, (b, resp_len), generator=gen)], 1)
    return chosen, rejected


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--beta", type=float, default=0.1)
    a = ap.parse_args()
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    vocab, dim, resp_len, b = 64, 32, 6, 32
    policy = TinyLM(vocab, dim)
    reference = copy.deepcopy(policy).requires_grad_(False)
    opt = torch.optim.Adam(policy.parameters(), lr=3e-3)
    for step in range(a.steps):
        chosen, rejected = batch(gen, b, vocab, resp_len)
        s_w = sequence_log_probs(policy, chosen, 1)
        s_l = sequence_log_probs(policy, rejected, 1)
        with torch.no_grad():
            r_w = sequence_log_probs(reference, chosen, 1)
            r_l = sequence_log_probs(reference, rejected, 1)
        loss = -F.logsigmoid(a.beta * ((s_w - r_w) - (s_l - r_l))).mean()
        # prefopt.losses computes the same loss, its gradients w.r.t. the sums and TRL's metrics.
        m = prefopt.losses.dpo_loss(s_w.detach(), s_l.detach(), r_w, r_l, beta_dpo=a.beta)
        assert abs(m["loss"] - loss.item()) < 1e-5 * max(1.0, loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 10 == 0 or step == a.steps - 1:
            mm = m["metrics"]
            print(f"step {step:3d}  loss {m['loss']:.4f}  rewards/margins "
                  f"{mm['rewards/margins']:+.3f}  rewards/accuracies {mm['rewards/accuracies']:.2f}")


if __name__ == "__main__":
    main()
