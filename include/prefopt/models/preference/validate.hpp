#pragma once
/// \file
/// Validation of preference matrices: `P(i, j) = P(y_i > y_j)` must be a square matrix with
/// entries in [0, 1], `P(i, j) + P(j, i) = 1` and `P(i, i) = 1/2` (both within `tolerance`).

#include <Eigen/Core>

#include <cmath>

#include "prefopt/core/assert.hpp"
#include "prefopt/core/types.hpp"

namespace prefopt {

/// Default tolerance on `P + P^T = 1` and on the diagonal (ALGORITHMS.md §4).
inline constexpr double preference_tolerance = 1e-12;

/// Throws `prefopt::invalid_argument` (or `shape_error`) unless `p` is a preference matrix of
/// size `expected_size` (any size when negative). The message names `function`, `argument`, the
/// context, the row and the column, e.g.
/// `tabular_preference_model: P[context 2](0, 1) = 1.5, expected a probability in [0, 1]`.
template <class Derived>
void validate_preference_matrix(const Eigen::MatrixBase<Derived>& p, const char* function,
                                const char* argument, index_t context, index_t expected_size = -1,
                                double tolerance = preference_tolerance) {
  PREFOPT_CHECK(p.rows() == p.cols(), shape_error, function, ": ", argument, "[context ", context,
                "] is ", p.rows(), "x", p.cols(), ", expected a square matrix");
  PREFOPT_CHECK(p.rows() > 0, shape_error, function, ": ", argument, "[context ", context,
                "] is empty, expected at least one response");
  PREFOPT_CHECK(expected_size < 0 || p.rows() == expected_size, shape_error, function, ": ",
                argument, "[context ", context, "] is ", p.rows(), "x", p.cols(), ", expected ",
                expected_size, "x", expected_size);
  const index_t n = p.rows();
  for (index_t i = 0; i < n; ++i) {
    for (index_t j = 0; j < n; ++j) {
      const double v = static_cast<double>(p(i, j));
      PREFOPT_CHECK(!std::isnan(v), invalid_argument, function, ": ", argument, "[context ",
                    context, "](", i, ", ", j, ") is NaN, expected a probability in [0, 1]");
      PREFOPT_CHECK(v >= 0.0 && v <= 1.0, invalid_argument, function, ": ", argument, "[context ",
                    context, "](", i, ", ", j, ") = ", v, ", expected a probability in [0, 1]");
    }
  }
  for (index_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(p(i, i));
    PREFOPT_CHECK(std::abs(d - 0.5) <= tolerance, invalid_argument, function, ": ", argument,
                  "[context ", context, "](", i, ", ", i, ") = ", d,
                  ", expected 1/2 on the diagonal (tolerance ", tolerance, ")");
    for (index_t j = i + 1; j < n; ++j) {
      const double s = static_cast<double>(p(i, j)) + static_cast<double>(p(j, i));
      PREFOPT_CHECK(std::abs(s - 1.0) <= tolerance, invalid_argument, function, ": ", argument,
                    "[context ", context, "](", i, ", ", j, ") + (", j, ", ", i, ") = ", s,
                    ", expected P(i, j) + P(j, i) = 1 (tolerance ", tolerance, ")");
    }
  }
}

}  // namespace prefopt
