// Proof of genericity, table-driven: every generic trainer and solver runs through prefopt::run on
// every model type and problem it accepts — the tests' bigram network in double (logits path) and
// float (fused linear-head path), the shipped transformer and positional policy, preference games
// (the table as a one-token model), tabular problems over a judge, and model types that only this
// file defines — and each run improves its objective and is bitwise reproducible. A row is one
// line of `genericity_table`: `<trainer row><model or problem type>`. The reward-based trainers
// (DPO, PPO, reward modelling, tabular RLHF) work on the length-biased quality task, the
// preference-based ones (Nash-MD-PG, ONPO, INPO) on the intransitive class task (objective: minus
// the class-level duality gap), HIR on the instruction task (the exact success rate), and the
// tabular Nash solvers on a cyclic game (minus the duality gap they converge in).
#include <catch2/catch.hpp>

#include <cmath>
#include <span>
#include <string_view>
#include <tuple>
#include <vector>

#include "../pref_trainers/pref_helpers.hpp"
#include "prefopt/diagnostics/duality_gap.hpp"
#include "prefopt/games/catalog.hpp"
#include "prefopt/games/tabular_preference_problem.hpp"
#include "prefopt/games/token_task.hpp"
#include "prefopt/models/transformer/transformer.hpp"
#include "prefopt/sequence/evaluation.hpp"
#include "prefopt/sequence/quality_task.hpp"
#include "prefopt/solvers/common/run.hpp"
#include "prefopt/solvers/dpo_trainer.hpp"
#include "prefopt/solvers/hir_trainer.hpp"
#include "prefopt/solvers/nash/mirror_descent.hpp"
#include "prefopt/solvers/nash/onpo.hpp"
#include "prefopt/solvers/nash_md_pg.hpp"
#include "prefopt/solvers/online_pair_trainers.hpp"
#include "prefopt/solvers/ppo_trainer.hpp"
#include "prefopt/solvers/reward_modeling.hpp"
#include "prefopt/solvers/rlhf.hpp"
#include "trainer_models.hpp"

namespace {
using gindex = prefopt::index_t;
using prefopt::token_id;
using prefopt::vector_d;

/// A language model only this file defines: next-token logits from a table indexed by the
/// prompt's first token (the task's topic) and the response position, ignoring everything else.
/// Parameters: `[V (topics), P (positions), V]` row-major.
template <class T>
class genericity_topic_model {
 public:
  using scalar_type = T;
  struct decode_state {
    std::vector<gindex> topic, position;
  };

  genericity_topic_model(gindex vocab, gindex positions, token_id eos, std::uint64_t seed)
      : v_(vocab), p_(positions), eos_(eos), theta_(vocab * positions * vocab) {
    prefopt::rng gen(seed, 3);
    for (gindex k = 0; k < theta_.size(); ++k) theta_(k) = static_cast<T>(0.3 * gen.normal());
  }
  [[nodiscard]] gindex vocab_size() const { return v_; }
  [[nodiscard]] token_id eos() const { return eos_; }
  [[nodiscard]] gindex min_prompt_length() const { return 1; }
  [[nodiscard]] gindex num_parameters() const { return theta_.size(); }
  [[nodiscard]] Eigen::Ref<prefopt::vector_t<T>> parameters() { return theta_; }
  [[nodiscard]] Eigen::Ref<const prefopt::vector_t<T>> parameters() const { return theta_; }

  void logits(const prefopt::sequence_batch& b, Eigen::Ref<prefopt::row_matrix_t<T>> out) const {
    rows(b, [&](gindex row, gindex at) { out.row(row) = theta_.segment(at, v_).transpose(); });
  }
  void accumulate_logits_gradient(const prefopt::sequence_batch& b,
                                  Eigen::Ref<const prefopt::row_matrix_t<T>> dlogits,
                                  Eigen::Ref<prefopt::vector_t<T>> gradient) const {
    rows(b,
         [&](gindex row, gindex at) { gradient.segment(at, v_) += dlogits.row(row).transpose(); });
  }
  [[nodiscard]] decode_state start_decoding(prefopt::ragged_view<const token_id> prompts) const {
    decode_state s;
    for (gindex i = 0; i < prompts.num_sequences(); ++i) {
      s.topic.push_back(prompts.sequence(i)[0]);
      s.position.push_back(0);
    }
    return s;
  }
  void next_logits(decode_state& s, std::span<const gindex> live,
                   Eigen::Ref<prefopt::row_matrix_t<T>> out) const {
    for (std::size_t r = 0; r < live.size(); ++r) {
      const auto j = static_cast<std::size_t>(live[r]);
      out.row(static_cast<gindex>(r)) =
          theta_.segment(at(s.topic[j], s.position[j]), v_).transpose();
    }
  }
  void append(decode_state& s, std::span<const gindex> live, std::span<const token_id>) const {
    for (const gindex j : live) ++s.position[static_cast<std::size_t>(j)];
  }

 private:
  [[nodiscard]] gindex at(gindex topic, gindex t) const {
    return (topic * p_ + std::min(t, p_ - 1)) * v_;
  }
  template <class F>
  void rows(const prefopt::sequence_batch& b, F&& f) const {
    const gindex base = b.responses.offsets.empty() ? 0 : b.responses.offsets.front();
    for (gindex i = 0; i < b.size(); ++i) {
      const gindex topic = b.prompts.sequence(i)[0];
      const gindex row0 = b.responses.offsets[static_cast<std::size_t>(i)] - base;
      for (gindex t = 0; t < b.responses.length(i); ++t) f(row0 + t, at(topic, t));
    }
  }

