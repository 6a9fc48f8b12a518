// Library-owned generation: frequencies against exact enumeration of every response up to length
// 4 over 3 tokens (temperature, top-k, top-p, greedy, the geometric mixture), the reported
// log-probs, determinism per (seed, prompt, sample), and the errors.
#include "prefopt/sequence/generation.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <numeric>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "bigram_model.hpp"
#include "prefopt/sequence/derived.hpp"
#include "support/laws.hpp"

namespace {
using index_t = prefopt::index_t;
using prefopt::token_id;
using prefopt::vector_d;
using model = prefopt::test::bigram_model<double, false>;

constexpr index_t gen_vocab = 3;  // tokens 0, 1 and eos = 2
constexpr token_id eos = 2;
constexpr index_t max_new = 4;

/// The test's own statement of the sampling rule: next-token distribution after context `c`.
struct rule {
  double temperature = 1.0;
  index_t top_k = 0;
  double top_p = 1.0;
  bool greedy = false;
  double beta = -1.0;  // < 0: no mixture
};

vector_d log_softmax(const vector_d& z) {
  const double m = z.maxCoeff();
  return (z.array() - m - std::log((z.array() - m).exp().sum())).matrix();
}

vector_d next_distribution(const model& pi, const model& mu, const rule& r, index_t c) {
  vector_d base = log_softmax(pi.logits_of(c));
  if (r.beta >= 0.0)
    base = log_softmax((1.0 - r.beta) * base + r.beta * log_softmax(mu.logits_of(c)));
  vector_d p(gen_vocab);
  if (r.greedy) {
    index_t best = 0;
    base.maxCoeff(&best);
    p.setZero();
    p(best) = 1.0;
    return p;
  }
  p = (base / r.temperature).array().exp();
  p /= p.sum();
  std::vector<index_t> order(gen_vocab);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](index_t a, index_t b) { return p(a) > p(b); });
  index_t keep = (r.top_k > 0 && r.top_k < gen_vocab) ? r.top_k : gen_vocab;
  double kept = 0.0;
  for (index_t k = 0; k < keep; ++k) kept += p(order[static_cast<std::size_t>(k)]);
  double cum = 0.0;
  index_t prefix = 0;
  while (prefix < keep) {
    cum += p(order[static_cast<std::size_t>(prefix++)]) / kept;
    if (cum >= r.top_p) break;
  }
  for (index_t k = prefix; k < gen_vocab; ++k) p(order[static_cast<std::size_t>(k)]) = 0.0;
  return p / p.sum();
}

/// Every response (eos-terminated up to 4 tokens, or 4 tokens without eos) and its probability.
std::map<std::vector<token_id>, double> enumerate(const model& pi, const model& mu, const rule& r,
                                                  token_id prompt_last) {
  std::map<std::vector<token_id>, double> out;
  std::function<void(std::vector<token_id>&, double, index_t)> walk = [&](auto& y, double p,
                                                                          index_t c) {
    const vector_d q = next_distribution(pi, mu, r, c);
    for (token_id v = 0; v < gen_vocab; ++v) {
      y.push_back(v);
      if (v == eos || static_cast<index_t>(y.size()) == max_new) {
        out[y] += p * q(v);
      } else {
        walk(y, p * q(v), v);
      }
      y.pop_back();
    }
  };
  std::vector<token_id> y;
  walk(y, 1.0, prompt_last);
  return out;
}

double total_variation(const std::map<std::vector<token_id>, double>& a,
                       const std::map<std::vector<token_id>, double>& b) {
  double tv = 0.0;
  for (const auto& [y, p] : a) tv += std::abs(p - b.at(y));
  return tv / 2.0;
}

