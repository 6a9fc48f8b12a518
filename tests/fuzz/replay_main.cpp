// Replays fuzz inputs through a harness's LLVMFuzzerTestOneInput without libFuzzer, so that every
// build runs the findings and the seeds as ordinary tests. A harness that crashes, aborts or lets
// an exception escape fails the run; so does a finding that is accepted (each must be rejected
// with a prefopt::error) or a seed that is rejected.
//
//   prefopt_fuzz_replay_<target> --rejected regressions/<target> --accepted corpus/<target>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  int failures = 0;
  std::size_t count = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string_view mode = argv[i];
    if (mode != "--rejected" && mode != "--accepted") {
      std::fprintf(stderr, "usage: %s {--rejected|--accepted} DIR ...\n", argv[0]);
      return 2;
    }
    const bool expect_accepted = mode == "--accepted";
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(argv[i + 1])) {
      if (entry.is_regular_file()) files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    if (files.empty()) {
      std::fprintf(stderr, "replay: %s: no inputs\n", argv[i + 1]);
      return 2;
    }
    for (const auto& f : files) {
      std::ifstream in(f, std::ios::binary);
      const std::string bytes((std::istreambuf_iterator<char>(in)),
                              std::istreambuf_iterator<char>());
      (void)LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(bytes.data()),  // NOLINT
                                   bytes.size());
      const bool ok = prefopt::fuzz::accepted == expect_accepted;
      std::printf("replay: %s (%zu bytes): %s%s\n", f.string().c_str(), bytes.size(),
                  prefopt::fuzz::accepted ? "accepted" : "rejected", ok ? "" : "  <- UNEXPECTED");
      failures += ok ? 0 : 1;
      ++count;
    }
  }
  if (count == 0) {
    std::fprintf(stderr, "usage: %s {--rejected|--accepted} DIR ...\n", argv[0]);
    return 2;
  }
  std::printf("replay: %zu inputs, %d unexpected\n", count, failures);
  return failures == 0 ? 0 : 1;
}
