#include "prefopt/losses/common.hpp"

#include <catch2/catch.hpp>

#include <vector>

using namespace prefopt;
using namespace prefopt::losses;

TEST_CASE("Spreading with divide_by_length divides by the clamped response length", "[losses]") {
  const std::vector<prefopt::index_t> offsets{0, 4, 4, 6};
  std::vector<double> grads(6, -9.0);
  spread_sequence_gradients<double>(vector_d{{2.0, 5.0, 3.0}}, ragged_view<double>{offsets, grads},
                                    {}, /*divide_by_length=*/true);
  CHECK(grads == std::vector<double>{0.5, 0.5, 0.5, 0.5, 1.5, 1.5});
}

TEST_CASE("Ragged helpers reject inconsistent shapes naming the argument", "[losses]") {
  const std::vector<prefopt::index_t> offsets{0, 2, 1};
  std::vector<double> values(3);
  vector_d sums(2);
  std::vector<prefopt::index_t> lengths(2);
  CHECK_THROWS_WITH(
      sequence_sums<double>(ragged_view<const double>{offsets, values}, {}, sums, lengths),
      Catch::Contains("token_values.offsets[2]"));
  const std::vector<prefopt::index_t> good{0, 2, 3};
  const std::vector<std::uint8_t> short_mask{1, 1};
  CHECK_THROWS_WITH(
      sequence_sums<double>(ragged_view<const double>{good, values}, short_mask, sums, lengths),
      Catch::Contains("mask has size 2, expected 3"));
}
