// The shipped transformer: every backward against central finite differences (double, every
// parameter block, length-1 sequences, packed sequences of different lengths), batch
// independence and KV-cache decoding bitwise equal to teacher forcing, threads, the derived
// quantities and generation through it, and the named errors.
#include "prefopt/models/transformer/transformer.hpp"

#include <catch2/catch.hpp>

#include <functional>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "../losses/finite_difference.hpp"
#include "prefopt/sequence/derived.hpp"
#include "prefopt/sequence/generation.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace {
using prefopt::row_matrix_d;
using prefopt::row_matrix_f;
using prefopt::sequence_batch;
using prefopt::token_id;
using prefopt::transformer;
using prefopt::transformer_config;
using prefopt::vector_d;
using xf_index = prefopt::index_t;

static_assert(prefopt::LinearHeadSequenceModel<transformer<float>>);
static_assert(prefopt::check_linear_head_sequence_model<transformer<double>>());
static_assert(prefopt::DifferentiablePolicy<prefopt::sequence_policy<transformer<float>>>);
static_assert(prefopt::RewardModel<prefopt::transformer_reward_model<double>>);

transformer_config tiny_config() {
  transformer_config c;
  c.vocab_size = 7;
  c.eos = 0;
  c.max_length = 9;
  c.d_model = 8;
  c.num_layers = 2;
  c.num_heads = 2;
  c.mlp_hidden = 12;
  c.init_scale = 0.4;
  c.seed = 11;
  return c;
}

// Three packed sequences: a one-token prompt with a one-token response (attention over one key),
// a long one, and an empty response; response offsets that do not start at 0.
struct xf_fixture {
  std::vector<xf_index> prompt_offsets{0, 1, 4, 6};
  std::vector<token_id> prompt_tokens{3, 1, 2, 6, 5, 4};
  std::vector<xf_index> response_offsets{2, 3, 8, 8};
  std::vector<token_id> response_tokens{9, 9, 2, 4, 0, 6, 1, 3};
  [[nodiscard]] sequence_batch batch() const {
    return {{prompt_offsets, prompt_tokens}, {response_offsets, response_tokens}};
  }
};

vector_d xf_weights(xf_index n, std::uint64_t seed) {
  prefopt::rng gen(seed);
  vector_d w(n);
  for (xf_index k = 0; k < n; ++k) w(k) = gen.uniform(-1.0, 1.0);
  return w;
}

// Names the parameter blocks so that a failure says which one is wrong.
std::string block_of(const transformer<double>& m, xf_index k) {
  const auto& c = m.config();
  const xf_index d = c.d_model, v = c.vocab_size, f = c.mlp_width();
  xf_index at = 0;
  auto in = [&](xf_index n) {
    at += n;
    return k < at;
  };
  if (in(v * d)) return "token embedding";
  if (in(c.max_length * d)) return "position embedding";
  const char* names[] = {"ln1 gain", "ln1 bias", "W_qkv", "b_qkv", "W_o",    "b_o",
                         "ln2 gain", "ln2 bias", "W_fc",  "b_fc",  "W_proj", "b_proj"};
  const xf_index sizes[] = {d, d, 3 * d * d, 3 * d, d * d, d, d, d, d * f, f, f * d, d};
  for (xf_index l = 0; l < c.num_layers; ++l) {
    for (int b = 0; b < 12; ++b) {
      if (in(sizes[b])) return "layer " + std::to_string(l) + " " + names[b];
    }
  }
  if (in(d)) return "final ln gain";
  if (in(d)) return "final ln bias";
  return "head";
}

template <class M>
void check_fd(M& m, const std::function<double()>& f, const vector_d& gradient,
              const std::function<std::string(xf_index)>& name) {
  const vector_d theta = m.parameters();
  auto at = [&](const vector_d& t) {
    m.parameters() = t;
    return f();
  };
  int bad = 0;
  for (xf_index k = 0; k < theta.size(); ++k) {
    const double fd = prefopt::test::central_difference(at, theta, k, 1e-5);
    if (!prefopt::test::close(gradient(k), fd, 1e-5, 1e-7) && bad++ < 5) {
      FAIL_CHECK("parameter " << k << " (" << name(k) << "): analytic " << gradient(k)
                              << ", finite difference " << fd);
    }
  }
  CHECK(bad == 0);
  m.parameters() = theta;
}

}  // namespace

