#include "prefopt/kernels/kl_estimators.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include "kernel_reference.hpp"
#include "prefopt/core/math.hpp"
#include "prefopt/kernels/kl.hpp"

using namespace prefopt;
using idx = prefopt::index_t;
using kernels::kl_estimator;

TEST_CASE("sampled KL estimators take the values of ALGORITHMS.md 2.2 at d = +-0.1",
          "[kernels][kl_estimators]") {
  const std::vector<double> lp{-1.0, -1.2};
  const std::vector<double> lr{-1.1, -1.1};  // d = 0.1, -0.1
  std::vector<double> out(2);
  kernels::sampled_kl(kl_estimator::k1, lp, lr, kernels::span_of(out));
  CHECK(std::abs(out[0] - 0.1) < 1e-9);
  kernels::sampled_kl(kl_estimator::k2, lp, lr, kernels::span_of(out));
  CHECK(std::abs(out[0] - 0.005) < 1e-9);
  kernels::sampled_kl(kl_estimator::k3, lp, lr, kernels::span_of(out));
  CHECK(std::abs(out[0] - 0.0048374180) < 1e-9);
  CHECK(std::abs(out[1] - 0.0051709181) < 1e-9);
  kernels::sampled_kl(kl_estimator::abs, lp, lr, kernels::span_of(out));
  CHECK(std::abs(out[0] - 0.1) < 1e-9);
  CHECK(std::abs(out[1] - 0.1) < 1e-9);
}

TEST_CASE("k3 keeps full relative accuracy as d goes to 0", "[kernels][kl_estimators]") {
  for (const double d : {1e-9, -3e-6, 0.05, -0.099, 0.1, 0.4999, -0.5, 2.0, -5.0}) {
    const long double ref = std::expm1(-static_cast<long double>(d)) + static_cast<long double>(d);
    const long double x = static_cast<long double>(d);
    const long double series = x * x / 2 - x * x * x / 6 + x * x * x * x / 24;
    const long double r = std::abs(d) < 1e-4 ? series : ref;
    const double k3 = kernels::kl_estimate(kl_estimator::k3, d);
    INFO("d = " << d);
    CHECK(test::err(k3, r) <= 4e-16 * static_cast<double>(std::abs(r)));
    CHECK(k3 >= 0.0);
  }
}

TEST_CASE("E_pi[k1] = E_pi[k3] = full KL(pi, pi_ref) on a small vocabulary; k2, k3, abs >= 0",
          "[kernels][kl_estimators]") {
  const idx v = 6;
  const auto z = test::random_logits<double>(1, v, 2.0, 3);
  const auto zr = test::random_logits<double>(1, v, 2.0, 4);
  std::vector<double> lp(v), lr(v);
  Eigen::VectorXd l(v), r(v);
  log_softmax(z.row(0).transpose(), l);
  log_softmax(zr.row(0).transpose(), r);
  for (idx j = 0; j < v; ++j) {
    lp[static_cast<std::size_t>(j)] = l(j);
    lr[static_cast<std::size_t>(j)] = r(j);
  }
  std::vector<double> full(1);
  kernels::kl_divergence(z, zr, kernels::span_of(full), {});
  std::vector<double> k(v);
  for (const auto e : {kl_estimator::k1, kl_estimator::k3}) {
    kernels::sampled_kl(e, lp, lr, kernels::span_of(k));
    double expectation = 0;
    for (std::size_t j = 0; j < k.size(); ++j) expectation += std::exp(lp[j]) * k[j];
    CHECK(std::abs(expectation - full[0]) < 1e-12);
  }
  for (const auto e : {kl_estimator::k2, kl_estimator::k3, kl_estimator::abs}) {
    kernels::sampled_kl(e, lp, lr, kernels::span_of(k));
    for (double x : k) CHECK(x >= 0.0);
  }
}

TEST_CASE("sampled KL gradients equal finite differences for every estimator",
          "[kernels][kl_estimators][gradient]") {
  const std::vector<double> lp{-0.3, -2.0, -0.9, -1.0};
  const std::vector<double> lr{-0.5, -1.0, -0.9 + 1e-3, -0.2};
  const std::vector<double> g{1.0, -2.0, 0.5, 3.0};
  for (const auto e : {kl_estimator::k1, kl_estimator::k2, kl_estimator::k3, kl_estimator::abs}) {
    std::vector<double> dl(4), dr(4);
    kernels::sampled_kl_backward(e, lp, lr, g, kernels::span_of(dl), kernels::span_of(dr));
    for (std::size_t t = 0; t < lp.size(); ++t) {
      const double h = 1e-7;
      const double num = g[t] *
                         (kernels::kl_estimate(e, lp[t] + h - lr[t]) -
                          kernels::kl_estimate(e, lp[t] - h - lr[t])) /
                         (2 * h);
      CHECK(std::abs(dl[t] - num) < 1e-6);
      CHECK(dr[t] == -dl[t]);
    }
  }
}

TEST_CASE("sampled KL masks positions, accumulates and rejects bad input",
          "[kernels][kl_estimators]") {
  const std::vector<float> lp{-1.0f, -2.0f, -3.0f};
  std::vector<float> lr{-1.5f, std::numeric_limits<float>::quiet_NaN(), -1.0f};
  std::vector<std::uint8_t> mask{1, 0, 1};
  kernels::options opt;
  opt.mask = mask;
  std::vector<float> out(3, 9.0f);
  kernels::sampled_kl(kl_estimator::k2, lp, lr, kernels::span_of(out), opt);
  CHECK(out[1] == 0.0f);
  CHECK(out[0] == Approx(0.125));
  std::vector<float> d(3, 1.0f);
  const std::vector<float> g{1, 1, 1};
  opt.mode = kernels::write_mode::accumulate;
  kernels::sampled_kl_backward(kl_estimator::k1, lp, lr, g, kernels::span_of(d), {}, opt);
  CHECK(d[0] == 2.0f);
  CHECK(d[1] == 1.0f);
  CHECK_THROWS_WITH(kernels::sampled_kl(kl_estimator::k1, lp, lr, kernels::span_of(out)),
                    Catch::Contains("sampled_kl") && Catch::Contains("ref_log_probs[1]"));
  lr.pop_back();
  CHECK_THROWS_AS(kernels::sampled_kl(kl_estimator::k1, lp, lr, kernels::span_of(out)),
                  shape_error);
}
