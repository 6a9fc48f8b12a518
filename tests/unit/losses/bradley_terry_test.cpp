#include "prefopt/losses/bradley_terry.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <numbers>
#include <string>
#include <type_traits>
#include <vector>

#include "finite_difference.hpp"
#include "prefopt/core/random.hpp"

using namespace prefopt;
using Catch::Matchers::WithinAbs;
using Catch::Matchers::WithinRel;

namespace {
double bt_value(const vector_d& rw, const vector_d& rl, const vector_d& m, double c) {
  vector_d gw(rw.size()), gl(rw.size());
  return losses::bradley_terry_loss<double>(rw, rl, m, gw, gl, {c, losses::reduction::mean}).loss;
}
}  // namespace

TEST_CASE("Bradley-Terry loss is log 2 at equal rewards with gradient -1/2, +1/2", "[losses]") {
  const vector_d r = vector_d::Constant(1, 0.7);
  vector_d gw(1), gl(1);
  const auto m = losses::bradley_terry_loss<double>(r, r, vector_d(), gw, gl);
  CHECK_THAT(m.loss, WithinAbs(std::numbers::ln2, 1e-12));
  CHECK_THAT(gw(0), WithinAbs(-0.5, 1e-15));
  CHECK_THAT(gl(0), WithinAbs(0.5, 1e-15));
  CHECK(m.accuracy == 0.0);  // ties count as wrong
}

TEST_CASE("Bradley-Terry loss with margin 1 at equal rewards is softplus(1) = 1.3132617",
          "[losses]") {
  const vector_d r = vector_d::Zero(1);
  const vector_d margin = vector_d::Ones(1);
  vector_d gw(1), gl(1);
  CHECK_THAT(losses::bradley_terry_loss<double>(r, r, margin, gw, gl).loss,
             WithinAbs(1.3132617, 1e-7));
}

TEST_CASE("Bradley-Terry gradients sum to exactly zero without centring", "[losses]") {
  rng g(3);
  vector_d rw(50), rl(50), gw(50), gl(50);
  for (prefopt::index_t i = 0; i < 50; ++i) {
    rw(i) = g.uniform(-30, 30);
    rl(i) = g.uniform(-30, 30);
  }
  losses::bradley_terry_loss<double>(rw, rl, vector_d(), gw, gl);
  for (prefopt::index_t i = 0; i < 50; ++i) CHECK(gw(i) + gl(i) == 0.0);
}

TEST_CASE("Bradley-Terry gradients match central finite differences, margins up to 50",
          "[losses]") {
  rng g(5);
  const prefopt::index_t n = 6;
  vector_d rw(n), rl(n), m(n);
  for (prefopt::index_t i = 0; i < n; ++i) {
    rw(i) = g.uniform(-25, 25);
    rl(i) = g.uniform(-25, 25);
    m(i) = g.uniform(-1, 1);
  }
  rw(0) = 50.0;  // z = 50 + ...
  rl(0) = 0.0;
  rw(1) = -25.0;
  rl(1) = 25.0;  // z = -50
  for (const double c : {0.0, 0.01}) {
    vector_d gw(n), gl(n);
    losses::bradley_terry_loss<double>(rw, rl, m, gw, gl, {c, losses::reduction::mean});
    for (prefopt::index_t i = 0; i < n; ++i) {
      // FD on the single pair (a batch mean cannot resolve 1e-22 next to O(1) losses).
      const vector_d w1 = rw.segment(i, 1), l1 = rl.segment(i, 1), m1 = m.segment(i, 1);
      const double fw = test::central_difference(
          [&](const vector_d& x) { return bt_value(x, l1, m1, c); }, w1, 0);
      const double fl = test::central_difference(
          [&](const vector_d& x) { return bt_value(w1, x, m1, c); }, l1, 0);
      CHECK(test::close(gw(i) * double(n), fw, 1e-6, 1e-300));
      CHECK(test::close(gl(i) * double(n), fl, 1e-6, 1e-300));
    }
  }
}

