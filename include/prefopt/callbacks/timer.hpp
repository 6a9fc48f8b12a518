#pragma once
/// \file
/// `timer`: measures the run's wall-clock time and, with a limit, stops the run once `limit`
/// seconds have elapsed (checked after every step). `seconds()` is the elapsed time at the end.

#include <limits>

#include "prefopt/core/assert.hpp"

namespace prefopt {

class timer {
 public:
  /// No limit: only measures.
  timer() = default;
  /// Stops the run after `limit_seconds` (> 0).
  explicit timer(double limit_seconds) : limit_(limit_seconds) {
    PREFOPT_CHECK(limit_seconds > 0.0, invalid_argument, "timer: limit_seconds = ", limit_seconds,
                  ", expected > 0");
  }

  template <class Event>
  bool on_step(const Event& e) {
    seconds_ = e.seconds;
    expired_ = e.seconds >= limit_;
    return expired_;
  }
  template <class Event>
  void on_end(const Event& e) {
    seconds_ = e.seconds;
  }

  [[nodiscard]] double seconds() const noexcept { return seconds_; }
  /// True when the limit stopped the run.
  [[nodiscard]] bool expired() const noexcept { return expired_; }

 private:
  double limit_ = std::numeric_limits<double>::infinity();
  double seconds_ = 0.0;
  bool expired_ = false;
};

}  // namespace prefopt
