// The shipped policies through the SequenceModel adapters: every derived quantity equals what the
// shipped classes compute today (log-probs, gradients, exact KL, entropy), gradients match finite
// differences, and generation samples the classes' distributions.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "../losses/finite_difference.hpp"
#include "prefopt/policies/sequence_adapters.hpp"
#include "prefopt/sequence/derived.hpp"
#include "prefopt/sequence/generation.hpp"

namespace {
using index_t = prefopt::index_t;
using prefopt::sequence_batch;
using prefopt::token_id;
using prefopt::vector_d;

prefopt::token_softmax_policy random_positional(index_t k, index_t l, std::uint64_t seed) {
  prefopt::token_softmax_policy p(k, l);
  prefopt::rng gen(seed);
  for (index_t j = 0; j < p.num_parameters(); ++j) p.parameters()(j) = gen.normal();
  return p;
}

/// Every well-formed response of the positional policy (content tokens then eos), empty prompts.
struct all_responses {
  std::vector<index_t> prompt_offsets{0};
  std::vector<token_id> prompts;
  std::vector<index_t> offsets{0};
  std::vector<token_id> tokens;
  all_responses(index_t k, index_t l) {
    std::vector<token_id> prefix;
    add(k, l, prefix);
  }
  void add(index_t k, index_t l, std::vector<token_id>& prefix) {
    tokens.insert(tokens.end(), prefix.begin(), prefix.end());
    tokens.push_back(static_cast<token_id>(k));
    offsets.push_back(static_cast<index_t>(tokens.size()));
    prompt_offsets.push_back(0);
    if (static_cast<index_t>(prefix.size()) + 1 >= l) return;
    for (token_id t = 0; t < static_cast<token_id>(k); ++t) {
      prefix.push_back(t);
      add(k, l, prefix);
      prefix.pop_back();
    }
  }
  [[nodiscard]] sequence_batch batch() const {
    return {{prompt_offsets, prompts}, {offsets, tokens}};
  }
  [[nodiscard]] index_t size() const { return static_cast<index_t>(offsets.size()) - 1; }
};

/// sum_i weights[i] * (sum of per-token values of response i).
double weighted_sequence_sum(const all_responses& r, const vector_d& per_token,
                             const vector_d& weights) {
  double s = 0.0;
  for (index_t i = 0; i < r.size(); ++i) {
    const auto u = static_cast<std::size_t>(i);
    for (index_t k = r.offsets[u]; k < r.offsets[u + 1]; ++k) s += weights(i) * per_token(k);
  }
  return s;
}

}  // namespace

TEST_CASE("positional adapter: derived log-probs and gradients equal token_softmax_policy's",
          "[sequence]") {
  auto pi = random_positional(2, 4, 1);
  const prefopt::positional_sequence_model m(pi);
  const all_responses r(2, 4);
  vector_d shipped(r.size()), derived(r.size());
  pi.log_prob(r.batch(), shipped);
  prefopt::sequence_log_probs(m, r.batch(), derived);
  CHECK((shipped - derived).cwiseAbs().maxCoeff() < 1e-12);
  CHECK(derived.array().exp().sum() == Approx(1.0).epsilon(1e-12));

  prefopt::rng gen(3);
  vector_d w(r.size());
  for (index_t i = 0; i < w.size(); ++i) w(i) = gen.uniform(-1.0, 1.0);
  vector_d g_shipped = vector_d::Zero(pi.num_parameters()), g_derived = g_shipped;
  pi.accumulate_log_prob_gradient(r.batch(), w, g_shipped);
  prefopt::positional_sequence_model mm(pi);
  const prefopt::sequence_policy<prefopt::positional_sequence_model> as_policy(mm);
  // The adapter holds a copy: changing the original leaves the model as it was.
  pi.parameters().setZero();
  CHECK(mm.parameters().cwiseAbs().maxCoeff() > 0.1);
  pi.parameters() = m.parameters();
  as_policy.accumulate_log_prob_gradient(r.batch(), w, g_derived);
  CHECK((g_shipped - g_derived).cwiseAbs().maxCoeff() < 1e-12);
  CHECK(g_shipped.cwiseAbs().maxCoeff() > 0.1);
}

