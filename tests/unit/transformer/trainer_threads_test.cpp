// Every generic trainer on the shipped transformer gives bitwise the same parameters with 1 and 2
// OpenMP threads (the transformer splits its rows across threads; the trainers' own reductions are
// sequential). Built in every configuration; the comparison runs where OpenMP is compiled in (the
// CI's openmp stage), elsewhere it checks that two runs agree.
#include <catch2/catch.hpp>

#include <vector>

#include "prefopt/models/transformer/transformer.hpp"
#include "prefopt/sequence/instruction_task.hpp"
#include "prefopt/sequence/quality_task.hpp"
#include "prefopt/solvers/common/run.hpp"
#include "prefopt/solvers/dpo_trainer.hpp"
#include "prefopt/solvers/hir_trainer.hpp"
#include "prefopt/solvers/nash_md_pg.hpp"
#include "prefopt/solvers/online_pair_trainers.hpp"
#include "prefopt/solvers/ppo_trainer.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace {

using tt_model = prefopt::transformer<float>;

/// Sets the thread count for one scope (a no-op without OpenMP).
class tt_threads {
 public:
  explicit tt_threads(int n) {
#if defined(_OPENMP)
    saved_ = omp_get_max_threads();
    omp_set_num_threads(n);
#else
    (void)n;
#endif
  }
  ~tt_threads() {
#if defined(_OPENMP)
    omp_set_num_threads(saved_);
#endif
  }
  tt_threads(const tt_threads&) = delete;
  tt_threads& operator=(const tt_threads&) = delete;

 private:
#if defined(_OPENMP)
  int saved_ = 1;
#endif
};

struct tt_env {
  prefopt::length_biased_quality_task task = make_task();
  prefopt::length_biased_quality_task::judge_model judge = task.judge();
  prefopt::length_biased_quality_task::gold_reward_model gold = task.gold_reward();
  tt_model reference = make_model(task);
  prefopt::generation_config generation = make_generation();

  static prefopt::length_biased_quality_task make_task() {
    prefopt::quality_task_config c;
    c.content_tokens = 5;
    c.num_prompts = 8;
    c.prompt_length = 2;
    c.seed = 3;
    return prefopt::length_biased_quality_task::random(c);
  }
  static tt_model make_model(const prefopt::length_biased_quality_task& t) {
    prefopt::transformer_config c;
    c.vocab_size = t.vocab_size();
    c.eos = t.eos();
    c.max_length = 16;
    c.d_model = 32;
    c.num_layers = 2;
    c.num_heads = 4;
    c.seed = 5;
    return tt_model(c);
  }
  static prefopt::generation_config make_generation() {
    prefopt::generation_config g;
    g.max_new_tokens = 10;
    return g;
  }
};

/// The trained policy's parameters after `steps` steps with `threads` threads.
template <class Solver, class Problem>
prefopt::vector_f tt_train(const Solver& solver, const Problem& problem, int threads,
                           prefopt::index_t steps) {
  const tt_threads scope(threads);
  const auto r = prefopt::run(solver, problem, {steps});
  REQUIRE(r.status == prefopt::run_status::completed);
  return r.state.policy().parameters();
}

template <class Solver, class Problem>
void tt_check(const char* name, const Solver& solver, const Problem& problem,
              const tt_model& reference, prefopt::index_t steps) {
  INFO(name);
  const prefopt::vector_f one = tt_train(solver, problem, 1, steps);
  const prefopt::vector_f two = tt_train(solver, problem, 2, steps);
  CHECK(one == two);
  CHECK((one - reference.parameters()).cwiseAbs().maxCoeff() > 0.0f);  // the run trained
}

}  // namespace

TEST_CASE("every generic trainer on the transformer: 1 and 2 threads, bitwise the same policy",
          "[transformer][threads]") {
  const tt_env env;
  const auto judged =
      prefopt::make_sequence_problem(env.reference, env.judge, env.task.prompts(), env.generation);

  prefopt::dpo_trainer_config dpo;
  dpo.batch_size = 8;
  tt_check("online DPO", prefopt::sequence_dpo(dpo), judged, env.reference, 3);

  prefopt::nash_md_pg_config nash;
  nash.batch_size = 8;
  tt_check("Nash-MD-PG", prefopt::nash_md_pg(nash), judged, env.reference, 3);

  prefopt::onpo_trainer_config onpo;
  onpo.batch_size = 8;
  onpo.inner_steps = 2;
  tt_check("ONPO", prefopt::onpo_trainer(onpo), judged, env.reference, 2);

  prefopt::inpo_trainer_config inpo;
  inpo.tau = 0.1;
  inpo.batch_size = 8;
  inpo.inner_steps = 2;
  tt_check("INPO", prefopt::inpo_trainer(inpo), judged, env.reference, 2);

  const prefopt::transformer_critic<float> critic(env.reference);
  const auto feedback = prefopt::make_rlhf_feedback(env.gold, critic);
  const auto rewarded =
      prefopt::make_sequence_problem(env.reference, feedback, env.task.prompts(), env.generation);
  prefopt::ppo_trainer_config ppo;
  ppo.rollout_batch_size = 8;
  tt_check("RLHF-PPO", prefopt::ppo_trainer(ppo), rewarded, env.reference, 2);

  // HIR on the instruction task (K = 5 content tokens, m = 5 instructions, two-token prompts).
  const prefopt::modular_sum_instruction_task instructions(5, 5);
  prefopt::transformer_config tc = env.reference.config();
  tc.vocab_size = instructions.vocab_size();
  tc.eos = instructions.eos();
  const tt_model instruction_reference(tc);
  const std::vector<prefopt::index_t> offsets{0, 2, 4, 6, 8, 10};
  const std::vector<prefopt::token_id> tokens{0, 3, 1, 2, 2, 4, 3, 0, 4, 1};
  const auto relabeled = prefopt::make_sequence_problem(
      instruction_reference, instructions,
      prefopt::ragged_view<const prefopt::token_id>{offsets, tokens}, env.generation);
  prefopt::hir_trainer_config hir;
  hir.batch_size = 8;
  hir.updates_per_round = 2;
  tt_check("HIR, 2-way contrast", prefopt::hir_trainer(hir), relabeled, instruction_reference, 2);
  hir.contrast = prefopt::hir_contrast::k_way;
  tt_check("HIR, k-way contrast", prefopt::hir_trainer(hir), relabeled, instruction_reference, 2);
}
