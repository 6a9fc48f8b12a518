"""prefopt kernels as ``torch.autograd.Function``s (CPU tensors, float32 / float64).

Drop-in replacements for the usual PyTorch idioms, forward and backward through the C++ kernels:

==============================================  ===============================================
prefopt.torch                                   PyTorch equivalent
==============================================  ===============================================
``token_log_probs(logits, targets)``            ``log_softmax(logits, -1).gather(-1, t[..., None])[..., 0]``
                                                (= ``-cross_entropy(..., reduction='none')``)
``entropy(logits)``                             ``-(softmax(z) * log_softmax(z)).sum(-1)``
``kl_divergence(p_logits, q_logits)``           ``(p * (log p - log q)).sum(-1)``, p, q softmaxes
``linear_log_probs(hidden, weight, targets)``   ``token_log_probs(hidden @ weight.T + bias, targets)``
                                                without ever building the ``[N, V]`` logits
==============================================  ===============================================

Shapes: ``logits`` is ``[..., V]`` and must be viewable as ``[N, V]`` without a copy (any tensor
whose last dimension is contiguous and whose leading dimensions flatten, e.g. the output of a
linear layer); ``targets`` / ``mask`` are ``[...]`` (int32/int64 token ids; bool/uint8 masks, 0:
position not scored, value and gradient 0). Results have the leading shape ``[...]`` and the
logits' dtype. Nothing is copied: a tensor that cannot be viewed so raises
``prefopt.InvalidArgument`` (call ``.contiguous()`` yourself if you accept the copy). The backward
passes allocate only the gradient they return. Double backward is not supported
(``once_differentiable``).

Accuracy: ``include/prefopt/kernels/options.hpp`` (float32 results agree with a float64 reference
within ``u (|value| + log V + 150)``, u = 2^-24). Threads: ``prefopt.set_num_threads`` (or
``torch.set_num_threads``: both set the shared OpenMP runtime when torch uses libgomp).
"""

from __future__ import annotations

from typing import Optional, Tuple, Union

import torch
from torch.autograd.function import once_differentiable

from . import InvalidArgument
from . import kernels as _k

__all__ = ["token_log_probs", "entropy", "kl_divergence", "linear_log_probs"]


def _rows(fn: str, name: str, t: torch.Tensor) -> torch.Tensor:
    """``t`` ([..., V]) as a [N, V] view of the same memory, or InvalidArgument."""
    if not isinstance(t, torch.Tensor):
        raise InvalidArgument(f"{fn}: {name} is a {type(t).__name__}, expected a torch.Tensor")
    if t.dim() == 2:
        return t
    if t.dim() < 1:
        raise InvalidArgument(f"{fn}: {name} is a scalar, expected [..., V]")
    try:
        return t.view(-1, t.shape[-1])
    except RuntimeError:
        raise InvalidArgument(
            f"{fn}: {name} with shape {tuple(t.shape)} and strides {t.stride()} cannot be viewed "
            f"as [N, V] without a copy; pass {name}.contiguous() if the copy is acceptable"
        ) from None


