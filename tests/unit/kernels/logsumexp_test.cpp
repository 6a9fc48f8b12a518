#include "prefopt/kernels/logsumexp.hpp"

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

TEMPLATE_TEST_CASE("row_logsumexp matches a long-double reference within the documented bound",
                   "[kernels][logsumexp]", float, double) {
  using T = TestType;
  for (const idx v : {idx{1}, idx{7}, idx{1007}, idx{1008}, idx{1009}, idx{5000}}) {
    for (const double scale : {1.0, 100.0, 1e4}) {
      for (const double neg_inf : {0.0, 0.3}) {
        const idx n = 5;
        const auto z =
            test::random_logits<T>(n, v, scale, static_cast<std::uint64_t>(v) * 31 + 7, neg_inf);
        std::vector<T> lse(n);
        kernels::row_logsumexp(z, kernels::span_of(lse));
        for (idx i = 0; i < n; ++i) {
          const ld ref = test::ref_lse(z.row(i).data(), v);
          INFO("V = " << v << ", scale = " << scale << ", row " << i);
          CHECK(test::err(lse[static_cast<std::size_t>(i)], ref) <=
                test::value_bound<T>(static_cast<double>(ref), v));
        }
      }
    }
  }
}

TEST_CASE("row_logsumexp is accurate for a 256k vocabulary with float and double accumulation",
          "[kernels][logsumexp]") {
  const idx v = 262144;
  const auto z = test::random_logits<float>(2, v, 1e4, 99, 0.1);
  std::vector<float> lse(2), lse_d(2);
  kernels::row_logsumexp(z, kernels::span_of(lse));
  kernels::options opt;
  opt.accumulate = kernels::accumulation::double_precision;
  kernels::row_logsumexp(z, kernels::span_of(lse_d), opt);
  const auto z2 = test::random_logits<float>(2, v, 3.0, 5);  // many comparable terms
  std::vector<float> lse2(2);
  kernels::row_logsumexp(z2, kernels::span_of(lse2));
  for (idx i = 0; i < 2; ++i) {
    const auto u = static_cast<std::size_t>(i);
    const ld ref = test::ref_lse(z.row(i).data(), v);
    CHECK(test::err(lse[u], ref) <= test::value_bound<float>(static_cast<double>(ref), v));
    CHECK(test::err(lse_d[u], ref) <=
          test::unit_roundoff<float>() * (static_cast<double>(std::abs(ref)) + 1));
    const ld ref2 = test::ref_lse(z2.row(i).data(), v);
    CHECK(test::err(lse2[u], ref2) <= test::value_bound<float>(static_cast<double>(ref2), v));
  }
}

TEMPLATE_TEST_CASE("log_softmax out of place and in place agree bitwise and normalise each row",
                   "[kernels][logsumexp]", float, double) {
  using T = TestType;
  const idx n = 4;
  const idx v = 2500;
  auto z = test::random_logits<T>(n, v, 30.0, 3, 0.2);
  row_matrix_t<T> out(n, v);
  kernels::log_softmax(z, out);
  std::vector<T> lse(n);
  kernels::row_logsumexp(z, kernels::span_of(lse));
  for (idx i = 0; i < n; ++i) {
    const ld ref = test::ref_lse(z.row(i).data(), v);
    ld total = 0;
    for (idx j = 0; j < v; ++j) {
      if (std::isinf(z(i, j))) {
        CHECK(out(i, j) == -std::numeric_limits<T>::infinity());
        continue;
      }
      CHECK(test::err(out(i, j), static_cast<ld>(z(i, j)) - ref) <=
            test::value_bound<T>(static_cast<double>(static_cast<ld>(z(i, j)) - ref), v));
      total += std::exp(static_cast<ld>(out(i, j)));
    }
    CHECK(test::err(total, 1) <=
          200 * test::unit_roundoff<T>() * std::sqrt(static_cast<double>(v)));
  }
  kernels::log_softmax_inplace(z);
  CHECK(std::memcmp(z.data(), out.data(), sizeof(T) * static_cast<std::size_t>(n * v)) == 0);
}

TEST_CASE("row_logsumexp of an empty batch writes nothing and does not throw",
          "[kernels][logsumexp]") {
  row_matrix_f z(0, 17);
  std::vector<float> lse;
  CHECK_NOTHROW(kernels::row_logsumexp(z, kernels::span_of(lse)));
  row_matrix_f out(0, 17);
  CHECK_NOTHROW(kernels::log_softmax(z, out));
}

