// A policy that declares its batch type but not log_prob is rejected, naming log_prob.
#include "prefopt/core/concepts.hpp"

struct user_policy {
  using batch_type = prefopt::tabular_batch;
#if !defined(PREFOPT_COMPILE_FAIL)
  void log_prob(const batch_type&, Eigen::Ref<prefopt::vector_d>) const {}
#endif
};

static_assert(prefopt::check_policy<user_policy>());

int main() {
  return 0;
}
