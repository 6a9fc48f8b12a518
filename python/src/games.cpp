/// \file
/// `prefopt.games`: preference games (games/preference_game.hpp) and goal-conditioned tasks
/// (games/goal_task.hpp) as Python objects, the catalog of games/catalog.hpp, games from / to JSON
/// (io/game_json.hpp) and their tables as NumPy arrays. Also the tabular conversions of
/// tabular.hpp, which the diagnostics and solvers share.

#include <cmath>
#include <cstdint>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <string>
#include <utility>
#include <vector>

#include "arrays.hpp"
#include "bindings.hpp"
#include "prefopt/games/catalog.hpp"
#include "prefopt/games/goal_task.hpp"
#include "prefopt/games/preference_game.hpp"
#include "prefopt/io/game_json.hpp"
#include "tabular.hpp"

namespace prefopt::python {

using namespace pybind11::literals;

// ---------------------------------------------------------------------------------------------
// Conversions (tabular.hpp)
// ---------------------------------------------------------------------------------------------

float64_array float64_in(const char* fn, const char* arg, py::handle obj) {
  if (obj.is_none()) PREFOPT_THROW(dtype_error, fn, ": ", arg, " is None, expected an array");
  if (py::isinstance<py::str>(obj) || py::isinstance<py::bytes>(obj)) {
    PREFOPT_THROW(dtype_error, fn, ": ", arg, " is a string, expected an array of numbers");
  }
  if (py::isinstance<py::array>(obj)) {
    const auto a = py::reinterpret_borrow<py::array>(obj);
    const char kind = a.dtype().kind();
    if (kind != 'f' && kind != 'i' && kind != 'u' && kind != 'b') {
      wrong_dtype(fn, arg, a, "a real dtype (converted to float64)");
    }
  }
  auto a = float64_array::ensure(obj);
  if (!a) {
    PyErr_Clear();
    PREFOPT_THROW(dtype_error, fn, ": ", arg, " of type ",
                  py::str(py::type::of(obj).attr("__name__")).cast<std::string>(),
                  " is not convertible to a float64 array");
  }
  return a;
}

namespace {

void check_finite_entries(const char* fn, const char* arg, const double* data, index_t rows,
                          index_t cols) {
  for (index_t i = 0; i < rows; ++i) {
    for (index_t j = 0; j < cols; ++j) {
      const double v = data[i * cols + j];
      if (!std::isfinite(v)) {
        PREFOPT_THROW(invalid_argument, fn, ": ", arg, "[", i, ", ", j, "] = ", v,
                      ", expected a finite number");
      }
    }
  }
}

}  // namespace

row_matrix_d table_in(const char* fn, const char* arg, py::handle obj, index_t rows, index_t cols,
                      bool allow_vector) {
  const auto a = float64_in(fn, arg, obj);
  const auto dims = static_cast<index_t>(a.ndim());
  const bool vector = allow_vector && dims == 1;
  if (dims != 2 && !vector) {
    PREFOPT_THROW(shape_error, fn, ": ", arg, " has ", dims, " dimensions, expected a [",
                  rows < 0 ? "rows" : std::to_string(rows), ", ",
                  cols < 0 ? "cols" : std::to_string(cols), "] table",
                  allow_vector ? " (or a 1-d vector for one row)" : "");
  }
  const index_t r = vector ? 1 : a.shape(0);
  const index_t c = vector ? a.shape(0) : a.shape(1);
  if ((rows >= 0 && r != rows) || (cols >= 0 && c != cols)) {
    PREFOPT_THROW(shape_error, fn, ": ", arg, " has shape ", vector ? "[" : "[",
                  vector ? "" : std::to_string(r) + ", ", c, "], expected [",
                  rows < 0 ? "rows" : std::to_string(rows), ", ",
                  cols < 0 ? "cols" : std::to_string(cols), "]");
  }
  check_finite_entries(fn, arg, a.data(), r, c);
  return Eigen::Map<const row_matrix_d>(a.data(), r, c);
}

vector_d vector_d_in(const char* fn, const char* arg, py::handle obj, index_t n) {
  const auto a = float64_in(fn, arg, obj);
  if (a.ndim() != 1) {
    PREFOPT_THROW(shape_error, fn, ": ", arg, " has ", a.ndim(), " dimensions, expected a 1-d [",
                  n < 0 ? "n" : std::to_string(n), "] vector");
  }
  if (n >= 0 && a.shape(0) != n) {
    PREFOPT_THROW(shape_error, fn, ": ", arg, " has ", a.shape(0), " entries, expected ", n);
  }
  for (index_t i = 0; i < a.shape(0); ++i) {
    if (!std::isfinite(a.data()[i])) {
      PREFOPT_THROW(invalid_argument, fn, ": ", arg, "[", i, "] = ", a.data()[i],
                    ", expected a finite number");
    }
  }
  return Eigen::Map<const vector_d>(a.data(), a.shape(0));
}

row_matrix_d policy_in(const char* fn, const char* arg, const preference_game& game,
                       py::handle obj) {
  const index_t contexts = game.num_contexts(), n = game.num_actions();
  row_matrix_d p = table_in(fn, arg, obj, contexts, n, /*allow_vector=*/contexts == 1);
  for (index_t x = 0; x < contexts; ++x) {
    for (index_t y = 0; y < n; ++y) {
      if (p(x, y) < 0.0) {
        PREFOPT_THROW(invalid_argument, fn, ": ", arg, "[", x, ", ", y, "] = ", p(x, y),
                      ", expected a probability >= 0");
      }
    }
    const double sum = p.row(x).sum();
    if (std::abs(sum - 1.0) > 1e-6) {
      PREFOPT_THROW(invalid_argument, fn, ": ", arg, " row ", x, " sums to ", sum,
                    ", expected 1 (within 1e-6)");
    }
  }
  return p;
}

py::array to_numpy(const row_matrix_d& m) {
  py::array_t<double> out({m.rows(), m.cols()});
  Eigen::Map<row_matrix_d>(out.mutable_data(), m.rows(), m.cols()) = m;
  return out;
}

py::array to_numpy(const matrix_d& m) {
  py::array_t<double> out({m.rows(), m.cols()});
  Eigen::Map<row_matrix_d>(out.mutable_data(), m.rows(), m.cols()) = m;
  return out;
}

py::array to_numpy(const vector_d& v) {
  py::array_t<double> out(v.size());
  Eigen::Map<vector_d>(out.mutable_data(), v.size()) = v;
  return out;
}

// ---------------------------------------------------------------------------------------------
// prefopt.games
// ---------------------------------------------------------------------------------------------

namespace {

/// The game's preference matrices: `[n, n]` (2-d) for one context or `[contexts, n, n]`.
std::vector<matrix_d> preferences_in(const char* fn, py::handle obj) {
  const auto a = float64_in(fn, "preference", obj);
  if (a.ndim() != 2 && a.ndim() != 3) {
    PREFOPT_THROW(shape_error, fn, ": preference has ", a.ndim(),
                  " dimensions, expected [n, n] (one context) or [contexts, n, n]");
  }
  const bool single = a.ndim() == 2;
  const index_t contexts = single ? 1 : a.shape(0);
  const index_t rows = a.shape(single ? 0 : 1), cols = a.shape(single ? 1 : 2);
  if (rows != cols || rows == 0 || contexts == 0) {
    PREFOPT_THROW(shape_error, fn, ": preference has ", rows, " x ", cols, " matrices in ",
                  contexts,
                  " contexts, expected square n x n (n >= 1), at least "
                  "one context");
  }
  check_finite_entries(fn, "preference", a.data(), contexts * rows, cols);
  std::vector<matrix_d> out;
  for (index_t x = 0; x < contexts; ++x) {
    out.emplace_back(Eigen::Map<const row_matrix_d>(a.data() + x * rows * cols, rows, cols));
  }
  return out;
}

/// The reference of a game with `contexts` x `n`: None (uniform), `[n]` (every context) or
/// `[contexts, n]`.
row_matrix_d reference_in(const char* fn, py::handle obj, index_t contexts, index_t n) {
  if (obj.is_none()) return row_matrix_d::Constant(contexts, n, 1.0 / static_cast<double>(n));
  const auto a = float64_in(fn, "reference", obj);
  if (a.ndim() == 1) {
    const vector_d mu = vector_d_in(fn, "reference", a, n);
    return mu.transpose().replicate(contexts, 1);
  }
  return table_in(fn, "reference", a, contexts, n);
}

/// Optional catalog reference: empty (uniform) for None.
vector_d catalog_reference(const char* fn, py::handle obj) {
  return obj.is_none() ? vector_d() : vector_d_in(fn, "reference", obj, -1);
}

py::object optional_table(bool has, const row_matrix_d& m) {
  return has ? py::object(to_numpy(m)) : py::object(py::none());
}

py::array preferences_out(const preference_game& g) {
  const index_t c = g.num_contexts(), n = g.num_actions();
  py::array_t<double> out({c, n, n});
  for (index_t x = 0; x < c; ++x) {
    Eigen::Map<row_matrix_d>(out.mutable_data() + x * n * n, n, n) = g.preference(x);
  }
  return out;
}

std::string json_text(py::handle obj, const char* fn) {
  if (py::isinstance<py::str>(obj)) return obj.cast<std::string>();
  if (py::isinstance<py::dict>(obj)) {
    try {
      return py::module_::import("json").attr("dumps")(obj).cast<std::string>();
    } catch (py::error_already_set& e) {
      PREFOPT_THROW(parse_error, fn, ": the dict is not JSON-serialisable (", e.what(), ")");
    }
  }
  PREFOPT_THROW(dtype_error, fn, ": text of type ",
                py::str(py::type::of(obj).attr("__name__")).cast<std::string>(),
                ", expected a JSON string or a dict");
}

std::string repr(const preference_game& g) {
  return "prefopt.games.Game(contexts=" + std::to_string(g.num_contexts()) +
         ", actions=" + std::to_string(g.num_actions()) +
         ", tau=" + py::repr(py::float_(g.tau())).cast<std::string>() + ")";
}

}  // namespace

void bind_games(py::module_& m) {
  py::options doc_options;
  doc_options.disable_function_signatures();
  const auto none = py::none();

  py::class_<preference_game>(m, "Game",
                              R"(Game(preference, reference=None, tau=0.0, context_weights=None)

A preference game (ALGORITHMS.md §4): per context x an n x n matrix P[x] (P(y > y'), entries in
[0, 1], P + P^T = 1), a strictly positive reference mu(. | x), the KL weight tau >= 0 and context
weights rho (default uniform). preference: [n, n] (one context) or [contexts, n, n]; reference:
None (uniform), [n] (every context) or [contexts, n]; context_weights: [contexts]. Inputs are
converted to float64 (copied). Raises prefopt.ShapeError / prefopt.InvalidArgument naming the
argument and the context / entry.)")
      .def(py::init([](py::handle preference, py::handle reference, double tau,
                       py::handle context_weights) {
             constexpr const char* fn = "Game";
             auto ps = preferences_in(fn, preference);
             const auto contexts = static_cast<index_t>(ps.size());
             const index_t n = ps.front().rows();
             row_matrix_d mu = reference_in(fn, reference, contexts, n);
             vector_d rho = context_weights.is_none()
                                ? vector_d()
                                : vector_d_in(fn, "context_weights", context_weights, contexts);
             return preference_game(std::move(ps), std::move(mu), tau, std::move(rho));
           }),
           "preference"_a, "reference"_a = none, "tau"_a = 0.0, "context_weights"_a = none)
      .def_property_readonly("num_contexts", &preference_game::num_contexts,
                             "Number of contexts (prompts) x.")
      .def_property_readonly("num_actions", &preference_game::num_actions,
                             "Number of responses n per context.")
      .def_property_readonly("tau", &preference_game::tau, "KL weight tau >= 0.")
      .def_property_readonly("preferences", &preferences_out,
                             "[contexts, n, n] float64: P[x](y, y') = P(y > y' | x) (a copy).")
      .def(
          "preference",
          [](const preference_game& g, index_t context) {
            if (context < 0 || context >= g.num_contexts()) {
              PREFOPT_THROW(invalid_argument, "Game.preference: context = ", context,
                            ", expected a context in [0, ", g.num_contexts(), ")");
            }
            return to_numpy(g.preference(context));
          },
          "context"_a = 0,
          R"(preference(context=0) -> array

[n, n] float64 preference matrix of one context (a copy). Raises prefopt.InvalidArgument for a
context outside [0, num_contexts).)")
      .def_property_readonly(
          "reference", [](const preference_game& g) { return to_numpy(g.reference()); },
          "[contexts, n] float64: mu(. | x) (a copy).")
      .def_property_readonly(
          "context_weights", [](const preference_game& g) { return to_numpy(g.context_weights()); },
          "[contexts] float64: rho(x) (a copy).")
      .def_property_readonly(
          "lengths",
          [](const preference_game& g) { return optional_table(g.has_lengths(), g.lengths()); },
          "[contexts, n] float64 response lengths, or None.")
      .def_property_readonly(
          "gold_rewards",
          [](const preference_game& g) {
            return optional_table(g.has_gold_rewards(), g.gold_rewards());
          },
          "[contexts, n] float64 gold rewards, or None.")
      .def(
          "with_tau", [](const preference_game& g, double tau) { return g.with_tau(tau); }, "tau"_a,
          "with_tau(tau) -> Game\n\nThe same game with KL weight tau (finite, >= 0).")
      .def(
          "with_reference",
          [](const preference_game& g, py::handle reference) {
            return g.with_reference(
                reference_in("Game.with_reference", reference, g.num_contexts(), g.num_actions()));
          },
          "reference"_a,
          "with_reference(reference) -> Game\n\nThe same game with reference [n] or [contexts, "
          "n] (strictly positive rows summing to 1).")
      .def(
          "with_lengths",
          [](const preference_game& g, py::handle lengths) {
            return g.with_lengths(table_in("Game.with_lengths", "lengths", lengths,
                                           g.num_contexts(), g.num_actions(), true));
          },
          "lengths"_a, "with_lengths(lengths) -> Game\n\nThe same game with [contexts, n] lengths.")
      .def(
          "with_gold_rewards",
          [](const preference_game& g, py::handle rewards) {
            return g.with_gold_rewards(table_in("Game.with_gold_rewards", "gold_rewards", rewards,
                                                g.num_contexts(), g.num_actions(), true));
          },
          "gold_rewards"_a,
          "with_gold_rewards(gold_rewards) -> Game\n\nThe same game with [contexts, n] gold "
          "rewards.")
      .def(
          "to_json", [](const preference_game& g) { return io::game_to_json(g).dump(); },
          "to_json() -> str\n\nThe game as JSON text (io/game_json.hpp's `contexts` form).")
      .def("__repr__", &repr)
      .def(py::pickle([](const preference_game& g) { return io::game_to_json(g).dump(); },
                      [](const std::string& text) {
                        return io::game_from_json(io::parse_json(text, "Game.__setstate__"));
                      }));

  m.def(
      "from_json",
      [](py::handle text) {
        return io::game_from_json(
            io::parse_json(json_text(text, "games.from_json"), "games.from_json"));
      },
      "text"_a,
      R"(from_json(text) -> Game

A game from JSON text (or a dict, serialised with json.dumps) in the format of
include/prefopt/io/game_json.hpp: {"tau": ..., "contexts": [{"preference": [[...]], "reference":
[...], "weight": ..., "lengths": [...], "gold_rewards": [...]}]} or a single context at the top
level. Raises prefopt.ParseError naming the JSON path (e.g. /contexts/1/preference/0/2).)");
  m.def(
      "to_json", [](const preference_game& g) { return io::game_to_json(g).dump(); }, "game"_a,
      "to_json(game) -> str\n\nThe game as JSON text (every context, weights included); "
      "from_json(to_json(g)) gives the same game.");
  m.def(
      "read_json", [](const std::string& path) { return io::read_game_json(path); }, "path"_a,
      "read_json(path) -> Game\n\nReads a game JSON file. Raises prefopt.IoError (unreadable) or "
      "prefopt.ParseError (malformed, naming the file and the JSON path).");
  m.def(
      "write_json",
      [](const std::string& path, const preference_game& g) { io::write_game_json(path, g); },
      "path"_a, "game"_a,
      "write_json(path, game) -> None\n\nWrites the game as JSON, atomically. Raises "
      "prefopt.IoError.");

  // The catalog (games/catalog.hpp), each from its definition.
  m.def(
      "efron_dice",
      [](py::handle ref, double tau) {
        return efron_dice_game(catalog_reference("efron_dice", ref), tau);
      },
      "reference"_a = none, "tau"_a = 0.0,
      "efron_dice(reference=None, tau=0.0) -> Game\n\nEfron-type intransitive dice {2,4,9}, "
      "{1,6,8}, {3,5,7}: die 0 beats 1, 1 beats 2, 2 beats 0, each with probability 5/9; the tau = "
      "0 equilibrium is uniform. reference: [3] (default uniform).");
  m.def(
      "rock_paper_scissors",
      [](py::handle ref, double tau) {
        return rock_paper_scissors_game(catalog_reference("rock_paper_scissors", ref), tau);
      },
      "reference"_a = none, "tau"_a = 0.0,
      "rock_paper_scissors(reference=None, tau=0.0) -> Game\n\nP = [[1/2, 1, 0], [0, 1/2, 1], "
      "[1, 0, 1/2]] (action i beats i + 1 mod 3).");
  m.def(
      "biased_rock_paper_scissors",
      [](double p01, double p12, double p20, py::handle ref, double tau) {
        return biased_rock_paper_scissors_game(
            p01, p12, p20, catalog_reference("biased_rock_paper_scissors", ref), tau);
      },
      "p01"_a, "p12"_a, "p20"_a, "reference"_a = none, "tau"_a = 0.0,
      "biased_rock_paper_scissors(p01, p12, p20, reference=None, tau=0.0) -> Game\n\nCyclic "
      "3-action game P(0 > 1) = p01, P(1 > 2) = p12, P(2 > 0) = p20; with a = p01 - 1/2, b = p12 "
      "- 1/2, c = p20 - 1/2 of one strict sign the tau = 0 equilibrium is proportional to (b, c, "
      "a).");
  m.def(
      "condorcet_voters",
      [](index_t n, py::handle ref, double tau) {
        return condorcet_voters_game(n, catalog_reference("condorcet_voters", ref), tau);
      },
      "n"_a = 3, "reference"_a = none, "tau"_a = 0.0,
      "condorcet_voters(n=3, reference=None, tau=0.0) -> Game\n\nn equally weighted voters with "
      "cyclically shifted rankings (n >= 2); the equilibrium is uniform.");
  m.def(
      "epsilon_population",
      [](double eps, py::handle ref, double tau) {
        return epsilon_population_game(eps, catalog_reference("epsilon_population", ref), tau);
      },
      "eps"_a, "reference"_a = none, "tau"_a = 0.0,
      "epsilon_population(eps, reference=None, tau=0.0) -> Game\n\nThe three-rater-type "
      "population of Nash-MD Sec. 3.2 (-2/3 <= eps <= 1/3); tau = 0 equilibrium (1/3 + eps/2, "
      "1/3 + eps/2, 1/3 - eps).");
  m.def(
      "random_intransitive",
      [](index_t n, std::uint64_t seed, py::handle ref, double tau) {
        return random_intransitive_game(n, seed, catalog_reference("random_intransitive", ref),
                                        tau);
      },
      "n"_a, "seed"_a, "reference"_a = none, "tau"_a = 0.0,
      "random_intransitive(n, seed, reference=None, tau=0.0) -> Game\n\nP(i, j) ~ U(0, 1) for i "
      "> j (EGPO's generator), P(j, i) = 1 - P(i, j), seeded.");
  m.def(
      "bradley_terry",
      [](py::handle rewards, py::handle ref, double tau) {
        return bradley_terry_game(vector_d_in("bradley_terry", "rewards", rewards, -1),
                                  catalog_reference("bradley_terry", ref), tau);
      },
      "rewards"_a, "reference"_a = none, "tau"_a = 0.0,
      "bradley_terry(rewards, reference=None, tau=0.0) -> Game\n\nTransitive game P(i, j) = "
      "sigma(r_i - r_j) with gold rewards r ([n]); argmax r is the tau = 0 equilibrium.");
  m.def(
      "mixture",
      [](const std::vector<preference_game>& games, py::handle weights) {
        return mixture_game(
            games, weights.is_none() ? vector_d() : vector_d_in("mixture", "weights", weights, -1));
      },
      "games"_a, "weights"_a = none,
      "mixture(games, weights=None) -> Game\n\nOne multi-context game from the contexts of "
      "several games (same n and tau), context x of game k weighted by weights[k] rho_k(x) "
      "(weights default uniform).");
  m.def(
      "random_reference",
      [](index_t n, std::uint64_t seed) { return to_numpy(random_reference(n, seed)); }, "n"_a,
      "seed"_a,
      "random_reference(n, seed) -> array\n\nA seeded random reference softmax(N(0, 1)^n), [n].");

  py::class_<goal_task>(m, "GoalTask",
                        R"(GoalTask(outcome, goals, reference)

A goal-conditioned task with binary feedback (HIR, ALGORITHMS.md §10): response y achieves goal
outcome[y] in [0, goals); reference [n] strictly positive, summing to 1. Policies over (goal,
response) are [goals, n] tables.)")
      .def(py::init([](std::vector<index_t> outcome, index_t goals, py::handle reference) {
             const auto n = static_cast<index_t>(outcome.size());
             return goal_task(std::move(outcome), goals,
                              vector_d_in("GoalTask", "reference", reference, n));
           }),
           "outcome"_a, "goals"_a, "reference"_a)
      .def_static("random", &goal_task::random, "responses"_a, "goals"_a, "concentration"_a = 1.0,
                  "seed"_a = 0,
                  "random(responses, goals, concentration=1.0, seed=0) -> GoalTask\n\nResponses "
                  "assigned to goals round-robin after a seeded shuffle, reference softmax("
                  "concentration N(0, 1)).")
      .def_property_readonly("num_goals", &goal_task::num_goals, "Number of goals (contexts).")
      .def_property_readonly("num_responses", &goal_task::num_responses, "Number of responses n.")
      .def_property_readonly(
          "outcomes",
          [](const goal_task& t) {
            py::array_t<std::int64_t> out(t.num_responses());
            for (index_t y = 0; y < t.num_responses(); ++y) out.mutable_data()[y] = t.outcome(y);
            return out;
          },
          "[n] int64: the goal each response achieves.")
      .def_property_readonly(
          "reference", [](const goal_task& t) { return to_numpy(t.reference()); },
          "[n] float64 reference mu.")
      .def(
          "success_rate",
          [](const goal_task& t, py::handle policy) {
            const row_matrix_d p = table_in("GoalTask.success_rate", "policy", policy,
                                            t.num_goals(), t.num_responses());
            double total = 0.0;
            for (index_t g = 0; g < t.num_goals(); ++g) {
              for (index_t y = 0; y < t.num_responses(); ++y) {
                if (t.success(g, y)) total += p(g, y);
              }
            }
            return total / static_cast<double>(t.num_goals());
          },
          "policy"_a,
          "success_rate(policy) -> float\n\nmean_g sum_y policy[g, y] [outcome[y] == g] for a "
          "[goals, n] probability table.")
      .def(py::pickle(
          [](const goal_task& t) {
            std::vector<index_t> outcome;
            for (index_t y = 0; y < t.num_responses(); ++y) outcome.push_back(t.outcome(y));
            return py::make_tuple(outcome, t.num_goals(), to_numpy(t.reference()));
          },
          [](const py::tuple& state) {
            return goal_task(state[0].cast<std::vector<index_t>>(), state[1].cast<index_t>(),
                             vector_d_in("GoalTask.__setstate__", "reference", state[2], -1));
          }));
}

}  // namespace prefopt::python