  gindex v_, p_;
  token_id eos_;
  prefopt::vector_t<T> theta_;
};

/// A reward model only this file defines: r = a n(y) + sum_t w[x_0, y_t] over the content tokens
/// (x_0 the topic); parameters a, then w `[V, V]`.
template <class T>
class genericity_token_reward {
 public:
  using batch_type = prefopt::sequence_batch;
  using scalar_type = T;
  explicit genericity_token_reward(gindex vocab)
      : v_(vocab), theta_(prefopt::vector_t<T>::Zero(1 + vocab * vocab)) {}
  [[nodiscard]] gindex num_parameters() const { return theta_.size(); }
  [[nodiscard]] Eigen::Ref<prefopt::vector_t<T>> parameters() { return theta_; }
  [[nodiscard]] Eigen::Ref<const prefopt::vector_t<T>> parameters() const { return theta_; }
  void reward(const batch_type& b, Eigen::Ref<vector_d> out) const {
    for (gindex i = 0; i < b.size(); ++i) {
      double r = 0.0;
      content(b, i, [&](gindex k) { r += static_cast<double>(theta_(0) + theta_(k)); });
      out(i) = r;
    }
  }
  void accumulate_reward_gradient(const batch_type& b, Eigen::Ref<const vector_d> w,
                                  Eigen::Ref<prefopt::vector_t<T>> g) const {
    for (gindex i = 0; i < b.size(); ++i) {
      content(b, i, [&](gindex k) {
        g(0) += static_cast<T>(w(i));
        g(k) += static_cast<T>(w(i));
      });
    }
  }

 private:
  template <class F>
  void content(const batch_type& b, gindex i, F&& f) const {
    const gindex topic = b.prompts.sequence(i)[0];
    for (const token_id y : b.responses.sequence(i)) {
      if (y == 3) break;  // the task's eos
      f(1 + topic * v_ + y);
    }
  }
  gindex v_;
  prefopt::vector_t<T> theta_;
};

// ---- how each model type is built ----------------------------------------------------------
template <class M>
struct genericity_factory;
template <class T, bool H>
struct genericity_factory<prefopt::test::bigram_model<T, H>> {
  static prefopt::test::bigram_model<T, H> make() { return {4, 3, 3, 41, 0.5}; }
};
template <class T>
struct genericity_factory<genericity_topic_model<T>> {
  static genericity_topic_model<T> make() { return {4, 4, 3, 41}; }
};
template <class T>
struct genericity_factory<prefopt::test::bag_reward_model<T>> {
  static prefopt::test::bag_reward_model<T> make() { return {4, 3, 2}; }
};
template <class T>
struct genericity_factory<genericity_token_reward<T>> {
  static genericity_token_reward<T> make() { return genericity_token_reward<T>(4); }
};

/// The shipped transformer, at the task's vocabulary (V = 4, eos = 3): a user of the concepts like
/// any other model type.
inline prefopt::transformer_config genericity_transformer_config() {
  prefopt::transformer_config c;
  c.vocab_size = 4;
  c.eos = 3;
  c.max_length = 1 + 4;
  c.d_model = 8;
  c.num_layers = 1;
  c.num_heads = 2;
  c.mlp_hidden = 16;
  c.init_scale = 0.5;
  c.seed = 3;
  return c;
}
template <class T>
struct genericity_factory<prefopt::transformer<T>> {
  static prefopt::transformer<T> make() {
    return prefopt::transformer<T>(genericity_transformer_config());
  }
};
template <class T>
struct genericity_factory<prefopt::transformer_reward_model<T>> {
  // Its ~1.5k weights overfit 200 pairs (the held-out loss rises from 0.693 at every learning rate
  // from 0.001 to 0.03); on 800 pairs lr 0.03 lowers it to 0.62-0.65 after 40 to 200 steps.
  static constexpr double learning_rate = 0.03;
  static constexpr prefopt::index_t pairs = 800;
  static prefopt::transformer_reward_model<T> make() {
    return prefopt::transformer_reward_model<T>(genericity_transformer_config());
  }
};

/// A model type's number of training pairs for the reward-modelling row: its factory's, or 200.
template <class M>
prefopt::index_t genericity_pairs() {
  if constexpr (requires { genericity_factory<M>::pairs; }) {
    return genericity_factory<M>::pairs;
  } else {
    return 200;
  }
}

/// A model type's learning rate for the reward-modelling row: its factory's, or `fallback`.
template <class M>
double genericity_learning_rate(double fallback) {
  if constexpr (requires { genericity_factory<M>::learning_rate; }) {
    return genericity_factory<M>::learning_rate;
  } else {
    return fallback;
  }
}

/// The environment every row shares: the length-biased quality task (V = 4, eos = 3), its judge
/// and gold reward, sampling settings, and many copies of its prompts for evaluation.
struct genericity_env {
  prefopt::length_biased_quality_task task = make_task();
  prefopt::length_biased_quality_task::judge_model judge = task.judge();
  prefopt::length_biased_quality_task::gold_reward_model gold = task.gold_reward();
  prefopt::generation_config generation = make_generation();
  prefopt::data::ragged_buffer<token_id> many = make_many(task);

