// A solver without step(problem, state) is rejected, naming step.
#include "prefopt/core/concepts.hpp"

struct problem {};
struct state {
  int t = 0;
};
struct stats {};

struct user_solver {
  [[nodiscard]] state init(const problem&) const { return {}; }
#if !defined(PREFOPT_COMPILE_FAIL)
  stats step(const problem&, state& s) const {
    ++s.t;
    return {};
  }
#endif
};

static_assert(prefopt::check_solver<user_solver, problem>());

int main() {
  return 0;
}
