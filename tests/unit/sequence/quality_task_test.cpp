// The length-biased quality task (gold reward, judge laws, the length bias) and the Monte-Carlo
// evaluation (win rate, expected reward, KL and length) against exact enumeration on positional
// models.
#include "prefopt/sequence/quality_task.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "prefopt/policies/sequence_adapters.hpp"
#include "prefopt/sequence/evaluation.hpp"
#include "support/laws.hpp"

namespace {
using index_t = prefopt::index_t;
using prefopt::sequence_batch;
using prefopt::token_id;
using prefopt::vector_d;

/// K = 2 content tokens, eos = 2, one prompt [0] and one [1, 0]; Q rows are topics 0, 1, 2.
prefopt::length_biased_quality_task small_task(double bonus) {
  prefopt::row_matrix_d q(3, 2);
  q << 1.0, -1.0, -0.5, 0.5, 0.0, 0.0;
  return {{0, 1, 3}, {0, 1, 0}, q, bonus};
}

prefopt::token_softmax_policy random_positional(std::uint64_t seed) {
  prefopt::token_softmax_policy p(2, 3);
  prefopt::rng gen(seed);
  for (index_t j = 0; j < p.num_parameters(); ++j) p.parameters()(j) = gen.normal();
  return p;
}

/// The 7 well-formed responses of a K = 2, L = 3 positional policy.
const std::vector<std::vector<token_id>> responses{{2},       {0, 2},    {1, 2},   {0, 0, 2},
                                                   {0, 1, 2}, {1, 0, 2}, {1, 1, 2}};

}  // namespace

TEST_CASE("quality task: gold reward sums token quality under the prompt's topic", "[sequence]") {
  const auto task = small_task(0.5);
  const std::vector<index_t> po{0, 1, 3, 4};
  const std::vector<token_id> pt{0, 1, 0, 0};
  const std::vector<index_t> ro{0, 3, 6, 8};
  const std::vector<token_id> rt{0, 0, 2, 1, 1, 2, 1, 2};
  const sequence_batch b{{po, pt}, {ro, rt}};
  vector_d r(3);
  task.gold_reward().reward(b, r);
  CHECK(r(0) == 2.0);   // topic 0: 1 + 1
  CHECK(r(1) == 1.0);   // topic 1: 0.5 + 0.5
  CHECK(r(2) == -1.0);  // topic 0: -1, then eos
  CHECK(task.eos() == 2);
  CHECK(task.vocab_size() == 3);
}

TEST_CASE("quality task: the judge is Bradley-Terry on quality plus a length bonus", "[sequence]") {
  using prefopt::test::contains;
  const auto task = small_task(0.5);
  const auto judge = task.judge();
  const std::vector<index_t> po{0, 1, 2, 3};
  const std::vector<token_id> pt{0, 0, 1};
  const std::vector<index_t> ao{0, 2, 4, 7}, bo{0, 3, 4, 6};
  const std::vector<token_id> at{0, 2, 1, 2, 0, 1, 2}, bt{0, 1, 2, 1, 0, 0};
  const sequence_batch a{{po, pt}, {ao, at}}, bb{{po, pt}, {bo, bt}};
  vector_d p(3), q(3), self(3);
  judge.preference({a, bb}, p);
  judge.preference({bb, a}, q);
  judge.preference({a, a}, self);
  CHECK((p + q - vector_d::Ones(3)).cwiseAbs().maxCoeff() < 1e-15);
  CHECK((self.array() == 0.5).all());
  // [0, eos] (1 + 0.5) against [0, 1, eos] (0 + 1.0): sigma(0.5).
  CHECK(p(0) == Approx(prefopt::sigmoid(0.5)).epsilon(1e-14));
  // Equal quality, one more token: the longer wins with bonus 0.5 and ties without.
  const std::vector<token_id> long_t{0, 1, 0, 1, 2}, short_t{0, 1, 2};
  const std::vector<index_t> one_po{0, 1}, lo{0, 5}, so{0, 3};
  const std::vector<token_id> topic{0};
  const sequence_batch lb{{one_po, topic}, {lo, long_t}}, sb{{one_po, topic}, {so, short_t}};
  vector_d w(1);
  judge.preference({lb, sb}, w);
  CHECK(w(0) == Approx(prefopt::sigmoid(1.0)).epsilon(1e-14));
  small_task(0.0).judge().preference({lb, sb}, w);
  CHECK(w(0) == 0.5);
  // Bad tokens are named.
  const std::vector<token_id> bad{0, 3};
  const std::vector<index_t> bo2{0, 2};
  CHECK_THROWS_WITH(judge.preference({{{one_po, topic}, {bo2, bad}}, lb}, w),
                    contains("batch.responses[0][1] = 3"));
}

