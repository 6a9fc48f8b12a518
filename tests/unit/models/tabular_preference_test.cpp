#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include "prefopt/models/preference/tabular.hpp"
#include "support/laws.hpp"

using prefopt::matrix_d;
using prefopt::tabular_preference_model;

namespace {
matrix_d rock_paper_scissors() {
  matrix_d p(3, 3);
  p << 0.5, 1.0, 0.0, 0.0, 0.5, 1.0, 1.0, 0.0, 0.5;
  return p;
}
matrix_d dice() {
  matrix_d p(3, 3);
  p << 0.5, 5.0 / 9, 4.0 / 9, 4.0 / 9, 0.5, 5.0 / 9, 5.0 / 9, 4.0 / 9, 0.5;
  return p;
}
}  // namespace

TEST_CASE("tabular preference models satisfy the preference laws", "[models]") {
  prefopt::test::check_preference_laws(tabular_preference_model(rock_paper_scissors()));
  prefopt::test::check_preference_laws(
      tabular_preference_model(std::vector<matrix_d>{dice(), rock_paper_scissors()}));
}

TEST_CASE("preference() reads P[context](first, second)", "[models]") {
  const tabular_preference_model model(std::vector<matrix_d>{dice(), rock_paper_scissors()});
  const std::vector<prefopt::index_t> contexts{0, 1, 1}, first{0, 0, 2}, second{1, 1, 0};
  prefopt::vector_d out(3);
  model.preference({{contexts, first}, {contexts, second}}, out);
  CHECK(out[0] == 5.0 / 9);
  CHECK(out[1] == 1.0);
  CHECK(out[2] == 1.0);
  const std::vector<prefopt::index_t> other_contexts{0, 0, 1};
  CHECK_THROWS_WITH(
      model.preference({{contexts, first}, {other_contexts, second}}, out),
      Catch::Contains("pairs.first.contexts[1] = 1 but pairs.second.contexts[1] = 0"));
}

TEST_CASE("invalid preference matrices are rejected naming context, row and column", "[models]") {
  SECTION("an entry outside [0, 1]") {
    matrix_d p = rock_paper_scissors();
    p(1, 2) = 1.5;
    p(2, 1) = -0.5;
    CHECK_THROWS_WITH(tabular_preference_model(std::vector<matrix_d>{dice(), p}),
                      Catch::Contains("tabular_preference_model: P[context 1](1, 2) = 1.5") &&
                          Catch::Contains("expected a probability in [0, 1]"));
  }
  SECTION("P + P^T != 1") {
    matrix_d p = dice();
    p(0, 2) = 0.45;
    CHECK_THROWS_WITH(tabular_preference_model(p),
                      Catch::Contains("P[context 0](0, 2) + (2, 0) =") &&
                          Catch::Contains("expected P(i, j) + P(j, i) = 1"));
  }
  SECTION("P + P^T = 1 holds up to the stated tolerance") {
    matrix_d p = dice();
    p(0, 2) += 1e-13;
    CHECK_NOTHROW(tabular_preference_model(p));
    p(0, 2) += 1e-11;
    CHECK_THROWS_AS(tabular_preference_model(p), prefopt::invalid_argument);
    CHECK_NOTHROW(tabular_preference_model(p, /*tolerance=*/1e-9));
  }
  SECTION("a diagonal other than 1/2") {
    matrix_d p = dice();
    p(1, 1) = 0.4;
    CHECK_THROWS_WITH(tabular_preference_model(p),
                      Catch::Contains("P[context 0](1, 1) = 0.4") &&
                          Catch::Contains("expected 1/2 on the diagonal"));
  }
  SECTION("a NaN") {
    matrix_d p = dice();
    p(2, 0) = std::numeric_limits<double>::quiet_NaN();
    CHECK_THROWS_WITH(tabular_preference_model(p), Catch::Contains("P[context 0](2, 0) is NaN"));
  }
  SECTION("the wrong shape") {
    CHECK_THROWS_WITH(tabular_preference_model(matrix_d::Constant(2, 3, 0.5)),
                      Catch::Contains("P[context 0] is 2x3, expected a square matrix"));
    matrix_d two = matrix_d::Constant(2, 2, 0.5);
    CHECK_THROWS_WITH(tabular_preference_model(std::vector<matrix_d>{dice(), two}),
                      Catch::Contains("P[context 1] is 2x2, expected 3x3"));
    CHECK_THROWS_AS(tabular_preference_model(std::vector<matrix_d>{}), prefopt::shape_error);
  }
}
