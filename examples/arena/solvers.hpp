#pragma once
// prefopt-arena, the solver table: every solver kind the runner knows, with how it reads its
// hyperparameters and which iterate it is judged by (adding a solver is one entry here), and
// `parse_config`, which validates every entry.

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

namespace prefopt::arena {

// ---------------------------------------------------------------------------------------------
// Building solvers from their config entries
// ---------------------------------------------------------------------------------------------

inline optimizer_config read_optimizer(object_reader& r, double default_lr) {
  optimizer_config o;
  o.kind = r.string("optimizer", "adam", {"adam", "sgd"}) == "sgd" ? optimizer_kind::sgd
                                                                   : optimizer_kind::adam;
  o.learning_rate = r.number("learning_rate", default_lr, 1e-12, 1e6);
  return o;
}

/// What a solver entry's builder sees: the experiment, its config entry (a key-checked reader),
/// the seed and the run settings; `run(solver)` checks that every key was read and runs it.
class solver_context {
 public:
  solver_context(const experiment& e, const solver_spec& spec, std::uint64_t seed,
                 const game_reference_points& points, const run_settings& settings, bool average)
      : e_(e),
        spec_(spec),
        seed_(seed),
        points_(points),
        settings_(settings),
        average_(average),
        r_(spec.params, spec.path) {
    (void)r_.has("name");
    (void)r_.has("kind");
  }

  [[nodiscard]] object_reader& config() noexcept { return r_; }
  [[nodiscard]] const preference_game& game() const { return *e_.game; }
  [[nodiscard]] double tau() const { return e_.game->tau(); }
  [[nodiscard]] std::uint64_t seed() const noexcept { return seed_; }
  [[nodiscard]] index_t iterations() const noexcept { return e_.iterations; }
  [[noreturn]] void error(const std::string& what) const { config_error(spec_.path, what); }

  /// Runs a game solver (after rejecting unknown keys; nothing runs when only validating).
  template <class S>
  run_record run(const S& solver) {
    r_.reject_unknown_keys();
    if (settings_.validate_only) return {};
    return execute_on_game(solver, *e_.game, points_, average_, settings_);
  }
  /// Runs a goal-task solver, recording its success rate.
  template <class S>
  run_record run_on_task(const S& solver) {
    r_.reject_unknown_keys();
    if (settings_.validate_only) return {};
    history_recorder recorder(settings_.eval_every, /*snapshots=*/false, success_rate_metric{});
    return execute(solver, *e_.task, std::move(recorder), settings_);
  }

  /// `f(payoff)` with the mirror-descent family's payoff (`"payoff"`: exact or sampled).
  template <class F>
  run_record with_payoff(F&& f) {
    const std::string payoff = r_.string("payoff", "exact", {"exact", "sampled"});
    if (payoff == "exact") return f(exact_payoff{});
    sampled_payoff p;
    p.samples = r_.integer("samples", 16, 1, 1'000'000);
    p.seed = seed_;
    return f(p);
  }
  /// The first iterate (`"initial"`): the reference mu (default of the regularised methods) or
  /// uniform (default of the tau = 0 methods, whose theory starts there).
  initial_policy initial(const char* fallback) {
    return r_.string("initial", fallback, {"reference", "uniform"}) == "reference"
               ? initial_policy::reference()
               : initial_policy::uniform();
  }

