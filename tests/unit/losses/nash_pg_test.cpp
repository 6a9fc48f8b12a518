#include "prefopt/losses/nash_pg.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "finite_difference.hpp"
#include "prefopt/core/math.hpp"
#include "prefopt/core/random.hpp"

using namespace prefopt;
using namespace prefopt::losses;
using Catch::Matchers::WithinAbs;
using Catch::Matchers::WithinRel;

namespace {

matrix_d random_preference(rng& g, prefopt::index_t n) {
  matrix_d P = matrix_d::Constant(n, n, 0.5);
  for (prefopt::index_t i = 0; i < n; ++i) {
    for (prefopt::index_t j = 0; j < i; ++j) {
      P(i, j) = g.uniform();
      P(j, i) = 1.0 - P(i, j);
    }
  }
  return P;
}

vector_d random_distribution(rng& g, prefopt::index_t n) {
  vector_d z(n), p(n);
  for (prefopt::index_t i = 0; i < n; ++i) z(i) = g.uniform(-1.5, 1.5);
  softmax(z, p);
  return p;
}

/// Gradient with respect to the logits of one-token sequences y ~ pi, y' ~ opponent, computed
/// exactly by enumeration from the surrogate's per-token gradients: sum pi(y) pi'(y') g_y (e_y -
/// pi).
vector_d expected_surrogate_gradient(const vector_d& pi, const matrix_d& P, const vector_d& opp,
                                     const vector_d& mu, double tau, kl_credit credit) {
  const prefopt::index_t n = pi.size();
  vector_d total = vector_d::Zero(n);
  const std::vector<prefopt::index_t> off{0, 1};
  for (prefopt::index_t y = 0; y < n; ++y) {
    for (prefopt::index_t yp = 0; yp < n; ++yp) {
      const std::vector<double> l{std::log(pi(y))}, lr{std::log(mu(y))};
      std::vector<double> g(1);
      nash_md_pg_surrogate<double>(ragged_view<const double>{off, l},
                                   ragged_view<const double>{off, lr},
                                   vector_d::Constant(1, P(y, yp)), tau,
                                   ragged_view<double>{off, g}, credit, reduction::sum);
      vector_d score = -pi;
      score(y) += 1.0;
      total += pi(y) * opp(yp) * g[0] * score;
    }
  }
  return total;
}

}  // namespace

TEST_CASE("Exact tabular Nash gradient pi*(h - <pi,h>) matches finite differences and sums to 0",
          "[losses]") {
  rng g(41);
  const prefopt::index_t n = 5;
  const matrix_d P = random_preference(g, n);
  const vector_d opp = random_distribution(g, n), mu = random_distribution(g, n);
  vector_d theta(n);
  for (prefopt::index_t i = 0; i < n; ++i) theta(i) = g.uniform(-1, 1);
  vector_d pi(n);
  softmax(theta, pi);
  const double tau = 0.3;
  vector_d grad(n);
  tabular_nash_gradient(pi, P, opp, mu, tau, grad);
  CHECK_THAT(grad.sum(), WithinAbs(0.0, 1e-15));
  for (prefopt::index_t i = 0; i < n; ++i) {
    const double fd = test::central_difference(
        [&](const vector_d& t) {
          vector_d p(n);
          softmax(t, p);
          return tabular_regularized_preference(p, P, opp, mu, tau);
        },
        theta, i);
    CHECK(test::close(grad(i), fd, 1e-7));
  }
}

TEST_CASE("With tau = 0 and the opponent equal to pi the exact gradient is pi*(P pi - 1/2)",
          "[losses]") {
  rng g(42);
  const matrix_d P = random_preference(g, 4);
  const vector_d pi = random_distribution(g, 4), mu = random_distribution(g, 4);
  vector_d grad(4);
  tabular_nash_gradient(pi, P, pi, mu, 0.0, grad);
  const vector_d expected = (pi.array() * ((P * pi).array() - 0.5)).matrix();
  for (prefopt::index_t i = 0; i < 4; ++i) CHECK_THAT(grad(i), WithinAbs(expected(i), 1e-15));
}

TEST_CASE("The expected Nash-MD-PG surrogate gradient is minus the exact tabular gradient",
          "[losses]") {
  rng g(43);
  const prefopt::index_t n = 4;
  const matrix_d P = random_preference(g, n);
  const vector_d pi = random_distribution(g, n), opp = random_distribution(g, n),
                 mu = random_distribution(g, n);
  const double tau = 0.2;
  vector_d exact(n);
  tabular_nash_gradient(pi, P, opp, mu, tau, exact);
  const vector_d expected =
      expected_surrogate_gradient(pi, P, opp, mu, tau, kl_credit::reward_to_go);
  for (prefopt::index_t i = 0; i < n; ++i) CHECK_THAT(expected(i), WithinAbs(-exact(i), 1e-12));
}

