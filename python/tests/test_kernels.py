"""prefopt.kernels on NumPy arrays: values and gradients against an extended-precision reference
within the kernels' stated bounds, masks, targets dtypes, outputs into caller arrays."""

import numpy as np
import pytest

import prefopt
from prefopt import kernels as k

from conftest import (
    FLOATS,
    entropy_bound,
    finite_or_zero,
    grad_bound,
    kl_bound,
    lse_bound,
    random_logits,
    ref_entropy,
    ref_kl,
    ref_log_softmax,
    ref_token_log_probs,
)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape", [(1, 1), (7, 5), (33, 1000), (4, 5003)])
def test_token_log_probs_match_the_reference_within_the_stated_bound(rng, dtype, shape):
    n, v = shape
    z = random_logits(rng, n, v, dtype)
    t = rng.integers(0, v, n)
    lp, lse = k.token_log_probs(z, t, with_lse=True)
    ref_lp, ref_lse = ref_token_log_probs(z, t)
    assert lp.dtype == dtype and lse.dtype == dtype and lp.shape == (n,)
    assert np.all(np.abs(lp - ref_lp) <= lse_bound(dtype, ref_lp, v))
    assert np.all(np.abs(lse - ref_lse) <= lse_bound(dtype, ref_lse, v))
    assert np.array_equal(k.logsumexp(z), lse)


@pytest.mark.parametrize("dtype", FLOATS)
def test_int32_and_int64_targets_give_identical_log_probs(rng, dtype):
    z = random_logits(rng, 20, 300, dtype)
    t = rng.integers(0, 300, 20)
    assert np.array_equal(k.token_log_probs(z, t.astype(np.int32)),
                          k.token_log_probs(z, t.astype(np.int64)))


def test_masked_rows_are_zero_and_their_targets_unchecked(rng):
    z = random_logits(rng, 6, 50, np.float32)
    t = rng.integers(0, 50, 6)
    mask = np.array([1, 0, 1, 1, 0, 1], dtype=np.uint8)
    t_bad = t.copy()
    t_bad[[1, 4]] = [-100, 2**40]  # ignore-index style and out of int32: masked, so fine
    lp = k.token_log_probs(z, t_bad, mask)
    full = k.token_log_probs(z, t)
    assert np.all(lp[[1, 4]] == 0)
    assert np.array_equal(lp[mask == 1], full[mask == 1])
    assert np.array_equal(k.token_log_probs(z, t, mask.astype(bool)), k.token_log_probs(z, t, mask))


def test_a_target_whose_logit_is_minus_inf_gives_minus_inf(rng):
    z = random_logits(rng, 3, 10, np.float64)
    z[1, 4] = -np.inf
    lp = k.token_log_probs(z, np.array([0, 4, 2]))
    assert lp[1] == -np.inf and np.all(np.isfinite(lp[[0, 2]]))


@pytest.mark.parametrize("dtype", FLOATS)
def test_outputs_go_into_caller_arrays(rng, dtype):
    z = random_logits(rng, 9, 70, dtype)
    t = rng.integers(0, 70, 9)
    out = np.full(9, 7.0, dtype=dtype)
    lse_out = np.full(9, 7.0, dtype=dtype)
    lp, lse = k.token_log_probs(z, t, out=out, lse_out=lse_out)
    assert lp is out and lse is lse_out
    assert np.array_equal(out, k.token_log_probs(z, t))
    d = np.empty_like(z)
    assert k.token_log_probs_backward(z, t, lse, np.ones(9, dtype), out=d) is d


@pytest.mark.parametrize("dtype", FLOATS)
def test_a_row_strided_view_is_read_in_place_and_gives_the_same_values(rng, dtype):
    wide = random_logits(rng, 12, 90, dtype)
    z = wide[::2, :60]  # every other row, first 60 columns: contiguous rows, row stride 180
    t = rng.integers(0, 60, 6)
    assert not z.flags.c_contiguous
    assert np.array_equal(k.token_log_probs(z, t), k.token_log_probs(np.ascontiguousarray(z), t))