 private:
  const experiment& e_;
  const solver_spec& spec_;
  std::uint64_t seed_;
  const game_reference_points& points_;
  const run_settings& settings_;
  bool average_;
  object_reader r_;
};

/// Nash-MD and OMD (ALGORITHMS.md §5): schedule x payoff chosen at compile time.
template <template <class, class> class Solver>
run_record run_mirror_descent(solver_context& c, const char* kind) {
  if (c.tau() <= 0.0) c.error(std::string(kind) + " needs a game with tau > 0");
  object_reader& r = c.config();
  const std::string schedule = r.string("schedule", "theory", {"theory", "constant"});
  const initial_policy start = c.initial("reference");
  return c.with_payoff([&](auto payoff) {
    using payoff_t = decltype(payoff);
    if (schedule == "theory") return c.run(Solver<theory_step, payoff_t>({}, payoff, start));
    const constant_step eta(r.number("eta", 1.0 / c.tau(), 1e-12, 1.0 / c.tau()));
    return c.run(Solver<constant_step, payoff_t>(eta, payoff, start));
  });
}

/// ONPO and its regularised form (ALGORITHMS.md §7).
template <template <class> class Solver>
run_record run_onpo(solver_context& c) {
  const double eta = c.config().number("eta", 0.5, 1e-12, 1e6);
  const initial_policy start = c.initial("uniform");
  return c.with_payoff([&](auto payoff) {
    return c.run(Solver<decltype(payoff)>(constant_step(eta), payoff, start));
  });
}

/// The direct-alignment family's settings (on a game: offline pairs and minibatches of 64 unless
/// the config says otherwise).
inline dpo_trainer_config read_direct_alignment(solver_context& c) {
  object_reader& r = c.config();
  dpo_trainer_config d;
  d.batch_size = 64;
  d.loss.beta_dpo = r.number("beta_dpo", c.tau() > 0.0 ? c.tau() : 0.1, 1e-9, 1e6);
  d.loss.length_average = r.boolean("length_average", false);
  d.loss.gamma_simpo = r.number("gamma_simpo", 0.0, -1e6, 1e6);
  d.source = r.string("source", "offline", {"offline", "online"}) == "online"
                 ? pair_source::online
                 : pair_source::offline;
  d.dataset_size = r.integer("dataset_size", d.dataset_size, 1, max_dataset_pairs);
  d.batch_size = r.integer("batch_size", d.batch_size, 1, 1'000'000);
  d.optimizer = read_optimizer(r, d.optimizer.learning_rate);
  d.seed = c.seed();
  return d;
}

inline run_record run_rlhf_ppo(solver_context& c) {
  object_reader& r = c.config();
  const double tau = c.tau();
  rlhf_ppo_config p;
  p.tau = r.number("kl_coefficient", tau > 0.0 ? tau : 0.1, 1e-9, 1e6);
  p.control = r.string("kl_control", "fixed", {"fixed", "adaptive"}) == "adaptive"
                  ? kl_control::adaptive
                  : kl_control::fixed;
  p.kl_target = r.number("kl_target", p.kl_target, 1e-12, 1e6);
  p.kl_horizon = r.number("kl_horizon", p.kl_horizon, 1e-12, 1e12);
  p.batch_size = r.integer("batch_size", p.batch_size, 2, 1'000'000);
  p.minibatch_size =
      r.integer("minibatch_size", std::min(p.minibatch_size, p.batch_size), 1, p.batch_size);
  p.epochs = r.integer("epochs", p.epochs, 1, 1000);
  p.eps_clip = r.number("eps_clip", p.eps_clip, 1e-6, 0.999);
  p.reward.pairs = r.integer("reward_pairs", p.reward.pairs, 1, max_dataset_pairs);
  p.reward.iterations = r.integer("reward_iterations", p.reward.iterations, 1, 1'000'000);
  p.optimizer = read_optimizer(r, p.optimizer.learning_rate);
  p.seed = c.seed();
  return c.run(tabular_rlhf_ppo(p));
}

/// HIR and its baselines on a goal task (ALGORITHMS.md §10).
inline run_record run_hir(solver_context& c) {
  object_reader& r = c.config();
  hir_config h;
  const std::string mode =
      r.string("mode", "hindsight", {"hindsight", "no_relabeling", "successes_only"});
  h.mode = mode == "hindsight"       ? hir_mode::hindsight
           : mode == "no_relabeling" ? hir_mode::no_relabeling
                                     : hir_mode::successes_only;
  h.contrast = r.string("contrast", "two_way", {"two_way", "k_way"}) == "k_way"
                   ? hir_contrast::k_way
                   : hir_contrast::two_way;
  h.batch_size = r.integer("batch_size", h.batch_size, 1, 1'000'000);
  h.updates_per_round = r.integer("updates_per_round", h.updates_per_round, 1, 1000);
  h.eps_ls = r.number("eps_ls", h.eps_ls, 0.0, 0.499);
  h.w_con = r.number("w_con", h.w_con, 0.0, 1e6);
  h.w_ent = r.number("w_ent", h.w_ent, 0.0, 1e6);
  h.optimizer = read_optimizer(r, h.optimizer.learning_rate);
  h.seed = c.seed();
  return c.run_on_task(tabular_hir(h));  // the constructor validates the settings
}

/// One solver kind of the runner.
struct solver_entry {
  const char* kind;
  /// Runs on a preference game (else on a goal task).
  bool on_game;
  /// Judged by its average iterate (no-regret methods) rather than its last.
  bool average;
  /// Reads the entry's hyperparameters from the context and runs (or only validates) it.
  run_record (*run)(solver_context&);
};

/// Every solver the runner knows. Adding a solver is one line here (and its builder above).
inline const std::vector<solver_entry>& solver_table() {
  static const std::vector<solver_entry> table = {
      {"nash_md", true, false,
       [](solver_context& c) { return run_mirror_descent<nash_md>(c, "nash_md"); }},
      {"omd", true, false, [](solver_context& c) { return run_mirror_descent<omd>(c, "omd"); }},
      {"self_play", true, true,
       [](solver_context& c) {
         const double d = std::log(static_cast<double>(c.game().num_actions()));
         const double eta = c.config().number(
             "eta", std::sqrt(d / static_cast<double>(c.iterations())), 1e-12, 1e6);
         const initial_policy start = c.initial("uniform");
         return c.with_payoff([&](auto payoff) {
           return c.run(
               self_play_mwu<constant_step, decltype(payoff)>(constant_step(eta), payoff, start));
         });
       }},
      {"onpo", true, true, [](solver_context& c) { return run_onpo<onpo>(c); }},
      {"onpo_regularised", true, true,
       [](solver_context& c) {
         if (c.tau() <= 0.0) c.error("onpo_regularised needs a game with tau > 0");
         return run_onpo<regularised_onpo>(c);
       }},
      {"rlhf_ppo", true, false, run_rlhf_ppo},
      {"dpo", true, false,
       [](solver_context& c) { return c.run(tabular_dpo(read_direct_alignment(c))); }},
      {"ipo", true, false,
       [](solver_context& c) { return c.run(tabular_ipo(read_direct_alignment(c))); }},
      {"simpo", true, false,
       [](solver_context& c) { return c.run(tabular_simpo(read_direct_alignment(c))); }},
      {"slic", true, false,
       [](solver_context& c) { return c.run(tabular_slic(read_direct_alignment(c))); }},
      {"hir", false, false, run_hir},
  };
  return table;
}

/// The table's entry of `kind` (the config reader has already checked that it exists).
inline const solver_entry& find_solver(const std::string& kind) {
  for (const auto& entry : solver_table()) {
    if (kind == entry.kind) return entry;
  }
  PREFOPT_THROW(parse_error, "prefopt-arena: unknown solver kind \"", kind, "\"");
}

inline std::vector<std::string> solver_kinds(bool game) {
  std::vector<std::string> kinds;
  for (const auto& entry : solver_table()) {
    if (entry.on_game == game) kinds.emplace_back(entry.kind);
  }
  return kinds;
}

/// Which iterate a solver kind is judged by.
inline bool judged_by_average(const std::string& kind) {
  return find_solver(kind).average;
}

/// Runs one (solver, seed) of an experiment (or, with `settings.validate_only`, reads and checks
/// its entry and builds the solver without running it).
inline run_record run_solver(const experiment& e, const solver_spec& spec, std::uint64_t seed,
                             const game_reference_points& points, const run_settings& settings) {
  const solver_entry& entry = find_solver(spec.kind);
  solver_context c(e, spec, seed, points, settings, entry.average);
  return entry.run(c);
}

/// Reads and checks every solver entry (keys, types, ranges, what the problem allows) and builds
/// each solver once, without initialising or running it: fast whatever the sizes.
inline void validate_solvers(const experiment& e) {
  run_settings dry{0, 1, false, "", /*validate_only=*/true};
  const game_reference_points unused;
  for (const auto& spec : e.solvers) (void)run_solver(e, spec, e.seeds.front(), unused, dry);
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
      const auto count = [&](const char* key, index_t fallback) {
        const auto it = spec.params.find(key);
        return static_cast<double>(it == spec.params.end() ? fallback : it->get<index_t>());
      };
      double pairs = 0.0;
      if (spec.kind == "rlhf_ppo") {
        pairs =
            count("reward_pairs", reward_fit_config{}.pairs) * (sizeof(labelled_pair) + 4 * f64);
      } else if (spec.kind == "dpo" || spec.kind == "ipo" || spec.kind == "simpo" ||
                 spec.kind == "slic") {
        const auto it = spec.params.find("source");
        if (it == spec.params.end() || *it == "offline") {
          pairs = count("dataset_size", dpo_trainer_config{}.dataset_size) *
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
  e.eval_every = r.integer("eval_every", std::max<index_t>(1, e.iterations / 100), 1, e.iterations);
  e.seeds = read_seeds(r);
  e.solvers = read_solver_specs(r, solver_kinds(has_game));
  r.reject_unknown_keys();
  validate_solvers(e);
  return e;
}

}  // namespace prefopt::arena
