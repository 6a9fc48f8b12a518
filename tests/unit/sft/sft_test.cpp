// Supervised fine-tuning on the test-only bigram model: the loss against a hand-computed masked
// cross-entropy, its gradient against central finite differences (double), the first Adam step
// by hand, the warmup + cosine schedule and global-norm clipping, convergence of the held-out
// cross-entropy to the data's entropy, bitwise determinism, named config and problem errors,
// divergence ending the run as `diverged`, and best-of-n demonstrations from a sequence task.
#include "prefopt/solvers/sft.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <numeric>
#include <vector>

#include "../losses/finite_difference.hpp"
#include "../sequence/bigram_model.hpp"
#include "prefopt/sequence/quality_task.hpp"
#include "prefopt/solvers/common/run.hpp"

namespace {
using index_t = prefopt::index_t;
using Catch::Matchers::Contains;
using prefopt::sequence_batch;
using prefopt::token_id;
using prefopt::vector_d;
using prefopt::test::bigram_model;

static_assert(prefopt::Solver<prefopt::sft, prefopt::sft_problem<bigram_model<float, true>>>);
static_assert(prefopt::Solver<prefopt::sft, prefopt::sft_problem<bigram_model<double, false>>>);

constexpr index_t sft_vocab = 6;  // eos = 5
constexpr token_id sft_eos = 5;

// Four demonstrations: an empty prompt, an empty response, a long prompt.
struct sft_fixture {
  std::vector<index_t> prompt_offsets{0, 0, 2, 3, 7};
  std::vector<token_id> prompt_tokens{1, 3, 4, 0, 2, 2, 1};
  std::vector<index_t> response_offsets{0, 3, 3, 5, 9};
  std::vector<token_id> response_tokens{2, 0, 5, 1, 3, 4, 4, 0, 5};
  [[nodiscard]] sequence_batch batch() const {
    return {{prompt_offsets, prompt_tokens}, {response_offsets, response_tokens}};
  }
};

/// -mean over response tokens of log softmax(z(ctx))_y, from the model's per-context logits.
template <class M>
double hand_cross_entropy(const M& m, const sequence_batch& b) {
  double sum = 0.0;
  index_t n = 0;
  for (index_t i = 0; i < b.size(); ++i) {
    const auto x = b.prompts.sequence(i);
    index_t c = x.empty() ? m.vocab_size() : x.back();
    for (const token_id y : b.responses.sequence(i)) {
      const vector_d z = m.logits_of(c).template cast<double>();
      const double lse = std::log((z.array() - z.maxCoeff()).exp().sum()) + z.maxCoeff();
      sum -= z(y) - lse;
      ++n;
      c = y;
    }
  }
  return sum / static_cast<double>(n);
}

/// Demonstrations sampled from a teacher bigram: `n` one- or two-token prompts, responses up to
/// 8 tokens.
template <class M>
prefopt::demonstration_set teacher_demonstrations(const M& teacher, index_t n, std::uint64_t seed) {
  prefopt::rng gen(seed, 1);
  std::vector<index_t> offsets{0};
  std::vector<token_id> tokens;
  for (index_t i = 0; i < n; ++i) {
    const index_t len = 1 + gen.uniform_index(2);
    for (index_t t = 0; t < len; ++t) {
      tokens.push_back(static_cast<token_id>(gen.uniform_index(sft_vocab - 1)));
    }
    offsets.push_back(static_cast<index_t>(tokens.size()));
  }
  prefopt::generation_config g;
  g.max_new_tokens = 8;
  const auto drawn = prefopt::generate(teacher, {offsets, tokens}, g, seed);
  prefopt::demonstration_set out;
  for (index_t i = 0; i < drawn.size(); ++i) {
    out.add(drawn.batch().prompts.sequence(i), drawn.responses().sequence(i));
  }
  return out;
}

template <class T>
bool same_bits(const prefopt::vector_t<T>& a, const prefopt::vector_t<T>& b) {
  return a.size() == b.size() &&
         std::memcmp(a.data(), b.data(), static_cast<std::size_t>(a.size()) * sizeof(T)) == 0;
}
}  // namespace

