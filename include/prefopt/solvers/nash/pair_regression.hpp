#pragma once
/// \file
/// Compatibility header: the squared pair-regression losses moved to `losses/pair_regression.hpp`
/// (namespace `prefopt::losses`). This header keeps `prefopt::labelled_pair_loss` and
/// `prefopt::regression_pair_loss` working for code that included the old path.

#include "prefopt/losses/pair_regression.hpp"

namespace prefopt {
using losses::labelled_pair_loss;
using losses::regression_pair_loss;
}  // namespace prefopt
