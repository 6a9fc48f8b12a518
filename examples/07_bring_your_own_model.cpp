// Example 07: bring your own language model.
//
// The model type below is written here, not shipped by prefopt: a bigram network whose next-token
// logits are a learned row per previous token, z = theta[prev, .], with a hand-written backward
// and a trivial decoding state. It provides only what `prefopt::SequenceModel` requires
// (vocabulary, eos, flat parameters, teacher-forced logits and their backward, incremental
// decoding); the library derives the rest. The program samples from it (temperature, top-p),
// scores the samples (sequence log-probs, entropies), computes the exact per-token KL and the k3
// estimate to a perturbed copy of itself, samples from their Nash-MD geometric mixture, evaluates
// it on the length-biased quality task (expected gold reward and win rate with 95% intervals),
// checks the library's gradient of the sequence log-probs against finite differences, and trains
// copies of it through `prefopt::run`: online DPO against the judge, RLHF-PPO on the gold
// reward with a critic also written here (a `prefopt::ValueModel`), and the preference-based
// trainers against the same judge: Nash-MD-PG, ONPO and INPO; last, hindsight instruction
// relabeling (HIR) on the instruction task, against its no-relabeling baseline at the same budget.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <span>
#include <vector>

#include "prefopt/prefopt.hpp"

namespace {

using prefopt::index_t;
using prefopt::token_id;

/// theta is [V + 1, V] row-major: row `prev` (or V at the start of an empty prompt) holds the
/// logits of the next token.
class bigram_lm {
 public:
  using scalar_type = double;
  struct decode_state {
    std::vector<index_t> last;  // previous token of every sequence
  };

  bigram_lm(index_t vocab, token_id eos, std::uint64_t seed) : v_(vocab), eos_(eos) {
    theta_.resize((vocab + 1) * vocab);
    prefopt::rng gen(seed);
    for (index_t k = 0; k < theta_.size(); ++k) theta_(k) = gen.normal();
  }

  /// Logits after the previous token `prev` (V at the start of an empty prompt).
  [[nodiscard]] auto table_row(index_t prev) const {
    return theta_.segment(prev * v_, v_).transpose();
  }

  [[nodiscard]] index_t vocab_size() const { return v_; }
  [[nodiscard]] token_id eos() const { return eos_; }
  [[nodiscard]] index_t num_parameters() const { return theta_.size(); }
  Eigen::Ref<prefopt::vector_d> parameters() { return theta_; }
  [[nodiscard]] Eigen::Ref<const prefopt::vector_d> parameters() const { return theta_; }

  void logits(const prefopt::sequence_batch& batch, Eigen::Ref<prefopt::row_matrix_d> out) const {
    for_each_position(batch, [&](index_t row, index_t prev) { out.row(row) = table_row(prev); });
  }
  void accumulate_logits_gradient(const prefopt::sequence_batch& batch,
                                  Eigen::Ref<const prefopt::row_matrix_d> dlogits,
                                  Eigen::Ref<prefopt::vector_d> gradient) const {
    for_each_position(batch, [&](index_t row, index_t prev) {
      gradient.segment(prev * v_, v_) += dlogits.row(row).transpose();
    });
  }

  [[nodiscard]] decode_state start_decoding(prefopt::ragged_view<const token_id> prompts) const {
    decode_state s;
    for (index_t i = 0; i < prompts.num_sequences(); ++i) {
      const auto x = prompts.sequence(i);
      s.last.push_back(x.empty() ? v_ : x.back());
    }
    return s;
  }
  void next_logits(decode_state& s, std::span<const index_t> live,
                   Eigen::Ref<prefopt::row_matrix_d> out) const {
    for (std::size_t r = 0; r < live.size(); ++r) {
      out.row(static_cast<index_t>(r)) = table_row(s.last[static_cast<std::size_t>(live[r])]);
    }
  }
  void append(decode_state& s, std::span<const index_t> live,
              std::span<const token_id> tokens) const {
    for (std::size_t r = 0; r < live.size(); ++r)
      s.last[static_cast<std::size_t>(live[r])] = tokens[r];
  }

