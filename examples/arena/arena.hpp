#pragma once
// prefopt-arena: every solver of prefopt on the same tabular problem.
//
// Reads a JSON experiment config (README "Experiment runner" documents the format), builds the
// problem (a preference game from the catalog, a file or inline JSON; or a goal-conditioned task
// for HIR), runs each configured solver for each seed through prefopt's run loop, evaluates the
// iterates every `eval_every` steps with the diagnostics, and writes a JSON results file
// atomically. Results are a pure function of the config: the same config and seeds give a
// byte-identical "results" part whatever the thread count; wall times live in "timing".

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
#include "prefopt/solvers/direct_alignment.hpp"
#include "prefopt/solvers/hir.hpp"
#include "prefopt/solvers/nash/mirror_descent.hpp"
#include "prefopt/solvers/nash/onpo.hpp"
#include "prefopt/solvers/rlhf.hpp"

namespace prefopt::arena {

using json = nlohmann::json;

inline constexpr const char* version = "0.1.0";

// ---------------------------------------------------------------------------------------------
// Reading the config: every error names the JSON pointer of the offending value.
// ---------------------------------------------------------------------------------------------

[[noreturn]] inline void config_error(const std::string& path, const std::string& what) {
  PREFOPT_THROW(parse_error, "config ", path.empty() ? "/" : path, ": ", what);
}

/// A JSON object whose keys are checked against the ones actually read (typos are errors).
class object_reader {
 public:
  object_reader(const json& j, std::string path) : j_(j), path_(std::move(path)) {
    if (!j_.is_object()) config_error(path_, "expected an object, got " + j_.dump());
  }

  [[nodiscard]] const std::string& path() const noexcept { return path_; }
  [[nodiscard]] bool has(const std::string& key) {
    read_.insert(key);
    return j_.contains(key);
  }
  [[nodiscard]] std::string child(const std::string& key) const { return path_ + "/" + key; }
  [[nodiscard]] const json& at(const std::string& key) {
    read_.insert(key);
    if (!j_.contains(key)) config_error(child(key), "missing");
    return j_.at(key);
  }

  double number(const std::string& key, double fallback, double lo, double hi) {
    if (!has(key)) return fallback;
    const json& v = j_.at(key);
    if (!v.is_number()) config_error(child(key), "expected a number, got " + v.dump());
    const double x = v.get<double>();
    if (!(x >= lo && x <= hi)) {
      config_error(child(key), fmt::format("{} is out of range, expected a number in [{}, {}]",
                                           v.dump(), lo, hi));
    }
    return x;
  }
  index integer(const std::string& key, index fallback, index lo, index hi) {
    if (!has(key)) return fallback;
    const json& v = j_.at(key);
    if (!v.is_number_integer()) config_error(child(key), "expected an integer, got " + v.dump());
    const auto x = v.get<long long>();
    if (x < lo || x > hi) {
      config_error(child(key),
                   fmt::format("{} is out of range, expected an integer in [{}, {}]", x, lo, hi));
    }
    return static_cast<index>(x);
  }
  bool boolean(const std::string& key, bool fallback) {
    if (!has(key)) return fallback;
    const json& v = j_.at(key);
    if (!v.is_boolean()) config_error(child(key), "expected true or false, got " + v.dump());
    return v.get<bool>();
  }
  std::string string(const std::string& key, const std::string& fallback,
                     const std::vector<std::string>& allowed = {}) {
    if (!has(key)) return fallback;
    const json& v = j_.at(key);
    if (!v.is_string()) config_error(child(key), "expected a string, got " + v.dump());
    auto s = v.get<std::string>();
    if (!allowed.empty() && std::find(allowed.begin(), allowed.end(), s) == allowed.end()) {
      config_error(child(key), fmt::format("\"{}\" is not one of: {}", s, join(allowed)));
    }
    return s;
  }
  vector_d vector(const std::string& key) {
    const json& v = at(key);
    if (!v.is_array() || v.empty()) {
      config_error(child(key), "expected a non-empty array of numbers, got " + v.dump());
    }
    vector_d out(static_cast<index>(v.size()));
    for (std::size_t i = 0; i < v.size(); ++i) {
      if (!v[i].is_number()) {
        config_error(child(key) + "/" + std::to_string(i), "expected a number, got " + v[i].dump());
      }
      out[static_cast<index>(i)] = v[i].get<double>();
    }
    return out;
  }

