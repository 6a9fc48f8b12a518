// ppo_trainer refuses a critic whose value function has another name, with the ValueModel
// sentence naming `values` (not a wall of substitution failures).
#include "../unit/sequence/bigram_model.hpp"
#include "prefopt/sequence/quality_task.hpp"
#include "prefopt/solvers/ppo_trainer.hpp"

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

int main() {
  const auto task = prefopt::length_biased_quality_task::random({});
  const prefopt::test::bigram_model<double, false> model(task.vocab_size(), 2, task.eos(), 1);
  const user_critic critic;
  const auto gold = task.gold_reward();
  const auto feedback = prefopt::make_rlhf_feedback(gold, critic);
  const auto problem = prefopt::make_sequence_problem(model, feedback, task.prompts());
  const auto state = prefopt::ppo_trainer().init(problem);
  return static_cast<int>(state.iteration());
}
