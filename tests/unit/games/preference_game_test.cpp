#include "prefopt/games/preference_game.hpp"

#include <catch2/catch.hpp>

#include <string>

using namespace prefopt;

namespace {
matrix_d rps() {
  matrix_d p(3, 3);
  p << 0.5, 1, 0, 0, 0.5, 1, 1, 0, 0.5;
  return p;
}

template <class F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const prefopt::error& e) {
    return e.what();
  }
  return "no error";
}
}  // namespace

TEST_CASE("preference_game stores P, mu, log mu, tau and uniform context weights") {
  vector_d mu(3);
  mu << 0.7, 0.2, 0.1;
  preference_game g(rps(), mu, 0.5);
  CHECK(g.num_contexts() == 1);
  CHECK(g.num_actions() == 3);
  CHECK(g.tau() == 0.5);
  CHECK(g.context_weights()[0] == 1.0);
  CHECK(g.log_reference()(0, 1) == Approx(std::log(0.2)).epsilon(1e-15));
  CHECK(g.preference(0)(0, 1) == 1.0);
  CHECK(g.with_tau(0.0).tau() == 0.0);
  CHECK_FALSE(g.has_lengths());
  row_matrix_d len(1, 3);
  len << 3, 10, 7;
  CHECK(g.with_lengths(len).lengths()(0, 1) == 10);
}

TEST_CASE("preference_game rejects a P outside [0, 1] naming context and index") {
  matrix_d p = rps();
  p(0, 1) = 1.5;
  p(1, 0) = -0.5;
  const auto msg = message_of([&] { preference_game::with_uniform_reference(p, 0.1); });
  CHECK(msg.find("P[context 0](0, 1) = 1.5") != std::string::npos);
}

TEST_CASE("preference_game rejects P + P^T != 1") {
  matrix_d p = rps();
  p(0, 1) = 0.9;
  CHECK_THROWS_AS(preference_game::with_uniform_reference(p, 0.1), invalid_argument);
  const auto msg = message_of([&] { preference_game::with_uniform_reference(p, 0.1); });
  CHECK(msg.find("(0, 1) + (1, 0)") != std::string::npos);
}

TEST_CASE("preference_game rejects a reference with zeros, negatives or a wrong sum") {
  vector_d mu(3);
  mu << 0.5, 0.5, 0.0;
  CHECK(message_of([&] {
          preference_game(rps(), mu, 0.1);
        }).find("reference(context 0, response 2) = 0") != std::string::npos);
  mu << 0.6, 0.6, -0.2;
  CHECK_THROWS_AS(preference_game(rps(), mu, 0.1), invalid_argument);
  mu << 0.5, 0.3, 0.3;
  CHECK(message_of([&] { preference_game(rps(), mu, 0.1); }).find("sums to") != std::string::npos);
}

TEST_CASE("preference_game rejects tau < 0 and mismatched sizes") {
  CHECK(message_of([&] {
          preference_game::with_uniform_reference(rps(), -0.1);
        }).find("tau = -0.1") != std::string::npos);
  CHECK_THROWS_AS(preference_game(rps(), preference_game::uniform(4), 0.1), shape_error);
  CHECK_THROWS_AS(preference_game(std::vector<matrix_d>{rps(), matrix_d::Constant(2, 2, 0.5)},
                                  row_matrix_d::Constant(2, 3, 1.0 / 3), 0.1),
                  shape_error);
  vector_d rho(2);
  rho << 0.5, 0.6;
  CHECK_THROWS_AS(preference_game(std::vector<matrix_d>{rps(), rps()},
                                  row_matrix_d::Constant(2, 3, 1.0 / 3), 0.1, rho),
                  invalid_argument);
  row_matrix_d bad_len(1, 2);
  bad_len << 1, 2;
  CHECK_THROWS_AS(preference_game::with_uniform_reference(rps(), 0.1).with_lengths(bad_len),
                  shape_error);
}
