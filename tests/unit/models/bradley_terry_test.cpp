#include "prefopt/models/preference/bradley_terry.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "prefopt/models/reward/tabular.hpp"
#include "support/laws.hpp"

using prefopt::row_matrix_d;

namespace {
prefopt::tabular_reward_model rewards_012() {
  row_matrix_d r(2, 3);
  r << 0.0, 1.0, 2.0, 3.0, -1.0, 0.0;
  return prefopt::tabular_reward_model(r);
}
}  // namespace

TEST_CASE("Bradley-Terry preferences satisfy the preference laws", "[models]") {
  const prefopt::bradley_terry_preference bt(rewards_012());
  STATIC_REQUIRE(prefopt::TabularPreferenceModel<decltype(bt)>);
  prefopt::test::check_preference_laws(bt);
}

TEST_CASE("Bradley-Terry preference is sigma(r(y) - r(y'))", "[models]") {
  const prefopt::bradley_terry_preference bt(rewards_012());
  const std::vector<prefopt::index_t> contexts{0, 1}, first{2, 1}, second{0, 0};
  prefopt::vector_d out(2);
  bt.preference({{contexts, first}, {contexts, second}}, out);
  CHECK(out[0] == Approx(1.0 / (1.0 + std::exp(-2.0))).epsilon(1e-15));
  CHECK(out[1] == Approx(1.0 / (1.0 + std::exp(4.0))).epsilon(1e-15));
}

TEST_CASE("the highest-reward response is a Condorcet winner under Bradley-Terry", "[models]") {
  const prefopt::bradley_terry_preference bt(rewards_012());
  prefopt::matrix_d p(3, 3);
  bt.preference_matrix(0, p);
  for (prefopt::index_t j = 0; j < 3; ++j) CHECK(p(2, j) >= 0.5);
  bt.preference_matrix(1, p);
  for (prefopt::index_t j = 0; j < 3; ++j) CHECK(p(0, j) >= 0.5);
}

namespace {
/// A reward model over sequences of a single "token": r = number of tokens equal to 1. It has no
/// table, so the adapter must work through `reward` alone.
struct count_ones_reward {
  using batch_type = prefopt::sequence_batch;
  void reward(const batch_type& batch, Eigen::Ref<prefopt::vector_d> out) const {
    for (prefopt::index_t i = 0; i < batch.size(); ++i) {
      double count = 0;
      for (auto t : batch.responses.sequence(i)) count += t == 1 ? 1.0 : 0.0;
      out[i] = count;
    }
  }
};
}  // namespace

TEST_CASE("the Bradley-Terry adapter turns a sequence reward model into a preference model",
          "[models]") {
  const prefopt::bradley_terry_preference bt{count_ones_reward{}};
  STATIC_REQUIRE(prefopt::PreferenceModel<decltype(bt)>);
  STATIC_REQUIRE_FALSE(prefopt::TabularPreferenceModel<decltype(bt)>);
  const std::vector<prefopt::token_id> prompts{7, 7}, a{1, 1, 0, 1}, b{0, 0, 1};
  const std::vector<prefopt::index_t> prompt_offsets{0, 1, 2}, a_offsets{0, 2, 4},
      b_offsets{0, 2, 3};
  const prefopt::sequence_batch first{{prompt_offsets, prompts}, {a_offsets, a}};
  const prefopt::sequence_batch second{{prompt_offsets, prompts}, {b_offsets, b}};
  prefopt::vector_d out(2);
  bt.preference({first, second}, out);
  CHECK(out[0] == Approx(1.0 / (1.0 + std::exp(-2.0))));  // 2 ones vs 0
  CHECK(out[1] == Approx(0.5));                           // 1 vs 1
}
