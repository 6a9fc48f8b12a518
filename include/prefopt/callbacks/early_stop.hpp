#pragma once
/// \file
/// `early_stop`: stops a run once a metric reaches a target (`metric <= target`), evaluating it
/// every `every` steps (`metric` is a `double(const Problem&, const State&)` callable, e.g.
/// `gap_metric{}`). After the run, `reached()` says whether the target was met, `value()` is the
/// last evaluated metric and `iteration()` when.

#include <limits>
#include <utility>

#include "prefopt/core/assert.hpp"
#include "prefopt/core/types.hpp"

namespace prefopt {

template <class Metric>
class early_stop {
 public:
  early_stop(Metric metric, double target, index_t every = 1)
      : metric_(std::move(metric)), target_(target), every_(every) {
    PREFOPT_CHECK(every > 0, invalid_argument, "early_stop: every = ", every, ", expected > 0");
  }

  template <class Event>
  bool on_step(const Event& e) {
    if (e.iteration % every_ != 0) return false;
    value_ = static_cast<double>(metric_(e.problem, e.state));
    iteration_ = e.iteration;
    reached_ = value_ <= target_;
    return reached_;
  }

  [[nodiscard]] bool reached() const noexcept { return reached_; }
  [[nodiscard]] double value() const noexcept { return value_; }
  [[nodiscard]] index_t iteration() const noexcept { return iteration_; }

 private:
  Metric metric_;
  double target_;
  index_t every_;
  bool reached_ = false;
  double value_ = std::numeric_limits<double>::quiet_NaN();
  index_t iteration_ = 0;
};

}  // namespace prefopt
