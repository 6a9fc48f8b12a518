#include "prefopt/data/relabeling.hpp"

#include <catch2/catch.hpp>

#include <set>

using namespace prefopt;
using namespace prefopt::data;

TEST_CASE("Relabeling swaps the correct and wrong instructions with the feedback", "[data]") {
  const auto c = relabel("Solve the question with correct answer.", "Q", "A", feedback::correct);
  CHECK(c.positive == "Solve the question with correct answer.");
  CHECK(c.negative == "Solve the question with wrong answer.");
  const auto w = relabel("Solve the question with correct answer.", "Q", "A", feedback::wrong);
  CHECK(w.positive == c.negative);
  CHECK(w.negative == c.positive);
  const binary_relabeler parity(relabel_strings::reference_code());
  CHECK(parity("", "", "", feedback::correct).positive == "Solve question with correct answer.");
  CHECK(parity("", "", "", feedback::wrong).negative == "Solve the question with correct answer.");
}

TEST_CASE("Normalisation maps 'The Answer.' and 'theanswer' to the same string", "[data]") {
  CHECK(normalize_answer("The Answer.") == normalize_answer("theanswer"));
  CHECK(verify_answer("(A) ", "(a)") == feedback::correct);
  CHECK(verify_answer("(B)", "(A)") == feedback::wrong);
}

TEST_CASE("The instruction block before the first blank line is replaced", "[data]") {
  const std::string prompt = "Solve the question with correct answer.\n\nQ: 2+2?\nA:";
  CHECK(replace_instruction(prompt, "Solve the question with wrong answer.") ==
        "Solve the question with wrong answer.\n\nQ: 2+2?\nA:");
  CHECK_THROWS_AS(replace_instruction("no blank line\nQ: x", "c"), prefopt::invalid_argument);
}

TEST_CASE("Sub-span sampler: start even < L-3, end odd, start < end <= L, reproducible", "[data]") {
  for (prefopt::index_t length = 4; length < 40; ++length) {
    rng a(99), b(99);
    std::set<prefopt::index_t> starts;
    for (int k = 0; k < 200; ++k) {
      const auto s = sample_sub_span(length, a);
      CHECK(s == sample_sub_span(length, b));
      CHECK(s.start % 2 == 0);
      CHECK(s.start < length - 3);
      CHECK(s.end % 2 == 1);
      CHECK(s.start < s.end);
      CHECK(s.end <= length);
      starts.insert(s.start);
    }
    CHECK(static_cast<prefopt::index_t>(starts.size()) ==
          (length - 2) / 2);  // every allowed start occurs
  }
  rng g(1);
  CHECK(sample_sub_span(3, g) == sub_span{0, 3});
}

TEST_CASE("Sub-span swap rule triggers exactly when a wrong output's prefix is in the target",
          "[data]") {
  CHECK(sub_span_swaps("(A", "(A)", true, feedback::wrong));
  CHECK(sub_span_swaps("The (A).", "the (a)", true, feedback::wrong));
  CHECK_FALSE(sub_span_swaps("(A", "(A)", false, feedback::wrong));   // not truncated
  CHECK_FALSE(sub_span_swaps("(A", "(A)", true, feedback::correct));  // already correct
  CHECK_FALSE(sub_span_swaps("(B", "(A)", true, feedback::wrong));    // not contained
  auto r = relabel("", "", "", feedback::wrong);
  CHECK(apply_sub_span_rule(r, "(A", "(A)", true, feedback::wrong));
  CHECK(r.positive == "Solve the question with correct answer.");
}
