#include "prefopt/kernels/token_log_probs.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernel_reference.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

using namespace prefopt;
using idx = prefopt::index_t;
using prefopt::test::ld;

TEMPLATE_TEST_CASE("token_log_probs matches a long-double reference within the documented bound",
                   "[kernels][token_log_probs]", float, double) {
  using T = TestType;
  for (const idx v : {idx{1}, idx{2}, idx{1008}, idx{4097}}) {
    for (const double scale : {1.0, 1e4}) {
      for (const double neg_inf : {0.0, 0.4}) {
        const idx n = 6;
        const auto z =
            test::random_logits<T>(n, v, scale, static_cast<std::uint64_t>(v) + 1, neg_inf);
        const auto t = test::random_targets<T>(n, v, 3);
        std::vector<T> lp(n), lse(n);
        kernels::token_log_probs(z, t, kernels::span_of(lp), {}, kernels::span_of(lse));
        for (idx i = 0; i < n; ++i) {
          const auto u = static_cast<std::size_t>(i);
          const ld ref_lse = test::ref_lse(z.row(i).data(), v);
          const T x_t = z(i, t[u]);
          INFO("V = " << v << ", scale = " << scale << ", row " << i);
          CHECK(test::err(lse[u], ref_lse) <=
                test::value_bound<T>(static_cast<double>(ref_lse), v));
          if (std::isinf(x_t)) {
            CHECK(lp[u] == -std::numeric_limits<T>::infinity());
          } else {
            const ld ref = static_cast<ld>(x_t) - ref_lse;
            CHECK(test::err(lp[u], ref) <= test::value_bound<T>(static_cast<double>(ref), v));
            CHECK(lp[u] <= T(0));
          }
        }
      }
    }
  }
}

TEST_CASE("token_log_probs of a one-column vocabulary is exactly 0", "[kernels][token_log_probs]") {
  row_matrix_f z(3, 1);
  z << 5.0f, -1e4f, 0.0f;
  const std::vector<token_id> t{0, 0, 0};
  std::vector<float> lp(3, 1.0f);
  kernels::token_log_probs(z, t, kernels::span_of(lp));
  for (float x : lp) CHECK(x == 0.0f);
}

TEST_CASE("token_log_probs_backward equals finite differences of sum g_i log p_i in double",
          "[kernels][token_log_probs][gradient]") {
  const idx n = 3;
  const idx v = 9;
  auto z = test::random_logits<double>(n, v, 2.0, 8);
  z(1, 4) = -std::numeric_limits<double>::infinity();  // a masked vocabulary entry
  const auto t = std::vector<token_id>{2, 0, 8};
  const std::vector<double> g{0.7, -1.3, 2.0};
  std::vector<double> lp(n), lse(n);
  kernels::token_log_probs(z, t, kernels::span_of(lp), {}, kernels::span_of(lse));
  row_matrix_d d(n, v);
  kernels::token_log_probs_backward(z, t, std::span<const double>(lse), g, d);
  const auto num = test::numeric_gradient(z, [&](const row_matrix_d& x) {
    std::vector<double> l(n);
    kernels::token_log_probs(x, t, kernels::span_of(l));
    double s = 0;
    for (std::size_t i = 0; i < l.size(); ++i) s += g[i] * l[i];
    return s;
  });
  CHECK((d - num).cwiseAbs().maxCoeff() < 1e-8);
  CHECK(std::abs(d(1, 4)) < 1e-300);  // -inf logit: zero probability, zero gradient
  // Each gradient row sums to zero (onehot and softmax both sum to one).
  for (idx i = 0; i < n; ++i) CHECK(std::abs(d.row(i).sum()) < 1e-12);
}