 private:
  /// f(row, previous token) for every response position, rows laid out as the concept says.
  template <class F>
  void for_each_position(const prefopt::sequence_batch& batch, F&& f) const {
    const index_t base = batch.responses.offsets.front();
    for (index_t i = 0; i < batch.size(); ++i) {
      const auto x = batch.prompts.sequence(i);
      index_t prev = x.empty() ? v_ : x.back();
      const index_t row0 = batch.responses.offsets[static_cast<std::size_t>(i)] - base;
      index_t t = 0;
      for (const token_id y : batch.responses.sequence(i)) {
        f(row0 + t++, prev);
        prev = y;
      }
    }
  }

  index_t v_;
  token_id eos_;
  prefopt::vector_d theta_;
};

static_assert(prefopt::check_sequence_model<bigram_lm>());

/// A critic written here too: the value of a state is a learned number per previous token,
/// V(x, y_<t) = w[prev] (w has V + 1 entries; V after an empty prompt).
class bigram_critic {
 public:
  using scalar_type = double;
  explicit bigram_critic(index_t vocab) : v_(vocab), w_(prefopt::vector_d::Zero(vocab + 1)) {}
  [[nodiscard]] index_t num_parameters() const { return w_.size(); }
  Eigen::Ref<prefopt::vector_d> parameters() { return w_; }
  [[nodiscard]] Eigen::Ref<const prefopt::vector_d> parameters() const { return w_; }
  void values(const prefopt::sequence_batch& batch, Eigen::Ref<prefopt::vector_d> out) const {
    for_each_state(batch, [&](index_t row, index_t prev) { out(row) = w_(prev); });
  }
  void accumulate_value_gradient(const prefopt::sequence_batch& batch,
                                 Eigen::Ref<const prefopt::vector_d> dvalues,
                                 Eigen::Ref<prefopt::vector_d> gradient) const {
    for_each_state(batch, [&](index_t row, index_t prev) { gradient(prev) += dvalues(row); });
  }

 private:
  template <class F>
  void for_each_state(const prefopt::sequence_batch& batch, F&& f) const {
    const index_t base = batch.responses.offsets.front();
    for (index_t i = 0; i < batch.size(); ++i) {
      const auto x = batch.prompts.sequence(i);
      index_t prev = x.empty() ? v_ : x.back();
      index_t row = batch.responses.offsets[static_cast<std::size_t>(i)] - base;
      for (const token_id y : batch.responses.sequence(i)) {
        f(row++, prev);
        prev = y;
      }
    }
  }
  index_t v_;
  prefopt::vector_d w_;
};

static_assert(prefopt::check_value_model<bigram_critic>());

}  // namespace

