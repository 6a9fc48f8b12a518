// Issue 11 item 6, reproduced: with `using namespace prefopt;` the alias prefopt::index collides
// with POSIX `index()` from <strings.h> (which <cstring> includes on glibc), so an unqualified
// `index` is ambiguous. The qualified spelling compiles. When the alias is renamed (index_t, with
// a deprecated `index` kept for a release), turn this into a test that unqualified index_t
// compiles.
#include <cstring>

#include "prefopt/core/types.hpp"

using namespace prefopt;  // NOLINT: the user's style this test is about

int main() {
#if defined(PREFOPT_COMPILE_FAIL)
  const index n = 3;  // ambiguous: prefopt::index or ::index(const char*, int)
#else
  const prefopt::index n = 3;
#endif
  return static_cast<int>(n) - 3;
}
