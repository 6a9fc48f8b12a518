#pragma once
/// \file
/// The run loop of every prefopt solver (DESIGN.md §4): `run(solver, problem, options,
/// callbacks...)` calls `solver.init(problem)` and then `solver.step(problem, state)` up to
/// `options.max_iterations` times, and notifies the callbacks.
///
/// Callbacks are optional, taken by reference (read them after the run), receive const views and
/// may stop the run. A callback provides at least one hook (any subset, each returning `void` or
/// something convertible to `bool`, where `true` stops the run):
///
///     on_begin(const run_begin<Problem, State>&)            before the first step
///     on_step(const run_step<Problem, State, Stats>&)       after every step
///     on_end(const run_end<Problem, State>&)                once, after the last step
///
/// A callback with none of them is a compile error ("has no recognised hook"), so a misspelled
/// hook never silently does nothing.
///
/// Divergence: after every step the loop checks that the state is finite — the current policy's
/// parameters when `state.policy().parameters()` exists, the fitted model's when
/// `state.model().parameters()` exists (reward modelling), and `stats.loss` when the stats have a
/// `loss` — and stops with status `diverged` and a message saying at which step and which
/// context/action (or loss) went non-finite. A `prefopt::convergence_error` thrown by a step (a
/// model whose numbers went bad inside it, e.g. non-finite logits while sampling: see
/// `generate`) ends the run the same way, with the error's text. It does not throw for either;
/// other errors propagate. Solvers are generic: nothing here
/// assumes a game; any type modelling `Solver<S, Problem>` runs through the same loop.

#include <chrono>
#include <cmath>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include "prefopt/core/assert.hpp"
#include "prefopt/core/concepts.hpp"
#include "prefopt/core/error.hpp"
#include "prefopt/core/types.hpp"

namespace prefopt {

/// How a run ended.
enum class run_status {
  /// `max_iterations` steps were taken.
  completed,
  /// A callback returned true.
  stopped,
  /// The state became non-finite; `run_result::message` says where.
  diverged
};

/// Readable name of a status ("completed", "stopped", "diverged").
[[nodiscard]] constexpr const char* to_string(run_status s) noexcept {
  switch (s) {
    case run_status::completed:
      return "completed";
    case run_status::stopped:
      return "stopped";
    case run_status::diverged:
      return "diverged";
  }
  return "unknown";
}

/// Options of `run`.
struct run_options {
  /// Steps to take at most (>= 0).
  index_t max_iterations = 1000;
};

/// Event passed to `on_begin`.
template <class Problem, class State>
struct run_begin {
  const Problem& problem;
  const State& state;
  index_t max_iterations;
};

/// Event passed to `on_step`, after step `iteration` (1 for the first step).
template <class Problem, class State, class Stats>
struct run_step {
  const Problem& problem;
  const State& state;
  const Stats& stats;
  /// Steps completed so far.
  index_t iteration;
  index_t max_iterations;
  /// Wall-clock seconds since the run began.
  double seconds;
};

/// Event passed to `on_end`.
template <class Problem, class State>
struct run_end {
  const Problem& problem;
  const State& state;
  run_status status;
  index_t iterations;
  double seconds;
  const std::string& message;
};

/// The outcome of `run`: the final state, how and why it ended.
template <class State>
struct run_result {
  State state;
  run_status status = run_status::completed;
  /// Steps completed.
  index_t iterations = 0;
  double seconds = 0.0;
  /// Why the run stopped ("callback 2 stopped the run", "step 17: policy logit (context 0,
  /// action 3) is nan", ...); empty when completed.
  std::string message;
};

namespace detail {

template <class C, class E>
concept has_on_begin = requires(C& c, const E& e) {
  c.on_begin(e);
};
template <class C, class E>
concept has_on_step = requires(C& c, const E& e) {
  c.on_step(e);
};
template <class C, class E>
concept has_on_end = requires(C& c, const E& e) {
  c.on_end(e);
};

/// Calls a hook; true when it returned something truthy.
template <class F>
bool call_hook(F&& f) {
  if constexpr (std::is_void_v<decltype(f())>) {
    f();
    return false;
  } else {
    return static_cast<bool>(f());
  }
}

template <class C, class Begin, class Step, class End>
constexpr bool check_callback() {
  static_assert(has_on_begin<C, Begin> || has_on_step<C, Step> || has_on_end<C, End>,
                "prefopt::run: a callback has no recognised hook: provide on_begin(const "
                "run_begin<Problem, State>&), on_step(const run_step<Problem, State, Stats>&) or "
                "on_end(const run_end<Problem, State>&) (see solvers/common/run.hpp)");
  return true;
}

/// Empty when the state is finite, else where it is not.
template <class State, class Stats>
std::string find_non_finite(const State& state, const Stats& stats) {
  if constexpr (requires { state.policy().parameters(); }) {
    const auto params = state.policy().parameters();
    if (!params.allFinite()) {
      index_t bad = 0;
      while (bad < params.size() && std::isfinite(static_cast<double>(params[bad]))) ++bad;
      if constexpr (requires { state.policy().num_actions(); }) {
        const index_t n = state.policy().num_actions();
        return concat("policy logit (context ", bad / n, ", action ", bad % n, ") is ",
                      static_cast<double>(params[bad]));
      } else {
        return concat("policy parameter ", bad, " is ", static_cast<double>(params[bad]));
      }
    }
  }
  if constexpr (requires { state.model().parameters(); }) {  // e.g. reward modelling
    const auto params = state.model().parameters();
    if (!params.allFinite()) {
      index_t bad = 0;
      while (bad < params.size() && std::isfinite(static_cast<double>(params[bad]))) ++bad;
      return concat("model parameter ", bad, " is ", static_cast<double>(params[bad]));
    }
  }
  if constexpr (requires { stats.loss; }) {
    if (!std::isfinite(static_cast<double>(stats.loss))) {
      return concat("loss is ", static_cast<double>(stats.loss));
    }
  }
  return {};
}

}  // namespace detail

/// Continues a run from `state` (for example one returned by an earlier `run`).
template <class S, class Problem, class... Callbacks>
requires Solver<S, Problem>
[[nodiscard]] run_result<solver_state_t<S, Problem>> run_from(const S& solver,
                                                              const Problem& problem,
                                                              solver_state_t<S, Problem> state,
                                                              const run_options& options,
                                                              Callbacks&&... callbacks) {
  using State = solver_state_t<S, Problem>;
  using Stats = std::remove_cvref_t<decltype(solver.step(problem, state))>;
  using Begin = run_begin<Problem, State>;
  using Step = run_step<Problem, State, Stats>;
  using End = run_end<Problem, State>;
  static_assert(
      (detail::check_callback<std::remove_cvref_t<Callbacks>, Begin, Step, End>() && ...));
  PREFOPT_CHECK(options.max_iterations >= 0, invalid_argument,
                "run: options.max_iterations = ", options.max_iterations, ", expected >= 0");

  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&start] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  run_result<State> result{std::move(state), run_status::completed, 0, 0.0, {}};
  const State& view = result.state;

