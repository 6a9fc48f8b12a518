# Runs prefopt-arena on a bad config: it must exit with code 1, print an error matching EXPECT,
# and leave no results file behind (nor the folder ABSENT, when given: a sequence experiment's
# reference cache, which exists only once the reference is trained). With DEEP=N the config is first written as a document nested
# N levels deep.
if(DEFINED DEEP)
  string(REPEAT "[" ${DEEP} _open)
  string(REPEAT "]" ${DEEP} _close)
  file(WRITE "${CONFIG}" "{\"name\": ${_open}${_close}}")
endif()
file(REMOVE "${OUT}")
execute_process(COMMAND "${ARENA}" --quiet "${CONFIG}" --output "${OUT}"
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 1)
  message(FATAL_ERROR "expected exit code 1, got ${rc}\nstdout: ${out}\nstderr: ${err}")
endif()
if(NOT err MATCHES "${EXPECT}")
  message(FATAL_ERROR "error message does not match '${EXPECT}':\n${err}")
endif()
if(EXISTS "${OUT}")
  message(FATAL_ERROR "a results file was written for a rejected config")
endif()
if(DEFINED ABSENT AND EXISTS "${ABSENT}")
  message(FATAL_ERROR "${ABSENT} was created: the config was rejected after work had started")
endif()
message(STATUS "rejected as expected: ${err}")
