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
/// level instead of `contexts` (not both). Loading validates everything `preference_game`
/// validates and reports problems as `prefopt::parse_error` naming the JSON path (e.g.
/// `/contexts/1/preference/0/2`); syntax errors name the byte offset, line and column.
///
/// Strictness: an unknown key (a misspelled `"refrence"`), a top-level `preference` / `reference` /
/// `lengths` / `gold_rewards` next to `contexts`, `weight`, `lengths` or `gold_rewards` given for
/// some contexts but not all, a key repeated in one object, and `tau` outside `[0, max_game_tau]`
/// (1e6, the runner's bound) are errors. Limits: the text is parsed by `io::parse_json`
/// (io/json_parse.hpp: at most `json_limits::max_bytes` = 128 MiB, nesting at most 64 levels,
/// every number finite), and every row's length is checked before a matrix is allocated, so the
/// memory taken is proportional to the numbers actually in the document. Files are written
/// atomically.

#include <nlohmann/json.hpp>

#include <array>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "prefopt/core/assert.hpp"
#include "prefopt/games/preference_game.hpp"
#include "prefopt/io/atomic_file.hpp"
#include "prefopt/io/json_parse.hpp"
#include "prefopt/models/preference/validate.hpp"

namespace prefopt::io {

/// Largest `tau` a game JSON may give.
inline constexpr double max_game_tau = 1e6;

namespace detail {
using json = nlohmann::json;

inline double json_number(const json& j, const std::string& path) {
  PREFOPT_CHECK(j.is_number(), parse_error, "game JSON ", path, ": expected a number, got ",
                j.type_name());
  return j.get<double>();
}

inline vector_d json_vector(const json& j, const std::string& path, index_t expected) {
  PREFOPT_CHECK(j.is_array(), parse_error, "game JSON ", path, ": expected an array, got ",
                j.type_name());
  PREFOPT_CHECK(expected < 0 || static_cast<index_t>(j.size()) == expected, parse_error,
                "game JSON ", path, ": has ", j.size(), " entries, expected ", expected);
  vector_d v(static_cast<index_t>(j.size()));
  for (std::size_t i = 0; i < j.size(); ++i) {
    v[static_cast<index_t>(i)] = json_number(j[i], path + "/" + std::to_string(i));
  }
  return v;
}

/// An `n x n` matrix from `n` rows of `n` numbers; every row's shape is checked before the matrix
/// is allocated.
inline matrix_d json_matrix(const json& j, const std::string& path) {
  PREFOPT_CHECK(j.is_array() && !j.empty(), parse_error, "game JSON ", path,
                ": expected a non-empty array of rows, got ", j.type_name());
  const std::size_t n = j.size();
  for (std::size_t i = 0; i < n; ++i) {
    PREFOPT_CHECK(j[i].is_array(), parse_error, "game JSON ", path, "/", i,
                  ": expected an array, got ", j[i].type_name());
    PREFOPT_CHECK(j[i].size() == n, parse_error, "game JSON ", path, "/", i, ": has ", j[i].size(),
                  " entries, expected ", n, " (the matrix is square)");
  }
  matrix_d m(static_cast<index_t>(n), static_cast<index_t>(n));
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t k = 0; k < n; ++k) {
      m(static_cast<index_t>(i), static_cast<index_t>(k)) =
          json_number(j[i][k], path + "/" + std::to_string(i) + "/" + std::to_string(k));
    }
  }
  return m;
}

/// Throws on a key of the object `j` (at `path`) that is not in `known`.
template <std::size_t N>
void reject_unknown_keys(const json& j, const std::string& path,
                         const std::array<std::string_view, N>& known) {
  for (const auto& item : j.items()) {
    bool found = false;
    for (const auto k : known) found = found || item.key() == k;
    if (found) continue;
    std::string list;
    for (const auto k : known) (list += list.empty() ? "" : ", ") += k;
    PREFOPT_THROW(parse_error, "game JSON ", path, "/", item.key(),
                  ": unknown key, expected one of ", list);
  }
}

inline constexpr std::array<std::string_view, 5> context_keys = {
    "weight", "preference", "reference", "lengths", "gold_rewards"};

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

