#include "prefopt/data/checksum.hpp"

#include <catch2/catch.hpp>

#include <string>

using namespace prefopt::data;

TEST_CASE("FNV-1a 64 matches the published test vectors", "[data]") {
  CHECK(fnv1a64_of("") == 0xcbf29ce484222325ULL);
  CHECK(fnv1a64_of("a") == 0xaf63dc4c8601ec8cULL);
  CHECK(fnv1a64_of("foobar") == 0x85944171f73967e8ULL);
}

TEST_CASE("FNV-1a 64 changes when any single byte of a message changes", "[data]") {
  const std::string base = "prefopt reference log-prob cache";
  const auto h = fnv1a64_of(base);
  for (std::size_t i = 0; i < base.size(); ++i) {
    for (const unsigned flip : {0x01U, 0x80U, 0xffU}) {
      std::string s = base;
      s[i] = static_cast<char>(static_cast<unsigned char>(s[i]) ^ flip);
      CHECK(fnv1a64_of(s) != h);
    }
  }
}

TEST_CASE("FNV-1a integer feeds are little-endian byte feeds", "[data]") {
  const std::string bytes("\x01\x02\x03\x04\x05\x06\x07\x08", 8);
  CHECK(fnv1a64{}.update_u64(0x0807060504030201ULL).value() == fnv1a64_of(bytes));
  CHECK(fnv1a64{}.update_i32(-1).value() == fnv1a64_of(std::string(4, '\xff')));
}
