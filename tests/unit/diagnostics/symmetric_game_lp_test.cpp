#include "prefopt/diagnostics/symmetric_game_lp.hpp"

#include <catch2/catch.hpp>

#include <Eigen/LU>

#include <cstdint>
#include <random>

#include "prefopt/diagnostics/equilibrium.hpp"
#include "prefopt/games/catalog.hpp"

using namespace prefopt;
using idx = prefopt::index_t;

// Reference games with equilibria known independently of the interior-point solver: found by
// support enumeration, planted by construction, or solved by hand.

namespace {
/// `2 max_y (P pi)_y - 1`, written out.
double gap0(const matrix_d& p, const vector_d& pi) {
  return 2.0 * (p * pi).maxCoeff() - 1.0;
}

/// Every symmetric equilibrium with an odd support, by enumerating all supports `S` (for small
/// `n`): solve `A_SS x = t 1`, `1^T x = 1` and keep solutions with `x >= 0`, `A x <= 1e-12`.
std::vector<vector_d> support_enumeration(const matrix_d& p) {
  const idx n = p.rows();
  const matrix_d a = p.array() - 0.5;
  std::vector<vector_d> found;
  for (std::uint32_t mask = 1; mask < (1u << n); ++mask) {
    std::vector<idx> s;
    for (idx i = 0; i < n; ++i) {
      if (mask & (1u << i)) s.push_back(i);
    }
    const auto k = static_cast<idx>(s.size());
    matrix_d m = matrix_d::Zero(k + 1, k + 1);
    m.topLeftCorner(k, k) = a(s, s);
    m.col(k).head(k).setConstant(-1.0);
    m.row(k).head(k).setConstant(1.0);
    Eigen::FullPivLU<matrix_d> lu(m);
    if (!lu.isInvertible()) continue;
    vector_d b = vector_d::Zero(k + 1);
    b[k] = 1.0;
    const vector_d sol = lu.solve(b);
    vector_d x = vector_d::Zero(n);
    x(s) = sol.head(k);
    if (sol.head(k).minCoeff() > -1e-14 && (a * x).maxCoeff() <= 1e-12) found.push_back(x);
  }
  return found;
}

/// A game whose unique equilibrium is the given `x_star`: on the support `S` of `x_star`,
/// `A_SS = sum_k (u_k v_k^T - v_k u_k^T)` with `u_k, v_k` orthogonal to `x_star` (so
/// `A x_star = 0` there and `A_SS` has the null space `span(x_star)` only); outside it, rows with
/// `(A x_star)_j = -margin < 0`. Entries are scaled into `|A_ij| <= 0.45`. Unique when the support
/// has odd size: an equilibrium `y` has `x_star^T A y = margin y(outside) >= 0` and `A y <= 0`, so
/// `y` lives on the support with `A_SS y = 0`, i.e. `y = x_star`.
matrix_d planted_game(const vector_d& x_star, std::uint64_t seed, double margin = 0.05) {
  const idx n = x_star.size();
  std::mt19937_64 gen(seed);
  std::normal_distribution<double> normal;
  std::vector<idx> s, out;
  for (idx i = 0; i < n; ++i) (x_star[i] > 0.0 ? s : out).push_back(i);
  const auto k = static_cast<idx>(s.size());
  const vector_d xs = x_star(s);
  auto orthogonal = [&]() {
    vector_d u(k);
    for (idx i = 0; i < k; ++i) u[i] = normal(gen);
    return vector_d(u - xs * (xs.dot(u) / xs.squaredNorm()));
  };
  matrix_d block = matrix_d::Zero(k, k);
  for (idx r = 0; r < k; ++r) {
    const vector_d u = orthogonal(), v = orthogonal();
    block += u * v.transpose() - v * u.transpose();
  }
  matrix_d a = matrix_d::Zero(n, n);
  a(s, s) = block;
  const double scale = 0.45 / std::max(1.0, a.cwiseAbs().maxCoeff());
  a *= scale;
  for (const idx j : out) {
    // Row j on S: a random row with A_jS x_S = -margin, kept within the entry bound.
    vector_d row = 0.2 * orthogonal();
    row = row.cwiseMax(-0.3).cwiseMin(0.3);
    row.array() -= (row.dot(xs) + margin) / xs.sum();
    a(j, s) = row.transpose();
    a(s, j) = -row;
  }
  for (std::size_t i = 0; i < out.size(); ++i) {
    for (std::size_t j = i + 1; j < out.size(); ++j) {
      const double v = 0.4 * std::tanh(normal(gen));
      a(out[i], out[j]) = v;
      a(out[j], out[i]) = -v;
    }
  }
  return a.array() + 0.5;
}

vector_d simplex_point(idx n, idx support, std::uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<double> u(0.2, 1.0);
  vector_d x = vector_d::Zero(n);
  for (idx i = 0; i < support; ++i) x[(i * 7) % n] = u(gen);  // spread over the indices
  return x / x.sum();
}
}  // namespace

