#pragma once
// prefopt-arena on language models, the tasks: every sequence task the runner knows, as one entry
// of `sequence_task_table` (its kind, how its own config keys are read, how it is built). A task
// gives the trainers its prompts and its judge (type-erased, so every trainer is compiled once for
// every task), the reference's demonstrations their reward, and the evaluation its own metrics.
//
//   quality       length_biased_quality_task: a gold reward and raters who favour long answers;
//                 metric gold_reward
//   intransitive  intransitive_class_task: a rock-paper-scissors judge over response classes with
//                 a known class-level Nash equilibrium (no reward model explains it); metrics
//                 class_duality_gap, class_0, class_1, class_2
//   instruction   modular_sum_instruction_task: instructions, binary feedback and hindsight
//                 relabeling (for HIR); metric success_rate

#include <Eigen/Core>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "config.hpp"
#include "prefopt/core/concepts.hpp"
#include "prefopt/core/random.hpp"
#include "prefopt/models/transformer/transformer.hpp"
#include "prefopt/sequence/evaluation.hpp"
#include "prefopt/sequence/generation.hpp"
#include "prefopt/sequence/instruction_task.hpp"
#include "prefopt/sequence/intransitive_task.hpp"
#include "prefopt/sequence/quality_task.hpp"

namespace prefopt::arena {

using sequence_model = transformer<float>;

/// Any judge (`PreferenceModel` over `sequence_batch` pairs), type-erased.
class any_judge {
 public:
  using batch_type = sequence_batch;
  template <class J>
  explicit any_judge(J judge)
      : f_([judge](const pair_batch<sequence_batch>& p, Eigen::Ref<vector_d> out) {
          judge.preference(p, out);
        }) {}
  void preference(const pair_batch<sequence_batch>& pairs, Eigen::Ref<vector_d> out) const {
    f_(pairs, out);
  }

 private:
  std::function<void(const pair_batch<sequence_batch>&, Eigen::Ref<vector_d>)> f_;
};

/// Any `RewardModel` over `sequence_batch`, type-erased.
class any_reward {
 public:
  using batch_type = sequence_batch;
  template <class R>
  explicit any_reward(R reward)
      : f_([reward](const sequence_batch& b, Eigen::Ref<vector_d> out) { reward.reward(b, out); }) {
  }
  void reward(const sequence_batch& batch, Eigen::Ref<vector_d> out) const { f_(batch, out); }

 private:
  std::function<void(const sequence_batch&, Eigen::Ref<vector_d>)> f_;
};

static_assert(PreferenceModel<any_judge>);
static_assert(RewardModel<any_reward>);

/// One evaluation of a policy: one estimate per metric (`sequence_task::metric_names`).
struct sequence_evaluation {
  std::vector<interval_estimate> values;
};

/// A task, built once per experiment. Judges point into it: it lives on the heap and never moves.
class sequence_task {
 public:
  sequence_task() = default;
  sequence_task(const sequence_task&) = delete;
  sequence_task& operator=(const sequence_task&) = delete;
  virtual ~sequence_task() = default;

  [[nodiscard]] virtual ragged_view<const token_id> prompts() const = 0;
  [[nodiscard]] virtual any_judge judge() const = 0;
  /// The reward that picks the reference's best-of-n demonstrations.
  [[nodiscard]] virtual any_reward demonstration_reward() const = 0;
  /// The instruction task, for HIR (which relabels its prompts); null for the others.
  [[nodiscard]] virtual const modular_sum_instruction_task* instruction() const { return nullptr; }

  /// The task's own metrics, then the common ones (`evaluate` fills them in this order).
  [[nodiscard]] std::vector<std::string> metric_names() const {
    std::vector<std::string> names = own_metric_names();
    for (const char* n : {"win_rate_vs_reference", "kl_to_reference", "length"}) {
      names.emplace_back(n);
    }
    return names;
  }
  /// The metrics of `policy` against `reference`: samples drawn with `g` from fixed seeds (the
  /// same for every trainer).
  [[nodiscard]] sequence_evaluation evaluate(const sequence_model& policy,
                                             const sequence_model& reference,
                                             const generation_config& g) const {
    sequence_evaluation v;
    own_metrics(policy, g, v.values);
    v.values.push_back(win_rate(policy, reference, judge(), prompts(), g, 78));
    const auto kl = kl_and_length(policy, reference, prompts(), g, 79);
    v.values.push_back(kl.mean_kl);
    v.values.push_back(kl.mean_length);
    return v;
  }

