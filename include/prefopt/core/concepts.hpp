#pragma once
/// \file
/// The extension points of prefopt: one C++20 concept per role.
///
/// The concepts and their required members (README#concepts has the table):
/// - `Policy`: `batch_type`; `log_prob(batch, out)`.
/// - `TabularPolicy`: `Policy` over `tabular_batch`; `num_contexts()`, `num_actions()`,
///   `probabilities(context, out)`.
/// - `DifferentiablePolicy`: `Policy`; `scalar_type`; `num_parameters()`, `parameters()`,
///   `accumulate_log_prob_gradient(batch, weights, gradient)`.
/// - `SequenceModel`: `vocab_size()`, `eos()`; `scalar_type` (float or double),
///   `num_parameters()`, `parameters()`; teacher-forced `logits(batch, out)` and
///   `accumulate_logits_gradient(batch, dlogits, gradient)`; `decode_state`,
///   `start_decoding(prompts)`, `next_logits(state, live, out)`, `append(state, live, tokens)`.
/// - `LinearHeadSequenceModel`: `SequenceModel`; `hidden_size()`, `hidden_states(batch, out)`,
///   `accumulate_hidden_gradient(batch, dhidden, gradient)`, `output_weight_offset()`.
/// - `RewardModel`: `batch_type`; `reward(batch, out)`.
/// - `DifferentiableRewardModel`: `RewardModel`; `scalar_type`, `num_parameters()`,
///   `parameters()`, `accumulate_reward_gradient(batch, weights, gradient)`.
/// - `ValueModel` (a PPO critic over sequences): `scalar_type`, `num_parameters()`,
///   `parameters()`; `values(batch, out)`, `accumulate_value_gradient(batch, dvalues, gradient)`.
/// - `PreferenceModel`: `batch_type`; `preference(pairs, out)`.
/// - `TabularPreferenceModel`: `PreferenceModel` over `tabular_batch`; `num_contexts()`,
///   `num_actions()`.
/// - `TabularPreferenceProblem` (what the tabular Nash solvers read): `num_contexts()`,
///   `num_actions()`, `tau()`, `log_reference()`, `preference(context)`.
/// - `Solver<S, Problem>`: `init(problem) -> state`; `step(problem, state) -> step stats`.
///
/// Optional members (the library derives them when absent, see `core/customization.hpp`):
/// `TabularPolicy::log_probabilities(context, out)` and `sample(context, rng)`;
/// `TabularPreferenceModel::preference_matrix(context, out)`; tabular reward models'
/// `rewards(context, out)` with `num_contexts()` / `num_actions()`.
///
/// Conventions shared by every concept:
/// - Batches are non-owning views (`core/types.hpp`); results go to caller-provided
///   `Eigen::Ref` outputs of the batch's size, never returned expressions.
/// - Log-probabilities are natural logs of whole responses: for a token sequence, the sum of the
///   response tokens' log-probs (prompt and padding contribute exactly 0).
/// - `P(y > y' | x)` follows `P(y > y') + P(y' > y) = 1` and `P(y > y) = 1/2`.
///
/// How token-level models fit. A user's autoregressive language model models `SequenceModel`
/// (below): it provides teacher-forced logits over a `sequence_batch` (ragged prompts and
/// responses of token ids), their backward into its flat `parameters()` (float or double), and
/// incremental decoding. The library derives the rest (`sequence/derived.hpp`: per-token and
/// sequence log-probs, entropies, exact KL and k1/k2/k3 with gradients; `sequence/generation.hpp`)
/// and `sequence_policy<M>` makes it a `DifferentiablePolicy` over `sequence_batch`, whose
/// `accumulate_log_prob_gradient` back-propagates per-sequence weights (the loss's gradient with
/// respect to each sequence log-prob, e.g. `-beta_dpo sigma(-u)` for DPO). A reward model or
/// pairwise judge over sequences uses the same `sequence_batch` and `pair_batch<sequence_batch>`.
/// Only `TabularPolicy` / `TabularPreferenceModel` are table-specific. The losses (`losses/`) take
/// no model at all: they map log-prob vectors to a loss and its gradient with respect to those
/// log-probs, so they serve tabular and token-level policies alike.
///
/// What accepts a user's type today (each concept's comment below says the same): the
/// diagnostics, `sample`, `probability_table` and `goal_task::success_rate` take a `TabularPolicy`;
/// `sequence/derived.hpp`, `sequence/generation.hpp`, `sequence/evaluation.hpp`, `sequence_policy`
/// and `make_sequence_problem` take a `SequenceModel`; `bradley_terry_preference`, `rewards` and
/// `expected_reward` a `RewardModel`; `preference_matrix` and the sequence `win_rate` a
/// `PreferenceModel`; `run` / `run_from` any `Solver`. The sequence trainers (`solvers/`: DPO,
/// PPO, reward modelling, Nash-MD-PG, ONPO / INPO, HIR) train any `SequenceModel` on a
/// `sequence_problem` with the user's reference, judge, reward model or relabeler; the tabular
/// Nash solvers take any `TabularPreferenceProblem`, which `tabular_preference_problem` builds
/// from any `TabularPreferenceModel`. Every entry point above calls the concept's `check_*`
/// function for a type that does not model it, so the compiler reports one sentence per missing
/// member.

