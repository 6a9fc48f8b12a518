#pragma once
// Shared by the fuzz harnesses: the input as text, and the check that turns a broken property into
// a crash libFuzzer reports (the replay tests see it as a failed run).

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace prefopt::fuzz {

/// Set by each harness: whether the last input was accepted (parsed and validated) rather than
/// rejected with a prefopt::error. The replay tests check it: every committed finding must be
/// rejected, every seed accepted.
inline bool accepted = false;

inline std::string_view as_text(const std::uint8_t* data, std::size_t size) noexcept {
  return {reinterpret_cast<const char*>(data), size};  // NOLINT: libFuzzer hands bytes
}

/// Aborts (a finding) when a property of an accepted input does not hold.
inline void require(bool property, const char* what) {
  if (property) return;
  std::fprintf(stderr, "fuzz property violated: %s\n", what);
  std::abort();
}

}  // namespace prefopt::fuzz