TEST_CASE("positional adapter: expected per-token KL and entropy are the sequence KL and entropy",
          "[sequence]") {
  auto pi = random_positional(3, 4, 5);
  auto q = random_positional(3, 4, 6);
  const prefopt::positional_sequence_model m(pi), mq(q);
  const all_responses r(3, 4);
  vector_d logp(r.size()), kl(static_cast<index_t>(r.tokens.size())), h(kl.size());
  prefopt::sequence_log_probs(m, r.batch(), logp);
  prefopt::token_kl(m, mq, r.batch(), kl);
  prefopt::token_entropies(m, r.batch(), h);
  const vector_d p = logp.array().exp();
  CHECK(weighted_sequence_sum(r, kl, p) == Approx(pi.kl_divergence(q)).epsilon(1e-12));
  CHECK(weighted_sequence_sum(r, h, p) == Approx(-p.dot(logp)).epsilon(1e-12));
}

TEST_CASE("positional adapter: KL and entropy gradients match finite differences", "[sequence]") {
  auto pi = random_positional(2, 3, 7);
  auto q = random_positional(2, 3, 8);
  prefopt::positional_sequence_model m(pi);
  const prefopt::positional_sequence_model mq(q);
  const all_responses r(2, 3);
  const auto n = static_cast<index_t>(r.tokens.size());
  prefopt::rng gen(9);
  vector_d w(n);
  for (index_t k = 0; k < n; ++k) w(k) = gen.uniform(-1.0, 1.0);
  const std::span<const double> ws(w.data(), static_cast<std::size_t>(n));
  prefopt::token_weights tw;
  tw.kl = ws;
  tw.entropy = ws;
  vector_d g = vector_d::Zero(m.num_parameters());
  prefopt::accumulate_token_gradient(m, mq, r.batch(), tw, g);
  const vector_d theta = pi.parameters();
  auto f = [&](const vector_d& t) {
    m.parameters() = t;
    vector_d kl(n), h(n);
    prefopt::token_kl(m, mq, r.batch(), kl);
    prefopt::token_entropies(m, r.batch(), h);
    return w.dot(kl + h);
  };
  for (index_t k = 0; k < theta.size(); ++k) {
    CHECK(prefopt::test::close(g(k), prefopt::test::central_difference(f, theta, k), 1e-6, 1e-8));
  }
  m.parameters() = theta;
}

TEST_CASE("positional adapter: generated lengths follow the policy's length distribution",
          "[sequence]") {
  const auto pi = random_positional(2, 5, 11);
  auto copy = pi;
  const prefopt::positional_sequence_model m(copy);
  const std::vector<index_t> offsets{0, 0};
  const std::vector<token_id> none;
  prefopt::generation_config c;
  c.samples_per_prompt = 20000;
  c.max_new_tokens = 10;  // the policy stops by itself within L = 5
  const auto res = prefopt::generate(m, {offsets, none}, c, 3);
  const vector_d expected = pi.length_distribution();
  vector_d counts = vector_d::Zero(5);
  for (index_t i = 0; i < res.size(); ++i) {
    const auto y = res.responses().sequence(i);
    REQUIRE(y.back() == pi.eos());
    counts(static_cast<index_t>(y.size()) - 1) += 1.0;
  }
  for (index_t len = 0; len < 5; ++len) {
    const double np = 20000.0 * expected(len);
    CHECK(std::abs(counts(len) - np) <= 5.0 * std::sqrt(np * (1.0 - expected(len))) + 1e-9);
  }
  for (const auto t : res.truncated) CHECK(t == 0);
}

