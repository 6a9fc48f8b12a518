"""prefopt.torch: gradcheck in double against finite differences, and float32 forward / backward
against PyTorch's own ops (computed in float64) within the kernels' stated bounds."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import prefopt  # noqa: E402
import prefopt.torch as pt  # noqa: E402

from conftest import entropy_bound, grad_bound, kl_bound, lse_bound  # noqa: E402


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(20261201)


def test_token_log_probs_passes_gradcheck(gen):
    z = torch.randn(6, 11, dtype=torch.float64, generator=gen, requires_grad=True)
    t = torch.randint(0, 11, (6,), generator=gen)
    assert torch.autograd.gradcheck(lambda x: pt.token_log_probs(x, t), (z,))
    mask = torch.tensor([1, 0, 1, 1, 0, 1], dtype=torch.bool)
    assert torch.autograd.gradcheck(lambda x: pt.token_log_probs(x, t, mask), (z,))


def test_entropy_passes_gradcheck(gen):
    z = torch.randn(5, 9, dtype=torch.float64, generator=gen, requires_grad=True)
    assert torch.autograd.gradcheck(pt.entropy, (z,))


def test_kl_passes_gradcheck_in_both_arguments(gen):
    zp = torch.randn(4, 7, dtype=torch.float64, generator=gen, requires_grad=True)
    zq = torch.randn(4, 7, dtype=torch.float64, generator=gen, requires_grad=True)
    assert torch.autograd.gradcheck(pt.kl_divergence, (zp, zq))


def test_kl_to_a_frozen_reference_computes_no_reference_gradient(gen):
    zp = torch.randn(3, 5, dtype=torch.float64, generator=gen, requires_grad=True)
    zq = torch.randn(3, 5, dtype=torch.float64, generator=gen)
    pt.kl_divergence(zp, zq).sum().backward()
    assert zq.grad is None and zp.grad is not None


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("with_entropy", [False, True])
def test_linear_log_probs_passes_gradcheck(gen, bias, with_entropy):
    h = torch.randn(5, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    w = torch.randn(13, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    b = torch.randn(13, dtype=torch.float64, generator=gen, requires_grad=True) if bias else None
    t = torch.randint(0, 13, (5,), generator=gen)

    def f(h, w, *b):
        r = pt.linear_log_probs(h, w, t, b[0] if b else None, with_entropy=with_entropy)
        return r if not with_entropy else r[0] + 0.5 * r[1]

    args = (h, w) + ((b,) if bias else ())
    assert torch.autograd.gradcheck(f, args)


def test_linear_log_probs_equal_token_log_probs_on_the_materialized_logits(gen):
    h = torch.randn(37, 16, generator=gen)
    w = torch.randn(3000, 16, generator=gen)
    b = torch.randn(3000, generator=gen)
    t = torch.randint(0, 3000, (37,), generator=gen)
    lp = pt.linear_log_probs(h, w, t, b)
    ref = torch.log_softmax((h.double() @ w.double().T + b.double()), -1).gather(-1, t[:, None])[:, 0]
    # the GEMM rounds the logits (|z| <= ~sqrt(D) * 4): a few float ulps of |z| on top of the bound
    tol = lse_bound(np.float32, ref.numpy(), 3000) + 1e-5 * (1 + ref.abs().numpy())
    assert np.all(np.abs(lp.double().numpy() - ref.numpy()) <= tol)


def test_float32_token_log_probs_and_gradient_against_pytorch_within_the_bound(gen):
    n, v = 64, 5000
    z = (4 * torch.randn(n, v, generator=gen)).requires_grad_()
    t = torch.randint(0, v, (n,), generator=gen)
    g = torch.randn(n, generator=gen)
    lp = pt.token_log_probs(z, t)
    lp.backward(g)
    z64 = z.detach().double().requires_grad_()
    ls = torch.log_softmax(z64, -1)
    ref = ls.gather(-1, t[:, None])[:, 0]
    ref.backward(g.double())
    assert lp.dtype == torch.float32
    assert np.all(np.abs((lp.double() - ref).detach().numpy())
                  <= lse_bound(np.float32, ref.detach().numpy(), v))
    lse = torch.logsumexp(z64, -1).detach().numpy()
    p = ls.detach().exp().numpy()
    bound = grad_bound(np.float32, g.numpy(), lse, z.detach().numpy(), p)
    assert np.all(np.abs((z.grad.double() - z64.grad).numpy()) <= bound)
    # and -cross_entropy(reduction='none') is the same quantity
    ce = torch.nn.functional.cross_entropy(z.detach(), t, reduction="none")
    torch.testing.assert_close(lp.detach(), -ce, rtol=0, atol=1e-5)


def test_float32_entropy_and_kl_against_pytorch_within_the_bound(gen):
    n, v = 32, 4000
    zp = 3 * torch.randn(n, v, generator=gen)
    zq = 3 * torch.randn(n, v, generator=gen)
    lp64, lq64 = torch.log_softmax(zp.double(), -1), torch.log_softmax(zq.double(), -1)
    h_ref = -(lp64.exp() * lp64).sum(-1)
    kl_ref = (lp64.exp() * (lp64 - lq64)).sum(-1)
    h = pt.entropy(zp)
    kl = pt.kl_divergence(zp, zq)
    assert np.all(np.abs((h.double() - h_ref).numpy()) <= entropy_bound(np.float32, h_ref.numpy(), v))
    assert np.all(np.abs((kl.double() - kl_ref).numpy())
                  <= kl_bound(np.float32, zp.numpy(), zq.numpy()))


def test_leading_dimensions_are_kept_and_views_are_not_copied(gen):
    z = torch.randn(2, 3, 50, generator=gen, requires_grad=True)
    t = torch.randint(0, 50, (2, 3), generator=gen)
    lp = pt.token_log_probs(z, t)
    assert lp.shape == (2, 3)
    lp.sum().backward()
    assert z.grad.shape == z.shape
    ref = torch.log_softmax(z.detach(), -1).gather(-1, t[..., None])[..., 0]
    torch.testing.assert_close(lp.detach(), ref, rtol=0, atol=1e-5)
    shifted = z[:, :-1, :]  # [B, T-1, V]: not viewable as [N, V] without a copy
    with pytest.raises(prefopt.InvalidArgument, match="cannot be viewed as \\[N, V\\] without a copy"):
        pt.token_log_probs(shifted, t[:, :-1])
    assert pt.token_log_probs(shifted.contiguous(), t[:, :-1]).shape == (2, 2)


def test_errors_from_the_kernels_reach_torch_callers_unchanged():
    z = torch.zeros(2, 4, requires_grad=True)
    with pytest.raises(prefopt.InvalidArgument,
                       match=r"^token_log_probs: targets\[1\] = 4 is outside the vocabulary \[0, 4\)$"):
        pt.token_log_probs(z, torch.tensor([0, 4]))