TEST_CASE("the LP solver reproduces support enumeration on random games with 4 to 9 actions") {
  int compared = 0;
  for (idx n = 4; n <= 9; ++n) {
    for (std::uint64_t seed = 1; seed <= 6; ++seed) {
      const matrix_d p = random_preference_matrix(n, seed);
      const auto expected = support_enumeration(p);
      REQUIRE(!expected.empty());
      const auto got = solve_symmetric_game_lp(p);
      CAPTURE(n, seed);
      REQUIRE(got.converged);
      CHECK(got.gap <= 1e-12);
      CHECK(gap0(p, got.probabilities) <= 1e-12);
      if (expected.size() == 1) {  // generic games: a unique equilibrium
        CHECK((got.probabilities - expected.front()).cwiseAbs().maxCoeff() <= 1e-12);
        ++compared;
      }
    }
  }
  CHECK(compared >= 30);  // the comparison ran on most games, not just the certificate
}

TEST_CASE("the LP solver finds planted equilibria, fully mixed and with dominated actions") {
  // Odd supports: a skew-symmetric block of even order is generically invertible, so a unique
  // equilibrium has an odd support.
  for (const idx n : {5, 13, 41, 301}) {
    for (const idx support : {n, (n / 2) | 1}) {
      const vector_d x_star = simplex_point(n, support, static_cast<std::uint64_t>(n + support));
      const matrix_d p = planted_game(x_star, static_cast<std::uint64_t>(n));
      REQUIRE(gap0(p, x_star) <= 1e-13);  // the construction is right
      const auto got = solve_symmetric_game_lp(p);
      CAPTURE(n, support);
      REQUIRE(got.converged);
      CHECK(got.gap <= 1e-12);
      CHECK((got.probabilities - x_star).cwiseAbs().maxCoeff() <= 1e-10);
    }
  }
}

TEST_CASE("the LP solver: regular tournaments give uniform, a dominated fourth action gets 0") {
  // Cyclic tournament on odd n: i beats i+1..i+(n-1)/2 (mod n). Every action has the same score,
  // so uniform has (P pi)_y = 1/2 for all y.
  for (const idx n : {5, 101}) {
    matrix_d p = matrix_d::Constant(n, n, 0.5);
    for (idx i = 0; i < n; ++i) {
      for (idx d = 1; d <= (n - 1) / 2; ++d) {
        p(i, (i + d) % n) = 1.0;
        p((i + d) % n, i) = 0.0;
      }
    }
    const auto got = solve_symmetric_game_lp(p);
    REQUIRE(got.converged);
    CHECK((got.probabilities.array() - 1.0 / static_cast<double>(n)).abs().maxCoeff() <= 1e-12);
  }
  // Rock-paper-scissors plus an action D that every other action beats w.p. 0.6: by hand, uniform
  // on R, P, S gives (P pi)_D = 0.4 < 1/2, and D has no place in an equilibrium.
  matrix_d p(4, 4);
  p << 0.5, 1.0, 0.0, 0.6,  //
      0.0, 0.5, 1.0, 0.6,   //
      1.0, 0.0, 0.5, 0.6,   //
      0.4, 0.4, 0.4, 0.5;
  const auto got = solve_symmetric_game_lp(p);
  REQUIRE(got.converged);
  CHECK(got.probabilities[3] == Approx(0.0).margin(1e-14));
  for (idx i = 0; i < 3; ++i) CHECK(got.probabilities[i] == Approx(1.0 / 3.0).margin(1e-12));
}

