#pragma once
// prefopt-arena, running an experiment: every (solver, seed) job on a pool of threads, the
// results JSON (written atomically; the "results" part is a pure function of the config) and the
// summary table.

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
#include "evaluation.hpp"
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
#include "solvers.hpp"

namespace prefopt::arena {

// ---------------------------------------------------------------------------------------------
// Running everything and writing the results
// ---------------------------------------------------------------------------------------------

struct arena_results {
  json results;                               ///< deterministic part
  json timing;                                ///< wall times
  std::vector<std::vector<run_record>> runs;  ///< [solver][seed]
};

/// `value` as JSON; non-finite values become null.
inline json number_or_null(double value) {
  return std::isfinite(value) ? json(value) : json();
}

inline arena_results run_experiment(const experiment& e, const arena_options& options) {
  // Every solver entry was validated by parse_config; the memory is checked before anything
  // large is allocated.
  const std::size_t n_solvers = e.solvers.size(), n_seeds = e.seeds.size();
  const std::size_t jobs = n_solvers * n_seeds;
  const unsigned threads =
      std::max(1U, std::min<unsigned>(options.threads, static_cast<unsigned>(jobs)));
  check_memory(e, threads, options.memory_limit_gib);
  std::optional<game_reference_points> points;
  if (e.game) points = solve_reference_points(*e.game);
  const game_reference_points no_points;  // goal tasks have none

  arena_results out;
  out.runs.assign(n_solvers, std::vector<run_record>(n_seeds));
  const bool bars = options.progress && threads == 1 && detail::is_terminal(stderr);
  std::atomic<std::size_t> next{0};
  std::mutex print_mutex;
  std::vector<std::size_t> seeds_done(n_solvers, 0);  // under print_mutex
  std::exception_ptr failure;
  auto worker = [&] {
    for (std::size_t job = next++; job < jobs; job = next++) {
      const std::size_t s = job / n_seeds, k = job % n_seeds;
      const auto& spec = e.solvers[s];
      run_settings settings{e.iterations, e.eval_every, bars,
                            fmt::format("{} (seed {})", spec.name, e.seeds[k])};
      try {
        out.runs[s][k] = run_solver(e, spec, e.seeds[k], points ? *points : no_points, settings);
      } catch (...) {
        const std::lock_guard lock(print_mutex);
        if (!failure) failure = std::current_exception();
        return;
      }
      if (options.progress && !bars) {  // one line per solver where a bar cannot be drawn
        const std::lock_guard lock(print_mutex);
        if (++seeds_done[s] == n_seeds) {
          std::string status = "completed";
          double seconds = 0.0;
          for (const run_record& rec : out.runs[s]) {
            if (rec.status != "completed" && status == "completed") status = rec.status;
            seconds += rec.seconds;
          }
          fmt::print(stderr, "done: {}: {} ({} seed{}) in {:.2f}s\n", spec.name, status, n_seeds,
                     n_seeds == 1 ? "" : "s", seconds);
        }
      }
    }
  };
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  if (failure) std::rethrow_exception(failure);

  // Assemble the results (deterministic) and the timing (not).
  json& res = out.results;
  res["prefopt_version"] = version;
  res["config"] = e.config;
  json problem;
  if (e.game) {
    const auto& g = *e.game;
    problem = {{"kind", "game"},
               {"num_contexts", g.num_contexts()},
               {"num_actions", g.num_actions()},
               {"tau", g.tau()}};
    json eq = json::array();
    for (index_t x = 0; x < points->equilibrium.rows(); ++x) {
      json row = json::array();
      for (index_t y = 0; y < points->equilibrium.cols(); ++y) {
        row.push_back(points->equilibrium(x, y));
      }
      eq.push_back(row);
    }
    problem["equilibrium"] = {{"probabilities", eq},
                              {"duality_gap", points->equilibrium_gap},
                              {"kl_bound", number_or_null(points->kl_bound)},
                              {"unique", points->unique},
                              {"method", points->method}};
    auto table = [](const row_matrix_d& m) {
      json rows = json::array();
      for (index_t x = 0; x < m.rows(); ++x) {
        json row = json::array();
        for (index_t y = 0; y < m.cols(); ++y) row.push_back(m(x, y));
        rows.push_back(row);
      }
      return rows;
    };
    problem["reference"] = table(g.reference());
    problem["context_weights"] = std::vector<double>(
        g.context_weights().data(), g.context_weights().data() + g.context_weights().size());
    if (g.has_lengths()) {
      problem["lengths"] = table(g.lengths());
      problem["reference_expected_length"] = expectation(g, g.reference(), g.lengths());
    }
    if (g.has_gold_rewards()) {
      problem["gold_rewards"] = table(g.gold_rewards());
      problem["reference_gold_reward"] = expectation(g, g.reference(), g.gold_rewards());
    }
  } else {
    const auto& t = *e.task;
    problem = {{"kind", "goal_task"},
               {"num_goals", t.num_goals()},
               {"num_responses", t.num_responses()},
               {"reference_success_rate", t.success_rate(t.reference_policy())}};
  }
  res["problem"] = problem;
  res["solvers"] = json::array();
  json timing_solvers = json::array();
  double total_seconds = 0.0;
  for (std::size_t s = 0; s < n_solvers; ++s) {
    const auto& spec = e.solvers[s];
    json solver{{"name", spec.name},
                {"kind", spec.kind},
                {"config", spec.params},
                {"evaluates", judged_by_average(spec.kind) ? "average_iterate" : "last_iterate"}};
    json runs = json::array(), timing_runs = json::array();
    std::vector<std::string> names;
    std::vector<double> final_sum;
    std::vector<int> final_count;
    for (std::size_t k = 0; k < n_seeds; ++k) {
      const run_record& rec = out.runs[s][k];
      const run_history& h = rec.history;
      json metrics = json::object();
      if (names.empty()) {
        names = h.metric_names;
        final_sum.assign(names.size(), 0.0);
        final_count.assign(names.size(), 0);
      }
      for (std::size_t m = 0; m < h.metric_names.size(); ++m) {
        json curve = json::array();
        bool defined = false;
        for (const auto& v : h.values) {
          curve.push_back(number_or_null(v[m]));
          defined = defined || std::isfinite(v[m]);
        }
        if (defined) metrics[h.metric_names[m]] = curve;
        if (!h.values.empty() && std::isfinite(h.values.back()[m])) {
          final_sum[m] += h.values.back()[m];
          ++final_count[m];
        }
      }
      runs.push_back({{"seed", e.seeds[k]},
                      {"status", rec.status},
                      {"message", rec.message},
                      {"iterations", h.iterations},
                      {"metrics", metrics}});
      timing_runs.push_back(
          {{"seed", e.seeds[k]}, {"seconds", rec.seconds}, {"curve_seconds", h.seconds}});
      total_seconds += rec.seconds;
    }
    json summary = json::object();
    for (std::size_t m = 0; m < names.size(); ++m) {
      if (final_count[m] > 0) summary[names[m]] = final_sum[m] / final_count[m];
    }
    solver["summary"] = summary;
    solver["runs"] = runs;
    res["solvers"].push_back(solver);
    timing_solvers.push_back({{"name", spec.name}, {"runs", timing_runs}});
  }
  out.timing = {
      {"total_seconds", total_seconds}, {"threads", threads}, {"solvers", timing_solvers}};
  return out;
}

/// The results document: `{"results": ..., "timing": ...}`.
inline json results_document(const arena_results& r) {
  return {{"results", r.results}, {"timing", r.timing}};
}

/// The results file (`results_document`), written atomically.
inline void write_results(const std::filesystem::path& path, const arena_results& r) {
  io::write_file_atomically(path, results_document(r).dump(1) + "\n");
}

/// The summary table: one row per solver, final values averaged over seeds.
inline std::string summary_table(const experiment& e, const arena_results& r) {
  std::string out;
  auto cell = [](const json& summary, const char* key) -> std::string {
    if (!summary.contains(key)) return fmt::format("{:>11}", "-");
    return fmt::format("{:>11.4g}", summary[key].get<double>());
  };
  const json& solvers = r.results["solvers"];
  if (e.game) {
    out += fmt::format("{:<22} {:>9} {:>11} {:>11} {:>11} {:>11} {:>11} {:>11} {:>11} {:>8}\n",
                       "solver", "status", "gap", "gap(tau=0)", "KL(pi*,pi)", "KL(pi,mu)",
                       "win vs mu", "win vs pi*", "E[length]", "time/s");
  } else {
    out += fmt::format("{:<22} {:>9} {:>11} {:>8}\n", "solver", "status", "success", "time/s");
  }
  for (std::size_t s = 0; s < solvers.size(); ++s) {
    const json& sv = solvers[s];
    std::string status = "completed";
    double seconds = 0.0;
    for (std::size_t k = 0; k < r.runs[s].size(); ++k) {
      if (r.runs[s][k].status != "completed") status = r.runs[s][k].status;
      seconds += r.runs[s][k].seconds;
    }
    const json& sum = sv["summary"];
    const std::string name = sv["name"].get<std::string>();
    if (e.game) {
      out += fmt::format("{:<22} {:>9} {} {} {} {} {} {} {} {:>8.2f}\n", name, status,
                         cell(sum, "duality_gap"), cell(sum, "unregularised_gap"),
                         cell(sum, "kl_to_equilibrium"), cell(sum, "kl_to_reference"),
                         cell(sum, "win_rate_vs_reference"), cell(sum, "win_rate_vs_equilibrium"),
                         cell(sum, "expected_length"), seconds);
    } else {
      out += fmt::format("{:<22} {:>9} {} {:>8.2f}\n", name, status, cell(sum, "success_rate"),
                         seconds);
    }
  }
  return out;
}

}  // namespace prefopt::arena
