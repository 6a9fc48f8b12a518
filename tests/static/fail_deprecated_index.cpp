// `prefopt::index` was renamed `index_t`: the old name collided with POSIX `index()` from
// <strings.h> (which <cstring> includes on glibc) under `using namespace prefopt;`. The new name
// compiles unqualified in exactly that setting; the old one still compiles for a release, with a
// deprecation warning that names its replacement.
#include <cstring>

#include "prefopt/core/types.hpp"

using namespace prefopt;  // NOLINT: the user's style this test is about

int main() {
#if defined(PREFOPT_COMPILE_FAIL)
  const prefopt::index n = 3;  // the former name: a deprecation warning
#else
  const index_t n = 3;
#endif
  return static_cast<int>(n) - 3;
}
