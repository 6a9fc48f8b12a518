// Robustness of the JSONL loader: every malformed input gives a prefopt::parse_error naming
// file:line:field and what was expected, never a crash or another exception (run under ASan+UBSan).

#include <catch2/catch.hpp>

#include <fstream>
#include <string>
#include <vector>

#include "prefopt/core/random.hpp"
#include "prefopt/io/jsonl_dataset.hpp"
#include "temp_dir.hpp"

using namespace prefopt;
using namespace prefopt::io;

namespace {

const std::string good_line =
    R"({"prompt_ids": [1, 2], "chosen_ids": [3, 4], "rejected_ids": [5], "reference_chosen_logps": -1.5, "reference_rejected_logps": [-0.5]})";

struct bad_case {
  std::string name;
  std::string content;
  std::vector<std::string> expected;  // substrings of the message
};

std::vector<bad_case> bad_cases() {
  const std::string g = good_line + "\n";
  return {
      {"truncated line", g + R"({"prompt_ids": [1, 2], "chosen_ids": [3)", {":2: invalid JSON"}},
      {"wrong type",
       R"({"prompt_ids": [1], "chosen_ids": "abc", "rejected_ids": [2]})",
       {":1: field 'chosen_ids': expected an array of token ids, got string"}},
      {"missing field",
       R"({"prompt_ids": [1], "chosen_ids": [2]})",
       {":1: field 'rejected_ids': missing"}},
      {"negative id",
       R"({"prompt_ids": [1], "chosen_ids": [2, -5], "rejected_ids": [2]})",
       {":1: field 'chosen_ids[1]': token id -5 is negative"}},
      {"huge id",
       R"({"prompt_ids": [3000000000], "chosen_ids": [2], "rejected_ids": [2]})",
       {":1: field 'prompt_ids[0]': token id 3000000000 is out of range"}},
      {"beyond int64",
       R"({"prompt_ids": [99999999999999999999999], "chosen_ids": [2], "rejected_ids": [2]})",
       {"field 'prompt_ids[0]': expected an integer token id"}},
      {"float id",
       R"({"prompt_ids": [1.5], "chosen_ids": [2], "rejected_ids": [2]})",
       {"field 'prompt_ids[0]': expected an integer token id, got the non-integer number 1.5"}},
      {"string id",
       R"({"prompt_ids": ["1"], "chosen_ids": [2], "rejected_ids": [2]})",
       {"field 'prompt_ids[0]': expected an integer token id, got string"}},
      {"positive log-prob",
       R"({"prompt_ids": [1], "chosen_ids": [2], "rejected_ids": [2], "reference_chosen_logps": 0.5})",
       {"field 'reference_chosen_logps': log-prob 0.5 is out of range"}},
      {"overflowing log-prob",
       R"({"prompt_ids": [1], "chosen_ids": [2], "rejected_ids": [2], "reference_chosen_logps": -1e400})",
       {":1: number out of range"}},
      {"per-token log-probs whose sum overflows",
       R"({"prompt_ids": [1], "chosen_ids": [2, 3], "rejected_ids": [2], "policy_chosen_logps": [-1e308, -1e308]})",
       {":1: preference_dataset::add: record 0: policy_chosen_logps: the 2 per-token log-probs "
        "sum to -inf"}},
      {"duplicate key",
       R"({"prompt_ids": [1], "chosen_ids": [2], "rejected_ids": [2], "chosen_ids": [3]})",
       {":1: /chosen_ids: duplicate key \"chosen_ids\""}},
      {"nested too deep",
       R"({"prompt_ids": [1], "chosen_ids": [2], "rejected_ids": [2], "x": [[[[[[[[[]]]]]]]]]})",
       {":1: nested deeper than max_depth = 8"}},
      {"NaN literal",
       R"({"prompt_ids": [1], "chosen_ids": [2], "rejected_ids": [2], "reference_chosen_logps": NaN})",
       {":1: invalid JSON"}},
      {"log-prob of wrong type",
       R"({"prompt_ids": [1], "chosen_ids": [2], "rejected_ids": [2], "policy_chosen_logps": "x"})",
       {"field 'policy_chosen_logps': expected a number (sequence log-prob) or an array"}},
      {"per-token length mismatch",
       R"({"prompt_ids": [1], "chosen_ids": [2, 3], "rejected_ids": [2], "policy_chosen_logps": [-1]})",
       {"field 'policy_chosen_logps': 1 per-token log-probs, expected 2"}},
      {"per-token element type",
       R"({"prompt_ids": [1], "chosen_ids": [2], "rejected_ids": [2], "policy_chosen_logps": [null]})",
       {"field 'policy_chosen_logps[0]': expected a number, got null"}},
      {"inconsistent layout",
       g + R"({"prompt_ids": [1], "chosen_ids": [2], "rejected_ids": [2], "reference_chosen_logps": [-1], "reference_rejected_logps": [-0.5]})",
       {":2: field 'reference_chosen_logps': a per-token array but the first record has a "
        "per-sequence number"}},
      {"missing optional field later",
       g + R"({"prompt_ids": [1], "chosen_ids": [2], "rejected_ids": [2], "reference_chosen_logps": -1})",
       {":2: field 'reference_rejected_logps': absent but the first record has a per-token array"}},
      {"invalid UTF-8",
       "{\"prompt_ids\": [1], \"chosen_ids\": [2], \"rejected_ids\": [2], \"note\": \"\xc3\x28\"}",
       {":1: invalid UTF-8 at byte 70 (byte 0xc3)"}},
      {"UTF-8 surrogate", "{\"x\": \"\xed\xa0\x80\"}", {":1: invalid UTF-8 at byte 8"}},
      {"overlong UTF-8", "{\"x\": \"\xc0\xaf\"}", {":1: invalid UTF-8"}},
      {"empty file", "", {"no records (empty file)"}},
      {"only newline", "\n", {":1: blank line"}},
      {"blank line between records", g + "\n" + g, {":2: blank line"}},
      {"not an object", "[1, 2, 3]", {":1: expected a JSON object, got array"}},
      {"two objects on a line", good_line + " " + good_line, {":1: invalid JSON"}},
      {"trailing garbage", good_line + " x", {":1: invalid JSON"}},
      {"null byte", std::string("{\"prompt_ids\": [1]\0}", 20), {":1: invalid JSON"}},
      {"deep nesting", std::string(5000, '['), {":1: "}},
  };
}

}  // namespace

