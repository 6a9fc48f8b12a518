#pragma once
/// \file
/// Options, conventions and shared guarantees of the logits kernels (`prefopt/kernels/`).
///
/// **Layouts.** Logits are row-major `[N, V]` Eigen objects over the caller's memory (`Map`,
/// `Matrix`, `Ref`, or a block of whole rows; rows contiguous, any row stride), float or double,
/// or one of the 16-bit formats models emit, `Eigen::bfloat16` and `Eigen::half` (see "Half
/// formats" below).
/// Per-row vectors (targets `[N]` int32, masks `[N]`, per-row outputs and upstream gradients) are
/// `std::span`s. Outputs always go to caller buffers; `span_of(v)` turns an Eigen vector into one.
///
/// **One pass.** Every forward kernel reads each logit once from memory: a row is reduced in fixed
/// tiles of `reduction_tile` elements (small enough to stay in L1) with an online (streaming)
/// log-sum-exp: per tile its maximum, a rescale of the running sums when the maximum grows, then
/// one vector sweep of the exponentials and (for entropy and two-matrix KL) the cross terms, each
/// tile's float lanes added to per-lane double sums that are added across lanes only at the end of
/// the row. Memory two tiles ahead is prefetched during the sweep. The row math runs on the widest
/// instruction set the CPU has (AVX-512, AVX2 + FMA or the compile-time baseline), chosen at run
/// time without any compiler flag (`kernels/dispatch.hpp`). Backward kernels take the forward's
/// per-row log-sum-exp and write (or accumulate) the gradient in one read + one write sweep.
///
/// **Bitwise invariance.** A row's results depend only on that row and the instruction-set path:
/// the tile grid is anchored at the row's first element, tiles are reduced in order, a partial
/// last packet is padded (with -inf, weight 0) and goes through the same vector code, and nothing
/// depends on the address alignment of the data. So, on one path, results are bitwise identical
/// whatever else is in the batch, whatever the number of threads, whatever the build flags, and
/// (for `linear_log_probs`) whatever vocabulary block size is chosen. Different paths (packet
/// widths) sum in a different order and may differ in the last bits, within the bounds below.

/// **Non-finite input.** NaN or +inf logits are detected from the running maximum and sum at the
/// end of the row (no extra pass) and raise `prefopt::invalid_argument` naming the kernel, the row
/// and, found by a scan of that row only on the error path, the column and value. `-inf` logits are
/// allowed (masked vocabulary) as long as a row has at least one finite logit. When a kernel throws
/// for a non-finite row, the outputs of other rows may already have been written (the detection is
/// folded into the single pass); the bad row's outputs are not written. Shape, target and mask
/// errors are found before anything is written.
///
/// **No allocation.** The per-row kernels never allocate (tested with `EIGEN_RUNTIME_NO_MALLOC`);
/// tile scratch lives on the stack. `linear_log_probs` is the exception and says what it allocates.
///
/// **Accuracy** (tested against a long-double reference for |logit| <= 1e4, rows with -inf
/// entries, V from 1 to 256k, on every path). Let u be the unit roundoff of the logits' type (2^-24
/// for float, 2^-53 for double), V the vocabulary size and c = 150 (covers the float sum of one
/// lane within a tile, at most reduction_tile / (2 W) + 1 = 127 adds for the 4-wide baseline, and
/// the vector exp's few-ulp error); with `exp_accuracy::fast`, c = 300 (the degree-4 exp adds a
/// relative error under 3.5e-6 = 60 u to every weight). With `accumulation::input`:
///   - log-sum-exp and log p(target):  |err| <= u (|value| + log V + c);
///   - entropy:                        |err| <= u (log V + c)(1 + H + log V);
///   - full KL(p||q):                  |err| <= u (log V + c)(2 + max_j |zp_j - zq_j|);
///   - each gradient entry:            |err| <= |g| u ((2 |lse| + |z_j| + c) p_j + 1)
///     (the gradient inherits the rounding of the saved log-sum-exp, which is as large as the
///     rounding of the logits themselves: a relative perturbation of one ulp of the logits).
/// exp is evaluated with a Cody-Waite reduction and a degree-5 minimax polynomial (< 3 ulp, float;
/// degree 4 with `exp_accuracy::fast`) or Eigen's packet exp (double), and flushed to exactly 0
/// below log(smallest normal) (absolute error below FLT_MIN / DBL_MIN), so `-inf` logits get
/// exactly zero probability and gradient. With `accumulation::double_precision` (float logits) the
/// tile arithmetic is double and the errors above shrink to about the final rounding to float,
/// u (|value| + 1).
///
/// **Half formats** (`Eigen::bfloat16`, `Eigen::half` logits). Read directly, half the bytes of
/// float: each tile is widened exactly to float (per SIMD packet: a 16-bit shift for bf16, F16C /
/// AVX-512 `vcvtph2ps` for fp16; scalar conversion on the baseline path) into an L1 scratch tile
/// and goes through the float arithmetic above. Per-row outputs and upstream gradients are float
/// (`result_scalar_t<Scalar>`); so every forward result is bitwise the float kernel's result on
/// the widened logits, on the same path, with the same accuracy bounds (u = 2^-24, the float
/// arithmetic's; the reference is computed from the same half-precision inputs). Gradients are
/// written in the logits' format (dlogits has the logits' scalar type): computed in float, the
/// target term and, under `accumulate`, the previous value added in float, then rounded once
/// (round to nearest even) -- the float kernel's gradient rounded to the half format, plus that
/// rounding (2^-9 relative for bf16, 2^-12 for fp16). `accumulation::double_precision` widens to
/// double instead. Every other guarantee above (one pass, bitwise invariance, errors naming
/// kernel and row, no allocation) holds unchanged. `linear_log_probs` takes float or double only.
///
/// **Threads.** When compiled with OpenMP (`_OPENMP`), rows are split across threads (static
/// schedule, only by rows) for batches larger than a small work threshold; otherwise one thread.

