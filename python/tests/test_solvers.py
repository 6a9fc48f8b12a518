"""prefopt.solvers: every tabular solver runs from Python, stepping it by hand gives what
prefopt::run gives, Nash-MD and ONPO follow their updates (checked against NumPy implementations
of ALGORITHMS.md §5 and §8), the recorded history agrees with the diagnostics of the returned
policies, and bad input raises prefopt.Error naming the solver and the argument."""

import numpy as np
import pytest

import prefopt
from prefopt import diagnostics as d
from prefopt import games
from prefopt import solvers as s


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.fixture
def game():
    return games.biased_rock_paper_scissors(0.8, 0.6, 0.9, reference=[0.6, 0.3, 0.1], tau=0.2)


FAST = {"rlhf_ppo": dict(reward_pairs=256, reward_iterations=100, batch_size=32,
                         minibatch_size=16, epochs=1),
        "dpo": dict(dataset_size=256, batch_size=16), "ipo": dict(dataset_size=256, batch_size=16),
        "simpo": dict(dataset_size=256, batch_size=16), "slic": dict(dataset_size=256,
                                                                    batch_size=16)}
GAME_SOLVERS = ["nash_md", "omd", "inpo", "self_play", "onpo", "regularised_onpo", "dpo", "ipo",
                "simpo", "slic", "rlhf_ppo"]


@pytest.mark.parametrize("kind", GAME_SOLVERS)
def test_every_game_solver_runs_and_its_history_matches_the_diagnostics(kind, game):
    solver = getattr(s, kind)(**FAST.get(kind, {}))
    assert solver.name == kind and solver.problem == "prefopt.games.Game"
    r = solver.run(game, 12, every=4, snapshots=True)
    assert r["status"] == "completed" and r["iterations"] == 12
    h = r["history"]
    np.testing.assert_array_equal(h["iteration"], [0, 4, 8, 12])
    assert h["policy"].shape == (4, 1, 3)
    final = r["state"].policy()
    assert r["state"].iteration == 12 and r["state"].solver == kind
    np.testing.assert_array_equal(h["policy"][-1], final)
    for k in range(4):
        pi = h["policy"][k]
        assert np.isclose(h["duality_gap"][k], d.duality_gap(game, pi), rtol=1e-12, atol=1e-15)
        assert np.isclose(h["kl_to_reference"][k], d.kl_to_reference(game, pi), atol=1e-14)
        assert np.isclose(h["win_rate_vs_reference"][k], d.win_rate(game, pi, game.reference))
    np.testing.assert_allclose(softmax(r["state"].logits()), final, atol=1e-14)
    if solver.averaged:
        avg = r["state"].average_policy()
        np.testing.assert_allclose(h["average_policy"][-1], avg)
        assert np.isclose(h["average_duality_gap"][-1], d.duality_gap(game, avg), atol=1e-14)
    else:
        assert r["state"].average_policy() is None and "average_policy" not in h
    stats = solver.step(game, r["state"])
    expected = {"nash_md": {"iteration", "eta"}, "rlhf_ppo": {"loss", "mean_score", "mean_kl",
                                                              "kl_coefficient", "clip_fraction"},
                "dpo": {"loss", "rewards_accuracies", "rewards_margins"}}
    if kind in expected:
        assert set(stats) == expected[kind]
    assert r["state"].iteration == 13


def test_stepping_by_hand_equals_run_and_run_continues_from_a_state(game):
    solver = s.onpo(eta=0.3, payoff="sampled", samples=4, seed=11)
    state = solver.init(game)
    for t in range(7):
        stats = solver.step(game, state)
        assert stats == {"iteration": t, "eta": 0.3}
    ran = solver.run(game, 7)
    np.testing.assert_array_equal(state.policy(), ran["state"].policy())
    np.testing.assert_array_equal(state.average_policy(), ran["state"].average_policy())
    first = solver.run(game, 3)
    rest = solver.run(game, 4, state=first["state"])
    np.testing.assert_array_equal(rest["state"].policy(), ran["state"].policy())
    assert first["state"].iteration == 3  # the given state is copied, not advanced
    other = s.onpo(eta=0.3, payoff="sampled", samples=4, seed=12).run(game, 7)
    assert not np.array_equal(other["state"].policy(), ran["state"].policy())


def test_nash_md_follows_its_update(game):
    """z <- (1 - eta tau) z + eta tau log mu + eta P softmax((1 - eta tau) z + eta tau log mu)."""
    p, mu, tau = game.preference(), game.reference[0], game.tau
    z = np.log(mu)
    r = s.nash_md().run(game, 30, snapshots=True)
    for t in range(30):
        eta = 2 / (tau * (t + 2))
        lam = eta * tau
        mixed = (1 - lam) * z + lam * np.log(mu)
        z = mixed + eta * p @ softmax(mixed)
        np.testing.assert_allclose(r["history"]["policy"][t + 1, 0], softmax(z), atol=1e-12)
    eq = d.solve_regularised(game)["probabilities"]
    gaps = r["history"]["duality_gap"]
    assert gaps[-1] < 0.1 * gaps[1] and d.kl_divergence(game, eq, r["state"].policy()) < 1e-2


