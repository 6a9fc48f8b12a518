#pragma once
/// \file
/// Options, outputs and upstream-gradient bundles of the fused linear kernels
/// (`kernels/linear_log_probs.hpp`, which documents the math, memory and invariance).

#include <cstdint>
#include <span>

#include "prefopt/core/types.hpp"
#include "prefopt/kernels/options.hpp"

namespace prefopt::kernels {

/// Options of the fused linear kernels.
struct linear_options {
  /// Vocabulary columns per block; rounded up to a multiple of `reduction_tile` (1008). Changes
  /// memory (block x row_tile logits per thread) and speed, never the forward results.
  index_t block_size = reduction_tile;
  /// Hidden rows per GEMM; 0 picks min(rows per thread, max(64, 512 / threads)). Rounded up to the
  /// GEMM micro-panel width. Changes memory and speed, never the forward results.
  index_t row_tile = 0;
  /// Tile arithmetic precision of the log-sum-exp folds (the GEMM is in the input type).
  accumulation accumulate = accumulation::input;
  /// Backward outputs: overwrite or accumulate.
  write_mode mode = write_mode::overwrite;
  /// Optional row mask `[N]` (0: position not scored; outputs 0, no gradient).
  std::span<const std::uint8_t> mask{};
  /// Split work across OpenMP threads when compiled with OpenMP.
  bool parallel = true;
  /// Exponential accuracy of the float folds (see `exp_accuracy`).
  exp_accuracy exp = exp_accuracy::standard;
};

/// Outputs of `linear_log_probs`, each `[N]` or empty (not computed).
template <class T>
struct linear_outputs {
  std::span<T> log_probs{};  ///< log p(target_i)
  std::span<T> logsumexp{};  ///< save for the backward
  std::span<T> entropy{};    ///< H(p_i)
};

/// Upstream gradients of `linear_log_probs_backward`, each `[N]` or empty (zero).
template <class T>
struct linear_grads {
  std::span<const T> log_probs{};
  std::span<const T> entropy{};
};

/// Forward values the backward needs: `logsumexp` always, `entropy` with an entropy gradient.
template <class T>
struct linear_saved {
  std::span<const T> logsumexp{};
  std::span<const T> entropy{};
};

}  // namespace prefopt::kernels
