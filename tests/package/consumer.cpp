// A program outside the prefopt tree: builds a Bradley-Terry preference model from a tabular reward
// model and checks the win rate of one tabular policy against another. It also touches fmt and
// nlohmann_json through prefopt::io's usage requirements. Exit code 0 means everything agreed.
#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include <cmath>

#include "prefopt/io.hpp"

int main() {
  const prefopt::tabular_reward_model rewards(prefopt::row_matrix_d{{0.0, 1.0, 2.0}});
  const prefopt::bradley_terry_preference judge(rewards);
  prefopt::matrix_d p(3, 3);
  prefopt::preference_matrix(judge, 0, p);
  const auto greedy =
      prefopt::tabular_softmax_policy::from_probabilities(prefopt::row_matrix_d{{0.1, 0.1, 0.8}});
  const prefopt::tabular_softmax_policy uniform(1, 3);
  prefopt::vector_d a(3), b(3);
  greedy.probabilities(0, a);
  uniform.probabilities(0, b);
  const double win_rate = a.dot(p * b);
  const nlohmann::json result{{"win_rate", win_rate}};
  fmt::print("consumer: {}\n", result.dump());
  return win_rate > 0.5 && win_rate < 1.0 ? 0 : 1;
}
