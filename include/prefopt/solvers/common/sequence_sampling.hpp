#pragma once
/// \file
/// What the generic token-level trainers share (`solvers/dpo_trainer.hpp`,
/// `solvers/ppo_trainer.hpp`, `solvers/reward_modeling.hpp`): drawing prompts from a pool,
/// gathering sequences of a ragged array, and labelling sampled pairs with a judge. Deterministic
/// given the caller's generator.

#include <Eigen/Core>

#include <cmath>
#include <span>
#include <vector>

#include "prefopt/core/assert.hpp"
#include "prefopt/core/concepts.hpp"
#include "prefopt/core/random.hpp"
#include "prefopt/core/types.hpp"
#include "prefopt/data/preference_dataset.hpp"
#include "prefopt/sequence/generation.hpp"

namespace prefopt::detail {

/// `out` <- the sequences `picks` of `source`, in order (repeats allowed).
template <class T>
void gather_sequences(ragged_view<const T> source, std::span<const index_t> picks,
                      data::ragged_buffer<T>& out) {
  out.clear();
  for (const index_t i : picks) out.push_back(source.sequence(i));
}

/// `n` prompt indices drawn uniformly with replacement from a pool of `pool` prompts.
inline void draw_prompt_indices(rng& gen, index_t pool, index_t n, std::vector<index_t>& out) {
  out.resize(static_cast<std::size_t>(n));
  for (auto& i : out) i = gen.uniform_index(pool);
}

/// Two responses per prompt from `model` (`generation` with `samples_per_prompt = 2`), judged by
/// `judge` (`P(first > second)`) and labelled by one Bernoulli draw each; the labelled pairs are
/// appended to `pairs` in prompt order. `prompt_ids` are the per-response random streams' ids.
template <SequenceModel M, class Judge>
void sample_judged_pairs(const M& model, const Judge& judge, ragged_view<const token_id> prompts,
                         std::span<const index_t> prompt_ids, generation_config generation,
                         rng& gen, data::preference_dataset& pairs) {
  generation.samples_per_prompt = 2;
  const std::uint64_t seed = gen();
  const generation_result drawn = generate(model, prompts, generation, seed, prompt_ids);
  const index_t n = prompts.num_sequences();
  data::ragged_buffer<token_id> x, a, b;
  for (index_t i = 0; i < n; ++i) {
    x.push_back(prompts.sequence(i));
    a.push_back(drawn.responses().sequence(2 * i));
    b.push_back(drawn.responses().sequence(2 * i + 1));
  }
  vector_d p(n);
  judge.preference(pair_batch<sequence_batch>{{x.view(), a.view()}, {x.view(), b.view()}}, p);
  for (index_t i = 0; i < n; ++i) {
    PREFOPT_CHECK(std::isfinite(p(i)) && p(i) >= 0.0 && p(i) <= 1.0, invalid_argument,
                  "sample_judged_pairs: the judge wrote P = ", p(i), " for pair ", i,
                  ", expected a probability in [0, 1]");
    const bool first_wins = gen.bernoulli(p(i));
    pairs.add(x[i], first_wins ? a[i] : b[i], first_wins ? b[i] : a[i]);
  }
}

}  // namespace prefopt::detail