TEST_CASE("transformer: logits backward matches finite differences in every block",
          "[transformer]") {
  transformer<double> m(tiny_config());
  const xf_fixture fx;
  const auto b = fx.batch();
  const xf_index n = b.responses.total_length();
  const xf_index v = m.vocab_size();
  const vector_d w = xf_weights(n * v, 1);
  const Eigen::Map<const row_matrix_d> dz(w.data(), n, v);
  vector_d g = vector_d::Zero(m.num_parameters());
  m.accumulate_logits_gradient(b, dz, g);
  check_fd(
      m,
      [&]() {
        row_matrix_d z(n, v);
        m.logits(b, z);
        return (z.array() * dz.array()).sum();
      },
      g, [&](xf_index k) { return block_of(m, k); });
  // Every block receives gradient (a block the model ignored would pass the check above with
  // zero finite differences).
  std::map<std::string, double> per_block;
  for (xf_index k = 0; k < g.size(); ++k) per_block[block_of(m, k)] += std::abs(g(k));
  CHECK(per_block.size() == 2 * 12 + 5);
  for (const auto& [name, total] : per_block) {
    INFO(name);
    CHECK(total > 0.0);
  }
}

TEST_CASE("transformer: hidden-state backward matches finite differences", "[transformer]") {
  transformer<double> m(tiny_config());
  const xf_fixture fx;
  const auto b = fx.batch();
  const xf_index n = b.responses.total_length();
  const xf_index d = m.hidden_size();
  const vector_d w = xf_weights(n * d, 2);
  const Eigen::Map<const row_matrix_d> dh(w.data(), n, d);
  vector_d g = vector_d::Zero(m.num_parameters());
  m.accumulate_hidden_gradient(b, dh, g);
  CHECK(g.tail(m.num_parameters() - m.output_weight_offset()).cwiseAbs().maxCoeff() == 0.0);
  check_fd(
      m,
      [&]() {
        row_matrix_d h(n, d);
        m.hidden_states(b, h);
        return (h.array() * dh.array()).sum();
      },
      g, [&](xf_index k) { return block_of(m, k); });
}

TEST_CASE("transformer: reward and value heads' backward match finite differences",
          "[transformer]") {
  const xf_fixture fx;
  const auto b = fx.batch();
  transformer<double> policy(tiny_config());
  SECTION("reward model (last token)") {
    prefopt::transformer_reward_model<double> r(policy);
    CHECK(r.parameters().head(r.head_offset()) ==
          policy.parameters().head(policy.output_weight_offset()));
    r.parameters().tail(r.config().d_model + 1) = xf_weights(r.config().d_model + 1, 3);
    const vector_d w = xf_weights(b.size(), 4);
    vector_d g = vector_d::Zero(r.num_parameters());
    r.accumulate_reward_gradient(b, w, g);
    check_fd(
        r,
        [&]() {
          vector_d out(b.size());
          r.reward(b, out);
          return w.dot(out);
        },
        g, [](xf_index k) { return std::to_string(k); });
  }
  SECTION("critic (every response position)") {
    prefopt::transformer_critic<double> c(tiny_config());
    c.parameters().tail(c.config().d_model + 1) = xf_weights(c.config().d_model + 1, 5);
    const xf_index n = b.responses.total_length();
    const vector_d w = xf_weights(n, 6);
    vector_d g = vector_d::Zero(c.num_parameters());
    c.accumulate_value_gradient(b, w, g);
    check_fd(
        c,
        [&]() {
          vector_d out(n);
          c.values(b, out);
          return w.dot(out);
        },
        g, [](xf_index k) { return std::to_string(k); });
  }
}

