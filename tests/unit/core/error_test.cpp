#include "prefopt/core/error.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <type_traits>

#include "prefopt/core/assert.hpp"

TEST_CASE("every prefopt error derives from prefopt::error and std::runtime_error",
          "[core][error]") {
  STATIC_REQUIRE(std::is_base_of_v<std::runtime_error, prefopt::error>);
  STATIC_REQUIRE(std::is_base_of_v<prefopt::error, prefopt::invalid_argument>);
  STATIC_REQUIRE(std::is_base_of_v<prefopt::invalid_argument, prefopt::shape_error>);
  STATIC_REQUIRE(std::is_base_of_v<prefopt::error, prefopt::parse_error>);
  STATIC_REQUIRE(std::is_base_of_v<prefopt::error, prefopt::io_error>);
  STATIC_REQUIRE(std::is_base_of_v<prefopt::error, prefopt::convergence_error>);
  STATIC_REQUIRE(std::is_base_of_v<prefopt::error, prefopt::assertion_error>);
}

TEST_CASE("PREFOPT_THROW streams its parts into the message of the named kind", "[core][error]") {
  try {
    PREFOPT_THROW(shape_error, "f: x has ", 3, " rows, expected ", 4.5);
    FAIL("no throw");
  } catch (const prefopt::shape_error& e) {
    CHECK(std::string(e.what()) == "f: x has 3 rows, expected 4.5");
  }
}

TEST_CASE("PREFOPT_CHECK throws only on failure and builds the message only then",
          "[core][error]") {
  int evaluated = 0;
  auto part = [&] {
    ++evaluated;
    return "part";
  };
  CHECK_NOTHROW([&] { PREFOPT_CHECK(1 + 1 == 2, invalid_argument, part()); }());
  CHECK(evaluated == 0);
  CHECK_THROWS_AS([&] { PREFOPT_CHECK(1 + 1 == 3, invalid_argument, part()); }(),
                  prefopt::invalid_argument);
  CHECK(evaluated == 1);
}

TEST_CASE("PREFOPT_ASSERT is active in the tests and names file and line", "[core][error]") {
  // The test suites compile with PREFOPT_ENABLE_ASSERTS.
  CHECK_THROWS_WITH(
      [] { PREFOPT_ASSERT(2 < 1); }(),
      Catch::Contains("error_test.cpp") && Catch::Contains("assertion failed: 2 < 1"));
  CHECK_NOTHROW([] { PREFOPT_ASSERT(1 < 2); }());
}

TEST_CASE("doubles in messages keep enough digits to tell close values apart", "[core][error]") {
  CHECK_THROWS_WITH(PREFOPT_THROW(error, 1.0 + 1e-12), Catch::Contains("1.000000000001"));
}
