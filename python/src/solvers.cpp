/// \file
/// `prefopt.solvers`: every tabular solver of prefopt from Python. A factory per solver kind
/// (`nash_md(...)`, `dpo(...)`, ...) builds the C++ solver from its keyword arguments and returns
/// it as a `Solver`; `Solver.init(problem)` gives a `State`, `Solver.step(problem, state)` takes
/// one step (the step's statistics as a dict), and `Solver.run(problem, iterations)` runs it to
/// completion through `prefopt::run` with a `history_recorder`, returning the history as NumPy
/// arrays. One template, `solver_impl<S, Problem>`, serves every solver: the factories are the
/// only per-solver code, and they name only public C++ types (the solver classes, their config
/// structs, schedules and payoffs), so a solver's internals can change without touching this file.

#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "arrays.hpp"
#include "bindings.hpp"
#include "prefopt/callbacks/history.hpp"
#include "prefopt/core/customization.hpp"
#include "prefopt/diagnostics/divergence.hpp"
#include "prefopt/diagnostics/duality_gap.hpp"
#include "prefopt/diagnostics/win_rate.hpp"
#include "prefopt/games/goal_task.hpp"
#include "prefopt/solvers/common/run.hpp"
#include "prefopt/solvers/dpo_trainer.hpp"
#include "prefopt/solvers/hir.hpp"
#include "prefopt/solvers/nash/mirror_descent.hpp"
#include "prefopt/solvers/nash/onpo.hpp"
#include "prefopt/solvers/rlhf.hpp"
#include "tabular.hpp"

namespace prefopt::python {

namespace {

using namespace pybind11::literals;

// ---------------------------------------------------------------------------------------------
// Problems, states and statistics
// ---------------------------------------------------------------------------------------------

index_t problem_contexts(const preference_game& g) {
  return g.num_contexts();
}
index_t problem_contexts(const goal_task& t) {
  return t.num_goals();
}
index_t problem_actions(const preference_game& g) {
  return g.num_actions();
}
index_t problem_actions(const goal_task& t) {
  return t.num_responses();
}
const char* problem_name(const preference_game*) {
  return "prefopt.games.Game";
}
const char* problem_name(const goal_task*) {
  return "prefopt.games.GoalTask";
}

/// A step's statistics as a dict: every field a tabular solver's statistics may have, detected
/// by name (so that a solver's statistics struct can change without touching this file).
template <class Stats>
py::dict stats_dict(const Stats& s) {
  py::dict d;
  if constexpr (requires { s.iteration; }) d["iteration"] = s.iteration;
  if constexpr (requires { s.eta; }) d["eta"] = s.eta;
  if constexpr (requires { s.loss; }) d["loss"] = s.loss;
  if constexpr (requires { s.rewards_accuracies; }) {
    d["rewards_accuracies"] = s.rewards_accuracies;
  }
  if constexpr (requires { s.rewards_margins; }) d["rewards_margins"] = s.rewards_margins;
  if constexpr (requires { s.mean_score; }) d["mean_score"] = s.mean_score;
  if constexpr (requires { s.mean_kl; }) d["mean_kl"] = s.mean_kl;
  if constexpr (requires { s.kl_coefficient; }) d["kl_coefficient"] = s.kl_coefficient;
  if constexpr (requires { s.clip_fraction; }) d["clip_fraction"] = s.clip_fraction;
  if constexpr (requires { s.batch_success; }) d["batch_success"] = s.batch_success;
  return d;
}

template <class State>
constexpr bool has_average = requires(const State& s) {
  s.average_probabilities();
};

/// A solver's state as Python sees it (`prefopt.solvers.State`).
class state_object {
 public:
  state_object(std::string solver, index_t contexts, index_t actions)
      : solver_(std::move(solver)), contexts_(contexts), actions_(actions) {}
  virtual ~state_object() = default;
  state_object(const state_object&) = delete;
  state_object& operator=(const state_object&) = delete;

  [[nodiscard]] const std::string& solver() const noexcept { return solver_; }
  [[nodiscard]] index_t contexts() const noexcept { return contexts_; }
  [[nodiscard]] index_t actions() const noexcept { return actions_; }
  [[nodiscard]] virtual row_matrix_d probabilities() const = 0;
  [[nodiscard]] virtual row_matrix_d logits() const = 0;
  /// `[contexts, n]`, or None when the solver keeps no average iterate.
  [[nodiscard]] virtual py::object average_probabilities() const = 0;
  [[nodiscard]] virtual index_t iteration() const = 0;

