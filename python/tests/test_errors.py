"""The prefopt.Error hierarchy mirrors prefopt::error, C++ messages arrive unchanged (function,
argument, row), and the GIL is released while a kernel, a solver or an equilibrium solver runs."""

import threading
import time

import numpy as np
import pytest

import prefopt
from prefopt import kernels as k


def test_the_python_hierarchy_mirrors_the_cpp_one():
    assert issubclass(prefopt.Error, RuntimeError)
    assert issubclass(prefopt.InvalidArgument, prefopt.Error)
    assert issubclass(prefopt.InvalidArgument, ValueError)
    assert issubclass(prefopt.ShapeError, prefopt.InvalidArgument)
    assert issubclass(prefopt.DTypeError, prefopt.InvalidArgument)
    assert issubclass(prefopt.DTypeError, TypeError)
    for cls in (prefopt.ParseError, prefopt.IoError, prefopt.ConvergenceError,
                prefopt.InternalAssertionError):
        assert issubclass(cls, prefopt.Error) and not issubclass(cls, prefopt.InvalidArgument)
    assert issubclass(prefopt.IoError, OSError)
    assert prefopt.Error.__module__ == "prefopt"


def test_a_target_outside_the_vocabulary_names_function_row_and_range():
    z = np.zeros((4, 10), np.float32)
    with pytest.raises(prefopt.InvalidArgument) as info:
        k.token_log_probs(z, np.array([0, 1, 10, 3], np.int32))
    assert str(info.value) == "token_log_probs: targets[2] = 10 is outside the vocabulary [0, 10)"
    with pytest.raises(prefopt.InvalidArgument) as info64:
        k.token_log_probs(z, np.array([0, 1, 2, 2**33]))
    assert str(info64.value) == (
        "token_log_probs: targets[3] = 8589934592 is outside the vocabulary [0, 10)")


def test_a_nan_logit_names_the_kernel_row_column_and_value():
    z = np.zeros((3, 5), np.float64)
    z[1, 3] = np.nan
    with pytest.raises(prefopt.InvalidArgument) as info:
        k.entropy(z)
    assert str(info.value) == (
        "entropy: logits(1, 3) = nan in row 1, expected finite or -inf logits")
    z[1, 3] = -np.inf
    z[2, :] = -np.inf
    with pytest.raises(prefopt.InvalidArgument, match=r"^logsumexp|row_logsumexp: logits row 2 "
                                                      r"has no finite logit"):
        k.logsumexp(z)


def test_shape_disagreements_raise_shape_error_with_both_shapes():
    with pytest.raises(prefopt.ShapeError) as info:
        k.kl_divergence(np.zeros((2, 3)), np.zeros((2, 4)))
    assert str(info.value) == "kl_divergence: q_logits is [2, 4], expected the shape of p_logits [2, 3]"
    with pytest.raises(prefopt.ShapeError, match="targets has 3 entries, expected one per row"):
        k.token_log_probs(np.zeros((2, 3)), np.zeros(3, np.int32))


def test_an_infinite_kl_has_no_gradient_and_says_so():
    zp = np.zeros((1, 3))
    zq = np.array([[0.0, 0.0, -np.inf]])
    kl, lse_p, lse_q = k.kl_divergence(zp, zq, with_lse=True)
    assert kl[0] == np.inf
    with pytest.raises(prefopt.InvalidArgument, match="gradient of an infinite KL is undefined"):
        k.kl_divergence_backward(zp, zq, lse_p, lse_q, kl, np.ones(1))


def main_thread_delay(work):
    """Starts ``work`` in a thread and returns how long after the worker entered it this thread
    got to run Python again. When ``work`` holds the GIL, this thread cannot run until ``work``
    returns, so the delay is at least its duration; when it releases the GIL, a few ms at most."""
    started = threading.Event()
    t0 = {}

    def run():
        t0["t"] = time.perf_counter()
        started.set()
        work()

    worker = threading.Thread(target=run)
    worker.start()
    started.wait()
    woke = time.perf_counter()
    worker.join()
    return woke - t0["t"]


def test_the_gil_is_released_while_a_kernel_runs():
    # 512 MB of logits, one thread, double accumulation: a call of a few tenths of a second.
    z = np.zeros((8192, 16000), np.float32)
    t = np.zeros(8192, np.int32)
    out = np.empty(8192, np.float32)

    def call():
        k.token_log_probs(z, t, out=out, accumulation="double", parallel=False)

    start = time.perf_counter()
    call()
    alone = time.perf_counter() - start
    delay = main_thread_delay(call)
    assert delay < 0.25 * alone, (delay, alone)


def test_the_gil_is_released_while_a_solver_runs_and_an_equilibrium_is_solved():
    from prefopt import diagnostics, games, solvers

    game = games.random_intransitive(60, seed=1, tau=0.1)
    nash = solvers.nash_md()

    def run():
        nash.run(game, 100000, every=100000)  # about 0.1 s

    start = time.perf_counter()
    run()
    alone = time.perf_counter() - start
    assert main_thread_delay(run) < 0.25 * alone, alone
    big = games.random_intransitive(800, seed=2)  # the interior point: about 0.1 s

    def solve():
        diagnostics.solve_unregularised(big)

    start = time.perf_counter()
    solve()
    alone = time.perf_counter() - start
    assert main_thread_delay(solve) < 0.25 * alone, alone
