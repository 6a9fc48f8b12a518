#include <catch2/catch.hpp>

#include <limits>
#include <vector>

#include "prefopt/models/reward/tabular.hpp"
#include "support/laws.hpp"

using prefopt::row_matrix_d;
using prefopt::tabular_reward_model;

TEST_CASE("tabular reward model satisfies the reward-model laws and reads its table", "[models]") {
  row_matrix_d r(2, 3);
  r << 0.0, 1.0, 2.0, -1.0, 0.5, 4.0;
  const tabular_reward_model model(r);
  prefopt::test::check_reward_laws(model);
  const std::vector<prefopt::index_t> contexts{1, 0}, actions{2, 1};
  prefopt::vector_d out(2);
  model.reward({contexts, actions}, out);
  CHECK(out[0] == 4.0);
  CHECK(out[1] == 1.0);
}

TEST_CASE("tabular reward model rejects non-finite rewards and bad batches", "[models]") {
  row_matrix_d r = row_matrix_d::Zero(2, 2);
  r(0, 1) = std::numeric_limits<double>::infinity();
  CHECK_THROWS_WITH(tabular_reward_model(r),
                    Catch::Contains("tabular_reward_model: rewards(context 0, action 1) = inf"));
  const tabular_reward_model model(row_matrix_d::Zero(2, 2));
  const std::vector<prefopt::index_t> contexts{0}, actions{5};
  prefopt::vector_d out(1);
  CHECK_THROWS_WITH(model.reward({contexts, actions}, out),
                    Catch::Contains("tabular_reward_model::reward: batch.actions[0] = 5"));
}
