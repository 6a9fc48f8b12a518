#pragma once
/// \file
/// Fused linear log-probs: from hidden states and the output (unembedding) matrix straight to
/// per-token log-probs and entropies, without ever building the `[N, V]` logits, and the backward
/// to `dhidden`, `dweight` and `dbias` by recomputing the logits block by block.
///
/// `z_i = W h_i + b` (`hidden` `[N, D]`, `weight` `[V, D]`, optional `bias` `[V]`, all row-major),
/// `log p_i = z_{i, t_i} - logsumexp(z_i)`, `H_i = -sum_v p_iv log p_iv`. The vocabulary is walked
/// in blocks of `block_size` columns: each block of logits for a tile of rows is one GEMM into a
/// workspace, then folded into each row's online log-sum-exp (the same tile reduction as
/// `token_log_probs`, so the results are those of `token_log_probs` on the same logits, bit for
/// bit). The idea is that of the "cut cross-entropy" / chunked-vocabulary losses used on GPUs
/// (Wijmans et al., "Cut Your Losses in Large-Vocabulary Language Models", arXiv 2411.09009);
/// this is a CPU implementation.
///
/// **Memory (this kernel allocates; the per-row kernels do not).** Per thread, a logits block of
/// `block_size x row_tile` elements, a padded copy of at most `mr` weight rows and `row_tile`
/// hidden rows (`mr` = Eigen's GEMM micro-panel height, 24 floats with AVX2), the GEMM packing
/// buffers (about `kc x (block_size + row_tile)`, kc <= D) and `row_tile` row states. With the
/// defaults (block 2016, row tile <= 512) and float that is about 4 MB + 8 D KB per thread, e.g.
/// 3.5% of `[N, V]` at N = 1024, V = 32000, D = 2048 single-threaded. The backward needs nothing
/// more: with several threads it splits the vocabulary blocks for `dweight` / `dbias`, then the
/// row tiles for `dhidden` (recomputing the logits once more), so that no thread keeps a private
/// copy of an output.
///
/// **Invariance.** The GEMM is Eigen's blocked kernel called with vocabulary blocks that are
/// multiples of the micro-panel height and row tiles that are multiples of its width (partial
/// panels are padded with zeros), so every logit is computed by the same register kernel with the
/// same accumulation order over D whatever its position. Forward outputs of a row are therefore
/// bitwise independent of the other rows, the thread count, `block_size` and `row_tile`. The
/// backward's `dhidden` and `dweight` are exact sums whose rounding depends on the block size and
/// on the batch (a sum over rows), but not on the thread count: every output element sums its
/// terms in the one-thread order.
///
/// **Unsupported.** Hidden rows of masked positions must still be finite (they take part in the
/// GEMM; their logits are discarded and their gradient is 0). Non-finite logits (from NaN/inf
/// hidden states or weights) are reported per row without the offending column.

#include <Eigen/Core>

#include <cstddef>
#include <span>

#include "prefopt/kernels/detail/linear.hpp"
#include "prefopt/kernels/linear_options.hpp"
#include "prefopt/kernels/options.hpp"

