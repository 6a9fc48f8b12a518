"""Type stubs of prefopt.kernels (the compiled module prefopt._prefopt.kernels).

Array = a NumPy array or a CPU torch.Tensor, used in place (never converted): logits row-major
[N, V] float32/float64 with contiguous rows; vectors 1-d contiguous; targets int32 (in place) or
int64 (narrowed into an [N] int32 buffer); masks uint8/bool. Results are NumPy arrays of the
logits' dtype (the caller's own array when passed as out=). Errors: prefopt.DTypeError,
prefopt.ShapeError, prefopt.InvalidArgument (see prefopt.Error).
"""

from typing import Dict, Literal, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt
import torch

Array = Union[npt.NDArray[np.floating], npt.NDArray[np.integer], npt.NDArray[np.bool_], torch.Tensor]
Accumulation = Literal["input", "double"]
Estimator = Literal["k1", "k2", "k3", "abs"]
F = npt.NDArray[np.floating]

def token_log_probs(
    logits: Array, targets: Array, mask: Optional[Array] = None, *, out: Optional[Array] = None,
    lse_out: Optional[Array] = None, with_lse: bool = False, accumulation: Accumulation = "input",
    parallel: bool = True,
) -> Union[F, Tuple[F, F]]: ...
def token_log_probs_backward(
    logits: Array, targets: Array, lse: Array, grad: Array, mask: Optional[Array] = None, *,
    out: Optional[Array] = None, accumulate: bool = False, accumulation: Accumulation = "input",
    parallel: bool = True,
) -> F: ...
def logsumexp(
    logits: Array, mask: Optional[Array] = None, *, out: Optional[Array] = None,
    accumulation: Accumulation = "input", parallel: bool = True,
) -> F: ...
def log_softmax(
    logits: Array, mask: Optional[Array] = None, *, out: Optional[Array] = None,
    accumulation: Accumulation = "input", parallel: bool = True,
) -> F: ...
def entropy(
    logits: Array, mask: Optional[Array] = None, *, out: Optional[Array] = None,
    lse_out: Optional[Array] = None, with_lse: bool = False, accumulation: Accumulation = "input",
    parallel: bool = True,
) -> Union[F, Tuple[F, F]]: ...
def entropy_backward(
    logits: Array, lse: Array, entropy: Array, grad: Array, mask: Optional[Array] = None, *,
    out: Optional[Array] = None, accumulate: bool = False, accumulation: Accumulation = "input",
    parallel: bool = True,
) -> F: ...
def kl_divergence(
    p_logits: Array, q_logits: Array, mask: Optional[Array] = None, *, out: Optional[Array] = None,
    reverse_out: Optional[Array] = None, lse_p_out: Optional[Array] = None,
    lse_q_out: Optional[Array] = None, with_reverse: bool = False, with_lse: bool = False,
    accumulation: Accumulation = "input", parallel: bool = True,
) -> Union[F, Tuple[F, ...]]: ...
def kl_divergence_backward(
    p_logits: Array, q_logits: Array, lse_p: Array, lse_q: Array, kl: Array, grad: Array,
    mask: Optional[Array] = None, *, out_p: Optional[Array] = None, out_q: Optional[Array] = None,
    q_grad: bool = True, accumulate: bool = False, accumulation: Accumulation = "input",
    parallel: bool = True,
) -> Union[F, Tuple[F, F]]: ...
def token_stats(
    logits: Array, targets: Optional[Array] = None, q_logits: Optional[Array] = None,
    mask: Optional[Array] = None, *, outputs: Sequence[str] = ("log_probs", "logsumexp"),
    out: Optional[Mapping[str, Array]] = None, accumulation: Accumulation = "input",
    parallel: bool = True,
) -> Dict[str, F]: ...
def token_stats_backward(
    logits: Array, targets: Optional[Array] = None, q_logits: Optional[Array] = None, *,
    saved: Mapping[str, Array], grads: Mapping[str, Array], mask: Optional[Array] = None,
    out: Optional[Array] = None, out_q: Optional[Array] = None, q_grad: bool = False,
    accumulate: bool = False, accumulation: Accumulation = "input", parallel: bool = True,
) -> Union[F, Tuple[F, F]]: ...
def sampled_kl(
    log_probs: Array, ref_log_probs: Array, estimator: Estimator = "k1",
    mask: Optional[Array] = None, *, out: Optional[Array] = None,
) -> F: ...
def sampled_kl_backward(
    log_probs: Array, ref_log_probs: Array, grad: Array, estimator: Estimator = "k1",
    mask: Optional[Array] = None, *, out: Optional[Array] = None, ref_out: Optional[Array] = None,
    ref_grad: bool = False, accumulate: bool = False,
) -> Union[F, Tuple[F, F]]: ...
def linear_log_probs(
    hidden: Array, weight: Array, targets: Optional[Array] = None, bias: Optional[Array] = None,
    mask: Optional[Array] = None, *, outputs: Sequence[str] = ("log_probs", "logsumexp"),
    out: Optional[Mapping[str, Array]] = None, block_size: int = 1008, row_tile: int = 0,
    accumulation: Accumulation = "input", parallel: bool = True,
) -> Dict[str, F]: ...
def linear_log_probs_backward(
    hidden: Array, weight: Array, targets: Optional[Array] = None, bias: Optional[Array] = None,
    *, saved: Mapping[str, Array], grads: Mapping[str, Array], mask: Optional[Array] = None,
    wrt: Sequence[str] = ("hidden", "weight"), out: Optional[Mapping[str, Array]] = None,
    accumulate: bool = False, block_size: int = 1008, row_tile: int = 0,
    accumulation: Accumulation = "input", parallel: bool = True,
) -> Dict[str, F]: ...
def linear_workspace_bytes(
    n: int, v: int, d: int, dtype: Union[str, np.dtype] = "float32", *, backward: bool = False,
    block_size: int = 1008, row_tile: int = 0, parallel: bool = True,
) -> int: ...