TEST_CASE("transformer: a backward after a forward on the same batch reuses it, bitwise",
          "[transformer]") {
  transformer<float> m(tiny_config());
  const xf_fixture fx;
  const auto b = fx.batch();
  const xf_index n = b.responses.total_length();
  const prefopt::vector_f w = xf_weights(n * m.hidden_size(), 9).cast<float>();
  const Eigen::Map<const row_matrix_f> dh(w.data(), n, m.hidden_size());
  auto grad = [&](bool warm) {
    prefopt::release_transformer_workspace<float>();
    if (warm) {
      row_matrix_f h(n, m.hidden_size());
      m.hidden_states(b, h);
    }
    prefopt::vector_f g = prefopt::vector_f::Zero(m.num_parameters());
    m.accumulate_hidden_gradient(b, dh, g);
    return g;
  };
  const prefopt::vector_f cold = grad(false);
  CHECK(grad(true) == cold);
  // A changed parameter or a changed token is a different pass.
  row_matrix_f h(n, m.hidden_size());
  m.hidden_states(b, h);
  m.parameters()(m.vocab_size() * m.hidden_size() + 3) += 0.5f;  // position 0 embedding
  prefopt::vector_f g = prefopt::vector_f::Zero(m.num_parameters());
  m.accumulate_hidden_gradient(b, dh, g);
  prefopt::release_transformer_workspace<float>();
  prefopt::vector_f g_cold = prefopt::vector_f::Zero(m.num_parameters());
  m.accumulate_hidden_gradient(b, dh, g_cold);
  CHECK(g == g_cold);
  CHECK(g != cold);
  xf_fixture other;
  other.response_tokens[5] = 5;
  row_matrix_f h2(n, m.hidden_size());
  m.hidden_states(b, h);
  m.hidden_states(other.batch(), h2);
  CHECK(h.topRows(2) == h2.topRows(2));  // sequence 0 and the first token of sequence 1
  CHECK(h.row(n - 1) != h2.row(n - 1));
}

TEST_CASE("transformer: a sequence's logits do not depend on the batch, bitwise", "[transformer]") {
  auto c = tiny_config();
  c.d_model = 32;  // whole and partial SIMD packets
  c.num_heads = 4;
  c.mlp_hidden = 40;
  c.vocab_size = 37;
  c.max_length = 24;
  const transformer<float> m(c);
  const xf_fixture fx;
  std::vector<xf_index> po{0, 3, 4, 9}, ro{0, 5, 17, 20};
  std::vector<token_id> pt{1, 2, 3, 4, 5, 6, 7, 8, 9};
  std::vector<token_id> rt(20);
  for (std::size_t k = 0; k < rt.size(); ++k) rt[k] = static_cast<token_id>((7 * k + 3) % 37);
  const sequence_batch all{{po, pt}, {ro, rt}};
  row_matrix_f z(20, 37);
  m.logits(all, z);
  for (xf_index i = 0; i < 3; ++i) {
    const sequence_batch one = prefopt::detail::sub_batch(all, i, i + 1);
    row_matrix_f zi(one.responses.total_length(), 37);
    m.logits(one, zi);
    CHECK(zi == z.middleRows(ro[static_cast<std::size_t>(i)], zi.rows()));
  }
}

TEST_CASE("transformer: KV-cache decoding gives bitwise the teacher-forced logits",
          "[transformer]") {
  auto c = tiny_config();
  c.d_model = 48;
  c.num_heads = 3;
  c.mlp_hidden = 0;
  c.vocab_size = 50;
  c.max_length = 20;
  c.num_layers = 3;
  const transformer<float> m(c);
  // Three prompts; responses of different lengths; decode them with shrinking live sets.
  std::vector<xf_index> po{0, 1, 5, 7};
  std::vector<token_id> pt{4, 10, 11, 12, 13, 20, 21};
  const std::vector<std::vector<token_id>> ys{{5, 6, 7, 8, 9, 1}, {2, 3}, {30, 31, 32, 33}};
  std::vector<xf_index> ro{0};
  std::vector<token_id> rt;
  for (const auto& y : ys) {
    rt.insert(rt.end(), y.begin(), y.end());
    ro.push_back(static_cast<xf_index>(rt.size()));
  }
  const sequence_batch b{{po, pt}, {ro, rt}};
  row_matrix_f z(b.responses.total_length(), c.vocab_size);
  m.logits(b, z);

  auto s = m.start_decoding(b.prompts);
  for (std::size_t t = 0; t < 6; ++t) {
    std::vector<xf_index> live;
    std::vector<token_id> next;
    for (std::size_t i = 0; i < ys.size(); ++i) {
      if (t < ys[i].size()) live.push_back(static_cast<xf_index>(i));
    }
    row_matrix_f out(static_cast<xf_index>(live.size()), c.vocab_size);
    m.next_logits(s, live, out);
    for (std::size_t r = 0; r < live.size(); ++r) {
      const auto i = static_cast<std::size_t>(live[r]);
      INFO("sequence " << i << ", step " << t);
      CHECK(out.row(static_cast<xf_index>(r)) == z.row(ro[i] + static_cast<xf_index>(t)));
      next.push_back(ys[i][t]);
    }
    // Sequences that end after this step are not appended.
    std::vector<xf_index> cont;
    std::vector<token_id> tokens;
    for (std::size_t r = 0; r < live.size(); ++r) {
      if (t + 1 < ys[static_cast<std::size_t>(live[r])].size()) {
        cont.push_back(live[r]);
        tokens.push_back(next[r]);
      }
    }
    m.append(s, cont, tokens);
  }
}

