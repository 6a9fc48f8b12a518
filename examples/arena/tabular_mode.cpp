// prefopt-arena on tabular problems (modes.hpp).
#include <fmt/core.h>

#include <cstdio>

#include "config.hpp"
#include "modes.hpp"
#include "runner.hpp"
#include "solvers.hpp"

void prefopt::arena::run_tabular_mode(const nlohmann::json& config,
                                      const std::filesystem::path& base, const std::string& output,
                                      const arena_options& options) {
  const auto experiment = parse_config(config, base);
  if (options.check_only) {
    check_memory(experiment, options.threads, options.memory_limit_gib);
    fmt::print("{}: valid, {} solvers\n", experiment.name, experiment.solvers.size());
    return;
  }
  if (!options.quiet) {
    fmt::print("prefopt-arena {}: {}\n", version, experiment.name);
    std::fflush(stdout);  // before the progress on stderr, when both go to one log
  }
  const auto results = run_experiment(experiment, options);
  write_results(output, results);
  fmt::print("{}{}", options.quiet ? "" : "\n", summary_table(experiment, results));
  if (!options.quiet) fmt::print("\nresults: {}\n", output);
}

nlohmann::json prefopt::arena::tabular_results(const nlohmann::json& config,
                                               const std::filesystem::path& base,
                                               const arena_options& options) {
  return results_document(run_experiment(parse_config(config, base), options));
}