#include <Eigen/Core>

#include <concepts>
#include <span>
#include <type_traits>
#include <utility>

#include "prefopt/core/random.hpp"
#include "prefopt/core/types.hpp"

namespace prefopt {

// ---------------------------------------------------------------------------------------------
// Policy
// ---------------------------------------------------------------------------------------------

/// `P::batch_type`: the batch a policy scores (`tabular_batch`, `sequence_batch`, ...).
template <class P>
concept has_batch_type = requires {
  typename P::batch_type;
};

/// `T::batch_type` is `B` (false, not an error, when `T` declares no `batch_type`).
template <class T, class B>
concept batch_type_is = has_batch_type<T> && std::same_as<typename T::batch_type, B>;

/// `p.log_prob(batch, out)`: writes `out[i] = log pi(y_i | x_i)` for every element of the batch.
template <class P>
concept has_log_prob = has_batch_type<P> &&
    requires(const P& p, const typename P::batch_type& batch, Eigen::Ref<vector_d> out) {
  { p.log_prob(batch, out) } -> std::same_as<void>;
};

/// A policy pi(y | x): scores the log-probability of responses given contexts for a batch.
///
/// Required: `batch_type`; `void log_prob(const batch_type&, Eigen::Ref<vector_d> out) const`.
/// Accepted by: no entry point takes a bare `Policy`; it is what the refinements below share.
template <class P>
concept Policy = has_batch_type<P> && has_log_prob<P>;

/// `p.num_contexts()` and `p.num_actions()`: the table's shape.
template <class T>
concept has_table_shape = requires(const T& t) {
  { t.num_contexts() } -> std::convertible_to<index_t>;
  { t.num_actions() } -> std::convertible_to<index_t>;
};

/// `p.probabilities(context, out)`: writes the row `pi(. | context)` (length `num_actions()`).
template <class P>
concept has_probabilities = requires(const P& p, index_t context, Eigen::Ref<vector_d> out) {
  { p.probabilities(context, out) } -> std::same_as<void>;
};

/// A policy over a finite table of contexts x actions (tabular Nash-MD, OMD, RLHF, DPO, HIR).
///
/// Required: `Policy` with `batch_type = tabular_batch`; `num_contexts()`, `num_actions()`;
/// `void probabilities(index_t context, Eigen::Ref<vector_d> out) const`.
/// Optional: `log_probabilities(context, out)`, `sample(context, rng&) -> index`.
/// Accepted by: the diagnostics (`duality_gap(s)`, `exploitability`, `kl_divergence(s)`,
/// `kl_to_reference`, `win_rate(s)` over a `preference_game`), `log_probabilities`, `sample`,
/// `probability_table`, `goal_task::success_rate`. The tabular solvers iterate their own
/// `tabular_softmax_policy` (a `TabularPolicy`) and do not take one.
template <class P>
concept TabularPolicy = Policy<P> && std::same_as<typename P::batch_type, tabular_batch> &&
    has_table_shape<P> && has_probabilities<P>;

/// `P::scalar_type`, `num_parameters()`, mutable and const `parameters()` (a flat vector view).
template <class P>
concept has_parameters = requires(P& p, const P& cp) {
  typename P::scalar_type;
  { cp.num_parameters() } -> std::convertible_to<index_t>;
  { p.parameters() } -> std::convertible_to<Eigen::Ref<vector_t<typename P::scalar_type>>>;
  { cp.parameters() } -> std::convertible_to<Eigen::Ref<const vector_t<typename P::scalar_type>>>;
};

/// `p.accumulate_log_prob_gradient(batch, weights, gradient)`:
/// `gradient += sum_i weights[i] * grad_theta log pi(y_i | x_i)`.
template <class P>
concept has_log_prob_gradient = has_batch_type<P> && has_parameters<P> &&
    requires(const P& p, const typename P::batch_type& batch, Eigen::Ref<const vector_d> weights,
             Eigen::Ref<vector_t<typename P::scalar_type>> gradient) {
  { p.accumulate_log_prob_gradient(batch, weights, gradient) } -> std::same_as<void>;
};

/// A policy with trainable parameters theta and the gradient of its log-probabilities.
///
/// Required: `Policy`; `scalar_type`; `index num_parameters() const`; `parameters()` (mutable and
/// const flat views of theta, length `num_parameters()`);
/// `void accumulate_log_prob_gradient(const batch_type&, Eigen::Ref<const vector_d> weights,
/// Eigen::Ref<vector_t<scalar_type>> gradient) const`. Every loss in `losses/` returns the
/// gradient with respect to log-probs, so `weights` is that gradient and the policy finishes the
/// chain rule. Accepted by: no public solver today. Tabular RLHF-PPO and HIR train a
/// `tabular_softmax_policy` through exactly these members; `sequence_policy<M>` makes any
/// `SequenceModel` one.
template <class P>
concept DifferentiablePolicy = Policy<P> && has_parameters<P> && has_log_prob_gradient<P>;

// ---------------------------------------------------------------------------------------------
// Reward and preference models
// ---------------------------------------------------------------------------------------------

/// `m.reward(batch, out)`: writes `out[i] = r(x_i, y_i)`.
template <class R>
concept has_reward = has_batch_type<R> &&
    requires(const R& r, const typename R::batch_type& batch, Eigen::Ref<vector_d> out) {
  { r.reward(batch, out) } -> std::same_as<void>;
};

/// A scalar reward model r(x, y).
///
/// Required: `batch_type`; `void reward(const batch_type&, Eigen::Ref<vector_d> out) const`.
/// Optional (tabular): `num_contexts()`, `num_actions()`, `rewards(context, out)`.
/// Accepted by: `bradley_terry_preference<R>` (a `PreferenceModel` from it), `rewards()` (tabular
/// ones), `expected_reward` (over `sequence_batch`, `sequence/evaluation.hpp`). The tabular
/// RLHF-PPO solver does not take one: it fits its own Bradley-Terry reward table to pairs labelled
/// by its `preference_game`.
template <class R>
concept RewardModel = has_batch_type<R> && has_reward<R>;

/// `r.accumulate_reward_gradient(batch, weights, gradient)`:
/// `gradient += sum_i weights[i] * d r(x_i, y_i) / d theta`.
template <class R>
concept has_reward_gradient = has_batch_type<R> && has_parameters<R> &&
    requires(const R& r, const typename R::batch_type& batch, Eigen::Ref<const vector_d> weights,
             Eigen::Ref<vector_t<typename R::scalar_type>> gradient) {
  { r.accumulate_reward_gradient(batch, weights, gradient) } -> std::same_as<void>;
};

/// A reward model with trainable parameters theta and the gradient of its rewards: what reward
/// modelling fits (`solvers/reward_modeling.hpp`, Bradley-Terry on preference pairs).
///
/// Required: `RewardModel`; `scalar_type`; `index num_parameters() const`; `parameters()` (mutable
/// and const flat views of theta, length `num_parameters()`);
/// `void accumulate_reward_gradient(const batch_type&, Eigen::Ref<const vector_d> weights,
/// Eigen::Ref<vector_t<scalar_type>> gradient) const`: `gradient += sum_i weights[i] d r_i /
/// d theta` (`weights` `[batch.size()]`, e.g. the Bradley-Terry loss's `dL/dr_i`). Self-contained:
/// it may recompute the forward. Accepted by: `reward_modeling`; as a `RewardModel`, by RLHF-PPO.
template <class R>
concept DifferentiableRewardModel = RewardModel<R> && has_parameters<R> && has_reward_gradient<R>;

/// `m.preference(pairs, out)`: writes `out[i] = P(first_i > second_i | x_i)`.
template <class M>
concept has_preference = has_batch_type<M> &&
    requires(const M& m, const pair_batch<typename M::batch_type>& pairs,
             Eigen::Ref<vector_d> out) {
  { m.preference(pairs, out) } -> std::same_as<void>;
};

/// A preference model P(y > y' | x) (a pairwise judge; possibly intransitive).
///
/// Required: `batch_type`;
/// `void preference(const pair_batch<batch_type>&, Eigen::Ref<vector_d> out) const`.
/// Laws: `P(y > y') + P(y' > y) = 1`, `P(y > y) = 1/2`, values in [0, 1].
/// Accepted by: `preference_matrix()` (tabular ones, below) and the sequence `win_rate`
/// (`sequence/evaluation.hpp`, a judge over `sequence_batch`). The Nash solvers (Nash-MD, OMD,
/// INPO, ONPO) do not take one: they solve a `preference_game`, built from preference matrices.
template <class M>
concept PreferenceModel = has_batch_type<M> && has_preference<M>;

/// A preference model over a finite table (the games of `games/` are built from one).
///
/// Required: `PreferenceModel` with `batch_type = tabular_batch`; `num_contexts()`,
/// `num_actions()`. Optional: `preference_matrix(context, Eigen::Ref<matrix_d> out)` (derived from
/// `preference` over all pairs when absent). Accepted by: `preference_matrix(m, context, out)`
/// and `tabular_preference_problem<M>` (`games/tabular_preference_problem.hpp`: the model with a
/// reference and `tau`, a `TabularPreferenceProblem` that every tabular Nash solver takes).
template <class M>
concept TabularPreferenceModel =
    PreferenceModel<M> && std::same_as<typename M::batch_type, tabular_batch> && has_table_shape<M>;

/// What a tabular Nash solver (Nash-MD, OMD / INPO, self-play MWU, ONPO) reads from its problem:
/// the table's shape, the KL weight `tau`, the reference's log-probabilities `[contexts, n]` and
/// one `n x n` preference matrix per context, `P[x](i, j) = P(y_i > y_j | x)` (a matrix the
/// problem keeps: the solvers read it at every step).
///
/// Required: `num_contexts()`, `num_actions()`, `tau()`, `const row_matrix_d& log_reference()`,
/// `const matrix_d& preference(context)`. Modelled by `preference_game` and by
/// `tabular_preference_problem<M>` for any `TabularPreferenceModel M`. Accepted by: the tabular
/// Nash solvers (`solvers/nash/`).
template <class G>
concept TabularPreferenceProblem = requires(const G& g, index_t context) {
  { g.num_contexts() } -> std::convertible_to<index_t>;
  { g.num_actions() } -> std::convertible_to<index_t>;
  { g.tau() } -> std::convertible_to<double>;
  { g.log_reference() } -> std::same_as<const row_matrix_d&>;
  { g.preference(context) } -> std::same_as<const matrix_d&>;
};

// ---------------------------------------------------------------------------------------------
// Sequence models (autoregressive language models brought by the user)
// ---------------------------------------------------------------------------------------------

/// `m.vocab_size()` and `m.eos()`: the number of token ids V (ids are `[0, V)`, eos included) and
/// the end-of-sequence id.
template <class M>
concept has_vocabulary = requires(const M& m) {
  { m.vocab_size() } -> std::convertible_to<index_t>;
  { m.eos() } -> std::convertible_to<token_id>;
};

/// `scalar_type` is `float` or `double`: the type of the parameters, logits and hidden states.
template <class M>
concept has_floating_scalar = requires {
  typename M::scalar_type;
}
&&(std::same_as<typename M::scalar_type, float> || std::same_as<typename M::scalar_type, double>);

/// `m.logits(batch, out)`: teacher-forced logits of every response position, `out` row-major
/// `[batch.responses.total_length(), V]`.
template <class M>
concept has_teacher_forced_logits = has_floating_scalar<M> &&
    requires(const M& m, const sequence_batch& batch,
             Eigen::Ref<row_matrix_t<typename M::scalar_type>> out) {
  { m.logits(batch, out) } -> std::same_as<void>;
};

/// `m.accumulate_logits_gradient(batch, dlogits, gradient)`: `gradient += (dL/dlogits) .
/// dlogits/dtheta`.
template <class M>
concept has_logits_gradient = has_floating_scalar<M> &&
    requires(const M& m, const sequence_batch& batch,
             Eigen::Ref<const row_matrix_t<typename M::scalar_type>> dlogits,
             Eigen::Ref<vector_t<typename M::scalar_type>> gradient) {
  { m.accumulate_logits_gradient(batch, dlogits, gradient) } -> std::same_as<void>;
};

/// `decode_state`, `start_decoding(prompts)`, `next_logits(state, live, out)`,
/// `append(state, live, tokens)`: incremental decoding.
template <class M>
concept has_decoding = has_floating_scalar<M> && requires {
  typename M::decode_state;
} && requires(const M& m, ragged_view<const token_id> prompts, typename M::decode_state& state,
              std::span<const index_t> live, Eigen::Ref<row_matrix_t<typename M::scalar_type>> out,
              std::span<const token_id> tokens) {
  { m.start_decoding(prompts) } -> std::same_as<typename M::decode_state>;
  { m.next_logits(state, live, out) } -> std::same_as<void>;
  { m.append(state, live, tokens) } -> std::same_as<void>;
};

/// An autoregressive language model over a vocabulary of V token ids: what a user writes so that
/// the library can score, differentiate and sample it (DESIGN.md §9). The library derives
/// everything else (`sequence/derived.hpp`: per-token and sequence log-probs, entropies, exact KL
/// to another model and the k1/k2/k3 estimators, each with its gradient into the parameters;
/// `sequence/generation.hpp`: sampling, the Nash-MD geometric mixture; `sequence_policy` makes
/// the model a `DifferentiablePolicy` over `sequence_batch`).
///
/// Required (`T = scalar_type`, float or double):
/// - `index_t vocab_size() const` (V), `token_id eos() const` (in `[0, V)`);
/// - `index num_parameters() const`; `parameters()`, mutable and const, flat views of theta
///   convertible to `Eigen::Ref<vector_t<T>>` / `Eigen::Ref<const vector_t<T>>`;
/// - `void logits(const sequence_batch& batch, Eigen::Ref<row_matrix_t<T>> out) const`: teacher
///   forcing. Row `(responses.offsets[i] - responses.offsets[0]) + t` of `out` (row-major
///   `[responses.total_length(), V]`) gets the logits of the distribution of `responses[i][t]`
///   given `prompts[i]` followed by `responses[i][0 .. t)`. Rows of one sequence must not depend
///   on the other sequences of the batch (the library splits batches into chunks of positions).
/// - `void accumulate_logits_gradient(const sequence_batch& batch, Eigen::Ref<const
///   row_matrix_t<T>> dlogits, Eigen::Ref<vector_t<T>> gradient) const`: given `dL/dlogits` laid
///   out like `logits`' output, `gradient += dL/dtheta`. Self-contained: it may recompute the
///   forward (the library does not promise to call `logits` on the same batch first).
/// - incremental decoding: a movable `decode_state` type;
///   `decode_state start_decoding(ragged_view<const token_id> prompts) const` (sequence `j` of
///   the decoding batch starts with `prompts[j]`);
///   `void next_logits(decode_state&, std::span<const index> live, Eigen::Ref<row_matrix_t<T>>
///   out) const`: row `r` of `out` (`[live.size(), V]`) gets the next-token logits of sequence
///   `live[r]` (increasing ids of still-running sequences);
///   `void append(decode_state&, std::span<const index> live, std::span<const token_id> tokens)
///   const`: sequence `live[r]` continues with `tokens[r]`. The model may recompute from the
///   tokens or keep a cache; tokens that end a sequence (eos, length limit) are not appended.
///   Next-token logits must equal the teacher-forced logits of the same context (up to rounding)
///   and not depend on which other sequences are live.
///
/// Optional: `index min_prompt_length() const` (generation and scoring reject shorter prompts),
/// and the linear head of `LinearHeadSequenceModel` (fused path: never builds `[T, V]`).
/// Not supported: vocabularies that change between calls, logits that depend on anything but the
/// parameters and the tokens (dropout must be off or seeded by the model itself).
/// Accepted by: `sequence/derived.hpp`, `sequence/generation.hpp`, `sequence/evaluation.hpp`,
/// `sequence_policy`, `make_sequence_problem` (`solvers/common/sequence_problem.hpp`).
template <class M>
concept SequenceModel = has_vocabulary<M> && has_floating_scalar<M> && has_parameters<M> &&
    has_teacher_forced_logits<M> && has_logits_gradient<M> && has_decoding<M>;

/// `hidden_size()`, `hidden_states(batch, out)`, `accumulate_hidden_gradient(batch, dhidden,
/// gradient)` and `output_weight_offset()`: the last hidden states and the linear output head.
template <class M>
concept has_linear_head = has_floating_scalar<M> &&
    requires(const M& m, const sequence_batch& batch,
             Eigen::Ref<row_matrix_t<typename M::scalar_type>> hidden,
             Eigen::Ref<const row_matrix_t<typename M::scalar_type>> dhidden,
             Eigen::Ref<vector_t<typename M::scalar_type>> gradient) {
  { m.hidden_size() } -> std::convertible_to<index_t>;
  { m.hidden_states(batch, hidden) } -> std::same_as<void>;
  { m.accumulate_hidden_gradient(batch, dhidden, gradient) } -> std::same_as<void>;
  { m.output_weight_offset() } -> std::convertible_to<index_t>;
};

/// A `SequenceModel` whose logits are `z = W h + b`, with `h` its last hidden state: the library
/// then computes log-probs and entropies (and their gradients) through the fused linear kernel
/// (`kernels/linear_log_probs.hpp`) and never builds `[T, V]` logits (16k positions x 128k
/// vocabulary in float would be 8 GB).
///
/// Required (`D = hidden_size()`):
/// - `void hidden_states(const sequence_batch&, Eigen::Ref<row_matrix_t<T>> out) const`: rows laid
///   out like `logits`' (`[responses.total_length(), D]`);
/// - `index output_weight_offset() const`: `W` (row-major `[V, D]`) is
///   `parameters()[offset, offset + V D)` (a tied embedding is fine: its gradient lands there);
/// - `void accumulate_hidden_gradient(const sequence_batch&, Eigen::Ref<const row_matrix_t<T>>
///   dhidden, Eigen::Ref<vector_t<T>> gradient) const`: `gradient += dL/dtheta` through `h` only
///   (the library adds the head's `dW`, `db` itself).
/// Optional: `index output_bias_offset() const`: `b` (`[V]`) is `parameters()[offset, offset + V)`.
/// `logits` stays required (exact KL needs both models' logits; it is computed chunk by chunk).
template <class M>
concept LinearHeadSequenceModel = SequenceModel<M> && has_linear_head<M>;

// ---------------------------------------------------------------------------------------------
// Value models (PPO critics over sequences)
// ---------------------------------------------------------------------------------------------

/// `v.values(batch, out)`: one value per response position, laid out like `SequenceModel::logits`
/// rows.
template <class V>
concept has_values = requires(const V& v, const sequence_batch& batch, Eigen::Ref<vector_d> out) {
  { v.values(batch, out) } -> std::same_as<void>;
};

/// `v.accumulate_value_gradient(batch, dvalues, gradient)`:
/// `gradient += sum_k dvalues[k] d V_k / d theta`.
template <class V>
concept has_value_gradient = has_parameters<V> &&
    requires(const V& v, const sequence_batch& batch, Eigen::Ref<const vector_d> dvalues,
             Eigen::Ref<vector_t<typename V::scalar_type>> gradient) {
  { v.accumulate_value_gradient(batch, dvalues, gradient) } -> std::same_as<void>;
};

/// A critic for PPO over token sequences: the value `V(x, y_<t)` of the state before each response
/// token (ALGORITHMS.md §2.3; GAE needs one value per generated token).
///
/// Required (`T = scalar_type`, any floating type):
/// - `index num_parameters() const`; `parameters()`, mutable and const flat views of theta;
/// - `void values(const sequence_batch& batch, Eigen::Ref<vector_d> out) const`: `out` has
///   `batch.responses.total_length()` entries and entry
///   `(responses.offsets[i] - responses.offsets[0]) + t` gets `V(prompts[i], responses[i][0 ..
///   t))`, the value of the state before `responses[i][t]` is emitted (the layout of
///   `SequenceModel::logits` rows). Values of one sequence must not depend on the other sequences.
/// - `void accumulate_value_gradient(const sequence_batch& batch, Eigen::Ref<const vector_d>
///   dvalues, Eigen::Ref<vector_t<T>> gradient) const`: `gradient += sum_k dvalues[k] d V_k / d
///   theta` (`dvalues` laid out like `values`' output). Self-contained: it may recompute the
///   forward.
/// A policy with a value head models it by exposing that head as a separate object (the two
/// parameter vectors are optimised separately, as in TRL's PPO trainer).
/// Accepted by: `ppo_trainer` (`solvers/ppo_trainer.hpp`).
template <class V>
concept ValueModel = has_parameters<V> && has_values<V> && has_value_gradient<V>;

// ---------------------------------------------------------------------------------------------
// Solvers
// ---------------------------------------------------------------------------------------------

/// `s.init(problem)`: creates the per-run state (hyperparameters stay in the solver object).
template <class S, class Problem>
concept has_init = requires(const S& s, const Problem& problem) {
  { s.init(problem) } -> std::movable;
};

/// The state type a solver creates for a problem.
template <class S, class Problem>
requires has_init<S, Problem>
using solver_state_t =
    std::remove_cvref_t<decltype(std::declval<const S&>().init(std::declval<const Problem&>()))>;

/// `s.step(problem, state)`: advances one iteration and returns that step's statistics.
template <class S, class Problem>
concept has_step = has_init<S, Problem> &&
    requires(const S& s, const Problem& problem, solver_state_t<S, Problem>& state) {
  {s.step(problem, state)};
};

/// An iterative solver of `Problem`, advanced one step at a time by `run(...)`.
///
/// Required: `state init(const Problem&) const`; `step_stats step(const Problem&, state&) const`.
/// Accepted by: `run`, `run_from` (`prefopt-arena` runs the shipped solvers by name only).
/// Solvers never print; they are deterministic given their seed. Optional state accessors used by
/// the diagnostics and callbacks: `state.policy()` (current iterate), `state.average_policy()`.
template <class S, class Problem>
concept Solver = has_init<S, Problem> && has_step<S, Problem>;

// ---------------------------------------------------------------------------------------------
// Readable conformance failures
// ---------------------------------------------------------------------------------------------
//
// Call these at an entry point that takes a user type: a type that does not model the concept
// fails with one sentence per missing member instead of a wall of substitution failures.

template <class P>
constexpr bool check_policy() {
  static_assert(has_batch_type<P>,
                "prefopt::Policy: the type must declare `batch_type` (the batch it scores, e.g. "
                "prefopt::tabular_batch): see README#concepts");
  static_assert(has_log_prob<P>,
                "prefopt::Policy: the type must provide `void log_prob(const batch_type&, "
                "Eigen::Ref<prefopt::vector_d> out) const`: see README#concepts");
  return true;
}

template <class P>
constexpr bool check_tabular_policy() {
  check_policy<P>();
  static_assert(!has_batch_type<P> || batch_type_is<P, tabular_batch>,
                "prefopt::TabularPolicy: `batch_type` must be prefopt::tabular_batch");
  static_assert(has_table_shape<P>,
                "prefopt::TabularPolicy: the type must provide `num_contexts()` and "
                "`num_actions()`: see README#concepts");
  static_assert(
      has_probabilities<P>,
      "prefopt::TabularPolicy: the type must provide `void probabilities(index_t context, "
      "Eigen::Ref<prefopt::vector_d> out) const`: see README#concepts");
  return true;
}

template <class P>
constexpr bool check_differentiable_policy() {
  check_policy<P>();
  static_assert(has_parameters<P>,
                "prefopt::DifferentiablePolicy: the type must declare `scalar_type` and provide "
                "`num_parameters()` and `parameters()` (mutable and const): see README#concepts");
  static_assert(has_log_prob_gradient<P>,
                "prefopt::DifferentiablePolicy: the type must provide `void "
                "accumulate_log_prob_gradient(const batch_type&, Eigen::Ref<const "
                "prefopt::vector_d> weights, Eigen::Ref<vector_t<scalar_type>> gradient) const`: "
                "see README#concepts");
  return true;
}

template <class R>
constexpr bool check_reward_model() {
  static_assert(has_batch_type<R>,
                "prefopt::RewardModel: the type must declare `batch_type`: see README#concepts");
  static_assert(has_reward<R>,
                "prefopt::RewardModel: the type must provide `void reward(const batch_type&, "
                "Eigen::Ref<prefopt::vector_d> out) const`: see README#concepts");
  return true;
}

template <class R>
constexpr bool check_differentiable_reward_model() {
  check_reward_model<R>();
  static_assert(has_parameters<R>,
                "prefopt::DifferentiableRewardModel: the type must declare `scalar_type` and "
                "provide `num_parameters()` and `parameters()` (mutable and const): see "
                "README#concepts");
  static_assert(has_reward_gradient<R>,
                "prefopt::DifferentiableRewardModel: the type must provide `void "
                "accumulate_reward_gradient(const batch_type&, Eigen::Ref<const prefopt::vector_d> "
                "weights, Eigen::Ref<vector_t<scalar_type>> gradient) const`: see README#concepts");
  return true;
}

template <class M>
constexpr bool check_preference_model() {
  static_assert(has_batch_type<M>,
                "prefopt::PreferenceModel: the type must declare `batch_type`: see "
                "README#concepts");
  static_assert(has_preference<M>,
                "prefopt::PreferenceModel: the type must provide `void preference(const "
                "prefopt::pair_batch<batch_type>&, Eigen::Ref<prefopt::vector_d> out) const`: see "
                "README#concepts");
  return true;
}

template <class M>
constexpr bool check_tabular_preference_model() {
  check_preference_model<M>();
  static_assert(!has_batch_type<M> || batch_type_is<M, tabular_batch>,
                "prefopt::TabularPreferenceModel: `batch_type` must be prefopt::tabular_batch");
  static_assert(has_table_shape<M>,
                "prefopt::TabularPreferenceModel: the type must provide `num_contexts()` and "
                "`num_actions()`: see README#concepts");
  return true;
}

template <class M>
constexpr bool check_sequence_model() {
  static_assert(has_vocabulary<M>,
                "prefopt::SequenceModel: the type must provide `index_t vocab_size() const` and "
                "`token_id eos() const`: see README#concepts");
  static_assert(has_floating_scalar<M>,
                "prefopt::SequenceModel: the type must declare `scalar_type` as float or double: "
                "see README#concepts");
  static_assert(has_parameters<M>,
                "prefopt::SequenceModel: the type must provide `num_parameters()` and "
                "`parameters()` (mutable and const flat views): see README#concepts");
  static_assert(has_teacher_forced_logits<M>,
                "prefopt::SequenceModel: the type must provide `void logits(const "
                "prefopt::sequence_batch&, Eigen::Ref<prefopt::row_matrix_t<scalar_type>> out) "
                "const`: see README#concepts");
  static_assert(has_logits_gradient<M>,
                "prefopt::SequenceModel: the type must provide `void "
                "accumulate_logits_gradient(const prefopt::sequence_batch&, Eigen::Ref<const "
                "prefopt::row_matrix_t<scalar_type>> dlogits, "
                "Eigen::Ref<prefopt::vector_t<scalar_type>> gradient) const`: see README#concepts");
  static_assert(has_decoding<M>,
                "prefopt::SequenceModel: the type must declare `decode_state` and provide "
                "`decode_state start_decoding(prefopt::ragged_view<const prefopt::token_id>) "
                "const`, `void next_logits(decode_state&, std::span<const prefopt::index_t> live, "
                "Eigen::Ref<prefopt::row_matrix_t<scalar_type>> out) const` and `void "
                "append(decode_state&, std::span<const prefopt::index_t> live, std::span<const "
                "prefopt::token_id> tokens) const`: see README#concepts");
  return true;
}

template <class M>
constexpr bool check_linear_head_sequence_model() {
  check_sequence_model<M>();
  static_assert(has_linear_head<M>,
                "prefopt::LinearHeadSequenceModel: the type must provide `index_t hidden_size() "
                "const`, `void hidden_states(const prefopt::sequence_batch&, "
                "Eigen::Ref<prefopt::row_matrix_t<scalar_type>> out) const`, `void "
                "accumulate_hidden_gradient(const prefopt::sequence_batch&, Eigen::Ref<const "
                "prefopt::row_matrix_t<scalar_type>> dhidden, "
                "Eigen::Ref<prefopt::vector_t<scalar_type>> gradient) const` and `index_t "
                "output_weight_offset() const`: see README#concepts");
  return true;
}

template <class V>
constexpr bool check_value_model() {
  static_assert(has_parameters<V>,
                "prefopt::ValueModel: the type must declare `scalar_type` and provide "
                "`num_parameters()` and `parameters()` (mutable and const): see README#concepts");
  static_assert(has_values<V>,
                "prefopt::ValueModel: the type must provide `void values(const "
                "prefopt::sequence_batch&, Eigen::Ref<prefopt::vector_d> out) const`: see "
                "README#concepts");
  static_assert(has_value_gradient<V>,
                "prefopt::ValueModel: the type must provide `void accumulate_value_gradient(const "
                "prefopt::sequence_batch&, Eigen::Ref<const prefopt::vector_d> dvalues, "
                "Eigen::Ref<vector_t<scalar_type>> gradient) const`: see README#concepts");
  return true;
}

template <class S, class Problem>
constexpr bool check_solver() {
  static_assert(has_init<S, Problem>,
                "prefopt::Solver: the solver must provide `state init(const Problem&) const` "
                "returning a movable state: see README#concepts");
  static_assert(!has_init<S, Problem> || has_step<S, Problem>,
                "prefopt::Solver: the solver must provide `step_stats step(const Problem&, "
                "state&) const`: see README#concepts");
  return true;
}

}  // namespace prefopt
