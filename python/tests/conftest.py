"""Shared references and error bounds for the prefopt Python tests.

References are computed in extended precision (numpy.longdouble) from the very logits the kernels
see; the bounds are the kernels' stated ones (include/prefopt/kernels/options.hpp): u the unit
roundoff of the logits' type, V the vocabulary, c = 150.
"""

import math

import numpy as np
import pytest

C = 150.0


def unit_roundoff(dtype):
    return {np.dtype(np.float32): 2.0**-24, np.dtype(np.float64): 2.0**-53}[np.dtype(dtype)]


def finite_or_zero(x):
    """x with -inf / +inf / NaN entries (from -inf logits, where p = 0) replaced by 0."""
    return np.where(np.isfinite(x), x, 0)


def ref_log_softmax(z):
    z = np.asarray(z, dtype=np.longdouble)
    m = z.max(axis=1, keepdims=True)
    lse = m + np.log(np.exp(z - m).sum(axis=1, keepdims=True))
    return z - lse, lse[:, 0]


def ref_token_log_probs(z, t):
    ls, lse = ref_log_softmax(z)
    return ls[np.arange(len(t)), t], lse


def ref_entropy(z):
    ls, _ = ref_log_softmax(z)
    p = np.exp(ls)
    return -(p * finite_or_zero(ls)).sum(axis=1)


def ref_kl(zp, zq):
    lp, _ = ref_log_softmax(zp)
    lq, _ = ref_log_softmax(zq)
    p = np.exp(lp)
    return (p * finite_or_zero(lp - lq)).sum(axis=1)


def lse_bound(dtype, value, v):
    """|err| <= u (|value| + log V + c) for log-sum-exp and log p(target)."""
    return unit_roundoff(dtype) * (np.abs(np.asarray(value, dtype=np.float64)) + math.log(v) + C)


def entropy_bound(dtype, h, v):
    return unit_roundoff(dtype) * (math.log(v) + C) * (1 + np.asarray(h, np.float64) + math.log(v))


def kl_bound(dtype, zp, zq):
    v = zp.shape[1]
    spread = np.abs(zp.astype(np.float64) - zq.astype(np.float64)).max(axis=1)
    return unit_roundoff(dtype) * (math.log(v) + C) * (2 + spread)


def grad_bound(dtype, g, lse, z, p):
    """|err| <= |g| u ((2 |lse| + |z_j| + c) p_j + 1) per gradient entry."""
    g = np.abs(np.asarray(g, np.float64))[:, None]
    lse = np.abs(np.asarray(lse, np.float64))[:, None]
    zabs = finite_or_zero(np.abs(z.astype(np.float64)))
    return g * unit_roundoff(dtype) * ((2 * lse + zabs + C) * p + 1)


def random_logits(rng, n, v, dtype, scale=3.0):
    return (scale * rng.standard_normal((n, v))).astype(dtype)


@pytest.fixture
def rng():
    return np.random.default_rng(20261201)


FLOATS = [np.float32, np.float64]