  genericity_env() = default;
  genericity_env(const genericity_env&) = delete;
  genericity_env& operator=(const genericity_env&) = delete;

  static prefopt::length_biased_quality_task make_task() {
    prefopt::quality_task_config c;
    c.content_tokens = 3;
    c.num_prompts = 6;
    c.prompt_length = 1;
    c.quality_scale = 1.5;
    c.length_bonus = 0.3;
    c.seed = 23;
    return prefopt::length_biased_quality_task::random(c);
  }
  static prefopt::generation_config make_generation() {
    prefopt::generation_config g;
    g.max_new_tokens = 4;
    return g;
  }
  static prefopt::data::ragged_buffer<token_id> make_many(
      const prefopt::length_biased_quality_task& t) {
    prefopt::data::ragged_buffer<token_id> out;
    for (gindex r = 0; r < 200; ++r) {
      for (gindex i = 0; i < t.prompts().num_sequences(); ++i)
        out.push_back(t.prompts().sequence(i));
    }
    return out;
  }
};

template <class V>
vector_d genericity_flat(const V& v) {
  return v.template cast<double>();
}

// ---- the rows' trainers: problem, solver, objective (higher is better), parameters ----------
template <class Model>
struct dpo_offline_row : genericity_env {
  static constexpr const char* name = "dpo_trainer<sigmoid> offline";
  static constexpr gindex steps = 30;
  static constexpr double min_gain = 0.02;
  Model reference = genericity_factory<Model>::make();
  prefopt::data::preference_dataset pairs =
      prefopt::test::judged_dataset(reference, judge, task.prompts(), 64, generation, 1);
  prefopt::sequence_problem<Model, prefopt::data::preference_dataset> problem =
      prefopt::make_sequence_problem(reference, pairs, pairs.prompts().view());
  prefopt::sequence_dpo solver{config()};

  static prefopt::dpo_trainer_config config() {
    prefopt::dpo_trainer_config c;
    c.loss.beta_dpo = 0.5;
    c.batch_size = 16;
    return c;
  }
  template <class S>
  double objective(const S& s) const {  // minus the DPO loss on the whole dataset
    std::vector<gindex> all(static_cast<std::size_t>(pairs.size()));
    for (std::size_t k = 0; k < all.size(); ++k) all[k] = static_cast<gindex>(k);
    const auto b = pairs.batch(all);
    prefopt::vector_t<typename Model::scalar_type> g(reference.num_parameters());
    return -prefopt::dpo_minibatch_loss(solver.loss(), s.policy(),
                                        {b.prompts.view(), b.chosen.view()},
                                        {b.prompts.view(), b.rejected.view()}, s.reference_chosen(),
                                        s.reference_rejected(), g)
                .loss;
  }
  template <class S>
  vector_d parameters(const S& s) const {
    return genericity_flat(s.policy().parameters());
  }
};

/// DPO against the judge: fresh pairs of the policy every step (`online`), or pairs of the
/// reference drawn once in `init` (`offline`).
template <class Model, prefopt::pair_source Source = prefopt::pair_source::online>
struct dpo_judge_row : genericity_env {
  static constexpr const char* name = Source == prefopt::pair_source::online
                                          ? "dpo_trainer<sigmoid> online"
                                          : "dpo_trainer<sigmoid> offline on the reference's pairs";
  static constexpr gindex steps = 30;
  static constexpr double min_gain = 0.04;
  Model reference = genericity_factory<Model>::make();
  prefopt::sequence_problem<Model, prefopt::length_biased_quality_task::judge_model> problem =
      prefopt::make_sequence_problem(reference, judge, task.prompts(), generation);
  prefopt::sequence_dpo solver{config()};

  static prefopt::dpo_trainer_config config() {
    prefopt::dpo_trainer_config c = dpo_offline_row<Model>::config();
    c.source = Source;
    c.dataset_size = 128;  // read only offline
    return c;
  }

  template <class S>
  double objective(const S& s) const {  // the judge's win rate against the reference
    return prefopt::win_rate(s.policy(), reference, judge, many.view(), generation, 7).mean;
  }
  template <class S>
  vector_d parameters(const S& s) const {
    return genericity_flat(s.policy().parameters());
  }
};

template <class Model>
struct ppo_row : genericity_env {
  static constexpr const char* name = "ppo_trainer";
  static constexpr gindex steps = 30;
  static constexpr double min_gain = 0.2;
  using critic_type = prefopt::test::table_critic<typename Model::scalar_type>;
  Model reference = genericity_factory<Model>::make();
  critic_type critic{4, 4, 1};
  prefopt::rlhf_feedback<prefopt::length_biased_quality_task::gold_reward_model, critic_type>
      feedback = prefopt::make_rlhf_feedback(gold, critic);
  prefopt::sequence_problem<Model, decltype(feedback)> problem =
      prefopt::make_sequence_problem(reference, feedback, task.prompts(), generation);
  prefopt::ppo_trainer solver{config()};

