// The quantities the library derives from a user's SequenceModel: values against a hand-computed
// log-softmax, gradients of every quantity against central finite differences (double), the fused
// path against the logits path, chunk-size invariance, and the errors.
#include "prefopt/sequence/derived.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <vector>

#include "../losses/finite_difference.hpp"
#include "bigram_model.hpp"
#include "support/laws.hpp"

namespace {
using index_t = prefopt::index_t;
using prefopt::sequence_batch;
using prefopt::token_id;
using prefopt::vector_d;
using prefopt::test::bigram_model;
using plain_model = bigram_model<double, false>;
using head_model = bigram_model<double, true>;

static_assert(prefopt::SequenceModel<plain_model>);
static_assert(!prefopt::LinearHeadSequenceModel<plain_model>);
static_assert(prefopt::LinearHeadSequenceModel<head_model>);
static_assert(prefopt::SequenceModel<bigram_model<float, true>>);
static_assert(prefopt::check_linear_head_sequence_model<bigram_model<float, true>>());
static_assert(prefopt::DifferentiablePolicy<prefopt::sequence_policy<plain_model>>);
static_assert(prefopt::DifferentiablePolicy<prefopt::sequence_policy<bigram_model<float, true>>>);

constexpr index_t vocab = 5;
constexpr index_t hidden = 3;

// Four sequences: an empty prompt, an empty response, and a view whose offsets do not start at 0.
struct fixture {
  std::vector<index_t> prompt_offsets{0, 0, 2, 3, 5};
  std::vector<token_id> prompt_tokens{1, 3, 4, 0, 2};
  std::vector<index_t> response_offsets{0, 3, 3, 5, 9};
  std::vector<token_id> response_tokens{2, 0, 4, 1, 3, 4, 4, 0, 2};
  [[nodiscard]] sequence_batch batch() const {
    return {{prompt_offsets, prompt_tokens}, {response_offsets, response_tokens}};
  }
  [[nodiscard]] index_t tokens() const { return static_cast<index_t>(response_tokens.size()); }
};

/// Hand-computed l_t from the model's own per-context logits.
template <class M>
vector_d expected_log_probs(const M& m, const fixture& f) {
  vector_d out(f.tokens());
  const auto b = f.batch();
  index_t k = 0;
  for (index_t i = 0; i < b.size(); ++i) {
    const auto x = b.prompts.sequence(i);
    index_t c = x.empty() ? vocab : x.back();
    for (const token_id y : b.responses.sequence(i)) {
      const vector_d z = m.logits_of(c);
      const double lse = std::log((z.array() - z.maxCoeff()).exp().sum()) + z.maxCoeff();
      out(k++) = z(y) - lse;
      c = y;
    }
  }
  return out;
}

vector_d weights_for(index_t n, std::uint64_t seed) {
  prefopt::rng gen(seed);
  vector_d w(n);
  for (index_t k = 0; k < n; ++k) w(k) = gen.uniform(-1.0, 1.0);
  return w;
}

/// Checks `gradient` against central differences of `f` over every parameter of `m`.
template <class M>
void check_against_finite_differences(M& m, const std::function<double()>& f,
                                      const vector_d& gradient) {
  const vector_d theta = m.parameters();
  auto at = [&](const vector_d& t) {
    m.parameters() = t;
    return f();
  };
  for (index_t k = 0; k < theta.size(); ++k) {
    const double fd = prefopt::test::central_difference(at, theta, k);
    INFO("parameter " << k << ": analytic " << gradient(k) << ", finite difference " << fd);
    CHECK(prefopt::test::close(gradient(k), fd, 1e-6, 1e-8));
  }
  m.parameters() = theta;
}

template <class M>
void check_all_gradients(M m, const prefopt::sequence_options& opt) {
  const fixture f;
  const auto b = f.batch();
  const M ref(vocab, hidden, /*eos=*/4, /*seed=*/99);
  const index_t n = f.tokens();
  const vector_d w = weights_for(n, 5);
  const vector_d ws = weights_for(b.size(), 6);
  const std::span<const double> wspan(w.data(), static_cast<std::size_t>(n));
  auto weighted = [&](auto&& per_token) {
    return [&, per_token]() {
      vector_d q(n);
      per_token(q);
      return w.dot(q);
    };
  };

  SECTION("per-token log-probs") {
    vector_d g = vector_d::Zero(m.num_parameters());
    prefopt::accumulate_token_gradient(m, b, {wspan}, g, opt);
    check_against_finite_differences(
        m, weighted([&](vector_d& q) { prefopt::token_log_probs(m, b, q, opt); }), g);
  }
  SECTION("sequence log-probs") {
    vector_d g = vector_d::Zero(m.num_parameters());
    prefopt::accumulate_sequence_log_prob_gradient(m, b, ws, g, opt);
    check_against_finite_differences(
        m,
        [&]() {
          vector_d s(b.size());
          prefopt::sequence_log_probs(m, b, s, opt);
          return ws.dot(s);
        },
        g);
  }
  SECTION("entropy") {
    vector_d g = vector_d::Zero(m.num_parameters());
    prefopt::token_weights tw;
    tw.entropy = wspan;
    prefopt::accumulate_token_gradient(m, b, tw, g, opt);
    check_against_finite_differences(
        m, weighted([&](vector_d& q) { prefopt::token_entropies(m, b, q, opt); }), g);
  }
  SECTION("exact KL to another model") {
    vector_d g = vector_d::Zero(m.num_parameters());
    prefopt::token_weights tw;
    tw.kl = wspan;
    prefopt::accumulate_token_gradient(m, ref, b, tw, g, opt);
    check_against_finite_differences(
        m, weighted([&](vector_d& q) { prefopt::token_kl(m, ref, b, q, opt); }), g);
  }
  for (const auto e : {prefopt::kernels::kl_estimator::k1, prefopt::kernels::kl_estimator::k2,
                       prefopt::kernels::kl_estimator::k3}) {
    DYNAMIC_SECTION("sampled KL estimator " << static_cast<int>(e)) {
      vector_d g = vector_d::Zero(m.num_parameters());
      prefopt::accumulate_kl_estimate_gradient(m, ref, b, e, w, g, opt);
      check_against_finite_differences(
          m, weighted([&, e](vector_d& q) { prefopt::token_kl_estimates(m, ref, b, e, q, opt); }),
          g);
    }
  }
  SECTION("tempered log-probs and entropy (the fused path for a linear head)") {
    auto tempered = opt;
    tempered.temperature = 0.7;
    vector_d g = vector_d::Zero(m.num_parameters());
    prefopt::accumulate_token_gradient(m, b, {wspan, wspan}, g, tempered);
    check_against_finite_differences(
        m,
        [&]() {
          vector_d a(n), h(n);
          prefopt::token_log_probs(m, b, a, tempered);
          prefopt::token_entropies(m, b, h, tempered);
          return w.dot(a + h);
        },
        g);
  }
  SECTION("tempered log-probs, entropy and exact KL") {
    auto tempered = opt;
    tempered.temperature = 1.6;
    vector_d g = vector_d::Zero(m.num_parameters());
    prefopt::accumulate_token_gradient(m, ref, b, {wspan, wspan, wspan}, g, tempered);
    check_against_finite_differences(
        m,
        [&]() {
          vector_d a(n), h(n), k(n);
          prefopt::token_log_probs(m, b, a, tempered);
          prefopt::token_entropies(m, b, h, tempered);
          prefopt::token_kl(m, ref, b, k, tempered);
          return w.dot(a + h + k);
        },
        g);
  }
  SECTION("all weights at once accumulate into the caller's gradient") {
    const vector_d start = weights_for(m.num_parameters(), 8);
    vector_d g = start;
    prefopt::token_weights tw{wspan, wspan, wspan};
    prefopt::accumulate_token_gradient(m, ref, b, tw, g, opt);
    vector_d g_lp = vector_d::Zero(m.num_parameters()), g_h = g_lp, g_kl = g_lp;
    prefopt::accumulate_token_gradient(m, b, {wspan}, g_lp, opt);
    prefopt::token_weights only_h, only_kl;
    only_h.entropy = wspan;
    only_kl.kl = wspan;
    prefopt::accumulate_token_gradient(m, b, only_h, g_h, opt);
    prefopt::accumulate_token_gradient(m, ref, b, only_kl, g_kl, opt);
    CHECK(((g - start) - (g_lp + g_h + g_kl)).cwiseAbs().maxCoeff() < 1e-12);
  }
}

}  // namespace

