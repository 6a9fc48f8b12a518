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
/// 3.5% of `[N, V]` at N = 1024, V = 32000, D = 2048 single-threaded. The backward additionally
/// needs, when more than one thread runs, one private `[N, D]` dhidden per thread (summed in
/// thread order at the end).
///
/// **Invariance.** The GEMM is Eigen's blocked kernel called with vocabulary blocks that are
/// multiples of the micro-panel height and row tiles that are multiples of its width (partial
/// panels are padded with zeros), so every logit is computed by the same register kernel with the
/// same accumulation order over D whatever its position. Forward outputs of a row are therefore
/// bitwise independent of the other rows, the thread count, `block_size` and `row_tile`. The
/// backward's `dhidden` and `dweight` are exact sums but their rounding depends on the block size
/// and on the batch (a sum over rows).
///
/// **Unsupported.** Hidden rows of masked positions must still be finite (they take part in the
/// GEMM; their logits are discarded and their gradient is 0). Non-finite logits (from NaN/inf
/// hidden states or weights) are reported per row without the offending column.

#include <Eigen/Core>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "prefopt/kernels/detail/row_engine.hpp"
#include "prefopt/kernels/options.hpp"

namespace prefopt::kernels {

/// Options of the fused linear kernels.
struct linear_options {
  /// Vocabulary columns per block; rounded up to a multiple of `reduction_tile` (1008). Changes
  /// memory (block x row_tile logits per thread) and speed, never the forward results.
  index block_size = reduction_tile;
  /// Hidden rows per GEMM; 0 picks min(rows per thread, max(64, 512 / threads)). Rounded up to the
  /// GEMM micro-panel width. Changes memory and speed, never the forward results.
  index row_tile = 0;
  /// Tile arithmetic precision of the log-sum-exp folds (the GEMM is in the input type).
  accumulation accumulate = accumulation::input;
  /// Backward outputs: overwrite or accumulate.
  write_mode mode = write_mode::overwrite;
  /// Optional row mask `[N]` (0: position not scored; outputs 0, no gradient).
  std::span<const std::uint8_t> mask{};
  /// Split work across OpenMP threads when compiled with OpenMP.
  bool parallel = true;
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

namespace detail {

template <class T>
struct gemm_shape {
  static constexpr index mr = Eigen::internal::gebp_traits<T, T>::mr;
  static constexpr index nr = Eigen::internal::gebp_traits<T, T>::nr;
};

[[nodiscard]] inline index round_up(index x, index m) {
  return (x + m - 1) / m * m;
}

/// Per-thread scratch of the fused linear kernels.
template <class T>
struct linear_workspace {
  index block = 0;
  index tile = 0;
  index depth = 0;
  std::vector<T> z;     // [tile_pad, block] logits (row r at z + r * bc)
  std::vector<T> wpad;  // [mr, D] zero-padded tail of a weight block
  std::vector<T> zpad;  // [tile_pad, mr] logits of the padded tail
  std::vector<T> hpad;  // [nr, D] zero-padded last (< nr) rows of a row tile
  Eigen::internal::gemm_blocking_space<Eigen::ColMajor, T, T, Eigen::Dynamic, Eigen::Dynamic,
                                       Eigen::Dynamic, 1, false>
      blocking;