  /// Throws on any key that was never asked for.
  void reject_unknown_keys() const {
    std::vector<std::string> known(read_.begin(), read_.end());
    for (const auto& item : j_.items()) {
      if (!read_.contains(item.key())) {
        config_error(child(item.key()),
                     fmt::format("unknown key (expected one of: {})", join(known)));
      }
    }
  }

 private:
  static std::string join(const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
    return s;
  }

  const json& j_;
  std::string path_;
  std::set<std::string> read_;
};

/// A solver entry of the config; its hyperparameters are read when the solver is built.
struct solver_spec {
  std::string name;
  std::string kind;
  json params;
  std::string path;
};

/// The parsed experiment.
struct experiment {
  std::string name;
  json config;  ///< the config as given (echoed into the results)
  std::optional<preference_game> game;
  std::optional<goal_task> task;
  std::vector<std::uint64_t> seeds;
  index iterations = 0;
  index eval_every = 0;
  std::vector<solver_spec> solvers;
};

inline const std::vector<std::string> game_solver_kinds = {
    "nash_md",  "omd", "self_play", "onpo",  "onpo_regularised",
    "rlhf_ppo", "dpo", "ipo",       "simpo", "slic"};
inline const std::vector<std::string> task_solver_kinds = {"hir"};

// Sizes are bounded before anything is allocated (README "Experiment runner", "Limits").
inline constexpr index max_catalog_actions = 4096;       ///< n of a catalog game
inline constexpr index max_condorcet_voters = 512;       ///< n of condorcet_voters (n^3 work)
inline constexpr index max_task_entries = 1L << 24;      ///< goals x responses of a goal task
inline constexpr index max_dataset_pairs = 10'000'000;   ///< dataset_size, reward_pairs
inline constexpr double default_memory_limit_gib = 4.0;  ///< `--memory-limit`

/// `r.vector(key)` with at most `max_catalog_actions` entries (checked before the game is built).
inline vector_d action_vector(object_reader& r, const std::string& key) {
  vector_d v = r.vector(key);
  if (v.size() > max_catalog_actions) {
    config_error(r.child(key), fmt::format("has {} entries, more than the limit of {} responses",
                                           v.size(), max_catalog_actions));
  }
  return v;
}

inline preference_game catalog_game(object_reader& r) {
  const std::string name = r.string(
      "catalog", "",
      {"efron_dice", "rock_paper_scissors", "biased_rock_paper_scissors", "epsilon_population",
       "condorcet_voters", "random_intransitive", "bradley_terry", "length_biased_bradley_terry"});
  if (name == "efron_dice") return efron_dice_game();
  if (name == "rock_paper_scissors") return rock_paper_scissors_game();
  if (name == "biased_rock_paper_scissors") {
    return biased_rock_paper_scissors_game(r.number("p01", 0.9, 0, 1), r.number("p12", 0.7, 0, 1),
                                           r.number("p20", 0.6, 0, 1));
  }
  if (name == "epsilon_population") return epsilon_population_game(r.number("eps", 0.1, -1, 1));
  if (name == "condorcet_voters") {
    return condorcet_voters_game(r.integer("n", 3, 3, max_condorcet_voters));
  }
  if (name == "random_intransitive") {
    return random_intransitive_game(r.integer("n", 10, 2, max_catalog_actions),
                                    static_cast<std::uint64_t>(r.integer("seed", 0, 0, 1L << 40)));
  }
  if (name == "bradley_terry") return bradley_terry_game(action_vector(r, "rewards"));
  // Length-biased Bradley-Terry: P(i > j) = sigma(q_i - q_j + alpha (len_i - len_j)); the gold
  // reward is the quality q alone, so length is what the raters reward beyond quality.
  const vector_d quality = action_vector(r, "quality");
  const vector_d lengths = action_vector(r, "lengths");
  if (lengths.size() != quality.size()) {
    config_error(r.child("lengths"), fmt::format("has {} entries, expected one per response ({})",
                                                 lengths.size(), quality.size()));
  }
  const double alpha = r.number("length_bias", 0.05, -10, 10);
  return bradley_terry_game(quality + alpha * lengths)
      .with_lengths(row_matrix_d(lengths.transpose()))
      .with_gold_rewards(row_matrix_d(quality.transpose()));
}

/// Builds the game of `/game` (catalog entry, file, or inline JSON) with its overrides.
inline preference_game read_game(const json& j, const std::filesystem::path& base) {
  object_reader r(j, "/game");
  preference_game game = [&] {
    if (r.has("catalog")) return catalog_game(r);
    if (r.has("file")) {
      const std::filesystem::path file = base / r.string("file", "");
      try {
        return io::read_game_json(file);
      } catch (const error& e) {
        config_error(r.child("file"), e.what());
      }
    }
    if (r.has("inline")) {
      try {
        return io::game_from_json(r.at("inline"));
      } catch (const error& e) {
        config_error(r.child("inline"), e.what());
      }
    }
    config_error("/game", "expected one of the keys \"catalog\", \"file\" or \"inline\"");
  }();
  if (r.has("reference")) {
    const json& ref = r.at("reference");
    row_matrix_d mu(game.num_contexts(), game.num_actions());
    if (ref.is_string() && ref.get<std::string>() == "uniform") {
      mu.setConstant(1.0 / static_cast<double>(game.num_actions()));
    } else if (ref.is_object()) {
      object_reader rr(ref, r.child("reference"));
      const auto seed = static_cast<std::uint64_t>(rr.integer("random_seed", 0, 0, 1L << 40));
      rr.reject_unknown_keys();
      for (index x = 0; x < mu.rows(); ++x) {
        mu.row(x) = random_reference(game.num_actions(), seed, static_cast<std::uint64_t>(x) + 1)
                        .transpose();
      }
    } else {
      const vector_d v = r.vector("reference");
      if (v.size() != game.num_actions()) {
        config_error(r.child("reference"),
                     fmt::format("has {} entries, expected {}", v.size(), game.num_actions()));
      }
      mu.rowwise() = v.transpose();
    }
    try {
      game = game.with_reference(std::move(mu));
    } catch (const error& e) {
      config_error(r.child("reference"), e.what());
    }
  }
  if (r.has("tau")) game = game.with_tau(r.number("tau", 0.0, 0.0, 1e6));
  r.reject_unknown_keys();
  return game;
}

inline goal_task read_task(const json& j) {
  object_reader r(j, "/task");
  r.string("kind", "goal", {"goal"});
  const index responses = r.integer("responses", 400, 2, 1'000'000);
  const index goals = r.integer("goals", 50, 2, responses);
  const double concentration = r.number("concentration", 1.0, 0.0, 100.0);
  const auto seed = static_cast<std::uint64_t>(r.integer("seed", 0, 0, 1L << 40));
  r.reject_unknown_keys();
  if (goals > max_task_entries / responses) {
    config_error(r.child("goals"),
                 fmt::format("{} goals x {} responses is more than the limit of {} policy entries",
                             goals, responses, max_task_entries));
  }
  return goal_task::random(responses, goals, concentration, seed);
}

inline void validate_solvers(const experiment& e);

/// Parses a config; relative file paths resolve against `base` (the config's folder). Every
/// solver entry is validated here too (keys, types, ranges), before any equilibrium is solved or
/// any run starts.
inline experiment parse_config(const json& j, const std::filesystem::path& base) {
  object_reader r(j, "");
  experiment e;
  e.config = j;
  e.name = r.string("name", "experiment");
  const bool has_game = r.has("game"), has_task = r.has("task");
  if (has_game == has_task) config_error("/", "expected exactly one of \"game\" and \"task\"");
  if (has_game) e.game = read_game(r.at("game"), base);
  if (has_task) e.task = read_task(r.at("task"));
  e.iterations = r.integer("iterations", 1000, 1, 100'000'000);
  e.eval_every = r.integer("eval_every", std::max<index>(1, e.iterations / 100), 1, e.iterations);
  if (r.has("seeds")) {
    const json& s = r.at("seeds");
    if (!s.is_array() || s.empty()) config_error("/seeds", "expected a non-empty array");
    for (std::size_t i = 0; i < s.size(); ++i) {
      if (!s[i].is_number_unsigned()) {
        config_error("/seeds/" + std::to_string(i),
                     "expected a non-negative integer, got " + s[i].dump());
      }
      e.seeds.push_back(s[i].get<std::uint64_t>());
    }
  } else {
    e.seeds = {0};
  }
  const json& solvers = r.at("solvers");
  if (!solvers.is_array() || solvers.empty()) {
    config_error("/solvers", "expected a non-empty array of solver objects");
  }
  const auto& kinds = has_game ? game_solver_kinds : task_solver_kinds;
  std::set<std::string> names;
  for (std::size_t i = 0; i < solvers.size(); ++i) {
    const std::string path = "/solvers/" + std::to_string(i);
    object_reader sr(solvers[i], path);
    solver_spec spec;
    spec.kind = sr.string("kind", "", kinds);
    if (spec.kind.empty()) config_error(path + "/kind", "missing");
    spec.name = sr.string("name", spec.kind);
    if (!names.insert(spec.name).second) {
      config_error(path + "/name", "\"" + spec.name + "\" is used by another solver");
    }
    spec.params = solvers[i];
    spec.path = path;
    e.solvers.push_back(std::move(spec));
  }
  r.reject_unknown_keys();
  validate_solvers(e);
  return e;
}

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
  index iterations = 0;
  index eval_every = 0;
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
      bar_.emplace(std::max<index>(1, settings.iterations / 10));
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

// ---------------------------------------------------------------------------------------------
// Building solvers from their config entries
// ---------------------------------------------------------------------------------------------

/// Which iterate a solver kind is judged by.
inline bool judged_by_average(const std::string& kind) {
  return kind == "self_play" || kind == "onpo" || kind == "onpo_regularised";
}

inline optimizer_config read_optimizer(object_reader& r, double default_lr) {
  optimizer_config o;
  o.kind = r.string("optimizer", "adam", {"adam", "sgd"}) == "sgd" ? optimizer_kind::sgd
                                                                   : optimizer_kind::adam;
  o.learning_rate = r.number("learning_rate", default_lr, 1e-12, 1e6);
  return o;
}

/// Runs one solver of a game experiment with one seed.
inline run_record run_game_solver(const experiment& e, const solver_spec& spec, std::uint64_t seed,
                                  const game_reference_points& points,
                                  const run_settings& settings) {
  const preference_game& game = *e.game;
  object_reader r(spec.params, spec.path);
  (void)r.has("name");
  (void)r.has("kind");
  const bool average = judged_by_average(spec.kind);
  const double tau = game.tau();
  auto run_it = [&](const auto& solver) {
    r.reject_unknown_keys();
    if (settings.validate_only) return run_record{};
    return execute_on_game(solver, game, points, average, settings);
  };

  // Mirror-descent family: schedule x payoff chosen at compile time.
  auto with_payoff = [&](auto&& f) {
    const std::string payoff = r.string("payoff", "exact", {"exact", "sampled"});
    if (payoff == "exact") return f(exact_payoff{});
    sampled_payoff p;
    p.samples = r.integer("samples", 16, 1, 1'000'000);
    p.seed = seed;
    return f(p);
  };
  // First iterate: the reference mu (default of the regularised methods) or uniform (default of
  // the tau = 0 methods, whose theory starts there).
  auto initial = [&](const char* fallback) {
    return r.string("initial", fallback, {"reference", "uniform"}) == "reference"
               ? initial_policy::reference()
               : initial_policy::uniform();
  };
  if (spec.kind == "nash_md" || spec.kind == "omd") {
    if (tau <= 0.0) config_error(spec.path, spec.kind + " needs a game with tau > 0");
    const std::string schedule = r.string("schedule", "theory", {"theory", "constant"});
    const initial_policy start = initial("reference");
    return with_payoff([&](auto payoff) {
      using payoff_t = decltype(payoff);
      if (schedule == "theory") {
        if (spec.kind == "nash_md") {
          return run_it(nash_md<theory_step, payoff_t>({}, payoff, start));
        }
        return run_it(omd<theory_step, payoff_t>({}, payoff, start));
      }
      const constant_step eta(r.number("eta", 1.0 / tau, 1e-12, 1.0 / tau));
      if (spec.kind == "nash_md") {
        return run_it(nash_md<constant_step, payoff_t>(eta, payoff, start));
      }
      return run_it(omd<constant_step, payoff_t>(eta, payoff, start));
    });
  }
  if (spec.kind == "self_play") {
    const double d = std::log(static_cast<double>(game.num_actions()));
    const double eta =
        r.number("eta", std::sqrt(d / static_cast<double>(e.iterations)), 1e-12, 1e6);
    const initial_policy start = initial("uniform");
    return with_payoff([&](auto payoff) {
      return run_it(
          self_play_mwu<constant_step, decltype(payoff)>(constant_step(eta), payoff, start));
    });
  }
  if (spec.kind == "onpo" || spec.kind == "onpo_regularised") {
    const double eta = r.number("eta", 0.5, 1e-12, 1e6);
    const initial_policy start = initial("uniform");
    return with_payoff([&](auto payoff) {
      using payoff_t = decltype(payoff);
      if (spec.kind == "onpo") return run_it(onpo<payoff_t>(constant_step(eta), payoff, start));
      if (tau <= 0.0) config_error(spec.path, "onpo_regularised needs a game with tau > 0");
      return run_it(regularised_onpo<payoff_t>(constant_step(eta), payoff, start));
    });
  }
  if (spec.kind == "rlhf_ppo") {
    rlhf_ppo_config c;
    c.tau = r.number("kl_coefficient", tau > 0.0 ? tau : 0.1, 1e-9, 1e6);
    c.control = r.string("kl_control", "fixed", {"fixed", "adaptive"}) == "adaptive"
                    ? kl_control::adaptive
                    : kl_control::fixed;
    c.kl_target = r.number("kl_target", c.kl_target, 1e-12, 1e6);
    c.kl_horizon = r.number("kl_horizon", c.kl_horizon, 1e-12, 1e12);
    c.batch_size = r.integer("batch_size", c.batch_size, 2, 1'000'000);
    c.minibatch_size =
        r.integer("minibatch_size", std::min(c.minibatch_size, c.batch_size), 1, c.batch_size);
    c.epochs = r.integer("epochs", c.epochs, 1, 1000);
    c.eps_clip = r.number("eps_clip", c.eps_clip, 1e-6, 0.999);
    c.reward.pairs = r.integer("reward_pairs", c.reward.pairs, 1, max_dataset_pairs);
    c.reward.iterations = r.integer("reward_iterations", c.reward.iterations, 1, 1'000'000);
    c.optimizer = read_optimizer(r, c.optimizer.learning_rate);
    c.seed = seed;
    return run_it(tabular_rlhf_ppo(c));
  }
  // The direct-alignment family.
  direct_alignment_config c;
  c.loss.beta_dpo = r.number("beta_dpo", tau > 0.0 ? tau : 0.1, 1e-9, 1e6);
  c.loss.length_average = r.boolean("length_average", false);
  c.loss.gamma_simpo = r.number("gamma_simpo", 0.0, -1e6, 1e6);
  c.source = r.string("source", "offline", {"offline", "online"}) == "online"
                 ? pair_source::online
                 : pair_source::offline;
  c.dataset_size = r.integer("dataset_size", c.dataset_size, 1, max_dataset_pairs);
  c.batch_size = r.integer("batch_size", c.batch_size, 1, 1'000'000);
  c.optimizer = read_optimizer(r, c.optimizer.learning_rate);
  c.seed = seed;
  if (spec.kind == "dpo") return run_it(tabular_dpo(c));
  if (spec.kind == "ipo") return run_it(tabular_ipo(c));
  if (spec.kind == "simpo") return run_it(tabular_simpo(c));
  return run_it(tabular_slic(c));
}

/// Runs one solver of a goal-task experiment (HIR and its baselines) with one seed.
inline run_record run_task_solver(const experiment& e, const solver_spec& spec, std::uint64_t seed,
                                  const run_settings& settings) {
  object_reader r(spec.params, spec.path);
  (void)r.has("name");
  (void)r.has("kind");
  hir_config c;
  const std::string mode =
      r.string("mode", "hindsight", {"hindsight", "no_relabeling", "successes_only"});
  c.mode = mode == "hindsight"       ? hir_mode::hindsight
           : mode == "no_relabeling" ? hir_mode::no_relabeling
                                     : hir_mode::successes_only;
  c.contrast = r.string("contrast", "two_way", {"two_way", "k_way"}) == "k_way"
                   ? hir_contrast::k_way
                   : hir_contrast::two_way;
  c.batch_size = r.integer("batch_size", c.batch_size, 1, 1'000'000);
  c.updates_per_round = r.integer("updates_per_round", c.updates_per_round, 1, 1000);
  c.eps_ls = r.number("eps_ls", c.eps_ls, 0.0, 0.499);
  c.w_con = r.number("w_con", c.w_con, 0.0, 1e6);
  c.w_ent = r.number("w_ent", c.w_ent, 0.0, 1e6);
  c.optimizer = read_optimizer(r, c.optimizer.learning_rate);
  c.seed = seed;
  r.reject_unknown_keys();
  const tabular_hir solver(c);  // validates the settings
  if (settings.validate_only) return {};
  history_recorder recorder(settings.eval_every, /*snapshots=*/false, success_rate_metric{});
  return execute(solver, *e.task, std::move(recorder), settings);
}

/// Reads and checks every solver entry (keys, types, ranges, what the problem allows) and builds
/// each solver once, without initialising or running it: fast whatever the sizes.
inline void validate_solvers(const experiment& e) {
  run_settings dry{0, 1, false, "", /*validate_only=*/true};
  const game_reference_points unused;
  for (const auto& spec : e.solvers) {
    if (e.game) {
      (void)run_game_solver(e, spec, e.seeds.front(), unused, dry);
    } else {
      (void)run_task_solver(e, spec, e.seeds.front(), dry);
    }
  }
}

/// The memory an experiment needs, in bytes, as far as the runner can compute it from the config
/// (README "Experiment runner", "Limits"): the problem (`8 C n^2` bytes for a game's preference
/// matrices, twice more for a `tau = 0` equilibrium), per concurrently running job the solver's
/// tables (`64 C n` bytes), its offline dataset or reward-fit pairs, and per run its evaluation
/// curves (`9 x 40` bytes per evaluation: the history, its JSON and its text).
inline double estimated_memory_bytes(const experiment& e, unsigned threads) {
  constexpr double f64 = 8.0;
  const double runs = static_cast<double>(e.solvers.size() * e.seeds.size());
  const double evaluations = static_cast<double>(e.iterations / e.eval_every + 2);
  const double curves = runs * evaluations * 9.0 * 40.0;
  double problem = 0.0, tables = 0.0, data = 0.0;
  if (e.game) {
    const auto c = static_cast<double>(e.game->num_contexts());
    const auto n = static_cast<double>(e.game->num_actions());
    problem = f64 * c * n * n * (e.game->tau() > 0.0 ? 1.0 : 3.0) + 8.0 * f64 * c * n;
    tables = 64.0 * c * n;
    for (const auto& spec : e.solvers) {
      const auto count = [&](const char* key, index fallback) {
        const auto it = spec.params.find(key);
        return static_cast<double>(it == spec.params.end() ? fallback : it->get<index>());
      };
      double pairs = 0.0;
      if (spec.kind == "rlhf_ppo") {
        pairs =
            count("reward_pairs", reward_fit_config{}.pairs) * (sizeof(labelled_pair) + 4 * f64);
      } else if (spec.kind == "dpo" || spec.kind == "ipo" || spec.kind == "simpo" ||
                 spec.kind == "slic") {
        const auto it = spec.params.find("source");
        if (it == spec.params.end() || *it == "offline") {
          pairs = count("dataset_size", direct_alignment_config{}.dataset_size) *
                  static_cast<double>(sizeof(labelled_pair));
        }
      }
      data = std::max(data, pairs);
    }
  } else {
    const auto g = static_cast<double>(e.task->num_goals());
    const auto r = static_cast<double>(e.task->num_responses());
    problem = 2.0 * f64 * r;
    tables = 6.0 * f64 * g * r;
  }
  const double concurrent =
      std::min<double>(std::max(1U, threads), static_cast<double>(std::max(runs, 1.0)));
  return problem + concurrent * (tables + data) + curves;
}

/// Throws `parse_error` when `estimated_memory_bytes` is above `limit_gib` GiB.
inline void check_memory(const experiment& e, unsigned threads, double limit_gib) {
  const double bytes = estimated_memory_bytes(e, threads);
  const double gib = bytes / (1024.0 * 1024.0 * 1024.0);
  if (gib > limit_gib) {
    config_error("/", fmt::format("this experiment needs an estimated {:.3g} GiB, more than the "
                                  "memory limit of {:.3g} GiB (--memory-limit; README \"Experiment "
                                  "runner\", \"Limits\")",
                                  gib, limit_gib));
  }
}

// ---------------------------------------------------------------------------------------------
// Running everything and writing the results
// ---------------------------------------------------------------------------------------------

struct arena_options {
  unsigned threads = 1;
  /// Progress on stderr: a bar per run on a terminal (single-threaded runs), otherwise one line
  /// per solver when its last seed is done.
  bool progress = true;
  double memory_limit_gib = default_memory_limit_gib;  ///< refuse experiments estimated above
};

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
        out.runs[s][k] = e.game ? run_game_solver(e, spec, e.seeds[k], *points, settings)
                                : run_task_solver(e, spec, e.seeds[k], settings);
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
    for (index x = 0; x < points->equilibrium.rows(); ++x) {
      json row = json::array();
      for (index y = 0; y < points->equilibrium.cols(); ++y) {
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
      for (index x = 0; x < m.rows(); ++x) {
        json row = json::array();
        for (index y = 0; y < m.cols(); ++y) row.push_back(m(x, y));
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

/// The results file: `{"results": ..., "timing": ...}`, written atomically.
inline void write_results(const std::filesystem::path& path, const arena_results& r) {
  const json doc{{"results", r.results}, {"timing", r.timing}};
  io::write_file_atomically(path, doc.dump(1) + "\n");
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