TEMPLATE_TEST_CASE(
    "token_log_probs_backward matches the reference gradient within the bound and accumulates",
    "[kernels][token_log_probs][gradient]", float, double) {
  using T = TestType;
  const idx n = 4;
  const idx v = 3000;
  const auto z = test::random_logits<T>(n, v, 1e3, 12, 0.1);
  const auto t = test::random_targets<T>(n, v, 5);
  std::vector<T> lp(n), lse(n);
  kernels::token_log_probs(z, t, kernels::span_of(lp), {}, kernels::span_of(lse));
  const std::vector<T> g{T(1), T(-0.5), T(2), T(0.25)};
  row_matrix_t<T> d(n, v);
  kernels::token_log_probs_backward(z, t, std::span<const T>(lse), g, d);
  const double u = test::unit_roundoff<T>();
  for (idx i = 0; i < n; ++i) {
    const ld ref_lse = test::ref_lse(z.row(i).data(), v);
    for (idx j = 0; j < v; ++j) {
      const ld p = std::isinf(z(i, j)) ? 0 : std::exp(static_cast<ld>(z(i, j)) - ref_lse);
      const ld ref = static_cast<ld>(g[static_cast<std::size_t>(i)]) *
                     ((j == t[static_cast<std::size_t>(i)] ? 1 : 0) - p);
      const double zj = std::isinf(z(i, j)) ? 0.0 : static_cast<double>(z(i, j));
      const double bound = std::abs(static_cast<double>(g[static_cast<std::size_t>(i)])) * u *
                           ((2 * std::abs(static_cast<double>(ref_lse)) + std::abs(zj) + 150) *
                                static_cast<double>(p) +
                            1);
      CHECK(test::err(d(i, j), ref) <= bound);
    }
  }
  // accumulate adds exactly the overwrite result to what is there.
  row_matrix_t<T> acc = row_matrix_t<T>::Constant(n, v, T(0.5));
  kernels::options opt;
  opt.mode = kernels::write_mode::accumulate;
  kernels::token_log_probs_backward(z, t, std::span<const T>(lse), g, acc, opt);
  CHECK((acc.array() - (d.array() + T(0.5))).abs().maxCoeff() == T(0));
}

TEST_CASE("masked rows give log-prob 0 and a zero (or untouched) gradient",
          "[kernels][token_log_probs]") {
  auto z = test::random_logits<float>(3, 40, 1.0, 6);
  z(2, 3) = std::numeric_limits<float>::quiet_NaN();  // never read
  std::vector<token_id> t{1, 2, 999};                 // the masked target is not checked
  std::vector<std::uint8_t> mask{1, 1, 0};
  kernels::options opt;
  opt.mask = mask;
  std::vector<float> lp(3, 7.0f), lse(3);
  kernels::token_log_probs(z, t, kernels::span_of(lp), opt, kernels::span_of(lse));
  CHECK(lp[2] == 0.0f);
  CHECK(lp[0] < 0.0f);
  row_matrix_f d = row_matrix_f::Constant(3, 40, 9.0f);
  const std::vector<float> g{1, 1, 1};
  kernels::token_log_probs_backward(z, t, std::span<const float>(lse), g, d, opt);
  CHECK(d.row(2).cwiseAbs().maxCoeff() == 0.0f);
  d.setConstant(9.0f);
  opt.mode = kernels::write_mode::accumulate;
  kernels::token_log_probs_backward(z, t, std::span<const float>(lse), g, d, opt);
  CHECK((d.row(2).array() == 9.0f).all());
}

TEST_CASE("token_log_probs rejects targets outside the vocabulary and mismatched sizes",
          "[kernels][token_log_probs]") {
  const auto z = test::random_logits<float>(4, 10, 1.0, 2);
  std::vector<float> lp(4, 3.0f);
  std::vector<token_id> t{0, 1, 10, 2};
  CHECK_THROWS_AS(kernels::token_log_probs(z, t, kernels::span_of(lp)), invalid_argument);
  CHECK_THROWS_WITH(kernels::token_log_probs(z, t, kernels::span_of(lp)),
                    Catch::Contains("token_log_probs") && Catch::Contains("targets[2] = 10"));
  for (float x : lp) CHECK(x == 3.0f);  // nothing written
  t[2] = -1;
  CHECK_THROWS_AS(kernels::token_log_probs(z, t, kernels::span_of(lp)), invalid_argument);
  t.pop_back();
  CHECK_THROWS_AS(kernels::token_log_probs(z, t, kernels::span_of(lp)), shape_error);
  const std::vector<token_id> good{0, 1, 2, 3};
  std::vector<float> lse(4);
  kernels::token_log_probs(z, good, kernels::span_of(lp), {}, kernels::span_of(lse));
  row_matrix_f d(4, 11);
  const std::vector<float> g(4, 1.0f);
  CHECK_THROWS_AS(kernels::token_log_probs_backward(z, good, std::span<const float>(lse), g, d),
                  shape_error);
  row_matrix_f d2(4, 10);
  std::vector<float> bad_lse = lse;
  bad_lse[1] = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_WITH(
      kernels::token_log_probs_backward(z, good, std::span<const float>(bad_lse), g, d2),
      Catch::Contains("logsumexp[1]"));
  auto zn = z;
  zn(2, 5) = std::numeric_limits<float>::infinity();
  CHECK_THROWS_WITH(kernels::token_log_probs(zn, good, kernels::span_of(lp)),
                    Catch::Contains("token_log_probs") && Catch::Contains("row 2"));
}

