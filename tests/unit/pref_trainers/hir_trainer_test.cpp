#include "prefopt/solvers/hir_trainer.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "../sequence/bigram_model.hpp"
#include "pref_helpers.hpp"
#include "prefopt/policies/sequence_adapters.hpp"
#include "prefopt/sequence/instruction_task.hpp"
#include "prefopt/solvers/common/run.hpp"

using namespace prefopt;

namespace {
using hir_test_model = test::bigram_model<double, false>;

/// K = m = 5 instructions, prompts [k] for k in [0, 5), one-token responses.
struct hir_fixture {
  modular_sum_instruction_task task{5, 5};
  std::vector<prefopt::index_t> offsets{0, 1, 2, 3, 4, 5};
  std::vector<token_id> tokens{0, 1, 2, 3, 4};
  [[nodiscard]] ragged_view<const token_id> prompts() const { return {offsets, tokens}; }
};

double hir_success_after(hir_mode mode, std::uint64_t model_seed, long rounds,
                         hir_contrast contrast = hir_contrast::two_way) {
  hir_fixture f;
  const hir_test_model ref(6, 4, 5, model_seed, 1.0);
  generation_config gen;
  gen.max_new_tokens = 1;
  const auto problem = make_sequence_problem(ref, f.task, f.prompts(), gen);
  hir_trainer_config c;
  c.mode = mode;
  c.contrast = contrast;
  c.batch_size = 16;
  run_options o;
  o.max_iterations = rounds;
  const auto r = prefopt::run(hir_trainer(c), problem, o);
  REQUIRE(r.status == run_status::completed);
  return test::hir_exact_success(r.state.policy(), f.task, f.prompts(), 1);
}
/// The worst relative gap between `grad` and central differences of the HIR loss of `model`'s
/// copies on `(positive, negative)` under `c`.
template <class Model>
double hir_fd_worst(const Model& model, const sequence_batch& positive,
                    const sequence_batch& negative, const hir_trainer_config& c,
                    const vector_d& grad) {
  auto f_of = [&](const vector_d& theta) {
    Model m = model;
    m.parameters() = theta;
    vector_d none;
    return hir_loss_gradient(m, positive, negative, c, none).total;
  };
  double worst = 0.0;
  for (prefopt::index_t k = 0; k < grad.size(); ++k) {
    const double fd = test::pref_central_difference(f_of, model.parameters(), k);
    worst = std::max(worst, std::abs(fd - grad(k)) / std::max(1e-3, std::abs(fd)));
  }
  return worst;
}
}  // namespace

static_assert(InstructionRelabeler<modular_sum_instruction_task>);

TEST_CASE("hir_loss_gradient equals central differences of the HIR loss (CE, contrast, entropy)") {
  hir_fixture f;
  const hir_test_model model(6, 3, 5, 4, 1.0);
  // Two positive / negative prompt sets over the same ragged responses.
  const std::vector<prefopt::index_t> po{0, 1, 2, 3}, ro{0, 2, 3, 6};
  const std::vector<token_id> pos{1, 3, 0}, neg{2, 4, 1}, resp{1, 0, 4, 2, 3, 5};
  const sequence_batch positive{{po, pos}, {ro, resp}};
  const sequence_batch negative{{po, neg}, {ro, resp}};
  for (const auto how :
       {losses::likelihood_reduction::mean_token, losses::likelihood_reduction::sum}) {
    hir_trainer_config c;
    c.entropy_weight = 0.3;  // large enough to matter in the check
    c.contrast_weight = 0.7;
    c.contrast_likelihood = how;
    vector_d grad = vector_d::Zero(model.num_parameters());
    const auto parts = hir_loss_gradient(model, positive, negative, c, grad);
    CHECK(parts.total == Approx(parts.supervised + 0.7 * parts.contrast + parts.entropy));
    CHECK(parts.entropy < 0.0);
    CHECK(hir_fd_worst(model, positive, negative, c, grad) < 1e-6);
  }
  (void)f;
}

