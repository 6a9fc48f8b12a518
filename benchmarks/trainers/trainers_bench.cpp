// Benchmark of the generic trainers on the shipped transformer (a program, not a test): one
// offline DPO step, one RLHF-PPO step and one step of each preference-based trainer (Nash-MD-PG,
// ONPO, INPO, HIR), each split into the time spent inside the models' own calls (generation:
// start_decoding / next_logits / append, the Nash-MD mixture's two models included; judging: the
// pairwise judge, or HIR's success feedback; scoring: logits, hidden states, rewards, values;
// backward: the models' gradient calls) and the library's own work around them (the fused head
// kernel, the losses, the optimizer, sampling, bookkeeping). The models are wrapped in
// timing adapters defined here (they model the same concepts a user's model does), which is also
// a check that the trainers take any model type.
//
// Sizes (the issue's): d = 256, 4 layers, 4 heads, V = 8192, batch 16, 128-token responses.
// DPO: 16 pairs (32 sequences), reference log-probs computed once at init (outside the step).
// PPO: 16 rollouts of 128 new tokens, the reference, a transformer critic and a transformer
// reward model; 4 epochs x 2 minibatches. The DPO step is measured with the fused head (hidden
// states + the fused linear kernel, never `[T, V]`) and with materialised logits; a DPO step at
// V = 32000 (`memory`) reports its peak resident memory beside the `[T, V]` logits it never
// builds.
// Preference-based trainers: 16 prompts, 128 new tokens; the judge is Bradley-Terry on a
// transformer reward model (`sigmoid(r(y) - r(y'))`, one reward forward per side); Nash-MD-PG
// samples one policy response and one mixture response per prompt; ONPO and INPO one pair per
// prompt and 4 inner steps (ONPO fits twice per iteration: the played policy and its auxiliary);
// HIR samples one response per prompt on the instruction task over the model's vocabulary
// (8 instructions) and makes 4 updates with the 2-way contrast (its loss reads `[T, V]` logits).
// PyTorch's DPO step at the same sizes: `bench_torch_transformer.py --dpo`.
//
// Usage: prefopt_bench_trainers [memory | working-set | preference]   (`memory`: only the V = 32000
// DPO step, alone in its process so that the peak resident memory is its own; `working-set`: the
// model's own working set for the same step, alone in its process: the policy and its reference,
// the gradient and Adam's two moments, and one forward + backward of the step's 32 sequences
// through the model's hidden states, without the head's `[T, V]`; `preference`: only the
// preference-based trainers; PREFOPT_BENCH_TINY=1: tiny sizes, for CI)
#include <Eigen/Core>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <sys/resource.h>
#include <vector>

#include "prefopt/data/preference_dataset.hpp"
#include "prefopt/models/transformer/transformer.hpp"
#include "prefopt/sequence/instruction_task.hpp"
#include "prefopt/solvers/dpo_trainer.hpp"
#include "prefopt/solvers/hir_trainer.hpp"
#include "prefopt/solvers/nash_md_pg.hpp"
#include "prefopt/solvers/online_pair_trainers.hpp"
#include "prefopt/solvers/ppo_trainer.hpp"

namespace {

using idx = prefopt::index_t;
using prefopt::token_id;
using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

/// Seconds spent inside the models' calls, by kind.
struct call_times {
  double generation = 0.0;
  double judging = 0.0;
  double scoring = 0.0;
  double backward = 0.0;
  long scoring_calls = 0;
  long backward_calls = 0;
  [[nodiscard]] double total() const { return generation + judging + scoring + backward; }
};

template <class F>
void timed(double& into, F&& f) {
  const auto t0 = clock_type::now();
  f();
  into += seconds_since(t0);
}

/// A language model that times every call of the wrapped one (a `LinearHeadSequenceModel`).
template <class M>
class timed_lm {
 public:
  using scalar_type = typename M::scalar_type;
  using decode_state = typename M::decode_state;
  using T = scalar_type;

  timed_lm(const M& m, call_times* t) : m_(m), t_(t) {}