 protected:
  [[nodiscard]] virtual std::vector<std::string> own_metric_names() const = 0;
  virtual void own_metrics(const sequence_model& policy, const generation_config& g,
                           std::vector<interval_estimate>& out) const = 0;
};

/// The keys every task reads.
struct sequence_task_common {
  index_t content_tokens = 15;  ///< K (eos = K)
  index_t num_prompts = 64;
  index_t prompt_length = 2;
  std::uint64_t seed = 1;  ///< draws the prompts (and the task's random parts)
};

/// Prompts of a task that does not draw its own: `n` prompts of `length` tokens, the first
/// uniform in [0, first) and the rest uniform content tokens in [0, k).
class generated_prompts {
 public:
  generated_prompts(index_t n, index_t length, index_t first, index_t k, rng& gen) {
    offsets_.push_back(0);
    for (index_t i = 0; i < n; ++i) {
      tokens_.push_back(static_cast<token_id>(gen.uniform_index(first)));
      for (index_t t = 1; t < length; ++t) {
        tokens_.push_back(static_cast<token_id>(gen.uniform_index(k)));
      }
      offsets_.push_back(static_cast<index_t>(tokens_.size()));
    }
  }
  [[nodiscard]] ragged_view<const token_id> view() const { return {offsets_, tokens_}; }

 private:
  std::vector<index_t> offsets_;
  std::vector<token_id> tokens_;
};

class quality_sequence_task final : public sequence_task {
 public:
  explicit quality_sequence_task(const quality_task_config& c)
      : task_(length_biased_quality_task::random(c)) {}
  [[nodiscard]] ragged_view<const token_id> prompts() const override { return task_.prompts(); }
  [[nodiscard]] any_judge judge() const override { return any_judge(task_.judge()); }
  [[nodiscard]] any_reward demonstration_reward() const override {
    return any_reward(task_.gold_reward());
  }

 protected:
  [[nodiscard]] std::vector<std::string> own_metric_names() const override {
    return {"gold_reward"};
  }
  void own_metrics(const sequence_model& policy, const generation_config& g,
                   std::vector<interval_estimate>& out) const override {
    out.push_back(expected_reward(policy, task_.gold_reward(), prompts(), g, 77));
  }

 private:
  length_biased_quality_task task_;
};

/// The intransitive task's own settings.
struct intransitive_settings {
  double a = 1.0, b = 2.0, c = 3.0;  ///< cyclic margins (equilibrium (c, b, a) / (a + b + c))
  double quality_weight = 0.0;       ///< w, the judge's transitive part
  double quality_scale = 1.0;        ///< q ~ N(0, scale^2) per content token
};

class intransitive_sequence_task final : public sequence_task {
 public:
  intransitive_sequence_task(const sequence_task_common& c, const intransitive_settings& s)
      : gen_(c.seed, /*stream=*/0x17a5),
        task_(qualities(c.content_tokens, s.quality_scale, gen_), s.a, s.b, s.c, s.quality_weight),
        prompts_(c.num_prompts, c.prompt_length, c.content_tokens, c.content_tokens, gen_) {}
  [[nodiscard]] ragged_view<const token_id> prompts() const override { return prompts_.view(); }
  [[nodiscard]] any_judge judge() const override { return any_judge(task_.judge()); }
  [[nodiscard]] any_reward demonstration_reward() const override {
    return any_reward(task_.quality_reward());
  }

 protected:
  [[nodiscard]] std::vector<std::string> own_metric_names() const override {
    return {"class_duality_gap", "class_0", "class_1", "class_2"};
  }
  /// The class-level duality gap and the class probabilities from the classes of sampled
  /// responses (prompts weigh equally). The gap `max_c (M p)_c / max margin` is estimated at the
  /// argmax `c*` of the sampled distribution as the mean of `M[c*, class(y)] / max margin`, with
  /// that mean's interval (conditional on `c*`).
  void own_metrics(const sequence_model& policy, const generation_config& g,
                   std::vector<interval_estimate>& out) const override {
    const generation_result y = generate(policy, prompts(), g, 77);
    std::vector<index_t> cls(static_cast<std::size_t>(y.size()));
    vector_d p = vector_d::Zero(3);
    for (index_t i = 0; i < y.size(); ++i) {
      cls[static_cast<std::size_t>(i)] = task_.response_class(y.responses().sequence(i));
      p(cls[static_cast<std::size_t>(i)]) += 1.0 / static_cast<double>(y.size());
    }
    const matrix_d m = task_.class_matrix();
    index_t best = 0;
    (m * p).maxCoeff(&best);
    const double scale = m.cwiseAbs().maxCoeff();
    std::vector<double> z, indicator(cls.size());
    for (const index_t k : cls) z.push_back(m(best, k) / scale);
    out.push_back(mean_with_interval(z));
    for (index_t c = 0; c < 3; ++c) {
      for (std::size_t i = 0; i < cls.size(); ++i) indicator[i] = cls[i] == c ? 1.0 : 0.0;
      out.push_back(mean_with_interval(indicator));
    }
  }