TEST_CASE("hir_loss_gradient, k-way: central differences, and K = 2 equals the 2-way loss") {
  const hir_test_model model(6, 3, 5, 4, 1.0);
  const std::vector<prefopt::index_t> po{0, 1, 2, 3}, ro{0, 2, 3, 6};
  const std::vector<token_id> resp{1, 0, 4, 2, 3, 5};
  // Three instructions: alternative a's prompts all start with token a.
  const std::vector<token_id> p0{0, 0, 0}, p1{1, 1, 1}, p2{2, 2, 2};
  const std::vector<sequence_batch> alternatives{
      {{po, p0}, {ro, resp}}, {{po, p1}, {ro, resp}}, {{po, p2}, {ro, resp}}};
  const std::vector<prefopt::index_t> column{1, 2, 0};
  const std::vector<token_id> pos{1, 2, 0};
  const sequence_batch positive{{po, pos}, {ro, resp}};
  hir_trainer_config c;
  c.entropy_weight = 0.3;
  c.contrast_weight = 0.7;
  c.label_smoothing = 0.1;
  vector_d grad = vector_d::Zero(model.num_parameters());
  const auto parts = hir_loss_gradient(model, positive, alternatives, column, c, grad);
  CHECK(parts.contrast > 0.0);
  auto f_of = [&](const vector_d& theta) {
    hir_test_model m = model;
    m.parameters() = theta;
    vector_d none;
    return hir_loss_gradient(m, positive, alternatives, column, c, none).total;
  };
  double worst = 0.0;
  for (prefopt::index_t k = 0; k < grad.size(); ++k) {
    const double fd = test::pref_central_difference(f_of, model.parameters(), k);
    worst = std::max(worst, std::abs(fd - grad(k)) / std::max(1e-3, std::abs(fd)));
  }
  CHECK(worst < 1e-6);

  // K = 2 with the positive in column 0: the same loss and gradient as the 2-way form.
  const sequence_batch negative{{po, p2}, {ro, resp}};
  const std::vector<sequence_batch> two{positive, negative};
  const std::vector<prefopt::index_t> zeros(3, 0);
  vector_d g2 = vector_d::Zero(model.num_parameters()), gk = g2;
  const double l2 = hir_loss_gradient(model, positive, negative, c, g2).total;
  const double lk = hir_loss_gradient(model, positive, two, zeros, c, gk).total;
  CHECK(lk == Approx(l2).epsilon(1e-12));
  CHECK((gk - g2).cwiseAbs().maxCoeff() < 1e-12);

  // Bad input names the function and the argument.
  hir_trainer_config kc = c;
  kc.contrast = hir_contrast::k_way;
  CHECK_THROWS_WITH(hir_loss_gradient(model, positive, negative, kc, g2),
                    Catch::Contains("hir_loss_gradient: config.contrast = k_way"));
  const std::vector<prefopt::index_t> short_column{1, 2};
  CHECK_THROWS_WITH(hir_loss_gradient(model, positive, alternatives, short_column, c, gk),
                    Catch::Contains("hir_loss_gradient: positive_column has 2 entries"));
  const std::vector<sequence_batch> one{positive};
  CHECK_THROWS_WITH(hir_loss_gradient(model, positive, one, column, c, gk),
                    Catch::Contains("alternatives has 1 batches, expected K >= 2"));
}

TEST_CASE("HIR beats no-relabeling and successes-only at the same sample budget") {
  // 12 rounds of 16 samples (192 samples), default HIR settings, three model seeds.
  for (const std::uint64_t seed : {1U, 2U, 3U}) {
    const double hir = hir_success_after(hir_mode::hindsight, seed, 12);
    const double plain = hir_success_after(hir_mode::no_relabeling, seed, 12);
    const double filtered = hir_success_after(hir_mode::successes_only, seed, 12);
    WARN("hir_trainer success rate after 192 samples, model seed "
         << seed << ": hindsight " << hir << ", no relabeling " << plain << ", successes only "
         << filtered);
    CHECK(hir > filtered + 0.05);
    CHECK(hir > plain + 0.2);
    // The paper's k-way contrast over all five instructions: the same claim, a different run.
    const double k_way = hir_success_after(hir_mode::hindsight, seed, 12, hir_contrast::k_way);
    const double k_plain =
        hir_success_after(hir_mode::no_relabeling, seed, 12, hir_contrast::k_way);
    WARN("k-way contrast, model seed " << seed << ": hindsight " << k_way << ", no relabeling "
                                       << k_plain);
    CHECK(k_way != hir);
    CHECK(k_way > filtered + 0.05);
    CHECK(k_way > k_plain + 0.2);
  }
}

