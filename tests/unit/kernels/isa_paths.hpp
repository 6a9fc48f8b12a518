#pragma once
// The instruction-set paths the kernel tests force one by one (kernels/dispatch.hpp).

#include <vector>

#include "prefopt/kernels/dispatch.hpp"

namespace prefopt::test {

/// The paths this machine supports, baseline first.
inline std::vector<kernels::isa> supported_paths() {
  std::vector<kernels::isa> out;
  for (auto i : {kernels::isa::baseline, kernels::isa::avx2, kernels::isa::avx512}) {
    if (kernels::isa_supported(i)) out.push_back(i);
  }
  return out;
}

/// Forces a path for the lifetime of the object.
struct forced_path {
  explicit forced_path(kernels::isa i) { kernels::force_isa(i); }
  forced_path(const forced_path&) = delete;
  forced_path& operator=(const forced_path&) = delete;
  ~forced_path() { kernels::reset_isa(); }
};

}  // namespace prefopt::test
