"""prefopt from Python: the C++ library's kernels on NumPy arrays and CPU torch tensors.

``prefopt.kernels`` -- logits kernels (token log-probs, log-sum-exp, entropy, KL, fused stats, fused
linear log-probs) and their backward passes, over the caller's memory (no copies), GIL released.
``prefopt.losses`` -- DPO family (every variant, length averaging), Bradley-Terry, PPO policy and
value losses, GAE, whitening: values, gradients and TRL-named metrics.
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
    get_num_threads,
    kernels,
    losses,
    openmp,
    set_num_threads,
    simd_instruction_sets,
)

# `import prefopt.kernels` / `from prefopt.kernels import token_log_probs` find the submodule.
_sys.modules[__name__ + ".kernels"] = kernels
_sys.modules[__name__ + ".losses"] = losses

__all__ = [
    "ConvergenceError",
    "DTypeError",
    "Error",
    "InternalAssertionError",
    "InvalidArgument",
    "IoError",
    "ParseError",
    "ShapeError",
    "get_num_threads",
    "kernels",
    "losses",
    "openmp",
    "set_num_threads",
    "simd_instruction_sets",
]
