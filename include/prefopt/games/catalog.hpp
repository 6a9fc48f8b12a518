#pragma once
/// \file
/// The catalog of test games of ALGORITHMS.md §9.4, each built from its definition (dice faces,
/// voter rankings, rater types, rewards), never from a hard-coded answer:
///
/// | function                          | P                                                  | known
/// `tau = 0` equilibrium |
/// |-----------------------------------|----------------------------------------------------|-----------------------------|
/// | `efron_dice_game`                 | dice {2,4,9}, {1,6,8}, {3,5,7}: cyclic, 5/9        |
/// uniform                     | | `rock_paper_scissors_game`        |
/// `[[1/2,1,0],[0,1/2,1],[1,0,1/2]]`                  | uniform                     | |
/// `biased_rock_paper_scissors_game` | cyclic with win probabilities `p01, p12, p20`      | `pi ∝
/// (b, c, a)` (§9.3)     | | `epsilon_population_game`         | three rater types (Nash-MD
/// Sec. 3.2)               | `(1/3+e/2, 1/3+e/2, 1/3-e)` | | `condorcet_voters_game`           |
/// `n` voters with cyclically shifted rankings        | uniform                     | |
/// `random_intransitive_game`        | strict lower triangle `U(0,1)` (EGPO), seeded      | — | |
/// `bradley_terry_game`              | `sigma(r_i - r_j)` (transitive)                    | `argmax
/// r` (Condorcet winner) | | `mixture_game`                    | contexts of several games, weights
/// `rho`           | per context                 |
///
/// Every function takes the reference `mu` (default uniform) and `tau` (default 0). Action order of
/// rock-paper-scissors: action `i` beats action `i + 1 (mod 3)`.
/// Sources: Nash Learning from Human Feedback (Munos et al., arXiv 2312.00886) App. C.1, C.2 and
/// Sec. 3.2; Extragradient Preference Optimization (arXiv 2503.08942), `gen_preference_matrix`.

#include <Eigen/Core>

#include <array>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "prefopt/core/assert.hpp"
#include "prefopt/core/math.hpp"
#include "prefopt/core/random.hpp"
#include "prefopt/core/types.hpp"
#include "prefopt/games/preference_game.hpp"
#include "prefopt/models/preference/bradley_terry.hpp"
#include "prefopt/models/reward/tabular.hpp"

