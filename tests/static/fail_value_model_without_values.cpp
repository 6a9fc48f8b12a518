// A critic whose value function has another name is rejected, naming values.
#include "prefopt/core/concepts.hpp"

struct user_critic {
  using scalar_type = double;
  prefopt::vector_d theta = prefopt::vector_d::Zero(3);
  [[nodiscard]] prefopt::index_t num_parameters() const { return theta.size(); }
  Eigen::Ref<prefopt::vector_d> parameters() { return theta; }
  [[nodiscard]] Eigen::Ref<const prefopt::vector_d> parameters() const { return theta; }
#if defined(PREFOPT_COMPILE_FAIL)
  void value(const prefopt::sequence_batch&, Eigen::Ref<prefopt::vector_d>) const {}
#else
  void values(const prefopt::sequence_batch&, Eigen::Ref<prefopt::vector_d>) const {}
#endif
  void accumulate_value_gradient(const prefopt::sequence_batch&,
                                 Eigen::Ref<const prefopt::vector_d>,
                                 Eigen::Ref<prefopt::vector_d>) const {}
};

static_assert(prefopt::check_value_model<user_critic>());

int main() {
  return 0;
}
