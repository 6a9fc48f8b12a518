"""prefopt.diagnostics: every diagnostic agrees with an independent NumPy computation of its
formula (ALGORITHMS.md §4, §9), the equilibrium solvers return certified equilibria (checked
through the fixed point and the tau = 0 gap in NumPy), and bad policies raise prefopt.Error naming
the function, argument and row."""

import numpy as np
import pytest

import prefopt
from prefopt import diagnostics as d
from prefopt import games


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def np_gap(game, pi, tau):
    """rho-weighted DualGap_tau from the formula, per context."""
    gaps = []
    for x in range(game.num_contexts):
        p, mu, q = game.preference(x), game.reference[x], pi[x]
        g = p @ q
        if tau == 0:
            gaps.append(2 * g.max() - 1)
        else:
            kl = np.sum(q * np.log(q / mu))
            best = tau * np.log(np.sum(mu * np.exp(g / tau)))
            gaps.append(2 * (best + tau * kl) - 1)
    return float(np.dot(game.context_weights, np.maximum(gaps, 0)))


@pytest.fixture
def game():
    p = np.stack([games.random_intransitive(5, seed=s).preference() for s in (1, 2)])
    mu = np.stack([games.random_reference(5, seed=s) for s in (3, 4)])
    return games.Game(p, mu, tau=0.3, context_weights=[0.4, 0.6])


@pytest.fixture
def policy():
    return softmax(np.random.default_rng(7).standard_normal((2, 5)))


def test_duality_gaps_match_the_formula_at_the_games_tau_and_at_zero(game, policy):
    assert np.isclose(d.duality_gap(game, policy), np_gap(game, policy, 0.3), rtol=1e-12)
    assert np.isclose(d.duality_gap(game, policy, 0.05), np_gap(game, policy, 0.05), rtol=1e-12)
    assert np.isclose(d.unregularised_duality_gap(game, policy), np_gap(game, policy, 0),
                      rtol=1e-12)
    assert np.isclose(d.exploitability(game, policy), d.duality_gap(game, policy) / 2)
    per = d.duality_gaps(game, policy)
    assert per.shape == (2,) and np.isclose(per @ game.context_weights, d.duality_gap(game, policy))
    np.testing.assert_allclose(d.raw_duality_gaps(game, policy), per, rtol=1e-12)


def test_kl_and_win_rates_match_numpy(game, policy):
    mu = game.reference
    kl = np.sum(policy * np.log(policy / mu), axis=1)
    np.testing.assert_allclose(d.kl_divergences(game, policy, mu), kl, rtol=1e-12)
    assert np.isclose(d.kl_divergence(game, policy, mu), kl @ game.context_weights)
    assert np.isclose(d.kl_to_reference(game, policy), kl @ game.context_weights)
    wins = np.array([policy[x] @ game.preference(x) @ mu[x] for x in range(2)])
    np.testing.assert_allclose(d.win_rates(game, policy, mu), wins, rtol=1e-12)
    assert np.isclose(d.win_rate(game, policy, mu), wins @ game.context_weights)
    assert np.isclose(d.win_rate(game, policy, policy), 0.5)
    assert np.isclose(d.regularised_win_rate(game, policy, mu),
                      wins @ game.context_weights - 0.3 * (kl @ game.context_weights))


def test_a_single_context_game_takes_a_probability_vector():
    g = games.rock_paper_scissors()
    assert d.duality_gap(g, [1, 0, 0]) == 1.0
    assert d.duality_gap(g, [1 / 3] * 3) == 0.0


def test_solve_regularised_returns_the_fixed_point(game):
    eq = d.solve_regularised(game)
    pi = eq["probabilities"]
    for x in range(2):
        fixed = softmax(np.log(game.reference[x]) + game.preference(x) @ pi[x] / game.tau)
        np.testing.assert_allclose(pi[x], fixed, atol=1e-10)
    assert eq["gap"] <= 1e-12 and eq["kl_bound"] == eq["gap"] / (2 * game.tau)
    assert eq["methods"] == ["newton", "newton"] and eq["method"] == "newton"
    assert np_gap(game, pi, game.tau) < 1e-10
    np.testing.assert_allclose(softmax(eq["logits"]), pi, atol=1e-12)


