"""Type stubs of prefopt.solvers: a factory per tabular solver kind, each returning a Solver."""

from typing import Any, Dict, Literal, Optional, Union

import numpy as np
import numpy.typing as npt

from .games import Game, GoalTask

F = npt.NDArray[np.float64]
Payoff = Literal["exact", "sampled"]
Initial = Union[Literal["reference", "uniform"], npt.ArrayLike]
Optimizer = Literal["adam", "sgd"]

class State:
    @property
    def solver(self) -> str: ...
    @property
    def iteration(self) -> int: ...
    def policy(self) -> F: ...
    def logits(self) -> F: ...
    def average_policy(self) -> Optional[F]: ...

class Solver:
    @property
    def name(self) -> str: ...
    @property
    def problem(self) -> str: ...
    @property
    def averaged(self) -> bool: ...
    def init(self, problem: Union[Game, GoalTask]) -> State: ...
    def step(self, problem: Union[Game, GoalTask], state: State) -> Dict[str, float]: ...
    def run(
        self, problem: Union[Game, GoalTask], iterations: int, *, every: int = 1,
        snapshots: bool = False, state: Optional[State] = None,
    ) -> Dict[str, Any]: ...

def nash_md(
    *, eta: Optional[float] = None, payoff: Payoff = "exact", samples: int = 16, seed: int = 0,
    initial: Initial = "reference",
) -> Solver: ...
def omd(
    *, eta: Optional[float] = None, payoff: Payoff = "exact", samples: int = 16, seed: int = 0,
    initial: Initial = "reference",
) -> Solver: ...
def inpo(
    *, eta: Optional[float] = None, payoff: Payoff = "exact", samples: int = 16, seed: int = 0,
    initial: Initial = "reference",
) -> Solver: ...
def self_play(
    *, eta: float = 0.5, payoff: Payoff = "exact", samples: int = 16, seed: int = 0,
    initial: Initial = "uniform",
) -> Solver: ...
def onpo(
    *, eta: float = 0.5, payoff: Payoff = "exact", samples: int = 16, seed: int = 0,
    initial: Initial = "uniform",
) -> Solver: ...
def regularised_onpo(
    *, eta: float = 0.5, payoff: Payoff = "exact", samples: int = 16, seed: int = 0,
    initial: Initial = "uniform",
) -> Solver: ...
def dpo(
    *, beta_dpo: float = 0.1, length_average: bool = False, gamma_simpo: float = 0.0, source: Literal["offline", "online"] = "offline",
    dataset_size: int = 4096, batch_size: int = 64, optimizer: Optimizer = "adam",
    learning_rate: float = 0.05, seed: int = 0,
) -> Solver: ...
def ipo(
    *, beta_dpo: float = 0.1, length_average: bool = False, gamma_simpo: float = 0.0, source: Literal["offline", "online"] = "offline",
    dataset_size: int = 4096, batch_size: int = 64, optimizer: Optimizer = "adam",
    learning_rate: float = 0.05, seed: int = 0,
) -> Solver: ...
def simpo(
    *, beta_dpo: float = 0.1, length_average: bool = False, gamma_simpo: float = 0.0, source: Literal["offline", "online"] = "offline",
    dataset_size: int = 4096, batch_size: int = 64, optimizer: Optimizer = "adam",
    learning_rate: float = 0.05, seed: int = 0,
) -> Solver: ...
def slic(
    *, beta_dpo: float = 0.1, length_average: bool = False, gamma_simpo: float = 0.0, source: Literal["offline", "online"] = "offline",
    dataset_size: int = 4096, batch_size: int = 64, optimizer: Optimizer = "adam",
    learning_rate: float = 0.05, seed: int = 0,
) -> Solver: ...
def rlhf_ppo(
    *, kl_coefficient: float = 0.1, kl_control: Literal["fixed", "adaptive"] = "fixed",
    kl_target: float = 0.05, kl_horizon: float = 10000.0, batch_size: int = 256,
    minibatch_size: int = 64, epochs: int = 4, eps_clip: float = 0.2, reward_pairs: int = 8192,
    reward_iterations: int = 1500, optimizer: Optimizer = "adam", learning_rate: float = 0.05,
    seed: int = 0,
) -> Solver: ...
def hir(
    *, mode: Literal["hindsight", "no_relabeling", "successes_only"] = "hindsight",
    contrast: Literal["two_way", "k_way"] = "two_way", batch_size: int = 64,
    updates_per_round: int = 4, eps_ls: float = 0.2, w_con: float = 1.0, w_ent: float = 0.001,
    optimizer: Optimizer = "adam", learning_rate: float = 0.05, seed: int = 0,
) -> Solver: ...
