// A tabular policy without probabilities(context, out) is rejected, naming probabilities.
#include "prefopt/core/concepts.hpp"

struct user_policy {
  using batch_type = prefopt::tabular_batch;
  void log_prob(const batch_type&, Eigen::Ref<prefopt::vector_d>) const {}
  [[nodiscard]] prefopt::index_t num_contexts() const { return 1; }
  [[nodiscard]] prefopt::index_t num_actions() const { return 2; }
#if !defined(PREFOPT_COMPILE_FAIL)
  void probabilities(prefopt::index_t, Eigen::Ref<prefopt::vector_d> out) const {
    out.setConstant(0.5);
  }
#endif
};

static_assert(prefopt::check_tabular_policy<user_policy>());

int main() {
  return 0;
}