def test_solve_unregularised_finds_the_known_and_the_lp_equilibria():
    eps = 0.1
    eq = d.solve_unregularised(games.epsilon_population(eps))
    np.testing.assert_allclose(eq["probabilities"][0], [1 / 3 + eps / 2, 1 / 3 + eps / 2,
                                                        1 / 3 - eps], atol=1e-12)
    b = d.solve_unregularised(games.biased_rock_paper_scissors(0.7, 0.6, 0.9))
    np.testing.assert_allclose(b["probabilities"][0], np.array([0.1, 0.4, 0.2]) / 0.7, atol=1e-12)
    assert b["method"] == "three_action_closed_form"
    bt = d.solve_unregularised(games.bradley_terry([0.0, 2.0, 1.0]))
    np.testing.assert_array_equal(bt["probabilities"][0], [0, 1, 0])
    g = games.random_intransitive(12, seed=5)
    lp = d.solve_unregularised(g)
    assert lp["method"] == "interior_point" and np.isnan(lp["kl_bound"])
    assert np_gap(g, lp["probabilities"], 0) <= 1e-9
    mwu = d.solve_unregularised(g, method="optimistic_mwu", target_gap=1e-4)
    assert mwu["method"] == "optimistic_mwu" and np_gap(g, mwu["probabilities"], 0) <= 1e-4


def test_the_symmetric_game_lp_certifies_its_equilibrium():
    p = games.random_intransitive(30, seed=9).preference()
    r = d.solve_symmetric_game_lp(p)
    pi = r["probabilities"]
    assert r["converged"] and np.isclose(pi.sum(), 1) and np.all(pi >= 0)
    assert np.isclose(r["gap"], max(0.0, 2 * np.max(p @ pi) - 1), atol=1e-15)
    assert r["gap"] <= 1e-12
    few = d.solve_symmetric_game_lp(p, max_iterations=1, crossover_gap=0)
    assert not few["converged"] and few["iterations"] == 1
    with pytest.raises(prefopt.InvalidArgument, match="solve_symmetric_game_lp"):
        d.solve_symmetric_game_lp([[0.5, 0.9], [0.9, 0.5]])


def test_bad_policies_and_options_name_function_argument_and_row(game, policy):
    bad = policy.copy()
    bad[1, 2] += 0.1
    with pytest.raises(prefopt.InvalidArgument, match="duality_gap: policy row 1 sums to"):
        d.duality_gap(game, bad)
    neg = policy.copy()
    neg[0, 0], neg[0, 1] = -0.1, neg[0, 1] + neg[0, 0] + 0.1
    with pytest.raises(prefopt.InvalidArgument, match=r"win_rate: policy\[0, 0\] = -0.1"):
        d.win_rate(game, neg, policy)
    with pytest.raises(prefopt.ShapeError, match=r"kl_divergence: q has shape \[2, 4\]"):
        d.kl_divergence(game, policy, policy[:, :4])
    with pytest.raises(prefopt.ShapeError, match="duality_gap: policy has 1 dimensions"):
        d.duality_gap(game, policy[0])
    with pytest.raises(prefopt.InvalidArgument, match="exploitability: tau = -1"):
        d.exploitability(game, policy, -1.0)
    with pytest.raises(prefopt.DTypeError, match="kl_to_reference: policy"):
        d.kl_to_reference(game, "uniform")
    with pytest.raises(prefopt.InvalidArgument, match="solve_regularised: game.tau"):
        d.solve_regularised(game.with_tau(0.0))
    with pytest.raises(prefopt.InvalidArgument, match="solve_unregularised: method = 'lp'"):
        d.solve_unregularised(game, method="lp")
    with pytest.raises(prefopt.ConvergenceError):
        d.solve_unregularised(games.random_intransitive(12, seed=5), method="optimistic_mwu",
                              max_iterations=10, check_every=5)
