"""prefopt from Python: the C++ library's kernels on NumPy arrays and CPU torch tensors.

``prefopt.kernels`` -- logits kernels (token log-probs, log-sum-exp, entropy, KL, fused stats, fused
linear log-probs) and their backward passes, over the caller's memory (no copies), GIL released.
``prefopt.losses`` -- DPO family (every variant, length averaging), Bradley-Terry, PPO policy and
value losses, GAE, whitening: values, gradients and TRL-named metrics.
``prefopt.games`` -- preference games and goal tasks: the catalog, JSON, tables as NumPy arrays.
``prefopt.diagnostics`` -- duality gaps, exploitability, KL, win rates, the equilibrium solvers.
``prefopt.solvers`` -- every tabular solver, stepped from Python or run with its history.
``prefopt.arena`` -- the experiment runner (``prefopt-arena``) on a config dict.
``prefopt.torch`` -- ``torch.autograd.Function``s built on them (imported on demand: ``import
prefopt.torch``).

Errors raised by the C++ library arrive as ``prefopt.Error`` subclasses with the same message::

    Error(RuntimeError)
      InvalidArgument(Error, ValueError)
        ShapeError(InvalidArgument)
        DTypeError(InvalidArgument, TypeError)
      ParseError(Error)
      IoError(Error, OSError)
      ConvergenceError(Error)
      InternalAssertionError(Error)
"""

import sys as _sys

from ._prefopt import (  # noqa: F401
    ConvergenceError,
    DTypeError,
    Error,
    InternalAssertionError,
    InvalidArgument,
    IoError,
    ParseError,
    ShapeError,
    arena,
    diagnostics,
    games,
    get_num_threads,
    kernels,
    losses,
    openmp,
    set_num_threads,
    simd_instruction_sets,
    solvers,
)

# `import prefopt.kernels` / `from prefopt.kernels import token_log_probs` find the submodule.
for _sub in (kernels, losses, games, diagnostics, solvers, arena):
    _sys.modules[__name__ + "." + _sub.__name__.rsplit(".", 1)[-1]] = _sub
del _sub

__all__ = [
    "ConvergenceError",
    "DTypeError",
    "Error",
    "InternalAssertionError",
    "InvalidArgument",
    "IoError",
    "ParseError",
    "ShapeError",
    "arena",
    "diagnostics",
    "games",
    "get_num_threads",
    "kernels",
    "losses",
    "openmp",
    "set_num_threads",
    "simd_instruction_sets",
    "solvers",
]
