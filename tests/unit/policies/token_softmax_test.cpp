#include "prefopt/policies/token_softmax.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "prefopt/games/token_task.hpp"
#include "support/laws.hpp"

using prefopt::sequence_batch;
using prefopt::token_id;
using prefopt::token_softmax_policy;
using prefopt::vector_d;

namespace {

/// Every response of the policy's space (content tokens then eos, at most L tokens), as a ragged
/// batch, built by enumeration.
struct all_responses {
  std::vector<token_id> tokens;
  std::vector<prefopt::index_t> offsets{0};

  all_responses(prefopt::index_t k, prefopt::index_t l) {
    std::vector<token_id> prefix;
    add(k, l, prefix);
  }
  void add(prefopt::index_t k, prefopt::index_t l, std::vector<token_id>& prefix) {
    tokens.insert(tokens.end(), prefix.begin(), prefix.end());
    tokens.push_back(static_cast<token_id>(k));
    offsets.push_back(static_cast<prefopt::index_t>(tokens.size()));
    if (static_cast<prefopt::index_t>(prefix.size()) + 1 >= l) return;
    for (token_id c = 0; c < static_cast<token_id>(k); ++c) {
      prefix.push_back(c);
      add(k, l, prefix);
      prefix.pop_back();
    }
  }
  [[nodiscard]] sequence_batch batch() const {
    return {{}, {std::span<const prefopt::index_t>(offsets), std::span<const token_id>(tokens)}};
  }
  [[nodiscard]] prefopt::index_t size() const {
    return static_cast<prefopt::index_t>(offsets.size()) - 1;
  }
  [[nodiscard]] std::span<const token_id> at(prefopt::index_t i) const {
    return batch().responses.sequence(i);
  }
};

token_softmax_policy random_policy(prefopt::index_t k, prefopt::index_t l, std::uint64_t seed) {
  token_softmax_policy p(k, l);
  prefopt::rng gen(seed);
  for (prefopt::index_t i = 0; i < p.num_parameters(); ++i) p.parameters()(i) = 1.5 * gen.normal();
  return p;
}

}  // namespace

TEST_CASE("token softmax policy: response probabilities sum to 1 and match the exact summaries",
          "[policies][token]") {
  for (const auto& [k, l] :
       {std::pair<prefopt::index_t, prefopt::index_t>{1, 1}, {1, 5}, {2, 2}, {2, 4}, {3, 5}}) {
    const token_softmax_policy pi = random_policy(k, l, static_cast<std::uint64_t>(10 * k + l));
    const token_softmax_policy mu = token_softmax_policy::with_stop_probability(k, l, 0.3);
    const all_responses all(k, l);
    vector_d lp(all.size());
    vector_d lq(all.size());
    pi.log_prob(all.batch(), lp);
    mu.log_prob(all.batch(), lq);
    const vector_d p = lp.array().exp().matrix();
    CHECK(p.sum() == Approx(1.0).epsilon(1e-12));
    CHECK(lq.array().exp().sum() == Approx(1.0).epsilon(1e-12));

    // Length distribution, expected length, expected token sums and KL against enumeration.
    vector_d by_length = vector_d::Zero(l);
    vector_d value(k + 1);
    for (prefopt::index_t j = 0; j <= k; ++j) value(j) = 0.7 * static_cast<double>(j) - 0.4;
    double e_len = 0.0, e_value = 0.0, kl = 0.0;
    for (prefopt::index_t i = 0; i < all.size(); ++i) {
      const auto y = all.at(i);
      by_length(static_cast<prefopt::index_t>(y.size()) - 1) += p(i);
      e_len += p(i) * static_cast<double>(y.size());
      for (const token_id t : y) e_value += p(i) * value(t);
      kl += p(i) * (lp(i) - lq(i));
    }
    CHECK((pi.length_distribution() - by_length).cwiseAbs().maxCoeff() <= 1e-12);
    CHECK(pi.expected_length() == Approx(e_len).epsilon(1e-12));
    CHECK(pi.expected_token_sum(value) == Approx(e_value).epsilon(1e-12).margin(1e-12));
    CHECK(pi.kl_divergence(mu) == Approx(kl).epsilon(1e-10).margin(1e-12));
    CHECK(pi.kl_divergence(pi) == 0.0);
  }
}