 private:
  std::string solver_;
  index_t contexts_, actions_;
};

template <class State>
class state_impl final : public state_object {
 public:
  state_impl(std::string solver, index_t contexts, index_t actions, State s)
      : state_object(std::move(solver), contexts, actions), state(std::move(s)) {}

  [[nodiscard]] row_matrix_d probabilities() const override {
    return probability_table(state.policy());
  }
  [[nodiscard]] row_matrix_d logits() const override { return state.policy().logits(); }
  [[nodiscard]] py::object average_probabilities() const override {
    if constexpr (has_average<State>) {
      return to_numpy(state.average_probabilities());
    } else {
      return py::none();
    }
  }
  [[nodiscard]] index_t iteration() const override {
    return static_cast<index_t>(state.iteration());
  }

  State state;
};

/// The metrics recorded by `Solver.run`, one `MetricGroup`: the game diagnostics of the current
/// iterate (and of the average one, when the state keeps it) or a goal task's success rate, then
/// optionally the probability tables themselves (`snapshots`).
template <class Problem, bool Average>
struct run_metrics {
  index_t contexts = 0, actions = 0;
  bool snapshots = false;

  static std::vector<std::string> scalar_names() {
    if constexpr (std::is_same_v<Problem, goal_task>) {
      return {"success_rate"};
    } else {
      std::vector<std::string> n = {"duality_gap", "exploitability", "unregularised_gap",
                                    "kl_to_reference", "win_rate_vs_reference"};
      if (Average) {
        n.insert(n.end(),
                 {"average_duality_gap", "average_unregularised_gap", "average_kl_to_reference"});
      }
      return n;
    }
  }
  [[nodiscard]] std::vector<std::string> names() const {
    auto n = scalar_names();
    if (snapshots) {
      const auto entries = static_cast<std::size_t>(contexts * actions);
      n.insert(n.end(), entries, "policy");
      if (Average) n.insert(n.end(), entries, "average_policy");
    }
    return n;
  }

  static void game_metrics(const preference_game& g, const row_matrix_d& pi, bool full,
                           std::vector<double>& out) {
    if (!pi.allFinite()) {
      out.insert(out.end(), full ? 5 : 3, std::numeric_limits<double>::quiet_NaN());
      return;
    }
    out.push_back(duality_gap(g, pi));
    if (full) out.push_back(exploitability(g, pi));
    out.push_back(unregularised_duality_gap(g, pi));
    out.push_back(kl_to_reference(g, pi));
    if (full) out.push_back(win_rate(g, pi, g.reference()));
  }

  template <class State>
  void evaluate(const Problem& problem, const State& state, std::vector<double>& out) const {
    const row_matrix_d pi = probability_table(state.policy());
    if constexpr (std::is_same_v<Problem, goal_task>) {
      out.push_back(problem.success_rate(state.policy()));
    } else {
      game_metrics(problem, pi, true, out);
      if constexpr (Average) game_metrics(problem, state.average_probabilities(), false, out);
    }
    if (snapshots) {
      out.insert(out.end(), pi.data(), pi.data() + pi.size());
      if constexpr (Average) {
        const row_matrix_d avg = state.average_probabilities();
        out.insert(out.end(), avg.data(), avg.data() + avg.size());
      }
    }
  }
};

/// A run callback that lets Ctrl-C (or any pending Python signal) stop a long run: every 1024
/// steps it takes the GIL and runs Python's signal handlers; a handler that raised stops the
/// run, and `Solver.run` then raises that exception (KeyboardInterrupt).
struct interrupt_check {
  bool interrupted = false;

  template <class Event>
  bool on_step(const Event& e) {
    if (e.iteration % 1024 != 0) return false;
    const py::gil_scoped_acquire gil;
    interrupted = PyErr_CheckSignals() != 0;
    return interrupted;
  }
};

/// A solver as Python sees it (`prefopt.solvers.Solver`).
class solver_object {
 public:
  solver_object() = default;
  virtual ~solver_object() = default;
  solver_object(const solver_object&) = delete;
  solver_object& operator=(const solver_object&) = delete;

