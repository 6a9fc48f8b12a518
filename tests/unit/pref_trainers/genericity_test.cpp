// Every generic preference trainer against every model type, one line per row: each row runs a
// few steps through prefopt::run on the intransitive class task, checks that the class-level
// duality gap (the objective: distance to the Nash equilibrium) falls below the reference's, and
// that two runs are bitwise identical. Adding a trainer or a model type is one line in the table.

#include <catch2/catch.hpp>

#include <functional>
#include <string>
#include <vector>

#include "../sequence/bigram_model.hpp"
#include "pref_helpers.hpp"
#include "prefopt/models/transformer/transformer.hpp"
#include "prefopt/solvers/common/run.hpp"
#include "prefopt/solvers/hir_trainer.hpp"
#include "prefopt/solvers/nash_md_pg.hpp"
#include "prefopt/solvers/online_pair_trainers.hpp"

namespace {

/// A model type that only this file defines: logits are a free table indexed by (position capped
/// at `positions - 1`, previous token or V for the start), theta row-major
/// `[positions * (V + 1), V]`. Its eos logits start at `eos_bias` (a reference far from the
/// class equilibrium).
template <class T>
class genericity_table_model {
 public:
  using scalar_type = T;
  struct decode_state {
    std::vector<prefopt::index_t> last, position;
  };

  genericity_table_model(prefopt::index_t vocab, prefopt::token_id eos, prefopt::index_t positions,
                         double eos_bias)
      : v_(vocab),
        eos_(eos),
        positions_(positions),
        theta_(prefopt::vector_t<T>::Zero(positions * (vocab + 1) * vocab)) {
    for (prefopt::index_t r = 0; r < positions * (vocab + 1); ++r) {
      theta_(r * vocab + eos) = static_cast<T>(eos_bias);
    }
  }
  [[nodiscard]] prefopt::index_t vocab_size() const { return v_; }
  [[nodiscard]] prefopt::token_id eos() const { return eos_; }
  [[nodiscard]] prefopt::index_t num_parameters() const { return theta_.size(); }
  [[nodiscard]] Eigen::Ref<prefopt::vector_t<T>> parameters() { return theta_; }
  [[nodiscard]] Eigen::Ref<const prefopt::vector_t<T>> parameters() const { return theta_; }

  void logits(const prefopt::sequence_batch& b, Eigen::Ref<prefopt::row_matrix_t<T>> out) const {
    rows(b, [&](prefopt::index_t row, prefopt::index_t r) {
      out.row(row) = theta_.segment(r * v_, v_).transpose();
    });
  }
  void accumulate_logits_gradient(const prefopt::sequence_batch& b,
                                  Eigen::Ref<const prefopt::row_matrix_t<T>> d,
                                  Eigen::Ref<prefopt::vector_t<T>> g) const {
    rows(b, [&](prefopt::index_t row, prefopt::index_t r) {
      g.segment(r * v_, v_) += d.row(row).transpose();
    });
  }
  [[nodiscard]] decode_state start_decoding(prefopt::ragged_view<const prefopt::token_id> p) const {
    decode_state s;
    for (prefopt::index_t i = 0; i < p.num_sequences(); ++i) {
      const auto x = p.sequence(i);
      s.last.push_back(x.empty() ? v_ : x.back());
      s.position.push_back(0);
    }
    return s;
  }
  void next_logits(decode_state& s, std::span<const prefopt::index_t> live,
                   Eigen::Ref<prefopt::row_matrix_t<T>> out) const {
    for (std::size_t k = 0; k < live.size(); ++k) {
      const auto u = static_cast<std::size_t>(live[k]);
      out.row(static_cast<prefopt::index_t>(k)) =
          theta_.segment(row_of(s.position[u], s.last[u]) * v_, v_).transpose();
    }
  }
  void append(decode_state& s, std::span<const prefopt::index_t> live,
              std::span<const prefopt::token_id> tokens) const {
    for (std::size_t k = 0; k < live.size(); ++k) {
      const auto u = static_cast<std::size_t>(live[k]);
      s.last[u] = tokens[k];
      ++s.position[u];
    }
  }

 private:
  [[nodiscard]] prefopt::index_t row_of(prefopt::index_t pos, prefopt::index_t prev) const {
    return std::min(pos, positions_ - 1) * (v_ + 1) + prev;
  }
  template <class F>
  void rows(const prefopt::sequence_batch& b, F&& f) const {
    const prefopt::index_t base = b.responses.offsets.empty() ? 0 : b.responses.offsets.front();
    for (prefopt::index_t i = 0; i < b.size(); ++i) {
      const auto x = b.prompts.sequence(i);
      const auto y = b.responses.sequence(i);
      prefopt::index_t prev = x.empty() ? v_ : x.back();
      const prefopt::index_t row0 = b.responses.offsets[static_cast<std::size_t>(i)] - base;
      for (std::size_t t = 0; t < y.size(); ++t) {
        f(row0 + static_cast<prefopt::index_t>(t), row_of(static_cast<prefopt::index_t>(t), prev));
        prev = y[t];
      }
    }
  }