#include <Eigen/Core>

#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>

#include "prefopt/core/types.hpp"

namespace prefopt::kernels {

/// Whether gradient outputs are overwritten (`out = grad`) or accumulated into (`out += grad`).
/// Masked rows are set to 0 under `overwrite` and left untouched under `accumulate`.
enum class write_mode : std::uint8_t { overwrite, accumulate };

/// Precision of the arithmetic inside a tile. `input`: the logits' type (float for float logits,
/// fast); `double_precision`: float logits are widened to double inside the tile (about 2x slower
/// on exp-bound kernels, error dominated by the final rounding to float). The running state across
/// tiles is double in both cases.
enum class accumulation : std::uint8_t { input, double_precision };

/// Exponential used by the float row arithmetic. `standard`: degree-5 minimax polynomial (< 3 ulp);
/// `fast`: degree 4 and a one-step reduction (relative error under 3.5e-6, about 60 u), two fused
/// multiply-adds fewer per exponential, with the larger bounds stated above (c = 300). Double
/// arithmetic (double logits or `accumulation::double_precision`) always uses the full-accuracy
/// exp.
enum class exp_accuracy : std::uint8_t { standard, fast };

/// Whether T is a 16-bit floating-point logits format (`Eigen::bfloat16`, `Eigen::half`).
template <class T>
inline constexpr bool is_half_format_v =
    std::is_same_v<T, Eigen::bfloat16> || std::is_same_v<T, Eigen::half>;

/// Scalar type of the per-row outputs, saved values and upstream gradients for logits of type T:
/// T itself for float and double, float for the half formats.
template <class T>
using result_scalar_t = std::conditional_t<is_half_format_v<T>, float, T>;

/// Options shared by the per-row kernels.
struct options {
  /// `overwrite` or `accumulate` for gradient outputs.
  write_mode mode = write_mode::overwrite;
  /// Arithmetic precision inside a tile.
  accumulation accumulate = accumulation::input;
  /// Optional row mask `[N]`: rows with `mask[i] == 0` are not read; their outputs are 0 (per-row
  /// values, and gradients under `overwrite`), targets there are not checked. Empty: all rows
  /// valid.
  std::span<const std::uint8_t> mask{};
  /// Split rows across OpenMP threads when compiled with OpenMP. Never changes results.
  bool parallel = true;
  /// Exponential accuracy of float arithmetic (`exp_accuracy::fast`: about 10% faster forwards).
  exp_accuracy exp = exp_accuracy::standard;
};

/// Number of logits in one reduction tile: fixed, so results never depend on a chunk size. 1008 is
/// divisible by every SIMD packet width and GEMM micro-panel height Eigen uses (4..16, 12, 24, 48).
inline constexpr index_t reduction_tile = 1008;

/// A span over a contiguous Eigen vector (or any object with `data()` and `size()`).
template <class V>
[[nodiscard]] auto span_of(V& v) noexcept {
  using element = std::remove_pointer_t<decltype(v.data())>;
  return std::span<element>(v.data(), static_cast<std::size_t>(v.size()));
}

}  // namespace prefopt::kernels
