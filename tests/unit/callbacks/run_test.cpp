#include "prefopt/solvers/common/run.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <string>

#include "prefopt/games/catalog.hpp"
#include "prefopt/solvers/nash/mirror_descent.hpp"

using namespace prefopt;

namespace {
/// A non-tabular solver (gradient descent on (x - 3)^2): the run loop must not assume a game.
struct quadratic_problem {
  double target = 3.0;
};
struct scalar_state {
  double x = 0.0;
};
struct scalar_stats {
  double loss;
};
struct gradient_descent {
  double lr = 0.25;
  scalar_state init(const quadratic_problem&) const { return {}; }
  scalar_stats step(const quadratic_problem& p, scalar_state& s) const {
    s.x -= lr * 2 * (s.x - p.target);
    return {(s.x - p.target) * (s.x - p.target) *
            (lr > 1 ? std::numeric_limits<double>::infinity() : 1.0)};
  }
};

/// A tabular "solver" that writes a NaN into one logit at step 3.
struct nan_solver {
  tabular_game_state init(const preference_game& g) const {
    return tabular_game_state(row_matrix_d::Zero(g.num_contexts(), g.num_actions()), false, 0);
  }
  tabular_step_stats step(const preference_game&, tabular_game_state& s) const {
    s.advance();
    if (s.iteration() == 3) s.mutable_logits()(1, 2) = std::numeric_limits<double>::quiet_NaN();
    return {s.iteration(), 1.0};
  }
};

struct counting_callback {
  int begins = 0, steps = 0, ends = 0;
  prefopt::index_t stop_at = -1;
  template <class E>
  void on_begin(const E&) {
    ++begins;
  }
  template <class E>
  bool on_step(const E& e) {
    ++steps;
    return e.iteration == stop_at;
  }
  template <class E>
  void on_end(const E&) {
    ++ends;
  }
};

struct stop_before_start {
  template <class E>
  bool on_begin(const E&) {
    return true;
  }
};
}  // namespace

TEST_CASE("run takes max_iterations steps and calls every hook of every callback") {
  counting_callback a, b;
  const auto result = run(gradient_descent{}, quadratic_problem{}, {.max_iterations = 20}, a, b);
  CHECK(result.status == run_status::completed);
  CHECK(result.iterations == 20);
  CHECK(result.state.x == Approx(3.0).margin(1e-5));
  CHECK(a.begins == 1);
  CHECK(a.steps == 20);
  CHECK(a.ends == 1);
  CHECK(b.steps == 20);
  CHECK(result.message.empty());
}

TEST_CASE("A callback returning true stops the run after that step; the others still see on_end") {
  counting_callback a, b;
  b.stop_at = 7;
  const auto result = run(gradient_descent{}, quadratic_problem{}, {.max_iterations = 20}, a, b);
  CHECK(result.status == run_status::stopped);
  CHECK(result.iterations == 7);
  CHECK(a.steps == 7);
  CHECK(a.ends == 1);
  CHECK(result.message.find("callback 1") != std::string::npos);
  const auto early =
      run(gradient_descent{}, quadratic_problem{}, {.max_iterations = 20}, stop_before_start{}, a);
  CHECK(early.status == run_status::stopped);
  CHECK(early.iterations == 0);
}

TEST_CASE("A run whose loss becomes non-finite stops with status diverged and does not throw") {
  const auto result = run(gradient_descent{2.0}, quadratic_problem{}, {.max_iterations = 10});
  CHECK(result.status == run_status::diverged);
  CHECK(result.iterations == 1);
  CHECK(result.message.find("loss is inf") != std::string::npos);
}

TEST_CASE("A policy that becomes non-finite stops with diverged, naming step, context and action") {
  const auto game = mixture_game({efron_dice_game(), rock_paper_scissors_game()});
  const auto result = run(nan_solver{}, game, {.max_iterations = 10});
  CHECK(result.status == run_status::diverged);
  CHECK(result.iterations == 3);
  CHECK(result.message.find("step 3") != std::string::npos);
  CHECK(result.message.find("context 1, action 2") != std::string::npos);
  CHECK(std::string(to_string(result.status)) == "diverged");
}

TEST_CASE("run_from continues a run from a returned state") {
  const auto game = efron_dice_game(preference_game::uniform(3), 0.1);
  const nash_md<> solver;
  auto first = run(solver, game, {.max_iterations = 5});
  const auto second = run_from(solver, game, std::move(first.state), {.max_iterations = 5});
  const auto whole = run(solver, game, {.max_iterations = 10});
  CHECK(second.state.iteration() == 10);
  CHECK(second.state.policy().logits() == whole.state.policy().logits());
  CHECK_THROWS_AS(run(solver, game, {.max_iterations = -1}), invalid_argument);
}