TEST_CASE("Monte-Carlo mean of the surrogate gradient matches the exact one within 4 SE",
          "[losses]") {
  rng g(44);
  const prefopt::index_t n = 3;
  const matrix_d P = random_preference(g, n);
  const vector_d pi = random_distribution(g, n), opp = random_distribution(g, n),
                 mu = random_distribution(g, n);
  const double tau = 0.1;
  vector_d exact(n);
  tabular_nash_gradient(pi, P, opp, mu, tau, exact);
  const int samples = 100000;
  vector_d sum = vector_d::Zero(n), sum_sq = vector_d::Zero(n);
  const std::vector<prefopt::index_t> off{0, 1};
  for (int s = 0; s < samples; ++s) {
    const prefopt::index_t y = g.categorical(pi), yp = g.categorical(opp);
    const double outcome = g.bernoulli(P(y, yp)) ? 1.0 : 0.0;  // 0/1 oracle
    const std::vector<double> l{std::log(pi(y))}, lr{std::log(mu(y))};
    std::vector<double> tg(1);
    nash_md_pg_surrogate<double>(ragged_view<const double>{off, l},
                                 ragged_view<const double>{off, lr}, vector_d::Constant(1, outcome),
                                 tau, ragged_view<double>{off, tg});
    vector_d score = -pi;
    score(y) += 1.0;
    const vector_d sample = -tg[0] * score;  // ascent direction estimate g_hat
    sum += sample;
    sum_sq += sample.cwiseProduct(sample);
  }
  for (prefopt::index_t i = 0; i < n; ++i) {
    const double mean = sum(i) / samples;
    const double se = std::sqrt((sum_sq(i) / samples - mean * mean) / samples);
    CHECK(std::abs(mean - exact(i)) <= 4.0 * se);
  }
}

TEST_CASE(
    "The stopped KL term has expected gradient grad KL(pi, mu); the un-stopped sequence "
    "term has 0",
    "[losses]") {
  rng g(45);
  const prefopt::index_t n = 5;
  const vector_d pi = random_distribution(g, n), mu = random_distribution(g, n);
  const matrix_d half = matrix_d::Constant(n, n, 0.5);  // P = 1/2: only the KL term remains
  const double tau = 0.7;
  const vector_d expected =
      expected_surrogate_gradient(pi, half, pi, mu, tau, kl_credit::reward_to_go);
  // grad_theta KL(pi, mu) = pi * (log pi - log mu - KL)
  const vector_d logratio = (pi.array().log() - mu.array().log()).matrix();
  const double kl = pi.dot(logratio);
  const vector_d grad_kl = (pi.array() * (logratio.array() - kl)).matrix();
  CHECK(grad_kl.norm() > 1e-3);
  for (prefopt::index_t i = 0; i < n; ++i)
    CHECK_THAT(expected(i), WithinAbs(tau * grad_kl(i), 1e-12));
  // E[grad (log pi(y) - log mu(y))] = sum_y pi(y) (e_y - pi) = 0
  vector_d unstopped = vector_d::Zero(n);
  for (prefopt::index_t y = 0; y < n; ++y) {
    vector_d score = -pi;
    score(y) += 1.0;
    unstopped += pi(y) * tau * score;
  }
  CHECK(unstopped.norm() < 1e-15);
}

