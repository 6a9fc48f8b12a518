// Compile-fail test: a callback with no recognised hook (here a misspelled `on_stepp`) must be
// rejected by prefopt::run with the message
//   "prefopt::run: a callback has no recognised hook: provide on_begin(...), on_step(...) or
//   on_end(...)"
#include "prefopt/games/catalog.hpp"
#include "prefopt/solvers/common/run.hpp"
#include "prefopt/solvers/nash/mirror_descent.hpp"

struct misspelled_callback {
  template <class Event>
#if defined(PREFOPT_COMPILE_FAIL)
  bool on_stepp(const Event&){// the typo: no recognised hook
#else
  bool on_step(const Event&) {
#endif
                              return false;
}
}
;

int main() {
  const auto game = prefopt::rock_paper_scissors_game({}, 0.5);
  misspelled_callback cb;
  const auto result = prefopt::run(prefopt::nash_md<>{}, game, {.max_iterations = 1}, cb);
  return static_cast<int>(result.iterations);
}