  static prefopt::ppo_trainer_config config() {
    prefopt::ppo_trainer_config c;
    c.rollout_batch_size = 16;
    c.ppo_epochs = 2;
    c.kl_coef = 0.02;
    c.optimizer.learning_rate = 0.03;
    return c;
  }
  template <class S>
  double objective(const S& s) const {  // the expected gold reward
    return prefopt::expected_reward(s.policy(), gold, many.view(), generation, 7).mean;
  }
  template <class S>
  vector_d parameters(const S& s) const {
    vector_d p(s.policy().num_parameters() + s.critic().num_parameters());
    p << genericity_flat(s.policy().parameters()), genericity_flat(s.critic().parameters());
    return p;
  }
};

template <class Model>
struct reward_modeling_row : genericity_env {
  static constexpr const char* name = "reward_modeling";
  static constexpr gindex steps = 40;
  static constexpr double min_gain = 0.02;
  Model initial = genericity_factory<Model>::make();
  prefopt::test::bigram_model<double, false> sampler{4, 3, 3, 31, 0.3};
  prefopt::data::preference_dataset pairs = prefopt::test::judged_dataset(
      sampler, judge, task.prompts(), genericity_pairs<Model>(), generation, 2);
  prefopt::reward_modeling_problem<Model> problem =
      prefopt::make_reward_modeling_problem(initial, pairs);
  prefopt::reward_modeling solver{config()};

  static prefopt::reward_modeling_config config() {
    prefopt::reward_modeling_config c;
    c.optimizer.learning_rate = genericity_learning_rate<Model>(c.optimizer.learning_rate);
    return c;
  }

  template <class S>
  double objective(const S& s) const {  // minus the held-out Bradley-Terry loss
    return -prefopt::evaluate_reward_model(s.model(), pairs, s.held_out_records()).loss;
  }
  template <class S>
  vector_d parameters(const S& s) const {
    return genericity_flat(s.model().parameters());
  }
};

/// The token-level task of `games/token_task.hpp` on the shipped positional policy.
struct dpo_token_task_row {
  static constexpr const char* name = "dpo_trainer<sigmoid> on token_preference_task";
  static constexpr gindex steps = 60;
  static constexpr double min_gain = 0.2;
  prefopt::token_preference_task task{vector_d::LinSpaced(3, -1.0, 1.0), 0.0, 5, 0.3};
  prefopt::positional_sequence_model reference = task.reference_model();
  prefopt::token_preference_task::judge_model judge = task.judge();
  prefopt::sequence_problem<prefopt::positional_sequence_model,
                            prefopt::token_preference_task::judge_model>
      problem = prefopt::make_sequence_problem(reference, judge, task.prompts(), generation());
  prefopt::sequence_dpo solver{config()};

  dpo_token_task_row() = default;
  dpo_token_task_row(const dpo_token_task_row&) = delete;
  dpo_token_task_row& operator=(const dpo_token_task_row&) = delete;

  static prefopt::generation_config generation() {
    prefopt::generation_config g;
    g.max_new_tokens = 5;
    return g;
  }
  static prefopt::dpo_trainer_config config() {
    prefopt::dpo_trainer_config c;
    c.source = prefopt::pair_source::offline;
    c.dataset_size = 1024;
    c.batch_size = 32;
    c.loss.beta_dpo = 0.5;
    return c;
  }
  template <class S>
  double objective(const S& s) const {  // the exact expected gold reward
    return task.expected_gold_reward(s.policy().policy());
  }
  template <class S>
  vector_d parameters(const S& s) const {
    return s.policy().parameters();
  }
};

/// A reward model over tables only this file defines: r(c, a) = value[a], no parameters.
struct genericity_given_reward {
  using batch_type = prefopt::tabular_batch;
  vector_d value;
  void reward(const prefopt::tabular_batch& b, Eigen::Ref<vector_d> out) const {
    for (std::size_t i = 0; i < b.actions.size(); ++i) {
      out[static_cast<gindex>(i)] = value[b.actions[i]];
    }
  }
};

/// The tabular rows' game: Bradley-Terry over 4 responses (Condorcet winner 1); objective: the
/// expected true reward.
struct genericity_game_env {
  vector_d r = (vector_d(4) << 0.0, 1.0, 0.3, -0.5).finished();
  prefopt::preference_game game = prefopt::bradley_terry_game(r);

  template <class S>
  double objective(const S& s) const {
    vector_d p(4);
    s.policy().probabilities(0, p);
    return p.dot(r);
  }
  template <class S>
  vector_d parameters(const S& s) const {
    return s.policy().parameters();
  }
};

template <class Variant>
struct dpo_game_row : genericity_game_env {
  static constexpr const char* name = "dpo_trainer on a preference game";
  static constexpr gindex steps = 60;
  static constexpr double min_gain = 0.1;
  const prefopt::preference_game& problem = game;
  prefopt::dpo_trainer<Variant> solver{config()};

  static prefopt::dpo_trainer_config config() {
    prefopt::dpo_trainer_config c;
    c.source = prefopt::pair_source::offline;
    c.batch_size = 64;
    c.loss.beta_dpo = 0.1;
    return c;
  }
};

struct rlhf_game_row : genericity_game_env {
  static constexpr const char* name = "tabular_rlhf_ppo, fitted Bradley-Terry table";
  static constexpr gindex steps = 30;
  static constexpr double min_gain = 0.1;
  const prefopt::preference_game& problem = game;
  prefopt::tabular_rlhf_ppo solver{config()};