  linear_workspace(index block_, index tile_, index depth_)
      : block(block_),
        tile(tile_),
        depth(depth_),
        z(static_cast<std::size_t>(block_ * tile_)),
        wpad(static_cast<std::size_t>(gemm_shape<T>::mr * depth_)),
        zpad(static_cast<std::size_t>(gemm_shape<T>::mr * tile_)),
        hpad(static_cast<std::size_t>(gemm_shape<T>::nr * depth_)),
        blocking(block_, tile_, depth_, 1, true) {
    blocking.allocateAll();
  }
};

/// Hidden rows of one row tile as the GEMM sees them: `main` rows (a multiple of nr) read in place
/// with row stride `stride`, then, when the tile is not a multiple of nr, one zero-padded panel of
/// nr rows in the workspace. `cols()` is the padded count.
template <class T>
struct tile_view {
  const T* main = nullptr;
  index stride = 0;
  index n_main = 0;
  const T* tail = nullptr;  // nr rows, row stride D, or null
  [[nodiscard]] index cols() const noexcept {
    return n_main + (tail != nullptr ? gemm_shape<T>::nr : 0);
  }
};

template <class T>
tile_view<T> tile_rows(const cview<T>& h, index r0, index rt, linear_workspace<T>& ws) {
  constexpr index nr = gemm_shape<T>::nr;
  tile_view<T> t;
  t.main = h.row(r0);
  t.stride = h.stride;
  t.n_main = rt / nr * nr;
  const index rest = rt - t.n_main;
  if (rest > 0) {
    std::fill(ws.hpad.begin(), ws.hpad.end(), T(0));
    for (index r = 0; r < rest; ++r) {
      std::copy_n(h.row(r0 + t.n_main + r), h.cols, ws.hpad.data() + r * h.cols);
    }
    t.tail = ws.hpad.data();
  }
  return t;
}

/// z (col-major [rows, tile.cols()], leading dimension ldz) += lhs [rows, D] (row-major, stride
/// ls) * tile^T, as one GEMM per part of the tile (rows is a multiple of mr).
template <class T>
void gemm_tile(const T* lhs, index ls, index rows, index d, const tile_view<T>& tile, T* z,
               index ldz, linear_workspace<T>& ws) {
  using gemm =
      Eigen::internal::general_matrix_matrix_product<index, T, Eigen::RowMajor, false, T,
                                                     Eigen::ColMajor, false, Eigen::ColMajor, 1>;
  if (rows == 0 || d == 0) return;
  if (tile.n_main > 0) {
    gemm::run(rows, tile.n_main, d, lhs, ls, tile.main, tile.stride, z, 1, ldz, T(1), ws.blocking,
              nullptr);
  }
  if (tile.tail != nullptr) {
    gemm::run(rows, gemm_shape<T>::nr, d, lhs, ls, tile.tail, d, z + tile.n_main * ldz, 1, ldz,
              T(1), ws.blocking, nullptr);
  }
}

/// Logits of one (vocabulary block, row tile): z[r * bc + v] = sum_k w[(v0+v), k] h[r, k] (+ b),
/// for r < tile.cols(). Vocabulary rows go through the GEMM in multiples of mr (a tail of fewer
/// rows is zero-padded to mr), so every logit comes out of the same register kernel.
template <class T>
void block_logits(const cview<T>& w, const T* bias, index v0, index bc, const tile_view<T>& tile,
                  linear_workspace<T>& ws) {
  constexpr index mr = gemm_shape<T>::mr;
  const index d = w.cols;
  const index cols = tile.cols();
  T* z = ws.z.data();
  std::fill_n(z, static_cast<std::size_t>(bc * cols), T(0));
  const index main = bc / mr * mr;
  const index rem = bc - main;
  gemm_tile(w.row(v0), w.stride, main, d, tile, z, bc, ws);
  if (rem > 0 && d > 0) {
    std::fill(ws.wpad.begin(), ws.wpad.end(), T(0));
    for (index k = 0; k < rem; ++k) {
      std::copy_n(w.row(v0 + main + k), d, ws.wpad.data() + k * d);
    }
    T* zp = ws.zpad.data();
    std::fill_n(zp, static_cast<std::size_t>(mr * cols), T(0));
    gemm_tile(ws.wpad.data(), d, mr, d, tile, zp, mr, ws);
    for (index r = 0; r < cols; ++r) std::copy_n(zp + r * mr, rem, z + r * bc + main);
  }
  if (bias != nullptr) {
    const carray_map<T> b(bias + v0, bc);
    for (index r = 0; r < cols; ++r) array_map<T>(z + r * bc, bc) += b;
  }
}

/// Block size, row tile and thread count the fused linear kernels use for these sizes.
template <class T>
void plan_linear(index n, index v, const linear_options& opt, index& block, index& tile,
                 int& threads) {
  block = round_up(
      std::min(std::max<index>(opt.block_size, 1), round_up(std::max<index>(v, 1), reduction_tile)),
      reduction_tile);
  threads = 1;
#if defined(_OPENMP)
  if (opt.parallel && !omp_in_parallel()) threads = std::max(1, omp_get_max_threads());
#endif
  const index per_thread = (n + threads - 1) / threads;
  // Auto tile: the whole share of a thread, capped so all threads together hold at most 512
  // rows of logits blocks (memory stays the same whatever the thread count).
  const index cap = std::max<index>(64, 512 / threads);
  const index t =
      opt.row_tile > 0 ? opt.row_tile : std::min<index>(std::max<index>(per_thread, 1), cap);
  tile = round_up(t, gemm_shape<T>::nr);
}

template <class T>
struct linear_problem {
  const char* kernel = "";
  cview<T> h;
  cview<T> w;
  const T* bias = nullptr;
  std::span<const token_id> targets;
  index block = 0;
  index tile = 0;
  int threads = 1;
};

template <class T>
linear_problem<T> make_problem(const char* kernel, const cview<T>& h, const cview<T>& w,
                               std::span<const T> bias, std::span<const token_id> targets,
                               bool need_targets, const linear_options& opt) {
  linear_problem<T> p;
  p.kernel = kernel;
  p.h = h;
  p.w = w;
  const index n = h.rows;
  const index v = w.rows;
  PREFOPT_CHECK(h.cols == w.cols, shape_error, kernel, ": hidden is [", n, ", ", h.cols,
                "] and weight is [", v, ", ", w.cols, "], expected the same hidden size D");
  PREFOPT_CHECK(v > 0 || n == 0, shape_error, kernel,
                ": weight has 0 rows, expected a vocabulary of at least 1 entry");
  PREFOPT_CHECK(bias.empty() || static_cast<index>(bias.size()) == v, shape_error, kernel,
                ": bias has ", bias.size(), " entries, expected 0 or V = ", v);
  PREFOPT_CHECK(opt.block_size > 0 && opt.row_tile >= 0, invalid_argument, kernel,
                ": block_size = ", opt.block_size, ", row_tile = ", opt.row_tile,
                ", expected block_size > 0 and row_tile >= 0");
  check_optional_rows(kernel, "mask", opt.mask.size(), n);
  if (need_targets) check_targets(kernel, targets, opt.mask, n, v);
  if (!bias.empty()) {
    for (index j = 0; j < v; ++j) {
      PREFOPT_CHECK(std::isfinite(bias[static_cast<std::size_t>(j)]), invalid_argument, kernel,
                    ": bias[", j, "] = ", bias[static_cast<std::size_t>(j)], ", expected finite");
    }
  }
  p.bias = bias.empty() ? nullptr : bias.data();
  p.targets = targets;
  plan_linear<T>(n, v, opt, p.block, p.tile, p.threads);
  return p;
}

template <class T>
void linear_forward(const linear_problem<T>& p, const linear_outputs<T>& out,
                    const linear_options& opt) {
  const index n = p.h.rows;
  const index v = p.w.rows;
  const index d = p.h.cols;
  const bool want_entropy = !out.entropy.empty();
  index first_bad = n;
  const int threads = static_cast<int>(std::min<index>(p.threads, std::max<index>(n, 1)));
  // Workspaces are allocated before the parallel region (an allocation failure throws here).
  std::vector<std::unique_ptr<linear_workspace<T>>> spaces;
  for (int t = 0; t < threads; ++t) {
    spaces.push_back(std::make_unique<linear_workspace<T>>(p.block, p.tile, d));
  }
  auto run_thread = [&]<class Acc, bool Entropy>(int tid) -> index {
    linear_workspace<T>& ws = *spaces[static_cast<std::size_t>(tid)];
    const index a = n * tid / threads;
    const index b = n * (tid + 1) / threads;
    std::vector<row_accumulator<Acc, Entropy>> acc(static_cast<std::size_t>(p.tile));
    std::vector<double> x_t(static_cast<std::size_t>(p.tile));
    alignas(64) Acc scratch[tile_chunk];  // a widened chunk (double accumulation)
    index bad = n;
    for (index r0 = a; r0 < b; r0 += p.tile) {
      const index rt = std::min(p.tile, b - r0);
      const tile_view<T> tile = tile_rows(p.h, r0, rt, ws);
      std::fill(acc.begin(), acc.end(), row_accumulator<Acc, Entropy>{});
      for (index v0 = 0; v0 < v; v0 += p.block) {
        const index bc = std::min(p.block, v - v0);
        block_logits(p.w, p.bias, v0, bc, tile, ws);
        for (index r = 0; r < rt; ++r) {
          const index i = r0 + r;
          if (!row_on(opt.mask, i)) continue;
          const T* zr = ws.z.data() + r * bc;
          auto& ac = acc[static_cast<std::size_t>(r)];
          for (index j = 0; j < bc; j += reduction_tile) {
            ac.add_tile(zr + j, std::min(reduction_tile, bc - j), scratch);
          }
          if (!out.log_probs.empty()) {
            const index t = p.targets[static_cast<std::size_t>(i)];
            if (t >= v0 && t < v0 + bc)
              x_t[static_cast<std::size_t>(r)] = static_cast<double>(zr[t - v0]);
          }
        }
      }
      for (index r = 0; r < rt; ++r) {
        const index i = r0 + r;
        const auto u = static_cast<std::size_t>(i);
        if (!row_on(opt.mask, i)) {
          for (auto o : {out.log_probs, out.logsumexp, out.entropy}) {
            if (!o.empty()) o[u] = T(0);
          }
          continue;
        }
        const row_stats s = acc[static_cast<std::size_t>(r)].finish();
        if (s.status != row_status::ok) {
          bad = std::min(bad, i);
          continue;
        }
        if (!out.log_probs.empty()) {
          out.log_probs[u] = static_cast<T>((x_t[static_cast<std::size_t>(r)] - s.m) - s.log_s);
        }
        if (!out.logsumexp.empty()) out.logsumexp[u] = static_cast<T>(s.lse());
        if (!out.entropy.empty()) out.entropy[u] = static_cast<T>(s.entropy);
      }
    }
    return bad;
  };
  auto dispatch = [&](int tid) -> index {
    return with_accumulation<T>(opt.accumulate, [&]<class Acc>() -> index {
      return want_entropy ? run_thread.template operator()<Acc, true>(tid)
                          : run_thread.template operator()<Acc, false>(tid);
    });
  };
#if defined(_OPENMP)
  if (threads > 1) {
#pragma omp parallel for schedule(static, 1) num_threads(threads) reduction(min : first_bad)
    for (int tid = 0; tid < threads; ++tid) first_bad = std::min(first_bad, dispatch(tid));
  } else {
    first_bad = dispatch(0);
  }
#else
  first_bad = dispatch(0);
#endif
  if (first_bad < n) {
    PREFOPT_THROW(invalid_argument, p.kernel, ": row ", first_bad,
                  " has non-finite logits (NaN or +inf; from hidden row ", first_bad,
                  " or the weight) or no finite logit");
  }
}

template <class T>
void linear_backward(const linear_problem<T>& p, const linear_saved<T>& saved,
                     const linear_grads<T>& grads, const mview<T>& dh, bool want_dh,
                     const mview<T>& dw, bool want_dw, std::span<T> dbias,
                     const linear_options& opt) {
  const index n = p.h.rows;
  const index v = p.w.rows;
  const index d = p.h.cols;
  const index n_blocks = (v + p.block - 1) / p.block;
  const int threads = static_cast<int>(std::min<index>(p.threads, std::max<index>(n_blocks, 1)));
  const bool acc_mode = opt.mode == write_mode::accumulate;
  // Outputs under `overwrite` start from zero (blocks of dweight / dbias are then accumulated).
  if (!acc_mode) {
    if (want_dw) {
      for (index j = 0; j < v; ++j) array_map<T>(dw.row(j), d).setZero();
    }
    std::fill(dbias.begin(), dbias.end(), T(0));
    if (want_dh) {
      for (index i = 0; i < n; ++i) array_map<T>(dh.row(i), d).setZero();
    }
  }
  // Private dhidden for threads > 0 (thread 0 accumulates into the output directly).
  std::vector<T> private_dh(want_dh ? static_cast<std::size_t>((threads - 1) * n * d) : 0);
  std::vector<std::unique_ptr<linear_workspace<T>>> spaces;
  for (int t = 0; t < threads; ++t) {
    spaces.push_back(std::make_unique<linear_workspace<T>>(p.block, p.tile, d));
  }
  using map_t = Eigen::Map<row_matrix_t<T>, 0, Eigen::OuterStride<>>;
  using cmap_t = Eigen::Map<const row_matrix_t<T>, 0, Eigen::OuterStride<>>;
  const bool with_h = !grads.entropy.empty();
  auto run_thread = [&]<class Acc, bool Entropy>(int tid) {
    linear_workspace<T>& ws = *spaces[static_cast<std::size_t>(tid)];
    T* dh_base = tid == 0 ? dh.data : private_dh.data() + (tid - 1) * n * d;
    const index dh_stride = tid == 0 ? dh.stride : d;
    for (index blk = tid; blk < n_blocks; blk += threads) {
      const index v0 = blk * p.block;
      const index bc = std::min(p.block, v - v0);
      for (index r0 = 0; r0 < n; r0 += p.tile) {
        const index rt = std::min(p.tile, n - r0);
        const tile_view<T> tile = tile_rows(p.h, r0, rt, ws);
        block_logits(p.w, p.bias, v0, bc, tile, ws);
        T* z = ws.z.data();
        for (index r = 0; r < rt; ++r) {
          const index i = r0 + r;
          const auto u = static_cast<std::size_t>(i);
          T* zr = z + r * bc;
          if (!row_on(opt.mask, i)) {
            std::fill_n(zr, bc, T(0));
            continue;
          }
          row_grad_in g;
          g.lse = static_cast<double>(saved.logsumexp[u]);
          if (!grads.log_probs.empty()) {
            g.g_lp = static_cast<double>(grads.log_probs[u]);
            const index t = p.targets[u];
            g.target = (t >= v0 && t < v0 + bc) ? t - v0 : index{-1};
          }
          if constexpr (Entropy) {
            g.g_h = static_cast<double>(grads.entropy[u]);
            g.entropy = static_cast<double>(saved.entropy[u]);
          }
          backward_row<Acc, Entropy, false, T>(zr, nullptr, zr, nullptr, bc, g,
                                               write_mode::overwrite);
        }
        const Eigen::Map<const row_matrix_t<T>> dz(z, rt, bc);
        const cmap_t wb(p.w.row(v0), bc, d, Eigen::OuterStride<>(p.w.stride));
        const cmap_t hb(p.h.row(r0), rt, d, Eigen::OuterStride<>(p.h.stride));
        if (want_dw) {
          map_t dwb(dw.row(v0), bc, d, Eigen::OuterStride<>(dw.stride));
          dwb.noalias() += dz.transpose() * hb;
        }
        if (want_dh) {
          map_t dhb(dh_base + r0 * dh_stride, rt, d, Eigen::OuterStride<>(dh_stride));
          dhb.noalias() += dz * wb;
        }
        if (!dbias.empty()) {
          array_map<T>(dbias.data() + v0, bc) += dz.colwise().sum().transpose().array();
        }
      }
    }
  };
  auto dispatch = [&](int tid) {
    with_accumulation<T>(opt.accumulate, [&]<class Acc>() {
      if (with_h) {
        run_thread.template operator()<Acc, true>(tid);
      } else {
        run_thread.template operator()<Acc, false>(tid);
      }
    });
  };
#if defined(_OPENMP)
  if (threads > 1) {
#pragma omp parallel for schedule(static, 1) num_threads(threads)
    for (int tid = 0; tid < threads; ++tid) dispatch(tid);
  } else {
    dispatch(0);
  }
#else
  dispatch(0);
#endif
  if (want_dh) {
    for (int t = 1; t < threads; ++t) {
      const T* src = private_dh.data() + (t - 1) * n * d;
      for (index i = 0; i < n; ++i) array_map<T>(dh.row(i), d) += carray_map<T>(src + i * d, d);
    }
  }
}

}  // namespace detail

/// Bytes the fused linear kernel allocates for `n` rows, vocabulary `v`, hidden size `d` under
/// `opt` (and the current OpenMP thread count): the per-thread logits block, padding buffers, GEMM
/// packing buffers and row states, plus, for the backward with several threads, the private
/// dhidden copies. What the forward's "extra memory" is, exactly.
template <class T>
[[nodiscard]] std::size_t linear_workspace_bytes(index n, index v, index d,
                                                 const linear_options& opt = {},
                                                 bool backward = false) {
  index block = 0;
  index tile = 0;
  int threads = 1;
  detail::plan_linear<T>(n, v, opt, block, tile, threads);
  const index mr = detail::gemm_shape<T>::mr;
  const Eigen::internal::gemm_blocking_space<Eigen::ColMajor, T, T, Eigen::Dynamic, Eigen::Dynamic,
                                             Eigen::Dynamic, 1, false>
      blocking(block, tile, d, 1, true);  // computes sizes; allocates only on request
  const index elements = block * tile + mr * d + mr * tile + detail::gemm_shape<T>::nr * d +
                         blocking.kc() * (blocking.mc() + blocking.nc());
  std::size_t per_thread = static_cast<std::size_t>(elements) * sizeof(T) +
                           static_cast<std::size_t>(tile) *
                               (sizeof(detail::row_accumulator<double, true>) + sizeof(double));
  const auto used_threads = backward ? std::min<index>(threads, (v + block - 1) / block)
                                     : std::min<index>(threads, std::max<index>(n, 1));
  std::size_t total = per_thread * static_cast<std::size_t>(used_threads);
  if (backward && used_threads > 1) {
    total += static_cast<std::size_t>((used_threads - 1) * n * d) * sizeof(T);
  }
  return total;
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
  for (index i = 0; i < h.rows; ++i) {
    if (!detail::row_on(opt.mask, i)) continue;
    const auto u = static_cast<std::size_t>(i);
    PREFOPT_CHECK(std::isfinite(saved.logsumexp[u]), invalid_argument, kernel, ": logsumexp[", i,
                  "] = ", saved.logsumexp[u], ", expected the finite value saved by the forward");
  }
  detail::linear_backward(p, saved, grads, dh, want_dh, dw, want_dw, dbias, opt);
}

}  // namespace prefopt::kernels