TEST_CASE("Bradley-Terry metrics report accuracy, margin and mean rewards", "[losses]") {
  const vector_d rw{{2.0, -1.0, 0.5}};
  const vector_d rl{{1.0, 0.0, 0.5}};
  vector_d gw(3), gl(3);
  const auto m = losses::bradley_terry_loss<double>(rw, rl, vector_d(), gw, gl);
  CHECK_THAT(m.accuracy, WithinAbs(1.0 / 3.0, 1e-15));
  CHECK_THAT(m.margin, WithinAbs(0.0, 1e-15));
  CHECK_THAT(m.mean_reward_chosen, WithinAbs(0.5, 1e-15));
  CHECK_THAT(m.mean_reward, WithinAbs((1.5 + 1.5) / 6.0, 1e-15));
  CHECK(std::string(m.named()[1].first) == "accuracy");
}

TEST_CASE("Bradley-Terry float agrees with double", "[losses]") {
  rng g(9);
  vector_d rw(20), rl(20), gw(20), gl(20);
  for (prefopt::index_t i = 0; i < 20; ++i) {
    rw(i) = g.uniform(-5, 5);
    rl(i) = g.uniform(-5, 5);
  }
  const vector_f rwf = rw.cast<float>(), rlf = rl.cast<float>();
  vector_f gwf(20), glf(20);
  const auto md = losses::bradley_terry_loss<double>(rw, rl, vector_d(), gw, gl, {0.01, {}});
  const auto mf = losses::bradley_terry_loss<float>(rwf, rlf, vector_f(), gwf, glf, {0.01, {}});
  CHECK_THAT(double(mf.loss), WithinRel(md.loss, 1e-5));
  for (prefopt::index_t i = 0; i < 20; ++i) {
    CHECK_THAT(double(gwf(i)), WithinRel(gw(i), 1e-4) || WithinAbs(gw(i), 1e-7));
  }
}

TEST_CASE("Bradley-Terry loss rejects bad input with a message naming the argument", "[losses]") {
  vector_d a(2), b(3), g2(2), g3(2);
  a.setZero();
  b.setZero();
  CHECK_THROWS_WITH(losses::bradley_terry_loss<double>(a, b, vector_d(), g2, g3),
                    Catch::Contains("r_rejected has size 3, expected 2"));
  vector_d nan = vector_d::Zero(2);
  nan(1) = std::nan("");
  CHECK_THROWS_AS(losses::bradley_terry_loss<double>(a, nan, vector_d(), g2, g3),
                  prefopt::invalid_argument);
}

TEST_CASE("Best-of-K cross-entropy with equal rewards is log K", "[losses]") {
  const row_matrix_d r = row_matrix_d::Constant(2, 4, 0.3);
  row_matrix_d grad(2, 4);
  const std::vector<prefopt::index_t> chosen{1, 3};
  CHECK_THAT(losses::best_of_k_loss<double>(r, chosen, grad), WithinAbs(1.3862944, 1e-7));
  CHECK_THAT(grad(0, 1), WithinAbs((0.25 - 1.0) / 2.0, 1e-15));
  CHECK_THAT(grad(0, 0), WithinAbs(0.25 / 2.0, 1e-15));
}

TEST_CASE("Best-of-K and K-wise ranking gradients match finite differences", "[losses]") {
  rng g(11);
  row_matrix_d r(3, 4);
  for (prefopt::index_t i = 0; i < r.size(); ++i) r.data()[i] = g.uniform(-3, 3);
  const std::vector<prefopt::index_t> chosen{0, 2, 3};
  row_matrix_d grad(3, 4), grad2(3, 4), scratch(3, 4);
  losses::best_of_k_loss<double>(r, chosen, grad);
  losses::bradley_terry_ranking_loss<double>(r, grad2);
  const vector_d flat = r.reshaped<Eigen::RowMajor>();
  for (prefopt::index_t i = 0; i < flat.size(); ++i) {
    const auto as_matrix = [](const vector_d& x) {
      return row_matrix_d(x.reshaped<Eigen::RowMajor>(3, 4));
    };
    const double f1 = test::central_difference(
        [&](const vector_d& x) {
          return losses::best_of_k_loss<double>(as_matrix(x), chosen, scratch);
        },
        flat, i);
    const double f2 = test::central_difference(
        [&](const vector_d& x) {
          return losses::bradley_terry_ranking_loss<double>(as_matrix(x), scratch);
        },
        flat, i);
    CHECK(test::close(grad.data()[i], f1, 1e-6));
    CHECK(test::close(grad2.data()[i], f2, 1e-6));
  }
}

