#include "prefopt/kernels/entropy.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include "kernel_reference.hpp"

using namespace prefopt;
using idx = prefopt::index_t;
using prefopt::test::ld;

TEMPLATE_TEST_CASE("entropy matches a long-double reference within the documented bound",
                   "[kernels][entropy]", float, double) {
  using T = TestType;
  for (const idx v : {idx{1}, idx{5}, idx{1009}, idx{20000}}) {
    for (const double scale : {0.5, 10.0, 1e4}) {
      for (const double neg_inf : {0.0, 0.5}) {
        const idx n = 4;
        const auto z =
            test::random_logits<T>(n, v, scale, static_cast<std::uint64_t>(v) * 3 + 1, neg_inf);
        std::vector<T> h(n), lse(n);
        kernels::entropy(z, kernels::span_of(h), {}, kernels::span_of(lse));
        const double logv = std::log(static_cast<double>(v));
        for (idx i = 0; i < n; ++i) {
          const auto u = static_cast<std::size_t>(i);
          const ld ref = test::ref_entropy(z.row(i).data(), v);
          INFO("V = " << v << ", scale = " << scale << ", row " << i);
          CHECK(test::err(h[u], ref) <=
                test::unit_roundoff<T>() * (logv + 150) * (1 + static_cast<double>(ref) + logv));
          CHECK(h[u] >= T(0));
          CHECK(static_cast<double>(h[u]) <= logv + 1e-5);
        }
      }
    }
  }
}

TEST_CASE("entropy is log V for equal logits and 0 when one finite logit remains",
          "[kernels][entropy]") {
  row_matrix_d z(2, 3000);
  z.row(0).setConstant(-2.5);
  z.row(1).setConstant(-std::numeric_limits<double>::infinity());
  z(1, 1234) = 7.0;
  std::vector<double> h(2);
  kernels::entropy(z, kernels::span_of(h));
  CHECK(std::abs(h[0] - std::log(3000.0)) < 1e-12);
  CHECK(h[1] == 0.0);  // the -inf entries get an exact zero weight
}

TEST_CASE("entropy_backward equals finite differences of sum g_i H_i in double",
          "[kernels][entropy][gradient]") {
  const idx n = 3;
  const idx v = 8;
  auto z = test::random_logits<double>(n, v, 2.0, 21);
  z(0, 3) = -std::numeric_limits<double>::infinity();
  const std::vector<double> g{1.5, -0.4, 0.9};
  std::vector<double> h(n), lse(n);
  kernels::entropy(z, kernels::span_of(h), {}, kernels::span_of(lse));
  row_matrix_d d(n, v);
  kernels::entropy_backward(z, std::span<const double>(lse), std::span<const double>(h), g, d);
  const auto num = test::numeric_gradient(z, [&](const row_matrix_d& x) {
    std::vector<double> e(n);
    kernels::entropy(x, kernels::span_of(e));
    double s = 0;
    for (std::size_t i = 0; i < e.size(); ++i) s += g[i] * e[i];
    return s;
  });
  CHECK((d - num).cwiseAbs().maxCoeff() < 1e-8);
  CHECK(d(0, 3) == Approx(0.0).margin(1e-300));
}

TEST_CASE("entropy_backward rejects a non-finite saved entropy", "[kernels][entropy]") {
  const auto z = test::random_logits<float>(2, 10, 1.0, 1);
  std::vector<float> h(2), lse(2);
  kernels::entropy(z, kernels::span_of(h), {}, kernels::span_of(lse));
  h[1] = std::numeric_limits<float>::quiet_NaN();
  row_matrix_f d(2, 10);
  const std::vector<float> g{1, 1};
  CHECK_THROWS_WITH(
      kernels::entropy_backward(z, std::span<const float>(lse), std::span<const float>(h), g, d),
      Catch::Contains("entropy_backward") && Catch::Contains("entropy[1]"));
}
