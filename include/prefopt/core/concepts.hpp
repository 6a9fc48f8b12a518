#pragma once
/// \file
/// The extension points of prefopt: one C++20 concept per role.
///
/// | concept                  | required members |
/// |--------------------------|---------------------------------------------------------------------|
/// | `Policy`                 | `batch_type`; `log_prob(batch, out)` | | `TabularPolicy`          |
/// `Policy` over `tabular_batch`; `num_contexts()`, `num_actions()`,   | | |
/// `probabilities(context, out)`                                       | | `DifferentiablePolicy`
/// | `Policy`; `scalar_type`; `num_parameters()`, `parameters()`,        | | |
/// `accumulate_log_prob_gradient(batch, weights, gradient)`            | | `RewardModel` |
/// `batch_type`; `reward(batch, out)`                                  | | `PreferenceModel` |
/// `batch_type`; `preference(pairs, out)`                              | | `TabularPreferenceModel`
/// | `PreferenceModel` over `tabular_batch`; `num_contexts()`,           | | | `num_actions()` | |
/// `Solver<S, Problem>`     | `init(problem) -> state`; `step(problem, state) -> step stats`      |
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
/// How token-level models fit. A small autoregressive model scoring token sequences declares
/// `using batch_type = prefopt::sequence_batch;` (ragged prompts and responses of token ids).
/// `log_prob` runs the model over each prompt+response and writes the summed response-token
/// log-probs (the `kernels/` token log-prob kernel computes the per-token terms from logits);
/// `accumulate_log_prob_gradient` back-propagates per-sequence weights (the loss's gradient with
/// respect to each sequence log-prob, e.g. `-beta_dpo sigma(-u)` for DPO) through the kernels'
/// backward into the model's flat `parameters()`, whose `scalar_type` may be float. A reward model
/// or pairwise judge over sequences uses the same `sequence_batch` and
/// `pair_batch<sequence_batch>`. Only `TabularPolicy` / `TabularPreferenceModel` are
/// table-specific; every solver that needs no table (the DPO family, the PPO losses, Nash-MD-PG
/// surrogates) is written against the generic concepts, so the same code serves both.

#include <Eigen/Core>

#include <concepts>
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

/// `p.log_prob(batch, out)`: writes `out[i] = log pi(y_i | x_i)` for every element of the batch.
template <class P>
concept has_log_prob = has_batch_type<P> &&
    requires(const P& p, const typename P::batch_type& batch, Eigen::Ref<vector_d> out) {
  { p.log_prob(batch, out) } -> std::same_as<void>;
};

/// A policy pi(y | x): scores the log-probability of responses given contexts for a batch.
///
/// Required: `batch_type`; `void log_prob(const batch_type&, Eigen::Ref<vector_d> out) const`.
/// Accepted by: every solver (through the refinements below) and the diagnostics.
template <class P>
concept Policy = has_batch_type<P> && has_log_prob<P>;

/// `p.num_contexts()` and `p.num_actions()`: the table's shape.
template <class T>
concept has_table_shape = requires(const T& t) {
  { t.num_contexts() } -> std::convertible_to<index>;
  { t.num_actions() } -> std::convertible_to<index>;
};

/// `p.probabilities(context, out)`: writes the row `pi(. | context)` (length `num_actions()`).
template <class P>
concept has_probabilities = requires(const P& p, index context, Eigen::Ref<vector_d> out) {
  { p.probabilities(context, out) } -> std::same_as<void>;
};

/// A policy over a finite table of contexts x actions (tabular Nash-MD, OMD, RLHF, DPO, HIR).
///
/// Required: `Policy` with `batch_type = tabular_batch`; `num_contexts()`, `num_actions()`;
/// `void probabilities(index context, Eigen::Ref<vector_d> out) const`.
/// Optional: `log_probabilities(context, out)`, `sample(context, rng&) -> index`.
template <class P>
concept TabularPolicy = Policy<P> && std::same_as<typename P::batch_type, tabular_batch> &&
    has_table_shape<P> && has_probabilities<P>;

/// `P::scalar_type`, `num_parameters()`, mutable and const `parameters()` (a flat vector view).
template <class P>
concept has_parameters = requires(P& p, const P& cp) {
  typename P::scalar_type;
  { cp.num_parameters() } -> std::convertible_to<index>;
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
/// chain rule. Accepted by: the DPO family, RLHF-PPO, HIR, the sampled Nash-MD / ONPO losses.
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
/// Accepted by: RLHF-PPO; any preference-model consumer through `bradley_terry_preference`.
template <class R>
concept RewardModel = has_batch_type<R> && has_reward<R>;

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
/// Accepted by: Nash-MD, OMD/INPO, ONPO, self-play (sampled mode), the preference games.
template <class M>
concept PreferenceModel = has_batch_type<M> && has_preference<M>;

/// A preference model over a finite table (the games of `games/` are built from one).
///
/// Required: `PreferenceModel` with `batch_type = tabular_batch`; `num_contexts()`,
/// `num_actions()`. Optional: `preference_matrix(context, Eigen::Ref<matrix_d> out)` (derived from
/// `preference` over all pairs when absent).
template <class M>
concept TabularPreferenceModel =
    PreferenceModel<M> && std::same_as<typename M::batch_type, tabular_batch> && has_table_shape<M>;

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
  static_assert(std::same_as<typename P::batch_type, tabular_batch>,
                "prefopt::TabularPolicy: `batch_type` must be prefopt::tabular_batch");
  static_assert(has_table_shape<P>,
                "prefopt::TabularPolicy: the type must provide `num_contexts()` and "
                "`num_actions()`: see README#concepts");
  static_assert(has_probabilities<P>,
                "prefopt::TabularPolicy: the type must provide `void probabilities(index context, "
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

template <class S, class Problem>
constexpr bool check_solver() {
  static_assert(has_init<S, Problem>,
                "prefopt::Solver: the solver must provide `state init(const Problem&) const` "
                "returning a movable state: see README#concepts");
  static_assert(has_step<S, Problem>,
                "prefopt::Solver: the solver must provide `step_stats step(const Problem&, "
                "state&) const`: see README#concepts");
  return true;
}

}  // namespace prefopt
