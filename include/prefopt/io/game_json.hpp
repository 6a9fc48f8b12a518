#pragma once
/// \file
/// Preference games as JSON (nlohmann_json). Format (every key but `preference` optional):
///
///     {
///       "tau": 0.1,                                  // KL weight, default 0
///       "contexts": [                                // one object per context
///         { "weight": 0.5,                           // rho(x), default uniform
///           "preference": [[0.5, 1, 0], ...],        // n x n, row i = P(y_i > .)
///           "reference": [0.7, 0.2, 0.1],            // mu(. | x), default uniform
///           "lengths": [12, 40, 7],                  // optional response lengths
///           "gold_rewards": [0.1, 0.3, -1] }         // optional gold rewards
///       ]
///     }
///
/// A single-context game may put `preference`, `reference`, `lengths`, `gold_rewards` at the top
/// level instead of `contexts`. Loading validates everything `preference_game` validates and
/// reports problems as `prefopt::parse_error` naming the JSON path (e.g.
/// `/contexts/1/preference/0/2`); syntax errors name the byte offset. Files are written atomically.

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "prefopt/core/assert.hpp"
#include "prefopt/games/preference_game.hpp"
#include "prefopt/io/atomic_file.hpp"
#include "prefopt/models/preference/validate.hpp"

namespace prefopt::io {

namespace detail {
using json = nlohmann::json;

inline double json_number(const json& j, const std::string& path) {
  PREFOPT_CHECK(j.is_number(), parse_error, "game JSON ", path, ": expected a number, got ",
                j.type_name());
  return j.get<double>();
}

inline vector_d json_vector(const json& j, const std::string& path, index expected) {
  PREFOPT_CHECK(j.is_array(), parse_error, "game JSON ", path, ": expected an array, got ",
                j.type_name());
  PREFOPT_CHECK(expected < 0 || static_cast<index>(j.size()) == expected, parse_error, "game JSON ",
                path, ": has ", j.size(), " entries, expected ", expected);
  vector_d v(static_cast<index>(j.size()));
  for (std::size_t i = 0; i < j.size(); ++i) {
    v[static_cast<index>(i)] = json_number(j[i], path + "/" + std::to_string(i));
  }
  return v;
}

inline matrix_d json_matrix(const json& j, const std::string& path) {
  PREFOPT_CHECK(j.is_array() && !j.empty(), parse_error, "game JSON ", path,
                ": expected a non-empty array of rows, got ", j.type_name());
  const auto n = static_cast<index>(j.size());
  matrix_d m(n, n);
  for (index i = 0; i < n; ++i) {
    m.row(i) =
        json_vector(j[static_cast<std::size_t>(i)], path + "/" + std::to_string(i), n).transpose();
  }
  return m;
}

/// Runs `f`; rethrows a validation error as a parse_error prefixed with the JSON path.
template <class F>
void at_path(const std::string& path, F&& f) {
  try {
    f();
  } catch (const invalid_argument& e) {
    PREFOPT_THROW(parse_error, "game JSON ", path, ": ", e.what());
  }
}
}  // namespace detail

/// Parses a game from a JSON value (see the file comment for the format).
[[nodiscard]] inline preference_game game_from_json(const nlohmann::json& j) {
  using detail::json;
  PREFOPT_CHECK(j.is_object(), parse_error, "game JSON /: expected an object, got ", j.type_name());
  const double tau = j.contains("tau") ? detail::json_number(j["tau"], "/tau") : 0.0;
  PREFOPT_CHECK(tau >= 0.0, parse_error, "game JSON /tau: tau = ", tau, ", expected tau >= 0");
  std::vector<json> contexts;
  std::vector<std::string> prefixes;
  if (j.contains("contexts")) {
    PREFOPT_CHECK(j["contexts"].is_array() && !j["contexts"].empty(), parse_error,
                  "game JSON /contexts: expected a non-empty array");
    for (std::size_t x = 0; x < j["contexts"].size(); ++x) {
      contexts.push_back(j["contexts"][x]);
      prefixes.push_back("/contexts/" + std::to_string(x));
    }
  } else {
    contexts.push_back(j);
    prefixes.emplace_back("");
  }
  const auto count = static_cast<index>(contexts.size());
  std::vector<matrix_d> preferences;
  index n = -1;
  bool all_weights = true, any_weights = false, lengths = true, gold = true;
  for (std::size_t x = 0; x < contexts.size(); ++x) {
    const json& c = contexts[x];
    const std::string& pre = prefixes[x];
    PREFOPT_CHECK(c.is_object(), parse_error, "game JSON ", pre.empty() ? "/" : pre,
                  ": expected an object");
    PREFOPT_CHECK(c.contains("preference"), parse_error, "game JSON ", pre,
                  "/preference: missing (the n x n preference matrix)");
    matrix_d p = detail::json_matrix(c["preference"], pre + "/preference");
    if (n < 0) n = p.rows();
    PREFOPT_CHECK(p.rows() == n, parse_error, "game JSON ", pre, "/preference: is ", p.rows(), "x",
                  p.rows(), ", expected ", n, "x", n, " like the first context");
    // Entry-level checks with the exact JSON path, then the matrix laws.
    for (index a = 0; a < n; ++a) {
      for (index b = 0; b < n; ++b) {
        PREFOPT_CHECK(p(a, b) >= 0.0 && p(a, b) <= 1.0, parse_error, "game JSON ", pre,
                      "/preference/", a, "/", b, ": ", p(a, b),
                      ", expected a probability in [0, 1]");
      }
    }
    detail::at_path(pre + "/preference", [&] {
      validate_preference_matrix(p, "game_from_json", "P", static_cast<index>(x));
    });
    preferences.push_back(std::move(p));
    const bool has_weight = c.contains("weight");
    all_weights = all_weights && has_weight;
    any_weights = any_weights || has_weight;
    lengths = lengths && c.contains("lengths");
    gold = gold && c.contains("gold_rewards");
  }
  PREFOPT_CHECK(all_weights || !any_weights, parse_error,
                "game JSON /contexts: some contexts have a \"weight\" and some do not; give all or "
                "none");
  row_matrix_d reference(count, n), length_table(count, n), gold_table(count, n);
  vector_d rho(count);
  for (std::size_t x = 0; x < contexts.size(); ++x) {
    const json& c = contexts[x];
    const std::string& pre = prefixes[x];
    const auto row = static_cast<index>(x);
    if (c.contains("reference")) {
      reference.row(row) = detail::json_vector(c["reference"], pre + "/reference", n).transpose();
      for (index a = 0; a < n; ++a) {
        PREFOPT_CHECK(reference(row, a) > 0.0, parse_error, "game JSON ", pre, "/reference/", a,
                      ": ", reference(row, a), ", expected a strictly positive probability");
      }
      const double sum = reference.row(row).sum();
      PREFOPT_CHECK(std::abs(sum - 1.0) <= distribution_tolerance, parse_error, "game JSON ", pre,
                    "/reference: sums to ", sum, ", expected 1");
    } else {
      reference.row(row).setConstant(1.0 / static_cast<double>(n));
    }
    rho[row] = any_weights ? detail::json_number(c["weight"], pre + "/weight")
                           : 1.0 / static_cast<double>(count);
    if (lengths) {
      length_table.row(row) = detail::json_vector(c["lengths"], pre + "/lengths", n).transpose();
    }
    if (gold) {
      gold_table.row(row) =
          detail::json_vector(c["gold_rewards"], pre + "/gold_rewards", n).transpose();
    }
  }
  preference_game game = [&] {
    try {
      return preference_game(std::move(preferences), std::move(reference), tau, std::move(rho));
    } catch (const invalid_argument& e) {
      PREFOPT_THROW(parse_error, "game JSON ", any_weights ? "/contexts/*/weight" : "/", ": ",
                    e.what());
    }
  }();
  detail::at_path("/contexts/*/lengths", [&] {
    if (lengths) game = game.with_lengths(std::move(length_table));
  });
  detail::at_path("/contexts/*/gold_rewards", [&] {
    if (gold) game = game.with_gold_rewards(std::move(gold_table));
  });
  return game;
}

/// Parses a game from JSON text; syntax errors become `parse_error` with the byte offset.
[[nodiscard]] inline preference_game game_from_json_string(const std::string& text) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    PREFOPT_THROW(parse_error, "game JSON: malformed at byte ", e.byte, ": ", e.what());
  }
  return game_from_json(j);
}

