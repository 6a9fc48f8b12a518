#include "prefopt/io/logprob_cache.hpp"

#include <catch2/catch.hpp>

#include <bit>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "temp_dir.hpp"

using namespace prefopt;
using namespace prefopt::io;
using data::logprob_column;
using data::logprob_value;
using ids = std::vector<token_id>;

namespace {

data::preference_dataset make_dataset(bool per_token, token_id last = 14) {
  data::preference_dataset d;
  const std::vector<double> c0{-0.5, -1.0}, r0{-2.0}, c1{-0.25}, r1{-0.125, -3.0}, c2{-1.0},
      r2{-0.75};
  const auto v = [&](const std::vector<double>& t) {
    double s = 0;
    for (const double x : t) s += x;
    return per_token ? logprob_value::of_tokens(t) : logprob_value::of_sequence(s);
  };
  d.add(ids{1, 2}, ids{3, 4}, ids{5}, {logprob_value{}, logprob_value{}, v(c0), v(r0)});
  d.add(ids{7}, ids{8}, ids{9, 10}, {logprob_value{}, logprob_value{}, v(c1), v(r1)});
  d.add(ids{}, ids{12}, ids{last}, {logprob_value{}, logprob_value{}, v(c2), v(r2)});
  return d;
}

std::string load_error(const std::filesystem::path& p, const data::preference_dataset& d,
                       const std::string& model) {
  try {
    (void)load_logprob_cache(p, d, model);
  } catch (const prefopt::io_error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("Log-prob cache round trip restores every value bit for bit", "[io]") {
  test::temp_dir dir("cache_roundtrip");
  for (const bool per_token : {false, true}) {
    const auto d = make_dataset(per_token);
    const auto c = make_logprob_cache(d, "ref-model@v1");
    CHECK(c.has_tokens == per_token);
    save_logprob_cache(dir / "ref.cache", c);
    CHECK_FALSE(std::filesystem::exists(dir / ".ref.cache.tmp"));
    const auto back = load_logprob_cache(dir / "ref.cache", d, "ref-model@v1");
    CHECK(back.model_id == "ref-model@v1");
    CHECK(back.chosen == c.chosen);
    CHECK(back.rejected == c.rejected);
    CHECK(back.has_tokens == per_token);
    CHECK(back.chosen_tokens == c.chosen_tokens);
    CHECK(back.rejected_tokens == c.rejected_tokens);
    // Applying the cache to a dataset without reference log-probs restores them.
    data::preference_dataset bare;
    bare.add(ids{1, 2}, ids{3, 4}, ids{5});
    bare.add(ids{7}, ids{8}, ids{9, 10});
    bare.add(ids{}, ids{12}, ids{14});
    apply_logprob_cache(back, bare);
    CHECK(bare.sequence_logps(logprob_column::reference_chosen) ==
          d.sequence_logps(logprob_column::reference_chosen));
    CHECK(bare.layout(logprob_column::reference_rejected) ==
          d.layout(logprob_column::reference_rejected));
  }
}

TEST_CASE("Cache: truncation at every byte fails with a clear io_error", "[io]") {
  test::temp_dir dir("cache_truncate");
  const auto d = make_dataset(true);
  save_logprob_cache(dir / "c.bin", make_logprob_cache(d, "m"));
  const std::string bytes = prefopt::test::read_file(dir / "c.bin");
  REQUIRE(bytes.size() > 100);
  for (std::size_t k = 0; k < bytes.size(); ++k) {
    prefopt::test::write_file(dir / "t.bin", bytes.substr(0, k));
    const std::string msg = load_error(dir / "t.bin", d, "m");
    INFO("cut at " << k);
    CHECK_THAT(msg, Catch::Contains("t.bin") && Catch::Contains("truncated"));
  }
  // Trailing bytes are also rejected.
  prefopt::test::write_file(dir / "t.bin", bytes + "x");
  CHECK_THAT(load_error(dir / "t.bin", d, "m"), Catch::Contains("trailing bytes"));
}

TEST_CASE("Cache: flipping any bit pattern of any byte fails with a clear io_error", "[io]") {
  test::temp_dir dir("cache_flip");
  for (const bool per_token : {false, true}) {
    const auto d = make_dataset(per_token);
    save_logprob_cache(dir / "c.bin", make_logprob_cache(d, "model-x"));
    const std::string bytes = prefopt::test::read_file(dir / "c.bin");
    int checksum_failures = 0;
    for (std::size_t i = 0; i < bytes.size(); ++i) {
      for (const unsigned flip : {0x01U, 0x80U, 0xffU}) {
        std::string b = bytes;
        b[i] = static_cast<char>(static_cast<unsigned char>(b[i]) ^ flip);
        prefopt::test::write_file(dir / "f.bin", b);
        const std::string msg = load_error(dir / "f.bin", d, "model-x");
        INFO("byte " << i << " flip " << flip);
        REQUIRE_FALSE(msg.empty());
        CHECK_THAT(msg, Catch::StartsWith("load_logprob_cache: ") && Catch::Contains("f.bin"));
        checksum_failures += msg.find("checksum mismatch") != std::string::npos ? 1 : 0;
      }
    }
    CHECK(checksum_failures > static_cast<int>(bytes.size()));  // most bytes are checksummed data
  }
}

TEST_CASE("Cache: a changed dataset record or another model id is refused", "[io]") {
  test::temp_dir dir("cache_key");
  const auto d = make_dataset(false);
  save_logprob_cache(dir / "c.bin", make_logprob_cache(d, "sft-7b"));
  const auto changed = make_dataset(false, /*last=*/15);
  CHECK_THAT(load_error(dir / "c.bin", changed, "sft-7b"),
             Catch::Contains("dataset fingerprint mismatch"));
  CHECK_THAT(load_error(dir / "c.bin", d, "sft-7b-v2"),
             Catch::Contains("made with model 'sft-7b', expected model 'sft-7b-v2'"));
  data::preference_dataset fewer;
  fewer.add(ids{1, 2}, ids{3, 4}, ids{5});
  CHECK_THAT(load_error(dir / "c.bin", fewer, "sft-7b"), Catch::Contains("fingerprint mismatch"));
  CHECK_THAT(load_error(dir / "missing.bin", d, "sft-7b"), Catch::Contains("no cache at"));
  CHECK_THROWS_AS(apply_logprob_cache(make_logprob_cache(d, "sft-7b"), fewer), prefopt::io_error);
}

TEST_CASE("Saving over an existing cache replaces it atomically", "[io]") {
  test::temp_dir dir("cache_replace");
  const auto d = make_dataset(false);
  save_logprob_cache(dir / "c.bin", make_logprob_cache(d, "a"));
  save_logprob_cache(dir / "c.bin", make_logprob_cache(d, "b"));
  CHECK(load_logprob_cache(dir / "c.bin", d, "b").model_id == "b");
  CHECK_THROWS_AS(save_logprob_cache(dir / "no_such_folder" / "c.bin", make_logprob_cache(d, "a")),
                  prefopt::io_error);
}

namespace {
/// `bytes` with the f64 at `offset` replaced and the checksum recomputed.
std::string patch_f64(std::string bytes, std::size_t offset, double v) {
  auto put = [&](std::size_t at, std::uint64_t x) {
    for (std::size_t i = 0; i < 8; ++i) {
      bytes[at + i] = static_cast<char>((x >> (8 * i)) & 0xffU);
    }
  };
  put(offset, std::bit_cast<std::uint64_t>(v));
  put(bytes.size() - 8, data::fnv1a64_of(std::string_view(bytes).substr(0, bytes.size() - 8)));
  return bytes;
}
}  // namespace

TEST_CASE("Cache: sequence values that differ from their per-token sums are refused", "[io]") {
  test::temp_dir dir("cache_sums");
  const auto d = make_dataset(/*per_token=*/true);
  const auto c = make_logprob_cache(d, "m");
  const std::string good = encode_logprob_cache(c);
  // chosen[0] is the first f64 after the 52-byte header and the model id ("m").
  REQUIRE(decode_logprob_cache(good, "good").chosen[0] == -1.5);
  prefopt::test::write_file(dir / "off.cache", patch_f64(good, 53, -1.25));
  CHECK_THAT(
      load_error(dir / "off.cache", d, "m"),
      Catch::Contains("off.cache: chosen[0] = -1.25 but its 2 per-token values sum to -1.5"));
  // Within the tolerance (rounding of another summation order) it loads.
  prefopt::test::write_file(dir / "close.cache", patch_f64(good, 53, -1.5 * (1 + 1e-12)));
  CHECK(load_error(dir / "close.cache", d, "m").empty());
  // Encoding refuses to write such a cache, or one with a non-finite value.
  auto bad = c;
  bad.chosen[0] = -1.25;
  CHECK_THROWS_WITH(encode_logprob_cache(bad),
                    Catch::Contains("encode_logprob_cache: chosen[0] = -1.25 but its 2 per-token"));
  // Per-token values whose sum overflows never match a (finite) sequence value.
  bad = c;
  bad.chosen_tokens = {};
  bad.chosen_tokens.push_back(std::vector<double>{-1e308, -1e308});
  bad.chosen_tokens.push_back(std::vector<double>{-0.25});
  bad.chosen_tokens.push_back(std::vector<double>{-1.0});
  bad.chosen[0] = -1.0;
  CHECK_THROWS_WITH(encode_logprob_cache(bad),
                    Catch::Contains("chosen[0] = -1 but its 2 per-token values sum to -inf"));
  bad = c;
  bad.rejected[2] = -std::numeric_limits<double>::infinity();
  CHECK_THROWS_WITH(encode_logprob_cache(bad),
                    Catch::Contains("rejected[2] = -inf is not a finite log-prob <= 0"));
}

TEST_CASE("Cache: try_load tells a missing, a corrupt and a stale cache apart, with reasons",
          "[io]") {
  test::temp_dir dir("cache_try_load");
  const auto d = make_dataset(true);
  // No file yet: missing, and load_logprob_cache throws the matching type.
  auto r = try_load_logprob_cache(dir / "c.bin", d, "m");
  CHECK(r.status == cache_status::missing);
  CHECK_FALSE(r);
  CHECK_FALSE(r.cache.has_value());
  CHECK_THAT(r.reason, Catch::Contains("no cache at"));
  CHECK_THROWS_AS(load_logprob_cache(dir / "c.bin", d, "m"), cache_missing_error);
  // A good cache loads.
  save_logprob_cache(dir / "c.bin", make_logprob_cache(d, "m"));
  r = try_load_logprob_cache(dir / "c.bin", d, "m");
  REQUIRE(r);
  CHECK(r.cache->size() == d.size());
  CHECK(r.reason.empty());
  // Another model id: mismatch (a stale cache, not a broken one).
  r = try_load_logprob_cache(dir / "c.bin", d, "other-model");
  CHECK(r.status == cache_status::mismatch);
  CHECK_THAT(r.reason, Catch::Contains("other-model"));
  CHECK_THROWS_AS(load_logprob_cache(dir / "c.bin", d, "other-model"), cache_mismatch_error);
  // Another dataset: mismatch.
  CHECK(try_load_logprob_cache(dir / "c.bin", make_dataset(true, 15), "m").status ==
        cache_status::mismatch);
  // Truncated: corrupt. Every kind is still an io_error for existing catch sites.
  const std::string bytes = prefopt::test::read_file(dir / "c.bin");
  prefopt::test::write_file(dir / "c.bin", bytes.substr(0, bytes.size() - 3));
  r = try_load_logprob_cache(dir / "c.bin", d, "m");
  CHECK(r.status == cache_status::corrupt);
  CHECK_THAT(r.reason, Catch::Contains("c.bin"));
  CHECK_THROWS_AS(load_logprob_cache(dir / "c.bin", d, "m"), cache_corrupt_error);
  CHECK_THROWS_AS(load_logprob_cache(dir / "c.bin", d, "m"), io_error);
}