@pytest.mark.parametrize("dtype", FLOATS)
def test_token_log_probs_backward_matches_onehot_minus_softmax(rng, dtype):
    n, v = 11, 400
    z = random_logits(rng, n, v, dtype)
    t = rng.integers(0, v, n)
    g = rng.standard_normal(n).astype(dtype)
    _, lse = k.token_log_probs(z, t, with_lse=True)
    d = k.token_log_probs_backward(z, t, lse, g)
    ls, ref_lse = ref_log_softmax(z)
    p = np.exp(ls)
    onehot = np.zeros((n, v))
    onehot[np.arange(n), t] = 1
    ref = g.astype(np.longdouble)[:, None] * (onehot - p)
    assert np.all(np.abs(d - ref) <= grad_bound(dtype, g, ref_lse, z, p.astype(np.float64)))


def test_backward_accumulates_into_out_and_leaves_masked_rows_untouched(rng):
    z = random_logits(rng, 4, 30, np.float64)
    t = rng.integers(0, 30, 4)
    mask = np.array([1, 1, 0, 1], np.uint8)
    _, lse = k.token_log_probs(z, t, mask, with_lse=True)
    g = np.ones(4)
    fresh = k.token_log_probs_backward(z, t, lse, g, mask)
    acc = np.full_like(z, 0.5)
    k.token_log_probs_backward(z, t, lse, g, mask, out=acc, accumulate=True)
    assert np.all(fresh[2] == 0)
    assert np.all(acc[2] == 0.5)
    np.testing.assert_allclose(acc[[0, 1, 3]], fresh[[0, 1, 3]] + 0.5, rtol=0, atol=1e-15)
    with pytest.raises(prefopt.InvalidArgument, match="accumulate=True needs out="):
        k.token_log_probs_backward(z, t, lse, g, accumulate=True)


@pytest.mark.parametrize("dtype", FLOATS)
def test_entropy_and_its_gradient_match_the_reference(rng, dtype):
    n, v = 8, 777
    z = random_logits(rng, n, v, dtype)
    z[3, :100] = -np.inf
    h, lse = k.entropy(z, with_lse=True)
    ref = ref_entropy(z)
    assert np.all(np.abs(h - ref) <= entropy_bound(dtype, ref, v))
    g = rng.standard_normal(n).astype(dtype)
    d = k.entropy_backward(z, lse, h, g)
    ls, ref_lse = ref_log_softmax(z)
    p = np.exp(ls)
    ref_d = -g.astype(np.longdouble)[:, None] * p * finite_or_zero(ls + ref[:, None])
    # entropy gradients inherit the rounding of both lse and H: the bound with |log p| + H added
    slack = grad_bound(dtype, g, ref_lse, z, p.astype(np.float64)) * (
        1 + np.abs(finite_or_zero(ls)).astype(np.float64) + ref[:, None].astype(np.float64))
    assert np.all(np.abs(d - ref_d) <= slack)
    assert np.all(d[3, :100] == 0)


@pytest.mark.parametrize("dtype", FLOATS)
def test_kl_both_directions_and_its_gradients(rng, dtype):
    n, v = 10, 513
    zp = random_logits(rng, n, v, dtype)
    zq = random_logits(rng, n, v, dtype)
    kl, rev, lse_p, lse_q = k.kl_divergence(zp, zq, with_reverse=True, with_lse=True)
    assert np.all(np.abs(kl - ref_kl(zp, zq)) <= kl_bound(dtype, zp, zq))
    assert np.all(np.abs(rev - ref_kl(zq, zp)) <= kl_bound(dtype, zp, zq))
    assert np.array_equal(k.kl_divergence(zp, zq), kl)
    g = np.ones(n, dtype)
    dp, dq = k.kl_divergence_backward(zp, zq, lse_p, lse_q, kl, g)
    lp, _ = ref_log_softmax(zp)
    lq, _ = ref_log_softmax(zq)
    p, q = np.exp(lp), np.exp(lq)
    ref_dp = p * ((lp - lq) - ref_kl(zp, zq)[:, None])
    tol = 100 * np.finfo(dtype).eps * (1 + np.abs(zp).max())
    assert np.max(np.abs(dp - ref_dp)) <= tol
    assert np.max(np.abs(dq - (q - p))) <= tol
    only_p = k.kl_divergence_backward(zp, zq, lse_p, lse_q, kl, g, q_grad=False)
    assert isinstance(only_p, np.ndarray) and np.array_equal(only_p, dp)


