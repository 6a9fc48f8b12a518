#pragma once
// Central finite differences for the gradient checks of the loss tests (double only).

#include <Eigen/Core>

#include <cmath>
#include <functional>

#include "prefopt/core/types.hpp"

namespace prefopt::test {

/// d f / d x_i by central differences with a step relative to |x_i|.
inline double central_difference(const std::function<double(const vector_d&)>& f, vector_d x,
                                 index_t i, double rel_step = 1e-6) {
  const double h = rel_step * std::max(1.0, std::abs(x(i)));
  const double x0 = x(i);
  x(i) = x0 + h;
  const double up = f(x);
  x(i) = x0 - h;
  const double down = f(x);
  return (up - down) / (2.0 * h);
}

/// True when `a` and `b` agree to `rel` relative (or `abs_floor` absolute for tiny values).
inline bool close(double a, double b, double rel, double abs_floor = 1e-12) {
  return std::abs(a - b) <= std::max(rel * std::max(std::abs(a), std::abs(b)), abs_floor);
}

}  // namespace prefopt::test
