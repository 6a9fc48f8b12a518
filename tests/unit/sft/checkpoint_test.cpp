// Checkpoints: bitwise round trips in float and double, the exact byte layout, every error named
// (missing file, magic, version, scalar type, truncation at each field, trailing bytes, every
// corrupted byte, configuration mismatch, non-finite parameters, parameter count), and a failed
// save that leaves the previous checkpoint intact.
#include "prefopt/models/transformer/checkpoint.hpp"

#include <catch2/catch.hpp>

#include <bit>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>

#include "../io/temp_dir.hpp"
#include "checkpoint_stand_in.hpp"

namespace {
using Catch::Matchers::Contains;
using prefopt::transformer_config;
using prefopt::test::checkpoint_stand_in;
using prefopt::test::read_file;
using prefopt::test::temp_dir;

static_assert(prefopt::CheckpointableModel<checkpoint_stand_in<float>>);
static_assert(prefopt::CheckpointableModel<checkpoint_stand_in<double>>);
static_assert(!prefopt::CheckpointableModel<prefopt::vector_d>);

transformer_config small_checkpoint_config() {
  transformer_config c;
  c.vocab_size = 7;
  c.eos = 6;
  c.max_length = 5;
  c.d_model = 4;
  c.num_layers = 1;
  c.num_heads = 2;
  c.mlp_hidden = 3;
  c.init_scale = 0.5;
  c.seed = 11;
  return c;
}

void write_bytes(const std::filesystem::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

/// Recomputes the trailing checksum of `bytes` (so that a deliberate edit passes the checksum).
void refresh_checksum(std::string& bytes) {
  const std::size_t end = bytes.size() - 8;
  const std::uint64_t h = prefopt::data::fnv1a64{}
                              .update(std::span<const unsigned char>(
                                  reinterpret_cast<const unsigned char*>(bytes.data()), end))
                              .value();
  for (std::size_t i = 0; i < 8; ++i) bytes[end + i] = static_cast<char>((h >> (8 * i)) & 0xffU);
}

void put_u64_at(std::string& bytes, std::size_t at, std::uint64_t x) {
  for (std::size_t i = 0; i < 8; ++i) bytes[at + i] = static_cast<char>((x >> (8 * i)) & 0xffU);
}

template <class T>
bool bitwise_equal(const checkpoint_stand_in<T>& a, const checkpoint_stand_in<T>& b) {
  return a.parameters().size() == b.parameters().size() &&
         std::memcmp(a.parameters().data(), b.parameters().data(),
                     static_cast<std::size_t>(a.parameters().size()) * sizeof(T)) == 0;
}
}  // namespace

TEMPLATE_TEST_CASE("a checkpoint round-trips configuration and parameters bitwise", "[checkpoint]",
                   float, double) {
  const temp_dir dir(std::string("ckpt_round_trip_") + (sizeof(TestType) == 4 ? "f" : "d"));
  const auto path = dir / "model.ckpt";
  const transformer_config c = small_checkpoint_config();
  checkpoint_stand_in<TestType> model(c);
  model.parameters()(0) = std::numeric_limits<TestType>::denorm_min();  // exotic but finite bits
  model.parameters()(1) = TestType(-0.0);
  prefopt::save_checkpoint(path, model);

  const std::string bytes = read_file(path);
  const auto n = static_cast<std::size_t>(model.parameters().size());
  REQUIRE(bytes.size() == 96 + n * sizeof(TestType) + 8);
  CHECK(bytes.substr(0, 8) == "PFOPTCKP");
  CHECK(bytes[8] == 1);                                            // format version
  CHECK(static_cast<std::size_t>(bytes[12]) == sizeof(TestType));  // scalar type
  CHECK(bytes[40] == 4);                                           // d_model at offset 40
  CHECK_FALSE(std::filesystem::exists(dir / ".model.ckpt.tmp"));

  const auto loaded = prefopt::load_checkpoint<checkpoint_stand_in<TestType>>(path);
  CHECK(loaded.config() == c);
  CHECK(bitwise_equal(loaded, model));
  CHECK(std::signbit(loaded.parameters()(1)));

  checkpoint_stand_in<TestType> target(c);
  target.parameters().setZero();
  prefopt::load_checkpoint_into(path, target);
  CHECK(bitwise_equal(target, model));

  const prefopt::checkpoint_info info = prefopt::read_checkpoint_info(path);
  CHECK(info.format_version == 1);
  CHECK(info.scalar_bytes == sizeof(TestType));
  CHECK(info.config == c);
  CHECK(info.num_parameters == model.parameters().size());

  // Saving again over an existing checkpoint replaces it.
  model.parameters()(2) = TestType(3.5);
  prefopt::save_checkpoint(path, model);
  CHECK(prefopt::load_checkpoint<checkpoint_stand_in<TestType>>(path).parameters()(2) ==
        TestType(3.5));
}

TEST_CASE("loading a missing, foreign or damaged checkpoint names the path and the offset",
          "[checkpoint]") {
  const temp_dir dir("ckpt_errors");
  const auto path = dir / "model.ckpt";
  const auto bad = dir / "bad.ckpt";
  const std::string p = bad.string();
  using model_f = checkpoint_stand_in<float>;
  const model_f model(small_checkpoint_config());
  prefopt::save_checkpoint(path, model);
  const std::string good = read_file(path);
  const std::size_t end = good.size() - 8;  // the checksum's offset

  auto load_error = [&](const std::string& bytes) {
    write_bytes(bad, bytes);
    try {
      (void)prefopt::load_checkpoint<model_f>(bad);
    } catch (const prefopt::error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };

  SECTION("missing file") {
    REQUIRE_THROWS_AS(prefopt::load_checkpoint<model_f>(dir / "none.ckpt"), prefopt::io_error);
    REQUIRE_THROWS_WITH(prefopt::load_checkpoint<model_f>(dir / "none.ckpt"),
                        Contains("load_checkpoint: ") && Contains("none.ckpt: no such file"));
  }
  SECTION("wrong magic") {
    std::string b = good;
    b[3] = 'X';
    write_bytes(bad, b);
    REQUIRE_THROWS_AS(prefopt::load_checkpoint<model_f>(bad), prefopt::parse_error);
    CHECK_THAT(load_error(b), Contains(p) && Contains("wrong magic at byte offset 0"));
    CHECK_THAT(load_error("PFOPT"), Contains("truncated") && Contains("magic at offset 0"));
  }
  SECTION("unknown format version") {
    std::string b = good;
    b[8] = 2;
    write_bytes(bad, b);
    REQUIRE_THROWS_AS(prefopt::load_checkpoint<model_f>(bad), prefopt::parse_error);
    CHECK_THAT(load_error(b), Contains("unknown format version 2 at byte offset 8, expected 1"));
  }
  SECTION("unknown scalar type") {
    std::string b = good;
    b[12] = 2;
    CHECK_THAT(load_error(b), Contains("unknown scalar type 2 at byte offset 12"));
  }
  SECTION("truncated at every field") {
    write_bytes(bad, good.substr(0, 50));
    REQUIRE_THROWS_AS(prefopt::load_checkpoint<model_f>(bad), prefopt::parse_error);
    CHECK_THAT(load_error(good.substr(0, 50)),
               Contains(p) && Contains("truncated checkpoint: the file ends at byte offset 50") &&
                   Contains("config.num_layers at offset 48"));
    CHECK_THAT(load_error(good.substr(0, 10)), Contains("the format version at offset 8"));
    CHECK_THAT(load_error(good.substr(0, 90)), Contains("the parameter count at offset 88"));
    CHECK_THAT(load_error(good.substr(0, 100)),
               Contains("truncated checkpoint: the parameter count") &&
                   Contains("the file ends at byte offset 100"));
    CHECK_THAT(load_error(good.substr(0, end + 3)),
               Contains("the checksum at offset " + std::to_string(end)));
    // Every shorter length is an error (every length through the header, then every 5th).
    for (std::size_t n = 0; n < good.size(); n += n < 104 ? 1 : 5) {
      CHECK_THAT(load_error(good.substr(0, n)), Contains("truncated checkpoint"));
    }
  }
  SECTION("trailing bytes") {
    CHECK_THAT(load_error(good + "zz"),
               Contains("2 unexpected bytes after the checksum at byte offset " +
                        std::to_string(good.size())));
  }
  SECTION("a corrupted byte fails the checksum") {
    std::string b = good;
    b[96 + 13] = static_cast<char>(b[96 + 13] ^ 0x10);
    write_bytes(bad, b);
    REQUIRE_THROWS_AS(prefopt::load_checkpoint<model_f>(bad), prefopt::io_error);
    CHECK_THAT(load_error(b), Contains(p) && Contains("checksum mismatch") &&
                                  Contains("at byte offset " + std::to_string(end)));
    // Any single flipped bit anywhere in the file is an error, never a silent load.
    for (std::size_t at = 0; at < good.size(); ++at) {
      std::string c = good;
      c[at] = static_cast<char>(c[at] ^ (1 << (at % 8)));
      CHECK(load_error(c) != "no error");
    }
  }
  SECTION("a stored configuration that does not validate") {
    std::string b = good;
    put_u64_at(b, 56, 3);  // num_heads = 3 does not divide d_model = 4
    refresh_checksum(b);
    write_bytes(bad, b);
    REQUIRE_THROWS_AS(prefopt::load_checkpoint<model_f>(bad), prefopt::parse_error);
    CHECK_THAT(load_error(b),
               Contains("stored configuration is invalid") && Contains("config.num_heads = 3"));
  }
  SECTION("NaN or infinite parameters are named by index and offset") {
    for (const float x :
         {std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::infinity()}) {
      std::string b = good;
      const auto bits = std::bit_cast<std::uint32_t>(x);
      for (std::size_t i = 0; i < 4; ++i) {
        b[96 + 4 * 5 + i] = static_cast<char>((bits >> (8 * i)) & 0xffU);
      }
      refresh_checksum(b);
      write_bytes(bad, b);
      REQUIRE_THROWS_AS(prefopt::load_checkpoint<model_f>(bad), prefopt::parse_error);
      CHECK_THAT(load_error(b), Contains("parameter 5 is") && Contains("(byte offset 116)"));
    }
  }
  SECTION("another parameter count than the configuration's model") {
    std::string b = good.substr(0, end - 4) + good.substr(end);
    const auto n = static_cast<std::uint64_t>(model.parameters().size());
    put_u64_at(b, 88, n - 1);
    refresh_checksum(b);
    write_bytes(bad, b);
    REQUIRE_THROWS_AS(prefopt::load_checkpoint<model_f>(bad), prefopt::invalid_argument);
    CHECK_THAT(load_error(b),
               Contains("the file has " + std::to_string(n - 1) +
                        " parameters, a model of its configuration has " + std::to_string(n)));
  }
  SECTION("another scalar type") {
    REQUIRE_THROWS_AS(prefopt::load_checkpoint<checkpoint_stand_in<double>>(path),
                      prefopt::invalid_argument);
    REQUIRE_THROWS_WITH(prefopt::load_checkpoint<checkpoint_stand_in<double>>(path),
                        Contains("holds float32 parameters") && Contains("scalar_type is float64"));
  }
}

TEST_CASE("load_checkpoint_into names the first configuration field that differs", "[checkpoint]") {
  const temp_dir dir("ckpt_mismatch");
  const auto path = dir / "model.ckpt";
  const transformer_config c = small_checkpoint_config();
  prefopt::save_checkpoint(path, checkpoint_stand_in<double>(c));

  transformer_config other = c;
  other.d_model = 6;
  checkpoint_stand_in<double> wider(other);
  const prefopt::vector_d before = wider.parameters();
  REQUIRE_THROWS_AS(prefopt::load_checkpoint_into(path, wider), prefopt::invalid_argument);
  REQUIRE_THROWS_WITH(prefopt::load_checkpoint_into(path, wider),
                      Contains("load_checkpoint_into: ") && Contains(path.string()) &&
                          Contains("config.d_model is 4 in the file and 6 in the model"));
  CHECK(wider.parameters() == before);  // untouched

  other = c;
  other.seed = 12;
  checkpoint_stand_in<double> reseeded(other);
  REQUIRE_THROWS_WITH(prefopt::load_checkpoint_into(path, reseeded),
                      Contains("config.seed is 11 in the file and 12 in the model"));
  other = c;
  other.eos = 2;
  checkpoint_stand_in<double> other_eos(other);
  REQUIRE_THROWS_WITH(prefopt::load_checkpoint_into(path, other_eos),
                      Contains("config.eos is 6 in the file and 2 in the model"));
  checkpoint_stand_in<float> as_float(c);
  REQUIRE_THROWS_WITH(prefopt::load_checkpoint_into(path, as_float),
                      Contains("holds float64 parameters"));
}

TEST_CASE("a failed save leaves the previous checkpoint intact", "[checkpoint]") {
  const temp_dir dir("ckpt_failed_save");
  const auto path = dir / "model.ckpt";
  const transformer_config c = small_checkpoint_config();
  checkpoint_stand_in<float> model(c);
  prefopt::save_checkpoint(path, model);
  const std::string previous = read_file(path);

  SECTION("non-finite parameters are refused before anything is written") {
    model.parameters()(9) = std::numeric_limits<float>::infinity();
    REQUIRE_THROWS_AS(prefopt::save_checkpoint(path, model), prefopt::invalid_argument);
    REQUIRE_THROWS_WITH(prefopt::save_checkpoint(path, model),
                        Contains("save_checkpoint: ") && Contains("model parameter 9 is inf"));
  }
  SECTION("the write itself fails (the temporary cannot be created)") {
    model.parameters()(0) += 1.0f;
    std::filesystem::create_directory(dir / ".model.ckpt.tmp");  // blocks the temporary file
    REQUIRE_THROWS_AS(prefopt::save_checkpoint(path, model), prefopt::io_error);
    REQUIRE_THROWS_WITH(prefopt::save_checkpoint(path, model),
                        Contains("save_checkpoint: ") && Contains(path.string()));
  }
  SECTION("the destination folder does not exist") {
    REQUIRE_THROWS_AS(prefopt::save_checkpoint(dir / "missing" / "m.ckpt", model),
                      prefopt::io_error);
  }
  CHECK(read_file(path) == previous);
  const auto loaded = prefopt::load_checkpoint<checkpoint_stand_in<float>>(path);
  CHECK(loaded.parameters() == checkpoint_stand_in<float>(c).parameters());
}
