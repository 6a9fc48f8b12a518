# The runner's output when stderr is not a terminal (as under CTest, a pipe or CI): one "done:"
# line per solver (all its seeds), no per-step progress lines, then the table; with --quiet nothing
# but the table on stdout and nothing on stderr.
execute_process(COMMAND "${ARENA}" "${CONFIG}" --output "${OUT}/output_plain.json"
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "prefopt-arena failed (${rc}):\n${err}")
endif()
string(REGEX MATCHALL "done: [^\n]+: completed \\(${SEEDS} seeds\\) in [0-9.]+s\n" done_lines
       "${err}")
list(LENGTH done_lines done_count)
if(NOT done_count EQUAL SOLVERS)
  message(FATAL_ERROR "expected ${SOLVERS} 'done:' lines on stderr, got ${done_count}:\n${err}")
endif()
string(REGEX REPLACE "(^|\n)done: [^\n]+\n" "" rest "${err}")
if(NOT rest STREQUAL "")
  message(FATAL_ERROR "stderr has more than one line per solver:\n${err}")
endif()
if(NOT out MATCHES "^prefopt-arena [^\n]+\n\nsolver +status")
  message(FATAL_ERROR "stdout does not open with the title and the table:\n${out}")
endif()

execute_process(COMMAND "${ARENA}" --quiet "${CONFIG}" --output "${OUT}/output_quiet.json"
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0 OR NOT err STREQUAL "")
  message(FATAL_ERROR "--quiet: exit ${rc}, stderr not empty:\n${err}")
endif()
string(REGEX MATCHALL "\n" lines "${out}")
list(LENGTH lines line_count)
math(EXPR expected "${SOLVERS} + 1")
if(NOT out MATCHES "^solver +status" OR NOT line_count EQUAL expected)
  message(FATAL_ERROR "--quiet: expected only the table (${expected} lines), got:\n${out}")
endif()
message(STATUS "output as expected")
