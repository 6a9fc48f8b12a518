#pragma once
/// \file
/// What the online preference trainers (Nash-MD-PG, ONPO, INPO, HIR) share: drawing a step's
/// prompts from a `sequence_problem`'s pool and deriving independent, reproducible seeds for the
/// step's sampling streams.
///
/// Prompts are drawn uniformly with replacement from the pool with `rng(seed, stream)`, one
/// stream per (step, purpose), so a run is deterministic for a seed and two steps never share a
/// random stream.

#include <cstdint>
#include <span>
#include <vector>

#include "prefopt/core/random.hpp"
#include "prefopt/core/types.hpp"

namespace prefopt::detail {

/// Prompts drawn for one step, owning their storage.
struct drawn_prompts {
  std::vector<index_t> offsets{0};
  std::vector<token_id> tokens;
  std::vector<index_t> pool_index;  ///< [n] the prompt's row in the pool

  [[nodiscard]] ragged_view<const token_id> view() const { return {offsets, tokens}; }
  [[nodiscard]] index_t size() const noexcept { return static_cast<index_t>(pool_index.size()); }
};

/// A seed for (run seed, step, purpose), independent of every other triple.
[[nodiscard]] inline std::uint64_t step_seed(std::uint64_t seed, long step,
                                             std::uint64_t purpose) noexcept {
  std::uint64_t x = seed ^ (0x9e3779b97f4a7c15ULL * (static_cast<std::uint64_t>(step) + 1));
  x ^= 0xbf58476d1ce4e5b9ULL * (purpose + 1);
  return splitmix64(x);
}

/// `count` prompts drawn uniformly with replacement from `pool`.
[[nodiscard]] inline drawn_prompts draw_prompts(ragged_view<const token_id> pool, index_t count,
                                                std::uint64_t seed) {
  drawn_prompts out;
  rng gen(seed, /*stream=*/1);
  const index_t n = pool.num_sequences();
  for (index_t j = 0; j < count; ++j) {
    const index_t i = gen.uniform_index(n);
    const auto x = pool.sequence(i);
    out.tokens.insert(out.tokens.end(), x.begin(), x.end());
    out.offsets.push_back(static_cast<index_t>(out.tokens.size()));
    out.pool_index.push_back(i);
  }
  return out;
}

/// Sum of the per-token values `v` of each response of `offsets` (`[N + 1]`, offsets[0] = 0).
[[nodiscard]] inline vector_d sum_per_sequence(const std::vector<index_t>& offsets,
                                               std::span<const double> v) {
  const index_t n = static_cast<index_t>(offsets.size()) - 1;
  vector_d out = vector_d::Zero(n);
  for (index_t i = 0; i < n; ++i) {
    const auto u = static_cast<std::size_t>(i);
    for (index_t k = offsets[u]; k < offsets[u + 1]; ++k) {
      out(i) += v[static_cast<std::size_t>(k)];
    }
  }
  return out;
}

}  // namespace prefopt::detail
