"""prefopt.games: the catalog games are built from their definitions (checked here against NumPy
constructions of the same definitions), tables come back as float64 copies, games survive a JSON
round trip, and bad input raises prefopt.Error naming the function, argument and position."""

import json

import numpy as np
import pytest

import prefopt
from prefopt import games


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def test_rock_paper_scissors_and_its_biased_form_have_the_stated_matrices():
    g = games.rock_paper_scissors(tau=0.25)
    assert (g.num_contexts, g.num_actions, g.tau) == (1, 3, 0.25)
    np.testing.assert_array_equal(g.preference(0), [[0.5, 1, 0], [0, 0.5, 1], [1, 0, 0.5]])
    b = games.biased_rock_paper_scissors(0.7, 0.6, 0.9)
    np.testing.assert_allclose(b.preference(), [[0.5, 0.7, 0.1], [0.3, 0.5, 0.6],
                                                [0.9, 0.4, 0.5]])


def test_efron_dice_matches_the_face_counts():
    dice = [[2, 4, 9], [1, 6, 8], [3, 5, 7]]
    expected = np.full((3, 3), 0.5)
    for i in range(3):
        for j in range(3):
            if i != j:
                expected[i, j] = np.mean([a > b for a in dice[i] for b in dice[j]])
    np.testing.assert_allclose(games.efron_dice().preference(), expected, atol=1e-15)
    assert np.isclose(expected[0, 1], 5 / 9)


def test_condorcet_voters_bradley_terry_and_epsilon_population_follow_their_definitions():
    c = games.condorcet_voters(3).preference()
    np.testing.assert_allclose(c, [[0.5, 2 / 3, 1 / 3], [1 / 3, 0.5, 2 / 3], [2 / 3, 1 / 3, 0.5]])
    r = np.array([0.3, -1.0, 2.0, 0.0])
    bt = games.bradley_terry(r, tau=0.1)
    np.testing.assert_allclose(bt.preference(), sigmoid(r[:, None] - r[None, :]), atol=1e-15)
    np.testing.assert_array_equal(bt.gold_rewards, r[None, :])
    eps = 0.1
    e = games.epsilon_population(eps).preference()
    assert np.isclose(e[1, 0], 2 / 3 - eps / 2) and np.isclose(e[0, 2], 2 / 3 + eps / 4)
    assert np.isclose(e[2, 1], 2 / 3 + eps / 4)


def test_random_intransitive_is_seeded_and_complementary():
    a = games.random_intransitive(7, seed=3).preference()
    np.testing.assert_array_equal(a, games.random_intransitive(7, seed=3).preference())
    assert not np.array_equal(a, games.random_intransitive(7, seed=4).preference())
    np.testing.assert_allclose(a + a.T, np.ones((7, 7)), atol=1e-15)
    mu = games.random_reference(5, seed=1)
    assert mu.shape == (5,) and np.all(mu > 0) and np.isclose(mu.sum(), 1)


def test_a_game_from_arrays_exposes_its_tables_as_float64_copies():
    p = np.stack([games.rock_paper_scissors().preference(),
                  games.condorcet_voters(3).preference()])
    mu = np.array([[0.2, 0.3, 0.5], [0.6, 0.2, 0.2]])
    g = games.Game(p, mu, tau=0.5, context_weights=[0.25, 0.75])
    assert (g.num_contexts, g.num_actions) == (2, 3)
    np.testing.assert_array_equal(g.preferences, p)
    np.testing.assert_array_equal(g.reference, mu)
    np.testing.assert_array_equal(g.context_weights, [0.25, 0.75])
    assert g.lengths is None and g.gold_rewards is None
    out = g.reference
    out[0, 0] = 7.0  # a copy: the game does not change
    assert g.reference[0, 0] == 0.2
    one_mu = games.Game(p, [0.2, 0.3, 0.5])  # one reference row for every context
    np.testing.assert_array_equal(one_mu.reference, [[0.2, 0.3, 0.5]] * 2)
    lengths = g.with_lengths([[1, 2, 3], [4, 5, 6]]).lengths
    np.testing.assert_array_equal(lengths, [[1, 2, 3], [4, 5, 6]])
    assert g.with_tau(0.0).tau == 0.0
    np.testing.assert_array_equal(g.with_reference([1 / 3] * 3).reference, np.full((2, 3), 1 / 3))


def test_mixture_concatenates_contexts_with_weighted_rho():
    m = games.mixture([games.rock_paper_scissors(), games.efron_dice()], [0.25, 0.75])
    assert m.num_contexts == 2
    np.testing.assert_allclose(m.context_weights, [0.25, 0.75])
    np.testing.assert_array_equal(m.preference(1), games.efron_dice().preference())