TEST_CASE("the LP solver returns a point of the face when equilibria are not unique") {
  // Rock duplicated (R, R', P, S): the equilibria are (a, 1/3 - a, 1/3, 1/3), a in [0, 1/3].
  matrix_d p(4, 4);
  p << 0.5, 0.5, 1.0, 0.0,  //
      0.5, 0.5, 1.0, 0.0,   //
      0.0, 0.0, 0.5, 1.0,   //
      1.0, 1.0, 0.0, 0.5;
  const auto got = solve_symmetric_game_lp(p);
  REQUIRE(got.converged);
  CHECK(got.gap <= 1e-12);
  CHECK(got.probabilities[0] + got.probabilities[1] == Approx(1.0 / 3.0).margin(1e-10));
  CHECK(got.probabilities[2] == Approx(1.0 / 3.0).margin(1e-10));
  CHECK(got.probabilities[3] == Approx(1.0 / 3.0).margin(1e-10));
  // All ties: every policy is an equilibrium; the start (uniform) is certified at once.
  const auto tie = solve_symmetric_game_lp(matrix_d::Constant(6, 6, 0.5));
  CHECK(tie.converged);
  CHECK(tie.gap == 0.0);
  CHECK(tie.iterations == 0);
}

TEST_CASE("the LP solver certifies gap <= 1e-10 on 600-action random intransitive games") {
  // n = 2000 (3-8 s) is measured by benchmarks/solvers (lp_equilibrium); CI checks n = 600.
  for (const std::uint64_t seed : {1u, 2u}) {
    const matrix_d p = random_preference_matrix(600, seed);
    const auto got = solve_symmetric_game_lp(p);
    CAPTURE(seed, got.iterations, got.crossover_attempts);
    REQUIRE(got.converged);
    CHECK(got.gap <= 1e-10);
    CHECK(got.gap == Approx(std::max(0.0, gap0(p, got.probabilities))).margin(1e-15));
    CHECK(got.probabilities.minCoeff() >= 0.0);
    CHECK(got.probabilities.sum() == Approx(1.0).margin(1e-14));
    CHECK(got.iterations <= 40);
  }
}

TEST_CASE("the LP solver reports a missed target and rejects bad input by name") {
  const matrix_d p = random_preference_matrix(60, 4);
  symmetric_game_lp_options options;
  options.max_iterations = 1;
  options.crossover_gap = 0.0;
  const auto got = solve_symmetric_game_lp(p, options);
  CHECK_FALSE(got.converged);
  CHECK(got.gap > options.target_gap);
  CHECK(got.iterations == 1);
  CHECK_THROWS_WITH(solve_symmetric_game_lp(matrix_d::Constant(3, 4, 0.5)),
                    Catch::Contains("solve_symmetric_game_lp") && Catch::Contains("square"));
  matrix_d bad = matrix_d::Constant(3, 3, 0.5);
  bad(0, 1) = 0.9;  // P + P^T != 1
  CHECK_THROWS_AS(solve_symmetric_game_lp(bad), invalid_argument);
  options = {};
  options.target_gap = 0.0;
  CHECK_THROWS_WITH(solve_symmetric_game_lp(p, options), Catch::Contains("target_gap"));
}
