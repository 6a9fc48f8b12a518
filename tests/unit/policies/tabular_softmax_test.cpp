#include "prefopt/policies/tabular_softmax.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include "support/laws.hpp"

using prefopt::row_matrix_d;
using prefopt::tabular_batch;
using prefopt::tabular_softmax_policy;
using prefopt::vector_d;

namespace {
row_matrix_d random_logits(prefopt::index_t contexts, prefopt::index_t actions,
                           std::uint64_t seed) {
  prefopt::rng gen(seed);
  row_matrix_d z(contexts, actions);
  for (prefopt::index_t i = 0; i < z.size(); ++i) z.data()[i] = 3.0 * gen.normal();
  return z;
}
}  // namespace

TEST_CASE("tabular softmax policy satisfies the policy laws", "[policies]") {
  prefopt::test::check_policy_laws(tabular_softmax_policy(3, 4));
  prefopt::test::check_policy_laws(tabular_softmax_policy(random_logits(4, 6, 1)));
  // Extreme but finite logits: the row is still a distribution and the log-probs stay finite.
  row_matrix_d z(1, 3);
  z << 800.0, -800.0, 0.0;
  prefopt::test::check_policy_laws(tabular_softmax_policy(z));
}

TEST_CASE("the default tabular softmax policy is uniform", "[policies]") {
  const tabular_softmax_policy pi(2, 5);
  vector_d p(5);
  pi.probabilities(1, p);
  CHECK((p.array() - 0.2).abs().maxCoeff() <= 1e-15);
}

TEST_CASE("from_probabilities round-trips the probabilities", "[policies]") {
  row_matrix_d probs(2, 3);
  probs << 0.6, 0.3, 0.1, 0.2, 0.2, 0.6;
  const auto pi = tabular_softmax_policy::from_probabilities(probs);
  vector_d p(3);
  for (prefopt::index_t c = 0; c < 2; ++c) {
    pi.probabilities(c, p);
    CHECK((p - probs.row(c).transpose()).cwiseAbs().maxCoeff() <= 1e-15);
  }
  probs(1, 2) = 0.0;
  CHECK_THROWS_WITH(tabular_softmax_policy::from_probabilities(probs),
                    Catch::Contains("probabilities(context 1, action 2) = 0"));
  probs(1, 2) = 0.5;
  CHECK_THROWS_WITH(tabular_softmax_policy::from_probabilities(probs),
                    Catch::Contains("row of context 1 sums to 0.9"));
}

TEST_CASE("log-prob gradient matches central finite differences", "[policies]") {
  tabular_softmax_policy pi(random_logits(3, 5, 2));
  const std::vector<prefopt::index_t> contexts{0, 2, 2, 1}, actions{4, 0, 3, 1};
  const tabular_batch batch{contexts, actions};
  vector_d weights(4);
  weights << 0.7, -1.3, 2.0, 0.25;

  vector_d grad = vector_d::Zero(pi.num_parameters());
  pi.accumulate_log_prob_gradient(batch, weights, grad);

  auto objective = [&](const tabular_softmax_policy& p) {
    vector_d lp(4);
    p.log_prob(batch, lp);
    return weights.dot(lp);
  };
  const double h = 1e-5;
  for (prefopt::index_t k = 0; k < pi.num_parameters(); ++k) {
    tabular_softmax_policy plus = pi, minus = pi;
    plus.parameters()[k] += h;
    minus.parameters()[k] -= h;
    const double fd = (objective(plus) - objective(minus)) / (2 * h);
    CHECK(grad[k] == Approx(fd).epsilon(1e-6).margin(1e-8));
  }

  // The per-pair form is onehot - pi, and accumulation adds to what is there.
  vector_d row(5), p(5);
  pi.log_prob_gradient(2, 3, row);
  pi.probabilities(2, p);
  CHECK(std::abs(row[3] - (1.0 - p[3])) <= 1e-15);
  CHECK(std::abs(row.sum()) <= 1e-15);
  vector_d twice = grad;
  pi.accumulate_log_prob_gradient(batch, weights, twice);
  CHECK((twice - 2 * grad).cwiseAbs().maxCoeff() <= 1e-14);
}

TEST_CASE("recenter leaves the policy unchanged and makes each row's maximum 0", "[policies]") {
  tabular_softmax_policy pi(random_logits(3, 4, 3));
  pi.parameters().array() += 50.0;
  vector_d before(4), after(4);
  pi.probabilities(1, before);
  pi.recenter();
  pi.probabilities(1, after);
  CHECK((before - after).cwiseAbs().maxCoeff() <= 1e-15);
  CHECK(pi.logits().rowwise().maxCoeff().cwiseAbs().maxCoeff() == 0.0);
}

TEST_CASE("sampling frequencies match the policy's probabilities", "[policies]") {
  row_matrix_d probs(1, 4);
  probs << 0.5, 0.25, 0.2, 0.05;
  const auto pi = tabular_softmax_policy::from_probabilities(probs);
  prefopt::rng gen(11);
  constexpr int n = 80000;
  std::vector<int> counts(4, 0);
  for (int i = 0; i < n; ++i) ++counts[static_cast<std::size_t>(pi.sample(0, gen))];
  for (prefopt::index_t a = 0; a < 4; ++a) {
    const double p = probs(0, a);
    CHECK(std::abs(counts[static_cast<std::size_t>(a)] / double(n) - p) <=
          4 * std::sqrt(p * (1 - p) / n));
  }
}

TEST_CASE("non-finite logits are rejected naming the context and action", "[policies]") {
  row_matrix_d z = row_matrix_d::Zero(2, 3);
  z(1, 2) = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_WITH(tabular_softmax_policy(z),
                    Catch::Contains("tabular_softmax_policy: logits(context 1, action 2)"));
  z(1, 2) = -std::numeric_limits<double>::infinity();
  CHECK_THROWS_AS(tabular_softmax_policy(z), prefopt::invalid_argument);
  tabular_softmax_policy pi(2, 3);
  CHECK_THROWS_WITH(pi.set_logits(z), Catch::Contains("set_logits: logits(context 1, action 2)"));
  CHECK_THROWS_AS(pi.set_logits(row_matrix_d::Zero(3, 3)), prefopt::shape_error);
  CHECK_THROWS_AS(tabular_softmax_policy(0, 3), prefopt::shape_error);
}

TEST_CASE("out-of-range batch entries and wrong output sizes are rejected by position",
          "[policies]") {
  const tabular_softmax_policy pi(2, 3);
  const std::vector<prefopt::index_t> contexts{0, 2}, actions{0, 1}, bad_actions{0, 3};
  vector_d out(2);
  CHECK_THROWS_WITH(pi.log_prob(tabular_batch{contexts, actions}, out),
                    Catch::Contains("log_prob: batch.contexts[1] = 2"));
  const std::vector<prefopt::index_t> ok_contexts{0, 1};
  CHECK_THROWS_WITH(pi.log_prob(tabular_batch{ok_contexts, bad_actions}, out),
                    Catch::Contains("batch.actions[1] = 3"));
  vector_d short_out(1);
  CHECK_THROWS_AS(pi.log_prob(tabular_batch{ok_contexts, actions}, short_out),
                  prefopt::shape_error);
  vector_d p(4);
  CHECK_THROWS_AS(pi.probabilities(0, p), prefopt::shape_error);
  vector_d p3(3);
  CHECK_THROWS_WITH(pi.probabilities(-1, p3), Catch::Contains("context = -1"));
}
