// Fuzz harness of prefopt-arena's config reader (examples/arena/arena.hpp): any input is a
// validated experiment or a prefopt::error, and the runner's memory estimate of an accepted one is
// finite and positive. Nothing is run. Game files are looked up in a folder that does not exist.

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "arena.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace prefopt;
  fuzz::accepted = false;
  const auto text = fuzz::as_text(data, size);
  try {
    const auto config = io::parse_json(text, "fuzz");
    const auto e = arena::parse_config(config, "/nonexistent-prefopt-fuzz");
    const double bytes = arena::estimated_memory_bytes(e, 4);
    fuzz::require(std::isfinite(bytes) && bytes > 0.0, "the memory estimate is finite and > 0");
    fuzz::accepted = true;
  } catch (const error&) {
    return 0;
  }
  return 0;
}