  [[nodiscard]] idx vocab_size() const { return m_.vocab_size(); }
  [[nodiscard]] token_id eos() const { return m_.eos(); }
  [[nodiscard]] idx num_parameters() const { return m_.num_parameters(); }
  [[nodiscard]] Eigen::Ref<prefopt::vector_t<T>> parameters() { return m_.parameters(); }
  [[nodiscard]] Eigen::Ref<const prefopt::vector_t<T>> parameters() const {
    return m_.parameters();
  }
  [[nodiscard]] idx hidden_size() const { return m_.hidden_size(); }
  [[nodiscard]] idx output_weight_offset() const { return m_.output_weight_offset(); }
  [[nodiscard]] idx output_bias_offset() const { return m_.output_bias_offset(); }

  void logits(const prefopt::sequence_batch& b, Eigen::Ref<prefopt::row_matrix_t<T>> out) const {
    ++t_->scoring_calls;
    timed(t_->scoring, [&] { m_.logits(b, out); });
  }
  void accumulate_logits_gradient(const prefopt::sequence_batch& b,
                                  Eigen::Ref<const prefopt::row_matrix_t<T>> dz,
                                  Eigen::Ref<prefopt::vector_t<T>> g) const {
    ++t_->backward_calls;
    timed(t_->backward, [&] { m_.accumulate_logits_gradient(b, dz, g); });
  }
  void hidden_states(const prefopt::sequence_batch& b,
                     Eigen::Ref<prefopt::row_matrix_t<T>> out) const {
    ++t_->scoring_calls;
    timed(t_->scoring, [&] { m_.hidden_states(b, out); });
  }
  void accumulate_hidden_gradient(const prefopt::sequence_batch& b,
                                  Eigen::Ref<const prefopt::row_matrix_t<T>> dh,
                                  Eigen::Ref<prefopt::vector_t<T>> g) const {
    ++t_->backward_calls;
    timed(t_->backward, [&] { m_.accumulate_hidden_gradient(b, dh, g); });
  }
  [[nodiscard]] decode_state start_decoding(prefopt::ragged_view<const token_id> prompts) const {
    decode_state s;
    timed(t_->generation, [&] { s = m_.start_decoding(prompts); });
    return s;
  }
  void next_logits(decode_state& s, std::span<const idx> live,
                   Eigen::Ref<prefopt::row_matrix_t<T>> out) const {
    timed(t_->generation, [&] { m_.next_logits(s, live, out); });
  }
  void append(decode_state& s, std::span<const idx> live, std::span<const token_id> tokens) const {
    timed(t_->generation, [&] { m_.append(s, live, tokens); });
  }

 private:
  M m_;
  call_times* t_;
};

/// A reward model that times the wrapped one (into `*slot`).
template <class R>
class timed_reward {
 public:
  using batch_type = prefopt::sequence_batch;
  timed_reward(const R& r, double* slot) : r_(r), slot_(slot) {}
  void reward(const prefopt::sequence_batch& b, Eigen::Ref<prefopt::vector_d> out) const {
    timed(*slot_, [&] { r_.reward(b, out); });
  }

 private:
  R r_;
  double* slot_;
};

/// A Bradley-Terry judge on a reward model, `P(y > y') = sigmoid(r(y) - r(y'))` (one reward
/// forward per side), timed as judging (a `PreferenceModel` over sequence pairs).
template <class R>
class timed_bt_judge {
 public:
  using batch_type = prefopt::sequence_batch;
  timed_bt_judge(const R& r, call_times* t) : r_(r), t_(t) {}
  void preference(const prefopt::pair_batch<prefopt::sequence_batch>& pairs,
                  Eigen::Ref<prefopt::vector_d> out) const {
    timed(t_->judging, [&] {
      const idx n = pairs.size();
      prefopt::vector_d a(n), b(n);
      r_.reward(pairs.first, a);
      r_.reward(pairs.second, b);
      out = (1.0 / (1.0 + (b - a).array().exp())).matrix();
    });
  }

