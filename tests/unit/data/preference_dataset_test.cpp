#include "prefopt/data/preference_dataset.hpp"

#include <catch2/catch.hpp>

#include <vector>

using namespace prefopt;
using namespace prefopt::data;
using ids = std::vector<token_id>;

namespace {
preference_dataset small() {
  preference_dataset d;
  const std::vector<double> tw{-0.5, -1.0}, tl{-2.0};
  d.add(ids{1, 2}, ids{3, 4}, ids{5},
        {logprob_value::of_tokens(tw), logprob_value::of_tokens(tl),
         logprob_value::of_sequence(-1.25), logprob_value::of_sequence(-3.0)});
  const std::vector<double> tw2{-0.1, -0.2, -0.3}, tl2{-0.4};
  d.add(ids{7}, ids{8, 9, 10}, ids{11},
        {logprob_value::of_tokens(tw2), logprob_value::of_tokens(tl2),
         logprob_value::of_sequence(-0.5), logprob_value::of_sequence(-0.25)});
  d.add(ids{}, ids{12}, ids{13, 14},
        {logprob_value::of_tokens(std::vector<double>{-1.0}),
         logprob_value::of_tokens(std::vector<double>{-0.5, -0.5}),
         logprob_value::of_sequence(-2.0), logprob_value::of_sequence(-1.0)});
  return d;
}
}  // namespace

TEST_CASE("Preference dataset stores ragged records and derives sequence log-probs", "[data]") {
  const auto d = small();
  REQUIRE(d.size() == 3);
  CHECK(d.chosen().length(1) == 3);
  CHECK(d.prompts().length(2) == 0);
  CHECK(d.layout(logprob_column::policy_chosen) == logprob_layout::per_token);
  CHECK(d.layout(logprob_column::reference_chosen) == logprob_layout::per_sequence);
  CHECK(d.sequence_logps(logprob_column::policy_chosen)[1] == Approx(-0.6));
  CHECK(d.sequence_logps(logprob_column::reference_rejected)[0] == -3.0);
  CHECK(d.token_logps(logprob_column::policy_rejected)[2][1] == -0.5);
  CHECK(d.chosen_lengths() == std::vector<prefopt::index_t>{2, 3, 1});
  CHECK_THROWS_WITH(d.token_logps(logprob_column::reference_chosen),
                    Catch::Contains("reference_chosen_logps is per_sequence, expected per_token"));
}

TEST_CASE("Ragged batches rebase offsets and carry lengths and log-probs", "[data]") {
  const auto d = small();
  const std::vector<prefopt::index_t> pick{2, 0};
  const auto b = d.batch(pick);
  REQUIRE(b.size() == 2);
  CHECK(b.chosen.offsets() == std::vector<prefopt::index_t>{0, 1, 3});
  CHECK(b.rejected[0][1] == 14);
  CHECK(b.chosen_lengths == std::vector<prefopt::index_t>{1, 2});
  CHECK(b.logps(logprob_column::reference_chosen)(0) == -2.0);
  CHECK(b.logps(logprob_column::policy_chosen)(1) == Approx(-1.5));
  const auto all = d.batches(2);
  REQUIRE(all.size() == 2);
  CHECK(all[1].size() == 1);
  CHECK(all[1].indices[0] == 2);
  const std::vector<prefopt::index_t> bad{3};
  CHECK_THROWS_WITH(d.batch(bad), Catch::Contains("indices[0] = 3"));
}

TEST_CASE("Adding a bad record throws and leaves the dataset unchanged", "[data]") {
  auto d = small();
  const auto before = d.fingerprint();
  CHECK_THROWS_WITH(d.add(ids{1}, ids{-4}, ids{2}), Catch::Contains("chosen_ids[0] = -4"));
  CHECK_THROWS_WITH(d.add(ids{1}, ids{2}, ids{3}),
                    Catch::Contains("policy_chosen_logps has layout none but earlier records have "
                                    "per_token"));
  const std::vector<double> wrong_size{-1.0, -1.0};
  CHECK_THROWS_WITH(
      d.add(ids{1}, ids{2}, ids{3},
            {logprob_value::of_tokens(wrong_size), logprob_value::of_tokens(wrong_size),
             logprob_value::of_sequence(-1), logprob_value::of_sequence(-1)}),
      Catch::Contains("has 2 per-token values, expected 1"));
  CHECK_THROWS_WITH(
      d.add(ids{1}, ids{2}, ids{3},
            {logprob_value::of_tokens(std::vector<double>{-1.0}),
             logprob_value::of_tokens(std::vector<double>{-1.0}), logprob_value::of_sequence(0.5),
             logprob_value::of_sequence(-1)}),
      Catch::Contains("reference_chosen_logps = 0.5, expected a finite log-probability <= 0"));
  CHECK(d.size() == 3);
  CHECK(d.fingerprint() == before);
}

