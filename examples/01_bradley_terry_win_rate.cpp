// Example 01: from a reward model to a preference model to a win rate.
//
// Shows the core vocabulary end to end: a tabular reward model (2 prompts x 4 responses), the
// Bradley-Terry adapter that turns it into a preference model P(y > y' | x) = sigma(r(y) - r(y')),
// and the win rate of one tabular softmax policy against another,
//   P(pi > pi') = sum_x rho(x) sum_{y, y'} pi(y|x) pi'(y'|x) P(y > y' | x),
// computed exactly and estimated from sampled pairs with Bernoulli preference labels (seeded, so
// the estimate is the same on every platform).
#include <cmath>
#include <cstdio>
#include <vector>

#include "prefopt/prefopt.hpp"

int main() {
  using prefopt::index_t;
  // Rewards of 4 responses to each of 2 prompts.
  const prefopt::tabular_reward_model rewards(
      prefopt::row_matrix_d{{0.0, 0.5, 1.5, 3.0}, {2.0, 0.0, -1.0, 1.0}});
  const prefopt::bradley_terry_preference judge(rewards);

  // A reference policy (uniform) and a policy that tilts toward high reward: pi ~ mu exp(r / tau).
  const prefopt::tabular_softmax_policy reference(2, 4);
  const double tau = 1.0;
  const prefopt::tabular_softmax_policy tilted(rewards.table() / tau);

  std::printf("Bradley-Terry preference matrices P(y_i > y_j | x):\n");
  double exact = 0.0, self_play = 0.0;
  const double rho = 0.5;  // prompts equally likely
  prefopt::matrix_d p(4, 4);
  prefopt::vector_d a(4), b(4);
  for (index_t x = 0; x < 2; ++x) {
    prefopt::preference_matrix(judge, x, p);
    std::printf(" prompt %ld:\n", static_cast<long>(x));
    for (index_t i = 0; i < 4; ++i) {
      std::printf("  ");
      for (index_t j = 0; j < 4; ++j) std::printf(" %.4f", p(i, j));
      std::printf("\n");
    }
    tilted.probabilities(x, a);
    reference.probabilities(x, b);
    exact += rho * a.dot(p * b);
    self_play += rho * a.dot(p * a);  // 1/2 for every policy, since P + P^T = 1
  }

  // Monte-Carlo estimate: sample a prompt, one response from each policy, and a preference label.
  prefopt::rng gen(/*seed=*/2024);
  constexpr int pairs = 20000;
  int wins = 0;
  std::vector<index_t> context(1), first(1), second(1);
  prefopt::vector_d prob(1);
  for (int k = 0; k < pairs; ++k) {
    context[0] = gen.uniform_index(2);
    first[0] = prefopt::sample(tilted, context[0], gen);
    second[0] = prefopt::sample(reference, context[0], gen);
    judge.preference({{context, first}, {context, second}}, prob);
    wins += gen.bernoulli(prob[0]) ? 1 : 0;
  }
  const double estimate = static_cast<double>(wins) / pairs;
  const double stderr_ = std::sqrt(estimate * (1 - estimate) / pairs);

  std::printf("\nwin rate of pi ~ mu exp(r/tau) (tau = %.1f) against the uniform reference:\n",
              tau);
  std::printf("  exact     %.4f\n", exact);
  std::printf("  sampled   %.4f +- %.4f (%d labelled pairs)\n", estimate, stderr_, pairs);
  std::printf("  self-play %.4f (the policy against itself)\n", self_play);
  return std::abs(estimate - exact) < 5 * stderr_ ? 0 : 1;
}