  static prefopt::rlhf_ppo_config config() {
    prefopt::rlhf_ppo_config c;
    c.reward.pairs = 2000;
    c.reward.iterations = 200;
    return c;
  }
};

struct rlhf_given_reward_row : genericity_game_env {
  static constexpr const char* name = "tabular_rlhf_ppo, a given reward model";
  static constexpr gindex steps = 30;
  static constexpr double min_gain = 0.1;
  genericity_given_reward reward{r};
  prefopt::tabular_rlhf_problem<genericity_given_reward> problem{&game, &reward, false};
  prefopt::tabular_rlhf_ppo solver{rlhf_game_row::config()};

  rlhf_given_reward_row() = default;
  rlhf_given_reward_row(const rlhf_given_reward_row&) = delete;
  rlhf_given_reward_row& operator=(const rlhf_given_reward_row&) = delete;
};

/// A model type that only this file defines: logits are a free table indexed by (position capped
/// at `positions - 1`, previous token or V for the start), theta row-major
/// `[positions * (V + 1), V]`. Its eos logits start at `eos_bias` (a reference far from the
/// class equilibrium).
template <class T>
class genericity_table_model {
 public:
  using scalar_type = T;
  struct decode_state {
    std::vector<prefopt::index_t> last, position;
  };

  genericity_table_model(prefopt::index_t vocab, prefopt::token_id eos, prefopt::index_t positions,
                         double eos_bias)
      : v_(vocab),
        eos_(eos),
        positions_(positions),
        theta_(prefopt::vector_t<T>::Zero(positions * (vocab + 1) * vocab)) {
    for (prefopt::index_t r = 0; r < positions * (vocab + 1); ++r) {
      theta_(r * vocab + eos) = static_cast<T>(eos_bias);
    }
  }
  [[nodiscard]] prefopt::index_t vocab_size() const { return v_; }
  [[nodiscard]] prefopt::token_id eos() const { return eos_; }
  [[nodiscard]] prefopt::index_t num_parameters() const { return theta_.size(); }
  [[nodiscard]] Eigen::Ref<prefopt::vector_t<T>> parameters() { return theta_; }
  [[nodiscard]] Eigen::Ref<const prefopt::vector_t<T>> parameters() const { return theta_; }

  void logits(const prefopt::sequence_batch& b, Eigen::Ref<prefopt::row_matrix_t<T>> out) const {
    rows(b, [&](prefopt::index_t row, prefopt::index_t r) {
      out.row(row) = theta_.segment(r * v_, v_).transpose();
    });
  }
  void accumulate_logits_gradient(const prefopt::sequence_batch& b,
                                  Eigen::Ref<const prefopt::row_matrix_t<T>> d,
                                  Eigen::Ref<prefopt::vector_t<T>> g) const {
    rows(b, [&](prefopt::index_t row, prefopt::index_t r) {
      g.segment(r * v_, v_) += d.row(row).transpose();
    });
  }
  [[nodiscard]] decode_state start_decoding(prefopt::ragged_view<const prefopt::token_id> p) const {
    decode_state s;
    for (prefopt::index_t i = 0; i < p.num_sequences(); ++i) {
      const auto x = p.sequence(i);
      s.last.push_back(x.empty() ? v_ : x.back());
      s.position.push_back(0);
    }
    return s;
  }
  void next_logits(decode_state& s, std::span<const prefopt::index_t> live,
                   Eigen::Ref<prefopt::row_matrix_t<T>> out) const {
    for (std::size_t k = 0; k < live.size(); ++k) {
      const auto u = static_cast<std::size_t>(live[k]);
      out.row(static_cast<prefopt::index_t>(k)) =
          theta_.segment(row_of(s.position[u], s.last[u]) * v_, v_).transpose();
    }
  }
  void append(decode_state& s, std::span<const prefopt::index_t> live,
              std::span<const prefopt::token_id> tokens) const {
    for (std::size_t k = 0; k < live.size(); ++k) {
      const auto u = static_cast<std::size_t>(live[k]);
      s.last[u] = tokens[k];
      ++s.position[u];
    }
  }

 private:
  [[nodiscard]] prefopt::index_t row_of(prefopt::index_t pos, prefopt::index_t prev) const {
    return std::min(pos, positions_ - 1) * (v_ + 1) + prev;
  }
  template <class F>
  void rows(const prefopt::sequence_batch& b, F&& f) const {
    const prefopt::index_t base = b.responses.offsets.empty() ? 0 : b.responses.offsets.front();
    for (prefopt::index_t i = 0; i < b.size(); ++i) {
      const auto x = b.prompts.sequence(i);
      const auto y = b.responses.sequence(i);
      prefopt::index_t prev = x.empty() ? v_ : x.back();
      const prefopt::index_t row0 = b.responses.offsets[static_cast<std::size_t>(i)] - base;
      for (std::size_t t = 0; t < y.size(); ++t) {
        f(row0 + static_cast<prefopt::index_t>(t), row_of(static_cast<prefopt::index_t>(t), prev));
        prev = y[t];
      }
    }
  }