TEST_CASE("K-wise ranking loss averages the C(K,2) pairwise losses", "[losses]") {
  const row_matrix_d r{{3.0, 1.0, 0.0}};
  row_matrix_d grad(1, 3);
  const double expected = (softplus(-2.0) + softplus(-3.0) + softplus(-1.0)) / 3.0;
  CHECK_THAT(losses::bradley_terry_ranking_loss<double>(r, grad), WithinAbs(expected, 1e-14));
  CHECK_THAT(grad.sum(), WithinAbs(0.0, 1e-15));
}

TEST_CASE("Bradley-Terry MLE on synthetic comparisons recovers the centred rewards", "[losses]") {
  const vector_d truth{{0.0, 0.5, -1.0, 1.5, 0.8}};
  rng g(2024);
  const prefopt::index_t pairs = 20000;
  std::vector<prefopt::index_t> win(static_cast<std::size_t>(pairs)),
      lose(static_cast<std::size_t>(pairs));
  for (std::size_t k = 0; k < win.size(); ++k) {
    prefopt::index_t i = g.uniform_index(5), j = g.uniform_index(4);
    if (j >= i) ++j;
    if (!g.bernoulli(sigmoid(truth(i) - truth(j)))) std::swap(i, j);
    win[k] = i;
    lose[k] = j;
  }
  // Aggregate the comparisons into counts of ordered (winner, loser) pairs; the MLE gradient is the
  // count-weighted sum of the per-pair loss gradients (reduction::sum on the distinct pairs).
  matrix_d counts = matrix_d::Zero(5, 5);
  for (std::size_t k = 0; k < win.size(); ++k) counts(win[k], lose[k]) += 1.0;
  std::vector<prefopt::index_t> wi, li;
  std::vector<double> weight;
  for (prefopt::index_t i = 0; i < 5; ++i) {
    for (prefopt::index_t j = 0; j < 5; ++j) {
      if (counts(i, j) > 0) {
        wi.push_back(i);
        li.push_back(j);
        weight.push_back(counts(i, j) / double(pairs));
      }
    }
  }
  const auto m = static_cast<prefopt::index_t>(wi.size());
  vector_d r = vector_d::Zero(5), rw(m), rl(m), gw(m), gl(m);
  for (int it = 0; it < 300; ++it) {
    for (prefopt::index_t k = 0; k < m; ++k) {
      rw(k) = r(wi[static_cast<std::size_t>(k)]);
      rl(k) = r(li[static_cast<std::size_t>(k)]);
    }
    losses::bradley_terry_loss<double>(rw, rl, vector_d(), gw, gl, {0.0, losses::reduction::sum});
    vector_d grad = vector_d::Zero(5);
    for (prefopt::index_t k = 0; k < m; ++k) {
      const auto u = static_cast<std::size_t>(k);
      grad(wi[u]) += weight[u] * gw(k);
      grad(li[u]) += weight[u] * gl(k);
    }
    r -= 5.0 * grad;
  }
  const vector_d fitted = r.array() - r.mean();
  const vector_d centred = truth.array() - truth.mean();
  for (prefopt::index_t i = 0; i < 5; ++i) CHECK_THAT(fitted(i), WithinAbs(centred(i), 0.1));
}

TEST_CASE("Elo conversion factor is 400/ln 10 = 173.7178 and matches the sigmoid", "[losses]") {
  CHECK_THAT(losses::elo_per_nat, WithinAbs(173.7178, 1e-4));
  CHECK_THAT(losses::elo_win_fraction(0.0), WithinAbs(0.5, 1e-15));
  CHECK_THAT(losses::elo_win_fraction(losses::elo_from_score_difference(0.8)),
             WithinAbs(sigmoid(0.8), 1e-14));
  CHECK(losses::elo_win_fraction(100.0) > 0.5);
}

