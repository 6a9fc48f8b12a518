// A diagnostic given a column-major Eigen matrix as the policy table fails with one sentence
// naming the two accepted Eigen forms (row_matrix_d, vector_d).
#include "prefopt/diagnostics/duality_gap.hpp"
#include "prefopt/games/catalog.hpp"

int main() {
  const auto game = prefopt::rock_paper_scissors_game({}, 0.0);
#if defined(PREFOPT_COMPILE_FAIL)
  const prefopt::matrix_d table = prefopt::matrix_d::Constant(1, 3, 1.0 / 3.0);
#else
  const prefopt::row_matrix_d table = prefopt::row_matrix_d::Constant(1, 3, 1.0 / 3.0);
#endif
  return prefopt::duality_gap(game, table) < 1e-12 ? 0 : 1;
}