TEST_CASE("the SFT loss is the mean cross-entropy of the response tokens only", "[sft]") {
  const sft_fixture f;
  const bigram_model<double, true> head(sft_vocab, 3, sft_eos, 5);
  const bigram_model<double, false> plain(sft_vocab, 3, sft_eos, 5);
  const double expected = hand_cross_entropy(plain, f.batch());
  CHECK(prefopt::held_out_cross_entropy(plain, f.batch()) == Approx(expected).epsilon(1e-13));
  CHECK(prefopt::held_out_cross_entropy(head, f.batch()) == Approx(expected).epsilon(1e-12));
  // Prompts are context only: changing a prompt token other than the last changes nothing
  // (the bigram reads the last one), and the loss averages over 9 response tokens, not 16.
  sft_fixture g = f;
  g.prompt_tokens[3] = 4;
  CHECK(prefopt::held_out_cross_entropy(plain, g.batch()) ==
        prefopt::held_out_cross_entropy(plain, f.batch()));
  // No response tokens: an error, not 0/0.
  const std::vector<index_t> none{0, 0};
  const std::vector<index_t> one_prompt{0, 1};
  const std::vector<token_id> x{1};
  const sequence_batch empty{{one_prompt, x}, {none, x}};
  REQUIRE_THROWS_WITH(prefopt::held_out_cross_entropy(plain, empty),
                      Contains("held_out_cross_entropy: batch has no response tokens"));
}

TEMPLATE_TEST_CASE("the SFT loss gradient matches central finite differences", "[sft]",
                   (bigram_model<double, false>), (bigram_model<double, true>)) {
  const sft_fixture f;
  TestType model(sft_vocab, 3, sft_eos, 9, 0.8);
  vector_d gradient = vector_d::Constant(model.num_parameters(), 0.25);  // accumulates
  const double loss = prefopt::accumulate_cross_entropy_gradient(model, f.batch(), gradient);
  gradient.array() -= 0.25;
  CHECK(loss == Approx(hand_cross_entropy(model, f.batch())).epsilon(1e-12));
  const vector_d theta = model.parameters();
  double worst = 0.0;
  for (index_t k = 0; k < theta.size(); ++k) {
    const double fd = prefopt::test::central_difference(
        [&](const vector_d& t) {
          model.parameters() = t;
          return prefopt::held_out_cross_entropy(model, f.batch());
        },
        theta, k);
    worst = std::max(worst, std::abs(fd - gradient(k)));
    CHECK(prefopt::test::close(fd, gradient(k), 1e-6, 1e-8));
  }
  model.parameters() = theta;
  INFO("largest |fd - analytic| = " << worst);
  CHECK(gradient.norm() > 0.1);
}

TEST_CASE("one sft step is a clipped Adam step on the full-batch gradient", "[sft]") {
  const sft_fixture f;
  using model_t = bigram_model<double, false>;
  const model_t initial(sft_vocab, 3, sft_eos, 2);
  const auto problem = prefopt::make_sft_problem(initial, f.batch());
  vector_d g = vector_d::Zero(initial.num_parameters());
  const double loss0 = prefopt::accumulate_cross_entropy_gradient(initial, f.batch(), g);

  prefopt::sft_config c;
  c.batch_size = 4;  // the whole set (shuffled order)
  c.schedule.peak = 0.01;
  c.max_grad_norm = 0.0;
  const prefopt::sft solver(c);
  auto s = solver.init(problem);
  const prefopt::sft_step_stats st = solver.step(problem, s);
  CHECK(st.loss == Approx(loss0).epsilon(1e-12));
  CHECK(st.grad_norm == Approx(g.norm()).epsilon(1e-12));
  CHECK(st.learning_rate == 0.01);
  CHECK(st.tokens == 9);
  CHECK(st.sequences == 4);
  CHECK_FALSE(st.clipped);
  CHECK(s.iteration() == 1);
  CHECK(s.epoch() == 1);
  // Adam's first bias-corrected step: theta - lr g / (|g| + eps).
  const vector_d expected =
      initial.parameters().array() - 0.01 * g.array() / (g.array().abs() + c.epsilon);
  CHECK((s.policy().parameters() - expected).cwiseAbs().maxCoeff() < 1e-12);
  CHECK(initial.parameters() != s.policy().parameters());  // the problem's model is untouched

  // Clipping: the reported norm is the unclipped one.
  c.max_grad_norm = 0.5 * g.norm();
  const prefopt::sft clipped(c);
  auto s2 = clipped.init(problem);
  const auto st2 = clipped.step(problem, s2);
  CHECK(st2.clipped);
  CHECK(st2.grad_norm == Approx(g.norm()).epsilon(1e-12));
}

