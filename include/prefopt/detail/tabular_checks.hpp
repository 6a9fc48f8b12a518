#pragma once
/// \file
/// Input checks shared by the tabular model types (private).

#include <cmath>

#include "prefopt/core/assert.hpp"
#include "prefopt/core/types.hpp"

namespace prefopt {

namespace detail {
/// Checks a tabular batch against a table shape and an output size; names `function` and the
/// position of the first bad element.
inline void check_tabular_batch(const char* function, const tabular_batch& batch, index_t contexts,
                                index_t actions, index_t out_size) {
  PREFOPT_CHECK(batch.contexts.size() == batch.actions.size(), shape_error, function,
                ": batch.contexts has ", batch.contexts.size(), " entries but batch.actions has ",
                batch.actions.size());
  PREFOPT_CHECK(out_size == batch.size(), shape_error, function, ": out has ", out_size,
                " entries, expected the batch size ", batch.size());
  for (std::size_t i = 0; i < batch.actions.size(); ++i) {
    PREFOPT_CHECK(batch.contexts[i] >= 0 && batch.contexts[i] < contexts, invalid_argument,
                  function, ": batch.contexts[", i, "] = ", batch.contexts[i],
                  ", expected a context in [0, ", contexts, ")");
    PREFOPT_CHECK(batch.actions[i] >= 0 && batch.actions[i] < actions, invalid_argument, function,
                  ": batch.actions[", i, "] = ", batch.actions[i], ", expected an action in [0, ",
                  actions, ")");
  }
}

/// Throws unless every entry of `table` is finite; names `function`, `argument`, row and column.
inline void check_finite_table(const char* function, const char* argument,
                               const row_matrix_d& table) {
  for (index_t c = 0; c < table.rows(); ++c) {
    for (index_t a = 0; a < table.cols(); ++a) {
      PREFOPT_CHECK(std::isfinite(table(c, a)), invalid_argument, function, ": ", argument,
                    "(context ", c, ", action ", a, ") = ", table(c, a),
                    ", expected a finite value");
    }
  }
}
}  // namespace detail

}  // namespace prefopt
