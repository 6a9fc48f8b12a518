#include "prefopt/io/game_json.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <string>

#include "prefopt/games/catalog.hpp"

using namespace prefopt;

namespace {
std::string parse_message(const std::string& text) {
  try {
    (void)io::game_from_json_string(text);
  } catch (const prefopt::parse_error& e) {
    return e.what();
  }
  return "no parse_error";
}
}  // namespace

TEST_CASE("A game round-trips through JSON (P, mu, rho, tau, metadata)") {
  vector_d w(2);
  w << 0.3, 0.7;
  vector_d mu(3);
  mu << 0.6, 0.3, 0.1;
  auto g = mixture_game({efron_dice_game(mu, 0.1), rock_paper_scissors_game({}, 0.1)}, w);
  g = g.with_lengths(row_matrix_d::Constant(2, 3, 5.0));
  const auto path = std::filesystem::temp_directory_path() / "prefopt_game_json_test.json";
  io::write_game_json(path, g);
  const auto h = io::read_game_json(path);
  std::filesystem::remove(path);
  CHECK(h.num_contexts() == 2);
  CHECK(h.tau() == 0.1);
  CHECK(h.context_weights() == g.context_weights());
  CHECK(h.preference(0) == g.preference(0));
  CHECK(h.reference() == g.reference());
  CHECK(h.lengths() == g.lengths());
  CHECK_FALSE(h.has_gold_rewards());
}

TEST_CASE("A single-context game JSON may omit contexts, reference and tau") {
  const auto g =
      io::game_from_json_string(R"({"preference": [[0.5, 1, 0], [0, 0.5, 1], [1, 0, 0.5]]})");
  CHECK(g.tau() == 0.0);
  CHECK(g.reference()(0, 2) == Approx(1.0 / 3));
}

TEST_CASE("Malformed game JSON names the JSON path of the problem") {
  CHECK(parse_message(R"({"contexts": [{"preference": [[0.5, 1.5], [-0.5, 0.5]]}]})")
            .find("/contexts/0/preference/0/1") != std::string::npos);
  CHECK(parse_message(R"({"contexts": [{"preference": [[0.5, 0.9], [0.5, 0.5]]}]})")
            .find("/contexts/0/preference") != std::string::npos);
  CHECK(parse_message(R"({"preference": [[0.5, 1], [0, 0.5]], "reference": [1, 0]})")
            .find("/reference/1") != std::string::npos);
  CHECK(parse_message(R"({"preference": [[0.5, 1], [0, 0.5]], "reference": [0.5]})")
            .find("/reference: has 1 entries, expected 2") != std::string::npos);
  CHECK(parse_message(R"({"preference": [[0.5, "x"], [0, 0.5]]})")
            .find("/preference/0/1: expected a number") != std::string::npos);
  CHECK(parse_message(R"({"preference": [[0.5, 1], [0, 0.5]], "tau": -1})").find("/tau") !=
        std::string::npos);
  CHECK(parse_message(R"({"preference": [[0.5, 1], [0, 0.5]], )").find("malformed at byte") !=
        std::string::npos);
  CHECK(parse_message(R"({"contexts": []})").find("/contexts") != std::string::npos);
}

TEST_CASE("Game JSON rejects what it would otherwise ignore or drop silently") {
  const std::string p = R"("preference": [[0.5, 1], [0, 0.5]])";
  // A misspelled key, at the top and in a context.
  CHECK_THAT(parse_message("{" + p + R"(, "refrence": [0.5, 0.5]})"),
             Catch::Contains("game JSON /refrence: unknown key, expected one of tau, contexts, "
                             "preference, reference, lengths, gold_rewards"));
  CHECK_THAT(parse_message(R"({"contexts": [{)" + p + R"(, "weigth": 1}]})"),
             Catch::Contains("game JSON /contexts/0/weigth: unknown key"));
  // Top-level per-context keys next to contexts.
  CHECK_THAT(parse_message(R"({"contexts": [{)" + p + R"(}], "reference": [0.5, 0.5]})"),
             Catch::Contains("game JSON /reference: unknown key, expected one of tau, contexts"));
  // lengths / gold_rewards for some contexts only.
  CHECK_THAT(parse_message(R"({"contexts": [{)" + p + R"(, "lengths": [1, 2]}, {)" + p + "}]}"),
             Catch::Contains("game JSON /contexts/1/lengths: missing, but 1 of the 2 contexts have "
                             "a \"lengths\""));
  CHECK_THAT(
      parse_message(R"({"contexts": [{)" + p + "}, {" + p + R"(, "gold_rewards": [0, 1]}]})"),
      Catch::Contains("game JSON /contexts/0/gold_rewards: missing"));
  // Duplicate keys.
  CHECK_THAT(parse_message("{" + p + R"(, "tau": 0.1, "tau": 0.2})"),
             Catch::Contains("/tau: duplicate key \"tau\""));
  // tau beyond the documented bound, or beyond a double.
  CHECK_THAT(parse_message("{" + p + R"(, "tau": 1e308})"),
             Catch::Contains("game JSON /tau: tau = 1e+308, expected 0 <= tau <= 1000000"));
  CHECK_THAT(parse_message("{" + p + R"(, "tau": 1e400})"),
             Catch::Contains("number out of range at line 1, column"));
  CHECK(io::game_from_json_string("{" + p + R"(, "tau": 1e6})").tau() == 1e6);
}

TEST_CASE("Game JSON checks every row's length before allocating the matrix") {
  // 20,000 empty rows in 60 KB (a fuzz finding): rejected at the first row, nothing allocated.
  std::string rows = "[[]";
  for (int i = 1; i < 20'000; ++i) rows += ",[]";
  rows += "]";
  CHECK_THAT(
      parse_message(R"({"preference": )" + rows + "}"),
      Catch::Contains("/preference/0: has 0 entries, expected 20000 (the matrix is square)"));
  // A second context of another size is rejected before its matrix is read.
  CHECK_THAT(
      parse_message(R"({"contexts": [{"preference": [[0.5]]}, {"preference": )" + rows + "}]}"),
      Catch::Contains("/contexts/1/preference: has 20000 rows, expected 1"));
}

TEST_CASE("Game JSON nested 200,000 levels deep is a parse_error, not a stack overflow") {
  const std::string deep =
      R"({"preference": )" + std::string(200'000, '[') + std::string(200'000, ']') + "}";
  CHECK_THAT(parse_message(deep), Catch::Contains("game JSON: nested deeper than max_depth = 64"));
  // A value built in code is read without recursion, however deep.
  nlohmann::json j = nlohmann::json::array();
  for (int i = 0; i < 100'000; ++i) j = nlohmann::json::array({std::move(j)});
  nlohmann::json game = {{"preference", std::move(j)}};
  try {
    (void)io::game_from_json(game);
    FAIL("no parse_error");
  } catch (const prefopt::parse_error& e) {
    CHECK_THAT(std::string(e.what()),
               Catch::Contains("/preference/0/0: expected a number, got array"));
  }
}