TEST_CASE("global-norm clipping and the warmup + cosine schedule", "[sft]") {
  vector_d g(3);
  g << 3.0, 0.0, -4.0;
  CHECK(prefopt::clip_global_norm<double>(g, 10.0) == 5.0);
  CHECK(g(0) == 3.0);
  CHECK(prefopt::clip_global_norm<double>(g, 1.0) == 5.0);
  CHECK(g.norm() == Approx(1.0).epsilon(1e-15));
  CHECK(g(2) == Approx(-0.8));
  prefopt::vector_f h = prefopt::vector_f::Constant(4, 2.0f);
  CHECK(prefopt::clip_global_norm<float>(h, 0.0) == 4.0);  // 0: off
  CHECK(h(0) == 2.0f);

  const prefopt::warmup_cosine_schedule s{0.1, 4, 10, 0.2};
  CHECK(s.learning_rate(0) == Approx(0.025));
  CHECK(s.learning_rate(3) == Approx(0.1));
  CHECK(s.learning_rate(4) == Approx(0.1));
  CHECK(s.learning_rate(9) == Approx(0.02 + 0.08 * 0.5));  // halfway through the decay
  CHECK(s.learning_rate(14) == Approx(0.02));
  CHECK(s.learning_rate(1000) == Approx(0.02));
  const prefopt::warmup_cosine_schedule constant{0.3, 0, 0, 0.1};
  CHECK(constant.learning_rate(0) == 0.3);
  CHECK(constant.learning_rate(77) == 0.3);

  // The solver uses the schedule step by step.
  const sft_fixture f;
  const bigram_model<float, true> initial(sft_vocab, 3, sft_eos, 2);
  const auto problem = prefopt::make_sft_problem(initial, f.batch());
  prefopt::sft_config c;
  c.batch_size = 2;
  c.schedule = s;
  const prefopt::sft solver(c);
  auto st = solver.init(problem);
  for (index_t t = 0; t < 16; ++t) {
    CHECK(solver.step(problem, st).learning_rate == s.learning_rate(t));
  }
}

TEMPLATE_TEST_CASE("SFT drives the held-out cross-entropy down to the data's entropy", "[sft]",
                   (bigram_model<float, true>), (bigram_model<double, false>)) {
  const auto start = std::chrono::steady_clock::now();
  // A teacher of about 0.84 nats per token (scale 0.8), 600 demonstrations of ~6.7 tokens.
  const bigram_model<double, true> teacher(sft_vocab, 4, sft_eos, 1, 0.8);
  const auto all = teacher_demonstrations(teacher, 600, 3);
  const auto split = prefopt::split_demonstrations(all, 150, 4);
  REQUIRE(split.train.size() == 450);
  REQUIRE(split.held_out.size() == 150);
  const sequence_batch held = split.held_out.batch();
  // The data's entropy: the teacher's own held-out cross-entropy (an unbiased estimate of the
  // conditional entropy of the responses) and its mean per-token entropy.
  const double data_ce = prefopt::held_out_cross_entropy(teacher, held);
  vector_d h(held.responses.total_length());
  prefopt::token_entropies(teacher, held, h);
  const double data_entropy = h.mean();

  const TestType student(sft_vocab, 4, sft_eos, 2, 0.5);
  const auto problem = prefopt::make_sft_problem(student, split.train.batch(), held);
  prefopt::sft_config c;
  c.batch_size = 32;
  c.schedule = {0.05, 20, 280, 0.1};
  c.seed = 7;
  const auto result = prefopt::run(prefopt::sft(c), problem, {300});
  REQUIRE(result.status == prefopt::run_status::completed);
  const double initial_ce = prefopt::held_out_cross_entropy(student, held);
  const double final_ce = prefopt::held_out_cross_entropy(result.state.policy(), held);
  const double train_ce =
      prefopt::held_out_cross_entropy(result.state.policy(), split.train.batch());
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  WARN("SFT (" << (sizeof(typename TestType::scalar_type) == 4 ? "float, fused" : "double, logits")
               << "): held-out cross-entropy " << initial_ce << " -> " << final_ce
               << " nats/token (train " << train_ce << "); data: teacher " << data_ce
               << ", mean entropy " << data_entropy << "; " << result.iterations << " steps, "
               << result.state.epoch() << " epochs, " << seconds << " s");
  CHECK(initial_ce > data_ce + 0.5);
  CHECK(final_ce < data_ce + 0.03);
  CHECK(final_ce > data_ce - 0.1);  // no better than the truth beyond sampling noise
  CHECK(std::abs(data_ce - data_entropy) < 0.1);
}