TEST_CASE("derived per-token log-probs equal the log-softmax of the model's logits", "[sequence]") {
  const fixture f;
  const head_model m(vocab, hidden, 4, 1);
  const vector_d expected = expected_log_probs(m, f);
  for (const bool fused : {true, false}) {
    prefopt::sequence_options opt;
    opt.fused = fused;
    vector_d lp(f.tokens());
    prefopt::token_log_probs(m, f.batch(), lp, opt);
    CHECK((lp - expected).cwiseAbs().maxCoeff() < 1e-12);
    vector_d s(4);
    prefopt::sequence_log_probs(m, f.batch(), s, opt);
    CHECK(s(0) == Approx(expected.head(3).sum()).epsilon(1e-13));
    CHECK(s(1) == 0.0);  // empty response
    CHECK(s(3) == Approx(expected.tail(4).sum()).epsilon(1e-13));
  }
}

TEST_CASE("derived quantities do not depend on the chunk size", "[sequence]") {
  const fixture f;
  const plain_model m(vocab, hidden, 4, 2), ref(vocab, hidden, 4, 3);
  auto all = [&](index_t chunk) {
    prefopt::sequence_options opt;
    opt.max_positions = chunk;
    vector_d lp(f.tokens()), h(f.tokens()), kl(f.tokens()), g = vector_d::Zero(m.num_parameters());
    prefopt::token_log_probs(m, f.batch(), lp, opt);
    prefopt::token_entropies(m, f.batch(), h, opt);
    prefopt::token_kl(m, ref, f.batch(), kl, opt);
    const vector_d w = weights_for(f.tokens(), 1);
    const std::span<const double> ws(w.data(), static_cast<std::size_t>(w.size()));
    prefopt::accumulate_token_gradient(m, ref, f.batch(), {ws, ws, ws}, g, opt);
    return std::vector<vector_d>{lp, h, kl, g};
  };
  const auto big = all(1000);
  for (const index_t chunk : {1, 2, 3, 4}) {
    const auto small = all(chunk);
    CHECK(small[0] == big[0]);
    CHECK(small[1] == big[1]);
    CHECK(small[2] == big[2]);
    CHECK((small[3] - big[3]).cwiseAbs().maxCoeff() < 1e-14);  // a sum over chunks
  }
  // KL is zero against itself and positive against another model.
  vector_d self(f.tokens());
  prefopt::token_kl(m, m, f.batch(), self);
  CHECK(self.cwiseAbs().maxCoeff() < 1e-14);
  CHECK((big[2].array() > 0.0).all());
}