  index_t stopper = -1;
  auto notify_begin = [&](auto& cb, index_t k) {
    if constexpr (detail::has_on_begin<std::remove_cvref_t<decltype(cb)>, Begin>) {
      if (detail::call_hook([&] {
            return cb.on_begin(Begin{problem, view, options.max_iterations});
          }) &&
          stopper < 0) {
        stopper = k;
      }
    }
  };
  {
    index_t k = 0;
    (notify_begin(callbacks, k++), ...);
    (void)k;
    (void)notify_begin;
  }
  index_t it = 0;
  if (stopper >= 0) {
    result.status = run_status::stopped;
    result.message = detail::concat("callback ", stopper, " stopped the run before the first step");
  }
  while (stopper < 0 && it < options.max_iterations) {
    std::optional<Stats> step_stats;
    try {
      step_stats.emplace(solver.step(problem, result.state));
    } catch (const convergence_error& e) {
      ++it;
      result.status = run_status::diverged;
      result.message = detail::concat("diverged at step ", it, ": ", e.what());
      break;
    }
    const Stats& stats = *step_stats;
    ++it;
    if (std::string where = detail::find_non_finite(view, stats); !where.empty()) {
      result.status = run_status::diverged;
      result.message = detail::concat("diverged at step ", it, ": ", where);
      break;
    }
    if constexpr (sizeof...(Callbacks) > 0) {
      const Step event{problem, view, stats, it, options.max_iterations, elapsed()};
      index_t k = 0;
      auto notify_step = [&](auto& cb) {
        if constexpr (detail::has_on_step<std::remove_cvref_t<decltype(cb)>, Step>) {
          if (detail::call_hook([&] { return cb.on_step(event); }) && stopper < 0) stopper = k;
        }
        ++k;
      };
      (notify_step(callbacks), ...);
      if (stopper >= 0) {
        result.status = run_status::stopped;
        result.message = detail::concat("callback ", stopper, " stopped the run after step ", it);
      }
    }
  }
  result.iterations = it;
  result.seconds = elapsed();
  const End end{problem, view, result.status, it, result.seconds, result.message};
  auto notify_end = [&](auto& cb) {
    if constexpr (detail::has_on_end<std::remove_cvref_t<decltype(cb)>, End>) {
      (void)detail::call_hook([&] { return cb.on_end(end); });
    }
  };
  (notify_end(callbacks), ...);
  (void)notify_end;
  return result;
}

/// Runs `solver` on `problem` from `solver.init(problem)` (see the file comment).
template <class S, class Problem, class... Callbacks>
requires Solver<S, Problem>
[[nodiscard]] run_result<solver_state_t<S, Problem>> run(const S& solver, const Problem& problem,
                                                         const run_options& options,
                                                         Callbacks&&... callbacks) {
  return run_from(solver, problem, solver.init(problem), options,
                  std::forward<Callbacks>(callbacks)...);
}

/// Reached only when `S` is not a `Solver` of `Problem`: the compiler then reports the sentence of
/// `check_solver` naming the missing member (`init` or `step` for this problem type) instead of
/// listing why each candidate failed.
template <class S, class Problem, class... Callbacks>
requires(!Solver<S, Problem>) void run(const S&, const Problem&, const run_options&,
                                       Callbacks&&...) {
  static_assert(check_solver<S, Problem>());
}

/// Reached only when `S` is not a `Solver` of `Problem` (see `run` above).
template <class S, class Problem, class State, class... Callbacks>
requires(!Solver<S, Problem>) void run_from(const S&, const Problem&, State&&, const run_options&,
                                            Callbacks&&...) {
  static_assert(check_solver<S, Problem>());
}

}  // namespace prefopt
