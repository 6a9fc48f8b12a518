#include "prefopt/kernels/ragged.hpp"

#include <catch2/catch.hpp>

#include <Eigen/Core>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "prefopt/kernels/kl_estimators.hpp"
#include "prefopt/losses/common.hpp"
#include "prefopt/losses/kl_estimators.hpp"

using namespace prefopt;
using idx = prefopt::index_t;

TEST_CASE("ragged sums and length-averaged means follow ALGORITHMS.md 0.2.2", "[kernels][ragged]") {
  const std::vector<double> values{1, 2, 3, 99, 4, 5, 6, 7};
  const std::vector<idx> offsets{0, 3, 3, 4, 8};  // [1 2 3], [], [99], [4 5 6 7]
  const ragged_view<const double> r{offsets, values};
  std::vector<double> s(4), m(4);
  kernels::ragged_sum(r, kernels::span_of(s));
  kernels::ragged_mean(r, kernels::span_of(m));
  CHECK(s == std::vector<double>{6, 0, 99, 22});
  CHECK(m == std::vector<double>{2, 0, 99, 5.5});
}

TEST_CASE("ragged backward broadcasts the sequence gradient, divided by the length for means",
          "[kernels][ragged]") {
  const std::vector<idx> offsets{1, 3, 3, 6};  // starts inside the buffer; token 0 untouched
  const std::vector<float> g{2.0f, 5.0f, -3.0f};
  std::vector<float> d(7, 10.0f);
  kernels::ragged_sum_backward<float>(offsets, g, kernels::span_of(d));
  CHECK(d == std::vector<float>{10, 2, 2, -3, -3, -3, 10});
  kernels::ragged_mean_backward<float>(offsets, g, kernels::span_of(d),
                                       kernels::write_mode::accumulate);
  CHECK(d == std::vector<float>{10, 3, 3, -4, -4, -4, 10});
}

TEST_CASE("ragged reductions of a sequence do not depend on the rest of the batch",
          "[kernels][ragged][invariance]") {
  std::vector<float> values(1000);
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = 1.0f / static_cast<float>(i + 3);
  const std::vector<idx> a{0, 100, 700, 1000};
  const std::vector<idx> b{100, 700};
  std::vector<float> sa(3), sb(1);
  kernels::ragged_sum(ragged_view<const float>{a, values}, kernels::span_of(sa));
  kernels::ragged_sum(ragged_view<const float>{b, values}, kernels::span_of(sb));
  CHECK(sa[1] == sb[0]);
}

TEST_CASE("ragged reductions reject bad offsets and sizes", "[kernels][ragged]") {
  const std::vector<float> values{1, 2, 3};
  const std::vector<idx> bad{0, 2, 1};
  std::vector<float> out(2);
  CHECK_THROWS_WITH(
      kernels::ragged_sum(ragged_view<const float>{bad, values}, kernels::span_of(out)),
      Catch::Contains("ragged_sum") && Catch::Contains("offsets[2]"));
  const std::vector<idx> past{0, 4};
  std::vector<float> one(1);
  CHECK_THROWS_AS(
      kernels::ragged_mean(ragged_view<const float>{past, values}, kernels::span_of(one)),
      shape_error);
  const std::vector<idx> ok{0, 1, 3};
  CHECK_THROWS_AS(kernels::ragged_sum(ragged_view<const float>{ok, values}, kernels::span_of(one)),
                  shape_error);
}

TEST_CASE("losses::sequence_sums is the kernels' ragged sum: double accumulation, bitwise equal",
          "[kernels][ragged][losses]") {
  // 1e8 followed by ones: a float running sum stays at 1e8, the double sum does not.
  std::vector<float> vals{1e8f, 1, 1, 1, 1, 1, 1, 1, 1, -1e8f, 0.1f, 0.2f, 0.3f};
  const std::vector<prefopt::index_t> offs{0, 10, 13};
  const prefopt::ragged_view<const float> rv{offs, vals};
  std::vector<float> ks(2);
  prefopt::kernels::ragged_sum(rv, prefopt::kernels::span_of(ks));
  Eigen::VectorXf ls(2);
  std::vector<prefopt::index_t> len(2);
  prefopt::losses::sequence_sums<float>(rv, {}, ls, len);
  CHECK(ks[0] == 8.0f);
  CHECK(ls(0) == ks[0]);
  CHECK(ls(1) == ks[1]);
  CHECK(len[0] == 10);
  // With a mask, the unmasked tokens in token order, NaN in masked slots never read.
  vals[1] = std::numeric_limits<float>::quiet_NaN();
  const std::vector<std::uint8_t> mask{1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
  prefopt::losses::sequence_sums<float>(rv, mask, ls, len);
  CHECK(ls(0) == 7.0f);
  CHECK(len[0] == 9);
}

TEST_CASE("losses' k1/k2/k3/abs are the kernels' estimators, accurate as d -> 0",
          "[kernels][kl_estimators][losses]") {
  namespace pk = prefopt::kernels;
  namespace pl = prefopt::losses;
  for (const double d : {-3.0, -0.4, -1e-3, -1e-9, 0.0, 1e-9, 1e-3, 0.4, 3.0}) {
    CHECK(pl::kl_k1::value(d) == pk::kl_estimate(pk::kl_estimator::k1, d));
    CHECK(pl::kl_k2::value(d) == pk::kl_estimate(pk::kl_estimator::k2, d));
    CHECK(pl::kl_k3::value(d) == pk::kl_estimate(pk::kl_estimator::k3, d));
    CHECK(pl::kl_abs::value(d) == pk::kl_estimate(pk::kl_estimator::abs, d));
    CHECK(pl::kl_k3::derivative(d) == pk::kl_estimate_derivative(pk::kl_estimator::k3, d));
    const auto f = static_cast<float>(d);
    CHECK(pl::kl_k3::value(f) == pk::kl_estimate(pk::kl_estimator::k3, f));
  }
  // k3(d) = d^2/2 - d^3/6 + ...: full relative accuracy at tiny d (expm1(-d) + d in float loses
  // it).
  const float tiny = 1e-4f;
  const auto td = static_cast<double>(tiny);
  const double ref = 0.5 * td * td - td * td * td / 6;
  CHECK(std::abs(static_cast<double>(pl::kl_k3::value(tiny)) - ref) <= 1e-6 * ref);
}
