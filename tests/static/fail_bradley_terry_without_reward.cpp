// bradley_terry_preference over a type that is not a RewardModel fails with check_reward_model's
// sentence naming reward (before: a failed class template argument deduction, 51 lines).
#include "prefopt/models/preference/bradley_terry.hpp"

struct user_reward {
  using batch_type = prefopt::tabular_batch;
#if defined(PREFOPT_COMPILE_FAIL)
  void score(const batch_type&, Eigen::Ref<prefopt::vector_d> out) const {
    out.setZero();
  }
#else
  void reward(const batch_type&, Eigen::Ref<prefopt::vector_d> out) const {
    out.setZero();
  }
#endif
};

int main() {
  const prefopt::bradley_terry_preference judge(user_reward{});
  (void)judge;
  return 0;
}