TEMPLATE_TEST_CASE("token log-probs and their gradient are bitwise independent of the batch",
                   "[kernels][token_log_probs][invariance]", float, double) {
  using T = TestType;
  const idx v = 2049;
  const auto z = test::random_logits<T>(7, v, 40.0, 41, 0.02);
  const auto t = test::random_targets<T>(7, v, 9);
  std::vector<T> lp(7), lse(7);
  kernels::token_log_probs(z, t, kernels::span_of(lp), {}, kernels::span_of(lse));
  const std::vector<T> g(7, T(0.75));
  row_matrix_t<T> d(7, v);
  kernels::token_log_probs_backward(z, t, std::span<const T>(lse), g, d);
  // Rows 5, 1, 3 as their own batch, placed at a shifted (misaligned) address.
  const std::vector<idx> pick{5, 1, 3};
  std::vector<T> buf(static_cast<std::size_t>(3 * v + 1));
  std::vector<token_id> tt;
  for (std::size_t k = 0; k < pick.size(); ++k) {
    std::memcpy(buf.data() + 1 + static_cast<idx>(k) * v, z.row(pick[k]).data(),
                sizeof(T) * static_cast<std::size_t>(v));
    tt.push_back(t[static_cast<std::size_t>(pick[k])]);
  }
  const Eigen::Map<const row_matrix_t<T>> sub(buf.data() + 1, 3, v);
  std::vector<T> lp2(3), lse2(3);
  kernels::token_log_probs(sub, tt, kernels::span_of(lp2), {}, kernels::span_of(lse2));
  row_matrix_t<T> d2(3, v);
  kernels::token_log_probs_backward(sub, tt, std::span<const T>(lse2),
                                    std::span<const T>(g.data(), 3), d2);
  for (std::size_t k = 0; k < pick.size(); ++k) {
    const auto u = static_cast<std::size_t>(pick[k]);
    CHECK(lp2[k] == lp[u]);
    CHECK(lse2[k] == lse[u]);
    CHECK(std::memcmp(d2.row(static_cast<idx>(k)).data(), d.row(pick[k]).data(),
                      sizeof(T) * static_cast<std::size_t>(v)) == 0);
  }
#if defined(_OPENMP)
  const auto zb = test::random_logits<T>(48, v, 40.0, 43);
  const auto tb = test::random_targets<T>(48, v, 4);
  std::vector<T> a(48), b(48);
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  kernels::token_log_probs(zb, tb, kernels::span_of(a));
  omp_set_num_threads(2);
  kernels::token_log_probs(zb, tb, kernels::span_of(b));
  omp_set_num_threads(saved);
  CHECK(std::memcmp(a.data(), b.data(), sizeof(T) * a.size()) == 0);
#endif
}

TEST_CASE("double accumulation of float logits is within a few float ulps of the reference",
          "[kernels][token_log_probs]") {
  const idx v = 50000;
  const auto z = test::random_logits<float>(3, v, 4.0, 77);
  const auto t = test::random_targets<float>(3, v, 1);
  kernels::options opt;
  opt.accumulate = kernels::accumulation::double_precision;
  std::vector<float> lp(3);
  kernels::token_log_probs(z, t, kernels::span_of(lp), opt);
  for (idx i = 0; i < 3; ++i) {
    const auto u = static_cast<std::size_t>(i);
    const ld ref = static_cast<ld>(z(i, t[u])) - test::ref_lse(z.row(i).data(), v);
    CHECK(test::err(lp[u], ref) <=
          test::unit_roundoff<float>() * (static_cast<double>(std::abs(ref)) + 1));
  }
}

TEST_CASE("token_log_probs takes the lse output without options spelled before it",
          "[kernels][token_log_probs]") {
  const auto z = test::random_logits<double>(4, 50, 1.0, 11);
  const auto t = test::random_targets<double>(4, 50, 12);
  std::vector<double> lp1(4), lse1(4), lp2(4), lse2(4, -1.0);
  kernels::token_log_probs(z, t, kernels::span_of(lp1), {}, kernels::span_of(lse1));
  kernels::token_log_probs(z, t, kernels::span_of(lp2), kernels::span_of(lse2));
  CHECK(lp1 == lp2);
  CHECK(lse1 == lse2);  // the lse was written (it started at -1)
  // Options after the lse: a masked row gives 0.
  std::vector<std::uint8_t> mask{1, 0, 1, 1};
  kernels::options opt;
  opt.mask = mask;
  kernels::token_log_probs(z, t, kernels::span_of(lp2), kernels::span_of(lse2), opt);
  CHECK(lp2[1] == 0.0);
  CHECK(lp2[0] == lp1[0]);
}
