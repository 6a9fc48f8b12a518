// Calling a library function constrained on a concept with a type that misses a member fails at the
// call with the concept's check_* sentence naming the member (here preference_matrix and
// check_tabular_preference_model: `void preference(...)`).
#include "prefopt/core/customization.hpp"

struct user_judge {
  using batch_type = prefopt::tabular_batch;
  [[nodiscard]] prefopt::index_t num_contexts() const { return 1; }
  [[nodiscard]] prefopt::index_t num_actions() const { return 2; }
#if !defined(PREFOPT_COMPILE_FAIL)
  void preference(const prefopt::pair_batch<batch_type>& pairs,
                  Eigen::Ref<prefopt::vector_d> out) const {
    out.setConstant(0.5);
    (void)pairs;
  }
#endif
};

int main() {
  prefopt::matrix_d p(2, 2);
  prefopt::preference_matrix(user_judge{}, 0, p);
  return p(0, 0) == 0.5 ? 0 : 1;
}
