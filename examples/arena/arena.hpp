#pragma once
// prefopt-arena: every solver of prefopt on the same tabular problem.
//
// Reads a JSON experiment config (README "Experiment runner" documents the format), builds the
// problem (a preference game from the catalog, a file or inline JSON; or a goal-conditioned task
// for HIR), runs each configured solver for each seed through prefopt's run loop, evaluates the
// iterates every `eval_every` steps with the diagnostics, and writes a JSON results file
// atomically. Results are a pure function of the config: the same config and seeds give a
// byte-identical "results" part whatever the thread count; wall times live in "timing".
//
// The runner is split by concern: `config.hpp` (reading and validating the config),
// `evaluation.hpp` (diagnostics per evaluation), `solvers.hpp` (the solver table: one entry per
// solver kind), `runner.hpp` (jobs, results file, summary table) and `sequence.hpp` (the same
// comparison on language models: sequence tasks and the shipped transformer). The program compiles
// the two modes apart (modes.hpp); the config fuzzer includes this header.

#include "config.hpp"
#include "evaluation.hpp"
#include "runner.hpp"
#include "sequence.hpp"
#include "solvers.hpp"
