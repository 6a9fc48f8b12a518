#pragma once
/// \file
/// Sampling from a preference game, as the LLM-scale methods see it: a prompt `x ~ rho`, responses
/// from policies, and a Bernoulli preference label `z ~ Bernoulli(P[x](y, y'))` (the oracle of
/// ONPO, arXiv 2502.16852, §3; the labelled pairs of RLHF reward modelling and DPO). Deterministic
/// given the `rng`: one draw for the context, one per response, one for the label.

#include "prefopt/core/customization.hpp"
#include "prefopt/core/random.hpp"
#include "prefopt/games/preference_game.hpp"
#include "prefopt/policies/tabular_softmax.hpp"

namespace prefopt {

/// A labelled comparison: `chosen` was preferred to `rejected` in `context`.
struct labelled_pair {
  index_t context = 0;
  index_t chosen = 0;
  index_t rejected = 0;
};

/// The reference `mu` of `game` as a tabular softmax policy (logits `log mu`).
[[nodiscard]] inline tabular_softmax_policy reference_policy(const preference_game& game) {
  return tabular_softmax_policy(game.log_reference());
}

/// Draws a context from the game's weights `rho`.
[[nodiscard]] inline index_t sample_context(const preference_game& game, rng& gen) {
  return gen.categorical(game.context_weights());
}

/// Draws `x ~ rho`, `y ~ first(.|x)`, `y' ~ second(.|x)` and the label `y > y'` with probability
/// `P[x](y, y')`; returns the pair ordered as (chosen, rejected).
template <TabularPolicy A, TabularPolicy B>
[[nodiscard]] labelled_pair sample_labelled_pair(const preference_game& game, const A& first,
                                                 const B& second, rng& gen) {
  const index_t x = sample_context(game, gen);
  const index_t y = sample(first, x, gen);
  const index_t y_prime = sample(second, x, gen);
  const bool first_wins = gen.bernoulli(game.preference(x)(y, y_prime));
  return first_wins ? labelled_pair{x, y, y_prime} : labelled_pair{x, y_prime, y};
}

}  // namespace prefopt
