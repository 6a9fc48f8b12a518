// Compile-time tests of the concept lattice: every shipped type models its concepts, minimal user
// types with exactly the required members model them too, and types missing one member do not.
#include "prefopt/prefopt.hpp"
#include "prefopt/solvers/common/sequence_problem.hpp"

namespace {
using prefopt::index_t;
using prefopt::pair_batch;
using prefopt::tabular_batch;
using prefopt::vector_d;
using ref = Eigen::Ref<vector_d>;

// ---- shipped types --------------------------------------------------------------------------
using bt_tabular = prefopt::bradley_terry_preference<prefopt::tabular_reward_model>;
static_assert(prefopt::Policy<prefopt::tabular_softmax_policy>);
static_assert(prefopt::TabularPolicy<prefopt::tabular_softmax_policy>);
static_assert(prefopt::DifferentiablePolicy<prefopt::tabular_softmax_policy>);
static_assert(prefopt::RewardModel<prefopt::tabular_reward_model>);
static_assert(prefopt::PreferenceModel<prefopt::tabular_preference_model>);
static_assert(prefopt::TabularPreferenceModel<prefopt::tabular_preference_model>);
static_assert(prefopt::TabularPreferenceModel<bt_tabular>);
static_assert(!prefopt::Policy<prefopt::tabular_preference_model>);
static_assert(!prefopt::RewardModel<prefopt::tabular_softmax_policy>);
static_assert(!prefopt::PreferenceModel<prefopt::tabular_reward_model>);

// ---- a token-level policy fits the generic concepts -------------------------------------------
struct token_policy {
  using batch_type = prefopt::sequence_batch;
  using scalar_type = float;
  prefopt::vector_f weights;
  void log_prob(const batch_type&, ref) const {}
  [[nodiscard]] index_t num_parameters() const { return weights.size(); }
  Eigen::Ref<prefopt::vector_f> parameters() { return weights; }
  [[nodiscard]] Eigen::Ref<const prefopt::vector_f> parameters() const { return weights; }
  void accumulate_log_prob_gradient(const batch_type&, Eigen::Ref<const vector_d>,
                                    Eigen::Ref<prefopt::vector_f>) const {}
};
static_assert(prefopt::Policy<token_policy>);
static_assert(prefopt::DifferentiablePolicy<token_policy>);
static_assert(!prefopt::TabularPolicy<token_policy>);  // no table: tabular-only solvers refuse it

struct sequence_judge {
  using batch_type = prefopt::sequence_batch;
  void preference(const pair_batch<batch_type>&, ref) const {}
};
static_assert(prefopt::PreferenceModel<sequence_judge>);
static_assert(!prefopt::TabularPreferenceModel<sequence_judge>);

// ---- each missing member breaks exactly its concept --------------------------------------------
struct policy_no_batch_type {
  void log_prob(const tabular_batch&, ref) const {}
};
struct policy_wrong_log_prob_return {
  using batch_type = tabular_batch;
  double log_prob(const batch_type&, ref) const { return 0; }
};
struct policy_mutating_log_prob {  // log_prob must be callable on a const policy
  using batch_type = tabular_batch;
  void log_prob(const batch_type&, ref) {}
};
static_assert(!prefopt::Policy<policy_no_batch_type>);
static_assert(!prefopt::Policy<policy_wrong_log_prob_return>);
static_assert(!prefopt::Policy<policy_mutating_log_prob>);

struct tabular_no_shape {
  using batch_type = tabular_batch;
  void log_prob(const batch_type&, ref) const {}
  void probabilities(index_t, ref) const {}
};
static_assert(prefopt::Policy<tabular_no_shape>);
static_assert(!prefopt::TabularPolicy<tabular_no_shape>);

struct differentiable_no_scalar_type {
  using batch_type = tabular_batch;
  vector_d theta;
  void log_prob(const batch_type&, ref) const {}
  [[nodiscard]] index_t num_parameters() const { return 0; }
  Eigen::Ref<vector_d> parameters() { return theta; }
  [[nodiscard]] Eigen::Ref<const vector_d> parameters() const { return theta; }
  void accumulate_log_prob_gradient(const batch_type&, Eigen::Ref<const vector_d>, ref) const {}
};
static_assert(!prefopt::DifferentiablePolicy<differentiable_no_scalar_type>);

struct reward_no_batch_type {
  void reward(const tabular_batch&, ref) const {}
};
static_assert(!prefopt::RewardModel<reward_no_batch_type>);

struct judge_on_single_batch {
  using batch_type = tabular_batch;
  void preference(const batch_type&, ref) const {}
};
static_assert(!prefopt::PreferenceModel<judge_on_single_batch>);

// ---- solvers ------------------------------------------------------------------------------------
struct problem {};
struct counter_state {
  int t = 0;
};
struct counting_solver {
  [[nodiscard]] counter_state init(const problem&) const { return {}; }
  int step(const problem&, counter_state& s) const { return ++s.t; }
};
struct solver_without_init {
  int step(const problem&, counter_state& s) const { return ++s.t; }
};
struct solver_with_mutating_step {  // step must be const: hyperparameters never change in a run
  [[nodiscard]] counter_state init(const problem&) const { return {}; }
  int step(const problem&, counter_state& s) { return ++s.t; }
};
static_assert(prefopt::Solver<counting_solver, problem>);
static_assert(std::same_as<prefopt::solver_state_t<counting_solver, problem>, counter_state>);
static_assert(!prefopt::Solver<solver_without_init, problem>);
static_assert(!prefopt::Solver<solver_with_mutating_step, problem>);
static_assert(!prefopt::Solver<counting_solver, int>);

static_assert(prefopt::check_policy<prefopt::tabular_softmax_policy>());
static_assert(prefopt::check_tabular_policy<prefopt::tabular_softmax_policy>());
static_assert(prefopt::check_differentiable_policy<token_policy>());
static_assert(prefopt::check_reward_model<prefopt::tabular_reward_model>());
static_assert(prefopt::check_preference_model<bt_tabular>());
static_assert(prefopt::check_solver<counting_solver, problem>());

// ---- a user's language model: the minimum of SequenceModel ----------------------------------
struct user_lm {
  using scalar_type = float;
  struct decode_state {};
  prefopt::vector_f theta;
  [[nodiscard]] index_t vocab_size() const { return 4; }
  [[nodiscard]] prefopt::token_id eos() const { return 3; }
  [[nodiscard]] index_t num_parameters() const { return theta.size(); }
  Eigen::Ref<prefopt::vector_f> parameters() { return theta; }
  [[nodiscard]] Eigen::Ref<const prefopt::vector_f> parameters() const { return theta; }
  void logits(const prefopt::sequence_batch&, Eigen::Ref<prefopt::row_matrix_f>) const {}
  void accumulate_logits_gradient(const prefopt::sequence_batch&,
                                  Eigen::Ref<const prefopt::row_matrix_f>,
                                  Eigen::Ref<prefopt::vector_f>) const {}
  [[nodiscard]] decode_state start_decoding(prefopt::ragged_view<const prefopt::token_id>) const {
    return {};
  }
  void next_logits(decode_state&, std::span<const index_t>,
                   Eigen::Ref<prefopt::row_matrix_f>) const {}
  void append(decode_state&, std::span<const index_t>, std::span<const prefopt::token_id>) const {}
};
static_assert(prefopt::SequenceModel<user_lm>);
static_assert(prefopt::check_sequence_model<user_lm>());
static_assert(!prefopt::LinearHeadSequenceModel<user_lm>);
static_assert(prefopt::DifferentiablePolicy<prefopt::sequence_policy<user_lm>>);
static_assert(prefopt::SequenceModel<prefopt::positional_sequence_model>);
static_assert(prefopt::SequenceModel<prefopt::tabular_sequence_model>);
static_assert(!prefopt::SequenceModel<prefopt::token_softmax_policy>);  // through the adapter
static_assert(!prefopt::SequenceModel<token_policy>);  // a Policy alone has no logits

// An integer "scalar" or a logits call with the wrong layout is not a sequence model.
struct user_lm_int : user_lm {
  using scalar_type = int;
};
static_assert(!prefopt::SequenceModel<user_lm_int>);
struct user_lm_col_major_logits : user_lm {
  void logits(const prefopt::sequence_batch&, Eigen::Ref<Eigen::MatrixXf>) const {}
};
static_assert(!prefopt::SequenceModel<user_lm_col_major_logits>);

// ---- a user's trainable reward model and critic ----------------------------------------------
struct user_reward_model {
  using batch_type = prefopt::sequence_batch;
  using scalar_type = float;
  prefopt::vector_f theta;
  void reward(const batch_type&, ref) const {}
  [[nodiscard]] index_t num_parameters() const { return theta.size(); }
  Eigen::Ref<prefopt::vector_f> parameters() { return theta; }
  [[nodiscard]] Eigen::Ref<const prefopt::vector_f> parameters() const { return theta; }
  void accumulate_reward_gradient(const batch_type&, Eigen::Ref<const vector_d>,
                                  Eigen::Ref<prefopt::vector_f>) const {}
};
static_assert(prefopt::DifferentiableRewardModel<user_reward_model>);
static_assert(prefopt::check_differentiable_reward_model<user_reward_model>());
static_assert(prefopt::DifferentiableRewardModel<prefopt::tabular_reward_model>);  // the table
static_assert(!prefopt::ValueModel<user_reward_model>);

struct user_critic {
  using scalar_type = double;
  vector_d theta;
  void values(const prefopt::sequence_batch&, ref) const {}
  [[nodiscard]] index_t num_parameters() const { return theta.size(); }
  Eigen::Ref<vector_d> parameters() { return theta; }
  [[nodiscard]] Eigen::Ref<const vector_d> parameters() const { return theta; }
  void accumulate_value_gradient(const prefopt::sequence_batch&, Eigen::Ref<const vector_d>,
                                 ref) const {}
};
static_assert(prefopt::ValueModel<user_critic>);
static_assert(prefopt::check_value_model<user_critic>());
static_assert(!prefopt::RewardModel<user_critic>);
struct critic_mutating_values {  // values must be callable on a const critic
  using scalar_type = double;
  vector_d theta;
  void values(const prefopt::sequence_batch&, ref) {}
  [[nodiscard]] index_t num_parameters() const { return theta.size(); }
  Eigen::Ref<vector_d> parameters() { return theta; }
  [[nodiscard]] Eigen::Ref<const vector_d> parameters() const { return theta; }
  void accumulate_value_gradient(const prefopt::sequence_batch&, Eigen::Ref<const vector_d>,
                                 ref) const {}
};
static_assert(!prefopt::ValueModel<critic_mutating_values>);
// ---- entry points: a modelling type reaches the real function, any other type the overload ----
// ---- whose body is the check_* sentence (void; decltype does not instantiate the body) --------
static_assert(prefopt::check_tabular_preference_model<bt_tabular>());
static_assert(prefopt::batch_type_is<user_lm_int, prefopt::sequence_batch> == false);
static_assert(prefopt::batch_type_is<sequence_judge, prefopt::sequence_batch>);
using prompts = prefopt::ragged_view<const prefopt::token_id>;
static_assert(std::same_as<decltype(prefopt::run(counting_solver{}, problem{}, {})),
                           prefopt::run_result<counter_state>>);
static_assert(std::same_as<decltype(prefopt::run(solver_without_init{}, problem{}, {})), void>);
static_assert(
    std::same_as<decltype(prefopt::run_from(counting_solver{}, problem{}, counter_state{}, {})),
                 prefopt::run_result<counter_state>>);
static_assert(std::same_as<decltype(prefopt::run_from(counting_solver{}, int{}, 0, {})), void>);
static_assert(std::same_as<decltype(prefopt::bradley_terry_preference(
                               std::declval<prefopt::tabular_reward_model>())),
                           bt_tabular>);
static_assert(
    std::same_as<decltype(prefopt::generate(std::declval<const user_lm&>(), prompts{},
                                            std::declval<const prefopt::generation_config&>(), 1)),
                 prefopt::generation_result>);
static_assert(
    std::same_as<decltype(prefopt::generate(std::declval<const user_lm_int&>(), prompts{},
                                            std::declval<const prefopt::generation_config&>(), 1)),
                 void>);
static_assert(
    std::same_as<decltype(prefopt::generate_mixture(
                     std::declval<const user_lm&>(), std::declval<const user_lm_int&>(), 0.5,
                     prompts{}, std::declval<const prefopt::generation_config&>(), 1)),
                 void>);
static_assert(std::same_as<decltype(prefopt::win_rate(
                               std::declval<const user_lm&>(), std::declval<const user_lm&>(),
                               sequence_judge{}, prompts{},
                               std::declval<const prefopt::generation_config&>(), 1)),
                           prefopt::interval_estimate>);
static_assert(std::same_as<decltype(prefopt::win_rate(
                               std::declval<const user_lm&>(), std::declval<const user_lm&>(),
                               bt_tabular(std::declval<prefopt::tabular_reward_model>()), prompts{},
                               std::declval<const prefopt::generation_config&>(), 1)),
                           void>);  // a tabular judge cannot judge sampled sequences
static_assert(std::same_as<decltype(prefopt::kl_and_length(
                               std::declval<const user_lm&>(), std::declval<const user_lm&>(),
                               prompts{}, std::declval<const prefopt::generation_config&>(), 1)),
                           prefopt::kl_length_statistics>);
static_assert(
    std::same_as<decltype(prefopt::token_log_probs(std::declval<const user_lm&>(),
                                                   std::declval<const prefopt::sequence_batch&>(),
                                                   std::declval<prefopt::vector_d&>())),
                 void>);
static_assert(
    std::same_as<decltype(prefopt::accumulate_token_gradient(
                     std::declval<const user_lm&>(), std::declval<const prefopt::sequence_batch&>(),
                     {}, std::declval<prefopt::vector_f&>())),
                 void>);
static_assert(std::same_as<decltype(prefopt::make_sequence_problem(std::declval<const user_lm&>(),
                                                                   sequence_judge{}, prompts{})),
                           prefopt::sequence_problem<user_lm, sequence_judge>>);
static_assert(std::same_as<decltype(prefopt::make_sequence_problem(
                               std::declval<const user_lm_int&>(), sequence_judge{}, prompts{})),
                           void>);
static_assert(std::same_as<decltype(prefopt::probability_table(
                               std::declval<const prefopt::tabular_softmax_policy&>())),
                           prefopt::row_matrix_d>);
static_assert(std::same_as<
              decltype(prefopt::probability_table(std::declval<const tabular_no_shape&>())), void>);
static_assert(
    std::same_as<decltype(prefopt::sample(std::declval<const prefopt::tabular_softmax_policy&>(), 0,
                                          std::declval<prefopt::rng&>())),
                 index_t>);
static_assert(std::same_as<decltype(prefopt::sample(std::declval<const tabular_no_shape&>(), 0,
                                                    std::declval<prefopt::rng&>())),
                           void>);
static_assert(prefopt::DifferentiablePolicy<prefopt::sequence_policy<user_lm>>);
}  // namespace

int main() {
  return 0;
}
