#include "prefopt/kernels/kl.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include "kernel_reference.hpp"

using namespace prefopt;
using idx = prefopt::index_t;
using prefopt::test::ld;

TEMPLATE_TEST_CASE("kl_divergence matches a long-double reference in both directions",
                   "[kernels][kl]", float, double) {
  using T = TestType;
  for (const idx v : {idx{1}, idx{6}, idx{1008}, idx{7001}}) {
    for (const double scale : {0.3, 5.0, 1e4}) {
      const idx n = 4;
      const auto zp = test::random_logits<T>(n, v, scale, static_cast<std::uint64_t>(v) + 5);
      // q: a perturbation of p (the realistic regime) for half the rows, independent for the rest.
      auto zq = test::random_logits<T>(n, v, scale, static_cast<std::uint64_t>(v) + 6);
      zq.topRows(2) = zp.topRows(2) + test::random_logits<T>(2, v, 0.1 * scale, 9);
      std::vector<T> kl(n), klr(n);
      kernels::kl_divergence(zp, zq, kernels::span_of(kl), kernels::span_of(klr));
      const double logv = std::log(static_cast<double>(v));
      for (idx i = 0; i < n; ++i) {
        const auto u = static_cast<std::size_t>(i);
        const ld ref = test::ref_kl(zp.row(i).data(), zq.row(i).data(), v);
        const ld ref_r = test::ref_kl(zq.row(i).data(), zp.row(i).data(), v);
        const double spread = static_cast<double>(
            (zp.row(i).template cast<double>() - zq.row(i).template cast<double>())
                .cwiseAbs()
                .maxCoeff());
        const double bound = test::unit_roundoff<T>() * (logv + 150) * (2 + spread);
        INFO("V = " << v << ", scale = " << scale << ", row " << i);
        CHECK(test::err(kl[u], ref) <= bound);
        CHECK(test::err(klr[u], ref_r) <= bound);
        CHECK(kl[u] >= T(0));
      }
    }
  }
}

TEST_CASE("KL of a distribution with itself is 0 and -inf entries are handled exactly",
          "[kernels][kl]") {
  const double ninf = -std::numeric_limits<double>::infinity();
  row_matrix_d p(3, 5), q(3, 5);
  p << 0, 1, 2, ninf, 3,  //
      0, 1, 2, ninf, 3,   //
      0, 1, 2, 1, 3;
  q << 0, 1, 2, ninf, 3,  // same support
      0, 1, ninf, 0, 3,   // q = 0 where p > 0 and q > 0 where p = 0
      0, 1, 2, 1, 3;
  std::vector<double> kl(3), klr(3);
  kernels::kl_divergence(p, q, kernels::span_of(kl), kernels::span_of(klr));
  CHECK(kl[0] == Approx(0.0).margin(1e-15));
  CHECK(klr[0] == Approx(0.0).margin(1e-15));
  CHECK(kl[1] == std::numeric_limits<double>::infinity());
  CHECK(klr[1] == std::numeric_limits<double>::infinity());
  CHECK(kl[2] == Approx(0.0).margin(1e-15));
  // A q with -inf only where p is -inf too: finite, equal to the reference.
  row_matrix_d p2(1, 4), q2(1, 4);
  p2 << 0.5, ninf, -1, 2;
  q2 << 0.1, ninf, 0.3, ninf;
  std::vector<double> a(1), b(1);
  kernels::kl_divergence(q2, p2, kernels::span_of(a), kernels::span_of(b));
  CHECK(a[0] == Approx(static_cast<double>(test::ref_kl(q2.data(), p2.data(), 4))).epsilon(1e-14));
  CHECK(b[0] == std::numeric_limits<double>::infinity());
}