TEST_CASE("token softmax policy: KL stays finite when q's probabilities underflow",
          "[policies][token]") {
  token_softmax_policy p(2, 3);
  token_softmax_policy q(2, 3);
  q.logits(0)(0) = -800.0;  // exp underflows to 0, the log-probability is finite
  // KL(p || q) = sum_t reach_t KL(p_t || q_t); only position 0 differs: p_0 uniform over 3.
  const double expected = (std::log(1.0 / 3.0) - (-800.0 - std::log(2.0))) / 3.0 +
                          2.0 / 3.0 * (std::log(1.0 / 3.0) - std::log(0.5));
  CHECK(p.kl_divergence(q) == Approx(expected).epsilon(1e-12));
}

TEST_CASE("token softmax policy: decisions() counts the terms of the log-probability",
          "[policies][token]") {
  const token_softmax_policy pi(3, 4);
  CHECK(pi.decisions(1) == 1);
  CHECK(pi.decisions(3) == 3);
  CHECK(pi.decisions(4) == 3);  // the eos forced at the last position is not a decision
  CHECK(token_softmax_policy(3, 1).decisions(1) == 0);
}

TEST_CASE("token softmax policy: with_stop_probability gives truncated geometric lengths",
          "[policies][token]") {
  const auto mu = token_softmax_policy::with_stop_probability(4, 6, 0.25);
  const vector_d d = mu.length_distribution();
  for (prefopt::index_t n = 0; n + 1 < 6; ++n) {
    CHECK(d(n) == Approx(0.25 * std::pow(0.75, static_cast<double>(n))).epsilon(1e-14));
  }
  CHECK(d(5) == Approx(std::pow(0.75, 5.0)).epsilon(1e-14));  // forced eos at the last position
  vector_d p(5);
  mu.probabilities(2, p);
  CHECK(p.head(4).isConstant(0.75 / 4, 1e-15));
}

TEST_CASE("token softmax policy: the log-prob gradient matches central differences",
          "[policies][token]") {
  const auto [k, l] = GENERATE(std::pair<prefopt::index_t, prefopt::index_t>{3, 5},
                               std::pair<prefopt::index_t, prefopt::index_t>{2, 2});
  token_softmax_policy pi = random_policy(k, l, 7);
  const all_responses all(k, l);
  prefopt::rng gen(3);
  vector_d w(all.size());
  for (prefopt::index_t i = 0; i < w.size(); ++i) w(i) = gen.normal();
  vector_d grad = vector_d::Zero(pi.num_parameters());
  pi.accumulate_log_prob_gradient(all.batch(), w, grad);
  const auto objective = [&](const token_softmax_policy& q) {
    vector_d lp(all.size());
    q.log_prob(all.batch(), lp);
    return w.dot(lp);
  };
  const double h = 1e-6;
  for (prefopt::index_t j = 0; j < pi.num_parameters(); ++j) {
    const double saved = pi.parameters()(j);
    pi.parameters()(j) = saved + h;
    const double up = objective(pi);
    pi.parameters()(j) = saved - h;
    const double down = objective(pi);
    pi.parameters()(j) = saved;
    CHECK(grad(j) == Approx((up - down) / (2 * h)).epsilon(1e-6).margin(1e-6));
  }
  // Accumulates: a second call doubles it.
  vector_d twice = grad;
  pi.accumulate_log_prob_gradient(all.batch(), w, twice);
  CHECK((twice - 2 * grad).cwiseAbs().maxCoeff() <= 1e-12);
}

TEST_CASE("token softmax policy: samples follow the exact length distribution",
          "[policies][token]") {
  const token_softmax_policy pi = random_policy(2, 5, 11);
  prefopt::rng gen(5);
  std::vector<token_id> buffer;
  const int n = 40000;
  vector_d counts = vector_d::Zero(5);
  int malformed = 0;
  for (int i = 0; i < n; ++i) {
    buffer.clear();
    const prefopt::index_t len = pi.sample(gen, buffer);
    const bool ok =
        static_cast<prefopt::index_t>(buffer.size()) == len && buffer.back() == pi.eos() &&
        std::all_of(buffer.begin(), buffer.end() - 1, [](token_id t) { return t >= 0 && t < 2; });
    malformed += ok ? 0 : 1;
    counts(len - 1) += 1.0;
  }
  CHECK(malformed == 0);
  const vector_d d = pi.length_distribution();
  for (prefopt::index_t j = 0; j < 5; ++j) {
    const double sd = std::sqrt(d(j) * (1 - d(j)) / n);
    CHECK(std::abs(counts(j) / n - d(j)) <= 5 * sd + 1e-12);
  }
}

