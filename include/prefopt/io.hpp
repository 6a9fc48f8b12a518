#pragma once
/// \file
/// Umbrella header for the parts of prefopt that need fmt and nlohmann_json (link `prefopt::io`):
/// bounded JSON parsing, JSON games and run histories, JSONL preference datasets, the reference
/// log-prob cache, atomic files, and the progress callback. Includes `prefopt/prefopt.hpp`.

#include "prefopt/callbacks/progress.hpp"
#include "prefopt/io/atomic_file.hpp"
#include "prefopt/io/game_json.hpp"
#include "prefopt/io/history_json.hpp"
#include "prefopt/io/json_parse.hpp"
#include "prefopt/io/jsonl_dataset.hpp"
#include "prefopt/io/logprob_cache.hpp"
#include "prefopt/prefopt.hpp"
