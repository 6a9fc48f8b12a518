#pragma once
// prefopt-arena's two modes, each in its own translation unit so that the program builds on two
// cores at once: the tabular comparison (tabular_mode.cpp: games and goal-conditioned tasks) and
// the comparison on language models (sequence_mode.cpp). prefopt_arena.cpp reads the command line
// and the config and calls one of them; the Python module (python/src/arena.cpp) calls the
// `*_results` forms, which return the results document instead of writing it.

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>

namespace prefopt::arena {

inline constexpr double default_memory_limit_gib = 4.0;  ///< `--memory-limit`

struct arena_options {
  unsigned threads = 1;
  /// Progress on stderr: a bar per run on a terminal (single-threaded runs), otherwise one line
  /// per solver when its last seed is done.
  bool progress = true;
  double memory_limit_gib = default_memory_limit_gib;  ///< refuse experiments estimated above
  bool quiet = false;                                  ///< print only the summary table
  bool check_only = false;  ///< validate the config (and the memory estimate), run nothing
};

/// Runs the tabular experiment `config` (files it names are relative to `base`), writes the
/// results file `output` atomically and prints the summary table. Throws prefopt::error.
void run_tabular_mode(const nlohmann::json& config, const std::filesystem::path& base,
                      const std::string& output, const arena_options& options);

/// The same for a config with a "sequence_task" (sequence.hpp).
void run_sequence_mode(const nlohmann::json& config, const std::filesystem::path& base,
                       const std::string& output, const arena_options& options);

/// The results document `run_tabular_mode` writes (`{"results": ..., "timing": ...}`), returned
/// instead of written, without the summary table (`prefopt.arena.run`). Throws prefopt::error.
nlohmann::json tabular_results(const nlohmann::json& config, const std::filesystem::path& base,
                               const arena_options& options);

/// The results document `run_sequence_mode` writes, returned instead of written, printing
/// nothing (`prefopt.arena.run`). Throws prefopt::error.
nlohmann::json sequence_results(const nlohmann::json& config, const std::filesystem::path& base);

}  // namespace prefopt::arena
