#include "prefopt/kernels/token_stats.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include "kernel_reference.hpp"
#include "prefopt/kernels/entropy.hpp"
#include "prefopt/kernels/kl.hpp"
#include "prefopt/kernels/logsumexp.hpp"
#include "prefopt/kernels/token_log_probs.hpp"

using namespace prefopt;
using idx = prefopt::index_t;

TEMPLATE_TEST_CASE("token_stats outputs are bitwise equal to the dedicated kernels",
                   "[kernels][token_stats]", float, double) {
  using T = TestType;
  const idx n = 5;
  const idx v = 3333;
  const auto z = test::random_logits<T>(n, v, 20.0, 51, 0.05);
  const auto zq = test::random_logits<T>(n, v, 20.0, 52, 0.0);
  const auto t = test::random_targets<T>(n, v, 2);
  std::vector<T> lp(n), lse(n), h(n), kl(n), klr(n), lseq(n);
  kernels::token_stats(z, zq, t,
                       {.log_probs = kernels::span_of(lp),
                        .logsumexp = kernels::span_of(lse),
                        .entropy = kernels::span_of(h),
                        .kl = kernels::span_of(kl),
                        .kl_reverse = kernels::span_of(klr),
                        .logsumexp_q = kernels::span_of(lseq)});
  std::vector<T> lp1(n), lse1(n), h1(n), kl1(n), klr1(n), lseq1(n), lp2(n), h2(n);
  kernels::token_log_probs(z, t, kernels::span_of(lp1), {}, kernels::span_of(lse1));
  kernels::entropy(z, kernels::span_of(h1));
  kernels::kl_divergence(z, zq, kernels::span_of(kl1), kernels::span_of(klr1), {}, {},
                         kernels::span_of(lseq1));
  kernels::token_stats(z, t, {.log_probs = kernels::span_of(lp2), .entropy = kernels::span_of(h2)});
  CHECK(lp == lp1);
  CHECK(lp2 == lp1);
  CHECK(lse == lse1);
  CHECK(h == h1);
  CHECK(h2 == h1);
  CHECK(kl == kl1);
  CHECK(klr == klr1);
  CHECK(lseq == lseq1);
}

TEST_CASE("token_stats_backward equals finite differences of a mixed loss in double",
          "[kernels][token_stats][gradient]") {
  const idx n = 3;
  const idx v = 6;
  auto z = test::random_logits<double>(n, v, 1.5, 61);
  auto zq = test::random_logits<double>(n, v, 1.5, 62);
  z(1, 2) = zq(1, 2) = -std::numeric_limits<double>::infinity();
  const std::vector<token_id> t{0, 3, 5};
  const std::vector<double> g_lp{1.0, -0.5, 0.3}, g_h{0.2, 0.7, -1.0}, g_kl{-0.6, 1.2, 0.4};
  auto loss = [&](const row_matrix_d& a, const row_matrix_d& b) {
    std::vector<double> lp(n), h(n), kl(n);
    kernels::token_stats(a, b, t,
                         {.log_probs = kernels::span_of(lp),
                          .entropy = kernels::span_of(h),
                          .kl = kernels::span_of(kl)});
    double s = 0;
    for (std::size_t i = 0; i < lp.size(); ++i)
      s += g_lp[i] * lp[i] + g_h[i] * h[i] + g_kl[i] * kl[i];
    return s;
  };
  std::vector<double> lp(n), lse(n), h(n), kl(n), lseq(n);
  kernels::token_stats(z, zq, t,
                       {.log_probs = kernels::span_of(lp),
                        .logsumexp = kernels::span_of(lse),
                        .entropy = kernels::span_of(h),
                        .kl = kernels::span_of(kl),
                        .logsumexp_q = kernels::span_of(lseq)});
  row_matrix_d dz(n, v), dq(n, v);
  kernels::token_stats_backward(z, zq, t,
                                {.logsumexp = lse, .entropy = h, .kl = kl, .logsumexp_q = lseq},
                                {.log_probs = g_lp, .entropy = g_h, .kl = g_kl}, dz, dq);
  const auto num_z = test::numeric_gradient(z, [&](const row_matrix_d& x) { return loss(x, zq); });
  const auto num_q = test::numeric_gradient(zq, [&](const row_matrix_d& x) { return loss(z, x); });
  CHECK((dz - num_z).cwiseAbs().maxCoeff() < 1e-8);
  CHECK((dq - num_q).cwiseAbs().maxCoeff() < 1e-8);
  // Single-matrix form: log-prob and entropy gradients only.
  row_matrix_d d1(n, v);
  kernels::token_stats_backward(z, t, {.logsumexp = lse, .entropy = h},
                                {.log_probs = g_lp, .entropy = g_h}, d1);
  const auto num1 = test::numeric_gradient(z, [&](const row_matrix_d& x) {
    std::vector<double> a(n), b(n);
    kernels::token_stats(x, t, {.log_probs = kernels::span_of(a), .entropy = kernels::span_of(b)});
    double s = 0;
    for (std::size_t i = 0; i < a.size(); ++i) s += g_lp[i] * a[i] + g_h[i] * b[i];
    return s;
  });
  CHECK((d1 - num1).cwiseAbs().maxCoeff() < 1e-8);
}