/// Draws `n` responses with `config` (or the mixture) and checks every response's frequency
/// within 5 sigma of its exact probability; returns the result for further checks.
prefopt::generation_result check_frequencies(const model& pi, const model& mu, const rule& r,
                                             prefopt::generation_config config, index_t n) {
  const std::vector<index_t> offsets{0, 1};
  const std::vector<token_id> prompt{1};
  const prefopt::ragged_view<const token_id> prompts{offsets, prompt};
  config.samples_per_prompt = n;
  config.max_new_tokens = max_new;
  const auto res = r.beta >= 0.0 ? prefopt::generate_mixture(pi, mu, r.beta, prompts, config, 42)
                                 : prefopt::generate(pi, prompts, config, 42);
  REQUIRE(res.size() == n);
  const auto exact = enumerate(pi, mu, r, prompt.back());
  double total = 0.0;
  for (const auto& e : exact) total += e.second;
  REQUIRE(total == Approx(1.0).epsilon(1e-12));
  REQUIRE(exact.size() == 31);
  std::map<std::vector<token_id>, index_t> counts;
  for (index_t i = 0; i < n; ++i) {
    const auto y = res.responses().sequence(i);
    counts[std::vector<token_id>(y.begin(), y.end())] += 1;
  }
  for (const auto& [y, p] : exact) {
    const double expected = static_cast<double>(n) * p;
    const double observed = static_cast<double>(counts.count(y) != 0U ? counts.at(y) : 0);
    const double sigma = std::sqrt(static_cast<double>(n) * p * (1.0 - p));
    INFO("response of " << y.size() << " tokens, p = " << p << ", observed " << observed);
    CHECK(std::abs(observed - expected) <= 5.0 * sigma + 1e-9);
  }
  for (const auto& [y, c] : counts) CHECK(exact.count(y) == 1U);  // nothing outside the support
  return res;
}

}  // namespace

TEST_CASE("sampling frequencies match exact enumeration for every setting", "[sequence]") {
  const model pi(gen_vocab, /*hidden=*/4, eos, /*seed=*/3, /*scale=*/1.2);
  const model mu(gen_vocab, 4, eos, /*seed=*/8, 1.2);
  const index_t n = 20000;
  const auto plain = enumerate(pi, mu, {}, 1);

  SECTION("temperature 1: the model's own distribution") {
    const auto res = check_frequencies(pi, mu, {}, {}, n);
    // At temperature 1 both reported log-probs are the model's own.
    for (std::size_t k = 0; k < 50; ++k) {
      CHECK(res.sampling_log_probs[k] == Approx(res.model_log_probs[k]).margin(1e-12));
    }
    // They are the derived token log-probs of the drawn responses.
    vector_d lp(static_cast<index_t>(res.tokens.size()));
    prefopt::token_log_probs(pi, res.batch(), lp);
    for (index_t k = 0; k < lp.size(); ++k) {
      CHECK(lp(k) == Approx(res.model_log_probs[static_cast<std::size_t>(k)]).margin(1e-12));
    }
  }
  SECTION("temperature 0.5") {
    rule r;
    r.temperature = 0.5;
    REQUIRE(total_variation(enumerate(pi, mu, r, 1), plain) > 0.1);  // the setting matters
    prefopt::generation_config c;
    c.temperature = 0.5;
    const auto res = check_frequencies(pi, mu, r, c, n);
    bool differ = false;
    for (std::size_t k = 0; k < res.tokens.size(); ++k) {
      differ = differ || std::abs(res.sampling_log_probs[k] - res.model_log_probs[k]) > 1e-6;
    }
    CHECK(differ);
    // The derived log-probs at the same temperature are the sampling log-probs.
    prefopt::sequence_options tempered;
    tempered.temperature = 0.5;
    vector_d lp(static_cast<index_t>(res.tokens.size()));
    prefopt::token_log_probs(pi, res.batch(), lp, tempered);
    for (index_t k = 0; k < lp.size(); ++k) {
      CHECK(lp(k) == Approx(res.sampling_log_probs[static_cast<std::size_t>(k)]).margin(1e-12));
    }
  }
  SECTION("top-k = 2") {
    rule r;
    r.top_k = 2;
    REQUIRE(total_variation(enumerate(pi, mu, r, 1), plain) > 0.1);
    prefopt::generation_config c;
    c.top_k = 2;
    check_frequencies(pi, mu, r, c, n);
  }
  SECTION("top-p = 0.7") {
    rule r;
    r.top_p = 0.7;
    REQUIRE(total_variation(enumerate(pi, mu, r, 1), plain) > 0.1);
    prefopt::generation_config c;
    c.top_p = 0.7;
    check_frequencies(pi, mu, r, c, n);
  }
  SECTION("temperature 2 with top-k 2 and top-p 0.9") {
    rule r;
    r.temperature = 2.0;
    r.top_k = 2;
    r.top_p = 0.9;
    prefopt::generation_config c;
    c.temperature = 2.0;
    c.top_k = 2;
    c.top_p = 0.9;
    check_frequencies(pi, mu, r, c, 5000);
  }
  SECTION("greedy") {
    rule r;
    r.greedy = true;
    prefopt::generation_config c;
    c.greedy = true;
    c.temperature = 3.0;  // ignored under greedy
    const auto res = check_frequencies(pi, mu, r, c, 200);
    for (const double x : res.sampling_log_probs) CHECK(x == 0.0);
  }
  SECTION("geometric mixture, beta_mix = 0.4") {
    rule r;
    r.beta = 0.4;
    REQUIRE(total_variation(enumerate(pi, mu, r, 1), plain) > 0.1);
    auto only_mu = r;
    only_mu.beta = 1.0;
    REQUIRE(total_variation(enumerate(pi, mu, r, 1), enumerate(pi, mu, only_mu, 1)) > 0.1);
    const auto res = check_frequencies(pi, mu, r, {}, n);
    // model_log_probs are pi's, sampling_log_probs the normalised mixture's.
    vector_d lp(static_cast<index_t>(res.tokens.size()));
    prefopt::token_log_probs(pi, res.batch(), lp);
    for (index_t k = 0; k < 200; ++k) {
      const auto u = static_cast<std::size_t>(k);
      CHECK(lp(k) == Approx(res.model_log_probs[u]).margin(1e-12));
    }
  }
  SECTION("geometric mixture at the ends: beta_mix = 1 samples the reference") {
    rule r;
    r.beta = 1.0;
    check_frequencies(pi, mu, r, {}, n);
  }
}

