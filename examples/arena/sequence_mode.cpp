// prefopt-arena on language models (modes.hpp, sequence.hpp).
#include <fmt/core.h>

#include <cstdio>
#include <string>

#include "modes.hpp"
#include "prefopt/io/atomic_file.hpp"
#include "sequence.hpp"

void prefopt::arena::run_sequence_mode(const nlohmann::json& config,
                                       const std::filesystem::path& base, const std::string& output,
                                       const arena_options& options) {
  // Every trainer from one shared, cached reference.
  const auto experiment = parse_sequence_config(config, base);
  if (options.check_only) {
    fmt::print("{}: valid, {} solvers\n", experiment.name, experiment.solvers.size());
    return;
  }
  if (!options.quiet) fmt::print("prefopt-arena {}: {}\n", version, experiment.name);
  std::fflush(stdout);
  std::string table;
  const auto results = run_sequence_experiment(experiment, !options.quiet, table);
  io::write_file_atomically(output, results.dump(2) + "\n");
  fmt::print("{}{}", options.quiet ? "" : "\n", table);
  if (!options.quiet) fmt::print("\nresults: {}\n", output);
}

nlohmann::json prefopt::arena::sequence_results(const nlohmann::json& config,
                                                const std::filesystem::path& base) {
  std::string table;
  return run_sequence_experiment(parse_sequence_config(config, base), /*verbose=*/false, table);
}