  [[nodiscard]] virtual const std::string& name() const = 0;
  [[nodiscard]] virtual const char* problem() const = 0;
  [[nodiscard]] virtual bool averaged() const = 0;
  [[nodiscard]] virtual std::unique_ptr<state_object> init(py::handle problem) const = 0;
  virtual py::dict step(py::handle problem, state_object& state) const = 0;
  virtual py::dict run(py::handle problem, index_t iterations, index_t every, bool snapshots,
                       const state_object* from) const = 0;
};

template <class S, class Problem>
class solver_impl final : public solver_object {
 public:
  using state_type = solver_state_t<S, Problem>;
  using impl_state = state_impl<state_type>;

  solver_impl(std::string name, S solver) : name_(std::move(name)), solver_(std::move(solver)) {}

  [[nodiscard]] const std::string& name() const override { return name_; }
  [[nodiscard]] const char* problem() const override {
    return problem_name(static_cast<const Problem*>(nullptr));
  }
  [[nodiscard]] bool averaged() const override { return has_average<state_type>; }

  [[nodiscard]] std::unique_ptr<state_object> init(py::handle problem) const override {
    const Problem& p = problem_in("init", problem);
    return std::make_unique<impl_state>(name_, problem_contexts(p), problem_actions(p),
                                        solver_.init(p));
  }

  py::dict step(py::handle problem, state_object& state) const override {
    const Problem& p = problem_in("step", problem);
    impl_state& s = state_in("step", p, state);
    return stats_dict(solver_.step(p, s.state));
  }

  py::dict run(py::handle problem, index_t iterations, index_t every, bool snapshots,
               const state_object* from) const override {
    const std::string fn = name_ + ".run";
    const Problem& p = problem_in("run", problem);
    if (iterations < 0) {
      PREFOPT_THROW(invalid_argument, fn, ": iterations = ", iterations, ", expected >= 0");
    }
    if (every < 1) PREFOPT_THROW(invalid_argument, fn, ": every = ", every, ", expected >= 1");
    using metrics = run_metrics<Problem, has_average<state_type>>;
    const metrics group{problem_contexts(p), problem_actions(p), snapshots};
    history_recorder recorder(every, /*snapshots=*/false, group);
    interrupt_check interrupt;
    std::optional<run_result<state_type>> result;
    {
      std::optional<state_type> start;
      if (from != nullptr) start.emplace(state_in("run", p, *from).state);
      py::gil_scoped_release release;
      const run_options options{iterations};
      result.emplace(from != nullptr ? prefopt::run_from(solver_, p, std::move(*start), options,
                                                         recorder, interrupt)
                                     : prefopt::run(solver_, p, options, recorder, interrupt));
    }
    if (interrupt.interrupted) throw py::error_already_set();
    return history_dict(*result, recorder.history(), group);
  }

 private:
  const Problem& problem_in(const char* method, py::handle obj) const {
    if (!py::isinstance<Problem>(obj)) {
      PREFOPT_THROW(invalid_argument, name_, ".", method, ": problem is a ",
                    py::str(py::type::of(obj).attr("__name__")).cast<std::string>(),
                    ", expected a ", problem());
    }
    return obj.cast<const Problem&>();
  }

  /// `state` as this solver's state type (`Base` is `state_object` or `const state_object`).
  template <class Base>
  auto& state_in(const char* method, const Problem& p, Base& state) const {
    using target = std::conditional_t<std::is_const_v<Base>, const impl_state, impl_state>;
    auto* s = dynamic_cast<target*>(&state);
    if (s == nullptr) {
      PREFOPT_THROW(invalid_argument, name_, ".", method, ": state was made by a '", state.solver(),
                    "' solver, expected one made by init of a '", name_, "' solver");
    }
    if (s->contexts() != problem_contexts(p) || s->actions() != problem_actions(p)) {
      PREFOPT_THROW(shape_error, name_, ".", method, ": state is for a problem of ", s->contexts(),
                    " contexts x ", s->actions(), " actions, but problem has ", problem_contexts(p),
                    " x ", problem_actions(p));
    }
    return *s;
  }

