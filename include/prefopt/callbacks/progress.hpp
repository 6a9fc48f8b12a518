#pragma once
/// \file
/// `progress`: prints run progress with fmt (the only callback that prints). On a terminal it
/// redraws one line with a bar, `[#######.....]  58%  580/1000  1.2s  480 it/s  gap=3.1e-04`;
/// otherwise (a file, a pipe, CI logs) it prints one plain line every `every` steps,
/// `step 580/1000  1.20s  480.0 it/s  gap=3.100e-04`, and a final line with the run's status.
/// Optional metric: a `double(const Problem&, const State&)` callable printed under its `name`
/// (or "metric"); evaluated only when a line is printed. Requires `prefopt::io` (fmt).

#include <fmt/core.h>

#include <cstdio>
#include <string>
#include <utility>

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif

#include "prefopt/callbacks/metrics.hpp"
#include "prefopt/core/assert.hpp"
#include "prefopt/core/types.hpp"
#include "prefopt/solvers/common/run.hpp"

namespace prefopt {

namespace detail {
/// No metric.
struct no_metric {};

inline bool is_terminal(std::FILE* out) {
#if defined(__unix__) || defined(__APPLE__)
  return ::isatty(::fileno(out)) != 0;
#else
  (void)out;
  return false;
#endif
}
}  // namespace detail

template <class Metric = detail::no_metric>
class progress {
 public:
  /// Prints every `every` steps to `out` (stderr by default); `bar` forces (true) or disables
  /// (false) the terminal bar, default: detect with `isatty`.
  explicit progress(index_t every = 100, Metric metric = {}, std::FILE* out = stderr, int bar = -1)
      : every_(every),
        metric_(std::move(metric)),
        out_(out),
        bar_(bar < 0 ? detail::is_terminal(out) : bar != 0) {
    PREFOPT_CHECK(every > 0, invalid_argument, "progress: every = ", every, ", expected > 0");
  }

  template <class Event>
  void on_step(const Event& e) {
    if (e.iteration % every_ != 0 && e.iteration != e.max_iterations) return;
    std::string metric;
    if constexpr (!std::is_same_v<Metric, detail::no_metric>) {
      metric = fmt::format("  {}={:.3e}", detail::metric_name<Metric>("metric"),
                           static_cast<double>(metric_(e.problem, e.state)));
    }
    const double rate = e.seconds > 0.0 ? static_cast<double>(e.iteration) / e.seconds : 0.0;
    if (bar_) {
      constexpr int width = 30;
      const double fraction = e.max_iterations > 0 ? static_cast<double>(e.iteration) /
                                                         static_cast<double>(e.max_iterations)
                                                   : 1.0;
      const int filled = static_cast<int>(fraction * width);
      fmt::print(out_, "\r[{}{}] {:3.0f}%  {}/{}  {:.1f}s  {:.0f} it/s{}",
                 std::string(static_cast<std::size_t>(filled), '#'),
                 std::string(static_cast<std::size_t>(width - filled), '.'), 100.0 * fraction,
                 e.iteration, e.max_iterations, e.seconds, rate, metric);
    } else {
      fmt::print(out_, "step {}/{}  {:.2f}s  {:.1f} it/s{}\n", e.iteration, e.max_iterations,
                 e.seconds, rate, metric);
    }
    std::fflush(out_);
  }

  template <class Event>
  void on_end(const Event& e) {
    fmt::print(out_, "{}run {} after {} steps in {:.2f}s{}{}\n", bar_ ? "\n" : "",
               to_string(e.status), e.iterations, e.seconds, e.message.empty() ? "" : ": ",
               e.message);
    std::fflush(out_);
  }

 private:
  index_t every_;
  Metric metric_;
  std::FILE* out_;
  bool bar_;
};

progress()->progress<detail::no_metric>;
progress(index_t)->progress<detail::no_metric>;
template <class Metric, class... Rest>
progress(index_t, Metric, Rest...) -> progress<Metric>;

}  // namespace prefopt