TEST_CASE("transformer: derived quantities, the fused path and generation take it",
          "[transformer]") {
  transformer<double> m(tiny_config());
  const xf_fixture fx;
  const auto b = fx.batch();
  const xf_index n = b.responses.total_length();
  prefopt::sequence_options fused, plain;
  plain.fused = false;
  vector_d a(n), a2(n), h(n), h2(n);
  prefopt::token_log_probs(m, b, a, fused);
  prefopt::token_log_probs(m, b, a2, plain);
  prefopt::token_entropies(m, b, h, fused);
  prefopt::token_entropies(m, b, h2, plain);
  CHECK((a - a2).cwiseAbs().maxCoeff() < 1e-12);
  CHECK((h - h2).cwiseAbs().maxCoeff() < 1e-12);
  CHECK(a.maxCoeff() < 0.0);

  // The gradient of the sequence log-probs through the fused path, against finite differences.
  const vector_d ws = xf_weights(b.size(), 7);
  vector_d g = vector_d::Zero(m.num_parameters());
  prefopt::accumulate_sequence_log_prob_gradient(m, b, ws, g, fused);
  check_fd(
      m,
      [&]() {
        vector_d sl(b.size());
        prefopt::sequence_log_probs(m, b, sl, fused);
        return ws.dot(sl);
      },
      g, [&](xf_index k) { return block_of(m, k); });

  // Per-token log-probs, entropies and the exact KL to another transformer, with their
  // gradients, at a sampling temperature (the fused path for the model, logits for the reference).
  auto other = tiny_config();
  other.seed = 12;
  const transformer<double> ref(other);
  auto tempered = fused;
  tempered.temperature = 0.8;
  const vector_d wt = xf_weights(n, 8);
  const std::span<const double> wspan(wt.data(), static_cast<std::size_t>(n));
  vector_d gt = vector_d::Zero(m.num_parameters());
  prefopt::accumulate_token_gradient(m, ref, b, {wspan, wspan, wspan}, gt, tempered);
  check_fd(
      m,
      [&]() {
        vector_d lp_t(n), h_t(n), kl_t(n);
        prefopt::token_log_probs(m, b, lp_t, tempered);
        prefopt::token_entropies(m, b, h_t, tempered);
        prefopt::token_kl(m, ref, b, kl_t, tempered);
        return wt.dot(lp_t + h_t + kl_t);
      },
      gt, [&](xf_index k) { return block_of(m, k); });

  // Generation: the sampled tokens' log-probs equal the teacher-forced ones.
  prefopt::generation_config gc;
  gc.max_new_tokens = 4;
  gc.samples_per_prompt = 2;
  const auto out = prefopt::generate(m, b.prompts, gc, /*seed=*/5);
  REQUIRE(out.size() == 2 * b.size());
  vector_d lp(static_cast<xf_index>(out.tokens.size()));
  prefopt::token_log_probs(m, out.batch(), lp, fused);
  for (std::size_t k = 0; k < out.tokens.size(); ++k) {
    CHECK(std::abs(lp(static_cast<xf_index>(k)) - out.model_log_probs[k]) < 1e-9);
  }
}