  template <class Group>
  py::dict history_dict(run_result<state_type>& result, const run_history& h,
                        const Group& group) const {
    const auto records = static_cast<index_t>(h.iterations.size());
    const auto scalars = Group::scalar_names();
    py::array_t<std::int64_t> its(records);
    py::array_t<double> secs(records);
    for (index_t k = 0; k < records; ++k) {
      its.mutable_data()[k] = h.iterations[static_cast<std::size_t>(k)];
      secs.mutable_data()[k] = h.seconds[static_cast<std::size_t>(k)];
    }
    py::dict history("iteration"_a = its, "seconds"_a = secs);
    for (std::size_t m = 0; m < scalars.size(); ++m) {
      py::array_t<double> curve(records);
      for (index_t k = 0; k < records; ++k) {
        curve.mutable_data()[k] = h.values[static_cast<std::size_t>(k)][m];
      }
      history[py::str(scalars[m])] = curve;
    }
    if (group.snapshots) {
      const index_t c = group.contexts, n = group.actions;
      auto tables = [&](std::size_t first, const char* key) {
        py::array_t<double> out({records, c, n});
        for (index_t k = 0; k < records; ++k) {
          const auto& row = h.values[static_cast<std::size_t>(k)];
          std::copy(row.begin() + static_cast<std::ptrdiff_t>(first),
                    row.begin() + static_cast<std::ptrdiff_t>(first) + c * n,
                    out.mutable_data() + k * c * n);
        }
        history[key] = out;
      };
      tables(scalars.size(), "policy");
      if (has_average<state_type>)
        tables(scalars.size() + static_cast<std::size_t>(c * n), "average_policy");
    }
    std::unique_ptr<state_object> state =
        std::make_unique<impl_state>(name_, group.contexts, group.actions, std::move(result.state));
    py::object final_state = py::cast(std::move(state));
    return py::dict("status"_a = to_string(result.status), "message"_a = result.message,
                    "iterations"_a = result.iterations, "seconds"_a = result.seconds,
                    "state"_a = final_state, "history"_a = history);
  }

