#pragma once
/// \file
/// `goal_task`: a goal-conditioned problem with binary feedback, the tabular HIR solver's problem
/// (Zhang et al., arXiv 2302.05206; ALGORITHMS.md §10; `solvers/hir.hpp`). Instructions are goals
/// `g in [0, G)`; a response `y in [0, n)` achieves exactly one goal, `outcome(y)`; the feedback
/// for instruction `g` is `success = [outcome(y) == g]`; `reference()` is the distribution every
/// policy starts from (the same under every instruction). The sequence-level instruction task is
/// `sequence/instruction_task.hpp`.
///
/// `goal_task_relabeler` poses the same task to the generic `hir_trainer` (an
/// `InstructionRelabeler`) on `tabular_sequence_model`'s one-token view of a policy over (goal,
/// response): prompts `[g]`, responses `[y, eos]`.

#include <Eigen/Core>

#include <cmath>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "prefopt/core/assert.hpp"
#include "prefopt/core/concepts.hpp"
#include "prefopt/core/error.hpp"
#include "prefopt/core/random.hpp"
#include "prefopt/core/types.hpp"
#include "prefopt/policies/tabular_softmax.hpp"

namespace prefopt {

/// A goal-conditioned task with binary feedback (see the file comment).
class goal_task {
 public:
  /// `outcome[y]` in `[0, goals)` is the goal response `y` achieves; `reference` (length
  /// `outcome.size()`) is strictly positive and sums to 1 (within 1e-9).
  goal_task(std::vector<index_t> outcome, index_t goals, vector_d reference)
      : outcome_(std::move(outcome)), goals_(goals), reference_(std::move(reference)) {
    constexpr const char* fn = "goal_task";
    PREFOPT_CHECK(goals_ >= 2, invalid_argument, fn, ": goals = ", goals_, ", expected >= 2");
    PREFOPT_CHECK(!outcome_.empty(), shape_error, fn, ": outcome is empty");
    PREFOPT_CHECK(reference_.size() == static_cast<index_t>(outcome_.size()), shape_error, fn,
                  ": reference has ", reference_.size(), " entries, expected one per response (",
                  outcome_.size(), ")");
    for (std::size_t y = 0; y < outcome_.size(); ++y) {
      PREFOPT_CHECK(outcome_[y] >= 0 && outcome_[y] < goals_, invalid_argument, fn, ": outcome[", y,
                    "] = ", outcome_[y], ", expected a goal in [0, ", goals_, ")");
      const double m = reference_[static_cast<index_t>(y)];
      PREFOPT_CHECK(std::isfinite(m) && m > 0.0, invalid_argument, fn, ": reference[", y, "] = ", m,
                    ", expected a strictly positive probability");
    }
    PREFOPT_CHECK(std::abs(reference_.sum() - 1.0) <= 1e-9, invalid_argument, fn,
                  ": reference sums to ", reference_.sum(), ", expected 1");
  }

  /// `responses` responses assigned to `goals` goals round-robin after a seeded shuffle, with a
  /// reference drawn as `softmax(concentration * N(0, 1))`.
  static goal_task random(index_t responses, index_t goals, double concentration,
                          std::uint64_t seed) {
    PREFOPT_CHECK(responses >= goals, invalid_argument,
                  "goal_task::random: responses = ", responses,
                  ", expected at least one response per goal (", goals, ")");
    rng gen(seed, /*stream=*/0x601);
    std::vector<index_t> outcome(static_cast<std::size_t>(responses));
    for (std::size_t y = 0; y < outcome.size(); ++y) outcome[y] = static_cast<index_t>(y) % goals;
    gen.shuffle(std::span<index_t>(outcome));
    vector_d logits(responses);
    for (index_t y = 0; y < responses; ++y) logits[y] = concentration * gen.normal();
    vector_d mu(responses);
    softmax(logits, mu);
    return {std::move(outcome), goals, std::move(mu)};
  }

  [[nodiscard]] index_t num_goals() const noexcept { return goals_; }
  [[nodiscard]] index_t num_responses() const noexcept {
    return static_cast<index_t>(outcome_.size());
  }
  [[nodiscard]] index_t outcome(index_t response) const {
    return outcome_[static_cast<std::size_t>(response)];
  }
  [[nodiscard]] const vector_d& reference() const noexcept { return reference_; }
  [[nodiscard]] bool success(index_t goal, index_t response) const {
    return outcome(response) == goal;
  }

  /// Expected success rate of `policy` (contexts = goals) with instructions drawn uniformly:
  /// `mean_g sum_y pi(y | g) [outcome(y) == g]`.
  template <TabularPolicy P>
  [[nodiscard]] double success_rate(const P& policy) const {
    PREFOPT_CHECK(policy.num_contexts() == goals_ && policy.num_actions() == num_responses(),
                  shape_error, "goal_task::success_rate: policy is ", policy.num_contexts(), "x",
                  policy.num_actions(), ", expected ", goals_, "x", num_responses());
    vector_d p(num_responses());
    double total = 0.0;
    for (index_t g = 0; g < goals_; ++g) {
      policy.probabilities(g, p);
      for (index_t y = 0; y < num_responses(); ++y) total += success(g, y) ? p[y] : 0.0;
    }
    return total / static_cast<double>(goals_);
  }