 private:
  R r_;
  call_times* t_;
};

/// The instruction task with its success feedback timed as judging (an `InstructionRelabeler`).
class timed_relabeler {
 public:
  timed_relabeler(const prefopt::modular_sum_instruction_task& task, call_times* t)
      : task_(task), t_(t) {}
  [[nodiscard]] timed_reward<prefopt::modular_sum_instruction_task::feedback_model> feedback()
      const {
    return {task_.feedback(), &t_->judging};
  }
  void relabel_prompts(const prefopt::sequence_batch& b, std::vector<idx>& offsets,
                       std::vector<token_id>& tokens) const {
    task_.relabel_prompts(b, offsets, tokens);
  }
  [[nodiscard]] idx negative_instruction(std::span<const token_id> y) const {
    return task_.negative_instruction(y);
  }
  [[nodiscard]] idx modulus() const { return task_.modulus(); }

 private:
  prefopt::modular_sum_instruction_task task_;
  call_times* t_;
};

/// A critic that times the wrapped one (a `ValueModel`).
template <class V>
class timed_critic {
 public:
  using scalar_type = typename V::scalar_type;
  using T = scalar_type;
  timed_critic(const V& v, call_times* t) : v_(v), t_(t) {}
  [[nodiscard]] idx num_parameters() const { return v_.num_parameters(); }
  [[nodiscard]] Eigen::Ref<prefopt::vector_t<T>> parameters() { return v_.parameters(); }
  [[nodiscard]] Eigen::Ref<const prefopt::vector_t<T>> parameters() const {
    return v_.parameters();
  }
  void values(const prefopt::sequence_batch& b, Eigen::Ref<prefopt::vector_d> out) const {
    timed(t_->scoring, [&] { v_.values(b, out); });
  }
  void accumulate_value_gradient(const prefopt::sequence_batch& b,
                                 Eigen::Ref<const prefopt::vector_d> dv,
                                 Eigen::Ref<prefopt::vector_t<T>> g) const {
    timed(t_->backward, [&] { v_.accumulate_value_gradient(b, dv, g); });
  }

 private:
  V v_;
  call_times* t_;
};

double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;
}

prefopt::transformer_config model_config(bool tiny, idx vocab) {
  prefopt::transformer_config c;
  c.vocab_size = vocab;
  c.d_model = tiny ? 32 : 256;
  c.num_layers = tiny ? 2 : 4;
  c.num_heads = 4;
  c.max_length = tiny ? 24 : 160;
  c.eos = 0;
  c.seed = 1;
  return c;
}

/// One offline DPO step: `pairs` pairs of `length`-token responses to one-token prompts.
void dpo_step(bool tiny, idx vocab, bool fused, const char* label) {
  const idx pairs = tiny ? 2 : 16;
  const idx length = tiny ? 8 : 128;
  call_times t;
  const timed_lm<prefopt::transformer<float>> ref(
      prefopt::transformer<float>(model_config(tiny, vocab)), &t);
  prefopt::data::preference_dataset data;
  std::vector<token_id> prompt(1), chosen(static_cast<std::size_t>(length)),
      rejected(static_cast<std::size_t>(length));
  for (idx i = 0; i < pairs; ++i) {
    prompt[0] = static_cast<token_id>(1 + i);
    for (idx k = 0; k < length; ++k) {
      chosen[static_cast<std::size_t>(k)] = static_cast<token_id>(1 + (7 * k + i) % (vocab - 1));
      rejected[static_cast<std::size_t>(k)] = static_cast<token_id>(1 + (11 * k + i) % (vocab - 1));
    }
    data.add(prompt, chosen, rejected);
  }
  prefopt::dpo_trainer_config c;
  c.batch_size = pairs;
  c.loss.beta_dpo = 0.1;
  c.optimizer.learning_rate = 1e-4;
  c.scoring.fused = fused;
  const prefopt::dpo_trainer<prefopt::losses::dpo_variant::sigmoid> trainer(c);
  const auto problem = prefopt::make_sequence_problem(ref, data, data.prompts().view());
  auto state = trainer.init(problem);  // reference log-probs, once
  (void)trainer.step(problem, state);  // warm: buffers allocated
  t = {};
  const auto t0 = clock_type::now();
  const auto stats = trainer.step(problem, state);
  const double step = seconds_since(t0);
  std::printf(
      "{\"step\": \"dpo\", \"head\": \"%s\", \"vocab\": %ld, \"pairs\": %ld, \"length\": %ld, "
      "\"step_s\": %.4f, \"model_scoring_s\": %.4f, \"model_backward_s\": %.4f, "
      "\"outside_models_s\": %.4f, \"ratio_to_model_calls\": %.2f, \"loss\": %.4f, "
      "\"peak_rss_mib\": %.0f, \"logits_TxV_mib\": %.0f, \"parameters_mib\": %.1f}\n",
      label, static_cast<long>(vocab), static_cast<long>(pairs), static_cast<long>(length), step,
      t.scoring, t.backward, step - t.total(), step / t.total(), stats.loss, peak_rss_mib(),
      static_cast<double>(2 * pairs * length * vocab) * 4.0 / (1024.0 * 1024.0),
      static_cast<double>(ref.num_parameters()) * 4.0 / (1024.0 * 1024.0));
}

