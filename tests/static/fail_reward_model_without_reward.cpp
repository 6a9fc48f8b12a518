// A reward model whose scoring function has another name is rejected, naming reward.
#include "prefopt/core/concepts.hpp"

struct user_reward {
  using batch_type = prefopt::tabular_batch;
#if defined(PREFOPT_COMPILE_FAIL)
  void score(const batch_type&, Eigen::Ref<prefopt::vector_d>) const {}
#else
  void reward(const batch_type&, Eigen::Ref<prefopt::vector_d>) const {}
#endif
};

static_assert(prefopt::check_reward_model<user_reward>());

int main() {
  return 0;
}
