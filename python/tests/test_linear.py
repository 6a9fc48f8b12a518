"""prefopt.kernels.linear_log_probs on NumPy arrays: equal to the kernels on materialized logits,
independent of the block size, and its backward equal to the chain rule through the logits."""

import numpy as np
import pytest

import prefopt
from prefopt import kernels as k


@pytest.fixture
def problem():
    rng = np.random.default_rng(7)
    n, d, v = 29, 24, 2500
    h = rng.standard_normal((n, d))
    w = rng.standard_normal((v, d)) / 4
    b = rng.standard_normal(v)
    t = rng.integers(0, v, n)
    return h, w, b, t


def test_forward_is_independent_of_the_block_size_bit_for_bit(problem):
    h, w, b, t = problem
    a = k.linear_log_probs(h, w, t, b, outputs=["log_probs", "logsumexp", "entropy"])
    for block in (1, 2016, 5000):
        other = k.linear_log_probs(h, w, t, b, outputs=["log_probs", "logsumexp", "entropy"],
                                   block_size=block)
        for name in a:
            assert np.array_equal(a[name], other[name]), (name, block)


def test_forward_matches_the_kernels_on_the_materialized_logits(problem):
    h, w, b, t = problem
    r = k.linear_log_probs(h, w, t, b, outputs=["log_probs", "entropy"])
    z = h @ w.T + b
    np.testing.assert_allclose(r["log_probs"], k.token_log_probs(z, t), rtol=0, atol=1e-12)
    np.testing.assert_allclose(r["entropy"], k.entropy(z), rtol=0, atol=1e-12)


def test_backward_is_the_chain_rule_through_the_logits(problem):
    h, w, b, t = problem
    f = k.linear_log_probs(h, w, t, b, outputs=["log_probs", "logsumexp"])
    g = np.linspace(-1, 1, len(t))
    grads = k.linear_log_probs_backward(h, w, t, b, saved={"logsumexp": f["logsumexp"]},
                                        grads={"log_probs": g}, wrt=["hidden", "weight", "bias"])
    z = h @ w.T + b
    dz = k.token_log_probs_backward(z, t, k.logsumexp(z), g)
    np.testing.assert_allclose(grads["hidden"], dz @ w, rtol=0, atol=1e-11)
    np.testing.assert_allclose(grads["weight"], dz.T @ h, rtol=0, atol=1e-11)
    np.testing.assert_allclose(grads["bias"], dz.sum(0), rtol=0, atol=1e-11)


def test_outputs_into_caller_arrays_and_argument_errors(problem):
    h, w, b, t = problem
    lp = np.empty(len(t))
    r = k.linear_log_probs(h, w, t, b, outputs=["log_probs"], out={"log_probs": lp})
    assert r["log_probs"] is lp
    with pytest.raises(prefopt.ShapeError, match="bias has 3 entries"):
        k.linear_log_probs(h, w, t, b[:3])
    with pytest.raises(prefopt.DTypeError, match="weight has dtype float32, expected float64"):
        k.linear_log_probs(h, w.astype(np.float32), t)
    with pytest.raises(prefopt.InvalidArgument, match="wrt contains 'bias' but bias is None"):
        k.linear_log_probs_backward(h, w, t, saved={"logsumexp": np.zeros(len(t))},
                                    grads={}, wrt=["bias"])


def test_workspace_bytes_is_a_small_fraction_of_the_logits():
    n, v, d = 1024, 32000, 1024
    assert 0 < k.linear_workspace_bytes(n, v, d, "float32") < 0.1 * n * v * 4
