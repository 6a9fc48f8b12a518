#pragma once
/// \file
/// `history_recorder`: records, before the first step and every `every` steps (and at the end),
/// the iteration, the elapsed seconds, named metrics (`double(const Problem&, const State&)`
/// callables) and, optionally, snapshots of the current and average policies' probabilities
/// (states with `policy()` / `average_probabilities()`). The result is a `run_history`, written
/// to JSON by `io::write_history_json` (io/history_json.hpp).

#include <Eigen/Core>

#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "prefopt/callbacks/metrics.hpp"
#include "prefopt/core/assert.hpp"
#include "prefopt/core/customization.hpp"
#include "prefopt/core/types.hpp"
#include "prefopt/solvers/common/run.hpp"

namespace prefopt {

/// A recorded run: one entry per record.
struct run_history {
  std::vector<std::string> metric_names;
  std::vector<index> iterations;
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
  explicit history_recorder(index every, bool snapshots, Metrics... metrics)
      : every_(every), snapshots_(snapshots), metrics_(std::move(metrics)...) {
    PREFOPT_CHECK(every > 0, invalid_argument, "history_recorder: every = ", every,
                  ", expected > 0");
    history_.metric_names = {detail::metric_name<Metrics>("metric")...};
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
  void record(index it, double seconds, const Problem& problem, const State& state) {
    history_.iterations.push_back(it);
    history_.seconds.push_back(seconds);
    history_.values.push_back(std::apply(
        [&](const auto&... m) {
          return std::vector<double>{static_cast<double>(m(problem, state))...};
        },
        metrics_));
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

  index every_;
  bool snapshots_;
  std::tuple<Metrics...> metrics_;
  run_history history_;
};

}  // namespace prefopt