  prefopt::index_t v_;
  prefopt::token_id eos_;
  prefopt::index_t positions_;
  prefopt::vector_t<T> theta_;
};

static_assert(prefopt::SequenceModel<genericity_table_model<double>>);

// ---- the preference-based trainers on the intransitive class task ------------------------------
/// Each model type on the class task (`pref_helpers.hpp`: V = 4, eos = 3, responses of at most 2
/// tokens) and on the instruction task (V = 6, eos = 5, one-token responses).
template <class M>
struct class_task_factory;
template <class T, bool H>
struct class_task_factory<prefopt::test::bigram_model<T, H>> {
  static prefopt::test::bigram_model<T, H> make() { return {4, 4, 3, 1, 1.0}; }
  static prefopt::test::bigram_model<T, H> make_instruction() { return {6, 4, 5, 1, 1.0}; }
};
template <class T>
struct class_task_factory<genericity_table_model<T>> {
  static genericity_table_model<T> make() { return {4, 3, 2, 2.0}; }
  static genericity_table_model<T> make_instruction() { return {6, 5, 2, 0.0}; }
};
template <class T>
struct class_task_factory<prefopt::transformer<T>> {
  // An empty prompt reads as eos.
  static prefopt::transformer_config config(gindex vocab) {
    prefopt::transformer_config c = genericity_transformer_config();
    c.vocab_size = vocab;
    c.eos = static_cast<token_id>(vocab - 1);
    c.max_length = 1 + 2;
    return c;
  }
  static prefopt::transformer<T> make() { return prefopt::transformer<T>(config(4)); }
  static prefopt::transformer<T> make_instruction() { return prefopt::transformer<T>(config(6)); }
};

/// Each preference trainer's row settings: name, steps, the smallest accepted fall of the class
/// gap, and the trainer.
template <class Trainer>
struct class_task_trainer;
template <>
struct class_task_trainer<prefopt::nash_md_pg> {
  static constexpr const char* name = "nash_md_pg";
  static constexpr gindex steps = 60;
  static constexpr double min_gain = 0.05;  // 0.10 to 0.26 observed
  static prefopt::nash_md_pg make() {
    prefopt::nash_md_pg_config c;
    c.beta = 0.05;
    c.mixture_coef = 0.125;
    c.batch_size = 256;
    c.optimizer.kind = prefopt::optimizer_kind::sgd;
    c.optimizer.learning_rate = 2.0;
    return prefopt::nash_md_pg(c);
  }
};
template <class Trainer>
struct class_task_pair_trainer {
  static constexpr gindex steps = 30;
  static Trainer make(double tau) {
    typename Trainer::config_type c;
    c.tau = tau;
    c.batch_size = 128;
    c.optimizer.learning_rate = 0.02;
    return Trainer(c);
  }
};
template <>
struct class_task_trainer<prefopt::onpo_trainer> : class_task_pair_trainer<prefopt::onpo_trainer> {
  static constexpr const char* name = "onpo_trainer";
  static constexpr double min_gain = 0.1;  // 0.21 to 0.34 observed
  static prefopt::onpo_trainer make() { return class_task_pair_trainer::make(0.0); }
};
template <>
struct class_task_trainer<prefopt::inpo_trainer> : class_task_pair_trainer<prefopt::inpo_trainer> {
  static constexpr const char* name = "inpo_trainer";
  static constexpr double min_gain = 0.04;  // 0.07 to 0.24 observed
  static prefopt::inpo_trainer make() { return class_task_pair_trainer::make(0.1); }
};

template <class Model, class Trainer>
struct class_task_row : prefopt::test::class_task_fixture {
  static constexpr const char* name = class_task_trainer<Trainer>::name;
  static constexpr gindex steps = class_task_trainer<Trainer>::steps;
  static constexpr double min_gain = class_task_trainer<Trainer>::min_gain;
  prefopt::generation_config generation = make_generation();
  Model reference = class_task_factory<Model>::make();
  prefopt::sequence_problem<Model, prefopt::intransitive_class_task::judge_model> problem =
      prefopt::make_sequence_problem(reference, judge, prompts(), generation);
  Trainer solver = class_task_trainer<Trainer>::make();

  class_task_row() = default;
  class_task_row(const class_task_row&) = delete;
  class_task_row& operator=(const class_task_row&) = delete;

  static prefopt::generation_config make_generation() {
    prefopt::generation_config g;
    g.max_new_tokens = 2;
    return g;
  }
  template <class S>
  double objective(const S& s) const {  // minus the class-level duality gap
    return -prefopt::test::class_duality_gap(
        task, prefopt::test::exact_class_distribution(s.policy(), task, prompts(), 2));
  }
  template <class S>
  vector_d parameters(const S& s) const {
    return genericity_flat(s.policy().parameters());
  }
};

/// HIR on the instruction task (K = m = 5, prompts [k], one-token responses), 12 rounds.
template <class Model>
struct hir_row {
  static constexpr const char* name = "hir_trainer";
  static constexpr gindex steps = 12;
  static constexpr double min_gain = 0.2;  // 0.37 to 0.56 observed
  prefopt::modular_sum_instruction_task task{5, 5};
  std::vector<gindex> offsets{0, 1, 2, 3, 4, 5};
  std::vector<token_id> tokens{0, 1, 2, 3, 4};
  prefopt::generation_config generation = make_generation();
  Model reference = class_task_factory<Model>::make_instruction();
  prefopt::sequence_problem<Model, prefopt::modular_sum_instruction_task> problem =
      prefopt::make_sequence_problem(reference, task, prompts(), generation);
  prefopt::hir_trainer solver{config()};

