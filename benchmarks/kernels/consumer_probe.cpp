// What a default consumer build gets: compiled with plain `-O2` (no -march, no prefopt::native),
// it times token_log_probs on 2048 x 32000 float logits and prints GB/s of logits read and the
// kernel path that ran. Build and run (from the repository root):
//   g++ -std=c++20 -O2 -DNDEBUG -Iinclude -I/usr/include/eigen3
//     benchmarks/kernels/consumer_probe.cpp -o /tmp/consumer_probe && /tmp/consumer_probe
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "prefopt/core/random.hpp"
#include "prefopt/kernels/token_log_probs.hpp"

#if __has_include("prefopt/kernels/dispatch.hpp")
#include "prefopt/kernels/dispatch.hpp"
#define PREFOPT_PROBE_HAS_DISPATCH 1
#endif

int main() {
  const prefopt::index_t n = 2048;
  const prefopt::index_t v = 32000;
  prefopt::rng g(1, 0);
  prefopt::row_matrix_f z(n, v);
  for (prefopt::index_t i = 0; i < n; ++i) {
    for (prefopt::index_t j = 0; j < v; ++j) z(i, j) = static_cast<float>(4 * g.normal());
  }
  std::vector<prefopt::token_id> t(static_cast<std::size_t>(n), 7);
  std::vector<float> lp(static_cast<std::size_t>(n));
  std::vector<double> rates;
  for (int rep = 0; rep < 9; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    prefopt::kernels::token_log_probs(z, t, prefopt::kernels::span_of(lp));
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    rates.push_back(static_cast<double>(n * v) * sizeof(float) / s / 1e9);
  }
  std::sort(rates.begin(), rates.end());
#if defined(PREFOPT_PROBE_HAS_DISPATCH)
  const char* path = prefopt::kernels::isa_name(prefopt::kernels::active_isa());
#else
  const char* path = "compile-time (no dispatch)";
#endif
  std::printf(
      "token_log_probs 2048x32000 float, -O2 consumer build: median %.2f GB/s (min %.2f, "
      "max %.2f), path %s, lp[0] = %.9g\n",
      rates[rates.size() / 2], rates.front(), rates.back(), path, static_cast<double>(lp[0]));
  return 0;
}