 private:
  static vector_d qualities(index_t k, double scale, rng& gen) {
    vector_d q(k);
    for (index_t t = 0; t < k; ++t) q(t) = scale * gen.normal();
    return q;
  }

  rng gen_;  // draws the qualities, then the prompts
  intransitive_class_task task_;
  generated_prompts prompts_;
};

class instruction_sequence_task final : public sequence_task {
 public:
  instruction_sequence_task(const sequence_task_common& c, index_t modulus)
      : task_(c.content_tokens, modulus),
        gen_(c.seed, /*stream=*/0x1a57),
        prompts_(c.num_prompts, c.prompt_length, modulus, c.content_tokens, gen_) {}
  [[nodiscard]] ragged_view<const token_id> prompts() const override { return prompts_.view(); }
  [[nodiscard]] any_judge judge() const override { return any_judge(task_.judge()); }
  [[nodiscard]] any_reward demonstration_reward() const override {
    return any_reward(task_.feedback());
  }
  [[nodiscard]] const modular_sum_instruction_task* instruction() const override { return &task_; }

 protected:
  [[nodiscard]] std::vector<std::string> own_metric_names() const override {
    return {"success_rate"};
  }
  void own_metrics(const sequence_model& policy, const generation_config& g,
                   std::vector<interval_estimate>& out) const override {
    out.push_back(expected_reward(policy, task_.feedback(), prompts(), g, 77));
  }

 private:
  modular_sum_instruction_task task_;
  rng gen_;  // draws the prompts (their first token is the instruction)
  generated_prompts prompts_;
};

/// Builds a task (the settings are read, and checked, beforehand).
using sequence_task_builder = std::function<std::unique_ptr<sequence_task>()>;

struct sequence_task_entry {
  const char* kind;
  /// Reads the task's own keys of `/sequence_task` and returns its builder.
  sequence_task_builder (*read)(object_reader& t, const sequence_task_common& c);
};

inline sequence_task_builder read_quality_task(object_reader& t, const sequence_task_common& c) {
  const quality_task_config q{c.content_tokens,
                              c.num_prompts,
                              c.prompt_length,
                              t.number("quality_scale", 1.0, 0.0, 1e3),
                              t.number("length_bonus", 0.5, -1e3, 1e3),
                              c.seed};
  return [q] { return std::make_unique<quality_sequence_task>(q); };
}

inline sequence_task_builder read_intransitive_task(object_reader& t,
                                                    const sequence_task_common& c) {
  intransitive_settings s;
  if (t.has("margins")) {
    const vector_d m = t.vector("margins");
    if (m.size() != 3 || !m.allFinite() || !(m.array() > 0.0).all()) {
      config_error(t.child("margins"), "expected three finite margins > 0 [a, b, c]");
    }
    s.a = m(0);
    s.b = m(1);
    s.c = m(2);
  }
  s.quality_weight = t.number("quality_weight", 0.0, 0.0, 0.999999);
  s.quality_scale = t.number("quality_scale", 1.0, 0.0, 1e3);
  return [c, s] { return std::make_unique<intransitive_sequence_task>(c, s); };
}

inline sequence_task_builder read_instruction_task(object_reader& t,
                                                   const sequence_task_common& c) {
  if (c.content_tokens < 2) {
    config_error(t.child("content_tokens"), "expected >= 2 for the instruction task");
  }
  const index_t modulus =
      t.integer("modulus", std::min<index_t>(c.content_tokens, 5), 2, c.content_tokens);
  return [c, modulus] { return std::make_unique<instruction_sequence_task>(c, modulus); };
}

/// Every sequence task the runner knows: one entry each.
inline const std::vector<sequence_task_entry>& sequence_task_table() {
  static const std::vector<sequence_task_entry> table = {
      {"quality", read_quality_task},
      {"intransitive", read_intransitive_task},
      {"instruction", read_instruction_task},
  };
  return table;
}

/// Reads `/sequence_task` (its kind, the common keys and the task's own); returns the kind.
inline std::string read_sequence_task(object_reader& t, sequence_task_common& common,
                                      sequence_task_builder& build) {
  std::vector<std::string> kinds;
  for (const auto& entry : sequence_task_table()) kinds.emplace_back(entry.kind);
  const std::string kind = t.string("kind", "quality", kinds);
  common.content_tokens = t.integer("content_tokens", common.content_tokens, 1, 4096);
  common.num_prompts = t.integer("num_prompts", common.num_prompts, 1, 100'000);
  common.prompt_length = t.integer("prompt_length", common.prompt_length, 1, 64);
  common.seed =
      static_cast<std::uint64_t>(t.integer("seed", 1, 0, std::numeric_limits<index_t>::max()));
  for (const auto& entry : sequence_task_table()) {
    if (kind == entry.kind) build = entry.read(t, common);
  }
  t.reject_unknown_keys();
  return kind;
}

}  // namespace prefopt::arena