namespace prefopt::kernels {

/// Bytes the fused linear kernel allocates for `n` rows, vocabulary `v`, hidden size `d` under
/// `opt` (and the current OpenMP thread count): the per-thread logits block, padding buffers, GEMM
/// packing buffers and row states (the backward keeps no private copy of an output). What the
/// forward's "extra memory" is, exactly.
template <class T>
[[nodiscard]] std::size_t linear_workspace_bytes(index_t n, index_t v, index_t d,
                                                 const linear_options& opt = {},
                                                 bool backward = false) {
  index_t block = 0;
  index_t tile = 0;
  int threads = 1;
  detail::plan_linear<T>(n, v, opt, block, tile, threads);
  if (backward) tile = detail::backward_tile<T>(n, opt);
  const index_t mr = detail::gemm_shape<T>::mr;
  const Eigen::internal::gemm_blocking_space<Eigen::ColMajor, T, T, Eigen::Dynamic, Eigen::Dynamic,
                                             Eigen::Dynamic, 1, false>
      blocking(block, tile, d, 1, true);  // computes sizes; allocates only on request
  const index_t elements = block * tile + mr * d + mr * tile + detail::gemm_shape<T>::nr * d +
                           blocking.kc() * (blocking.mc() + blocking.nc());
  std::size_t per_thread = static_cast<std::size_t>(elements) * sizeof(T) +
                           static_cast<std::size_t>(tile) *
                               (sizeof(detail::row_accumulator<double, true>) + sizeof(double));
  const auto used_threads = backward ? std::min<index_t>(threads, (v + block - 1) / block)
                                     : std::min<index_t>(threads, std::max<index_t>(n, 1));
  return per_thread * static_cast<std::size_t>(used_threads);
}

/// Fused forward: per-token log-probs (and log-sum-exp, entropy) of `softmax(W h_i + b)` without
/// materializing the logits. `hidden`: row-major `[N, D]`; `weight`: row-major `[V, D]`; `bias`:
/// `[V]` or empty; `targets`: `[N]` in `[0, V)` (needed only for `log_probs`).
template <class H, class W>
void linear_log_probs(const Eigen::DenseBase<H>& hidden, const Eigen::DenseBase<W>& weight,
                      std::span<const typename H::Scalar> bias, std::span<const token_id> targets,
                      const linear_outputs<typename H::Scalar>& out,
                      const linear_options& opt = {}) {
  using T = typename H::Scalar;
  static_assert(std::is_same_v<T, typename W::Scalar>,
                "linear_log_probs: hidden and weight must have the same scalar type");
  static_assert(!is_half_format_v<T>,
                "linear_log_probs: hidden and weight must be float or double");
  const char* kernel = "linear_log_probs";
  const auto h = detail::view_of(hidden);
  const auto w = detail::view_of(weight);
  detail::check_optional_rows(kernel, "log_probs", out.log_probs.size(), h.rows);
  detail::check_optional_rows(kernel, "logsumexp", out.logsumexp.size(), h.rows);
  detail::check_optional_rows(kernel, "entropy", out.entropy.size(), h.rows);
  const auto p = detail::make_problem(kernel, h, w, bias, targets, !out.log_probs.empty(), opt);
  if (h.rows == 0) return;
  detail::linear_forward(p, out, opt);
}

/// Fused backward: with `dz_iv = g_lp,i (1[v = t_i] - p_iv) - g_H,i p_iv (log p_iv + H_i)`
/// recomputed block by block, `dhidden = dz W` (`[N, D]`), `dweight = dz^T hidden` (`[V, D]`),
/// `dbias = sum_i dz_i` (`[V]`); each written or accumulated per `opt.mode`, and skipped when
/// empty (0 x 0 matrices, empty span). `saved.logsumexp` (and `saved.entropy` with an entropy
/// gradient) come from the forward.
template <class H, class W, class DH, class DW>
void linear_log_probs_backward(
    const Eigen::DenseBase<H>& hidden, const Eigen::DenseBase<W>& weight,
    std::span<const typename H::Scalar> bias, std::span<const token_id> targets,
    const linear_saved<typename H::Scalar>& saved, const linear_grads<typename H::Scalar>& grads,
    const Eigen::DenseBase<DH>& dhidden, const Eigen::DenseBase<DW>& dweight,
    std::span<typename H::Scalar> dbias, const linear_options& opt = {}) {
  using T = typename H::Scalar;
  static_assert(!is_half_format_v<T>,
                "linear_log_probs_backward: hidden and weight must be float or double");
  static_assert(std::is_same_v<T, typename W::Scalar> && std::is_same_v<T, typename DH::Scalar> &&
                    std::is_same_v<T, typename DW::Scalar>,
                "linear_log_probs_backward: all matrices must have the same scalar type");
  const char* kernel = "linear_log_probs_backward";
  const auto h = detail::view_of(hidden);
  const auto w = detail::view_of(weight);
  const auto dh = detail::mutable_view_of(dhidden);
  const auto dw = detail::mutable_view_of(dweight);
  const bool want_dh = !(dh.rows == 0 && dh.cols == 0);
  const bool want_dw = !(dw.rows == 0 && dw.cols == 0);
  if (want_dh) detail::check_same_shape(kernel, "hidden", h, "dhidden", dh);
  if (want_dw) detail::check_same_shape(kernel, "weight", w, "dweight", dw);
  PREFOPT_CHECK(dbias.empty() || (!bias.empty() && dbias.size() == bias.size()), shape_error,
                kernel, ": dbias has ", dbias.size(), " entries, expected 0 or the size of bias (",
                bias.size(), ")");
  detail::check_rows(kernel, "logsumexp", saved.logsumexp.size(), h.rows);
  detail::check_optional_rows(kernel, "grad_log_probs", grads.log_probs.size(), h.rows);
  detail::check_optional_rows(kernel, "grad_entropy", grads.entropy.size(), h.rows);
  if (!grads.entropy.empty()) detail::check_rows(kernel, "entropy", saved.entropy.size(), h.rows);
  const auto p = detail::make_problem(kernel, h, w, bias, targets, !grads.log_probs.empty(), opt);
  for (index_t i = 0; i < h.rows; ++i) {
    if (!detail::row_on(opt.mask, i)) continue;
    const auto u = static_cast<std::size_t>(i);
    PREFOPT_CHECK(std::isfinite(saved.logsumexp[u]), invalid_argument, kernel, ": logsumexp[", i,
                  "] = ", saved.logsumexp[u], ", expected the finite value saved by the forward");
  }
  detail::linear_backward(p, saved, grads, dh, want_dh, dw, want_dw, dbias, opt);
}

}  // namespace prefopt::kernels