TEST_CASE("sft is bitwise deterministic for a seed", "[sft]") {
  const bigram_model<double, true> teacher(sft_vocab, 4, sft_eos, 1, 1.5);
  const auto demos = teacher_demonstrations(teacher, 64, 5);
  const bigram_model<float, true> student(sft_vocab, 4, sft_eos, 2, 0.5);
  const auto problem = prefopt::make_sft_problem(student, demos.batch());
  prefopt::sft_config c;
  c.batch_size = 5;  // straddles epochs
  c.schedule = {0.05, 3, 20, 0.1};
  c.seed = 42;
  const auto a = prefopt::run(prefopt::sft(c), problem, {40});
  const auto b = prefopt::run(prefopt::sft(c), problem, {40});
  CHECK(same_bits(a.state.policy().parameters().eval(), b.state.policy().parameters().eval()));
  c.seed = 43;
  const auto other = prefopt::run(prefopt::sft(c), problem, {40});
  CHECK_FALSE(
      same_bits(a.state.policy().parameters().eval(), other.state.policy().parameters().eval()));
}

TEST_CASE("bad sft configurations and problems are named", "[sft]") {
  auto bad = [](auto edit) {
    prefopt::sft_config c;
    edit(c);
    return c;
  };
  using cfg = prefopt::sft_config;
  auto expect = [](const cfg& c, const std::string& text) {
    REQUIRE_THROWS_AS(prefopt::sft(c), prefopt::invalid_argument);
    REQUIRE_THROWS_WITH(prefopt::sft(c), Contains(text));
  };
  expect(bad([](cfg& c) { c.batch_size = 0; }), "sft: config.batch_size = 0, expected >= 1");
  expect(bad([](cfg& c) { c.schedule.peak = 0.0; }), "sft: config.schedule.peak = 0");
  expect(bad([](cfg& c) { c.schedule.peak = std::numeric_limits<double>::infinity(); }),
         "config.schedule.peak = inf");
  expect(bad([](cfg& c) { c.schedule.warmup_steps = -1; }), "config.schedule.warmup_steps = -1");
  expect(bad([](cfg& c) { c.schedule.decay_steps = -2; }), "config.schedule.decay_steps = -2");
  expect(bad([](cfg& c) { c.schedule.final_ratio = 0.0; }), "config.schedule.final_ratio = 0");
  expect(bad([](cfg& c) { c.beta1 = 1.0; }), "sft: config.beta1 = 1");
  expect(bad([](cfg& c) { c.beta2 = -0.5; }), "sft: config.beta2 = -0.5");
  expect(bad([](cfg& c) { c.epsilon = 0.0; }), "sft: config.epsilon = 0");
  expect(bad([](cfg& c) { c.max_grad_norm = -1.0; }), "sft: config.max_grad_norm = -1");
  expect(bad([](cfg& c) { c.sequence.max_positions = 0; }),
         "sft: config.sequence.max_positions = 0");
  expect(bad([](cfg& c) { c.sequence.temperature = 0.0; }), "sft: config.sequence.temperature = 0");

  using model_t = bigram_model<double, false>;
  model_t model(sft_vocab, 3, sft_eos, 2);
  const prefopt::sft solver;
  const sft_fixture f;
  prefopt::sft_problem<model_t> p;
  REQUIRE_THROWS_WITH(solver.init(p), Contains("sft::init: problem.initial is null"));
  p.initial = &model;
  REQUIRE_THROWS_WITH(solver.init(p), Contains("sft::init: problem.train is empty"));
  const std::vector<index_t> none{0, 0};
  const std::vector<index_t> one{0, 1};
  const std::vector<token_id> x{1};
  p.train = {{one, x}, {none, x}};
  REQUIRE_THROWS_WITH(solver.init(p), Contains("problem.train has no response tokens"));
  sft_fixture g = f;
  g.response_tokens[4] = 6;
  p.train = g.batch();
  REQUIRE_THROWS_WITH(solver.init(p), Contains("sft::init: batch.responses[2][1] = 6"));
  p.train = f.batch();
  p.held_out = g.batch();
  REQUIRE_THROWS_WITH(solver.init(p), Contains("sft::init: batch.responses[2][1] = 6"));
  p.held_out = {};
  model.parameters()(4) = std::numeric_limits<double>::quiet_NaN();
  REQUIRE_THROWS_WITH(solver.init(p), Contains("sft::init: problem.initial parameter 4 is nan"));
  // A model whose logits are non-finite from the start is a bad input (an error naming the
  // row), not a divergence.
  model_t poisoned(sft_vocab, 3, sft_eos, 2);
  poisoned.poison(1, 2);
  p.initial = &poisoned;
  auto s = solver.init(p);
  REQUIRE_THROWS_WITH(solver.step(p, s),
                      Contains("sft::step: model") && Contains("batch.responses"));
}

