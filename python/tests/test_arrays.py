"""What the bindings accept: the caller's memory in place (no copy on the fast path), and a clear
prefopt error, never a silent conversion, for everything else."""

import tracemalloc

import numpy as np
import pytest

import prefopt
from prefopt import kernels as k


def address(a):
    return a.__array_interface__["data"][0]


def test_the_forward_reads_the_logits_in_place_without_allocating_a_copy():
    # 4096 x 1000 float32 = 16 MB of logits: any copy (by NumPy, as pybind11's forcecast would
    # make) shows in tracemalloc, which NumPy reports its data buffers to.
    rng = np.random.default_rng(1)
    z = rng.standard_normal((4096, 1000), dtype=np.float32)
    z.flags.writeable = False  # read-only input is fine: the kernels never write to it
    t = rng.integers(0, 1000, 4096).astype(np.int32)
    out = np.empty(4096, np.float32)
    lse = np.empty(4096, np.float32)
    k.token_log_probs(z, t, out=out, lse_out=lse)  # warm up (first-call allocations)
    tracemalloc.start()
    try:
        k.token_log_probs(z, t, out=out, lse_out=lse)
        k.entropy(z, out=out)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024, f"{peak} bytes allocated during calls that should allocate nothing"


def test_int64_targets_cost_one_int32_buffer_and_never_a_logits_copy():
    rng = np.random.default_rng(2)
    z = rng.standard_normal((4096, 1000), dtype=np.float32)
    t = rng.integers(0, 1000, 4096)  # int64
    out = np.empty(4096, np.float32)
    k.token_log_probs(z, t, out=out)
    tracemalloc.start()
    try:
        k.token_log_probs(z, t, out=out)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024  # the narrowing buffer is a std::vector, not a NumPy copy of z


def test_outputs_are_the_callers_buffers():
    z = np.zeros((3, 4), np.float64)
    out = np.empty(3)
    lp = k.logsumexp(z, out=out)
    assert address(lp) == address(out)
    np.testing.assert_allclose(out, np.log(4.0))


def test_torch_cpu_tensors_are_used_through_their_shared_memory_view():
    torch = pytest.importorskip("torch")
    z = torch.randn(6, 9, dtype=torch.float64, requires_grad=True)
    t = torch.randint(0, 9, (6,))
    out = torch.empty(6, dtype=torch.float64)
    r = k.token_log_probs(z, t, out=out)
    assert address(r) == out.data_ptr()
    ref = torch.log_softmax(z.detach(), -1).gather(-1, t[:, None])[:, 0]
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-13)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda z: z.astype(np.int16), "logits has dtype int16, expected float32 or float64"),
        (lambda z: z.astype(np.float16), "logits has dtype float16"),
        (lambda z: z.astype(">f4"), "logits has dtype >f4"),
        (lambda z: np.asfortranarray(z), "logits has a column stride of 32 bytes"),
        (lambda z: z[:, ::2], "column stride of 8 bytes"),
        (lambda z: z[::-1], "row stride of -16 bytes"),
        (lambda z: z.tolist(), "logits is a list, expected a numpy.ndarray or a CPU torch.Tensor"),
        (lambda z: z[0], "logits has 1 dimensions, expected a 2-d [N, V] array"),
    ],
)
def test_inputs_that_would_need_a_copy_are_rejected_with_a_clear_message(make, message):
    z = np.zeros((8, 4), np.float32)
    t = np.zeros(len(z), np.int32)
    with pytest.raises(prefopt.InvalidArgument) as info:
        k.token_log_probs(make(z), t[: len(make(z))] if hasattr(make(z), "__len__") else t)
    assert message in str(info.value)
    assert str(info.value).startswith("token_log_probs: ")


def test_wrong_dtypes_raise_dtype_error_which_is_also_a_type_error():
    z = np.zeros((2, 3), np.float32)
    with pytest.raises(prefopt.DTypeError, match="targets has dtype float64, expected int32 or int64"):
        k.token_log_probs(z, np.zeros(2))
    with pytest.raises(TypeError):
        k.token_log_probs(z, np.zeros(2, np.int32), np.zeros(2, np.float32))
    with pytest.raises(prefopt.DTypeError, match="out has dtype float64, expected float32"):
        k.token_log_probs(z, np.zeros(2, np.int32), out=np.zeros(2))


def test_outputs_must_be_writeable_and_of_the_right_shape():
    z = np.zeros((2, 3), np.float32)
    t = np.zeros(2, np.int32)
    ro = np.zeros(2, np.float32)
    ro.flags.writeable = False
    with pytest.raises(prefopt.InvalidArgument, match="out is read-only"):
        k.token_log_probs(z, t, out=ro)
    with pytest.raises(prefopt.ShapeError, match="out has 3 entries, expected one per row \\(2\\)"):
        k.token_log_probs(z, t, out=np.zeros(3, np.float32))
    with pytest.raises(prefopt.ShapeError, match=r"out is \[2, 2\], expected \[2, 3\]"):
        k.token_log_probs_backward(z, t, np.zeros(2, np.float32), np.ones(2, np.float32),
                                   out=np.zeros((2, 2), np.float32))


def test_torch_tensors_of_other_devices_or_dtypes_are_rejected():
    torch = pytest.importorskip("torch")
    t = torch.zeros(2, dtype=torch.int64)
    with pytest.raises(prefopt.DTypeError, match="logits has dtype torch.bfloat16"):
        k.token_log_probs(torch.zeros(2, 3, dtype=torch.bfloat16), t)
    with pytest.raises(prefopt.InvalidArgument, match="column stride"):
        k.token_log_probs(torch.zeros(3, 2).t(), t)
    meta = torch.zeros(2, 3, device="meta")
    with pytest.raises(prefopt.InvalidArgument, match="on device 'meta', expected a CPU tensor"):
        k.token_log_probs(meta, t)
