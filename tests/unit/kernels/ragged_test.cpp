#include "prefopt/kernels/ragged.hpp"

#include <catch2/catch.hpp>

#include <vector>

using namespace prefopt;
using idx = prefopt::index;

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