  hir_row() = default;
  hir_row(const hir_row&) = delete;
  hir_row& operator=(const hir_row&) = delete;

  [[nodiscard]] prefopt::ragged_view<const token_id> prompts() const { return {offsets, tokens}; }
  static prefopt::generation_config make_generation() {
    prefopt::generation_config g;
    g.max_new_tokens = 1;
    return g;
  }
  static prefopt::hir_trainer_config config() {
    prefopt::hir_trainer_config c;
    c.batch_size = 16;
    return c;
  }
  template <class S>
  double objective(const S& s) const {  // the exact success rate
    return prefopt::test::hir_exact_success(s.policy(), task, prompts(), 1);
  }
  template <class S>
  vector_d parameters(const S& s) const {
    return genericity_flat(s.policy().parameters());
  }
};

// ---- the tabular Nash solvers on any TabularPreferenceProblem -----------------------------------
/// A pairwise judge over a table only this file defines: one context, rock-paper-scissors with
/// margins 0.1, 0.2, 0.3 (`P(0 > 1) = 0.6`, `P(1 > 2) = 0.7`, `P(2 > 0) = 0.8`), in closed form;
/// no `preference_matrix` member (the library derives it from `preference`).
struct genericity_cyclic_judge {
  using batch_type = prefopt::tabular_batch;
  [[nodiscard]] gindex num_contexts() const { return 1; }
  [[nodiscard]] gindex num_actions() const { return 3; }
  void preference(const prefopt::pair_batch<prefopt::tabular_batch>& pairs,
                  Eigen::Ref<vector_d> out) const {
    for (std::size_t k = 0; k < pairs.first.actions.size(); ++k) {
      const gindex i = pairs.first.actions[k], j = pairs.second.actions[k];
      const double margin = 0.1 * static_cast<double>(1 + (i == (j + 1) % 3 ? j : i));
      out[static_cast<gindex>(k)] = i == j ? 0.5 : ((i + 1) % 3 == j ? 0.5 + margin : 0.5 - margin);
    }
  }
};
static_assert(prefopt::TabularPreferenceModel<genericity_cyclic_judge>);

inline prefopt::row_matrix_d genericity_cyclic_reference() {
  return (prefopt::row_matrix_d(1, 3) << 0.1, 0.1, 0.8).finished();
}
constexpr double genericity_cyclic_tau = 0.1;

/// The cyclic game as each problem type: the shipped `preference_game` (matrix written out), the
/// test-only judge or the shipped `tabular_preference_model` in a `tabular_preference_problem`.
template <class Problem>
struct cyclic_problem_factory;
template <>
struct cyclic_problem_factory<prefopt::preference_game> {
  static prefopt::preference_game make() {
    prefopt::matrix_d p(3, 3);
    p << 0.5, 0.6, 0.2, 0.4, 0.5, 0.7, 0.8, 0.3, 0.5;
    return prefopt::preference_game(std::vector<prefopt::matrix_d>{p},
                                    genericity_cyclic_reference(), genericity_cyclic_tau);
  }
};
template <>
struct cyclic_problem_factory<prefopt::tabular_preference_problem<genericity_cyclic_judge>> {
  static prefopt::tabular_preference_problem<genericity_cyclic_judge> make() {
    return {genericity_cyclic_judge{}, genericity_cyclic_reference(), genericity_cyclic_tau};
  }
};
template <>
struct cyclic_problem_factory<
    prefopt::tabular_preference_problem<prefopt::tabular_preference_model>> {
  static prefopt::tabular_preference_problem<prefopt::tabular_preference_model> make() {
    const auto game = cyclic_problem_factory<prefopt::preference_game>::make();
    return {game.preference_model(), genericity_cyclic_reference(), genericity_cyclic_tau};
  }
};

/// A tabular solver's row: the regularised solvers' objective is minus the last iterate's
/// `DualGap_tau`, the unregularised ones' minus the unregularised gap (MWU: of the average, whose
/// gap its theorem bounds; ONPO: of the last iterate, which converges on a game with a unique Nash
/// equilibrium).
template <class Solver, class Problem>
struct tabular_nash_row {
  static constexpr const char* name = Solver::name;
  static constexpr gindex steps = 300;
  static constexpr double min_gain = 0.02;  // 0.039 (ONPO's last iterate) to 0.16 observed
  static constexpr bool regularised =
      std::string_view(Solver::name) != "onpo" && std::string_view(Solver::name) != "self_play_mwu";
  Problem problem = cyclic_problem_factory<Problem>::make();
  Solver solver = make_solver();

