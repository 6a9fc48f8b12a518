#pragma once
/// \file
/// What a token-level trainer trains on (DESIGN.md §9): the user's reference model, the feedback
/// (a reward model, a pairwise judge or a relabeler), the prompts and the sampling settings. Every
/// generic trainer in `solvers/` takes a `sequence_problem<Reference, Feedback>`; the policy it
/// trains starts as a copy of the reference and lives in the trainer's state (`state.policy()`).
///
/// The problem is a non-owning view: the reference, the feedback and the prompt storage must
/// outlive every `init` / `step` / `run` call that reads it (the sequence tasks of `sequence/` own
/// their prompts and feedback models, so `make_sequence_problem(reference, task.judge(),
/// task.prompts())` is the usual construction).

#include "prefopt/core/assert.hpp"
#include "prefopt/core/concepts.hpp"
#include "prefopt/core/error.hpp"
#include "prefopt/core/types.hpp"
#include "prefopt/sequence/generation.hpp"

namespace prefopt {

/// A reference model, a feedback model and a prompt pool (non-owning).
///
/// `Reference` models `SequenceModel` (the policy's type is the reference's: the trainer copies
/// it). `Feedback` is whatever the trainer consumes: `rlhf_feedback<Reward, Critic>` (a
/// `RewardModel` over `sequence_batch` and the initial `ValueModel`, for `ppo_trainer`), a
/// `PreferenceModel` over `pair_batch<sequence_batch>` (online `dpo_trainer`, Nash-MD-PG,
/// ONPO/INPO), a `data::preference_dataset` (offline `dpo_trainer`; pass its prompts as
/// `prompts`), or a task-specific type (HIR's relabeler).
template <SequenceModel Reference, class Feedback>
struct sequence_problem {
  const Reference* reference = nullptr;
  const Feedback* feedback = nullptr;
  /// The prompt pool: trainers draw prompts from it with their own seeded generator.
  ragged_view<const token_id> prompts;
  /// How responses are sampled (max_new_tokens, temperature, ...).
  generation_config generation;

  /// Throws `prefopt::invalid_argument` naming `function` when a pointer is null, the pool is
  /// empty or the sampling settings are out of range.
  void validate(const char* function) const {
    PREFOPT_CHECK(reference != nullptr, invalid_argument, function,
                  ": problem.reference is null, expected the reference model");
    PREFOPT_CHECK(feedback != nullptr, invalid_argument, function,
                  ": problem.feedback is null, expected a reward model, judge or relabeler");
    prompts.validate(function, "problem.prompts");
    PREFOPT_CHECK(prompts.num_sequences() >= 1, invalid_argument, function,
                  ": problem.prompts is empty, expected at least one prompt");
    detail::check_generation_config(function, generation);
  }
};

/// `sequence_problem` from references (the arguments must outlive the problem).
template <SequenceModel Reference, class Feedback>
[[nodiscard]] sequence_problem<Reference, Feedback> make_sequence_problem(
    const Reference& reference, const Feedback& feedback, ragged_view<const token_id> prompts,
    const generation_config& generation = {}) {
  return {&reference, &feedback, prompts, generation};
}

/// Reached only when `reference` is not a `SequenceModel`: the sentences of
/// `check_sequence_model` naming the missing members.
template <class Reference, class Feedback>
requires(!SequenceModel<Reference>) void make_sequence_problem(const Reference&, const Feedback&,
                                                               ragged_view<const token_id>,
                                                               const generation_config& = {}) {
  static_assert(check_sequence_model<Reference>());
}

}  // namespace prefopt
