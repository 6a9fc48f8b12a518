#include "prefopt/losses/kl_estimators.hpp"

#include <catch2/catch.hpp>

#include <cmath>

#include "prefopt/core/math.hpp"
#include "prefopt/core/random.hpp"

using namespace prefopt;
using namespace prefopt::losses;
using Catch::Matchers::WithinAbs;

TEST_CASE(
    "KL estimators at d = 0.1: k1 0.1, k2 0.005, k3 0.0048374180, abs 0.1; k3(-0.1) = "
    "0.0051709181",
    "[losses]") {
  CHECK_THAT(kl_k1::value(0.1), WithinAbs(0.1, 1e-15));
  CHECK_THAT(kl_k2::value(0.1), WithinAbs(0.005, 1e-15));
  CHECK_THAT(kl_k3::value(0.1), WithinAbs(0.0048374180, 1e-9));
  CHECK_THAT(kl_abs::value(0.1), WithinAbs(0.1, 1e-15));
  CHECK_THAT(kl_k3::value(-0.1), WithinAbs(0.0051709181, 1e-9));
  CHECK_THAT(kl_abs::value(-0.1), WithinAbs(0.1, 1e-15));
}

TEST_CASE("E_pi[k1] = E_pi[k3] = full KL exactly on a small vocabulary; k2, k3, abs >= 0",
          "[losses]") {
  rng g(21);
  for (int trial = 0; trial < 20; ++trial) {
    vector_d z(6), zr(6), lp(6), lq(6);
    for (prefopt::index_t i = 0; i < 6; ++i) {
      z(i) = g.uniform(-3, 3);
      zr(i) = g.uniform(-3, 3);
    }
    log_softmax(z, lp);
    log_softmax(zr, lq);
    double e1 = 0, e3 = 0, kl = 0;
    for (prefopt::index_t v = 0; v < 6; ++v) {
      const double d = lp(v) - lq(v);
      const double p = std::exp(lp(v));
      e1 += p * kl_k1::value(d);
      e3 += p * kl_k3::value(d);
      kl += p * (lp(v) - lq(v));
      CHECK(kl_k2::value(d) >= 0.0);
      CHECK(kl_k3::value(d) >= 0.0);
      CHECK(kl_abs::value(d) >= 0.0);
    }
    const double full = full_kl(lp, lq);
    CHECK(full >= 0.0);
    CHECK_THAT(e1, WithinAbs(kl, 1e-12));
    CHECK_THAT(e3, WithinAbs(kl, 1e-12));
    CHECK_THAT(full, WithinAbs(kl, 1e-12));
  }
}

TEST_CASE("KL estimator derivatives match finite differences", "[losses]") {
  for (const double d : {-2.0, -0.3, 0.05, 1.7}) {
    const double h = 1e-6;
    CHECK_THAT(kl_k2::derivative(d),
               WithinAbs((kl_k2::value(d + h) - kl_k2::value(d - h)) / (2 * h), 1e-8));
    CHECK_THAT(kl_k3::derivative(d),
               WithinAbs((kl_k3::value(d + h) - kl_k3::value(d - h)) / (2 * h), 1e-8));
    CHECK_THAT(kl_abs::derivative(d),
               WithinAbs((kl_abs::value(d + h) - kl_abs::value(d - h)) / (2 * h), 1e-8));
  }
  CHECK(kl_k1::derivative(0.3) == 1.0);
}

TEST_CASE("full_kl skips zero-probability entries and rejects an impossible reference",
          "[losses]") {
  const double inf = std::numeric_limits<double>::infinity();
  const vector_d lp{{std::log(0.5), std::log(0.5), -inf}};
  const vector_d lq{{std::log(0.25), std::log(0.25), std::log(0.5)}};
  CHECK_THAT(full_kl(lp, lq), WithinAbs(std::log(2.0), 1e-15));
  const vector_d bad{{-inf, std::log(0.5), std::log(0.5)}};
  CHECK_THROWS_AS(full_kl(lp, bad), prefopt::invalid_argument);
}
