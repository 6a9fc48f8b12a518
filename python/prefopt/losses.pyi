"""Type stubs of prefopt.losses. Inputs: 1-d contiguous float32/float64 arrays (NumPy or CPU
torch), lengths/offsets int64 (int32 widened). Each loss returns a dict with ``loss`` (float),
per-element arrays, gradients of the reduced loss and ``metrics`` (Dict[str, float])."""

from typing import Any, Dict, Literal, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt
import torch

Array = Union[npt.NDArray[Any], torch.Tensor]
F = npt.NDArray[np.floating]
Reduction = Literal["mean", "sum"]

def dpo_loss(
    policy_chosen: Array, policy_rejected: Array, reference_chosen: Optional[Array] = None,
    reference_rejected: Optional[Array] = None, chosen_lengths: Optional[Array] = None,
    rejected_lengths: Optional[Array] = None, *,
    variant: Literal["sigmoid", "label_smoothed", "ipo", "hinge", "simpo"] = "sigmoid",
    beta_dpo: float = 0.1, length_average: bool = False, eps_ls: float = 0.0,
    gamma_simpo: float = 0.0, reduction: Reduction = "mean",
) -> Dict[str, Any]: ...
def bradley_terry_loss(
    r_chosen: Array, r_rejected: Array, margin: Optional[Array] = None, *, c_center: float = 0.0,
    reduction: Reduction = "mean",
) -> Dict[str, Any]: ...
def ppo_policy_loss(
    new_logps: Array, old_logps: Array, advantages: Array, *, eps_clip: float = 0.2
) -> Dict[str, Any]: ...
def ppo_value_loss(
    new_values: Array, old_values: Array, returns: Array, *, eps_v: float = 0.2
) -> Dict[str, Any]: ...
def generalized_advantages(
    rewards: Array, values: Array, offsets: Array, *, gamma: float = 1.0, lam: float = 0.95
) -> Tuple[F, F]: ...
def whiten(
    values: Array, offsets: Optional[Array] = None, *, shift_mean: bool = True, eps: float = 1e-8,
    out: Optional[Array] = None,
) -> F: ...