TEST_CASE("Nash-MD-PG token credit: reward-to-go vs TRL same-position", "[losses]") {
  const std::vector<prefopt::index_t> off{0, 3};
  const std::vector<double> l{-1.0, -2.0, -0.5}, lr{-1.5, -1.0, -0.25};  // d = 0.5, -1, -0.25
  const double p = 0.8, tau = 0.1;
  std::vector<double> g(3), h(3);
  const auto s = nash_md_pg_surrogate<double>(
      ragged_view<const double>{off, l}, ragged_view<const double>{off, lr},
      vector_d::Constant(1, p), tau, ragged_view<double>{off, g});
  CHECK_THAT(g[0], WithinAbs(-(0.3 - tau * (0.5 - 1.0 - 0.25)), 1e-15));
  CHECK_THAT(g[1], WithinAbs(-(0.3 - tau * (-1.0 - 0.25)), 1e-15));
  CHECK_THAT(g[2], WithinAbs(-(0.3 - tau * -0.25), 1e-15));
  CHECK_THAT(s.mean_sequence_kl, WithinAbs(-0.75, 1e-15));
  CHECK_THAT(s.mean_advantage, WithinAbs(0.3, 1e-15));
  const auto t = nash_md_pg_surrogate<double>(
      ragged_view<const double>{off, l}, ragged_view<const double>{off, lr},
      vector_d::Constant(1, p), tau, ragged_view<double>{off, h}, kl_credit::same_position);
  // TRL: L = tau sum sg(d_t) l_t - (p - 1/2) sum l_t
  const double trl = tau * (0.5 * -1.0 + -1.0 * -2.0 + -0.25 * -0.5) - 0.3 * (-3.5);
  CHECK_THAT(t.loss, WithinAbs(trl, 1e-14));
  CHECK_THAT(h[1], WithinAbs(tau * -1.0 - 0.3, 1e-15));
  CHECK_THROWS_AS(nash_md_pg_surrogate<double>(
                      ragged_view<const double>{off, l}, ragged_view<const double>{off, lr},
                      vector_d::Constant(1, 1.5), tau, ragged_view<double>{off, h}),
                  prefopt::invalid_argument);
}

TEST_CASE("INPO and ONPO gradients match finite differences", "[losses]") {
  rng g(46);
  const prefopt::index_t n = 7;
  vector_d sw(n), sl(n), rw(n), rl(n), aw(n), al(n);
  for (prefopt::index_t i = 0; i < n; ++i) {
    sw(i) = g.uniform(-30, -1);
    sl(i) = g.uniform(-30, -1);
    rw(i) = g.uniform(-30, -1);
    rl(i) = g.uniform(-30, -1);
    aw(i) = g.uniform(-30, -1);
    al(i) = g.uniform(-30, -1);
  }
  const double eta = 3.0, tau = 0.2;
  vector_d gw(n), gl(n), s1(n), s2(n);
  inpo_loss<double>(sw, sl, rw, rl, aw, al, eta, tau, gw, gl);
  for (prefopt::index_t i = 0; i < n; ++i) {
    const double fw = test::central_difference(
        [&](const vector_d& x) {
          return inpo_loss<double>(x, sl, rw, rl, aw, al, eta, tau, s1, s2);
        },
        sw, i);
    const double fl = test::central_difference(
        [&](const vector_d& x) {
          return inpo_loss<double>(sw, x, rw, rl, aw, al, eta, tau, s1, s2);
        },
        sl, i);
    CHECK(test::close(gw(i), fw, 1e-6));
    CHECK(test::close(gl(i), fl, 1e-6));
  }
  onpo_loss<double>(sw, sl, aw, al, eta, gw, gl);
  for (prefopt::index_t i = 0; i < n; ++i) {
    const double fw = test::central_difference(
        [&](const vector_d& x) { return onpo_loss<double>(x, sl, aw, al, eta, s1, s2); }, sw, i);
    CHECK(test::close(gw(i), fw, 1e-6));
    CHECK(gl(i) == -gw(i));
  }
  CHECK_THROWS_WITH(inpo_loss<double>(sw, sl, rw, rl, aw, al, 10.0, 0.2, gw, gl),
                    Catch::Contains("eta * tau = 2"));
}

namespace {
/// Gradient in the logits theta of pi = softmax(theta) of the expected squared loss over all
/// ordered pairs (y, y') ~ w x w, labelled (y, y') w.p. P(y > y'), else (y', y).
template <class Loss>
vector_d tabular_pair_gradient(const vector_d& pi, const vector_d& w, const matrix_d& P,
                               const Loss& loss) {
  const prefopt::index_t n = pi.size();
  vector_d grad = vector_d::Zero(n);
  for (prefopt::index_t y = 0; y < n; ++y) {
    for (prefopt::index_t yp = 0; yp < n; ++yp) {
      for (int label = 0; label < 2; ++label) {
        const prefopt::index_t a = label == 0 ? y : yp, b = label == 0 ? yp : y;
        const double weight = w(y) * w(yp) * (label == 0 ? P(y, yp) : P(yp, y));
        double gw = 0, gl = 0;
        loss(a, b, gw, gl);
        vector_d da = -pi, db = -pi;
        da(a) += 1.0;
        db(b) += 1.0;
        grad += weight * (gw * da + gl * db);
      }
    }
  }
  return grad;
}
}  // namespace