TEST_CASE("kl_divergence_backward equals finite differences of sum g_i KL(p_i || q_i)",
          "[kernels][kl][gradient]") {
  const idx n = 3;
  const idx v = 7;
  auto zp = test::random_logits<double>(n, v, 1.5, 31);
  auto zq = test::random_logits<double>(n, v, 1.5, 32);
  zp(2, 5) = zq(2, 5) = -std::numeric_limits<double>::infinity();
  zp(1, 0) = -std::numeric_limits<double>::infinity();  // p = 0 where q > 0: finite KL(p || q)
  const std::vector<double> g{0.8, -1.1, 1.7};
  std::vector<double> kl(n), lp(n), lq(n);
  kernels::kl_divergence(zp, zq, kernels::span_of(kl), {}, {}, kernels::span_of(lp),
                         kernels::span_of(lq));
  row_matrix_d dp(n, v), dq(n, v);
  kernels::kl_divergence_backward(zp, zq, std::span<const double>(lp), std::span<const double>(lq),
                                  std::span<const double>(kl), g, dp, dq);
  auto loss = [&](const row_matrix_d& a, const row_matrix_d& b) {
    std::vector<double> k(n);
    kernels::kl_divergence(a, b, kernels::span_of(k), {});
    double s = 0;
    for (std::size_t i = 0; i < k.size(); ++i) s += g[i] * k[i];
    return s;
  };
  const auto num_p = test::numeric_gradient(zp, [&](const row_matrix_d& x) { return loss(x, zq); });
  const auto num_q = test::numeric_gradient(zq, [&](const row_matrix_d& x) { return loss(zp, x); });
  CHECK((dp - num_p).cwiseAbs().maxCoeff() < 1e-8);
  CHECK((dq - num_q).cwiseAbs().maxCoeff() < 1e-8);
  // A frozen reference: an empty dq skips the q gradient.
  row_matrix_d dp2(n, v), none;
  kernels::kl_divergence_backward(zp, zq, std::span<const double>(lp), std::span<const double>(lq),
                                  std::span<const double>(kl), g, dp2, none);
  CHECK(dp2 == dp);
  // The same without a dummy matrix, overwriting and accumulating.
  row_matrix_d dp3 = row_matrix_d::Constant(n, v, 5.0);
  kernels::kl_divergence_backward(zp, zq, std::span<const double>(lp), std::span<const double>(lq),
                                  std::span<const double>(kl), g, dp3);
  CHECK(dp3 == dp);
  kernels::options acc;
  acc.mode = kernels::write_mode::accumulate;
  row_matrix_d dp4 = row_matrix_d::Constant(n, v, 1.0);
  kernels::kl_divergence_backward(zp, zq, std::span<const double>(lp), std::span<const double>(lq),
                                  std::span<const double>(kl), g, dp4, acc);
  CHECK((dp4.array() - 1.0 - dp.array()).abs().maxCoeff() < 1e-14);
}

TEST_CASE("kl_divergence_backward refuses an infinite KL and mismatched shapes", "[kernels][kl]") {
  row_matrix_f p(1, 3), q(1, 3);
  p << 0, 1, 2;
  q << 0, 1, -std::numeric_limits<float>::infinity();
  std::vector<float> kl(1), lp(1), lq(1);
  kernels::kl_divergence(p, q, kernels::span_of(kl), {}, {}, kernels::span_of(lp),
                         kernels::span_of(lq));
  CHECK(std::isinf(kl[0]));
  row_matrix_f dp(1, 3), dq(1, 3);
  const std::vector<float> g{1};
  CHECK_THROWS_WITH(
      kernels::kl_divergence_backward(p, q, std::span<const float>(lp), std::span<const float>(lq),
                                      std::span<const float>(kl), g, dp, dq),
      Catch::Contains("kl[0] = inf"));
  row_matrix_f q2(1, 4);
  q2.setZero();
  CHECK_THROWS_AS(kernels::kl_divergence(p, q2, kernels::span_of(kl), {}), shape_error);
  auto qn = q;
  qn(0, 2) = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_WITH(kernels::kl_divergence(p, qn, kernels::span_of(kl), {}),
                    Catch::Contains("q_logits(0, 2)"));
}
