// Fuzz harness of io::parse_json (every JSON text prefopt reads goes through it): any input is a
// document within the limits or a prefopt::parse_error; an accepted document survives a dump and a
// second parse unchanged.

#include <cstddef>
#include <cstdint>

#include "fuzz_support.hpp"
#include "prefopt/io/json_parse.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace prefopt;
  fuzz::accepted = false;
  const auto text = fuzz::as_text(data, size);
  nlohmann::json j;
  try {
    j = io::parse_json(text, "fuzz");
  } catch (const parse_error&) {
    return 0;
  }
  fuzz::accepted = true;
  const std::string again = j.dump();
  fuzz::require(io::parse_json(again, "dump") == j, "parse(dump(parse(text))) == parse(text)");
  return 0;
}