TEST_CASE("Tabular INPO and ONPO losses are stationary at their closed-form updates", "[losses]") {
  rng g(47);
  const prefopt::index_t n = 4;
  const matrix_d P = random_preference(g, n);
  const vector_d pi_t = random_distribution(g, n), ref = random_distribution(g, n);
  const double eta = 0.8, tau = 0.5;
  // INPO closed form: pi ∝ pi_t^{1-eta tau} ref^{eta tau} exp(eta P pi_t)
  vector_d z = (1 - eta * tau) * pi_t.array().log().matrix() +
               eta * tau * ref.array().log().matrix() + eta * P * pi_t;
  vector_d pi(n);
  softmax(z, pi);
  vector_d current = pi;
  const auto inpo = [&](prefopt::index_t a, prefopt::index_t b, double& gw, double& gl) {
    vector_d gwv(1), glv(1);
    inpo_loss<double>(
        vector_d::Constant(1, std::log(current(a))), vector_d::Constant(1, std::log(current(b))),
        vector_d::Constant(1, std::log(ref(a))), vector_d::Constant(1, std::log(ref(b))),
        vector_d::Constant(1, std::log(pi_t(a))), vector_d::Constant(1, std::log(pi_t(b))), eta,
        tau, gwv, glv);
    gw = gwv(0);
    gl = glv(0);
  };
  CHECK(tabular_pair_gradient(pi, pi_t, P, inpo).norm() < 1e-12);
  // Away from the closed form the gradient is not zero.
  vector_d other = pi;
  other(0) += 0.05;
  other /= other.sum();
  current = other;
  CHECK(tabular_pair_gradient(other, pi_t, P, inpo).norm() > 1e-4);

  // ONPO: pi ∝ anchor exp(eta P pi_prev) with pairs from pi_prev.
  const vector_d anchor = random_distribution(g, n), prev = random_distribution(g, n);
  z = anchor.array().log().matrix() + eta * P * prev;
  softmax(z, pi);
  const auto onpo = [&](prefopt::index_t a, prefopt::index_t b, double& gw, double& gl) {
    vector_d gwv(1), glv(1);
    onpo_loss<double>(vector_d::Constant(1, std::log(pi(a))),
                      vector_d::Constant(1, std::log(pi(b))),
                      vector_d::Constant(1, std::log(anchor(a))),
                      vector_d::Constant(1, std::log(anchor(b))), eta, gwv, glv);
    gw = gwv(0);
    gl = glv(0);
  };
  CHECK(tabular_pair_gradient(pi, prev, P, onpo).norm() < 1e-12);
}

TEST_CASE("from inverse eta: eta_inv 0.0075 with tau 0.0025 gives eta tau = 1/3", "[losses]") {
  CHECK_THAT(eta_from_inverse(0.0075) * 0.0025, WithinAbs(1.0 / 3.0, 1e-12));
  CHECK_THROWS_AS(eta_from_inverse(0.0), prefopt::invalid_argument);
}

TEST_CASE("Mixture logits: beta_mix 0 is the policy, 1 the reference, softmax sums to 1",
          "[losses]") {
  rng g(48);
  vector_d zt(6), zm(6), out(6), p(6);
  for (prefopt::index_t i = 0; i < 6; ++i) {
    zt(i) = g.uniform(-3, 3);
    zm(i) = g.uniform(-3, 3);
  }
  mixture_logits<double>(zt, zm, 0.0, out);
  CHECK(out == zt);
  mixture_logits<double>(zt, zm, 1.0, out);
  CHECK(out == zm);
  mixture_logits<double>(zt, zm, 0.125, out);
  softmax(out, p);
  CHECK_THAT(p.sum(), WithinAbs(1.0, 1e-12));
  CHECK_THROWS_AS(mixture_logits<double>(zt, zm, 1.5, out), prefopt::invalid_argument);
}

TEST_CASE("Tabular identity KL(pi, pi^beta_mix) = beta_mix KL(pi, mu) - c", "[losses]") {
  rng g(49);
  const vector_d pi = random_distribution(g, 5), mu = random_distribution(g, 5);
  for (const double beta : {0.0, 0.125, 0.5, 0.9}) {
    vector_d z(5), mixed(5);
    mixture_logits<double>(pi.array().log().matrix(), mu.array().log().matrix(), beta, z);
    const double log_z = logsumexp(z);
    log_softmax(z, mixed);
    const double c = -log_z;
    const double kl_mix = pi.dot((pi.array().log() - mixed.array()).matrix());
    const double kl_mu = pi.dot((pi.array().log() - mu.array().log()).matrix());
    CHECK_THAT(kl_mix, WithinAbs(beta * kl_mu - c, 1e-12));
  }
}
