#pragma once
/// \file
/// The error hierarchy of prefopt and the macros every layer throws through.
///
/// Every error prefopt raises at an API boundary derives from `prefopt::error`, itself a
/// `std::runtime_error`. Messages say which function, which argument, which index (row, column,
/// context, line, JSON path) and what was expected, e.g.
///
///     tabular_preference_model: P[context 0](1, 2) = 1.5, expected a probability in [0, 1]
///
/// `PREFOPT_THROW(kind, parts...)` builds the message by streaming `parts...` (anything with an
/// `operator<<`) and throws `prefopt::kind`; every throw in prefopt goes through it. The checking
/// macros `PREFOPT_CHECK` and `PREFOPT_ASSERT` live in `core/assert.hpp`.

#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace prefopt {

/// Root of every exception prefopt throws.
class error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// An argument has the wrong value: out of range, not a probability, not finite, ...
class invalid_argument : public error {
 public:
  using error::error;
};

/// Arguments whose shapes or sizes do not agree.
class shape_error : public invalid_argument {
 public:
  using invalid_argument::invalid_argument;
};

/// Malformed external input: a config, a game file, a JSONL record. The message names the file,
/// line and field, or the JSON path.
class parse_error : public error {
 public:
  using error::error;
};

/// A file could not be read, written, or failed an integrity check (checksum, fingerprint).
class io_error : public error {
 public:
  using error::error;
};

/// An iterative method did not reach its stated target (for example an equilibrium solver that did
/// not certify its duality gap). Never returned silently.
class convergence_error : public error {
 public:
  using error::error;
};

/// A debug-only internal invariant failed (`PREFOPT_ASSERT`). Indicates a bug in prefopt.
class assertion_error : public error {
 public:
  using error::error;
};

namespace detail {

/// Streams every part into one string; doubles are printed with enough digits to round-trip.
template <class... Parts>
[[nodiscard]] std::string concat(const Parts&... parts) {
  std::ostringstream os;
  os.precision(std::numeric_limits<double>::max_digits10 - 2);
  (os << ... << parts);
  return os.str();
}

template <class Error, class... Parts>
[[noreturn]] void throw_error(const Parts&... parts) {
  throw Error(concat(parts...));
}

}  // namespace detail
}  // namespace prefopt

/// Throws `prefopt::kind` with a message made of the streamed `parts...`.
#define PREFOPT_THROW(kind, ...) ::prefopt::detail::throw_error<::prefopt::kind>(__VA_ARGS__)