TEST_CASE("sampling_log_probs are the log of the sampling distribution", "[sequence]") {
  const model pi(gen_vocab, 4, eos, 3, 1.2), mu(gen_vocab, 4, eos, 8, 1.2);
  rule r;
  r.temperature = 0.7;
  r.top_p = 0.8;
  r.beta = 0.25;
  prefopt::generation_config c;
  c.temperature = 0.7;
  c.top_p = 0.8;
  c.max_new_tokens = max_new;
  c.samples_per_prompt = 100;
  const std::vector<index_t> offsets{0, 1};
  const std::vector<token_id> prompt{0};
  const auto res = prefopt::generate_mixture(pi, mu, 0.25, {offsets, prompt}, c, 5);
  for (index_t i = 0; i < res.size(); ++i) {
    const auto y = res.responses().sequence(i);
    index_t ctx = 0;
    for (std::size_t t = 0; t < y.size(); ++t) {
      const vector_d q = next_distribution(pi, mu, r, ctx);
      const auto k = static_cast<std::size_t>(res.offsets[static_cast<std::size_t>(i)]) + t;
      CHECK(res.sampling_log_probs[k] == Approx(std::log(q(y[t]))).margin(1e-12));
      ctx = y[t];
    }
    CHECK(res.truncated[static_cast<std::size_t>(i)] == (y.back() != eos ? 1 : 0));
    CHECK(static_cast<index_t>(y.size()) <= max_new);
  }
}

TEST_CASE("a response depends only on (seed, prompt id, sample), not on the batch", "[sequence]") {
  const model pi(gen_vocab, 4, eos, 3, 1.2);
  prefopt::generation_config c;
  c.max_new_tokens = 6;
  c.samples_per_prompt = 4;
  c.top_p = 0.9;
  const std::vector<index_t> offsets{0, 1, 3, 4};
  const std::vector<token_id> prompts{0, 1, 0, 2};
  const auto all = prefopt::generate(pi, {offsets, prompts}, c, 17);
  // Prompt 1 alone, with its id.
  const std::vector<index_t> one_offsets{0, 2};
  const std::vector<token_id> one{1, 0};
  const std::vector<index_t> id{1};
  c.samples_per_prompt = 3;
  const auto alone = prefopt::generate(pi, {one_offsets, one}, c, 17, id);
  for (index_t s = 0; s < 3; ++s) {
    const auto a = all.responses().sequence(4 + s);
    const auto b = alone.responses().sequence(s);
    CHECK(std::vector<token_id>(a.begin(), a.end()) == std::vector<token_id>(b.begin(), b.end()));
    const auto ka = static_cast<std::size_t>(all.offsets[static_cast<std::size_t>(4 + s)]);
    const auto kb = static_cast<std::size_t>(alone.offsets[static_cast<std::size_t>(s)]);
    for (std::size_t t = 0; t < a.size(); ++t) {
      CHECK(all.sampling_log_probs[ka + t] == alone.sampling_log_probs[kb + t]);
    }
  }
  CHECK(all.prompt_index[5] == 1);
  CHECK(all.sample_index[5] == 1);
  // Another seed draws other responses.
  const auto other = prefopt::generate(pi, {offsets, prompts}, c, 18);
  CHECK(other.tokens != all.tokens);
}

