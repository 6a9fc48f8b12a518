"""prefopt.losses (and the sampled KL estimators of prefopt.kernels): values against the formulas
written out in NumPy, gradients against central finite differences in double, TRL-named metrics."""

import numpy as np
import pytest

import prefopt
from prefopt import kernels as k
from prefopt import losses as L


def softplus(x):
    return np.logaddexp(0.0, x)


def dpo_reference(variant, s_w, s_l, r_w, r_l, n_w, n_l, beta, length_average, eps, gamma):
    a_w = np.maximum(n_w, 1) if length_average else 1.0
    a_l = np.maximum(n_l, 1) if length_average else 1.0
    if variant == "simpo":
        h = s_w / a_w - s_l / a_l
    else:
        h = (s_w - r_w) / a_w - (s_l - r_l) / a_l
    u = beta * h
    return {
        "sigmoid": softplus(-u),
        "label_smoothed": (1 - eps) * softplus(-u) + eps * softplus(u),
        "robust": ((1 - eps) * softplus(-u) - eps * softplus(u)) / (1 - 2 * eps),
        "ipo": (h - 1 / (2 * beta)) ** 2,
        "hinge": np.maximum(0, 1 - u),
        "simpo": softplus(-(u - gamma)),
    }[variant]


def k3_reference(d):
    """e^{-d} - 1 + d, by its series where expm1(-d) + d would cancel (|d| < 1e-3)."""
    series = d * d / 2 - d**3 / 6 + d**4 / 24
    return np.where(np.abs(d) < 1e-3, series, np.expm1(-d) + d)


VARIANTS = ["sigmoid", "label_smoothed", "robust", "ipo", "hinge", "simpo"]


@pytest.fixture
def pairs():
    rng = np.random.default_rng(11)
    n = 9
    return dict(
        policy_chosen=-rng.uniform(5, 30, n),
        policy_rejected=-rng.uniform(5, 30, n),
        reference_chosen=-rng.uniform(5, 30, n),
        reference_rejected=-rng.uniform(5, 30, n),
        chosen_lengths=rng.integers(0, 40, n),
        rejected_lengths=rng.integers(1, 40, n),
    )


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("length_average", [False, True])
def test_every_dpo_variant_matches_its_formula_and_finite_differences(pairs, variant,
                                                                      length_average):
    cfg = dict(variant=variant, beta_dpo=0.3, length_average=length_average, eps_ls=0.1,
               gamma_simpo=0.5)
    r = L.dpo_loss(**pairs, **cfg)
    p = pairs
    ref = dpo_reference(variant, p["policy_chosen"], p["policy_rejected"], p["reference_chosen"],
                        p["reference_rejected"], p["chosen_lengths"], p["rejected_lengths"], 0.3,
                        length_average, 0.1, 0.5)
    np.testing.assert_allclose(r["losses"], ref, rtol=1e-12, atol=1e-12)
    assert r["loss"] == pytest.approx(ref.mean(), rel=1e-12)
    assert r["metrics"]["loss"] == r["loss"]
    h = 1e-6
    for key, grad in (("policy_chosen", "grad_policy_chosen"),
                      ("policy_rejected", "grad_policy_rejected")):
        for i in range(len(ref)):
            up = {**p, key: p[key].copy()}
            dn = {**p, key: p[key].copy()}
            up[key][i] += h
            dn[key][i] -= h
            fd = (L.dpo_loss(**up, **cfg)["loss"] - L.dpo_loss(**dn, **cfg)["loss"]) / (2 * h)
            assert r[grad][i] == pytest.approx(fd, rel=1e-5, abs=1e-8), (key, i)


def test_dpo_is_log_2_when_policy_equals_reference_and_metrics_use_trl_names(pairs):
    p = dict(pairs, policy_chosen=pairs["reference_chosen"],
             policy_rejected=pairs["reference_rejected"])
    r = L.dpo_loss(**p)
    assert r["loss"] == pytest.approx(np.log(2.0), rel=1e-15)
    assert set(r["metrics"]) == {"loss", "rewards/chosen", "rewards/rejected", "rewards/margins",
                                 "rewards/accuracies", "logps/chosen", "logps/rejected",
                                 "lengths/chosen", "lengths/rejected"}
    assert r["metrics"]["rewards/margins"] == pytest.approx(0.0, abs=1e-15)
    assert r["metrics"]["lengths/chosen"] == pytest.approx(pairs["chosen_lengths"].mean())


def test_dpo_in_float32_and_with_sum_reduction(pairs):
    f = {k_: (v.astype(np.float32) if v.dtype == np.float64 else v) for k_, v in pairs.items()}
    r32 = L.dpo_loss(**f)
    r64 = L.dpo_loss(**{k_: (v.astype(np.float64) if v.dtype == np.float32 else v)
                        for k_, v in f.items()})
    assert r32["losses"].dtype == np.float32
    assert r32["loss"] == pytest.approx(r64["loss"], rel=1e-5)
    s = L.dpo_loss(**pairs, reduction="sum")
    m = L.dpo_loss(**pairs)
    np.testing.assert_allclose(s["grad_policy_chosen"], m["grad_policy_chosen"] * 9, rtol=1e-14)


