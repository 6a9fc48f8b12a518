#include "prefopt/core/types.hpp"

#include <catch2/catch.hpp>

#include <type_traits>
#include <vector>

using prefopt::ragged_view;

TEST_CASE("ragged_view exposes each sequence between consecutive offsets", "[core][types]") {
  const std::vector<prefopt::index_t> offsets{0, 2, 2, 5};
  const std::vector<int> values{1, 2, 3, 4, 5};
  const ragged_view<const int> view{offsets, values};
  REQUIRE_NOTHROW(view.validate("test", "view"));
  CHECK(view.num_sequences() == 3);
  CHECK(view.length(0) == 2);
  CHECK(view.length(1) == 0);
  CHECK(view.sequence(2)[0] == 3);
  CHECK(view.sequence(2).size() == 3);
  CHECK(view.total_length() == 5);
}

TEST_CASE("a ragged_view may start inside a larger buffer", "[core][types]") {
  const std::vector<prefopt::index_t> offsets{3, 4};
  const std::vector<int> values{0, 0, 0, 7, 0};
  const ragged_view<const int> view{offsets, values};
  REQUIRE_NOTHROW(view.validate("test", "view"));
  CHECK(view.sequence(0)[0] == 7);
  CHECK(view.total_length() == 1);
}

TEST_CASE("an empty ragged_view has no sequences", "[core][types]") {
  const ragged_view<const int> view{};
  CHECK(view.num_sequences() == 0);
  CHECK(view.total_length() == 0);
  CHECK_NOTHROW(view.validate("test", "view"));
}

TEST_CASE("ragged_view::validate names the function, argument and the bad offset",
          "[core][types]") {
  const std::vector<int> values{1, 2, 3};
  {
    const std::vector<prefopt::index_t> offsets{0, 2, 1};
    CHECK_THROWS_WITH((ragged_view<const int>{offsets, values}.validate("dpo", "chosen")),
                      Catch::Contains("dpo: chosen.offsets[2] = 1 < offsets[1] = 2"));
  }
  {
    const std::vector<prefopt::index_t> offsets{0, 4};
    CHECK_THROWS_AS((ragged_view<const int>{offsets, values}.validate("dpo", "chosen")),
                    prefopt::shape_error);
  }
  {
    const std::vector<prefopt::index_t> offsets{-1, 1};
    CHECK_THROWS_WITH((ragged_view<const int>{offsets, values}.validate("dpo", "chosen")),
                      Catch::Contains("chosen.offsets[0] = -1"));
  }
}

TEST_CASE("batches report their size", "[core][types]") {
  const std::vector<prefopt::index_t> c{0, 0, 1}, a{2, 1, 0};
  const prefopt::tabular_batch batch{c, a};
  CHECK(batch.size() == 3);
  const prefopt::pair_batch<prefopt::tabular_batch> pairs{batch, batch};
  CHECK(pairs.size() == 3);
}

TEST_CASE("a mutable ragged_view converts to a read-only one over the same memory", "[core]") {
  static_assert(
      std::is_convertible_v<ragged_view<prefopt::token_id>, ragged_view<const prefopt::token_id>>);
  static_assert(
      !std::is_convertible_v<ragged_view<const prefopt::token_id>, ragged_view<prefopt::token_id>>);
  std::vector<prefopt::index_t> offsets{0, 2, 5};
  std::vector<prefopt::token_id> values{1, 2, 3, 4, 5};
  const ragged_view<prefopt::token_id> mutable_view{offsets, values};
  const ragged_view<const prefopt::token_id> read_only = mutable_view;  // no std::as_const, no copy
  CHECK(read_only.values.data() == values.data());
  CHECK(read_only.offsets.data() == offsets.data());
  CHECK(read_only.num_sequences() == 2);
  CHECK(read_only.sequence(1)[2] == 5);
  const prefopt::sequence_batch batch{mutable_view, mutable_view};  // the field types are const
  CHECK(batch.responses.length(1) == 3);
  const auto deduced = mutable_view.as_const();
  static_assert(std::is_same_v<decltype(deduced), const ragged_view<const prefopt::token_id>>);
  values[4] = 9;
  CHECK(deduced.sequence(1)[2] == 9);
}
