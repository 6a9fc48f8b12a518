// A preference model whose preference() takes the wrong argument is rejected, naming preference.
#include "prefopt/core/concepts.hpp"

struct user_judge {
  using batch_type = prefopt::tabular_batch;
#if defined(PREFOPT_COMPILE_FAIL)
  void preference(const batch_type&, Eigen::Ref<prefopt::vector_d>) const {}  // not a pair batch
#else
  void preference(const prefopt::pair_batch<batch_type>&, Eigen::Ref<prefopt::vector_d>) const {}
#endif
};

static_assert(prefopt::check_preference_model<user_judge>());

int main() {
  return 0;
}
