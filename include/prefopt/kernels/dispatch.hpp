#pragma once
/// \file
/// Run-time choice of the instruction set the logits kernels' row arithmetic runs on.
///
/// The float row math (exp, sums, entropy and KL cross terms, the backward sweep) is compiled
/// three times into every program that includes the kernels, whatever flags it is built with:
///   - `isa::baseline`: Eigen packets of the ISA the compiler targets (SSE2 on plain x86-64; with
///     `prefopt::native` / `-march=native`, whatever the build machine has). Always available; the
///     only path on non-x86 targets, with compilers other than GCC and Clang, and for double
///     arithmetic (double logits or `accumulation::double_precision`).
///   - `isa::avx2`: 8-wide AVX2 + FMA (and F16C for fp16 logits), compiled with function target
///     attributes.
///   - `isa::avx512`: 16-wide AVX-512F, likewise.
/// bf16 and fp16 logits are widened to float per packet on `avx2` (a 16-bit shift for bf16, F16C
/// `vcvtph2ps` for fp16) and `avx512` (the same, 16 lanes), element by element on `baseline`; the
/// float arithmetic that follows is the float path's.
/// The first kernel call picks the widest one the CPU (and OS) supports, by CPU feature detection
/// (`__builtin_cpu_supports`), once per process. No compiler flag is needed: a default `-O2`
/// build runs as fast as a `-march=native` one (benchmarks/README.md). Define
/// `PREFOPT_NO_ISA_DISPATCH` before including prefopt to compile the baseline path only.
///
/// **Forcing a path.** `force_isa(isa::avx2)` (throws `prefopt::invalid_argument` if that path is
/// not available here) or, without code, the environment variable `PREFOPT_KERNELS_ISA` =
/// `baseline`, `avx2` or `avx512`, read once at the first kernel call (an unavailable or unknown
/// value is ignored). `reset_isa()` goes back to the automatic choice. Changing the path while
/// kernels run on other threads is allowed; each kernel call reads it once.
///
/// **Reproducibility.** On one machine with one path, results are bitwise identical across runs,
/// batches, thread counts and builds (the default and the native build run the same code when the
/// same path is chosen). Different paths (packet widths 4, 8, 16) sum in different orders and may
/// differ in the last bits, always within the accuracy bounds of `kernels/options.hpp`.

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "prefopt/core/assert.hpp"
#include "prefopt/kernels/detail/simd.hpp"

#if defined(PREFOPT_KERNELS_X86_DISPATCH)
#include <cpuid.h>
#endif

namespace prefopt::kernels {

/// An instruction-set path of the kernels' float row math.
enum class isa : std::uint8_t { baseline, avx2, avx512 };

/// "baseline", "avx2" or "avx512".
[[nodiscard]] constexpr const char* isa_name(isa i) noexcept {
  switch (i) {
    case isa::avx2:
      return "avx2";
    case isa::avx512:
      return "avx512";
    case isa::baseline:
    default:
      return "baseline";
  }
}

/// Floats per packet of a path (baseline: the compile-time Eigen packet width).
[[nodiscard]] constexpr index_t isa_width(isa i) noexcept {
  switch (i) {
    case isa::avx2:
      return 8;
    case isa::avx512:
      return 16;
    case isa::baseline:
    default:
      return detail::isa_base::simd<float>::width;
  }
}

#if defined(PREFOPT_KERNELS_X86_DISPATCH)
namespace detail {
/// F16C (half <-> float conversion), from CPUID leaf 1 (Clang 14's `__builtin_cpu_supports` does
/// not know the feature name). The OS support for the YMM state it needs is that of AVX2, checked
/// beside.
[[nodiscard]] inline bool cpu_has_f16c() noexcept {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid(1, &a, &b, &c, &d) == 0) return false;
  return (c & bit_F16C) != 0;
}
}  // namespace detail
#endif

/// Whether path `i` is compiled in and this CPU (and OS) can run it.
[[nodiscard]] inline bool isa_supported(isa i) noexcept {
  if (i == isa::baseline) return true;
#if defined(PREFOPT_KERNELS_X86_DISPATCH)
  __builtin_cpu_init();
  if (i == isa::avx2) {
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           detail::cpu_has_f16c();
  }
  if (i == isa::avx512) {
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") &&
           __builtin_cpu_supports("fma");
  }
#endif
  return false;
}

namespace detail {

/// -1: automatic; otherwise the forced `isa`.
inline std::atomic<int>& forced_isa_slot() noexcept {
  static std::atomic<int> slot{-1};
  return slot;
}

[[nodiscard]] inline isa detect_isa() noexcept {
  if (const char* env = std::getenv("PREFOPT_KERNELS_ISA")) {  // NOLINT(concurrency-mt-unsafe)
    for (isa i : {isa::baseline, isa::avx2, isa::avx512}) {
      if (std::strcmp(env, isa_name(i)) == 0 && isa_supported(i)) return i;
    }
  }
  if (isa_supported(isa::avx512)) return isa::avx512;
  if (isa_supported(isa::avx2)) return isa::avx2;
  return isa::baseline;
}

}  // namespace detail

/// The widest supported path (or the one `PREFOPT_KERNELS_ISA` names), detected once.
[[nodiscard]] inline isa detected_isa() noexcept {
  static const isa chosen = detail::detect_isa();
  return chosen;
}

/// The path kernel calls use now: the forced one, else `detected_isa()`.
[[nodiscard]] inline isa active_isa() noexcept {
  const int f = detail::forced_isa_slot().load(std::memory_order_relaxed);
  return f >= 0 ? static_cast<isa>(f) : detected_isa();
}

/// Makes every later kernel call use path `i` (tests, benchmarks, reproducing another machine's
/// baseline results). Throws `prefopt::invalid_argument` when `i` is not supported here.
inline void force_isa(isa i) {
  PREFOPT_CHECK(isa_supported(i), invalid_argument, "kernels::force_isa: path ", isa_name(i),
                " is not available on this CPU or in this build");
  detail::forced_isa_slot().store(static_cast<int>(i), std::memory_order_relaxed);
}

/// Back to the automatic choice (`detected_isa()`).
inline void reset_isa() noexcept {
  detail::forced_isa_slot().store(-1, std::memory_order_relaxed);
}

}  // namespace prefopt::kernels