def _flat(t: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    # targets and masks are [N] (4 or 8 bytes a row): reshape copies only a non-viewable one.
    return t if t is None or t.dim() == 1 else t.reshape(-1)


def _lead(r: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``r`` ([N]) viewed with the leading shape of ``like`` ([..., V])."""
    return r if like.dim() == 2 else r.view(like.shape[:-1])


# Outputs are allocated by the kernels as NumPy arrays and handed to torch with from_numpy (same
# memory): one conversion per output fewer than passing torch.empty tensors as out=.
_t = torch.from_numpy


class _TokenLogProbs(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, targets, mask, accumulation):
        lp, lse = _k.token_log_probs(logits, targets, mask, with_lse=True, accumulation=accumulation)
        ctx.save_for_backward(logits, targets, _t(lse), mask)
        ctx.accumulation = accumulation
        return _t(lp)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        logits, targets, lse, mask = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None, None, None
        d = _k.token_log_probs_backward(
            logits, targets, lse, grad.contiguous(), mask, accumulation=ctx.accumulation
        )
        return _t(d), None, None, None


def token_log_probs(
    logits: torch.Tensor,
    targets: torch.Tensor,
    mask: Optional[torch.Tensor] = None,
    *,
    accumulation: str = "input",
) -> torch.Tensor:
    """``log softmax(logits)[..., targets]``: logits ``[..., V]`` float32/float64, targets ``[...]``
    int32/int64 in ``[0, V)`` (unchecked where ``mask`` is 0), mask ``[...]`` bool/uint8 or None.
    Returns ``[...]`` in the logits' dtype; differentiable in ``logits``. Raises prefopt.Error
    (target out of range, NaN/+inf logits: the message names the row)."""
    z = _rows("token_log_probs", "logits", logits)
    return _lead(_TokenLogProbs.apply(z, _flat(targets), _flat(mask), accumulation), logits)


class _Entropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, mask, accumulation):
        h, lse = _k.entropy(logits, mask, with_lse=True, accumulation=accumulation)
        h = _t(h)
        ctx.save_for_backward(logits, _t(lse), h, mask)
        ctx.accumulation = accumulation
        return h

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        logits, lse, h, mask = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None, None
        d = _k.entropy_backward(logits, lse, h, grad.contiguous(), mask,
                                accumulation=ctx.accumulation)
        return _t(d), None, None


def entropy(
    logits: torch.Tensor, mask: Optional[torch.Tensor] = None, *, accumulation: str = "input"
) -> torch.Tensor:
    """Entropy (nats) of ``softmax(logits)`` over the last dimension: logits ``[..., V]``,
    result ``[...]``; differentiable in ``logits``."""
    z = _rows("entropy", "logits", logits)
    return _lead(_Entropy.apply(z, _flat(mask), accumulation), logits)


class _KL(torch.autograd.Function):
    @staticmethod
    def forward(ctx, p_logits, q_logits, mask, accumulation):
        kl, lse_p, lse_q = _k.kl_divergence(
            p_logits, q_logits, mask, with_lse=True, accumulation=accumulation
        )
        kl = _t(kl)
        ctx.save_for_backward(p_logits, q_logits, _t(lse_p), _t(lse_q), kl, mask)
        ctx.accumulation = accumulation
        return kl

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        p_logits, q_logits, lse_p, lse_q, kl, mask = ctx.saved_tensors
        want_p, want_q = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        if not (want_p or want_q):
            return None, None, None, None
        r = _k.kl_divergence_backward(
            p_logits, q_logits, lse_p, lse_q, kl, grad.contiguous(), mask,
            q_grad=want_q, accumulation=ctx.accumulation,
        )
        dp, dq = (_t(r[0]), _t(r[1])) if want_q else (_t(r), None)
        return (dp if want_p else None), dq, None, None


def kl_divergence(
    p_logits: torch.Tensor,
    q_logits: torch.Tensor,
    mask: Optional[torch.Tensor] = None,
    *,
    accumulation: str = "input",
) -> torch.Tensor:
    """Exact ``KL(softmax(p_logits) || softmax(q_logits))`` over the last dimension (p is the
    sampling distribution): both ``[..., V]`` of one dtype; result ``[...]``; differentiable in
    both (no ``dq`` is computed for a ``q_logits`` that does not require grad, e.g. a frozen
    reference)."""
    p = _rows("kl_divergence", "p_logits", p_logits)
    q = _rows("kl_divergence", "q_logits", q_logits)
    return _lead(_KL.apply(p, q, _flat(mask), accumulation), p_logits)


class _LinearLogProbs(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, mask, with_entropy, block_size, accumulation):
        n = hidden.shape[0]
        outs = {
            "log_probs": torch.empty(n, dtype=hidden.dtype),
            "logsumexp": torch.empty(n, dtype=hidden.dtype),
        }
        if with_entropy:
            outs["entropy"] = torch.empty(n, dtype=hidden.dtype)
        _k.linear_log_probs(
            hidden, weight, targets, bias, mask, outputs=list(outs), out=outs,
            block_size=block_size, accumulation=accumulation,
        )
        ctx.save_for_backward(
            hidden, weight, bias, targets, mask, outs["logsumexp"], outs.get("entropy")
        )
        ctx.with_entropy = with_entropy
        ctx.block_size = block_size
        ctx.accumulation = accumulation
        if with_entropy:
            return outs["log_probs"], outs["entropy"]
        return outs["log_probs"]

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_lp, grad_h=None):
        hidden, weight, bias, targets, mask, lse, h = ctx.saved_tensors
        wrt = [name for name, need in zip(("hidden", "weight", "bias"), ctx.needs_input_grad[:3])
               if need]
        nones = (None,) * 5
        if not wrt:
            return (None, None, None) + nones
        saved = {"logsumexp": lse}
        grads = {}
        if grad_lp is not None:
            grads["log_probs"] = grad_lp.contiguous()
        if ctx.with_entropy and grad_h is not None:
            grads["entropy"] = grad_h.contiguous()
            saved["entropy"] = h
        out = {
            "hidden": torch.empty(hidden.shape, dtype=hidden.dtype),
            "weight": torch.empty(weight.shape, dtype=weight.dtype),
        }
        if bias is not None:
            out["bias"] = torch.empty(bias.shape, dtype=bias.dtype)
        out = {k: out[k] for k in wrt}
        _k.linear_log_probs_backward(
            hidden, weight, targets, bias, saved=saved, grads=grads, mask=mask, wrt=wrt, out=out,
            block_size=ctx.block_size, accumulation=ctx.accumulation,
        )
        return (out.get("hidden"), out.get("weight"), out.get("bias")) + nones


def linear_log_probs(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    bias: Optional[torch.Tensor] = None,
    mask: Optional[torch.Tensor] = None,
    *,
    with_entropy: bool = False,
    block_size: int = 1008,
    accumulation: str = "input",
) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
    """Per-token log-probs of ``softmax(hidden @ weight.T + bias)`` at ``targets`` (and the
    entropies with ``with_entropy``) without materializing the ``[N, V]`` logits: hidden
    ``[..., D]``, weight ``[V, D]`` (e.g. ``lm_head.weight``), bias ``[V]`` or None, targets
    ``[...]``. Differentiable in hidden, weight and bias; the backward recomputes the logits block
    by block. ``block_size`` changes memory and speed, never the forward values."""
    h = _rows("linear_log_probs", "hidden", hidden)
    r = _LinearLogProbs.apply(
        h, weight, bias, _flat(targets), _flat(mask), with_entropy, block_size, accumulation
    )
    lead = hidden.shape[:-1]
    if with_entropy:
        return r[0].view(lead), r[1].view(lead)
    return r.view(lead)
