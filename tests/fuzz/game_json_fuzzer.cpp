// Fuzz harness of the game JSON reader (io/game_json.hpp): any input is a valid game or a
// prefopt::parse_error; an accepted game round-trips through game_to_json unchanged.

#include <cstddef>
#include <cstdint>
#include <optional>

#include "fuzz_support.hpp"
#include "prefopt/io/game_json.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace prefopt;
  fuzz::accepted = false;
  const auto text = fuzz::as_text(data, size);
  std::optional<preference_game> game;
  try {
    game = io::game_from_json_string(text);
  } catch (const parse_error&) {
    return 0;
  }
  fuzz::accepted = true;
  const preference_game back = io::game_from_json(io::game_to_json(*game));
  fuzz::require(back.num_contexts() == game->num_contexts() &&
                    back.num_actions() == game->num_actions() && back.tau() == game->tau(),
                "the game's shape and tau survive game_to_json");
  for (prefopt::index_t x = 0; x < game->num_contexts(); ++x) {
    fuzz::require(back.preference(x) == game->preference(x), "P survives game_to_json");
  }
  fuzz::require(back.reference() == game->reference(), "mu survives game_to_json");
  return 0;
}