  std::string name_;
  S solver_;
};

template <class Problem, class S>
std::unique_ptr<solver_object> make(std::string name, S solver) {
  return std::make_unique<solver_impl<S, Problem>>(std::move(name), std::move(solver));
}

// ---------------------------------------------------------------------------------------------
// Reading factory arguments
// ---------------------------------------------------------------------------------------------

/// `initial`: 'reference', 'uniform' or a `[contexts, n]` probability table (strictly positive).
initial_policy initial_in(const char* fn, py::handle initial) {
  if (py::isinstance<py::str>(initial)) {
    const auto s = initial.cast<std::string>();
    if (s == "reference") return initial_policy::reference();
    if (s == "uniform") return initial_policy::uniform();
    PREFOPT_THROW(invalid_argument, fn, ": initial = '", s,
                  "', expected 'reference', 'uniform' or a [contexts, n] probability table");
  }
  return initial_policy::from_probabilities(table_in(fn, "initial", initial, -1, -1, true));
}

/// Calls `make(payoff)` with the payoff named by `payoff` ('exact' or 'sampled').
template <class F>
std::unique_ptr<solver_object> with_payoff(const char* fn, std::string_view payoff, index_t samples,
                                           std::uint64_t seed, F&& make_with) {
  if (payoff == "exact") return make_with(exact_payoff{});
  if (payoff != "sampled") {
    PREFOPT_THROW(invalid_argument, fn, ": payoff = '", payoff, "', expected 'exact' or 'sampled'");
  }
  if (samples < 1) PREFOPT_THROW(invalid_argument, fn, ": samples = ", samples, ", expected >= 1");
  sampled_payoff p;
  p.samples = samples;
  p.seed = seed;
  return make_with(p);
}

/// A constant step size from `eta` (a finite float > 0), with the solver's name in the error.
constant_step step_in(const char* fn, py::handle eta) {
  const double v = eta.is_none() ? 0.0 : eta.cast<double>();
  if (!(std::isfinite(v) && v > 0.0)) {
    PREFOPT_THROW(invalid_argument, fn, ": eta = ", py::str(eta).cast<std::string>(),
                  ", expected a finite eta > 0");
  }
  return constant_step(v);
}

/// Nash-MD and OMD / INPO: `eta=None` is the theory schedule `2 / (tau (t + 2))`.
template <template <class, class> class Solver>
std::unique_ptr<solver_object> mirror_descent(const char* fn, py::handle eta,
                                              std::string_view payoff, index_t samples,
                                              std::uint64_t seed, py::handle initial) {
  const initial_policy start = initial_in(fn, initial);
  return with_payoff(fn, payoff, samples, seed, [&](auto p) {
    using payoff_t = decltype(p);
    if (eta.is_none()) {
      return make<preference_game>(fn, Solver<theory_step, payoff_t>({}, p, start));
    }
    return make<preference_game>(fn, Solver<constant_step, payoff_t>(step_in(fn, eta), p, start));
  });
}

/// Self-play MWU on the unregularised game, constant step.
std::unique_ptr<solver_object> self_play(const char* fn, py::handle eta, std::string_view payoff,
                                         index_t samples, std::uint64_t seed, py::handle initial) {
  const initial_policy start = initial_in(fn, initial);
  const constant_step step = step_in(fn, eta);
  return with_payoff(fn, payoff, samples, seed, [&](auto p) {
    return make<preference_game>(fn, self_play_mwu<constant_step, decltype(p)>(step, p, start));
  });
}

/// ONPO and its regularised form, constant step.
template <template <class> class Solver>
std::unique_ptr<solver_object> optimistic(const char* fn, py::handle eta, std::string_view payoff,
                                          index_t samples, std::uint64_t seed, py::handle initial) {
  const initial_policy start = initial_in(fn, initial);
  const constant_step step = step_in(fn, eta);
  return with_payoff(fn, payoff, samples, seed, [&](auto p) {
    return make<preference_game>(fn, Solver<decltype(p)>(step, p, start));
  });
}

/// The factories of the payoff-based game solvers share their keywords.
using payoff_factory = std::unique_ptr<solver_object> (*)(const char*, py::handle, std::string_view,
                                                          index_t, std::uint64_t, py::handle);

void def_payoff_solver(py::module_& m, const char* name, payoff_factory factory,
                       const py::object& eta, const char* initial, const char* doc) {
  m.def(
      name,
      [name, factory](py::handle eta_value, std::string_view payoff, index_t samples,
                      std::uint64_t seed, py::handle initial_value) {
        return factory(name, eta_value, payoff, samples, seed, initial_value);
      },
      py::kw_only(), py::arg("eta") = eta, py::arg("payoff") = "exact", py::arg("samples") = 16,
      py::arg("seed") = 0, py::arg("initial") = initial, doc);
}

optimizer_config optimizer_in(const char* fn, std::string_view kind, double learning_rate) {
  optimizer_config o;
  if (kind == "sgd") {
    o.kind = optimizer_kind::sgd;
  } else if (kind != "adam") {
    PREFOPT_THROW(invalid_argument, fn, ": optimizer = '", kind, "', expected 'adam' or 'sgd'");
  }
  o.learning_rate = learning_rate;
  o.validate(fn);
  return o;
}

/// The factory of a direct-alignment solver `S` (`tabular_dpo`, ...): its config's fields as
/// keywords.
template <class S>
void def_direct_alignment(py::module_& m, const char* name, const char* doc) {
  m.def(
      name,
      [name](double beta_dpo, bool length_average, double gamma_simpo, std::string_view source,
             index_t dataset_size, index_t batch_size, std::string_view optimizer,
             double learning_rate, std::uint64_t seed) {
        dpo_trainer_config c;
        c.loss.beta_dpo = beta_dpo;
        c.loss.length_average = length_average;
        c.loss.gamma_simpo = gamma_simpo;
        if (source != "online" && source != "offline") {
          PREFOPT_THROW(invalid_argument, name, ": source = '", source,
                        "', expected 'offline' or 'online'");
        }
        c.source = source == "online" ? pair_source::online : pair_source::offline;
        c.dataset_size = dataset_size;
        c.batch_size = batch_size;
        c.optimizer = optimizer_in(name, optimizer, learning_rate);
        c.seed = seed;
        return make<preference_game>(name, S(c));
      },
      py::kw_only(), py::arg("beta_dpo") = 0.1, py::arg("length_average") = false,
      py::arg("gamma_simpo") = 0.0, py::arg("source") = "offline", py::arg("dataset_size") = 4096,
      py::arg("batch_size") = 64, py::arg("optimizer") = "adam", py::arg("learning_rate") = 0.05,
      py::arg("seed") = 0, doc);
}

// The factories' keyword arguments and their docstrings.

#define PREFOPT_PAYOFF_DOC                                                                      \
  "payoff: 'exact' (P pi) or 'sampled' (Monte-Carlo with Bernoulli labels, `samples` opponent " \
  "draws per context and step, seeded by `seed`). initial: 'reference', 'uniform' or a "        \
  "[contexts, n] strictly positive probability table."

#define PREFOPT_DIRECT_DOC(NAME, LOSS)                                                             \
  NAME "(*, beta_dpo=0.1, length_average=False, gamma_simpo=0.0, "                                 \
       "source='offline', dataset_size=4096, batch_size=64, optimizer='adam', "                    \
       "learning_rate=0.05, seed=0) -> Solver\n\nTabular " LOSS                                    \
       " (solvers/dpo_trainer.hpp, on a game): a softmax table trained from mu by minibatches of " \
       "oracle-labelled pairs, drawn once from mu x mu (source 'offline', dataset_size pairs) "    \
       "or from the current policy every step ('online'). Step statistics: loss, "                 \
       "rewards_accuracies, rewards_margins."

}  // namespace

void bind_solvers(py::module_& m) {
  py::options doc_options;
  doc_options.disable_function_signatures();
  const auto none = py::none();

  py::class_<state_object>(m, "State",
                           "State()\n\nA solver's state, made by Solver.init or returned by "
                           "Solver.run (not constructible from Python).")
      .def_property_readonly("solver", &state_object::solver, "The solver kind that made it.")
      .def_property_readonly("iteration", &state_object::iteration, "Steps taken.")
      .def(
          "policy", [](const state_object& s) { return to_numpy(s.probabilities()); },
          "policy() -> array\n\nThe current iterate's [contexts, n] probabilities (a copy).")
      .def(
          "logits", [](const state_object& s) { return to_numpy(s.logits()); },
          "logits() -> array\n\nThe current iterate's [contexts, n] logits (a copy).")
      .def("average_policy", &state_object::average_probabilities,
           "average_policy() -> array or None\n\nThe average of the played iterates [contexts, "
           "n] for solvers that keep it (mirror descent, ONPO), else None.");

  py::class_<solver_object>(m, "Solver",
                            "Solver()\n\nA tabular solver, made by one of the factories of "
                            "prefopt.solvers (not constructible from Python).")
      .def_property_readonly("name", &solver_object::name, "The solver kind ('nash_md', ...).")
      .def_property_readonly("problem", &solver_object::problem,
                             "The problem type it solves (Game or GoalTask).")
      .def_property_readonly("averaged", &solver_object::averaged,
                             "True when its state keeps the average iterate.")
      .def("init", &solver_object::init, "problem"_a,
           "init(problem) -> State\n\nThe first iterate for `problem` (a Game, or a GoalTask for "
           "hir).")
      .def("step", &solver_object::step, "problem"_a, "state"_a,
           "step(problem, state) -> dict\n\nOne step in place on `state` (made by init of a "
           "solver of the same kind, for a problem of the same size); returns the step's "
           "statistics.")
      .def(
          "run",
          [](const solver_object& s, py::handle problem, index_t iterations, index_t every,
             bool snapshots, const state_object* state) {
            return s.run(problem, iterations, every, snapshots, state);
          },
          "problem"_a, "iterations"_a, py::kw_only(), "every"_a = 1, "snapshots"_a = false,
          "state"_a = none,
          R"(run(problem, iterations, *, every=1, snapshots=False, state=None) -> dict

Runs the solver through prefopt::run for `iterations` steps (from init, or continuing from a copy
of `state`), recording before the first step, every `every` steps and at the end. Returns a dict:
status ('completed' or 'diverged'), message, iterations, seconds, state (the final State) and
history: iteration (int64 [K]), seconds, and one float64 [K] curve per metric: for a Game
duality_gap, exploitability, unregularised_gap, kl_to_reference, win_rate_vs_reference (of the
current iterate) and, for averaged solvers, average_duality_gap, average_unregularised_gap,
average_kl_to_reference; for a GoalTask success_rate. snapshots=True adds policy (and
average_policy) [K, contexts, n]. The GIL is released while it runs; Ctrl-C (a pending Python
signal, checked every 1024 steps) stops it and raises KeyboardInterrupt.)")
      .def("__repr__",
           [](const solver_object& s) { return "prefopt.solvers.Solver('" + s.name() + "')"; });

  const py::object half = py::float_(0.5);
  def_payoff_solver(
      m, "nash_md", &mirror_descent<nash_md>, none, "reference",
      "nash_md(*, eta=None, payoff='exact', samples=16, seed=0, initial='reference') -> "
      "Solver\n\nTabular Nash-MD (ALGORITHMS.md §5): the mirror step against the geometric "
      "mixture pi^{1 - eta tau} mu^{eta tau}; needs a game with tau > 0. eta: None for the "
      "theory schedule 2 / (tau (t + 2)), else a constant step. " PREFOPT_PAYOFF_DOC);
  def_payoff_solver(
      m, "omd", &mirror_descent<omd>, none, "reference",
      "omd(*, eta=None, payoff='exact', samples=16, seed=0, initial='reference') -> "
      "Solver\n\nTabular online mirror descent on the regularised game against the current "
      "iterate (the closed-form INPO update; ALGORITHMS.md §5, §7); needs tau > 0. "
      "eta as for nash_md. " PREFOPT_PAYOFF_DOC);
  def_payoff_solver(
      m, "inpo", &mirror_descent<inpo>, none, "reference",
      "inpo(*, eta=None, payoff='exact', samples=16, seed=0, initial='reference') -> "
      "Solver\n\nTabular INPO (Iterative Nash Policy Optimization, arXiv 2407.00617) in its "
      "closed form, which is omd: pi_{t+1} proportional to pi_t^{1 - eta tau} mu^{eta tau} "
      "exp(eta P pi_t); needs tau > 0. " PREFOPT_PAYOFF_DOC);
  def_payoff_solver(
      m, "self_play", &self_play, half, "uniform",
      "self_play(*, eta=0.5, payoff='exact', samples=16, seed=0, initial='uniform') -> "
      "Solver\n\nSelf-play multiplicative weights on the unregularised game (tau ignored), "
      "constant step eta; judged by its average iterate. " PREFOPT_PAYOFF_DOC);
  def_payoff_solver(
      m, "onpo", &optimistic<onpo>, half, "uniform",
      "onpo(*, eta=0.5, payoff='exact', samples=16, seed=0, initial='uniform') -> "
      "Solver\n\nTabular ONPO, optimistic online mirror descent on the unregularised game "
      "(ALGORITHMS.md §8, arXiv 2502.16852), constant step eta; its average iterate converges "
      "at rate O(1/T). " PREFOPT_PAYOFF_DOC);
  def_payoff_solver(
      m, "regularised_onpo", &optimistic<regularised_onpo>, half, "uniform",
      "regularised_onpo(*, eta=0.5, payoff='exact', samples=16, seed=0, initial='uniform') -> "
      "Solver\n\nONPO on the tau-regularised game (needs tau > 0 and eta tau <= "
      "1). " PREFOPT_PAYOFF_DOC);

  def_direct_alignment<tabular_dpo>(m, "dpo", PREFOPT_DIRECT_DOC("dpo", "DPO (sigmoid loss)"));
  def_direct_alignment<tabular_ipo>(m, "ipo", PREFOPT_DIRECT_DOC("ipo", "IPO (squared loss)"));
  def_direct_alignment<tabular_simpo>(
      m, "simpo", PREFOPT_DIRECT_DOC("simpo", "SimPO (reference-free, margin gamma_simpo)"));
  def_direct_alignment<tabular_slic>(m, "slic", PREFOPT_DIRECT_DOC("slic", "SLiC (hinge loss)"));

  m.def(
      "rlhf_ppo",
      [](double kl_coefficient, std::string_view kl_control_name, double kl_target,
         double kl_horizon, index_t batch_size, index_t minibatch_size, index_t epochs,
         double eps_clip, index_t reward_pairs, index_t reward_iterations,
         std::string_view optimizer, double learning_rate, std::uint64_t seed) {
        constexpr const char* fn = "rlhf_ppo";
        rlhf_ppo_config c;
        c.tau = kl_coefficient;
        if (kl_control_name == "adaptive") {
          c.control = kl_control::adaptive;
        } else if (kl_control_name != "fixed") {
          PREFOPT_THROW(invalid_argument, fn, ": kl_control = '", kl_control_name,
                        "', expected 'fixed' or 'adaptive'");
        }
        c.kl_target = kl_target;
        c.kl_horizon = kl_horizon;
        c.batch_size = batch_size;
        c.minibatch_size = minibatch_size;
        c.epochs = epochs;
        c.eps_clip = eps_clip;
        c.reward.pairs = reward_pairs;
        c.reward.iterations = reward_iterations;
        c.optimizer = optimizer_in(fn, optimizer, learning_rate);
        c.seed = seed;
        return make<preference_game>(fn, tabular_rlhf_ppo(c));
      },
      py::kw_only(), "kl_coefficient"_a = 0.1, "kl_control"_a = "fixed", "kl_target"_a = 0.05,
      "kl_horizon"_a = 10000.0, "batch_size"_a = 256, "minibatch_size"_a = 64, "epochs"_a = 4,
      "eps_clip"_a = 0.2, "reward_pairs"_a = 8192, "reward_iterations"_a = 1500,
      "optimizer"_a = "adam", "learning_rate"_a = 0.05, "seed"_a = 0,
      "rlhf_ppo(*, kl_coefficient=0.1, kl_control='fixed', kl_target=0.05, kl_horizon=10000.0, "
      "batch_size=256, minibatch_size=64, epochs=4, eps_clip=0.2, reward_pairs=8192, "
      "reward_iterations=1500, optimizer='adam', learning_rate=0.05, seed=0) -> Solver\n\n"
      "Tabular RLHF (solvers/rlhf.hpp): init fits a Bradley-Terry reward on reward_pairs "
      "labelled pairs from mu x mu, then every step is one PPO iteration (batch_size rollouts, "
      "epochs passes of minibatches, clipped surrogate) on the KL-shaped reward (fixed or "
      "adaptive KL coefficient). Step statistics: loss, mean_score, mean_kl, kl_coefficient, "
      "clip_fraction.");
  m.def(
      "hir",
      [](std::string_view mode, std::string_view contrast, index_t batch_size,
         index_t updates_per_round, double eps_ls, double w_con, double w_ent,
         std::string_view optimizer, double learning_rate, std::uint64_t seed) {
        constexpr const char* fn = "hir";
        hir_config h;
        if (mode == "hindsight") {
          h.mode = hir_mode::hindsight;
        } else if (mode == "no_relabeling") {
          h.mode = hir_mode::no_relabeling;
        } else if (mode == "successes_only") {
          h.mode = hir_mode::successes_only;
        } else {
          PREFOPT_THROW(invalid_argument, fn, ": mode = '", mode,
                        "', expected 'hindsight', 'no_relabeling' or 'successes_only'");
        }
        if (contrast == "k_way") {
          h.contrast = hir_contrast::k_way;
        } else if (contrast != "two_way") {
          PREFOPT_THROW(invalid_argument, fn, ": contrast = '", contrast,
                        "', expected 'two_way' or 'k_way'");
        }
        h.batch_size = batch_size;
        h.updates_per_round = updates_per_round;
        h.eps_ls = eps_ls;
        h.w_con = w_con;
        h.w_ent = w_ent;
        h.optimizer = optimizer_in(fn, optimizer, learning_rate);
        h.seed = seed;
        return make<goal_task>(fn, tabular_hir(h));
      },
      py::kw_only(), "mode"_a = "hindsight", "contrast"_a = "two_way", "batch_size"_a = 64,
      "updates_per_round"_a = 4, "eps_ls"_a = losses::hir_defaults::eps_ls,
      "w_con"_a = losses::hir_defaults::w_con, "w_ent"_a = losses::hir_defaults::w_ent,
      "optimizer"_a = "adam", "learning_rate"_a = 0.05, "seed"_a = 0,
      "hir(*, mode='hindsight', contrast='two_way', batch_size=64, updates_per_round=4, "
      "eps_ls=0.2, w_con=1.0, w_ent=0.001, optimizer='adam', learning_rate=0.05, seed=0) -> "
      "Solver\n\nTabular hindsight instruction relabeling on a GoalTask (ALGORITHMS.md §10): "
      "each step samples batch_size (goal, response) pairs, relabels them (mode), and takes "
      "updates_per_round optimizer steps on the HIR loss. Step statistics: loss, "
      "batch_success.");
}

}  // namespace prefopt::python