TEST_CASE("hir_trainer is deterministic and names bad config fields") {
  CHECK(hir_success_after(hir_mode::hindsight, 2, 3) ==
        hir_success_after(hir_mode::hindsight, 2, 3));
  hir_trainer_config c;
  c.label_smoothing = 0.7;
  CHECK_THROWS_WITH(hir_trainer(c), Catch::Contains("hir_trainer: config.label_smoothing = 0.7"));
  c = {};
  c.updates_per_round = 0;
  CHECK_THROWS_WITH(hir_trainer(c), Catch::Contains("config.updates_per_round = 0"));
  c = {};
  c.entropy_weight = -1.0;
  CHECK_THROWS_WITH(hir_trainer(c), Catch::Contains("config.entropy_weight = -1"));
  c = {};
  c.scoring.max_positions = 0;
  CHECK_THROWS_WITH(hir_trainer(c), Catch::Contains("config.scoring.max_positions = 0"));
  c = {};
  c.scoring.temperature = 0.5;
  CHECK_THROWS_WITH(hir_trainer(c), Catch::Contains("config.scoring.temperature = 0.5"));
}

TEST_CASE("hir_loss_gradient on forbidden tokens (-inf logits): the one-token view of a table") {
  // tabular_sequence_model: responses [a, eos], logits -inf outside the 4 actions, then only eos.
  // Label smoothing and the entropy cover the allowed tokens only: the supervised term is half the
  // table's label-smoothed CE over its actions (the eos positions add 0 to a mean over 2 tokens
  // per response), and the gradient matches central differences.
  row_matrix_d logits(3, 4);
  logits << 0.3, -0.2, 0.5, 0.1, -0.4, 0.2, 0.0, 0.7, 0.6, -0.1, 0.2, -0.5;
  const tabular_sequence_model model{tabular_softmax_policy(logits)};
  const std::vector<prefopt::index_t> po{0, 1, 2}, ro{0, 2, 4};
  const std::vector<token_id> pos{0, 2}, neg{1, 0}, resp{1, model.eos(), 3, model.eos()};
  const sequence_batch positive{{po, pos}, {ro, resp}}, negative{{po, neg}, {ro, resp}};
  hir_trainer_config c;
  c.label_smoothing = 0.2;
  c.entropy_weight = 0.3;
  c.contrast_likelihood = losses::likelihood_reduction::sum;
  vector_d grad = vector_d::Zero(model.num_parameters());
  const auto parts = hir_loss_gradient(model, positive, negative, c, grad);
  row_matrix_d rows(2, 4), unused(2, 4);
  rows.row(0) = logits.row(0);
  rows.row(1) = logits.row(2);
  const std::vector<token_id> actions{1, 3};
  const double table_ce = losses::label_smoothed_cross_entropy<double>(rows, actions, 0.2, unused);
  const double table_entropy = losses::entropy_bonus<double>(rows, 0.3, unused);
  CHECK(parts.supervised == Approx(0.5 * table_ce).epsilon(1e-12));
  CHECK(parts.entropy == Approx(0.5 * table_entropy).epsilon(1e-12));
  CHECK(std::isfinite(parts.contrast));
  CHECK(hir_fd_worst(model, positive, negative, c, grad) < 1e-6);

  // A target the model forbids is named, and nothing is written.
  const std::vector<token_id> bad_resp{1, 1, 3, model.eos()};  // token 1 after an action
  const sequence_batch bad{{po, pos}, {ro, bad_resp}}, bad_negative{{po, neg}, {ro, bad_resp}};
  vector_d untouched = vector_d::Zero(model.num_parameters());
  CHECK_THROWS_WITH(hir_loss_gradient(model, bad, bad_negative, c, untouched),
                    Catch::Contains("hir_loss_gradient: positive.responses token 1 = 1 has logit "
                                    "-inf (the model forbids it there)"));
  CHECK(untouched.cwiseAbs().maxCoeff() == 0.0);
}

TEST_CASE("hir_trainer: a round that overflows the parameters ends the run as diverged") {
  hir_fixture f;
  const hir_test_model ref(6, 4, 5, 2, 1.0);
  generation_config gen;
  gen.max_new_tokens = 1;
  const auto problem = make_sequence_problem(ref, f.task, f.prompts(), gen);
  hir_trainer_config huge;
  huge.optimizer.kind = optimizer_kind::sgd;
  huge.optimizer.learning_rate = 1e308;
  huge.batch_size = 16;
  run_options o;
  o.max_iterations = 20;
  const auto r = prefopt::run(hir_trainer(huge), problem, o);
  CHECK(r.status == run_status::diverged);
  CHECK(r.iterations < 20);
  CHECK_THAT(r.message, Catch::Contains("diverged at step"));
}
