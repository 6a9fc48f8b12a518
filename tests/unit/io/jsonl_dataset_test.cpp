#include "prefopt/io/jsonl_dataset.hpp"

#include <catch2/catch.hpp>

#include <fstream>
#include <string>
#include <vector>

#include "temp_dir.hpp"

using namespace prefopt;
using namespace prefopt::io;
using data::logprob_column;
using data::logprob_layout;

namespace {
const std::string valid =
    R"({"prompt_ids": [1, 2], "chosen_ids": [3, 4, 5], "rejected_ids": [6], )"
    R"("policy_chosen_logps": [-0.5, -1.0, -0.25], "policy_rejected_logps": [-2.0], )"
    R"("reference_chosen_logps": -2.0, "reference_rejected_logps": -1.5})"
    "\n"
    R"({"prompt_ids": [7], "chosen_ids": [8], "rejected_ids": [9, 10], )"
    R"("policy_chosen_logps": [-0.125], "policy_rejected_logps": [-1, -2], )"
    R"("reference_chosen_logps": 0, "reference_rejected_logps": -3.5})"
    "\n";
}  // namespace

TEST_CASE("JSONL loader reads ids and per-token / per-sequence log-probs", "[io]") {
  test::temp_dir dir("jsonl_basic");
  prefopt::test::write_file(dir / "d.jsonl", valid);
  const auto r = load_preference_jsonl(dir / "d.jsonl");
  const auto& d = r.dataset;
  REQUIRE(d.size() == 2);
  CHECK(r.report.records == 2);
  CHECK(r.report.truncated_records == 0);
  CHECK(d.chosen()[0][2] == 5);
  CHECK(d.rejected().length(1) == 2);
  CHECK(d.layout(logprob_column::policy_chosen) == logprob_layout::per_token);
  CHECK(d.layout(logprob_column::reference_chosen) == logprob_layout::per_sequence);
  CHECK(d.sequence_logps(logprob_column::policy_chosen)[0] == -1.75);
  CHECK(d.sequence_logps(logprob_column::policy_rejected)[1] == -3.0);
  CHECK(d.sequence_logps(logprob_column::reference_chosen)[1] == 0.0);
  // The in-memory parser gives the same dataset.
  const auto p = parse_preference_jsonl(valid, "memory");
  CHECK(p.dataset.fingerprint() == d.fingerprint());
}

TEST_CASE("JSONL loader accepts CRLF line ends and a last line without newline", "[io]") {
  test::temp_dir dir("jsonl_crlf");
  std::string crlf;
  for (const char c : valid) {
    if (c == '\n')
      crlf += "\r\n";
    else
      crlf += c;
  }
  crlf.pop_back();
  crlf.pop_back();  // no final line end
  prefopt::test::write_file(dir / "d.jsonl", crlf);
  CHECK(load_preference_jsonl(dir / "d.jsonl").dataset.size() == 2);
}

TEST_CASE("JSONL round trip preserves tokens and log-probs exactly", "[io]") {
  test::temp_dir dir("jsonl_roundtrip");
  const auto first = parse_preference_jsonl(valid, "memory").dataset;
  save_preference_jsonl(dir / "out.jsonl", first);
  CHECK_FALSE(std::filesystem::exists(dir / ".out.jsonl.tmp"));
  const auto second = load_preference_jsonl(dir / "out.jsonl").dataset;
  CHECK(second.fingerprint() == first.fingerprint());
  for (const auto c : data::all_logprob_columns) {
    CHECK(second.layout(c) == first.layout(c));
    CHECK(second.sequence_logps(c) == first.sequence_logps(c));
  }
}

TEST_CASE("Explicit max lengths truncate and report how many", "[io]") {
  jsonl_options o;
  o.max_response_length = 1;
  o.max_prompt_length = 1;
  const std::string per_token =
      R"({"prompt_ids": [1, 2], "chosen_ids": [3, 4, 5], "rejected_ids": [6], "policy_chosen_logps": [-0.5, -1.0, -0.25]})"
      "\n"
      R"({"prompt_ids": [7], "chosen_ids": [8], "rejected_ids": [9], "policy_chosen_logps": [-0.125]})"
      "\n";
  const auto r = parse_preference_jsonl(per_token, "t.jsonl", o);
  CHECK(r.report.truncated_records == 1);
  CHECK(r.report.truncated_prompts == 1);
  CHECK(r.report.truncated_responses == 1);
  CHECK(r.dataset.prompts()[0][0] == 2);  // prompts keep their last tokens
  CHECK(r.dataset.chosen()[0].size() == 1);
  CHECK(r.dataset.chosen()[0][0] == 3);  // responses keep their first tokens
  CHECK(r.dataset.sequence_logps(logprob_column::policy_chosen)[0] == -0.5);
  // Without the option nothing is truncated.
  CHECK(parse_preference_jsonl(per_token, "t.jsonl").report.truncated_records == 0);
  // A per-sequence log-prob cannot be truncated: clear error.
  CHECK_THROWS_WITH(parse_preference_jsonl(valid, "v.jsonl", o),
                    Catch::Contains("v.jsonl:1: field 'reference_chosen_logps'") &&
                        Catch::Contains("cannot be truncated"));
}

TEST_CASE("JSONL options: vocabulary bound, unknown fields, empty responses", "[io]") {
  jsonl_options o;
  o.vocab_size = 10;
  CHECK_THROWS_WITH(parse_preference_jsonl(valid, "v.jsonl", o),
                    Catch::Contains("v.jsonl:2: field 'rejected_ids[1]': token id 10 is out of "
                                    "range, expected an id < vocab_size = 10"));
  const std::string extra =
      R"({"prompt_ids": [1], "chosen_ids": [2], "rejected_ids": [3], "id": "x"})";
  CHECK_THROWS_WITH(parse_preference_jsonl(extra, "e.jsonl"),
                    Catch::Contains("e.jsonl:1: field 'id': unknown field"));
  jsonl_options lenient;
  lenient.allow_unknown_fields = true;
  CHECK(parse_preference_jsonl(extra, "e.jsonl", lenient).dataset.size() == 1);
  const std::string empty_response =
      R"({"prompt_ids": [1], "chosen_ids": [], "rejected_ids": [3]})";
  CHECK_THROWS_WITH(parse_preference_jsonl(empty_response, "e.jsonl"),
                    Catch::Contains("field 'chosen_ids': empty"));
  lenient.allow_empty_responses = true;
  CHECK(parse_preference_jsonl(empty_response, "e.jsonl", lenient).dataset.chosen().length(0) == 0);
}

TEST_CASE("A missing file is an io_error naming it", "[io]") {
  CHECK_THROWS_AS(load_preference_jsonl("definitely/not/here.jsonl"), prefopt::io_error);
  CHECK_THROWS_WITH(load_preference_jsonl("definitely/not/here.jsonl"),
                    Catch::Contains("definitely/not/here.jsonl"));
}