/// Reads a game from a JSON file (`io_error` when unreadable, `parse_error` when malformed).
[[nodiscard]] inline preference_game read_game_json(const std::filesystem::path& path) {
  std::ifstream in(path);
  PREFOPT_CHECK(in.good(), io_error, "read_game_json: cannot open ", path.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  try {
    return game_from_json_string(ss.str());
  } catch (const parse_error& e) {
    PREFOPT_THROW(parse_error, path.string(), ": ", e.what());
  }
}

/// The JSON form of a game (always the `contexts` form, weights included).
[[nodiscard]] inline nlohmann::json game_to_json(const preference_game& game) {
  nlohmann::json j;
  j["tau"] = game.tau();
  j["contexts"] = nlohmann::json::array();
  const index n = game.num_actions();
  auto row_json = [n](const auto& row) {
    std::vector<double> v(static_cast<std::size_t>(n));
    for (index a = 0; a < n; ++a) v[static_cast<std::size_t>(a)] = row(a);
    return v;
  };
  for (index x = 0; x < game.num_contexts(); ++x) {
    nlohmann::json c;
    c["weight"] = game.context_weights()[x];
    nlohmann::json p = nlohmann::json::array();
    for (index a = 0; a < n; ++a) p.push_back(row_json(game.preference(x).row(a)));
    c["preference"] = std::move(p);
    c["reference"] = row_json(game.reference().row(x));
    if (game.has_lengths()) c["lengths"] = row_json(game.lengths().row(x));
    if (game.has_gold_rewards()) c["gold_rewards"] = row_json(game.gold_rewards().row(x));
    j["contexts"].push_back(std::move(c));
  }
  return j;
}

/// Writes a game as JSON, atomically (`io::write_file_atomically`).
inline void write_game_json(const std::filesystem::path& path, const preference_game& game) {
  write_file_atomically(path, game_to_json(game).dump(2) + "\n");
}

}  // namespace prefopt::io