#if defined(_OPENMP)
TEST_CASE("transformer: 1 and 2 threads give bitwise the same logits and gradients",
          "[transformer]") {
  auto c = tiny_config();
  c.d_model = 64;
  c.num_heads = 4;
  c.vocab_size = 300;
  c.max_length = 80;
  const transformer<float> m(c);
  std::vector<xf_index> po{0}, ro{0};
  std::vector<token_id> pt, rt;
  for (int i = 0; i < 6; ++i) {
    for (int t = 0; t < 5 + i; ++t) pt.push_back(static_cast<token_id>((13 * i + t) % 300));
    for (int t = 0; t < 40 + 3 * i; ++t) rt.push_back(static_cast<token_id>((7 * t + i) % 300));
    po.push_back(static_cast<xf_index>(pt.size()));
    ro.push_back(static_cast<xf_index>(rt.size()));
  }
  const sequence_batch b{{po, pt}, {ro, rt}};
  const xf_index n = b.responses.total_length();
  auto eval = [&](int threads) {
    omp_set_num_threads(threads);
    row_matrix_f z(n, c.vocab_size);
    m.logits(b, z);
    prefopt::vector_f g = prefopt::vector_f::Zero(m.num_parameters());
    m.accumulate_logits_gradient(b, z * 1e-3f, g);
    return std::make_pair(z, g);
  };
  const int saved = omp_get_max_threads();
  const auto one = eval(1);
  const auto two = eval(2);
  omp_set_num_threads(saved);
  CHECK(one.first == two.first);
  CHECK(one.second == two.second);
}
#endif

TEST_CASE("transformer: bad configuration and input are named errors", "[transformer]") {
  using Catch::Matchers::Contains;
  SECTION("configuration fields") {
    auto c = tiny_config();
    c.num_heads = 3;
    CHECK_THROWS_WITH(transformer<float>(c), Contains("config.num_heads = 3"));
    c = tiny_config();
    c.eos = 7;
    CHECK_THROWS_WITH(transformer<float>(c), Contains("config.eos = 7"));
    c = tiny_config();
    c.max_length = 0;
    CHECK_THROWS_AS(transformer<float>(c), prefopt::invalid_argument);
  }
  const transformer<float> m(tiny_config());
  row_matrix_f z(6, 7);
  SECTION("token ids outside the vocabulary name the position") {
    xf_fixture fx;
    fx.prompt_tokens[2] = 7;
    CHECK_THROWS_WITH(m.logits(fx.batch(), z),
                      Contains("transformer::logits: batch.prompts[1][1] = 7"));
    fx = xf_fixture{};
    fx.response_tokens[4] = -1;
    CHECK_THROWS_WITH(m.logits(fx.batch(), z), Contains("batch.responses[1][1] = -1"));
  }
  SECTION("sequences longer than the position table") {
    xf_fixture fx;
    fx.response_tokens.insert(fx.response_tokens.begin() + 3, {1, 1, 1});
    fx.response_offsets = {2, 3, 11, 11};
    row_matrix_f z2(9, 7);
    CHECK_THROWS_WITH(m.logits(fx.batch(), z2), Contains("batch sequence 1 reads 10 tokens"));
  }
  SECTION("empty batch, an empty prompt (eos), wrong output shape") {
    std::vector<xf_index> none{0};
    std::vector<token_id> nothing;
    const sequence_batch empty{{none, nothing}, {none, nothing}};
    row_matrix_f z0(0, 7);
    CHECK_THROWS_WITH(m.logits(empty, z0), Contains("batch is empty"));
    // An empty prompt reads as eos: bitwise the logits of the one-token prompt [eos].
    xf_fixture fx;
    fx.prompt_offsets = {0, 0, 3, 5};
    fx.prompt_tokens = {1, 2, 6, 5, 4};
    xf_fixture with_eos;
    with_eos.prompt_tokens = {0, 1, 2, 6, 5, 4};
    row_matrix_f z_empty(6, 7), z_eos(6, 7);
    m.logits(fx.batch(), z_empty);
    m.logits(with_eos.batch(), z_eos);
    CHECK(z_empty == z_eos);
    row_matrix_f bad(5, 7);
    CHECK_THROWS_WITH(m.logits(xf_fixture{}.batch(), bad), Contains("out is 5x7, expected 6x7"));
  }
  SECTION("decoding past the position table") {
    std::vector<xf_index> po{0, 8};
    std::vector<token_id> pt(8, 1);
    auto s = m.start_decoding({po, pt});
    const std::vector<xf_index> live{0};
    row_matrix_f out(1, 7);
    m.next_logits(s, live, out);
    const std::vector<token_id> tok{2};
    m.append(s, live, tok);
    m.next_logits(s, live, out);  // position 8: the last one
    m.append(s, live, tok);
    CHECK_THROWS_WITH(m.next_logits(s, live, out), Contains("would read 10 tokens"));
    const std::vector<token_id> bad_tok{9};
    CHECK_THROWS_WITH(m.append(s, live, bad_tok), Contains("tokens[0] = 9"));
  }
}