  static Solver make_solver() {
    if constexpr (std::string_view(Solver::name) == "self_play_mwu" ||
                  std::string_view(Solver::name) == "omd") {
      return Solver(prefopt::constant_step(0.3));
    } else if constexpr (std::string_view(Solver::name) == "regularised_onpo") {
      return Solver(prefopt::constant_step(0.3));
    } else {
      return Solver{};
    }
  }
  template <class S>
  double objective(const S& s) const {
    const prefopt::preference_game& game = prefopt::as_preference_game(problem);
    if constexpr (regularised) return -prefopt::duality_gap(game, s.policy());
    if constexpr (std::string_view(Solver::name) == "self_play_mwu") {
      return -prefopt::unregularised_duality_gap(game, s.average_probabilities());
    }
    return -prefopt::unregularised_duality_gap(game, s.policy());
  }
  template <class S>
  vector_d parameters(const S& s) const {
    return s.policy().parameters();
  }
};

using bigram_d = prefopt::test::bigram_model<double, false>;  // logits path
using bigram_f = prefopt::test::bigram_model<float, true>;    // float, fused linear head
using topic_d = genericity_topic_model<double>;               // defined only in this file
using topic_f = genericity_topic_model<float>;
using bag_d = prefopt::test::bag_reward_model<double>;
using bag_f = prefopt::test::bag_reward_model<float>;
using token_reward_f = genericity_token_reward<float>;                  // defined only in this file
using transformer_f = prefopt::transformer<float>;                      // the shipped transformer
using transformer_reward_f = prefopt::transformer_reward_model<float>;  // and its reward head
using table_d = genericity_table_model<double>;                         // defined only in this file
using cyclic_game = prefopt::preference_game;
using cyclic_judge_problem =  // over a judge defined only in this file
    prefopt::tabular_preference_problem<genericity_cyclic_judge>;
using cyclic_model_problem = prefopt::tabular_preference_problem<prefopt::tabular_preference_model>;

// ---- the table: one row per line (trainer row, model type) ----------------------------------
// clang-format off
using genericity_table = std::tuple<
    dpo_offline_row<bigram_d>,
    dpo_offline_row<bigram_f>,
    dpo_offline_row<topic_d>,
    dpo_judge_row<bigram_d>,
    dpo_judge_row<bigram_f>,
    dpo_judge_row<topic_f>,
    ppo_row<bigram_d>,
    ppo_row<bigram_f>,
    ppo_row<topic_d>,
    reward_modeling_row<bag_d>,
    reward_modeling_row<bag_f>,
    reward_modeling_row<token_reward_f>,
    dpo_offline_row<transformer_f>,
    dpo_judge_row<transformer_f>,
    ppo_row<transformer_f>,
    reward_modeling_row<transformer_reward_f>,
    dpo_judge_row<bigram_d, prefopt::pair_source::offline>,
    dpo_judge_row<topic_f, prefopt::pair_source::offline>,
    dpo_token_task_row,
    dpo_game_row<prefopt::losses::dpo_variant::sigmoid>,
    dpo_game_row<prefopt::losses::dpo_variant::ipo>,
    rlhf_game_row,
    rlhf_given_reward_row,
    class_task_row<bigram_f, prefopt::nash_md_pg>,
    class_task_row<bigram_d, prefopt::nash_md_pg>,
    class_task_row<table_d, prefopt::nash_md_pg>,
    class_task_row<transformer_f, prefopt::nash_md_pg>,
    class_task_row<bigram_f, prefopt::onpo_trainer>,
    class_task_row<bigram_d, prefopt::onpo_trainer>,
    class_task_row<table_d, prefopt::onpo_trainer>,
    class_task_row<transformer_f, prefopt::onpo_trainer>,
    class_task_row<bigram_f, prefopt::inpo_trainer>,
    class_task_row<bigram_d, prefopt::inpo_trainer>,
    class_task_row<table_d, prefopt::inpo_trainer>,
    class_task_row<transformer_f, prefopt::inpo_trainer>,
    hir_row<bigram_f>,
    hir_row<bigram_d>,
    hir_row<table_d>,
    hir_row<transformer_f>,
    tabular_nash_row<prefopt::nash_md<>, cyclic_game>,
    tabular_nash_row<prefopt::nash_md<>, cyclic_judge_problem>,
    tabular_nash_row<prefopt::nash_md<>, cyclic_model_problem>,
    tabular_nash_row<prefopt::omd<prefopt::constant_step>, cyclic_game>,
    tabular_nash_row<prefopt::omd<prefopt::constant_step>, cyclic_judge_problem>,
    tabular_nash_row<prefopt::self_play_mwu<>, cyclic_game>,
    tabular_nash_row<prefopt::self_play_mwu<>, cyclic_judge_problem>,
    tabular_nash_row<prefopt::onpo<>, cyclic_game>,
    tabular_nash_row<prefopt::onpo<>, cyclic_judge_problem>,
    tabular_nash_row<prefopt::regularised_onpo<>, cyclic_game>,
    tabular_nash_row<prefopt::regularised_onpo<>, cyclic_judge_problem>>;
// clang-format on
}  // namespace

TEMPLATE_LIST_TEST_CASE(
    "every generic trainer improves its objective on every model type it "
    "accepts, bitwise reproducibly",
    "[trainers][genericity]", genericity_table) {
  const TestType row;
  const double before = row.objective(row.solver.init(row.problem));
  const auto a = prefopt::run(row.solver, row.problem, {TestType::steps});
  const auto b = prefopt::run(row.solver, row.problem, {TestType::steps});
  REQUIRE(a.status == prefopt::run_status::completed);
  const double after = row.objective(a.state);
  INFO(TestType::name << ": objective " << before << " -> " << after);
  CHECK(after > before + TestType::min_gain);
  CHECK(row.parameters(a.state) == row.parameters(b.state));
}
