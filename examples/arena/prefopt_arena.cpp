// prefopt-arena: the experiment runner. Runs every configured solver on the same tabular problem,
// prints a summary table and writes a JSON results file (see examples/arena/arena.hpp and the
// README's "Experiment runner" section). This file reads the command line and the config; the two
// modes are compiled apart (modes.hpp).
//
//   prefopt-arena [CONFIG.json] [--output FILE] [--threads N] [--memory-limit GIB] [--quiet]
//   prefopt-arena --check [CONFIG.json]       (validates the config and every solver entry)
//
// Progress goes to stderr: a bar per run on a terminal, otherwise one line per solver;
// --quiet prints nothing but the summary table (errors still go to stderr).
//
// Without CONFIG it runs the built-in default comparison (examples/arena/configs/default.json).
#include <cstdio>
#include <cstdlib>
#include <new>
#include <string>
#include <string_view>

#include "modes.hpp"
#include "prefopt/core/error.hpp"
#include "prefopt/io/json_parse.hpp"

namespace {

constexpr const char* default_config =
#include "default_config.inc"
    ;

int usage(int code) {
  std::fprintf(code == 0 ? stdout : stderr,
               "usage: prefopt-arena [CONFIG.json] [--output FILE] [--threads N]\n"
               "                     [--memory-limit GIB] [--quiet] [--check]\n"
               "       prefopt-arena --print-default-config\n"
               "Runs every solver of CONFIG (default: the built-in comparison) on the same\n"
               "problem (a tabular game or task, or a sequence task on the shipped\n"
               "transformer), prints a summary table and writes the results as JSON\n"
               "(default file: prefopt-results.json). Refuses an experiment whose memory\n"
               "it estimates above GIB (default 4). --quiet: only the summary table.\n"
               "--check: validate CONFIG and every solver entry, run nothing.\n");
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  using json = nlohmann::json;
  std::string config_path, output;
  prefopt::arena::arena_options options;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "prefopt-arena: %s needs a value\n", argv[i]);
        std::exit(usage(2));
      }
      return argv[++i];
    };
    if (arg == "-h" || arg == "--help") return usage(0);
    if (arg == "--print-default-config") {
      std::fputs(default_config, stdout);
      return 0;
    }
    if (arg == "-o" || arg == "--output") {
      output = value();
    } else if (arg == "-j" || arg == "--threads") {
      const std::string v = value();
      char* end = nullptr;
      const long n = std::strtol(v.c_str(), &end, 10);
      if (end == v.c_str() || *end != '\0' || n < 1 || n > 256) {
        std::fprintf(stderr, "prefopt-arena: --threads %s: expected an integer in [1, 256]\n",
                     v.c_str());
        return 2;
      }
      options.threads = static_cast<unsigned>(n);
    } else if (arg == "--memory-limit") {
      const std::string v = value();
      char* end = nullptr;
      const double gib = std::strtod(v.c_str(), &end);
      if (end == v.c_str() || *end != '\0' || !(gib > 0.0 && gib <= 1e6)) {
        std::fprintf(stderr, "prefopt-arena: --memory-limit %s: expected GiB in (0, 1e6]\n",
                     v.c_str());
        return 2;
      }
      options.memory_limit_gib = gib;
    } else if (arg == "--check") {
      options.check_only = true;
    } else if (arg == "-q" || arg == "--quiet") {
      options.progress = false;
      options.quiet = true;
    } else if (!arg.empty() && arg[0] == '-') {
      std::fprintf(stderr, "prefopt-arena: unknown option %s\n", argv[i]);
      return usage(2);
    } else if (config_path.empty()) {
      config_path = arg;
    } else {
      std::fprintf(stderr, "prefopt-arena: more than one config given\n");
      return usage(2);
    }
  }
  try {
    json config;
    fs::path base = fs::current_path();
    // Bounded parsing (size, depth, numbers beyond a double, duplicate keys): io/json_parse.hpp.
    if (config_path.empty()) {
      config = prefopt::io::parse_json(default_config, "built-in default config");
    } else {
      config = prefopt::io::read_json_file(config_path);
      base = fs::path(config_path).parent_path();
    }
    if (output.empty()) output = "prefopt-results.json";
    if (config.is_object() && config.contains("sequence_task")) {
      prefopt::arena::run_sequence_mode(config, base, output, options);
    } else {
      prefopt::arena::run_tabular_mode(config, base, output, options);
    }
    return 0;
  } catch (const prefopt::error& e) {
    std::fprintf(stderr, "prefopt-arena: error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr,
                 "prefopt-arena: error: out of memory (lower the sizes of the config or "
                 "--threads)\n");
    return 1;
  }
}