TEST_CASE(
    "tabular adapter: a one-token model over contexts with the table's log-probs, "
    "gradients and KL",
    "[sequence]") {
  prefopt::row_matrix_d z(3, 2);
  z << 0.3, -1.0, 2.0, 0.5, -0.2, 0.1;
  prefopt::tabular_softmax_policy pi(z);
  prefopt::tabular_softmax_policy mu(prefopt::row_matrix_d::Zero(3, 2));
  prefopt::tabular_sequence_model m(pi);
  const prefopt::tabular_sequence_model mm(mu);
  CHECK(m.vocab_size() == 4);
  CHECK(m.eos() == 3);
  const std::vector<index_t> contexts{0, 1, 2, 2, 1};
  const std::vector<index_t> actions{1, 0, 1, 0, 1};
  const prefopt::tabular_batch tb{contexts, actions};
  std::vector<index_t> po, ro;
  std::vector<token_id> pt, rt;
  const auto sb = m.to_sequences(tb, po, pt, ro, rt);
  vector_d shipped(5), derived(5);
  pi.log_prob(tb, shipped);
  prefopt::sequence_log_probs(m, sb, derived);
  CHECK((shipped - derived).cwiseAbs().maxCoeff() < 1e-12);

  const vector_d w = (vector_d(5) << 0.5, -1.0, 2.0, 0.25, 1.5).finished();
  vector_d g1 = vector_d::Zero(pi.num_parameters()), g2 = g1;
  pi.accumulate_log_prob_gradient(tb, w, g1);
  prefopt::accumulate_sequence_log_prob_gradient(m, sb, w, g2);
  CHECK((g1 - g2).cwiseAbs().maxCoeff() < 1e-12);

  // Per-token KL: the table's KL(pi(.|c) || mu(.|c)) at the action, 0 at the forced eos.
  vector_d kl(10);
  prefopt::token_kl(m, mm, sb, kl);
  vector_d p(2), lp(2), lq(2);
  for (index_t i = 0; i < 5; ++i) {
    const index_t c = contexts[static_cast<std::size_t>(i)];
    pi.probabilities(c, p);
    pi.log_probabilities(c, lp);
    mu.log_probabilities(c, lq);
    CHECK(kl(2 * i) == Approx(p.dot(lp - lq)).epsilon(1e-12));
    CHECK(kl(2 * i + 1) == 0.0);
  }

  // Generation: actions follow pi(. | c), then eos.
  const std::vector<index_t> offsets{0, 1};
  const std::vector<token_id> prompt{1};
  prefopt::generation_config c;
  c.samples_per_prompt = 20000;
  c.max_new_tokens = 3;
  const auto res = prefopt::generate(m, {offsets, prompt}, c, 4);
  pi.probabilities(1, p);
  double ones = 0.0;
  for (index_t i = 0; i < res.size(); ++i) {
    const auto y = res.responses().sequence(i);
    REQUIRE(y.size() == 2);
    REQUIRE(y[1] == m.eos());
    ones += y[0] == 1 ? 1.0 : 0.0;
  }
  CHECK(std::abs(ones - 20000.0 * p(1)) <= 5.0 * std::sqrt(20000.0 * p(1) * p(0)));
  // Contexts outside the table are errors, not silent reads.
  const std::vector<token_id> bad{3};
  CHECK_THROWS_AS(prefopt::generate(m, {offsets, bad}, c, 4), prefopt::invalid_argument);
  // A one-token model over contexts needs a prompt: an empty one is named, for generation and
  // for scoring.
  const std::vector<index_t> empty_offsets{0, 0};
  CHECK_THROWS_WITH(prefopt::generate(m, {empty_offsets, {}}, c, 4),
                    Catch::Matchers::Contains("prompts[0] has 0 tokens, expected at least "
                                              "model.min_prompt_length() = 1"));
  const std::vector<index_t> one_response{0, 2};
  const std::vector<token_id> answer{0, 3};
  vector_d out(1);
  CHECK_THROWS_WITH(
      prefopt::sequence_log_probs(m, {{empty_offsets, {}}, {one_response, answer}}, out),
      Catch::Matchers::Contains("batch.prompts[0] has 0 tokens"));
}
