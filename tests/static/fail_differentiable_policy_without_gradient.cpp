// A differentiable policy without accumulate_log_prob_gradient is rejected, naming it.
#include "prefopt/core/concepts.hpp"

struct user_policy {
  using batch_type = prefopt::tabular_batch;
  using scalar_type = double;
  prefopt::vector_d theta = prefopt::vector_d::Zero(3);
  void log_prob(const batch_type&, Eigen::Ref<prefopt::vector_d>) const {}
  [[nodiscard]] prefopt::index_t num_parameters() const { return theta.size(); }
  Eigen::Ref<prefopt::vector_d> parameters() { return theta; }
  [[nodiscard]] Eigen::Ref<const prefopt::vector_d> parameters() const { return theta; }
#if !defined(PREFOPT_COMPILE_FAIL)
  void accumulate_log_prob_gradient(const batch_type&, Eigen::Ref<const prefopt::vector_d>,
                                    Eigen::Ref<prefopt::vector_d>) const {}
#endif
};

static_assert(prefopt::check_differentiable_policy<user_policy>());

int main() {
  return 0;
}
