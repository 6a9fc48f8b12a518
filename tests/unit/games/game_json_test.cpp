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