TEST_CASE("Every malformed JSONL input is a parse_error naming file:line:field", "[io]") {
  test::temp_dir dir("jsonl_bad");
  for (const auto& c : bad_cases()) {
    INFO("case: " << c.name);
    const auto path = dir / "bad.jsonl";
    prefopt::test::write_file(path, c.content);
    std::string message;
    try {
      (void)load_preference_jsonl(path);
      FAIL("no error");
    } catch (const prefopt::parse_error& e) {
      message = e.what();
    }
    CHECK(message.rfind(path.string(), 0) == 0);  // starts with the file name
    for (const auto& s : c.expected) CHECK_THAT(message, Catch::Contains(s));
    // The in-memory parser agrees.
    CHECK_THROWS_AS(parse_preference_jsonl(c.content, "mem"), prefopt::parse_error);
  }
}

TEST_CASE("A line longer than the configured maximum is rejected before parsing", "[io]") {
  test::temp_dir dir("jsonl_long");
  jsonl_options o;
  o.max_line_bytes = 64;
  prefopt::test::write_file(dir / "long.jsonl", good_line + "\n");
  CHECK_THROWS_WITH(load_preference_jsonl(dir / "long.jsonl", o),
                    Catch::Contains("long.jsonl:1: line is longer than max_line_bytes = 64"));
  CHECK_THROWS_WITH(
      parse_preference_jsonl(good_line, "m", o),
      Catch::Contains("m:1: line is 133 bytes long, longer than max_line_bytes = 64"));
  // A 3 MB line (spanning many read blocks) with a 1 MB limit.
  o.max_line_bytes = 1 << 20;
  prefopt::test::write_file(dir / "huge.jsonl",
                            good_line + "\n" + std::string(3 << 20, ' ') + "\n");
  CHECK_THROWS_WITH(load_preference_jsonl(dir / "huge.jsonl", o),
                    Catch::Contains("huge.jsonl:2: line is longer than max_line_bytes"));
}

TEST_CASE("Truncating a valid file at any byte loads a prefix or fails cleanly", "[io]") {
  const std::string file = good_line + "\n" + good_line + "\n" + good_line + "\n";
  for (std::size_t k = 0; k < file.size(); ++k) {
    const std::string cut = file.substr(0, k);
    try {
      const auto r = parse_preference_jsonl(cut, "cut");
      // Only cuts at a record boundary (or just before a newline) are valid.
      CHECK(r.report.records >= 1);
      CHECK(r.report.records <= 3);
      CHECK((cut.back() == '\n' || cut.back() == '}'));
    } catch (const prefopt::parse_error& e) {
      CHECK_THAT(std::string(e.what()), Catch::StartsWith("cut"));
    }
  }
}

TEST_CASE("Random mutations of a valid file never crash: success or prefopt::error", "[io]") {
  const std::string file = good_line + "\n" + good_line + "\n";
  rng g(2026);
  int errors = 0;
  for (int trial = 0; trial < 2000; ++trial) {
    std::string s = file;
    const int edits = 1 + static_cast<int>(g.uniform_index(4));
    for (int e = 0; e < edits && !s.empty(); ++e) {
      const auto at =
          static_cast<std::size_t>(g.uniform_index(static_cast<prefopt::index_t>(s.size())));
      switch (g.uniform_index(4)) {
        case 0:
          s[at] = static_cast<char>(g.uniform_index(256));
          break;
        case 1:
          s.erase(at, 1);
          break;
        case 2:
          s.insert(at, 1, "[]{}\",:-0123456789e.\x80\xff"[g.uniform_index(23)]);
          break;
        default:
          s.resize(at);
          break;
      }
    }
    try {
      (void)parse_preference_jsonl(s, "fuzz");
    } catch (const prefopt::error& e) {
      ++errors;
      CHECK_THAT(std::string(e.what()), Catch::StartsWith("fuzz"));
    }
  }
  CHECK(errors > 1000);  // most mutations are invalid
}