def test_token_stats_is_bitwise_equal_to_the_dedicated_kernels(rng):
    z = random_logits(rng, 16, 2100, np.float32)
    zq = random_logits(rng, 16, 2100, np.float32)
    t = rng.integers(0, 2100, 16)
    s = k.token_stats(z, t, zq, outputs=["log_probs", "logsumexp", "entropy", "kl", "kl_reverse",
                                         "logsumexp_q"])
    lp, lse = k.token_log_probs(z, t, with_lse=True)
    kl, rev, _, lse_q = k.kl_divergence(z, zq, with_reverse=True, with_lse=True)
    assert np.array_equal(s["log_probs"], lp) and np.array_equal(s["logsumexp"], lse)
    assert np.array_equal(s["entropy"], k.entropy(z))
    assert np.array_equal(s["kl"], kl) and np.array_equal(s["kl_reverse"], rev)
    assert np.array_equal(s["logsumexp_q"], lse_q)
    g_lp = rng.standard_normal(16).astype(np.float32)
    g_h = rng.standard_normal(16).astype(np.float32)
    d = k.token_stats_backward(z, t, saved={"logsumexp": lse, "entropy": s["entropy"]},
                               grads={"log_probs": g_lp, "entropy": g_h})
    d_sep = (k.token_log_probs_backward(z, t, lse, g_lp)
             + k.entropy_backward(z, lse, s["entropy"], g_h))
    np.testing.assert_allclose(d, d_sep, rtol=0, atol=1e-6)
    with pytest.raises(prefopt.InvalidArgument, match="outputs contains 'lp'"):
        k.token_stats(z, t, outputs=["lp"])


@pytest.mark.parametrize("dtype", FLOATS)
def test_log_softmax_out_of_place_and_in_place(rng, dtype):
    z = random_logits(rng, 5, 300, dtype)
    ls, _ = ref_log_softmax(z)
    out = k.log_softmax(z)
    assert np.all(np.abs(out - ls) <= lse_bound(dtype, np.abs(ls).max(axis=1, keepdims=True), 300))
    zz = z.copy()
    assert k.log_softmax(zz, out=zz) is zz
    assert np.array_equal(zz, out)


def test_double_accumulation_is_closer_to_the_reference_than_float(rng):
    z = random_logits(rng, 64, 32000, np.float32, scale=8.0)
    t = rng.integers(0, 32000, 64)
    ref, _ = ref_token_log_probs(z, t)
    err_in = np.abs(k.token_log_probs(z, t) - ref).max()
    err_dbl = np.abs(k.token_log_probs(z, t, accumulation="double") - ref).max()
    assert err_dbl <= err_in
    assert np.all(np.abs(k.token_log_probs(z, t, accumulation="double") - ref)
                  <= 2.0**-24 * (np.abs(ref) + 1) * 2)
    with pytest.raises(prefopt.InvalidArgument, match="accumulation = 'float'"):
        k.token_log_probs(z, t, accumulation="float")


def test_results_do_not_depend_on_the_thread_count(rng):
    z = random_logits(rng, 512, 4000, np.float32)
    t = rng.integers(0, 4000, 512)
    before = prefopt.get_num_threads()
    try:
        prefopt.set_num_threads(1)
        one = k.token_log_probs(z, t)
        prefopt.set_num_threads(2)
        two = k.token_log_probs(z, t)
    finally:
        prefopt.set_num_threads(before)
    assert np.array_equal(one, two)
    assert np.array_equal(k.token_log_probs(z, t, parallel=False), one)
