#pragma once
/// \file
/// How the tabular areas of the Python module (games, diagnostics, solvers) exchange tables with
/// Python. Tables are small (`[contexts, n]` policies, `n x n` preference matrices), so unlike the
/// kernels these areas convert their inputs: anything `numpy.asarray(x, dtype=float64)` accepts
/// (lists, NumPy arrays of any real dtype and layout, CPU torch tensors) is copied into an Eigen
/// table, and results come back as fresh C-contiguous float64 arrays. A value that cannot be
/// converted, or a table of the wrong shape, raises a `prefopt.Error` naming the function and the
/// argument.

#include <Eigen/Core>

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <string>

#include "prefopt/core/error.hpp"
#include "prefopt/core/types.hpp"
#include "prefopt/games/preference_game.hpp"

namespace prefopt::python {

namespace py = pybind11;

using float64_array = py::array_t<double, py::array::c_style | py::array::forcecast>;

/// `obj` as a C-contiguous float64 array (a copy unless it already is one); `dtype_error` naming
/// `fn` and `arg` when it is None or not convertible (strings, objects, complex numbers).
float64_array float64_in(const char* fn, const char* arg, py::handle obj);

/// A `[rows, cols]` table from a 2-d array; with `allow_vector`, a 1-d `[cols]` array is one row
/// (`rows` must then be 1). `rows` / `cols` < 0: any. Every entry must be finite.
row_matrix_d table_in(const char* fn, const char* arg, py::handle obj, index_t rows, index_t cols,
                      bool allow_vector = false);

/// A 1-d `[n]` vector of finite entries (`n < 0`: any length).
vector_d vector_d_in(const char* fn, const char* arg, py::handle obj, index_t n);

/// A policy of `game` as a `[contexts, n]` probability table: a `[contexts, n]` array, or a `[n]`
/// vector for a single-context game. Entries finite and >= 0, rows summing to 1 within 1e-6
/// (otherwise an error naming the row).
row_matrix_d policy_in(const char* fn, const char* arg, const preference_game& game,
                       py::handle obj);

/// Fresh float64 arrays holding a copy of a table / vector.
py::array to_numpy(const row_matrix_d& m);
py::array to_numpy(const matrix_d& m);
py::array to_numpy(const vector_d& v);

}  // namespace prefopt::python
