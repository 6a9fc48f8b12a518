// io::parse_json: the bounded JSON parser every prefopt reader goes through (sizes, depth,
// numbers beyond a double, duplicate keys), each a prefopt::parse_error naming where.

#include "prefopt/io/json_parse.hpp"

#include <catch2/catch.hpp>

#include <fstream>
#include <string>

#include "temp_dir.hpp"

using namespace prefopt;
using namespace prefopt::io;

namespace {
std::string parse_message(const std::string& text, const json_limits& limits = {}) {
  try {
    (void)parse_json(text, "doc.json", limits);
  } catch (const prefopt::parse_error& e) {
    return e.what();
  }
  return "no parse_error";
}
}  // namespace

TEST_CASE("parse_json gives what nlohmann gives for valid documents within the limits", "[io]") {
  const std::string text =
      R"({"a": [1, -2.5e3, 1e-400, 1.7976931348623157e308, "]]}}[[{{\"", {"b": null}], "c": true})";
  CHECK(parse_json(text, "doc") == nlohmann::json::parse(text));
  CHECK(parse_json(text, "doc")["a"][2].get<double>() == 0.0);  // underflow to 0 is accepted
}

TEST_CASE("A document nested deeper than max_depth is rejected before it is built", "[io]") {
  // 200,000 levels (the fuzz finding that overflowed the stack in recursive copies).
  const std::string deep = std::string(200'000, '[') + std::string(200'000, ']');
  CHECK_THAT(parse_message(deep),
             Catch::Contains("doc.json: nested deeper than max_depth = 64 levels of arrays and "
                             "objects at line 1, column 65"));
  // Exactly at the limit is fine; brackets inside strings do not count.
  const std::string at_limit = std::string(64, '[') + std::string(64, ']');
  CHECK_NOTHROW(parse_json(at_limit, "doc"));
  CHECK_NOTHROW(parse_json("[\"" + std::string(100, '[') + "\"]", "doc"));
  json_limits shallow;
  shallow.max_depth = 2;
  CHECK_THAT(parse_message("{\"a\":\n {\"b\": [1]}}", shallow),
             Catch::Contains("max_depth = 2 levels of arrays and objects at line 2, column 8"));
}

TEST_CASE("A document larger than max_bytes is rejected before it is scanned", "[io]") {
  json_limits small;
  small.max_bytes = 10;
  CHECK_THAT(parse_message("[1, 2, 3, 4, 5]", small),
             Catch::Contains("doc.json: the document is 15 bytes, larger than max_bytes = 10"));
  CHECK_NOTHROW(parse_json("[1, 2, 3]", "doc", small));
}

TEST_CASE("A number beyond the range of a double is a parse_error naming line and column", "[io]") {
  CHECK_THAT(parse_message("{\"tau\": 1e400}"),
             Catch::Contains("doc.json: number out of range at line 1, column 9: 1e400 does not "
                             "fit a double"));
  CHECK_THAT(parse_message("[0,\n -1E+400]"), Catch::Contains("at line 2, column 2: -1E+400"));
  CHECK_THAT(parse_message("[" + std::string(400, '9') + "]"),
             Catch::Contains("number out of range at line 1, column 2"));
  CHECK_THAT(parse_message("[0.00000001e317]"), Catch::Contains("number out of range"));
  CHECK_NOTHROW(parse_json("[0.00000001e315, 1e308, -1e-5000]", "doc"));
}

TEST_CASE("A key repeated in one object is rejected with its JSON pointer", "[io]") {
  CHECK_THAT(parse_message(R"({"tau": 1, "tau": 2})"),
             Catch::Contains("doc.json: /tau: duplicate key \"tau\""));
  CHECK_THAT(parse_message(R"({"contexts": [{"a": 1}, {"w": [1, {}], "x/y~": 0, "x/y~": 1}]})"),
             Catch::Contains("/contexts/1/x~1y~0: duplicate key"));
  // The same key in different objects is fine.
  CHECK_NOTHROW(parse_json(R"([{"a": 1}, {"a": 2}, {"b": {"a": 3}}])", "doc"));
}

TEST_CASE("Syntax errors name the byte, line and column", "[io]") {
  CHECK_THAT(parse_message("{\"a\": 1,\n \"b\" 2}"),
             Catch::Contains("doc.json: invalid JSON, malformed at byte 15 (line 2, column 6)"));
}

TEST_CASE("read_json_file checks the file size before reading it", "[io]") {
  test::temp_dir dir("json_parse");
  { std::ofstream(dir / "big.json") << "[" << std::string(100, ' ') << "]"; }
  json_limits small;
  small.max_bytes = 50;
  CHECK_THROWS_WITH(read_json_file(dir / "big.json", small),
                    Catch::Contains("big.json: the file is 102 bytes, larger than max_bytes = 50"));
  CHECK(read_json_file(dir / "big.json").is_array());
  CHECK_THROWS_AS(read_json_file(dir / "missing.json"), prefopt::io_error);
}