  prefopt::index_t v_;
  prefopt::token_id eos_;
  prefopt::index_t positions_;
  prefopt::vector_t<T> theta_;
};

static_assert(prefopt::SequenceModel<genericity_table_model<double>>);

/// One row: runs `solver` on `reference` twice for `steps` steps and checks the claims.
template <class Solver, class Model>
void genericity_row(const char* row, const Solver& solver, const Model& reference, long steps) {
  prefopt::test::class_task_fixture f;
  prefopt::generation_config gen;
  gen.max_new_tokens = 2;
  const auto problem = prefopt::make_sequence_problem(reference, f.judge, f.prompts(), gen);
  prefopt::run_options o;
  o.max_iterations = steps;
  const auto a = prefopt::run(solver, problem, o);
  const auto b = prefopt::run(solver, problem, o);
  const double before = prefopt::test::class_duality_gap(
      f.task, prefopt::test::exact_class_distribution(reference, f.task, f.prompts(), 2));
  const double after = prefopt::test::class_duality_gap(
      f.task, prefopt::test::exact_class_distribution(a.state.policy(), f.task, f.prompts(), 2));
  WARN(row << ": class gap " << before << " -> " << after << " in " << steps << " steps");
  CHECK(a.status == prefopt::run_status::completed);
  CHECK(a.iterations == steps);
  CHECK(after < before);
  CHECK(a.state.policy().parameters() == b.state.policy().parameters());
}

/// One HIR row: the instruction task (K = m = 5, prompts [k], one-token responses), 12 rounds;
/// the exact success rate must rise and two runs must be bitwise identical.
template <class Model>
void genericity_hir_row(const char* row, const Model& reference) {
  const prefopt::modular_sum_instruction_task task(5, 5);
  const std::vector<prefopt::index_t> offsets{0, 1, 2, 3, 4, 5};
  const std::vector<prefopt::token_id> tokens{0, 1, 2, 3, 4};
  const prefopt::ragged_view<const prefopt::token_id> prompts{offsets, tokens};
  prefopt::generation_config gen;
  gen.max_new_tokens = 1;
  const auto problem = prefopt::make_sequence_problem(reference, task, prompts, gen);
  prefopt::hir_trainer_config c;
  c.batch_size = 16;
  prefopt::run_options o;
  o.max_iterations = 12;
  const prefopt::hir_trainer solver(c);
  const auto a = prefopt::run(solver, problem, o);
  const auto b = prefopt::run(solver, problem, o);
  const double before = prefopt::test::hir_exact_success(reference, task, prompts, 1);
  const double after = prefopt::test::hir_exact_success(a.state.policy(), task, prompts, 1);
  WARN(row << ": success rate " << before << " -> " << after << " in 12 rounds");
  CHECK(a.status == prefopt::run_status::completed);
  CHECK(after > before);
  CHECK(a.state.policy().parameters() == b.state.policy().parameters());
}

prefopt::nash_md_pg genericity_nash() {
  prefopt::nash_md_pg_config c;
  c.beta = 0.05;
  c.mixture_coef = 0.125;
  c.batch_size = 256;
  c.optimizer.kind = prefopt::optimizer_kind::sgd;
  c.optimizer.learning_rate = 2.0;
  return prefopt::nash_md_pg(c);
}
template <class Solver>
Solver genericity_pair(double tau) {
  typename Solver::config_type c;
  c.tau = tau;
  c.batch_size = 128;
  c.optimizer.learning_rate = 0.02;
  return Solver(c);
}

}  // namespace

TEST_CASE(
    "Every generic preference trainer improves the class gap of every model type, "
    "deterministically") {
  using bigram_f = prefopt::test::bigram_model<float, false>;
  using bigram_d = prefopt::test::bigram_model<double, true>;
  using table_d = genericity_table_model<double>;
  const bigram_f bf(4, 4, 3, 1, 1.0);
  const bigram_d bd(4, 4, 3, 1, 1.0);
  const table_d td(4, 3, 2, 2.0);
  // The shipped transformer at the task's vocabulary (an empty prompt reads as eos).
  prefopt::transformer_config xc;
  xc.vocab_size = 4;
  xc.eos = 3;
  xc.max_length = 1 + 2;
  xc.d_model = 8;
  xc.num_layers = 1;
  xc.num_heads = 2;
  xc.mlp_hidden = 16;
  xc.init_scale = 0.5;
  xc.seed = 3;
  const prefopt::transformer<float> tf(xc);
  const auto nash = genericity_nash();
  const auto onpo = genericity_pair<prefopt::onpo_trainer>(0.0);
  const auto inpo = genericity_pair<prefopt::inpo_trainer>(0.1);
  // trainer x model: one line per row.
  genericity_row("nash_md_pg x bigram<float>", nash, bf, 60);
  genericity_row("nash_md_pg x bigram<double, linear head>", nash, bd, 60);
  genericity_row("nash_md_pg x table model (test-only)", nash, td, 60);
  genericity_row("nash_md_pg x transformer<float>", nash, tf, 60);
  genericity_row("onpo_trainer x bigram<float>", onpo, bf, 30);
  genericity_row("onpo_trainer x bigram<double, linear head>", onpo, bd, 30);
  genericity_row("onpo_trainer x table model (test-only)", onpo, td, 30);
  genericity_row("onpo_trainer x transformer<float>", onpo, tf, 30);
  genericity_row("inpo_trainer x bigram<float>", inpo, bf, 30);
  genericity_row("inpo_trainer x bigram<double, linear head>", inpo, bd, 30);
  genericity_row("inpo_trainer x table model (test-only)", inpo, td, 30);
  genericity_row("inpo_trainer x transformer<float>", inpo, tf, 30);
  // HIR trains on the instruction task (its own feedback type), V = 6.
  genericity_hir_row("hir_trainer x bigram<float>", bigram_f(6, 4, 5, 1, 1.0));
  genericity_hir_row("hir_trainer x bigram<double, linear head>", bigram_d(6, 4, 5, 1, 1.0));
  genericity_hir_row("hir_trainer x table model (test-only)", table_d(6, 5, 2, 0.0));
  auto hc = xc;
  hc.vocab_size = 6;
  hc.eos = 5;
  genericity_hir_row("hir_trainer x transformer<float>", prefopt::transformer<float>(hc));
}