  /// Reached only by a type that is not a `TabularPolicy` (the sentences of
  /// `check_tabular_policy`).
  template <class P>
  requires(!TabularPolicy<P>) double success_rate(const P&) const {
    static_assert(check_tabular_policy<P>());
    return 0.0;
  }

  /// The reference as a policy over (goal, response): `mu` in every row.
  [[nodiscard]] tabular_softmax_policy reference_policy() const {
    row_matrix_d logits = reference_.array().log().matrix().transpose().replicate(goals_, 1);
    return tabular_softmax_policy(std::move(logits));
  }

 private:
  std::vector<index_t> outcome_;
  index_t goals_;
  vector_d reference_;
};

/// `goal_task` as an instruction relabeler (`hir_trainer`'s `InstructionRelabeler`): instructions
/// are the goals, prompts `[g]` (`prompt_offsets()` / `prompt_tokens()`: one per goal), a
/// response's first token `y < num_responses()` the response (`tabular_sequence_model` writes `[y,
/// eos]`). Success is `outcome(y) == g`; hindsight relabeling writes `[outcome(y)]`; the negative
/// instruction of a response is `(outcome(y) + 1) mod G`, a goal it never achieves (the tabular
/// HIR draws its negatives instead: the sampled goal when the response failed, another one at
/// random when it succeeded). Holds a copy of the task.
class goal_task_relabeler {
 public:
  explicit goal_task_relabeler(goal_task task) : task_(std::move(task)) {
    for (index_t g = 0; g < task_.num_goals(); ++g) {
      tokens_.push_back(static_cast<token_id>(g));
      offsets_.push_back(g + 1);
    }
  }

  /// Success feedback as a `RewardModel` over `sequence_batch` (out[i] in {0, 1}).
  class feedback_model {
   public:
    using batch_type = sequence_batch;
    explicit feedback_model(const goal_task_relabeler& r) : r_(&r) {}
    void reward(const sequence_batch& batch, Eigen::Ref<vector_d> out) const {
      constexpr const char* fn = "goal_task_relabeler::feedback_model::reward";
      PREFOPT_CHECK(out.size() == batch.size() && batch.prompts.num_sequences() == batch.size(),
                    shape_error, fn, ": out has ", out.size(), " entries, batch ",
                    batch.prompts.num_sequences(), " prompts and ", batch.size(),
                    " responses, expected equal");
      vector_d result(batch.size());
      for (index_t i = 0; i < batch.size(); ++i) {
        result(i) =
            r_->goal(fn, batch, i) == r_->achieved(fn, batch.responses.sequence(i), i) ? 1.0 : 0.0;
      }
      out = result;  // nothing written on error
    }

   private:
    const goal_task_relabeler* r_;
  };

  [[nodiscard]] const goal_task& task() const noexcept { return task_; }
  [[nodiscard]] feedback_model feedback() const { return feedback_model(*this); }
  [[nodiscard]] index_t modulus() const noexcept { return task_.num_goals(); }
  /// The prompt pool: `[g]` for every goal.
  [[nodiscard]] ragged_view<const token_id> prompts() const { return {offsets_, tokens_}; }

  /// `(outcome(y) + 1) mod G` for the response `y` (its first token).
  [[nodiscard]] index_t negative_instruction(std::span<const token_id> y) const {
    return (achieved("goal_task_relabeler::negative_instruction", y, 0) + 1) % task_.num_goals();
  }

  /// Each prompt `[g, ...]` with `g` replaced by the goal its response achieves.
  void relabel_prompts(const sequence_batch& batch, std::vector<index_t>& offsets,
                       std::vector<token_id>& prompts) const {
    constexpr const char* fn = "goal_task_relabeler::relabel_prompts";
    std::vector<index_t> o{0};
    std::vector<token_id> p;
    for (index_t i = 0; i < batch.size(); ++i) {
      static_cast<void>(goal(fn, batch, i));  // validates the prompt
      const auto x = batch.prompts.sequence(i);
      p.push_back(static_cast<token_id>(achieved(fn, batch.responses.sequence(i), i)));
      p.insert(p.end(), x.begin() + 1, x.end());
      o.push_back(static_cast<index_t>(p.size()));
    }
    offsets = std::move(o);
    prompts = std::move(p);
  }

 private:
  [[nodiscard]] index_t goal(const char* fn, const sequence_batch& batch, index_t i) const {
    const auto x = batch.prompts.sequence(i);
    PREFOPT_CHECK(!x.empty() && x[0] >= 0 && x[0] < task_.num_goals(), invalid_argument, fn,
                  ": batch.prompts[", i, "] must start with a goal in [0, ", task_.num_goals(),
                  ")");
    return x[0];
  }
  [[nodiscard]] index_t achieved(const char* fn, std::span<const token_id> y, index_t i) const {
    PREFOPT_CHECK(!y.empty() && y[0] >= 0 && y[0] < task_.num_responses(), invalid_argument, fn,
                  ": response ", i, " must start with a response id in [0, ", task_.num_responses(),
                  ")");
    return task_.outcome(y[0]);
  }

  goal_task task_;
  std::vector<index_t> offsets_{0};
  std::vector<token_id> tokens_;
};

}  // namespace prefopt