TEST_CASE("quality task: random tasks are reproducible and centred per topic", "[sequence]") {
  prefopt::quality_task_config c;
  c.seed = 4;
  const auto t1 = prefopt::length_biased_quality_task::random(c);
  const auto t2 = prefopt::length_biased_quality_task::random(c);
  CHECK(t1.quality() == t2.quality());
  CHECK(t1.prompts().num_sequences() == 8);
  CHECK(t1.quality().rowwise().sum().cwiseAbs().maxCoeff() < 1e-12);
  c.content_tokens = 0;
  CHECK_THROWS_WITH(prefopt::length_biased_quality_task::random(c),
                    prefopt::test::contains("config.content_tokens = 0"));
}

TEST_CASE("win rate, expected reward and KL agree with exact enumeration", "[sequence]") {
  const auto task = small_task(0.5);
  auto pi_policy = random_positional(1), mu_policy = random_positional(2);
  const prefopt::positional_sequence_model pi(pi_policy), mu(mu_policy);
  const std::vector<index_t> po{0, 1};
  const std::vector<token_id> pt{0};
  const prefopt::ragged_view<const token_id> prompts{po, pt};

  // Exact: enumerate the responses of both policies.
  auto log_prob = [&](const prefopt::token_softmax_policy& p, const std::vector<token_id>& y) {
    const std::vector<index_t> o{0, static_cast<index_t>(y.size())}, none{0, 0};
    vector_d out(1);
    p.log_prob({{none, {}}, {o, y}}, out);
    return out(0);
  };
  auto score = [&](const std::vector<token_id>& y) {
    double s = 0.0;
    for (std::size_t t = 0; t + 1 < y.size(); ++t) s += task.quality()(0, y[t]) + 0.5;
    return s;
  };
  double exact_win = 0.0, exact_reward = 0.0;
  for (const auto& y : responses) {
    const double py = std::exp(log_prob(pi_policy, y));
    exact_reward += py * (score(y) - 0.5 * static_cast<double>(y.size() - 1));
    for (const auto& z : responses) {
      exact_win += py * std::exp(log_prob(mu_policy, z)) * prefopt::sigmoid(score(y) - score(z));
    }
  }

  prefopt::generation_config c;
  c.samples_per_prompt = 4000;
  const auto w = prefopt::win_rate(pi, mu, task.judge(), prompts, c, 7);
  CHECK(w.samples == 4000);
  CHECK(std::abs(w.mean - exact_win) <= 5.0 * w.std_error);
  CHECK(w.lower < w.mean);
  CHECK(w.upper - w.mean == Approx(1.959963984540054 * w.std_error));
  const auto self = prefopt::win_rate(pi, pi, task.judge(), prompts, c, 8);
  CHECK(std::abs(self.mean - 0.5) <= 5.0 * self.std_error);

  const auto r = prefopt::expected_reward(pi, task.gold_reward(), prompts, c, 9);
  CHECK(std::abs(r.mean - exact_reward) <= 5.0 * r.std_error);
  CHECK(r.std_error > 0.0);

  const auto s = prefopt::kl_and_length(pi, mu, prompts, c, 10);
  REQUIRE(s.kl.size() == 1);
  CHECK(std::abs(s.kl[0].mean - pi_policy.kl_divergence(mu_policy)) <= 5.0 * s.kl[0].std_error);
  CHECK(std::abs(s.length[0].mean - pi_policy.expected_length()) <= 5.0 * s.length[0].std_error);
  CHECK(s.mean_kl.mean == s.kl[0].mean);
}

TEST_CASE("mean_with_interval: mean, Bessel-corrected standard error, 95% interval", "[sequence]") {
  const std::vector<double> v{1.0, 2.0, 3.0, 4.0};
  const auto e = prefopt::mean_with_interval(v);
  CHECK(e.mean == 2.5);
  CHECK(e.std_error == Approx(std::sqrt(5.0 / 3.0 / 4.0)).epsilon(1e-14));
  CHECK(e.lower == Approx(2.5 - 1.959963984540054 * e.std_error).epsilon(1e-14));
  CHECK_THROWS_AS(prefopt::mean_with_interval({}), prefopt::invalid_argument);
}
