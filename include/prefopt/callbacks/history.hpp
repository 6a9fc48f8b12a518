#pragma once
/// \file
/// `history_recorder`: records, before the first step and every `every` steps (and at the end),
/// the iteration, the elapsed seconds, named metrics (`double(const Problem&, const State&)`
/// callables, or metric groups: see `MetricGroup`) and, optionally, snapshots of the current and
/// average policies' probabilities (states with `policy()` / `average_probabilities()`). The result
/// is a `run_history`, written to JSON by `io::write_history_json` (io/history_json.hpp).

#include <Eigen/Core>

#include <concepts>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "prefopt/callbacks/metrics.hpp"
#include "prefopt/core/assert.hpp"
#include "prefopt/core/customization.hpp"
#include "prefopt/core/types.hpp"
#include "prefopt/solvers/common/run.hpp"

namespace prefopt {

/// Several metrics computed together, from one evaluation of the state (e.g. one probability
/// table of the policy for all of a game's diagnostics): `names()` lists them, and
/// `evaluate(problem, state, out)` appends one value per name to `out`, in that order. A
/// `history_recorder` records a group's values as if each were its own metric.
template <class G>
concept MetricGroup = requires(const G& g) {
  { g.names() } -> std::convertible_to<std::vector<std::string>>;
};

/// A recorded run: one entry per record.
struct run_history {
  std::vector<std::string> metric_names;
  std::vector<index_t> iterations;
  std::vector<double> seconds;
  /// `values[k][m]`: metric `m` at record `k`.
  std::vector<std::vector<double>> values;
  /// `[contexts, n]` probabilities of the current / average policy (when snapshots are on).
  std::vector<row_matrix_d> policies;
  std::vector<row_matrix_d> average_policies;
  /// How the run ended (filled by `on_end`).
  std::string status;
  std::string message;
};

template <class... Metrics>
class history_recorder {
 public:
  /// Records every `every` steps; `snapshots` also stores policy probabilities.
  explicit history_recorder(index_t every, bool snapshots, Metrics... metrics)
      : every_(every), snapshots_(snapshots), metrics_(std::move(metrics)...) {
    PREFOPT_CHECK(every > 0, invalid_argument, "history_recorder: every = ", every,
                  ", expected > 0");
    std::apply([&](const auto&... m) { (add_names(m), ...); }, metrics_);
  }

  template <class Event>
  void on_begin(const Event& e) {
    record(0, 0.0, e.problem, e.state);
  }
  template <class Event>
  void on_step(const Event& e) {
    if (e.iteration % every_ == 0) record(e.iteration, e.seconds, e.problem, e.state);
  }
  template <class Event>
  void on_end(const Event& e) {
    if (history_.iterations.empty() || history_.iterations.back() != e.iterations) {
      record(e.iterations, e.seconds, e.problem, e.state);
    }
    history_.status = to_string(e.status);
    history_.message = e.message;
  }

  [[nodiscard]] const run_history& history() const noexcept { return history_; }

 private:
  template <class Problem, class State>
  void record(index_t it, double seconds, const Problem& problem, const State& state) {
    history_.iterations.push_back(it);
    history_.seconds.push_back(seconds);
    std::vector<double> row;
    row.reserve(history_.metric_names.size());
    std::apply(
        [&](const auto&... m) {
          (
              [&] {
                if constexpr (MetricGroup<std::decay_t<decltype(m)>>) {
                  m.evaluate(problem, state, row);
                } else {
                  row.push_back(static_cast<double>(m(problem, state)));
                }
              }(),
              ...);
        },
        metrics_);
    PREFOPT_ASSERT(row.size() == history_.metric_names.size());
    history_.values.push_back(std::move(row));
    if constexpr (requires {
                    state.policy().num_actions();
                    state.average_probabilities();
                  }) {
      if (snapshots_) {
        history_.policies.push_back(probability_table(state.policy()));
        history_.average_policies.push_back(state.average_probabilities());
      }
    }
  }

  template <class M>
  void add_names(const M& m) {
    if constexpr (MetricGroup<M>) {
      for (auto& n : m.names()) history_.metric_names.push_back(std::move(n));
    } else {
      history_.metric_names.emplace_back(detail::metric_name<M>("metric"));
    }
  }

  index_t every_;
  bool snapshots_;
  std::tuple<Metrics...> metrics_;
  run_history history_;
};

}  // namespace prefopt