TEST_CASE("fused linear-head path equals the logits path", "[sequence]") {
  const fixture f;
  const head_model m(vocab, hidden, 4, 4);
  prefopt::sequence_options fused, logits;
  logits.fused = false;
  vector_d a(f.tokens()), b(f.tokens()), ha(f.tokens()), hb(f.tokens());
  prefopt::token_log_probs(m, f.batch(), a, fused);
  prefopt::token_log_probs(m, f.batch(), b, logits);
  prefopt::token_entropies(m, f.batch(), ha, fused);
  prefopt::token_entropies(m, f.batch(), hb, logits);
  CHECK((a - b).cwiseAbs().maxCoeff() < 1e-13);
  CHECK((ha - hb).cwiseAbs().maxCoeff() < 1e-13);
  const vector_d w = weights_for(f.tokens(), 3);
  const std::span<const double> ws(w.data(), static_cast<std::size_t>(w.size()));
  vector_d ga = vector_d::Zero(m.num_parameters()), gb = ga;
  prefopt::accumulate_token_gradient(m, f.batch(), {ws, ws}, ga, fused);
  prefopt::accumulate_token_gradient(m, f.batch(), {ws, ws}, gb, logits);
  CHECK((ga - gb).cwiseAbs().maxCoeff() < 1e-13);
  CHECK(ga.cwiseAbs().maxCoeff() > 0.0);
}

TEST_CASE("gradients of every derived quantity match finite differences (logits path)",
          "[sequence]") {
  prefopt::sequence_options opt;
  opt.max_positions = 3;  // several chunks
  check_all_gradients(plain_model(vocab, hidden, 4, 11), opt);
}