TEMPLATE_TEST_CASE("token_stats_backward with a frozen reference needs no q gradient matrix",
                   "[kernels][token_stats][gradient]", float, double) {
  using T = TestType;
  const idx n = 4;
  const idx v = 700;
  const auto z = test::random_logits<T>(n, v, 8.0, 81, 0.05);
  const auto zq = test::random_logits<T>(n, v, 8.0, 82, 0.0);
  const auto t = test::random_targets<T>(n, v, 83);
  std::vector<T> lse(n), h(n), kl(n), lseq(n);
  kernels::token_stats(z, zq, t,
                       {.logsumexp = kernels::span_of(lse),
                        .entropy = kernels::span_of(h),
                        .kl = kernels::span_of(kl),
                        .logsumexp_q = kernels::span_of(lseq)});
  const std::vector<T> g_lp{T(1), T(-0.5), T(0.25), T(2)};
  const std::vector<T> g_h{T(0.5), T(0), T(-1), T(0.125)};
  const std::vector<T> g_kl{T(-0.75), T(1.5), T(0.5), T(1)};
  const kernels::token_stats_saved<T> saved{
      .logsumexp = lse, .entropy = h, .kl = kl, .logsumexp_q = lseq};
  const kernels::token_stats_grads<T> grads{.log_probs = g_lp, .entropy = g_h, .kl = g_kl};
  // The frozen form writes exactly the model half of the full two-matrix backward ...
  row_matrix_t<T> d_full(n, v), dq(n, v), d_frozen(n, v);
  kernels::token_stats_backward(z, zq, t, saved, grads, d_full, dq);
  d_frozen.setConstant(T(7));
  kernels::token_stats_backward(z, zq, t, saved, grads, d_frozen);
  CHECK(d_frozen == d_full);
  // ... and the KL term is in it: without g_kl the result differs.
  row_matrix_t<T> d_no_kl(n, v);
  kernels::token_stats_backward(z, t, {.logsumexp = lse, .entropy = h},
                                {.log_probs = g_lp, .entropy = g_h}, d_no_kl);
  CHECK((d_frozen - d_no_kl).cwiseAbs().maxCoeff() > T(1e-3));
  // Accumulation adds the same sweep; options follow the gradient like in the other forms.
  kernels::options acc;
  acc.mode = kernels::write_mode::accumulate;
  row_matrix_t<T> d_acc = row_matrix_t<T>::Constant(n, v, T(1));
  kernels::token_stats_backward(z, zq, t, saved, grads, d_acc, acc);
  const double scale = 1.0 + static_cast<double>(d_full.cwiseAbs().maxCoeff());
  CHECK(static_cast<double>((d_acc.array() - T(1) - d_full.array()).abs().maxCoeff()) <=
        4.0 * test::unit_roundoff<T>() * scale);
  // Bad input is refused as in the other forms, naming the kernel.
  const std::vector<T> short_lse(n - 1);
  CHECK_THROWS_AS(
      kernels::token_stats_backward(
          z, zq, t, {.logsumexp = short_lse, .entropy = h, .kl = kl, .logsumexp_q = lseq}, grads,
          d_frozen),
      shape_error);
}

TEST_CASE("token_stats refuses KL outputs without a second matrix and a KL gradient without q",
          "[kernels][token_stats]") {
  const auto z = test::random_logits<float>(2, 5, 1.0, 1);
  std::vector<float> kl(2);
  CHECK_THROWS_AS(kernels::token_stats(z, {}, {.kl = kernels::span_of(kl)}), invalid_argument);
  std::vector<float> lse(2), g(2, 1.0f);
  kernels::row_logsumexp(z, kernels::span_of(lse));
  row_matrix_f d(2, 5);
  CHECK_THROWS_AS(kernels::token_stats_backward(
                      z, {}, {.logsumexp = lse, .kl = kl, .logsumexp_q = lse}, {.kl = g}, d),
                  invalid_argument);
}

TEST_CASE("double accumulation makes float token_stats accurate to the final rounding",
          "[kernels][token_stats]") {
  const idx n = 3;
  const idx v = 9000;
  const auto z = test::random_logits<float>(n, v, 30.0, 71, 0.1);
  row_matrix_f zq2 = z + test::random_logits<float>(n, v, 0.5, 73);  // close to p, same -inf mask
  for (idx i = 0; i < n; ++i) {
    for (idx j = 0; j < v; ++j) {
      if (std::isinf(z(i, j))) zq2(i, j) = z(i, j);
    }
  }
  const auto t = test::random_targets<float>(n, v, 74);
  kernels::options opt;
  opt.accumulate = kernels::accumulation::double_precision;
  std::vector<float> lp(n), h(n), kl(n), klr(n);
  kernels::token_stats(z, zq2, t,
                       {.log_probs = kernels::span_of(lp),
                        .entropy = kernels::span_of(h),
                        .kl = kernels::span_of(kl),
                        .kl_reverse = kernels::span_of(klr)},
                       opt);
  const double u = test::unit_roundoff<float>();
  for (idx i = 0; i < n; ++i) {
    const auto k = static_cast<std::size_t>(i);
    const test::ld ref_lp = static_cast<test::ld>(z(i, t[k])) - test::ref_lse(z.row(i).data(), v);
    const test::ld ref_h = test::ref_entropy(z.row(i).data(), v);
    const test::ld ref_kl = test::ref_kl(z.row(i).data(), zq2.row(i).data(), v);
    const test::ld ref_klr = test::ref_kl(zq2.row(i).data(), z.row(i).data(), v);
    if (std::isinf(z(i, t[k]))) {
      CHECK(std::isinf(lp[k]));
    } else {
      CHECK(test::err(lp[k], ref_lp) <= 2 * u * (static_cast<double>(std::abs(ref_lp)) + 1));
    }
    CHECK(test::err(h[k], ref_h) <= 2 * u * (static_cast<double>(ref_h) + 1));
    CHECK(test::err(kl[k], ref_kl) <= 2 * u * (static_cast<double>(ref_kl) + 1e-3));
    CHECK(test::err(klr[k], ref_klr) <= 2 * u * (static_cast<double>(ref_klr) + 1e-3));
  }
}