TEMPLATE_TEST_CASE("a diverging SFT run ends with status diverged", "[sft]",
                   (bigram_model<float, true>), (bigram_model<double, false>)) {
  using T = typename TestType::scalar_type;
  const bigram_model<double, true> teacher(sft_vocab, 4, sft_eos, 1, 1.5);
  const auto demos = teacher_demonstrations(teacher, 64, 5);
  const TestType student(sft_vocab, 4, sft_eos, 2, 0.5);
  const auto problem = prefopt::make_sft_problem(student, demos.batch());
  prefopt::sft_config c;
  c.batch_size = 8;
  c.max_grad_norm = 0.0;
  c.schedule.peak = 0.5 * static_cast<double>(std::numeric_limits<T>::max());
  const auto result = prefopt::run(prefopt::sft(c), problem, {200});
  INFO(result.message);
  CHECK(result.status == prefopt::run_status::diverged);
  CHECK(result.iterations < 200);
  CHECK_THAT(result.message, Contains("diverged at step " + std::to_string(result.iterations)));
  CHECK_THAT(result.message, Contains("is nan") || Contains("is inf") || Contains("is -inf"));
  // The overflow shows up as non-finite logits (or gradient) on the second step: the step
  // reports a NaN loss, keeps the last finite parameters and says why.
  CHECK(result.state.policy().parameters().allFinite());
  CHECK_FALSE(result.state.failure().empty());
  // A sane learning rate completes.
  c.schedule.peak = 0.01;
  CHECK(prefopt::run(prefopt::sft(c), problem, {20}).status == prefopt::run_status::completed);
}