TEMPLATE_TEST_CASE("row_logsumexp rejects NaN, +inf and all -inf rows naming the row",
                   "[kernels][logsumexp]", float, double) {
  using T = TestType;
  for (const idx v : {idx{3}, idx{2000}}) {
    auto z = test::random_logits<T>(6, v, 5.0, 1);
    std::vector<T> lse(6);
    const idx col = v - 2;
    z(3, col) = std::numeric_limits<T>::quiet_NaN();
    CHECK_THROWS_AS(kernels::row_logsumexp(z, kernels::span_of(lse)), invalid_argument);
    CHECK_THROWS_WITH(kernels::row_logsumexp(z, kernels::span_of(lse)),
                      Catch::Contains("row_logsumexp") && Catch::Contains("row 3") &&
                          Catch::Contains("(3, " + std::to_string(col) + ")"));
    z(3, col) = std::numeric_limits<T>::infinity();
    CHECK_THROWS_WITH(kernels::row_logsumexp(z, kernels::span_of(lse)), Catch::Contains("row 3"));
    z.row(3).setConstant(-std::numeric_limits<T>::infinity());
    CHECK_THROWS_WITH(kernels::row_logsumexp(z, kernels::span_of(lse)),
                      Catch::Contains("row 3") && Catch::Contains("no finite logit"));
    // NaN after a run of -inf (the running maximum is still -inf) is still caught.
    z(3, v - 1) = std::numeric_limits<T>::quiet_NaN();
    CHECK_THROWS_WITH(kernels::row_logsumexp(z, kernels::span_of(lse)), Catch::Contains("row 3"));
  }
}

TEST_CASE("row_logsumexp rejects mismatched output and mask sizes with shape_error",
          "[kernels][logsumexp]") {
  const auto z = test::random_logits<float>(4, 10, 1.0, 2);
  std::vector<float> lse(3);
  CHECK_THROWS_AS(kernels::row_logsumexp(z, kernels::span_of(lse)), shape_error);
  std::vector<float> ok(4);
  std::vector<std::uint8_t> mask(5, 1);
  kernels::options opt;
  opt.mask = mask;
  CHECK_THROWS_AS(kernels::row_logsumexp(z, kernels::span_of(ok), opt), shape_error);
  row_matrix_f out(4, 9);
  CHECK_THROWS_AS(kernels::log_softmax(z, out), shape_error);
}

TEST_CASE("masked rows are not read and give 0", "[kernels][logsumexp]") {
  auto z = test::random_logits<float>(3, 50, 1.0, 4);
  z(1, 7) = std::numeric_limits<float>::quiet_NaN();
  std::vector<std::uint8_t> mask{1, 0, 1};
  kernels::options opt;
  opt.mask = mask;
  std::vector<float> lse(3, 5.0f);
  kernels::row_logsumexp(z, kernels::span_of(lse), opt);
  CHECK(lse[1] == 0.0f);
  CHECK(test::err(lse[0], test::ref_lse(z.row(0).data(), 50)) < 1e-5);
}

TEMPLATE_TEST_CASE("a row's log-sum-exp is bitwise independent of the batch around it",
                   "[kernels][logsumexp][invariance]", float, double) {
  using T = TestType;
  const idx v = 3001;  // odd: rows sit at every alignment
  const auto z = test::random_logits<T>(9, v, 20.0, 17, 0.05);
  std::vector<T> all(9);
  kernels::row_logsumexp(z, kernels::span_of(all));
  // Each row alone, copied to a buffer shifted by one element (a different alignment).
  std::vector<T> buffer(static_cast<std::size_t>(v + 1));
  for (idx i = 0; i < 9; ++i) {
    std::memcpy(buffer.data() + 1, z.row(i).data(), sizeof(T) * static_cast<std::size_t>(v));
    const Eigen::Map<const row_matrix_t<T>> one(buffer.data() + 1, 1, v);
    std::vector<T> single(1);
    kernels::row_logsumexp(one, kernels::span_of(single));
    CHECK(single[0] == all[static_cast<std::size_t>(i)]);
  }
  // The rows in reverse order, as a block of a larger matrix with a row stride.
  row_matrix_t<T> big(9, v + 5);
  for (idx i = 0; i < 9; ++i) big.row(8 - i).head(v) = z.row(i);
  std::vector<T> rev(9);
  kernels::row_logsumexp(big.leftCols(v), kernels::span_of(rev));
  for (std::size_t i = 0; i < 9; ++i) CHECK(rev[8 - i] == all[i]);
}

#if defined(_OPENMP)
TEST_CASE("row_logsumexp is bitwise identical with 1 and 2 threads",
          "[kernels][logsumexp][invariance]") {
  const auto z = test::random_logits<float>(64, 4000, 50.0, 23, 0.01);
  std::vector<float> one(64), two(64);
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  kernels::row_logsumexp(z, kernels::span_of(one));
  omp_set_num_threads(2);
  kernels::row_logsumexp(z, kernels::span_of(two));
  omp_set_num_threads(saved);
  CHECK(std::memcmp(one.data(), two.data(), sizeof(float) * one.size()) == 0);
}
#endif
