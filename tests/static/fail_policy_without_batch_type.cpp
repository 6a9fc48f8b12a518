// A policy without a batch_type is rejected, naming batch_type.
#include "prefopt/core/concepts.hpp"

struct user_policy {
#if !defined(PREFOPT_COMPILE_FAIL)
  using batch_type = prefopt::tabular_batch;
#endif
  void log_prob(const prefopt::tabular_batch&, Eigen::Ref<prefopt::vector_d>) const {}
};

static_assert(prefopt::check_policy<user_policy>());

int main() {
  return 0;
}
