#pragma once
// prefopt-arena, evaluating runs: the reference points of a game (computed once per experiment),
// every diagnostic from one probability table of the evaluated policy per evaluation, and the
// run of one solver through `prefopt::run` with the history recorder.

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "config.hpp"
#include "prefopt/callbacks/history.hpp"
#include "prefopt/callbacks/progress.hpp"
#include "prefopt/diagnostics/divergence.hpp"
#include "prefopt/diagnostics/duality_gap.hpp"
#include "prefopt/diagnostics/equilibrium.hpp"
#include "prefopt/diagnostics/win_rate.hpp"
#include "prefopt/games/catalog.hpp"
#include "prefopt/io/atomic_file.hpp"
#include "prefopt/io/game_json.hpp"
#include "prefopt/io/json_parse.hpp"
#include "prefopt/solvers/common/run.hpp"
#include "prefopt/solvers/dpo_trainer.hpp"
#include "prefopt/solvers/hir.hpp"
#include "prefopt/solvers/nash/mirror_descent.hpp"
#include "prefopt/solvers/nash/onpo.hpp"
#include "prefopt/solvers/rlhf.hpp"

namespace prefopt::arena {

// ---------------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------------

/// What the evaluation of a game compares against, computed once per experiment.
struct game_reference_points {
  row_matrix_d equilibrium;      ///< pi*_tau (tau > 0) or an approximate tau = 0 equilibrium
  double equilibrium_gap = 0.0;  ///< its certified duality gap
  double kl_bound = 0.0;         ///< KL(pi, pi*_tau) <= gap / (2 tau); NaN at tau = 0
  bool unique = false;           ///< tau > 0: the equilibrium is unique (KL to it is reported)
  std::string method;            ///< how it was computed (`equilibrium::method()`)
};

inline game_reference_points solve_reference_points(const preference_game& game) {
  game_reference_points p;
  const equilibrium eq = game.tau() > 0.0 ? solve_regularised(game) : solve_unregularised(game);
  p.equilibrium = eq.probabilities;
  p.equilibrium_gap = eq.gap;
  p.kl_bound = eq.kl_bound;
  p.unique = game.tau() > 0.0;
  p.method = eq.method();
  return p;
}

inline constexpr const char* metric_names[] = {
    "duality_gap",     "exploitability",        "unregularised_gap",       "kl_to_equilibrium",
    "kl_to_reference", "win_rate_vs_reference", "win_rate_vs_equilibrium", "expected_length",
    "gold_reward"};

/// `sum_x rho(x) sum_y pi(y|x) table(x, y)` for a `[contexts, n]` probability table.
inline double expectation(const preference_game& game, const row_matrix_d& probs,
                          const row_matrix_d& table) {
  return game.context_weights().dot(probs.cwiseProduct(table).rowwise().sum());
}

/// The iterate a solver is judged by: the average for no-regret methods (self-play, ONPO), the
/// last iterate otherwise; as a `[contexts, n]` probability table.
template <class State>
row_matrix_d evaluated_policy(const State& state, bool average) {
  if constexpr (requires { state.average_probabilities(); }) {
    if (average) return state.average_probabilities();
  }
  return probability_table(state.policy());
}

/// Every diagnostic of a game run, from one probability table of the evaluated policy (the
/// order of `metric_names`; NaN where a metric does not apply). Not a template: the diagnostics
/// are compiled once, whatever the solver.
inline void evaluate_game_policy(const preference_game& game, const game_reference_points& points,
                                 const row_matrix_d& pi, std::vector<double>& out) {
  constexpr double none = std::numeric_limits<double>::quiet_NaN();
  if (!pi.allFinite()) {
    out.insert(out.end(), std::size(metric_names), none);
    return;
  }
  out.push_back(duality_gap(game, pi));
  out.push_back(exploitability(game, pi));
  out.push_back(unregularised_duality_gap(game, pi));
  out.push_back(points.unique ? kl_divergence(game, points.equilibrium, pi) : none);
  out.push_back(kl_to_reference(game, pi));
  out.push_back(win_rate(game, pi, game.reference()));
  out.push_back(win_rate(game, pi, points.equilibrium));
  out.push_back(game.has_lengths() ? expectation(game, pi, game.lengths()) : none);
  out.push_back(game.has_gold_rewards() ? expectation(game, pi, game.gold_rewards()) : none);
}

/// The metrics of a game run, as one `MetricGroup` for the history recorder.
struct game_metrics {
  const game_reference_points* points = nullptr;
  bool average = false;

  [[nodiscard]] std::vector<std::string> names() const {
    return {std::begin(metric_names), std::end(metric_names)};
  }
  template <class State>
  void evaluate(const preference_game& game, const State& state, std::vector<double>& out) const {
    evaluate_game_policy(game, *points, evaluated_policy(state, average), out);
  }
};

/// Success rate of a goal-task policy (HIR runs).
struct success_rate_metric {
  static constexpr const char* name = "success_rate";
  template <class State>
  double operator()(const goal_task& task, const State& state) const {
    return task.success_rate(state.policy());
  }
};

/// The outcome of one (solver, seed) run.
struct run_record {
  run_history history;
  std::string status;
  std::string message;
  double seconds = 0.0;
};

struct run_settings {
  index_t iterations = 0;
  index_t eval_every = 0;
  bool show_progress = false;  ///< a progress bar (on a terminal)
  std::string label;
  bool validate_only = false;  ///< read and check the solver's entry, build it, run nothing
};

/// The progress display of a run when it is asked for, nothing otherwise: a run flag, so that
/// each solver instantiates `prefopt::run` once.
class optional_progress {
 public:
  explicit optional_progress(const run_settings& settings) {
    if (settings.show_progress) {
      fmt::print(stderr, "{}\n", settings.label);
      bar_.emplace(std::max<index_t>(1, settings.iterations / 10));
    }
  }
  template <class Event>
  void on_step(const Event& e) {
    if (bar_) bar_->on_step(e);
  }
  template <class Event>
  void on_end(const Event& e) {
    if (bar_) bar_->on_end(e);
  }

 private:
  std::optional<progress<>> bar_;
};

/// Runs a solver through `prefopt::run` with the history recorder (and a progress display).
template <class S, class Problem, class Recorder>
run_record execute(const S& solver, const Problem& problem, Recorder recorder,
                   const run_settings& settings) {
  const auto start = std::chrono::steady_clock::now();
  optional_progress bar(settings);
  const auto result = run(solver, problem, run_options{settings.iterations}, recorder, bar);
  run_record rec;
  rec.history = recorder.history();
  rec.status = to_string(result.status);
  rec.message = result.message;
  rec.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return rec;
}

template <class S>
run_record execute_on_game(const S& solver, const preference_game& game,
                           const game_reference_points& points, bool average,
                           const run_settings& settings) {
  history_recorder recorder(settings.eval_every, /*snapshots=*/false,
                            game_metrics{&points, average});
  return execute(solver, game, std::move(recorder), settings);
}

}  // namespace prefopt::arena
