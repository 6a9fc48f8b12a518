/// \file
/// `prefopt.arena`: the experiment runner of examples/arena (`prefopt-arena`) on a config given as
/// a Python dict (or JSON text), returning the results document the program writes, as Python
/// objects. The runner's code is the program's own (examples/arena/tabular_mode.cpp and
/// sequence_mode.cpp are compiled into the module): same config format, same validation, same
/// results.

#include <nlohmann/json.hpp>

#include <filesystem>
#include <pybind11/pybind11.h>
#include <string>

#include "arrays.hpp"
#include "bindings.hpp"
#include "modes.hpp"
#include "prefopt/io/json_parse.hpp"

namespace prefopt::python {

namespace {

using namespace pybind11::literals;

nlohmann::json config_in(py::handle config) {
  constexpr const char* fn = "arena.run";
  std::string text;
  if (py::isinstance<py::str>(config)) {
    text = config.cast<std::string>();
  } else if (py::isinstance<py::dict>(config)) {
    try {
      text = py::module_::import("json")
                 .attr("dumps")(config, "allow_nan"_a = false)
                 .cast<std::string>();
    } catch (py::error_already_set& e) {
      PREFOPT_THROW(parse_error, fn, ": config is not JSON-serialisable (", e.what(), ")");
    }
  } else {
    PREFOPT_THROW(dtype_error, fn, ": config of type ",
                  py::str(py::type::of(config).attr("__name__")).cast<std::string>(),
                  ", expected a dict (or JSON text)");
  }
  return io::parse_json(text, "arena.run: config");
}

}  // namespace

void bind_arena(py::module_& m) {
  py::options doc_options;
  doc_options.disable_function_signatures();
  m.def(
      "run",
      [](py::handle config, const std::string& base, unsigned threads, double memory_limit_gib) {
        const nlohmann::json j = config_in(config);
        if (threads < 1 || threads > 256) {
          PREFOPT_THROW(invalid_argument, "arena.run: threads = ", threads,
                        ", expected an integer in [1, 256]");
        }
        if (!(memory_limit_gib > 0.0 && memory_limit_gib <= 1e6)) {
          PREFOPT_THROW(invalid_argument, "arena.run: memory_limit_gib = ", memory_limit_gib,
                        ", expected GiB in (0, 1e6]");
        }
        arena::arena_options options;
        options.threads = threads;
        options.progress = false;
        options.quiet = true;
        options.memory_limit_gib = memory_limit_gib;
        const std::filesystem::path folder =
            base.empty() ? std::filesystem::current_path() : std::filesystem::path(base);
        std::string text;
        {
          py::gil_scoped_release release;
          const nlohmann::json doc = j.is_object() && j.contains("sequence_task")
                                         ? arena::sequence_results(j, folder)
                                         : arena::tabular_results(j, folder, options);
          text = doc.dump();
        }
        return py::module_::import("json").attr("loads")(text);
      },
      "config"_a, py::kw_only(), "base"_a = "", "threads"_a = 1U,
      "memory_limit_gib"_a = arena::default_memory_limit_gib,
      R"(run(config, *, base='', threads=1, memory_limit_gib=4.0) -> dict

Runs the experiment `config` (a dict, or JSON text, in the format of prefopt-arena: README
"Experiment runner") exactly as `prefopt-arena CONFIG --threads N` does, and returns the results
document the program writes: {"results": {...}, "timing": {...}} for a tabular experiment (a
"game" or a goal "task"), the sequence runner's document for a config with a "sequence_task".
The "results" part is a pure function of the config (the same for any thread count), and
identical to the program's when both are compiled with the same flags (measured: equal with
PREFOPT_PYTHON_NATIVE=OFF; the default -march=native module can differ in the last bits). Files the
config names resolve against `base` (default: the current directory). Nothing is printed and no
file is written (a sequence task still caches its shared reference on disk, as the program does).
Raises prefopt.ParseError naming the JSON pointer of a bad config value (before anything runs),
prefopt.InvalidArgument for bad arguments. The GIL is released while the experiment runs.)");
}

}  // namespace prefopt::python
