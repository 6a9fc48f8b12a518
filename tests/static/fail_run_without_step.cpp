// prefopt::run with a user solver whose step has another name fails with the one sentence of
// check_solver naming step, not with the reasons each candidate was rejected.
#include "prefopt/solvers/common/run.hpp"

struct user_problem {};
struct user_state {
  int t = 0;
};
struct user_solver {
  [[nodiscard]] user_state init(const user_problem&) const { return {}; }
#if defined(PREFOPT_COMPILE_FAIL)
  int advance(const user_problem&, user_state& s) const {
    return ++s.t;
  }
#else
  int step(const user_problem&, user_state& s) const {
    return ++s.t;
  }
#endif
};

int main() {
  const auto result = prefopt::run(user_solver{}, user_problem{}, {.max_iterations = 2});
  return result.state.t == 2 ? 0 : 1;
}