TEST_CASE("Fingerprint changes with any token, any record order or count", "[data]") {
  const auto d = small();
  const auto f = d.fingerprint();
  preference_dataset e;
  e.add(ids{1, 2}, ids{3, 4}, ids{5});
  e.add(ids{7}, ids{8, 9, 10}, ids{11});
  e.add(ids{}, ids{12}, ids{13, 14});
  CHECK(e.fingerprint() == f);  // log-probs are not part of the fingerprint
  preference_dataset moved;     // same tokens, one moved across the prompt/response boundary
  moved.add(ids{1}, ids{2, 3, 4}, ids{5});
  moved.add(ids{7}, ids{8, 9, 10}, ids{11});
  moved.add(ids{}, ids{12}, ids{13, 14});
  CHECK(moved.fingerprint() != f);
  preference_dataset changed;
  changed.add(ids{1, 2}, ids{3, 4}, ids{5});
  changed.add(ids{7}, ids{8, 9, 10}, ids{11});
  changed.add(ids{}, ids{12}, ids{13, 15});
  CHECK(changed.fingerprint() != f);
  preference_dataset shorter;
  shorter.add(ids{1, 2}, ids{3, 4}, ids{5});
  shorter.add(ids{7}, ids{8, 9, 10}, ids{11});
  CHECK(shorter.fingerprint() != f);
}

TEST_CASE("Setting cached reference log-probs validates before changing anything", "[data]") {
  auto d = small();
  const std::vector<double> ok{-1.0, -2.0, -3.0}, bad{-1.0, 0.1, -3.0}, short_{-1.0};
  CHECK_THROWS_WITH(d.set_sequence_logps(logprob_column::reference_chosen, bad),
                    Catch::Contains("record 1: reference_chosen_logps = 0.1,"));
  CHECK(d.sequence_logps(logprob_column::reference_chosen)[1] == -0.5);
  CHECK_THROWS_AS(d.set_sequence_logps(logprob_column::reference_chosen, short_),
                  prefopt::shape_error);
  d.set_sequence_logps(logprob_column::reference_chosen, ok);
  CHECK(d.sequence_logps(logprob_column::reference_chosen)[2] == -3.0);
  ragged_buffer<double> tokens;
  tokens.push_back(std::vector<double>{-0.1});
  CHECK_THROWS_AS(d.set_token_logps(logprob_column::reference_rejected, tokens),
                  prefopt::shape_error);
}

TEST_CASE("Per-token log-probs whose sum overflows a double are rejected, nothing stored",
          "[data]") {
  // Each value is finite and <= 0; their sum, the sequence log-prob, is -inf (a fuzz finding).
  const std::vector<double> huge{-1e308, -1e308}, fine{-1.0};
  preference_dataset d;
  d.add(ids{1}, ids{2, 3}, ids{4},
        {logprob_value::of_tokens(std::vector<double>{-1.0, -1.0}), logprob_value::of_tokens(fine),
         logprob_value{}, logprob_value{}});
  CHECK_THROWS_WITH(
      d.add(ids{1}, ids{2, 3}, ids{4},
            {logprob_value::of_tokens(huge), logprob_value::of_tokens(fine), logprob_value{},
             logprob_value{}}),
      Catch::Contains("preference_dataset::add: record 1: policy_chosen_logps: the 2 per-token "
                      "log-probs sum to -inf, expected a finite sequence log-probability"));
  CHECK(d.size() == 1);
  CHECK(d.chosen().total_length() == 2);
  ragged_buffer<double> tokens;
  tokens.push_back(huge);
  CHECK_THROWS_WITH(
      d.set_token_logps(logprob_column::reference_chosen, tokens),
      Catch::Contains("preference_dataset::set_token_logps: record 0: "
                      "reference_chosen_logps: the 2 per-token log-probs sum to -inf"));
  CHECK(d.layout(logprob_column::reference_chosen) == logprob_layout::none);
}
