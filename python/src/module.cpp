/// \file
/// The compiled module `prefopt._prefopt`, re-exported by `prefopt/__init__.py`.

#include <Eigen/Core>

#include <pybind11/pybind11.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "bindings.hpp"
#include "prefopt/core/error.hpp"

namespace py = pybind11;

PYBIND11_MODULE(_prefopt, m) {
  m.doc() = "prefopt: preference optimization kernels and losses (compiled core)";
  prefopt::python::bind_errors(m);

  auto kernels = m.def_submodule(
      "kernels",
      "Logits kernels on NumPy arrays and CPU torch tensors (zero-copy). Conventions: logits are "
      "row-major [N, V] float32/float64 arrays with contiguous rows (any row stride); per-row "
      "vectors are 1-d contiguous [N] arrays; targets int32 (used in place) or int64 (narrowed "
      "into an [N] int32 buffer); masks uint8 or bool [N] (0: row not read, outputs 0). Inputs "
      "of any other dtype or layout raise prefopt.InvalidArgument / prefopt.DTypeError: nothing "
      "is converted or copied. Outputs go into the arrays passed as out= (checked) or into fresh "
      "arrays. The GIL is released while a kernel runs. Accuracy bounds: "
      "include/prefopt/kernels/options.hpp.");
  prefopt::python::bind_kernels(kernels);
  prefopt::python::bind_linear(kernels);
  auto losses = m.def_submodule(
      "losses",
      "Sequence-level losses on NumPy arrays / CPU torch tensors (float32 or float64, 1-d "
      "contiguous, never converted): each returns a dict with the reduced loss, the gradients of "
      "that loss and the metrics under the C++ (TRL) names.");
  prefopt::python::bind_losses(losses);
  prefopt::python::bind_nash_losses(losses);
  auto games = m.def_submodule(
      "games",
      "Preference games and goal-conditioned tasks: the catalog of test games, games from / to "
      "JSON and their tables as NumPy float64 arrays (inputs are converted and copied: tables are "
      "small).");
  prefopt::python::bind_games(games);
  auto diagnostics = m.def_submodule(
      "diagnostics",
      "Diagnostics of tabular policies in a preference game (duality gaps, exploitability, KL, "
      "win rates) and the equilibrium solvers (solve_regularised for tau > 0, "
      "solve_unregularised for tau = 0). Policies are [contexts, n] probability tables.");
  prefopt::python::bind_diagnostics(diagnostics);
  auto solvers = m.def_submodule(
      "solvers",
      "Every tabular solver of prefopt (Nash-MD, OMD / INPO, self-play MWU, ONPO, the DPO "
      "family, RLHF with PPO, HIR): build one with its factory, then init / step it from Python "
      "or run it to completion through prefopt::run with its history as NumPy arrays.");
  prefopt::python::bind_solvers(solvers);
  auto arena = m.def_submodule(
      "arena",
      "The experiment runner of prefopt-arena on a config dict (README \"Experiment "
      "runner\").");
  prefopt::python::bind_arena(arena);

#ifdef _OPENMP
  m.attr("openmp") = true;
#else
  m.attr("openmp") = false;
#endif
  m.def(
      "set_num_threads",
      [](int n) {
        if (n < 1) PREFOPT_THROW(invalid_argument, "set_num_threads: n = ", n, ", expected >= 1");
#ifdef _OPENMP
        omp_set_num_threads(n);
#else
        if (n != 1) {
          PREFOPT_THROW(invalid_argument, "set_num_threads: n = ", n,
                        ", but this prefopt module was built without OpenMP (one thread)");
        }
#endif
      },
      py::arg("n"),
      "Number of OpenMP threads the kernels split rows over (the OpenMP runtime is shared with "
      "torch when both use libgomp, so torch.set_num_threads has the same effect). Results never "
      "depend on it.");
  m.def(
      "get_num_threads",
      []() {
#ifdef _OPENMP
        return omp_get_max_threads();
#else
        return 1;
#endif
      },
      "Number of threads the kernels use (1 without OpenMP).");
  m.attr("simd_instruction_sets") = Eigen::SimdInstructionSetsInUse();
}