/// The model's own working set of the DPO step above (see the usage line): what any trainer of
/// this model needs, without the head's logits.
void model_working_set(bool tiny, idx vocab) {
  const idx pairs = tiny ? 2 : 16;
  const idx length = tiny ? 8 : 128;
  const prefopt::transformer<float> reference(model_config(tiny, vocab));
  prefopt::transformer<float> policy = reference;
  std::vector<idx> po{0}, ro{0};
  std::vector<token_id> pt, rt;
  for (idx i = 0; i < 2 * pairs; ++i) {
    pt.push_back(static_cast<token_id>(1 + i % pairs));
    for (idx k = 0; k < length; ++k)
      rt.push_back(static_cast<token_id>(1 + (7 * k + i) % (vocab - 1)));
    po.push_back(static_cast<idx>(pt.size()));
    ro.push_back(static_cast<idx>(rt.size()));
  }
  const prefopt::sequence_batch batch{{po, pt}, {ro, rt}};
  prefopt::row_matrix_f hidden(static_cast<idx>(rt.size()), policy.hidden_size());
  policy.hidden_states(batch, hidden);
  prefopt::vector_f gradient = prefopt::vector_f::Zero(policy.num_parameters());
  policy.accumulate_hidden_gradient(batch, hidden * 1e-3f, gradient);
  prefopt::optimizer adam(prefopt::optimizer_config{prefopt::optimizer_kind::adam, 1e-4},
                          policy.num_parameters());
  adam.step(policy.parameters(), gradient);
  std::printf(
      "{\"step\": \"model_working_set\", \"vocab\": %ld, \"pairs\": %ld, \"length\": %ld, "
      "\"peak_rss_mib\": %.0f, \"parameters_mib\": %.1f, \"gradient_checksum\": %.3g}\n",
      static_cast<long>(vocab), static_cast<long>(pairs), static_cast<long>(length), peak_rss_mib(),
      static_cast<double>(policy.num_parameters()) * 4.0 / (1024.0 * 1024.0),
      static_cast<double>(gradient.cwiseAbs().sum()));
}