def test_json_round_trip_and_files(tmp_path):
    g = games.bradley_terry([0.0, 1.0, 2.0], reference=[0.5, 0.25, 0.25], tau=0.2)
    back = games.from_json(games.to_json(g))
    np.testing.assert_array_equal(back.preferences, g.preferences)
    np.testing.assert_array_equal(back.reference, g.reference)
    np.testing.assert_array_equal(back.gold_rewards, g.gold_rewards)
    assert back.tau == g.tau
    assert json.loads(g.to_json()) == json.loads(games.to_json(g))
    d = games.from_json({"tau": 0.1, "preference": [[0.5, 0.8], [0.2, 0.5]]})
    np.testing.assert_array_equal(d.preference(), [[0.5, 0.8], [0.2, 0.5]])
    path = str(tmp_path / "game.json")
    games.write_json(path, g)
    np.testing.assert_array_equal(games.read_json(path).preferences, g.preferences)


def test_malformed_json_names_the_json_path():
    with pytest.raises(prefopt.ParseError, match=r"/preference/0/1"):
        games.from_json('{"preference": [[0.5, 2], [0, 0.5]]}')
    with pytest.raises(prefopt.ParseError, match="refrence"):
        games.from_json({"preference": [[0.5]], "refrence": [1]})
    with pytest.raises(prefopt.IoError):
        games.read_json("/nonexistent/game.json")
    with pytest.raises(prefopt.DTypeError, match="from_json"):
        games.from_json(3)


def test_bad_arrays_name_function_argument_and_entry():
    with pytest.raises(prefopt.InvalidArgument, match=r"P\[context 0\]\(0, 1\) = 2"):
        games.Game([[0.5, 2.0], [0.0, 0.5]])
    with pytest.raises(prefopt.ShapeError, match="Game: preference"):
        games.Game(np.zeros((2, 3)))
    with pytest.raises(prefopt.DTypeError, match="Game: preference is a string"):
        games.Game("rock")
    with pytest.raises(prefopt.DTypeError, match="Game: preference"):
        games.Game(np.array([[0.5j]]))
    with pytest.raises(prefopt.InvalidArgument, match=r"reference\[0, 1\] = nan"):
        games.Game([[0.5, 0.5], [0.5, 0.5]], [[0.5, np.nan]])
    with pytest.raises(prefopt.InvalidArgument, match="reference row of context 0 sums to"):
        games.Game([[0.5, 0.5], [0.5, 0.5]], [0.5, 0.6])
    with pytest.raises(prefopt.ShapeError, match="Game: reference has 3 entries, expected 2"):
        games.Game([[0.5, 0.5], [0.5, 0.5]], [0.2, 0.3, 0.5])
    with pytest.raises(prefopt.InvalidArgument, match=r"Game.preference: context = 1"):
        games.rock_paper_scissors().preference(1)
    with pytest.raises(prefopt.InvalidArgument, match="epsilon_population_game: eps = 0.5"):
        games.epsilon_population(0.5)
    with pytest.raises(prefopt.ShapeError, match="mixture"):
        games.mixture([games.rock_paper_scissors(), games.condorcet_voters(4)])


def test_goal_tasks_and_their_success_rate():
    t = games.GoalTask([0, 1, 1, 0], 2, [0.1, 0.2, 0.3, 0.4])
    assert (t.num_goals, t.num_responses) == (2, 4)
    np.testing.assert_array_equal(t.outcomes, [0, 1, 1, 0])
    pi = np.array([[0.5, 0.0, 0.0, 0.5], [0.25, 0.25, 0.25, 0.25]])
    assert np.isclose(t.success_rate(pi), (1.0 + 0.5) / 2)
    r = games.GoalTask.random(30, 5, 1.0, 2)
    assert r.num_responses == 30 and sorted(set(r.outcomes)) == [0, 1, 2, 3, 4]
    with pytest.raises(prefopt.InvalidArgument, match=r"outcome\[1\] = 5"):
        games.GoalTask([0, 5], 2, [0.5, 0.5])
    with pytest.raises(prefopt.ShapeError, match="GoalTask.success_rate: policy"):
        t.success_rate(np.ones((3, 4)) / 4)


def test_games_and_tasks_pickle_to_equal_tables():
    import pickle

    g = games.mixture([games.bradley_terry([0.0, 1.0, 2.0], tau=0.1),
                       games.rock_paper_scissors(tau=0.1)], [0.3, 0.7])
    back = pickle.loads(pickle.dumps(g))
    np.testing.assert_array_equal(back.preferences, g.preferences)
    np.testing.assert_array_equal(back.context_weights, g.context_weights)
    assert back.tau == g.tau
    t = games.GoalTask.random(12, 3, 1.0, 5)
    tb = pickle.loads(pickle.dumps(t))
    np.testing.assert_array_equal(tb.outcomes, t.outcomes)
    np.testing.assert_array_equal(tb.reference, t.reference)
