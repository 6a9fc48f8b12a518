#pragma once
/// \file
/// `metric_tracker`: evaluates a metric (`double(const Problem&, const State&)`) before the first
/// step and every `every` steps (and after the last one), keeping `(iteration, value)` pairs.

#include <utility>
#include <vector>

#include "prefopt/core/assert.hpp"
#include "prefopt/core/types.hpp"

namespace prefopt {

template <class Metric>
class metric_tracker {
 public:
  explicit metric_tracker(Metric metric, index_t every = 1)
      : metric_(std::move(metric)), every_(every) {
    PREFOPT_CHECK(every > 0, invalid_argument, "metric_tracker: every = ", every, ", expected > 0");
  }

  template <class Event>
  void on_begin(const Event& e) {
    record(0, e.problem, e.state);
  }
  template <class Event>
  void on_step(const Event& e) {
    if (e.iteration % every_ == 0) record(e.iteration, e.problem, e.state);
  }
  template <class Event>
  void on_end(const Event& e) {
    if (iterations_.empty() || iterations_.back() != e.iterations) {
      record(e.iterations, e.problem, e.state);
    }
  }

  [[nodiscard]] const std::vector<index_t>& iterations() const noexcept { return iterations_; }
  [[nodiscard]] const std::vector<double>& values() const noexcept { return values_; }

 private:
  template <class Problem, class State>
  void record(index_t it, const Problem& problem, const State& state) {
    iterations_.push_back(it);
    values_.push_back(static_cast<double>(metric_(problem, state)));
  }

  Metric metric_;
  index_t every_;
  std::vector<index_t> iterations_;
  std::vector<double> values_;
};

}  // namespace prefopt
