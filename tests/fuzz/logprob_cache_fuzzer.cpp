// Fuzz harness of the reference log-prob cache decoder (io/logprob_cache.hpp): any bytes decode
// to a verified cache or raise prefopt::io_error; an accepted cache encodes back to the same
// bytes.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "fuzz_support.hpp"
#include "prefopt/io/logprob_cache.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace prefopt;
  fuzz::accepted = false;
  const auto bytes = fuzz::as_text(data, size);
  std::optional<io::logprob_cache> cache;
  try {
    cache = io::decode_logprob_cache(bytes, "fuzz");
  } catch (const io_error&) {
    return 0;
  }
  fuzz::accepted = true;
  fuzz::require(io::encode_logprob_cache(*cache) == bytes, "encode(decode(bytes)) == bytes");
  return 0;
}