TEST_CASE("Reward normalisation gives sample mean 0 and std 1", "[losses]") {
  rng g(8);
  vector_d s(1000);
  for (prefopt::index_t i = 0; i < s.size(); ++i) s(i) = 3.0 + 2.5 * g.normal();
  const auto norm = losses::reward_normalization::fit(s);
  norm.apply(s);
  const double mean = s.mean();
  const double var = (s.array() - mean).square().mean();
  CHECK_THAT(mean, WithinAbs(0.0, 1e-12));
  CHECK_THAT(std::sqrt(var), WithinAbs(1.0, 1e-12));
  CHECK_THROWS_AS(losses::reward_normalization::fit(vector_d::Ones(5)), prefopt::invalid_argument);
}

TEST_CASE("Scalar rating and scalar compare losses match finite differences", "[losses]") {
  rng g(12);
  vector_d a(5), b(5), y(5), ga(5), gb(5), s1(5), s2(5);
  for (prefopt::index_t i = 0; i < 5; ++i) {
    a(i) = g.uniform(-2, 2);
    b(i) = g.uniform(-2, 2);
    y(i) = g.uniform(-1, 1);
  }
  losses::scalar_rating_loss<double>(a, y, ga);
  for (prefopt::index_t i = 0; i < 5; ++i) {
    CHECK(test::close(
        ga(i),
        test::central_difference(
            [&](const vector_d& x) { return losses::scalar_rating_loss<double>(x, y, s1); }, a, i),
        1e-6));
  }
  losses::scalar_compare_loss<double>(a, b, y, ga, gb);
  for (prefopt::index_t i = 0; i < 5; ++i) {
    CHECK(test::close(
        ga(i),
        test::central_difference(
            [&](const vector_d& x) { return losses::scalar_compare_loss<double>(x, b, y, s1, s2); },
            a, i),
        1e-6));
    CHECK(gb(i) == -ga(i));
  }
  CHECK(losses::scalar_rating_loss<double>(y, y, ga) == 0.0);
}

TEST_CASE("Bradley-Terry overloads: the scalar is deduced, the margin optional, per-pair output",
          "[losses]") {
  rng g(21);
  vector_d rw(6), rl(6), margin(6);
  for (prefopt::index_t i = 0; i < 6; ++i) {
    rw(i) = g.normal();
    rl(i) = g.normal();
    margin(i) = g.uniform(0.0, 1.0);
  }
  vector_d gw(6), gl(6), gw2(6), gl2(6);
  // Without a margin and without spelling <double>: the same as the explicit form with size 0.
  const auto a = losses::bradley_terry_loss(rw, rl, gw, gl);
  const auto b = losses::bradley_terry_loss<double>(rw, rl, vector_d(), gw2, gl2);
  CHECK(a.loss == b.loss);
  CHECK(gw == gw2);
  CHECK(gl == gl2);
  // With a margin, deduced.
  const auto c = losses::bradley_terry_loss(rw, rl, margin, gw, gl, {0.01});
  CHECK_THAT(c.loss, WithinRel(bt_value(rw, rl, margin, 0.01), 1e-15));
  // Per-pair losses: l_i = softplus(-(r_w - r_l - m_i)); their mean is the reduced loss.
  vector_d pair;
  const auto d = losses::bradley_terry_loss<double>(rw, rl, margin, gw, gl, pair);
  REQUIRE(pair.size() == 6);
  for (prefopt::index_t i = 0; i < 6; ++i) {
    CHECK_THAT(pair(i), WithinAbs(std::log1p(std::exp(-(rw(i) - rl(i) - margin(i)))), 1e-14));
  }
  CHECK_THAT(pair.mean(), WithinRel(d.loss, 1e-15));
  // float deduces float.
  const vector_f fw = rw.cast<float>(), fl = rl.cast<float>();
  vector_f fgw(6), fgl(6);
  const auto f = losses::bradley_terry_loss(fw, fl, fgw, fgl);
  static_assert(std::is_same_v<decltype(f.loss), float>);
  CHECK_THAT(static_cast<double>(f.loss), WithinRel(a.loss, 1e-6));
}