#if defined(_OPENMP)
TEST_CASE("generation and derived log-probs are bitwise the same for 1 and 2 threads",
          "[sequence]") {
  const model pi(gen_vocab, 4, eos, 3, 1.2);
  prefopt::generation_config c;
  c.samples_per_prompt = 64;
  c.top_k = 2;
  const std::vector<index_t> offsets{0, 1, 2};
  const std::vector<token_id> prompts{0, 1};
  auto with_threads = [&](int threads) {
    omp_set_num_threads(threads);
    const auto res = prefopt::generate(pi, {offsets, prompts}, c, 5);
    vector_d lp(static_cast<index_t>(res.tokens.size()));
    prefopt::token_log_probs(pi, res.batch(), lp);
    return std::make_pair(res.tokens, lp);
  };
  const auto one = with_threads(1);
  const auto two = with_threads(2);
  CHECK(one.first == two.first);
  CHECK(one.second == two.second);
}
#endif

TEST_CASE("generation rejects bad input naming the argument and position", "[sequence]") {
  using prefopt::test::contains;
  model pi(gen_vocab, 4, eos, 3);
  const model mu(gen_vocab, 4, eos, 4);
  const std::vector<index_t> offsets{0, 1, 2};
  std::vector<token_id> prompts{0, 1};
  prefopt::generation_config c;
  auto gen = [&]() { return prefopt::generate(pi, {offsets, prompts}, c, 1); };
  SECTION("max_new_tokens < 1") {
    c.max_new_tokens = 0;
    CHECK_THROWS_WITH(gen(), contains("prefopt::generate: config.max_new_tokens = 0"));
  }
  SECTION("top-p outside (0, 1]") {
    c.top_p = 0.0;
    CHECK_THROWS_WITH(gen(), contains("config.top_p = 0, expected a value in (0, 1]"));
    c.top_p = 1.5;
    CHECK_THROWS_WITH(gen(), contains("config.top_p = 1.5"));
  }
  SECTION("temperature and top-k") {
    c.temperature = 0.0;
    CHECK_THROWS_WITH(gen(), contains("config.temperature = 0"));
    c.temperature = 1.0;
    c.top_k = -1;
    CHECK_THROWS_WITH(gen(), contains("config.top_k = -1"));
  }
  SECTION("beta_mix outside [0, 1]") {
    for (const double beta : {-0.1, 1.5}) {
      CHECK_THROWS_WITH(prefopt::generate_mixture(pi, mu, beta, {offsets, prompts}, c, 1),
                        contains("prefopt::generate_mixture: beta_mix = ") &&
                            contains("expected a value in [0, 1]"));
    }
  }
  SECTION("a prompt token outside the vocabulary") {
    prompts[1] = 3;
    CHECK_THROWS_WITH(gen(), contains("prompts[1][0] = 3, expected a token id in [0, 3)"));
  }
  SECTION("a model that writes NaN logits") {
    pi.poison(/*context=*/1, /*column=*/0);  // prompt 1 ends in token 1: sequence 1, first token
    CHECK_THROWS_WITH(gen(), contains("model.next_logits wrote nan for sequence 1 (prompt 1, "
                                      "sample 0) at new token 0, vocabulary entry 0"));
    // The model's numbers went bad, not the caller's arguments (`run` reads it as divergence).
    CHECK_THROWS_AS(gen(), prefopt::convergence_error);
  }
}
