#pragma once
// Semantic laws every model type must satisfy, checked by shared helpers that each model's tests
// call (DESIGN.md §3): rows sum to 1, P(y > y') + P(y' > y) = 1, P(y > y) = 1/2, finite
// log-probabilities on the support, and agreement between batch and per-context queries.

#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "prefopt/core/concepts.hpp"
#include "prefopt/core/customization.hpp"

namespace prefopt::test {

/// Every context's probabilities are a distribution (non-negative, summing to 1 within `tol`),
/// log-probabilities are finite wherever the probability is positive, and `log_prob` on the batch
/// of all (context, action) pairs agrees with `log_probabilities`.
template <TabularPolicy P>
void check_policy_laws(const P& policy, double tol = 1e-12) {
  const index_t n = policy.num_actions();
  vector_d probs(n), logp(n);
  std::vector<index_t> contexts, actions;
  for (index_t c = 0; c < policy.num_contexts(); ++c) {
    policy.probabilities(c, probs);
    CHECK((probs.array() >= 0.0).all());
    CHECK(std::abs(probs.sum() - 1.0) <= tol);
    log_probabilities(policy, c, logp);
    for (index_t a = 0; a < n; ++a) {
      if (probs[a] > 0.0) {
        CHECK(std::isfinite(logp[a]));
        CHECK(std::abs(std::exp(logp[a]) - probs[a]) <= tol);
      }
      contexts.push_back(c);
      actions.push_back(a);
    }
  }
  vector_d batch_logp(static_cast<index_t>(actions.size()));
  policy.log_prob(tabular_batch{contexts, actions}, batch_logp);
  for (std::size_t i = 0; i < actions.size(); ++i) {
    log_probabilities(policy, contexts[i], logp);
    const double from_batch = batch_logp[static_cast<index_t>(i)], from_row = logp[actions[i]];
    if (std::isinf(from_row)) {
      CHECK(from_batch == from_row);  // zero probability: both -inf
    } else {
      CHECK(std::abs(from_batch - from_row) <= tol);
    }
  }
}

/// Every context's matrix has entries in [0, 1], `P(i, j) + P(j, i) = 1` and `P(i, i) = 1/2` within
/// `tol`, and `preference` on the batch of all ordered pairs agrees with `preference_matrix`.
template <TabularPreferenceModel M>
void check_preference_laws(const M& model, double tol = 1e-12) {
  const index_t n = model.num_actions();
  matrix_d p(n, n);
  for (index_t c = 0; c < model.num_contexts(); ++c) {
    preference_matrix(model, c, p);
    std::vector<index_t> contexts, first, second;
    for (index_t i = 0; i < n; ++i) {
      CHECK(std::abs(p(i, i) - 0.5) <= tol);
      for (index_t j = 0; j < n; ++j) {
        CHECK(p(i, j) >= 0.0);
        CHECK(p(i, j) <= 1.0);
        CHECK(std::abs(p(i, j) + p(j, i) - 1.0) <= tol);
        contexts.push_back(c);
        first.push_back(i);
        second.push_back(j);
      }
    }
    vector_d values(n * n);
    model.preference(pair_batch<tabular_batch>{{contexts, first}, {contexts, second}}, values);
    for (index_t k = 0; k < n * n; ++k) CHECK(std::abs(values[k] - p(k / n, k % n)) <= tol);
  }
}

/// Rewards are finite and `reward` on the batch of all pairs agrees with `rewards(context, .)`.
template <RewardModel R>
requires std::same_as<typename R::batch_type, tabular_batch> && has_table_shape<R>
void check_reward_laws(const R& model) {
  const index_t n = model.num_actions();
  vector_d row(n), batch_values(n);
  std::vector<index_t> actions(static_cast<std::size_t>(n));
  for (index_t a = 0; a < n; ++a) actions[static_cast<std::size_t>(a)] = a;
  for (index_t c = 0; c < model.num_contexts(); ++c) {
    rewards(model, c, row);
    CHECK(row.allFinite());
    std::vector<index_t> contexts(static_cast<std::size_t>(n), c);
    model.reward(tabular_batch{contexts, actions}, batch_values);
    CHECK((batch_values - row).cwiseAbs().maxCoeff() == 0.0);
  }
}

/// Message matcher: the exception's text contains every fragment.
inline Catch::Matchers::StdString::ContainsMatcher contains(const std::string& fragment) {
  return Catch::Matchers::Contains(fragment);
}

}  // namespace prefopt::test
