// A diagnostic given a user policy without probabilities(context, out) fails with
// check_tabular_policy's sentence naming it (before: three errors over 51 lines).
#include <cmath>

#include "prefopt/diagnostics/duality_gap.hpp"
#include "prefopt/games/catalog.hpp"

struct user_policy {
  using batch_type = prefopt::tabular_batch;
  void log_prob(const batch_type&, Eigen::Ref<prefopt::vector_d> out) const {
    out.setConstant(-std::log(3.0));
  }
  [[nodiscard]] prefopt::index_t num_contexts() const { return 1; }
  [[nodiscard]] prefopt::index_t num_actions() const { return 3; }
#if !defined(PREFOPT_COMPILE_FAIL)
  void probabilities(prefopt::index_t, Eigen::Ref<prefopt::vector_d> out) const {
    out.setConstant(1.0 / 3.0);
  }
#endif
};

int main() {
  const auto game = prefopt::rock_paper_scissors_game({}, 0.0);
  return prefopt::duality_gap(game, user_policy{}) < 1e-12 ? 0 : 1;
}