TEST_CASE("token softmax policy: malformed responses are errors naming response and position",
          "[policies][token]") {
  using prefopt::test::contains;
  const token_softmax_policy pi(3, 4);
  const auto check = [&](std::vector<token_id> tokens, const std::string& fragment) {
    const std::vector<prefopt::index_t> offsets{0, 2,
                                                2 + static_cast<prefopt::index_t>(tokens.size())};
    std::vector<token_id> all{0, 3};
    all.insert(all.end(), tokens.begin(), tokens.end());
    const sequence_batch b{
        {}, {std::span<const prefopt::index_t>(offsets), std::span<const token_id>(all)}};
    vector_d out(2);
    CHECK_THROWS_WITH(pi.log_prob(b, out), contains(fragment));
    vector_d g = vector_d::Zero(pi.num_parameters());
    CHECK_THROWS_WITH(pi.accumulate_log_prob_gradient(b, vector_d::Ones(2), g), contains(fragment));
    CHECK(g.isZero());  // nothing written
  };
  check({1, 2}, "responses[1][1] = 2, expected eos = 3");
  check({3, 1, 3}, "responses[1][0] = 3, expected a content token in [0, 3)");
  check({1, 5, 3}, "responses[1][1] = 5");
  check({0, 0, 0, 0, 3}, "responses[1] has 5 tokens, expected 1 to max_length = 4");
  check({}, "responses[1] has 0 tokens");
  vector_d wrong(1);
  const all_responses all(3, 4);
  CHECK_THROWS_WITH(pi.log_prob(all.batch(), wrong), contains("out has 1 entries"));
  CHECK_THROWS_WITH(token_softmax_policy(0, 3), contains("vocab_size = 0"));
  CHECK_THROWS_WITH(token_softmax_policy(std::numeric_limits<token_id>::max(), 2),
                    contains("eos = vocab_size must fit in token_id"));
  CHECK_THROWS_WITH(token_softmax_policy(1000, std::numeric_limits<prefopt::index_t>::max() / 100),
                    contains("too large to address"));
  CHECK_THROWS_WITH(token_softmax_policy::with_stop_probability(2, 3, 1.0),
                    contains("stop_probability = 1"));
  CHECK_THROWS_WITH(pi.kl_divergence(token_softmax_policy(3, 5)), contains("max_length 5"));
}

TEST_CASE("token preference task: gold reward, judge and exact expected reward",
          "[policies][token]") {
  const prefopt::token_preference_task task(vector_d::LinSpaced(3, -1.0, 1.0), 0.5, 5, 0.3);
  const std::vector<token_id> a{2, 2, 3};  // 2 (1.0 + 0.5)
  const std::vector<token_id> b{0, 3};     // -1.0 + 0.5
  CHECK(task.gold_reward(a) == Approx(3.0));
  CHECK(task.gold_reward(b) == Approx(-0.5));
  CHECK(task.preference(a, b) == Approx(1.0 / (1.0 + std::exp(-3.5))));
  CHECK(task.preference(a, b) + task.preference(b, a) == Approx(1.0));
  const token_softmax_policy pi = random_policy(3, 5, 2);
  const all_responses all(3, 5);
  vector_d lp(all.size());
  pi.log_prob(all.batch(), lp);
  double e = 0.0;
  for (prefopt::index_t i = 0; i < all.size(); ++i)
    e += std::exp(lp(i)) * task.gold_reward(all.at(i));
  CHECK(task.expected_gold_reward(pi) == Approx(e).epsilon(1e-12));
  using prefopt::test::contains;
  CHECK_THROWS_WITH(
      task.gold_reward(std::vector<token_id>{1, 1}),
      contains("token_preference_task::gold_reward: response[1] = 1, expected eos = 3"));
  CHECK_THROWS_WITH(task.preference(a, std::vector<token_id>{0, 7, 3}),
                    contains("token_preference_task::preference: b[1] = 7"));
  CHECK_THROWS_WITH(task.preference(std::vector<token_id>{0, 0, 0, 0, 0, 3}, b),
                    contains("a has 6 tokens, expected 1 to max_length = 5"));
  CHECK_THROWS_WITH(prefopt::token_preference_task(vector_d(), 0.5, 5, 0.3),
                    contains("quality is empty"));
  CHECK_THROWS_WITH(prefopt::token_preference_task(vector_d::Ones(2), 0.5, 1, 0.3),
                    contains("token_preference_task: max_length = 1"));
  CHECK_THROWS_WITH(prefopt::token_preference_task(vector_d::Ones(2), 0.5, 4, 0.0),
                    contains("token_preference_task: stop_probability = 0"));
}
