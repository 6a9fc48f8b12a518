"""prefopt.losses, the Nash-learning and HIR part: values and gradients agree with NumPy
implementations of the formulas of losses/nash_pg.hpp, losses/pair_regression.hpp and
losses/hir.hpp (and with finite differences), float32 inputs give float32 gradients, and bad input
raises prefopt.Error naming the function and the argument."""

import numpy as np
import pytest

import prefopt
from prefopt import games
from prefopt import losses as L

FLOATS = [np.float32, np.float64]


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def log_softmax(z):
    m = z.max(axis=-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("credit", ["reward_to_go", "same_position"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_nash_md_pg_surrogate_matches_its_formula(dtype, credit, reduction, rng):
    off = np.array([0, 3, 3, 8])
    lp = rng.normal(size=8).astype(dtype)
    lr = rng.normal(size=8).astype(dtype)
    pref = np.array([0.9, 0.5, 0.1], dtype)
    out = L.nash_md_pg_surrogate(lp, lr, off, pref, tau=0.2, credit=credit, reduction=reduction)
    scale = 1 / 3 if reduction == "mean" else 1.0
    loss, grad = 0.0, np.zeros(8)
    for i in range(3):
        a, b = off[i], off[i + 1]
        d = (lp[a:b] - lr[a:b]).astype(np.float64)
        c = np.cumsum(d[::-1])[::-1] if credit == "reward_to_go" else d
        mult = pref[i] - 0.5 - 0.2 * c
        loss -= np.sum(mult * lp[a:b])
        grad[a:b] = -mult * scale
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert out["loss"] == pytest.approx(loss * scale, rel=tol, abs=tol)
    assert out["grad_policy_logps"].dtype == dtype
    np.testing.assert_allclose(out["grad_policy_logps"], grad, rtol=tol, atol=tol)
    assert out["metrics"]["mean_advantage"] == pytest.approx(np.mean(pref - 0.5), abs=tol)
    assert out["metrics"]["mean_sequence_kl"] == pytest.approx(np.sum(lp - lr) / 3, rel=tol)


@pytest.fixture
def pairs(rng):
    return [rng.normal(size=5) for _ in range(6)]


def test_inpo_and_onpo_losses_match_their_formulas_and_finite_differences(pairs):
    pc, pr, rc, rr, ac, ar = pairs
    eta, tau = 0.8, 0.5
    h = (pc - pr) - eta * tau * (rc - rr) - (1 - eta * tau) * (ac - ar)
    out = L.inpo_loss(pc, pr, rc, rr, ac, ar, eta=eta, tau=tau)
    assert out["loss"] == pytest.approx(np.mean((h - eta / 2) ** 2), rel=1e-12)
    np.testing.assert_allclose(out["grad_policy_chosen"], 2 * (h - eta / 2) / 5, rtol=1e-12)
    np.testing.assert_allclose(out["grad_policy_rejected"], -2 * (h - eta / 2) / 5, rtol=1e-12)
    g = (pc - pr) - (ac - ar)
    on = L.onpo_loss(pc, pr, ac, ar, eta=eta, reduction="sum")
    assert on["loss"] == pytest.approx(np.sum((g - eta / 2) ** 2), rel=1e-12)
    e = 1e-6
    bumped = pc.copy()
    bumped[2] += e
    fd = (L.onpo_loss(bumped, pr, ac, ar, eta=eta, reduction="sum")["loss"] - on["loss"]) / e
    assert fd == pytest.approx(on["grad_policy_chosen"][2], rel=1e-4)
    assert on["metrics"] == {"loss": on["loss"]}


def test_pair_regression_losses_are_minimised_by_the_closed_form_update():
    p = games.random_intransitive(5, seed=1).preference()
    q = softmax(np.random.default_rng(2).normal(size=5))
    a = np.random.default_rng(3).normal(size=5)
    eta = 0.7
    z_star = a + eta * p @ q
    for loss in (L.labelled_pair_loss, L.regression_pair_loss):
        at = loss(p, q, a, z_star + 3.0, eta=eta)  # + const: the same policy
        np.testing.assert_allclose(at["grad"], 0, atol=1e-12)
        off = loss(p, q, a, z_star + np.arange(5) * 0.1, eta=eta)
        assert off["loss"] > at["loss"]
    z = np.random.default_rng(4).normal(size=5)
    u = z - a
    h = u[:, None] - u[None, :]
    labelled = 2 * np.sum(q[:, None] * q[None, :] * p * (h - eta / 2) ** 2)
    assert L.labelled_pair_loss(p, q, a, z, eta=eta)["loss"] == pytest.approx(labelled, rel=1e-12)
    r = p @ q
    regression = np.sum(q[:, None] * q[None, :] * (h - eta * (r[:, None] - r[None, :])) ** 2)
    assert L.regression_pair_loss(p, q, a, z, eta=eta)["loss"] == pytest.approx(regression,
                                                                                rel=1e-12)


def test_the_tabular_nash_gradient_is_the_gradient_of_the_regularised_preference():
    p = games.random_intransitive(4, seed=6).preference()
    rng = np.random.default_rng(5)
    theta, opp, mu = rng.normal(size=4), softmax(rng.normal(size=4)), softmax(rng.normal(size=4))
    grad = L.tabular_nash_gradient(softmax(theta), p, opp, mu, tau=0.3)
    assert abs(grad.sum()) < 1e-15
    e = 1e-6
    for y in range(4):
        t = theta.copy()
        t[y] += e
        fd = (L.tabular_regularized_preference(softmax(t), p, opp, mu, tau=0.3)
              - L.tabular_regularized_preference(softmax(theta), p, opp, mu, tau=0.3)) / e
        assert fd == pytest.approx(grad[y], rel=1e-4, abs=1e-9)


@pytest.mark.parametrize("dtype", FLOATS)
def test_hir_token_losses_match_numpy(dtype, rng):
    z = rng.normal(size=(6, 7)).astype(dtype)
    t = rng.integers(0, 7, size=6)
    ls = log_softmax(z.astype(np.float64))
    eps = 0.2
    ce = np.mean((1 - eps) * -ls[np.arange(6), t] + eps * np.mean(-ls, axis=1))
    out = L.label_smoothed_cross_entropy(z, t, eps_ls=eps)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert out["loss"] == pytest.approx(ce, rel=tol)
    target = np.full((6, 7), eps / 7)
    target[np.arange(6), t] += 1 - eps
    assert out["grad"].dtype == dtype and out["grad"].shape == (6, 7)
    np.testing.assert_allclose(out["grad"], (np.exp(ls) - target) / 6, rtol=tol, atol=tol)
    h = -np.sum(np.exp(ls) * ls, axis=1)
    bonus = L.entropy_bonus(z, w_ent=0.01)
    assert bonus["loss"] == pytest.approx(-0.01 * np.mean(h), rel=tol)
    np.testing.assert_allclose(bonus["grad"], 0.01 * np.exp(ls) * (ls + h[:, None]) / 6,
                               rtol=tol, atol=tol)


def test_hir_contrasts_agree_with_each_other_and_numpy():
    pos, neg = np.array([1.0, -0.5, 2.0]), np.array([0.0, 0.5, 1.0])
    eps = 0.1
    qp = 1 / (1 + np.exp(neg - pos))
    expected = np.mean((1 - eps) * -np.log(qp) + eps * -np.log(1 - qp))
    two = L.contrastive_instruction_loss_2way(pos, neg, eps_ls=eps)
    assert two["loss"] == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(two["grad_positive"], (qp - (1 - eps)) / 3, rtol=1e-12)
    kway = L.contrastive_instruction_loss(np.stack([pos, neg], axis=1), np.zeros(3, np.int64),
                                          eps_ls=eps)
    assert kway["loss"] == pytest.approx(two["loss"], rel=1e-12)
    np.testing.assert_allclose(kway["grad"][:, 0], two["grad_positive"], rtol=1e-12)
    scores = L.sequence_log_likelihoods(np.array([1.0, 2.0, 3.0, 4.0]), np.array([0, 1, 1, 4]))
    np.testing.assert_allclose(scores, [1.0, 0.0, 3.0])
    sums = L.sequence_log_likelihoods(np.array([1.0, 2.0, 3.0, 4.0]), np.array([0, 1, 1, 4]),
                                      reduction="sum")
    np.testing.assert_allclose(sums, [1.0, 0.0, 9.0])


def test_bad_input_names_the_function_and_the_argument(pairs):
    pc, pr, rc, rr, ac, ar = pairs
    with pytest.raises(prefopt.ShapeError, match="inpo_loss: anchor_rejected has 3 entries"):
        L.inpo_loss(pc, pr, rc, rr, ac, ar[:3], eta=0.5, tau=0.1)
    with pytest.raises(prefopt.InvalidArgument, match="inpo_loss: eta \\* tau = 2"):
        L.inpo_loss(pc, pr, rc, rr, ac, ar, eta=4.0, tau=0.5)
    with pytest.raises(prefopt.DTypeError, match="onpo_loss: policy_rejected has dtype float32"):
        L.onpo_loss(pc, pr.astype(np.float32), ac, ar, eta=0.5)
    with pytest.raises(prefopt.InvalidArgument, match=r"preferences\[1\] = 2"):
        L.nash_md_pg_surrogate(pc, rc, np.array([0, 2, 5]), np.array([0.5, 2.0]), tau=0.1)
    with pytest.raises(prefopt.InvalidArgument, match="nash_md_pg_surrogate: credit = 'all'"):
        L.nash_md_pg_surrogate(pc, rc, np.array([0, 5]), np.array([0.5]), tau=0.1, credit="all")
    with pytest.raises(prefopt.InvalidArgument, match=r"label_smoothed_cross_entropy: targets"):
        L.label_smoothed_cross_entropy(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(prefopt.ShapeError, match="labelled_pair_loss: q has 2 entries"):
        L.labelled_pair_loss(np.full((3, 3), 0.5), [0.5, 0.5], np.zeros(3), np.zeros(3), eta=1.0)
    with pytest.raises(prefopt.InvalidArgument, match="sequence_log_likelihoods: reduction"):
        L.sequence_log_likelihoods(pc, np.array([0, 5]), reduction="max")
