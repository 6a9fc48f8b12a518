// Fuzz harness of the JSONL preference loader and what follows it (io/jsonl_dataset.hpp,
// data/preference_dataset.hpp, io/logprob_cache.hpp): any input is a dataset or a
// prefopt::parse_error; an accepted dataset batches, serialises and reloads to the same
// fingerprint, and a reference cache made from it loads again.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "fuzz_support.hpp"
#include "prefopt/io/jsonl_dataset.hpp"
#include "prefopt/io/logprob_cache.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace prefopt;
  fuzz::accepted = false;
  const auto text = fuzz::as_text(data, size);
  io::jsonl_options options;
  options.max_line_bytes = 1 << 16;
  std::optional<io::jsonl_load_result> loaded;
  try {
    loaded = io::parse_preference_jsonl(text, "fuzz", options);
  } catch (const parse_error&) {
    return 0;
  }
  fuzz::accepted = true;
  const data::preference_dataset& d = loaded->dataset;
  const auto batches = d.batches(3);
  prefopt::index_t records = 0;
  for (const auto& b : batches) records += b.size();
  fuzz::require(records == d.size(), "batches cover every record once");
  const auto again = io::parse_preference_jsonl(io::to_preference_jsonl(d), "again", options);
  fuzz::require(again.dataset.fingerprint() == d.fingerprint(), "to_preference_jsonl round-trips");
  using data::logprob_column;
  if (d.layout(logprob_column::reference_chosen) != data::logprob_layout::none &&
      d.layout(logprob_column::reference_rejected) != data::logprob_layout::none) {
    const auto cache = io::make_logprob_cache(d, "fuzz-model");
    const auto decoded = io::decode_logprob_cache(io::encode_logprob_cache(cache), "encoded");
    fuzz::require(decoded.chosen == cache.chosen && decoded.rejected == cache.rejected,
                  "a cache made from an accepted dataset decodes to the same values");
  }
  return 0;
}