namespace prefopt {

namespace detail {
inline vector_d reference_or_uniform(const vector_d& mu, index_t n) {
  return mu.size() == 0 ? preference_game::uniform(n) : mu;
}
}  // namespace detail

/// `P(i, j)` = probability that die `i` shows a higher face than die `j` (faces uniform,
/// independent; ties count 1/2). `dice[i]` lists die `i`'s faces.
inline matrix_d dice_preference_matrix(const std::vector<std::vector<int>>& dice) {
  const auto n = static_cast<index_t>(dice.size());
  PREFOPT_CHECK(n > 0, shape_error, "dice_preference_matrix: dice is empty");
  matrix_d p(n, n);
  for (index_t i = 0; i < n; ++i) {
    for (index_t j = 0; j < n; ++j) {
      const auto& a = dice[static_cast<std::size_t>(i)];
      const auto& b = dice[static_cast<std::size_t>(j)];
      PREFOPT_CHECK(!a.empty() && !b.empty(), invalid_argument, "dice_preference_matrix: die ",
                    a.empty() ? i : j, " has no faces");
      double wins = 0.0;
      for (int fa : a) {
        for (int fb : b) wins += fa > fb ? 1.0 : (fa == fb ? 0.5 : 0.0);
      }
      p(i, j) = i == j ? 0.5 : wins / static_cast<double>(a.size() * b.size());
    }
  }
  return p;
}

/// Efron-type intransitive dice {2,4,9}, {1,6,8}, {3,5,7} (Nash-MD App. C.1): die 0 beats die 1,
/// 1 beats 2 and 2 beats 0, each with probability 5/9.
inline preference_game efron_dice_game(const vector_d& mu = {}, double tau = 0.0) {
  matrix_d p = dice_preference_matrix({{2, 4, 9}, {1, 6, 8}, {3, 5, 7}});
  return {std::move(p), detail::reference_or_uniform(mu, 3), tau};
}

/// Cyclic 3-action game: `P(0 > 1) = p01`, `P(1 > 2) = p12`, `P(2 > 0) = p20` (each in [0, 1]).
/// With `a = p01 - 1/2`, `b = p12 - 1/2`, `c = p20 - 1/2` of one strict sign the unique
/// `tau = 0` equilibrium is `pi ∝ (b, c, a)` (ALGORITHMS.md §9.3).
inline preference_game biased_rock_paper_scissors_game(double p01, double p12, double p20,
                                                       const vector_d& mu = {}, double tau = 0.0) {
  matrix_d p(3, 3);
  p << 0.5, p01, 1.0 - p20,  //
      1.0 - p01, 0.5, p12,   //
      p20, 1.0 - p12, 0.5;
  return {std::move(p), detail::reference_or_uniform(mu, 3), tau};
}

/// Rock-paper-scissors, `P = [[1/2, 1, 0], [0, 1/2, 1], [1, 0, 1/2]]`.
inline preference_game rock_paper_scissors_game(const vector_d& mu = {}, double tau = 0.0) {
  return biased_rock_paper_scissors_game(1.0, 1.0, 1.0, mu, tau);
}

/// `P(i, j)` of one voter with a strict ranking (`ranking[0]` most preferred): 1 if `i` is ranked
/// above `j`, 0 below, 1/2 on the diagonal.
inline matrix_d ranking_preference_matrix(const std::vector<index_t>& ranking) {
  const auto n = static_cast<index_t>(ranking.size());
  vector_d position = vector_d::Constant(n, -1.0);
  for (index_t k = 0; k < n; ++k) {
    const index_t a = ranking[static_cast<std::size_t>(k)];
    PREFOPT_CHECK(a >= 0 && a < n && position[a] < 0.0, invalid_argument,
                  "ranking_preference_matrix: ranking[", k, "] = ", a,
                  ", expected a permutation of 0..", n - 1);
    position[a] = static_cast<double>(k);
  }
  matrix_d p(n, n);
  for (index_t i = 0; i < n; ++i) {
    for (index_t j = 0; j < n; ++j) {
      p(i, j) = i == j ? 0.5 : (position[i] < position[j] ? 1.0 : 0.0);
    }
  }
  return p;
}

/// The population preference `sum_k w_k P_k` of rater types with preference matrices `P_k` and
/// masses `w_k` (non-negative, summing to 1).
inline matrix_d population_preference_matrix(const std::vector<matrix_d>& types,
                                             const vector_d& masses) {
  PREFOPT_CHECK(!types.empty() && masses.size() == static_cast<index_t>(types.size()), shape_error,
                "population_preference_matrix: ", types.size(), " rater types but ", masses.size(),
                " masses, expected one mass per type (at least one)");
  matrix_d p = matrix_d::Zero(types.front().rows(), types.front().cols());
  for (std::size_t k = 0; k < types.size(); ++k) {
    const double w = masses[static_cast<index_t>(k)];
    PREFOPT_CHECK(w >= 0.0, invalid_argument, "population_preference_matrix: masses[", k, "] = ", w,
                  ", expected >= 0");
    PREFOPT_CHECK(types[k].rows() == p.rows() && types[k].cols() == p.cols(), shape_error,
                  "population_preference_matrix: types[", k, "] is ", types[k].rows(), "x",
                  types[k].cols(), ", expected ", p.rows(), "x", p.cols());
    p += w * types[k];
  }
  return p;
}

/// Condorcet voters (Nash-MD App. C.2): `n` equally weighted voters, voter `k` ranks
/// `k > k+1 > ... > k-1 (mod n)`. For `n = 3` (A>B>C, B>C>A, C>A>B) each cyclic preference is 2/3;
/// the equilibrium is uniform for every `n >= 2` (P is circulant). The voters are summed one at a
/// time (`sum_k P_k / n`, as `population_preference_matrix` would): memory `O(n^2)`, time
/// `O(n^3)`.
inline preference_game condorcet_voters_game(index_t n = 3, const vector_d& mu = {},
                                             double tau = 0.0) {
  PREFOPT_CHECK(n >= 2, invalid_argument, "condorcet_voters_game: n = ", n, ", expected n >= 2");
  const vector_d masses = preference_game::uniform(n);
  matrix_d p = matrix_d::Zero(n, n);
  std::vector<index_t> ranking(static_cast<std::size_t>(n));
  for (index_t k = 0; k < n; ++k) {
    for (index_t r = 0; r < n; ++r) ranking[static_cast<std::size_t>(r)] = (k + r) % n;
    p += masses[k] * ranking_preference_matrix(ranking);
  }
  return {std::move(p), detail::reference_or_uniform(mu, n), tau};
}

/// The epsilon-population example (Nash-MD Sec. 3.2): rater type 1 (mass 1/3 - eps) prefers
/// y2 > y1; type 2 (mass 1/3 + eps/2) y1 > y3; type 3 (mass 1/3 + eps/2) y3 > y2; every other pair
/// is a tie. Gives `P(y2 > y1) = 2/3 - eps/2`, `P(y1 > y3) = P(y3 > y2) = 2/3 + eps/4` and the
/// equilibrium `(1/3 + eps/2, 1/3 + eps/2, 1/3 - eps)`. Requires `-2/3 <= eps <= 1/3`.
inline preference_game epsilon_population_game(double eps, const vector_d& mu = {},
                                               double tau = 0.0) {
  PREFOPT_CHECK(eps >= -2.0 / 3.0 && eps <= 1.0 / 3.0, invalid_argument,
                "epsilon_population_game: eps = ", eps,
                ", expected -2/3 <= eps <= 1/3 (non-negative rater masses)");
  auto one_preference = [](index_t winner, index_t loser) {
    matrix_d p = matrix_d::Constant(3, 3, 0.5);
    p(winner, loser) = 1.0;
    p(loser, winner) = 0.0;
    return p;
  };
  vector_d masses(3);
  masses << 1.0 / 3.0 - eps, 1.0 / 3.0 + eps / 2.0, 1.0 / 3.0 + eps / 2.0;
  matrix_d p = population_preference_matrix(
      {one_preference(1, 0), one_preference(0, 2), one_preference(2, 1)}, masses);
  return {std::move(p), detail::reference_or_uniform(mu, 3), tau};
}

/// Random intransitive game (EGPO `gen_preference_matrix`): for `i > j`, `P(i, j) ~ U(0, 1)` drawn
/// in row-major order from `rng(seed, stream)`, `P(j, i) = 1 - P(i, j)`, diagonal 1/2.
inline matrix_d random_preference_matrix(index_t n, std::uint64_t seed, std::uint64_t stream = 0) {
  PREFOPT_CHECK(n > 0, invalid_argument, "random_preference_matrix: n = ", n, ", expected n > 0");
  rng gen(seed, stream);
  matrix_d p(n, n);
  for (index_t i = 0; i < n; ++i) {
    p(i, i) = 0.5;
    for (index_t j = 0; j < i; ++j) {
      p(i, j) = gen.uniform();
      p(j, i) = 1.0 - p(i, j);
    }
  }
  return p;
}

/// A random reference `mu = softmax(l)`, `l_i ~ N(0, 1)` (EGPO's reference logits), seeded.
inline vector_d random_reference(index_t n, std::uint64_t seed, std::uint64_t stream = 1) {
  PREFOPT_CHECK(n > 0, invalid_argument, "random_reference: n = ", n, ", expected n > 0");
  rng gen(seed, stream);
  vector_d logits(n);
  for (index_t i = 0; i < n; ++i) logits[i] = gen.normal();
  vector_d mu(n);
  softmax(logits, mu);
  return mu;
}

/// The random intransitive game of size `n` (see `random_preference_matrix`).
inline preference_game random_intransitive_game(index_t n, std::uint64_t seed,
                                                const vector_d& mu = {}, double tau = 0.0) {
  return {random_preference_matrix(n, seed), detail::reference_or_uniform(mu, n), tau};
}

/// Bradley-Terry game `P(i, j) = sigma(r_i - r_j)` (transitive; `argmax r` is a Condorcet winner
/// and the `tau = 0` equilibrium). Built with `bradley_terry_preference` over the reward table.
inline preference_game bradley_terry_game(const vector_d& rewards, const vector_d& mu = {},
                                          double tau = 0.0) {
  const index_t n = rewards.size();
  PREFOPT_CHECK(n > 0, invalid_argument, "bradley_terry_game: rewards is empty");
  bradley_terry_preference bt(tabular_reward_model(row_matrix_d(rewards.transpose())));
  matrix_d p(n, n);
  bt.preference_matrix(0, p);
  return preference_game(std::move(p), detail::reference_or_uniform(mu, n), tau)
      .with_gold_rewards(row_matrix_d(rewards.transpose()));
}

/// A multi-context game: context `k` is the (single- or multi-context) game `games[k]`'s contexts
/// in order, weighted by `weights[k] * rho_k`. All games need the same `n` and the same `tau`;
/// `weights` is non-negative and sums to 1 (empty = uniform over games).
inline preference_game mixture_game(const std::vector<preference_game>& games,
                                    vector_d weights = {}) {
  constexpr const char* fn = "mixture_game";
  PREFOPT_CHECK(!games.empty(), shape_error, fn, ": games is empty");
  const auto k = static_cast<index_t>(games.size());
  if (weights.size() == 0) weights = vector_d::Constant(k, 1.0 / static_cast<double>(k));
  PREFOPT_CHECK(weights.size() == k, shape_error, fn, ": weights has ", weights.size(),
                " entries, expected one per game (", k, ")");
  const index_t n = games.front().num_actions();
  const double tau = games.front().tau();
  index_t contexts = 0;
  bool lengths = true, gold = true;
  for (std::size_t g = 0; g < games.size(); ++g) {
    PREFOPT_CHECK(games[g].num_actions() == n, shape_error, fn, ": games[", g, "] has ",
                  games[g].num_actions(), " responses, expected ", n, " like games[0]");
    PREFOPT_CHECK(games[g].tau() == tau, invalid_argument, fn, ": games[", g,
                  "].tau() = ", games[g].tau(), ", expected ", tau, " like games[0]");
    contexts += games[g].num_contexts();
    lengths = lengths && games[g].has_lengths();
    gold = gold && games[g].has_gold_rewards();
  }
  std::vector<matrix_d> preferences;
  row_matrix_d reference(contexts, n), length_table(contexts, n), gold_table(contexts, n);
  vector_d rho(contexts);
  index_t row = 0;
  for (std::size_t g = 0; g < games.size(); ++g) {
    for (index_t x = 0; x < games[g].num_contexts(); ++x, ++row) {
      preferences.push_back(games[g].preference(x));
      reference.row(row) = games[g].reference().row(x);
      rho[row] = weights[static_cast<index_t>(g)] * games[g].context_weights()[x];
      if (lengths) length_table.row(row) = games[g].lengths().row(x);
      if (gold) gold_table.row(row) = games[g].gold_rewards().row(x);
    }
  }
  preference_game mixed(std::move(preferences), std::move(reference), tau, std::move(rho));
  if (lengths) mixed = mixed.with_lengths(std::move(length_table));
  if (gold) mixed = mixed.with_gold_rewards(std::move(gold_table));
  return mixed;
}

}  // namespace prefopt