TEST_CASE("best-of-n demonstrations from a sequence task make an SFT target", "[sft]") {
  prefopt::quality_task_config tc;
  tc.content_tokens = 4;
  tc.num_prompts = 16;
  tc.prompt_length = 1;  // the bigram sees the topic
  tc.quality_scale = 1.0;
  tc.seed = 3;
  const auto task = prefopt::length_biased_quality_task::random(tc);
  const auto gold = task.gold_reward();
  using model_t = bigram_model<double, true>;
  const model_t sampler(task.vocab_size(), 4, task.eos(), 8, 0.3);  // near uniform
  prefopt::best_of_n_config bc;
  bc.samples_per_prompt = 8;
  bc.keep = 2;
  bc.generation.max_new_tokens = 6;
  bc.seed = 1;
  const auto demos = prefopt::best_of_n_demonstrations(sampler, gold, task.prompts(), bc);
  REQUIRE(demos.size() == 32);

  // The kept responses are the two best of the eight candidates of their prompt.
  prefopt::generation_config g = bc.generation;
  g.samples_per_prompt = 8;
  const auto drawn = prefopt::generate(sampler, task.prompts(), g, bc.seed);
  vector_d all(drawn.size());
  gold.reward(drawn.batch(), all);
  vector_d kept(demos.size());
  gold.reward(demos.batch(), kept);
  for (index_t i = 0; i < 16; ++i) {
    vector_d r = all.segment(8 * i, 8);
    std::sort(r.data(), r.data() + 8, std::greater<>());
    CHECK(kept(2 * i) == r(0));
    CHECK(kept(2 * i + 1) == r(1));
  }
  CHECK(kept.mean() > all.mean() + 0.5);

  // SFT on them raises the gold reward of the model's own samples.
  prefopt::sft_config c;
  c.batch_size = 16;
  c.schedule = {0.05, 10, 290, 0.1};
  const auto result =
      prefopt::run(prefopt::sft(c), prefopt::make_sft_problem(sampler, demos.batch()), {300});
  REQUIRE(result.status == prefopt::run_status::completed);
  g.samples_per_prompt = 64;
  auto mean_gold = [&](const model_t& m) {
    const auto d = prefopt::generate(m, task.prompts(), g, 99);
    vector_d r(d.size());
    gold.reward(d.batch(), r);
    return r.mean();
  };
  const double before = mean_gold(sampler);
  const double after = mean_gold(result.state.policy());
  WARN("best-of-8 SFT on length_biased_quality_task: mean gold reward "
       << before << " -> " << after << " (demos " << kept.mean() << ")");
  CHECK(after > before + 0.3);

  // Bad settings are named.
  bc.keep = 9;
  REQUIRE_THROWS_WITH(prefopt::best_of_n_demonstrations(sampler, gold, task.prompts(), bc),
                      Contains("best_of_n_demonstrations: config.keep = 9, expected a count in "
                               "[1, samples_per_prompt = 8]"));
  bc.keep = 1;
  bc.samples_per_prompt = 0;
  REQUIRE_THROWS_WITH(prefopt::best_of_n_demonstrations(sampler, gold, task.prompts(), bc),
                      Contains("config.samples_per_prompt = 0"));
}

TEST_CASE("demonstration sets split deterministically and keep their order", "[sft]") {
  prefopt::demonstration_set all;
  for (token_id i = 0; i < 10; ++i) {
    const std::vector<token_id> x{i};
    const std::vector<token_id> y(static_cast<std::size_t>(i % 3), i);
    all.add(x, y);
  }
  CHECK(all.size() == 10);
  CHECK(all.num_response_tokens() == 9);
  CHECK(all.batch().size() == 10);
  const bigram_model<double, false> m(11, 3, 10, 2);  // ids 0 .. 9 appear
  CHECK(prefopt::held_out_cross_entropy(m, all) == prefopt::held_out_cross_entropy(m, all.batch()));
  const auto a = prefopt::split_demonstrations(all, 3, 1);
  const auto b = prefopt::split_demonstrations(all, 3, 1);
  REQUIRE(a.held_out.size() == 3);
  REQUIRE(a.train.size() == 7);
  CHECK(a.held_out.prompts() == b.held_out.prompts());
  std::vector<token_id> seen;
  for (index_t i = 0; i < 3; ++i) seen.push_back(a.held_out.prompts()[i][0]);
  for (index_t i = 0; i < 7; ++i) seen.push_back(a.train.prompts()[i][0]);
  CHECK(std::is_sorted(seen.begin(), seen.begin() + 3));
  CHECK(std::is_sorted(seen.begin() + 3, seen.end()));
  std::sort(seen.begin(), seen.end());
  for (token_id i = 0; i < 10; ++i) CHECK(seen[static_cast<std::size_t>(i)] == i);
  for (index_t i = 0; i < 7; ++i) {
    const token_id x = a.train.prompts()[i][0];
    CHECK(a.train.responses().length(i) == x % 3);
  }
  REQUIRE_THROWS_WITH(prefopt::split_demonstrations(all, 11, 1),
                      Contains("split_demonstrations: held_out = 11, expected a count in [0, 10]"));
}