/// Parses a game from a JSON value (see the file comment for the format). A value built in code
/// is read without copies or recursion, however deep it nests.
[[nodiscard]] inline preference_game game_from_json(const nlohmann::json& j) {
  using detail::json;
  PREFOPT_CHECK(j.is_object(), parse_error, "game JSON /: expected an object, got ", j.type_name());
  const double tau = j.contains("tau") ? detail::json_number(j["tau"], "/tau") : 0.0;
  PREFOPT_CHECK(tau >= 0.0 && tau <= max_game_tau, parse_error, "game JSON /tau: tau = ", tau,
                ", expected 0 <= tau <= ", max_game_tau);
  std::vector<const json*> contexts;
  std::vector<std::string> prefixes;
  if (j.contains("contexts")) {
    detail::reject_unknown_keys(j, "", std::array<std::string_view, 2>{"tau", "contexts"});
    PREFOPT_CHECK(j["contexts"].is_array() && !j["contexts"].empty(), parse_error,
                  "game JSON /contexts: expected a non-empty array");
    for (std::size_t x = 0; x < j["contexts"].size(); ++x) {
      contexts.push_back(&j["contexts"][x]);
      prefixes.push_back("/contexts/" + std::to_string(x));
      PREFOPT_CHECK(contexts.back()->is_object(), parse_error, "game JSON ", prefixes.back(),
                    ": expected an object, got ", contexts.back()->type_name());
      detail::reject_unknown_keys(*contexts.back(), prefixes.back(), detail::context_keys);
    }
  } else {
    detail::reject_unknown_keys(
        j, "",
        std::array<std::string_view, 6>{"tau", "contexts", "preference", "reference", "lengths",
                                        "gold_rewards"});
    contexts.push_back(&j);
    prefixes.emplace_back("");
  }
  const auto count = static_cast<index_t>(contexts.size());
  std::vector<matrix_d> preferences;
  index_t n = -1;
  std::size_t weights = 0, lengths = 0, gold = 0;
  for (std::size_t x = 0; x < contexts.size(); ++x) {
    const json& c = *contexts[x];
    const std::string& pre = prefixes[x];
    PREFOPT_CHECK(c.contains("preference"), parse_error, "game JSON ", pre,
                  "/preference: missing (the n x n preference matrix)");
    if (n >= 0) {  // the size of this context, before its matrix is allocated
      const json& rows = c["preference"];
      PREFOPT_CHECK(!rows.is_array() || static_cast<index_t>(rows.size()) == n, parse_error,
                    "game JSON ", pre, "/preference: has ", rows.size(), " rows, expected ", n,
                    " like the first context");
    }
    matrix_d p = detail::json_matrix(c["preference"], pre + "/preference");
    if (n < 0) n = p.rows();
    // Entry-level checks with the exact JSON path, then the matrix laws.
    for (index_t a = 0; a < n; ++a) {
      for (index_t b = 0; b < n; ++b) {
        PREFOPT_CHECK(p(a, b) >= 0.0 && p(a, b) <= 1.0, parse_error, "game JSON ", pre,
                      "/preference/", a, "/", b, ": ", p(a, b),
                      ", expected a probability in [0, 1]");
      }
    }
    detail::at_path(pre + "/preference", [&] {
      validate_preference_matrix(p, "game_from_json", "P", static_cast<index_t>(x));
    });
    preferences.push_back(std::move(p));
    weights += c.contains("weight") ? 1U : 0U;
    lengths += c.contains("lengths") ? 1U : 0U;
    gold += c.contains("gold_rewards") ? 1U : 0U;
  }
  for (const auto& [key, have] : {std::pair{"weight", weights}, std::pair{"lengths", lengths},
                                  std::pair{"gold_rewards", gold}}) {
    if (have == 0 || have == contexts.size()) continue;
    std::size_t missing = 0;
    while (contexts[missing]->contains(key)) ++missing;
    PREFOPT_THROW(parse_error, "game JSON ", prefixes[missing], "/", key, ": missing, but ", have,
                  " of the ", contexts.size(), " contexts have a \"", key,
                  "\"; give it for all contexts or none");
  }
  const bool any_weights = weights > 0;
  row_matrix_d reference(count, n), length_table(lengths > 0 ? count : 0, n),
      gold_table(gold > 0 ? count : 0, n);
  vector_d rho(count);
  for (std::size_t x = 0; x < contexts.size(); ++x) {
    const json& c = *contexts[x];
    const std::string& pre = prefixes[x];
    const auto row = static_cast<index_t>(x);
    if (c.contains("reference")) {
      reference.row(row) = detail::json_vector(c["reference"], pre + "/reference", n).transpose();
      for (index_t a = 0; a < n; ++a) {
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
    if (lengths > 0) {
      length_table.row(row) = detail::json_vector(c["lengths"], pre + "/lengths", n).transpose();
    }
    if (gold > 0) {
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
    if (lengths > 0) game = game.with_lengths(std::move(length_table));
  });
  detail::at_path("/contexts/*/gold_rewards", [&] {
    if (gold > 0) game = game.with_gold_rewards(std::move(gold_table));
  });
  return game;
}

/// Parses a game from JSON text with `io::parse_json` (size, depth and number limits; syntax
/// errors name the byte offset); every error is a `parse_error`.
[[nodiscard]] inline preference_game game_from_json_string(std::string_view text,
                                                           const json_limits& limits = {}) {
  return game_from_json(parse_json(text, "game JSON", limits));
}

/// Reads a game from a JSON file (`io_error` when unreadable, `parse_error` naming the file when
/// malformed or too large; the size is checked before the file is read).
[[nodiscard]] inline preference_game read_game_json(const std::filesystem::path& path,
                                                    const json_limits& limits = {}) {
  const nlohmann::json j = read_json_file(path, limits);
  try {
    return game_from_json(j);
  } catch (const parse_error& e) {
    PREFOPT_THROW(parse_error, path.string(), ": ", e.what());
  }
}

/// The JSON form of a game (always the `contexts` form, weights included).
[[nodiscard]] inline nlohmann::json game_to_json(const preference_game& game) {
  nlohmann::json j;
  j["tau"] = game.tau();
  j["contexts"] = nlohmann::json::array();
  const index_t n = game.num_actions();
  auto row_json = [n](const auto& row) {
    std::vector<double> v(static_cast<std::size_t>(n));
    for (index_t a = 0; a < n; ++a) v[static_cast<std::size_t>(a)] = row(a);
    return v;
  };
  for (index_t x = 0; x < game.num_contexts(); ++x) {
    nlohmann::json c;
    c["weight"] = game.context_weights()[x];
    nlohmann::json p = nlohmann::json::array();
    for (index_t a = 0; a < n; ++a) p.push_back(row_json(game.preference(x).row(a)));
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
