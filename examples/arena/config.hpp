#pragma once
// prefopt-arena, reading the experiment config (README "Experiment runner" documents the format):
// the key-checked JSON reader (every error names the JSON pointer of the offending value), the
// problem (a preference game from the catalog, a file or inline JSON; or a goal-conditioned task
// for HIR) and the size limits. `parse_config`, which also validates every solver entry, is in
// solvers.hpp.

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
#include <utility>
#include <vector>

#include "modes.hpp"
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
  index_t integer(const std::string& key, index_t fallback, index_t lo, index_t hi) {
    if (!has(key)) return fallback;
    const json& v = j_.at(key);
    if (!v.is_number_integer()) config_error(child(key), "expected an integer, got " + v.dump());
    const auto x = v.get<long long>();
    if (x < lo || x > hi) {
      config_error(child(key),
                   fmt::format("{} is out of range, expected an integer in [{}, {}]", x, lo, hi));
    }
    return static_cast<index_t>(x);
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
  /// The value named by `key` among `options` (name, value); the first when `key` is absent.
  template <class E>
  E choice(const std::string& key, const std::vector<std::pair<std::string, E>>& options) {
    std::vector<std::string> names;
    for (const auto& o : options) names.push_back(o.first);
    const std::string s = string(key, names.front(), names);
    for (const auto& o : options) {
      if (o.first == s) return o.second;
    }
    return options.front().second;  // unreachable: `string` checked the name
  }
  vector_d vector(const std::string& key) {
    const json& v = at(key);
    if (!v.is_array() || v.empty()) {
      config_error(child(key), "expected a non-empty array of numbers, got " + v.dump());
    }
    vector_d out(static_cast<index_t>(v.size()));
    for (std::size_t i = 0; i < v.size(); ++i) {
      if (!v[i].is_number()) {
        config_error(child(key) + "/" + std::to_string(i), "expected a number, got " + v[i].dump());
      }
      out[static_cast<index_t>(i)] = v[i].get<double>();
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

/// The config's "seeds" (default `[0]`): a non-empty array of non-negative integers.
inline std::vector<std::uint64_t> read_seeds(object_reader& r) {
  if (!r.has("seeds")) return {0};
  std::vector<std::uint64_t> seeds;
  const json& s = r.at("seeds");
  if (!s.is_array() || s.empty()) config_error("/seeds", "expected a non-empty array");
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (!s[i].is_number_unsigned()) {
      config_error("/seeds/" + std::to_string(i),
                   "expected a non-negative integer, got " + s[i].dump());
    }
    seeds.push_back(s[i].get<std::uint64_t>());
  }
  return seeds;
}

/// The config's "solvers": a non-empty array of objects, each with a `kind` among `kinds` and a
/// unique `name` (default: the kind). Their other keys are read by their solver's entry.
inline std::vector<solver_spec> read_solver_specs(object_reader& r,
                                                  const std::vector<std::string>& kinds) {
  const json& solvers = r.at("solvers");
  if (!solvers.is_array() || solvers.empty()) {
    config_error("/solvers", "expected a non-empty array of solver objects");
  }
  std::vector<solver_spec> specs;
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
    specs.push_back(std::move(spec));
  }
  return specs;
}

/// The parsed experiment.
struct experiment {
  std::string name;
  json config;  ///< the config as given (echoed into the results)
  std::optional<preference_game> game;
  std::optional<goal_task> task;
  std::vector<std::uint64_t> seeds;
  index_t iterations = 0;
  index_t eval_every = 0;
  std::vector<solver_spec> solvers;
};

// Sizes are bounded before anything is allocated (README "Experiment runner", "Limits").
inline constexpr index_t max_catalog_actions = 4096;      ///< n of a catalog game
inline constexpr index_t max_condorcet_voters = 512;      ///< n of condorcet_voters (n^3 work)
inline constexpr index_t max_task_entries = 1L << 24;     ///< goals x responses of a goal task
inline constexpr index_t max_dataset_pairs = 10'000'000;  ///< dataset_size, reward_pairs

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
      for (index_t x = 0; x < mu.rows(); ++x) {
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
  const index_t responses = r.integer("responses", 400, 2, 1'000'000);
  const index_t goals = r.integer("goals", 50, 2, responses);
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

}  // namespace prefopt::arena