TEST_CASE("gradients of every derived quantity match finite differences (fused path)",
          "[sequence]") {
  check_all_gradients(head_model(vocab, hidden, 4, 12), {});
}

TEST_CASE("a sequence model is a DifferentiablePolicy through sequence_policy", "[sequence]") {
  const fixture f;
  plain_model m(vocab, hidden, 4, 13);
  const prefopt::sequence_policy<plain_model> pi(m);
  vector_d direct(4), through(4);
  prefopt::sequence_log_probs(m, f.batch(), direct);
  pi.log_prob(f.batch(), through);
  CHECK(direct == through);
  const vector_d w = weights_for(4, 2);
  vector_d g1 = vector_d::Zero(m.num_parameters()), g2 = g1;
  pi.accumulate_log_prob_gradient(f.batch(), w, g1);
  prefopt::accumulate_sequence_log_prob_gradient(m, f.batch(), w, g2);
  CHECK(g1 == g2);
  CHECK(pi.num_parameters() == m.num_parameters());
}

TEST_CASE("float models go through the same derived quantities", "[sequence]") {
  const fixture f;
  const bigram_model<float, true> mf(vocab, hidden, 4, 21);
  const head_model md(vocab, hidden, 4, 21);  // same draws, in double
  vector_d lf(f.tokens()), ld(f.tokens());
  prefopt::token_log_probs(mf, f.batch(), lf);
  prefopt::token_log_probs(md, f.batch(), ld);
  CHECK((lf - ld).cwiseAbs().maxCoeff() < 1e-5);
  prefopt::vector_f g = prefopt::vector_f::Zero(mf.num_parameters());
  const vector_d w = vector_d::Ones(4);
  prefopt::accumulate_sequence_log_prob_gradient(mf, f.batch(), w, g);
  vector_d gd = vector_d::Zero(md.num_parameters());
  prefopt::accumulate_sequence_log_prob_gradient(md, f.batch(), w, gd);
  CHECK((g.cast<double>() - gd).cwiseAbs().maxCoeff() < 1e-4);
}

TEST_CASE("derived quantities reject bad input naming the position, writing nothing",
          "[sequence]") {
  using prefopt::test::contains;
  fixture f;
  head_model m(vocab, hidden, 4, 31);
  vector_d out = vector_d::Constant(f.tokens(), 7.0);
  SECTION("a response token outside the vocabulary") {
    f.response_tokens[3] = 5;  // sequence 2, token 0
    CHECK_THROWS_WITH(
        prefopt::token_log_probs(m, f.batch(), out),
        contains("prefopt::token_log_probs: batch.responses[2][0] = 5") && contains("[0, 5)"));
  }
  SECTION("a prompt token outside the vocabulary") {
    f.prompt_tokens[1] = -1;  // sequence 1, token 1
    CHECK_THROWS_WITH(prefopt::token_entropies(m, f.batch(), out),
                      contains("batch.prompts[1][1] = -1"));
  }
  SECTION("a model whose logits are NaN") {
    m.poison(/*context=*/0, /*column=*/2);  // after token 0: sequence 0 token 2 is the first
    prefopt::sequence_options opt;
    opt.fused = false;
    CHECK_THROWS_WITH(prefopt::token_log_probs(m, f.batch(), out, opt),
                      contains("model.logits wrote nan for batch.responses[0][2] at entry 2"));
    vector_d g = vector_d::Constant(m.num_parameters(), 3.0);
    const vector_d w = vector_d::Ones(4);
    CHECK_THROWS_AS(prefopt::accumulate_sequence_log_prob_gradient(m, f.batch(), w, g, opt),
                    prefopt::invalid_argument);
    CHECK((g.array() == 3.0).all());
  }
  SECTION("mismatched sizes") {
    vector_d short_out(3);
    CHECK_THROWS_AS(prefopt::token_log_probs(m, f.batch(), short_out), prefopt::shape_error);
    vector_d g(2);
    CHECK_THROWS_WITH(
        prefopt::accumulate_sequence_log_prob_gradient(m, f.batch(), vector_d::Ones(4), g),
        contains("gradient has 2 entries"));
  }
  CHECK((out.array() == 7.0).all());
}
