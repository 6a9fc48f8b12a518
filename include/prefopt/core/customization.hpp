#pragma once
/// \file
/// Derived operations: free functions that call a model's optional member when it has one and
/// derive the result from the required members otherwise. Library code calls these, never the
/// optional members directly, so user types need implement only the required minimum.

#include <Eigen/Core>

#include <numeric>
#include <vector>

#include "prefopt/core/concepts.hpp"

namespace prefopt {

/// Writes `log pi(. | context)` (length `num_actions()`). Uses `p.log_probabilities` when present,
/// else the log of `p.probabilities` (zero probabilities give -inf).
template <TabularPolicy P>
void log_probabilities(const P& p, index_t context, Eigen::Ref<vector_d> out) {
  if constexpr (requires { p.log_probabilities(context, out); }) {
    p.log_probabilities(context, out);
  } else {
    p.probabilities(context, out);
    out = out.array().log().matrix();
  }
}

/// The `[num_contexts(), num_actions()]` table whose row `x` is `pi(. | x)`.
template <TabularPolicy P>
[[nodiscard]] row_matrix_d probability_table(const P& p) {
  row_matrix_d table(p.num_contexts(), p.num_actions());
  vector_d row(p.num_actions());
  for (index_t x = 0; x < table.rows(); ++x) {
    p.probabilities(x, row);
    table.row(x) = row.transpose();
  }
  return table;
}

/// Draws an action from `pi(. | context)`. Uses `p.sample(context, gen)` when present, else the
/// inverse CDF of `p.probabilities` (one draw from `gen`).
template <TabularPolicy P>
index_t sample(const P& p, index_t context, rng& gen) {
  if constexpr (requires {
                  { p.sample(context, gen) } -> std::convertible_to<index_t>;
                }) {
    return p.sample(context, gen);
  } else {
    vector_d probs(p.num_actions());
    p.probabilities(context, probs);
    return gen.categorical(probs);
  }
}

/// Writes the matrix `out(i, j) = P(y_i > y_j | context)` (`num_actions()` square). Uses
/// `m.preference_matrix` when present, else queries `m.preference` on all ordered pairs.
template <TabularPreferenceModel M>
void preference_matrix(const M& m, index_t context, Eigen::Ref<matrix_d> out) {
  if constexpr (requires { m.preference_matrix(context, out); }) {
    m.preference_matrix(context, out);
  } else {
    const index_t n = m.num_actions();
    PREFOPT_CHECK(out.rows() == n && out.cols() == n, shape_error, "preference_matrix: out is ",
                  out.rows(), "x", out.cols(), ", expected ", n, "x", n);
    const auto pairs = static_cast<std::size_t>(n * n);
    std::vector<index_t> contexts(pairs, context), first(pairs), second(pairs);
    for (index_t i = 0; i < n; ++i) {
      for (index_t j = 0; j < n; ++j) {
        first[static_cast<std::size_t>(i * n + j)] = i;
        second[static_cast<std::size_t>(i * n + j)] = j;
      }
    }
    vector_d values(n * n);
    m.preference(pair_batch<tabular_batch>{{contexts, first}, {contexts, second}}, values);
    for (index_t i = 0; i < n; ++i) out.row(i) = values.segment(i * n, n).transpose();
  }
}

/// Writes `out[a] = r(context, a)` for every action of a tabular reward model. Uses `m.rewards`
/// when present, else `m.reward` on the batch of all actions.
template <RewardModel R>
requires std::same_as<typename R::batch_type, tabular_batch> && has_table_shape<R>
void rewards(const R& m, index_t context, Eigen::Ref<vector_d> out) {
  if constexpr (requires { m.rewards(context, out); }) {
    m.rewards(context, out);
  } else {
    const index_t n = m.num_actions();
    std::vector<index_t> contexts(static_cast<std::size_t>(n), context);
    std::vector<index_t> actions(static_cast<std::size_t>(n));
    std::iota(actions.begin(), actions.end(), index_t{0});
    m.reward(tabular_batch{contexts, actions}, out);
  }
}

// Readable rejections: viable only for a type that does not model the concept the function above
// needs; the body is that concept's `check_*` sentences naming the missing members.

template <class P>
requires(!TabularPolicy<P>) void log_probabilities(const P&, index_t, Eigen::Ref<vector_d>) {
  static_assert(check_tabular_policy<P>());
}

template <class P>
requires(!TabularPolicy<P>) void probability_table(const P&) {
  static_assert(check_tabular_policy<P>());
}

template <class P>
requires(!TabularPolicy<P>) void sample(const P&, index_t, rng&) {
  static_assert(check_tabular_policy<P>());
}

template <class M>
requires(!TabularPreferenceModel<M>) void preference_matrix(const M&, index_t,
                                                            Eigen::Ref<matrix_d>) {
  static_assert(check_tabular_preference_model<M>());
}

template <class R>
requires(!(RewardModel<R> && batch_type_is<R, tabular_batch> &&
           has_table_shape<R>)) void rewards(const R&, index_t, Eigen::Ref<vector_d>) {
  static_assert(check_reward_model<R>());
  static_assert(!has_batch_type<R> || batch_type_is<R, tabular_batch>,
                "prefopt::rewards: the reward model's `batch_type` must be prefopt::tabular_batch");
  static_assert(has_table_shape<R>,
                "prefopt::rewards: the reward model must provide `num_contexts()` and "
                "`num_actions()` (a tabular reward model)");
}

}  // namespace prefopt