void ppo_step(bool tiny, bool fused) {
  const idx vocab = tiny ? 64 : 8192;
  const idx rollouts = tiny ? 2 : 16;
  call_times t;
  const auto c = model_config(tiny, vocab);
  const prefopt::transformer<float> base(c);
  const timed_lm<prefopt::transformer<float>> ref(base, &t);
  const timed_reward<prefopt::transformer_reward_model<float>> reward(
      prefopt::transformer_reward_model<float>(base), &t.scoring);
  const timed_critic<prefopt::transformer_critic<float>> critic(
      prefopt::transformer_critic<float>(base), &t);
  std::vector<idx> po{0};
  std::vector<token_id> pt;
  for (idx i = 0; i < rollouts; ++i) {
    pt.push_back(static_cast<token_id>(1 + i));
    po.push_back(static_cast<idx>(pt.size()));
  }
  prefopt::generation_config g;
  g.max_new_tokens = tiny ? 8 : 128;
  prefopt::ppo_trainer_config pc;
  pc.rollout_batch_size = rollouts;
  pc.optimizer.learning_rate = 1e-5;
  pc.value_optimizer.learning_rate = 1e-5;
  pc.scoring.fused = fused;
  const prefopt::ppo_trainer trainer(pc);
  const auto feedback = prefopt::make_rlhf_feedback(reward, critic);
  const auto problem = prefopt::make_sequence_problem(ref, feedback, {po, pt}, g);
  auto state = trainer.init(problem);
  (void)trainer.step(problem, state);  // warm
  t = {};
  const auto t0 = clock_type::now();
  const auto stats = trainer.step(problem, state);
  const double step = seconds_since(t0);
  std::printf(
      "{\"step\": \"ppo\", \"head\": \"%s\", \"vocab\": %ld, \"rollouts\": %ld, \"new_tokens\": "
      "%ld, \"epochs\": "
      "%ld, \"minibatches\": %ld, \"step_s\": %.4f, \"model_generation_s\": %.4f, "
      "\"model_scoring_s\": %.4f, \"model_backward_s\": %.4f, \"outside_models_s\": %.4f, "
      "\"ratio_to_model_calls\": %.2f, \"loss\": %.4f}\n",
      fused ? "fused" : "logits", static_cast<long>(vocab), static_cast<long>(rollouts),
      static_cast<long>(g.max_new_tokens), static_cast<long>(pc.ppo_epochs),
      static_cast<long>(pc.num_minibatches), step, t.generation, t.scoring, t.backward,
      step - t.total(), step / t.total(), stats.loss);
}

/// One prompt per rollout: `[1 + i]`.
struct bench_prompts {
  std::vector<idx> offsets{0};
  std::vector<token_id> tokens;
  explicit bench_prompts(idx n) {
    for (idx i = 0; i < n; ++i) {
      tokens.push_back(static_cast<token_id>(1 + i));
      offsets.push_back(static_cast<idx>(tokens.size()));
    }
  }
  [[nodiscard]] prefopt::ragged_view<const token_id> view() const { return {offsets, tokens}; }
};

/// One step of `trainer` on `problem` after a warm one, with the time in each kind of model call.
template <class Trainer, class Problem>
void preference_step(const char* name, bool fused, const Trainer& trainer, const Problem& problem,
                     call_times& t, idx prompts, idx new_tokens) {
  auto state = trainer.init(problem);
  (void)trainer.step(problem, state);  // warm: buffers allocated
  t = {};
  const auto t0 = clock_type::now();
  const auto stats = trainer.step(problem, state);
  const double step = seconds_since(t0);
  std::printf(
      "{\"step\": \"%s\", \"head\": \"%s\", \"vocab\": %ld, \"prompts\": %ld, \"new_tokens\": %ld, "
      "\"step_s\": %.4f, \"model_generation_s\": %.4f, \"judging_s\": %.4f, "
      "\"model_scoring_s\": %.4f, \"model_backward_s\": %.4f, \"outside_models_s\": %.4f, "
      "\"ratio_to_model_calls\": %.2f, \"forward_calls\": %ld, \"backward_calls\": %ld, "
      "\"loss\": %.4f}\n",
      name, fused ? "fused" : "logits", static_cast<long>(problem.reference->vocab_size()),
      static_cast<long>(prompts), static_cast<long>(new_tokens), step, t.generation, t.judging,
      t.scoring, t.backward, step - t.total(), step / t.total(), t.scoring_calls, t.backward_calls,
      stats.loss);
}