int main() {
  using prefopt::index_t;
  // A task over K = 5 content tokens (eos = 5): prompts, a gold reward, a length-biased judge.
  prefopt::quality_task_config task_config;
  task_config.content_tokens = 5;
  task_config.num_prompts = 4;
  task_config.seed = 1;
  const auto task = prefopt::length_biased_quality_task::random(task_config);
  bigram_lm model(task.vocab_size(), task.eos(), /*seed=*/2);
  bigram_lm copy = model;  // a perturbed copy: the "reference"
  copy.parameters().array() += 0.3;
  copy.parameters()(3) -= 1.0;

  // 1. Sample two responses per prompt at temperature 0.8 with nucleus 0.9.
  prefopt::generation_config gen;
  gen.temperature = 0.8;
  gen.top_p = 0.9;
  gen.max_new_tokens = 8;
  gen.samples_per_prompt = 2;
  const auto samples = prefopt::generate(model, task.prompts(), gen, /*seed=*/3);
  std::printf("sampled %ld responses (%zu tokens); %d hit the length limit\n",
              static_cast<long>(samples.size()), samples.tokens.size(),
              static_cast<int>(std::count(samples.truncated.begin(), samples.truncated.end(), 1)));

  // 2. Score them: sequence log-probs (at temperature 1) and per-token entropies.
  const auto batch = samples.batch();
  const auto n_tok = static_cast<index_t>(samples.tokens.size());
  prefopt::vector_d logp(samples.size()), entropy(n_tok), kl(n_tok), k3(n_tok);
  prefopt::sequence_log_probs(model, batch, logp);
  prefopt::token_entropies(model, batch, entropy);
  std::printf("response 0: log pi(y|x) = %.4f, mean token entropy %.4f nats\n", logp(0),
              entropy.mean());

  // 3. KL to the copy on the sampled tokens: exact over the vocabulary, and the k3 estimate.
  prefopt::token_kl(model, copy, batch, kl);
  prefopt::token_kl_estimates(model, copy, batch, prefopt::kernels::kl_estimator::k3, k3);
  std::printf("per-token KL(model || copy): exact mean %.4f, k3 mean %.4f\n", kl.mean(), k3.mean());

  // 4. The Nash-MD opponent: the geometric mixture model^(1-beta) copy^beta, beta = 0.5.
  const auto mixed =
      prefopt::generate_mixture(model, copy, /*beta_mix=*/0.5, task.prompts(), gen, 4);
  std::printf("mixture samples: %zu tokens\n", mixed.tokens.size());

  // 5. Evaluate on the task with 95% intervals.
  prefopt::generation_config eval;
  eval.max_new_tokens = 8;
  eval.samples_per_prompt = 500;
  const auto reward = prefopt::expected_reward(model, task.gold_reward(), task.prompts(), eval, 5);
  const auto wins = prefopt::win_rate(model, copy, task.judge(), task.prompts(), eval, 6);
  std::printf("gold reward %.3f [%.3f, %.3f]; win rate vs copy %.3f [%.3f, %.3f]\n", reward.mean,
              reward.lower, reward.upper, wins.mean, wins.lower, wins.upper);

  // 6. The library's gradient of sum_i S(y_i) against central finite differences.
  const prefopt::vector_d ones = prefopt::vector_d::Ones(samples.size());
  prefopt::vector_d grad = prefopt::vector_d::Zero(model.num_parameters());
  prefopt::accumulate_sequence_log_prob_gradient(model, batch, ones, grad);
  double worst = 0.0;
  for (index_t k = 0; k < model.num_parameters(); ++k) {
    const double x = model.parameters()(k), h = 1e-6;
    prefopt::vector_d up(samples.size()), down(samples.size());
    model.parameters()(k) = x + h;
    prefopt::sequence_log_probs(model, batch, up);
    model.parameters()(k) = x - h;
    prefopt::sequence_log_probs(model, batch, down);
    model.parameters()(k) = x;
    worst = std::max(worst, std::abs((up.sum() - down.sum()) / (2 * h) - grad(k)));
  }
  std::printf("gradient check: max |analytic - finite difference| = %.2e over %ld parameters\n",
              worst, static_cast<long>(model.num_parameters()));

  // 7. Train a copy with online DPO: pairs from the current policy, labels from the judge.
  prefopt::generation_config train;
  train.max_new_tokens = 8;
  const auto judge = task.judge();
  prefopt::dpo_trainer_config dpo_config;
  dpo_config.batch_size = 16;
  dpo_config.loss.beta_dpo = 0.5;
  const auto dpo =
      prefopt::run(prefopt::sequence_dpo(dpo_config),
                   prefopt::make_sequence_problem(model, judge, task.prompts(), train), {60});
  const auto dpo_wins =
      prefopt::win_rate(dpo.state.policy(), model, judge, task.prompts(), eval, 7);
  std::printf("online DPO, %ld steps (%s): win rate vs the start %.3f [%.3f, %.3f]\n",
              static_cast<long>(dpo.iterations), prefopt::to_string(dpo.status), dpo_wins.mean,
              dpo_wins.lower, dpo_wins.upper);

  // 8. RLHF-PPO on the gold reward with the critic above (GAE, clipped losses, k1 KL penalty).
  const auto gold = task.gold_reward();
  const bigram_critic critic(task.vocab_size());
  const auto feedback = prefopt::make_rlhf_feedback(gold, critic);
  prefopt::ppo_trainer_config ppo_config;
  ppo_config.rollout_batch_size = 16;
  ppo_config.kl_coef = 0.02;
  const auto ppo =
      prefopt::run(prefopt::ppo_trainer(ppo_config),
                   prefopt::make_sequence_problem(model, feedback, task.prompts(), train), {60});
  const auto ppo_reward =
      prefopt::expected_reward(ppo.state.policy(), gold, task.prompts(), eval, 8);
  std::printf("RLHF-PPO, %ld steps (%s): gold reward %.3f [%.3f, %.3f] (start %.3f)\n",
              static_cast<long>(ppo.iterations), prefopt::to_string(ppo.status), ppo_reward.mean,
              ppo_reward.lower, ppo_reward.upper, reward.mean);
  // 9. The preference-based trainers on the same judge problem: each one's win rate against the
  // start.
  const auto judged = prefopt::make_sequence_problem(model, judge, task.prompts(), train);
  bool preference_trained = true;
  const auto report = [&](const char* name, const auto& result, std::uint64_t seed) {
    const auto w =
        prefopt::win_rate(result.state.policy(), model, judge, task.prompts(), eval, seed);
    std::printf("%s, %ld iterations (%s): win rate vs the start %.3f [%.3f, %.3f]\n", name,
                static_cast<long>(result.iterations), prefopt::to_string(result.status), w.mean,
                w.lower, w.upper);
    preference_trained =
        preference_trained && result.status == prefopt::run_status::completed && w.lower > 0.5;
  };
  prefopt::nash_md_pg_config nash_config;
  nash_config.beta = 0.05;
  nash_config.batch_size = 64;
  report("Nash-MD-PG", prefopt::run(prefopt::nash_md_pg(nash_config), judged, {40}), 9);
  prefopt::onpo_trainer_config onpo_config;
  onpo_config.batch_size = 32;
  onpo_config.optimizer.learning_rate = 0.02;
  report("ONPO", prefopt::run(prefopt::onpo_trainer(onpo_config), judged, {20}), 10);
  prefopt::inpo_trainer_config inpo_config;
  inpo_config.tau = 0.1;
  inpo_config.batch_size = 32;
  inpo_config.optimizer.learning_rate = 0.02;
  report("INPO", prefopt::run(prefopt::inpo_trainer(inpo_config), judged, {20}), 11);

  // 10. HIR on the instruction task: prompts [c] with instructions c in [0, 5), success when the
  // response's tokens sum to c mod 5; a fresh bigram over its vocabulary, the same sample budget
  // (12 rounds of 16) with hindsight relabeling and without. One-token answers: a bigram's second
  // token no longer sees the instruction, so longer answers would test the model, not HIR.
  const prefopt::modular_sum_instruction_task instructions(/*content_tokens=*/5, /*modulus=*/5);
  const bigram_lm follower(instructions.vocab_size(), instructions.eos(), /*seed=*/12);
  const std::vector<index_t> offsets{0, 1, 2, 3, 4, 5};
  const std::vector<token_id> prompt_tokens{0, 1, 2, 3, 4};
  const prefopt::ragged_view<const token_id> instruction_prompts{offsets, prompt_tokens};
  prefopt::generation_config short_answers;
  short_answers.max_new_tokens = 1;
  const auto relabeled =
      prefopt::make_sequence_problem(follower, instructions, instruction_prompts, short_answers);
  prefopt::generation_config eval_short = short_answers;
  eval_short.samples_per_prompt = 500;
  const auto success = [&](const bigram_lm& m) {
    return prefopt::expected_reward(m, instructions.feedback(), instruction_prompts, eval_short,
                                    13);
  };
  const auto start_success = success(follower);
  prefopt::hir_trainer_config hir_config;
  hir_config.batch_size = 16;
  const auto hir = prefopt::run(prefopt::hir_trainer(hir_config), relabeled, {12});
  hir_config.mode = prefopt::hir_mode::no_relabeling;
  const auto plain = prefopt::run(prefopt::hir_trainer(hir_config), relabeled, {12});
  const auto hir_success = success(hir.state.policy());
  const auto plain_success = success(plain.state.policy());
  std::printf(
      "HIR, %ld rounds (%s): success rate %.3f [%.3f, %.3f]; without relabeling %.3f "
      "[%.3f, %.3f]; at the start %.3f\n",
      static_cast<long>(hir.iterations), prefopt::to_string(hir.status), hir_success.mean,
      hir_success.lower, hir_success.upper, plain_success.mean, plain_success.lower,
      plain_success.upper, start_success.mean);

  const bool trained = dpo.status == prefopt::run_status::completed &&
                       ppo.status == prefopt::run_status::completed && dpo_wins.lower > 0.5 &&
                       ppo_reward.lower > reward.upper && preference_trained &&
                       hir.status == prefopt::run_status::completed &&
                       hir_success.lower > plain_success.upper &&
                       hir_success.lower > start_success.upper;
  return worst < 1e-6 && trained ? 0 : 1;
}
