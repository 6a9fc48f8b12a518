"""prefopt.arena.run: the experiment runner of prefopt-arena on a config dict returns the results
document the program writes; its curves agree with prefopt.solvers runs of the same solvers and
with prefopt.diagnostics' equilibrium, its "results" part does not depend on the thread count, and
a bad config raises prefopt.ParseError naming the JSON pointer."""

import json

import numpy as np
import pytest

import prefopt
from prefopt import arena, diagnostics, games, solvers


@pytest.fixture
def game():
    return games.biased_rock_paper_scissors(0.8, 0.6, 0.9, reference=[0.6, 0.3, 0.1], tau=0.2)


def config(game, **extra):
    c = {"name": "python test", "game": {"inline": json.loads(game.to_json())}, "iterations": 40,
         "eval_every": 10, "seeds": [0, 1],
         "solvers": [{"kind": "nash_md"}, {"kind": "onpo", "eta": 0.3},
                     {"kind": "dpo", "dataset_size": 256, "batch_size": 16}]}
    c.update(extra)
    return c


def test_a_tabular_run_returns_the_results_document(game):
    doc = arena.run(config(game))
    assert set(doc) == {"results", "timing"}
    res = doc["results"]
    assert res["config"]["name"] == "python test"
    assert [s["kind"] for s in res["solvers"]] == ["nash_md", "onpo", "dpo"]
    assert [s["evaluates"] for s in res["solvers"]] == ["last_iterate", "average_iterate",
                                                        "last_iterate"]
    eq = diagnostics.solve_regularised(game)["probabilities"]
    np.testing.assert_allclose(res["problem"]["equilibrium"]["probabilities"], eq, atol=1e-12)
    assert res["problem"]["tau"] == 0.2 and res["problem"]["num_actions"] == 3
    assert len(doc["timing"]["solvers"]) == 3


def test_its_curves_agree_with_the_python_solvers(game):
    res = arena.run(config(game))["results"]
    nash = solvers.nash_md().run(game, 40, every=10)["history"]
    curves = res["solvers"][0]["runs"][0]["metrics"]
    np.testing.assert_allclose(curves["duality_gap"], nash["duality_gap"], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(curves["kl_to_reference"], nash["kl_to_reference"], rtol=1e-12,
                               atol=1e-15)
    onpo = solvers.onpo(eta=0.3).run(game, 40, every=10)["history"]
    np.testing.assert_allclose(res["solvers"][1]["runs"][0]["metrics"]["duality_gap"],
                               onpo["average_duality_gap"], rtol=1e-12, atol=1e-15)
    assert res["solvers"][0]["summary"]["duality_gap"] == pytest.approx(nash["duality_gap"][-1])


def test_results_do_not_depend_on_the_thread_count_and_json_text_is_accepted(game):
    one = arena.run(config(game))["results"]
    two = arena.run(json.dumps(config(game)), threads=2)["results"]
    assert one == two


def test_a_goal_task_runs_hir():
    doc = arena.run({"task": {"responses": 20, "goals": 4, "seed": 1}, "iterations": 10,
                     "eval_every": 5, "solvers": [{"kind": "hir", "batch_size": 16}]})
    run = doc["results"]["solvers"][0]["runs"][0]
    assert run["status"] == "completed" and len(run["metrics"]["success_rate"]) == 3


def test_a_tiny_sequence_experiment_runs(tmp_path):
    c = {"sequence_task": {"kind": "quality", "content_tokens": 5, "num_prompts": 4,
                           "prompt_length": 2, "seed": 1},
         "model": {"d_model": 8, "layers": 1, "heads": 1, "max_new_tokens": 3},
         "reference": {"best_of": 2, "rounds": 1, "sft_steps": 5},
         "cache_dir": str(tmp_path / "cache"), "iterations": 2, "eval_every": 1, "seeds": [0],
         "solvers": [{"kind": "dpo", "dataset_size": 8, "batch_size": 4}]}
    res = arena.run(c)["results"]
    assert res["solvers"][0]["kind"] == "dpo"
    assert res["solvers"][0]["runs"][0]["curves"]["iteration"] == [0, 1, 2]
    assert any((tmp_path / "cache").iterdir())  # the shared reference is cached, as the CLI does


def test_bad_configs_name_the_json_pointer(game):
    with pytest.raises(prefopt.ParseError, match=r"config /solvers/0/eta: -1.0 is out of range"):
        arena.run(config(game, solvers=[{"kind": "onpo", "eta": -1.0}]))
    with pytest.raises(prefopt.ParseError, match=r"/solvers/0.*(unknown|etta)"):
        arena.run(config(game, solvers=[{"kind": "onpo", "etta": 1.0}]))
    with pytest.raises(prefopt.ParseError, match="expected exactly one of"):
        arena.run({"iterations": 3, "solvers": [{"kind": "dpo"}]})
    with pytest.raises(prefopt.ParseError, match="/model/heads"):
        arena.run({"sequence_task": {"kind": "quality"}, "model": {"d_model": 8, "heads": 3},
                   "solvers": [{"kind": "dpo"}]})
    with pytest.raises(prefopt.ParseError, match="arena.run: config"):
        arena.run("{not json")
    with pytest.raises(prefopt.ParseError, match="not JSON-serialisable"):
        arena.run({"game": object()})
    with pytest.raises(prefopt.DTypeError, match="arena.run: config of type list"):
        arena.run([1, 2])
    with pytest.raises(prefopt.InvalidArgument, match="arena.run: threads = 0"):
        arena.run(config(game), threads=0)
    with pytest.raises(prefopt.ParseError, match="memory limit"):
        arena.run(config(game), memory_limit_gib=1e-9)