def test_dpo_argument_errors_name_the_argument(pairs):
    with pytest.raises(prefopt.InvalidArgument, match="variant = 'kto'"):
        L.dpo_loss(**pairs, variant="kto")
    with pytest.raises(prefopt.ShapeError, match="length_average is on but"):
        L.dpo_loss(pairs["policy_chosen"], pairs["policy_rejected"], pairs["reference_chosen"],
                   pairs["reference_rejected"], length_average=True)
    bad = dict(pairs, policy_chosen=pairs["policy_chosen"].copy())
    bad["policy_chosen"][4] = np.nan
    with pytest.raises(prefopt.InvalidArgument, match=r"policy_chosen\[4\] = nan"):
        L.dpo_loss(**bad)
    with pytest.raises(prefopt.InvalidArgument, match="beta_dpo = 0"):
        L.dpo_loss(**pairs, beta_dpo=0.0)


def test_bradley_terry_value_gradient_and_metrics():
    rw = np.array([1.0, 0.5, -2.0])
    rl = np.array([0.0, 1.5, -1.0])
    m = np.array([0.1, 0.0, 0.2])
    r = L.bradley_terry_loss(rw, rl, m, c_center=0.01)
    ref = softplus(-(rw - rl - m)) + 0.01 * (rw + rl) ** 2
    assert r["loss"] == pytest.approx(ref.mean(), rel=1e-14)
    sig = 1 / (1 + np.exp(rw - rl - m))
    np.testing.assert_allclose(r["grad_chosen"], (-sig + 0.02 * (rw + rl)) / 3, rtol=1e-13)
    np.testing.assert_allclose(r["grad_rejected"], (sig + 0.02 * (rw + rl)) / 3, rtol=1e-13)
    assert r["metrics"]["accuracy"] == pytest.approx(1 / 3)


def test_ppo_policy_loss_clips_and_its_gradient_is_zero_there():
    new = np.log(np.array([1.0, 1.5, 0.5, 1.1]))
    old = np.zeros(4)
    adv = np.array([1.0, 1.0, -1.0, -2.0])
    r = L.ppo_policy_loss(new, old, adv, eps_clip=0.2)
    rho = np.exp(new - old)
    per = np.maximum(-adv * rho, -adv * np.clip(rho, 0.8, 1.2))
    assert r["loss"] == pytest.approx(per.mean(), rel=1e-14)
    assert r["metrics"]["clip_fraction"] == pytest.approx(0.5)  # tokens 1 and 2 are clipped
    np.testing.assert_allclose(r["grad_new_logps"], [-0.25, 0, 0, 2 * 1.1 / 4], rtol=1e-14)


def test_ppo_value_loss_and_gae_and_whiten():
    v_new = np.array([1.0, 2.0, 3.0])
    v_old = np.array([1.0, 1.0, 1.0])
    ret = np.array([0.0, 0.0, 0.0])
    r = L.ppo_value_loss(v_new, v_old, ret, eps_v=0.5)
    per = np.maximum((v_new - ret) ** 2, (np.clip(v_new, 0.5, 1.5) - ret) ** 2)
    assert r["loss"] == pytest.approx(0.5 * per.mean())
    rewards = np.array([0.0, 0.0, 1.0, 0.5, 0.5])
    values = np.array([0.1, 0.2, 0.3, 0.0, 0.4])
    adv, rets = L.generalized_advantages(rewards, values, np.array([0, 3, 5]), gamma=1.0, lam=1.0)
    # lambda = gamma = 1: reward-to-go minus value, per sequence
    np.testing.assert_allclose(adv, [1 - 0.1, 1 - 0.2, 1 - 0.3, 1 - 0.0, 0.5 - 0.4], rtol=1e-14)
    np.testing.assert_allclose(rets, adv + values, rtol=1e-14)
    x = np.array([1.0, 2.0, 3.0, 4.0])
    w = L.whiten(x)
    np.testing.assert_allclose(w, (x - x.mean()) / np.sqrt(x.var(ddof=1) + 1e-8), rtol=1e-13)
    assert np.array_equal(x, [1.0, 2.0, 3.0, 4.0])  # a fresh array unless out=values
    assert L.whiten(x, out=x) is x and np.array_equal(x, w)


@pytest.mark.parametrize("estimator, value, slope", [
    ("k1", lambda d: d, lambda d: np.ones_like(d)),
    ("k2", lambda d: d * d / 2, lambda d: d),
    ("k3", lambda d: k3_reference(d), lambda d: -np.expm1(-d)),
    ("abs", np.abs, np.sign),
])
def test_sampled_kl_estimators_and_their_gradients(estimator, value, slope):
    lp = np.array([-1.0, -2.0, -0.5, -3.0, -1e-9])
    lr = np.array([-1.5, -1.0, -0.5, -2.0, -2e-9])
    d = lp - lr
    np.testing.assert_allclose(k.sampled_kl(lp, lr, estimator), value(d), rtol=1e-12, atol=1e-300)
    g = np.linspace(0.5, 1.5, 5)
    dlp, dlr = k.sampled_kl_backward(lp, lr, g, estimator, ref_grad=True)
    np.testing.assert_allclose(dlp, g * slope(d), rtol=1e-12)
    np.testing.assert_allclose(dlr, -g * slope(d), rtol=1e-12)
    mask = np.array([1, 0, 1, 1, 1], np.uint8)
    assert k.sampled_kl(lp, lr, estimator, mask)[1] == 0
