#pragma once
/// \file
/// The areas of the Python module: each is one `bind_<area>` function in its own source file,
/// called from module.cpp. Adding an area (the token-level solvers, ...) is one new file, one
/// declaration here, one call in module.cpp and one line in python/CMakeLists.txt. Shared helpers:
/// arrays.hpp (zero-copy views of the caller's arrays), loss_args.hpp (the losses' arguments),
/// tabular.hpp (converted float64 tables for games, diagnostics and solvers).

#include <pybind11/pybind11.h>

namespace prefopt::python {

/// `prefopt.Error` and its subclasses, mirroring `prefopt::error` (core/error.hpp), and the
/// translation of every C++ prefopt exception into them (same message).
void bind_errors(pybind11::module_& m);

/// `prefopt.kernels`: the per-row logits kernels (kernels/*.hpp except the fused linear ones).
void bind_kernels(pybind11::module_& m);

/// `prefopt.kernels.linear_*`: the fused linear log-probs (kernels/linear_log_probs.hpp).
void bind_linear(pybind11::module_& m);

/// `prefopt.losses`: DPO family, Bradley-Terry, PPO blocks, GAE, whitening (losses/*.hpp).
void bind_losses(pybind11::module_& m);

/// `prefopt.losses`: Nash-MD-PG, INPO and ONPO losses, the tabular pair-regression losses and the
/// HIR losses (losses/nash_pg.hpp, losses/pair_regression.hpp, losses/hir.hpp).
void bind_nash_losses(pybind11::module_& m);

/// `prefopt.games`: preference games, goal tasks, the catalog, games from / to JSON.
void bind_games(pybind11::module_& m);

/// `prefopt.diagnostics`: gaps, exploitability, KL, win rates, the equilibrium solvers.
void bind_diagnostics(pybind11::module_& m);

/// `prefopt.solvers`: every tabular solver, stepped from Python or run through `prefopt::run`.
void bind_solvers(pybind11::module_& m);

/// `prefopt.arena`: the experiment runner of examples/arena (`prefopt-arena`) on a config dict.
void bind_arena(pybind11::module_& m);

}  // namespace prefopt::python
