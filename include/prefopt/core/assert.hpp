#pragma once
/// \file
/// Checking macros.
///
/// - `PREFOPT_CHECK(cond, kind, parts...)`: always on. Use at API boundaries; throws
///   `prefopt::kind` with the streamed message, whose parts are evaluated only on failure.
/// - `PREFOPT_ASSERT(cond)`: internal invariants inside hot loops, compiled only when `NDEBUG` is
///   not defined or `PREFOPT_ENABLE_ASSERTS` is; throws `prefopt::assertion_error` naming the file
///   and line (a failure is a bug in prefopt, not bad input).

#include "prefopt/core/error.hpp"

/// Always-on precondition check: throws `prefopt::kind` with the streamed message when `cond` is
/// false. The message parts are evaluated only on failure.
#define PREFOPT_CHECK(cond, kind, ...)  \
  do {                                  \
    if (!(cond)) [[unlikely]] {         \
      PREFOPT_THROW(kind, __VA_ARGS__); \
    }                                   \
  } while (false)

#if !defined(NDEBUG) || defined(PREFOPT_ENABLE_ASSERTS)
/// Debug-only invariant check for hot loops; throws `prefopt::assertion_error` naming file and
/// line.
#define PREFOPT_ASSERT(cond)                                                                  \
  do {                                                                                        \
    if (!(cond)) [[unlikely]] {                                                               \
      PREFOPT_THROW(assertion_error, __FILE__, ":", __LINE__, ": assertion failed: ", #cond); \
    }                                                                                         \
  } while (false)
#else
#define PREFOPT_ASSERT(cond) \
  do {                       \
  } while (false)
#endif
