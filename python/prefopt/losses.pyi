"""Type stubs of prefopt.losses. Sequence-level inputs: 1-d contiguous float32/float64 arrays
(NumPy or CPU torch), lengths/offsets int64 (int32 widened); the tabular losses take float64
tables (converted). Each loss returns a dict with ``loss`` (float), per-element arrays, gradients
of the reduced loss and ``metrics`` (Dict[str, float])."""

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
    variant: Literal["sigmoid", "label_smoothed", "robust", "ipo", "hinge", "simpo"] = "sigmoid",
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
def nash_md_pg_surrogate(
    policy_logps: Array, reference_logps: Array, offsets: Array, preferences: Array, *,
    tau: float, credit: Literal["reward_to_go", "same_position"] = "reward_to_go",
    reduction: Reduction = "mean",
) -> Dict[str, Any]: ...
def inpo_loss(
    policy_chosen: Array, policy_rejected: Array, reference_chosen: Array,
    reference_rejected: Array, anchor_chosen: Array, anchor_rejected: Array, *, eta: float,
    tau: float, reduction: Reduction = "mean",
) -> Dict[str, Any]: ...
def onpo_loss(
    policy_chosen: Array, policy_rejected: Array, anchor_chosen: Array, anchor_rejected: Array,
    *, eta: float, reduction: Reduction = "mean",
) -> Dict[str, Any]: ...
def labelled_pair_loss(
    p: npt.ArrayLike, q: npt.ArrayLike, anchor: npt.ArrayLike, z: npt.ArrayLike, *, eta: float
) -> Dict[str, Any]: ...
def regression_pair_loss(
    p: npt.ArrayLike, q: npt.ArrayLike, anchor: npt.ArrayLike, z: npt.ArrayLike, *, eta: float
) -> Dict[str, Any]: ...
def tabular_nash_gradient(
    pi: npt.ArrayLike, p: npt.ArrayLike, pi_opponent: npt.ArrayLike, mu: npt.ArrayLike, *,
    tau: float,
) -> F: ...
def tabular_regularized_preference(
    pi: npt.ArrayLike, p: npt.ArrayLike, pi_opponent: npt.ArrayLike, mu: npt.ArrayLike, *,
    tau: float,
) -> float: ...
def label_smoothed_cross_entropy(
    logits: Array, targets: Array, *, eps_ls: float = 0.2
) -> Dict[str, Any]: ...
def entropy_bonus(logits: Array, *, w_ent: float = 0.001) -> Dict[str, Any]: ...
def contrastive_instruction_loss_2way(
    ell_positive: Array, ell_negative: Array, *, eps_ls: float = 0.2
) -> Dict[str, Any]: ...
def contrastive_instruction_loss(
    ell: Array, positive: Optional[Array] = None, *, eps_ls: float = 0.2
) -> Dict[str, Any]: ...
def sequence_log_likelihoods(
    token_logps: Array, offsets: Array, *, reduction: Literal["mean_token", "sum"] = "mean_token"
) -> F: ...