/// Nash-MD-PG, ONPO and INPO against a Bradley-Terry judge, and HIR on the instruction task.
void preference_steps(bool tiny, bool fused) {
  const idx vocab = tiny ? 64 : 8192;
  const idx prompts = tiny ? 2 : 16;
  call_times t;
  const auto c = model_config(tiny, vocab);
  const prefopt::transformer<float> base(c);
  const timed_lm<prefopt::transformer<float>> ref(base, &t);
  prefopt::transformer_config rc = c;
  rc.seed = 2;
  const timed_bt_judge<prefopt::transformer_reward_model<float>> judge(
      prefopt::transformer_reward_model<float>(prefopt::transformer<float>(rc)), &t);
  const bench_prompts pool(prompts);
  prefopt::generation_config g;
  g.max_new_tokens = tiny ? 8 : 128;
  const auto judged = prefopt::make_sequence_problem(ref, judge, pool.view(), g);

  prefopt::nash_md_pg_config nc;
  nc.batch_size = prompts;
  nc.optimizer.learning_rate = 1e-5;
  nc.scoring.fused = fused;
  preference_step("nash_md_pg", fused, prefopt::nash_md_pg(nc), judged, t, prompts,
                  g.max_new_tokens);
  prefopt::onpo_trainer_config oc;
  oc.batch_size = prompts;
  oc.inner_steps = 4;
  oc.optimizer.learning_rate = 1e-5;
  oc.scoring.fused = fused;
  preference_step("onpo", fused, prefopt::onpo_trainer(oc), judged, t, prompts, g.max_new_tokens);
  prefopt::inpo_trainer_config ic;
  ic.tau = 0.1;
  ic.batch_size = prompts;
  ic.inner_steps = 4;
  ic.optimizer.learning_rate = 1e-5;
  ic.scoring.fused = fused;
  preference_step("inpo", fused, prefopt::inpo_trainer(ic), judged, t, prompts, g.max_new_tokens);

  // HIR: instructions are the first 8 tokens, content the other non-eos tokens, eos the last.
  prefopt::transformer_config hc = c;
  hc.eos = static_cast<token_id>(vocab - 1);
  const timed_lm<prefopt::transformer<float>> follower(prefopt::transformer<float>(hc), &t);
  const timed_relabeler relabeler(prefopt::modular_sum_instruction_task(vocab - 1, 8), &t);
  bench_prompts instructions(0);
  for (idx i = 0; i < prompts; ++i) {
    instructions.tokens.push_back(static_cast<token_id>(i % 8));
    instructions.tokens.push_back(static_cast<token_id>(8 + i));
    instructions.offsets.push_back(static_cast<idx>(instructions.tokens.size()));
  }
  const auto relabeled =
      prefopt::make_sequence_problem(follower, relabeler, instructions.view(), g);
  prefopt::hir_trainer_config hr;
  hr.batch_size = prompts;
  hr.optimizer.learning_rate = 1e-5;
  hr.scoring.fused = fused;
  preference_step("hir", fused, prefopt::hir_trainer(hr), relabeled, t, prompts, g.max_new_tokens);
}

}  // namespace

int main(int argc, char** argv) {
  const bool tiny = std::getenv("PREFOPT_BENCH_TINY") != nullptr;
  if (argc > 1 && std::string(argv[1]) == "memory") {
    // Alone in its process, so that the peak resident memory is this step's.
    dpo_step(tiny, tiny ? 96 : 32000, /*fused=*/true, "fused");
    return 0;
  }
  if (argc > 1 && std::string(argv[1]) == "working-set") {
    model_working_set(tiny, tiny ? 96 : 32000);
    return 0;
  }
  if (argc > 1 && std::string(argv[1]) == "preference") {
    preference_steps(tiny, /*fused=*/true);
    preference_steps(tiny, /*fused=*/false);
    return 0;
  }
  dpo_step(tiny, tiny ? 64 : 8192, /*fused=*/true, "fused");
  dpo_step(tiny, tiny ? 64 : 8192, /*fused=*/false, "logits");
  ppo_step(tiny, /*fused=*/true);
  ppo_step(tiny, /*fused=*/false);
  preference_steps(tiny, /*fused=*/true);
  preference_steps(tiny, /*fused=*/false);
  return 0;
}