def test_onpo_follows_its_optimistic_update_and_its_average_converges():
    g = games.random_intransitive(6, seed=2)
    p, eta = g.preference(), 0.5
    za = np.zeros(6)
    z = za.copy()
    played = []
    r = s.onpo(eta=eta).run(g, 400, every=100)
    for _ in range(400):
        pi = softmax(z)
        played.append(pi)
        gpi = p @ pi
        za = za + eta * gpi
        z = za + eta * gpi
    np.testing.assert_allclose(r["state"].policy()[0], softmax(z), atol=1e-9)
    np.testing.assert_allclose(r["state"].average_policy()[0], np.mean(played, axis=0), atol=1e-12)
    avg_gaps = r["history"]["average_unregularised_gap"]
    assert avg_gaps[-1] < 0.05 and avg_gaps[-1] < avg_gaps[1]


def test_hir_raises_the_success_rate_of_a_goal_task():
    task = games.GoalTask.random(24, 4, 1.0, 3)
    solver = s.hir(batch_size=32)
    assert solver.problem == "prefopt.games.GoalTask"
    r = solver.run(task, 30, every=10, snapshots=True)
    rate = r["history"]["success_rate"]
    assert np.isclose(rate[-1], task.success_rate(r["state"].policy()))
    assert np.isclose(rate[0], task.success_rate(np.tile(task.reference, (4, 1))))
    assert rate[-1] > rate[0] + 0.2
    assert r["history"]["policy"].shape == (4, 4, 24)


def test_ctrl_c_stops_a_long_run(game):
    import _thread
    import threading
    import time

    timer = threading.Timer(0.2, _thread.interrupt_main)
    start = time.monotonic()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        s.nash_md(eta=0.5).run(game, 10**9, every=10**9)
    timer.cancel()
    assert time.monotonic() - start < 30


def test_a_given_initial_policy_is_the_first_iterate(game):
    start = np.array([[0.2, 0.5, 0.3]])
    state = s.self_play(initial=start).init(game)
    np.testing.assert_allclose(state.policy(), start, atol=1e-15)


def test_bad_input_names_the_solver_and_the_argument(game):
    task = games.GoalTask.random(8, 2, 1.0, 0)
    nash = s.nash_md()
    state = nash.init(game)
    with pytest.raises(prefopt.InvalidArgument, match="nash_md.init: problem is a GoalTask"):
        nash.init(task)
    with pytest.raises(prefopt.InvalidArgument, match="hir.run: problem is a Game"):
        s.hir().run(game, 3)
    with pytest.raises(prefopt.InvalidArgument, match="dpo.step: state was made by a 'nash_md'"):
        s.dpo().step(game, state)
    with pytest.raises(prefopt.ShapeError, match="nash_md.step: state is for a problem of 1"):
        nash.step(games.random_intransitive(4, seed=0, tau=0.1), state)
    with pytest.raises(prefopt.InvalidArgument, match="theory_step: tau = 0"):
        nash.run(game.with_tau(0.0), 2)
    with pytest.raises(prefopt.InvalidArgument, match="nash_md.run: iterations = -1"):
        nash.run(game, -1)
    with pytest.raises(prefopt.InvalidArgument, match="nash_md.run: every = 0"):
        nash.run(game, 3, every=0)
    with pytest.raises(prefopt.InvalidArgument, match="onpo: payoff = 'mc'"):
        s.onpo(payoff="mc")
    with pytest.raises(prefopt.InvalidArgument, match="onpo: samples = 0"):
        s.onpo(payoff="sampled", samples=0)
    with pytest.raises(prefopt.InvalidArgument, match="omd: eta = -1.0, expected a finite eta"):
        s.omd(eta=-1.0)
    with pytest.raises(prefopt.InvalidArgument, match="onpo: eta = None"):
        s.onpo(eta=None)
    with pytest.raises(prefopt.InvalidArgument, match="self_play: initial = 'best'"):
        s.self_play(initial="best")
    with pytest.raises(prefopt.ShapeError, match="initial_policy: given policy is 1x2"):
        s.onpo(initial=[[0.5, 0.5]]).init(game)
    with pytest.raises(prefopt.InvalidArgument, match="dpo: optimizer = 'rmsprop'"):
        s.dpo(optimizer="rmsprop")
    with pytest.raises(prefopt.InvalidArgument, match="ipo: source = 'web'"):
        s.ipo(source="web")
    with pytest.raises(prefopt.InvalidArgument, match="rlhf_ppo: kl_control = 'pid'"):
        s.rlhf_ppo(kl_control="pid")
    with pytest.raises(prefopt.InvalidArgument, match="tabular_rlhf_ppo: minibatch_size"):
        s.rlhf_ppo(batch_size=8)
    with pytest.raises(prefopt.InvalidArgument, match="hir: mode = 'oracle'"):
        s.hir(mode="oracle")
    with pytest.raises(TypeError):
        s.State()
