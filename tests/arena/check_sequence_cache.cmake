# Runs a sequence-task experiment twice from an empty cache folder: the first run trains the
# shared reference and caches it, the second loads it; the "results" parts must be byte-identical
# (the cached reference is the trained one, bitwise) and the second run must say "(cached)".
file(REMOVE_RECURSE "${OUT}/sequence-cache")
foreach(run IN ITEMS first second)
  execute_process(COMMAND "${ARENA}" "${CONFIG}" --output "${OUT}/sequence_${run}.json"
                  WORKING_DIRECTORY "${OUT}" RESULT_VARIABLE rc OUTPUT_VARIABLE out
                  ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "prefopt-arena failed (${rc}) on the ${run} run: ${err}")
  endif()
  file(READ "${OUT}/sequence_${run}.json" doc)
  string(JSON results_${run} GET "${doc}" results)
  set(err_${run} "${err}")
endforeach()
if(NOT err_second MATCHES "\\(cached\\)")
  message(FATAL_ERROR "the second run did not load the cached reference: ${err_second}")
endif()
if(err_first MATCHES "\\(cached\\)")
  message(FATAL_ERROR "the first run found a reference in an empty cache: ${err_first}")
endif()
if(NOT results_first STREQUAL results_second)
  message(FATAL_ERROR "the run from the cached reference gave different results")
endif()
string(JSON n LENGTH "${results_first}" solvers)
if(NOT n EQUAL 4)
  message(FATAL_ERROR "expected 4 solvers in the results, got ${n}")
endif()
message(STATUS "reference cached and reused; results identical")
