#pragma once
/// \file
/// Internals of the fused linear kernels (`kernels/linear_log_probs.hpp`): the per-thread
/// workspace, the zero-padded GEMM calls that make every logit come out of the same register
/// kernel, the planner, and the forward / backward drivers. Not part of the public API.

#include <Eigen/Core>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "prefopt/kernels/detail/plumbing.hpp"
#include "prefopt/kernels/detail/row_math.hpp"
#include "prefopt/kernels/linear_options.hpp"

namespace prefopt::kernels {

namespace detail {

template <class T>
struct gemm_shape {
  static constexpr index_t mr = Eigen::internal::gebp_traits<T, T>::mr;
  static constexpr index_t nr = Eigen::internal::gebp_traits<T, T>::nr;
};

[[nodiscard]] inline index_t round_up(index_t x, index_t m) {
  return (x + m - 1) / m * m;
}

/// Per-thread scratch of the fused linear kernels.
template <class T>
struct linear_workspace {
  index_t block = 0;
  index_t tile = 0;
  index_t depth = 0;
  std::vector<T> z;     // [tile_pad, block] logits (row r at z + r * bc)
  std::vector<T> wpad;  // [mr, D] zero-padded tail of a weight block
  std::vector<T> zpad;  // [tile_pad, mr] logits of the padded tail
  std::vector<T> hpad;  // [nr, D] zero-padded last (< nr) rows of a row tile
  Eigen::internal::gemm_blocking_space<Eigen::ColMajor, T, T, Eigen::Dynamic, Eigen::Dynamic,
                                       Eigen::Dynamic, 1, false>
      blocking;

  linear_workspace(index_t block_, index_t tile_, index_t depth_)
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
  index_t stride = 0;
  index_t n_main = 0;
  const T* tail = nullptr;  // nr rows, row stride D, or null
  [[nodiscard]] index_t cols() const noexcept {
    return n_main + (tail != nullptr ? gemm_shape<T>::nr : 0);
  }
};

template <class T>
tile_view<T> tile_rows(const cview<T>& h, index_t r0, index_t rt, linear_workspace<T>& ws) {
  constexpr index_t nr = gemm_shape<T>::nr;
  tile_view<T> t;
  t.main = h.row(r0);
  t.stride = h.stride;
  t.n_main = rt / nr * nr;
  const index_t rest = rt - t.n_main;
  if (rest > 0) {
    std::fill(ws.hpad.begin(), ws.hpad.end(), T(0));
    for (index_t r = 0; r < rest; ++r) {
      std::copy_n(h.row(r0 + t.n_main + r), h.cols, ws.hpad.data() + r * h.cols);
    }
    t.tail = ws.hpad.data();
  }
  return t;
}

/// z (col-major [rows, tile.cols()], leading dimension ldz) += lhs [rows, D] (row-major, stride
/// ls) * tile^T, as one GEMM per part of the tile (rows is a multiple of mr).
template <class T>
void gemm_tile(const T* lhs, index_t ls, index_t rows, index_t d, const tile_view<T>& tile, T* z,
               index_t ldz, linear_workspace<T>& ws) {
  using gemm =
      Eigen::internal::general_matrix_matrix_product<index_t, T, Eigen::RowMajor, false, T,
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

/// res (row-major `[rows, cols]`, stride `res_stride`) += lhs `[rows, depth]` (storage order
/// `LhsOrder`, stride `ls`) * rhs (row-major `[depth, cols]`, stride `rs`), on the calling thread
/// with a blocking computed for one thread: Eigen's product operator would split a top-level
/// product across the OpenMP threads with a blocking that depends on their number (and so would
/// its rounding).
template <int LhsOrder, class T>
void gemm_accumulate(index_t rows, index_t cols, index_t depth, const T* lhs, index_t ls,
                     const T* rhs, index_t rs, T* res, index_t res_stride) {
  using gemm =
      Eigen::internal::general_matrix_matrix_product<index_t, T, LhsOrder, false, T,
                                                     Eigen::RowMajor, false, Eigen::RowMajor, 1>;
  if (rows == 0 || cols == 0 || depth == 0) return;
  Eigen::internal::gemm_blocking_space<Eigen::RowMajor, T, T, Eigen::Dynamic, Eigen::Dynamic,
                                       Eigen::Dynamic, 1, false>
      blocking(rows, cols, depth, 1, true);
  gemm::run(rows, cols, depth, lhs, ls, rhs, rs, res, 1, res_stride, T(1), blocking, nullptr);
}

/// Logits of one (vocabulary block, row tile): z[r * bc + v] = sum_k w[(v0+v), k] h[r, k] (+ b),
/// for r < tile.cols(). Vocabulary rows go through the GEMM in multiples of mr (a tail of fewer
/// rows is zero-padded to mr), so every logit comes out of the same register kernel.
template <class T>
void block_logits(const cview<T>& w, const T* bias, index_t v0, index_t bc,
                  const tile_view<T>& tile, linear_workspace<T>& ws) {
  constexpr index_t mr = gemm_shape<T>::mr;
  const index_t d = w.cols;
  const index_t cols = tile.cols();
  T* z = ws.z.data();
  std::fill_n(z, static_cast<std::size_t>(bc * cols), T(0));
  const index_t main = bc / mr * mr;
  const index_t rem = bc - main;
  gemm_tile(w.row(v0), w.stride, main, d, tile, z, bc, ws);
  if (rem > 0 && d > 0) {
    std::fill(ws.wpad.begin(), ws.wpad.end(), T(0));
    for (index_t k = 0; k < rem; ++k) {
      std::copy_n(w.row(v0 + main + k), d, ws.wpad.data() + k * d);
    }
    T* zp = ws.zpad.data();
    std::fill_n(zp, static_cast<std::size_t>(mr * cols), T(0));
    gemm_tile(ws.wpad.data(), d, mr, d, tile, zp, mr, ws);
    for (index_t r = 0; r < cols; ++r) std::copy_n(zp + r * mr, rem, z + r * bc + main);
  }
  if (bias != nullptr) {
    const carray_map<T> b(bias + v0, bc);
    for (index_t r = 0; r < cols; ++r) array_map<T>(z + r * bc, bc) += b;
  }
}

/// Block size, row tile and thread count the fused linear kernels use for these sizes.
template <class T>
void plan_linear(index_t n, index_t v, const linear_options& opt, index_t& block, index_t& tile,
                 int& threads) {
  block = round_up(std::min(std::max<index_t>(opt.block_size, 1),
                            round_up(std::max<index_t>(v, 1), reduction_tile)),
                   reduction_tile);
  threads = 1;
#if defined(_OPENMP)
  if (opt.parallel && !omp_in_parallel()) threads = std::max(1, omp_get_max_threads());
#endif
  const index_t per_thread = (n + threads - 1) / threads;
  // Auto tile: the whole share of a thread, capped so all threads together hold at most 512
  // rows of logits blocks (memory stays the same whatever the thread count).
  const index_t cap = std::max<index_t>(64, 512 / threads);
  const index_t t =
      opt.row_tile > 0 ? opt.row_tile : std::min<index_t>(std::max<index_t>(per_thread, 1), cap);
  tile = round_up(t, gemm_shape<T>::nr);
}

/// The backward's row tile: the forward's one-thread tile whatever the thread count (the tile is
/// the length of the row sums in `dweight`, so it must not change with the threads).
template <class T>
[[nodiscard]] index_t backward_tile(index_t n, const linear_options& opt) {
  const index_t t =
      opt.row_tile > 0 ? opt.row_tile : std::min<index_t>(std::max<index_t>(n, 1), 512);
  return round_up(t, gemm_shape<T>::nr);
}

template <class T>
struct linear_problem {
  const char* kernel = "";
  cview<T> h;
  cview<T> w;
  const T* bias = nullptr;
  std::span<const token_id> targets;
  index_t block = 0;
  index_t tile = 0;
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
  const index_t n = h.rows;
  const index_t v = w.rows;
  PREFOPT_CHECK(h.cols == w.cols, shape_error, kernel, ": hidden is [", n, ", ", h.cols,
                "] and weight is [", v, ", ", w.cols, "], expected the same hidden size D");
  PREFOPT_CHECK(v > 0 || n == 0, shape_error, kernel,
                ": weight has 0 rows, expected a vocabulary of at least 1 entry");
  PREFOPT_CHECK(bias.empty() || static_cast<index_t>(bias.size()) == v, shape_error, kernel,
                ": bias has ", bias.size(), " entries, expected 0 or V = ", v);
  PREFOPT_CHECK(opt.block_size > 0 && opt.row_tile >= 0, invalid_argument, kernel,
                ": block_size = ", opt.block_size, ", row_tile = ", opt.row_tile,
                ", expected block_size > 0 and row_tile >= 0");
  check_optional_rows(kernel, "mask", opt.mask.size(), n);
  if (need_targets) check_targets(kernel, targets, opt.mask, n, v);
  if (!bias.empty()) {
    for (index_t j = 0; j < v; ++j) {
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
  const index_t n = p.h.rows;
  const index_t v = p.w.rows;
  const index_t d = p.h.cols;
  const bool want_entropy = !out.entropy.empty();
  index_t first_bad = n;
  const int threads = static_cast<int>(std::min<index_t>(p.threads, std::max<index_t>(n, 1)));
  // Workspaces are allocated before the parallel region (an allocation failure throws here).
  std::vector<std::unique_ptr<linear_workspace<T>>> spaces;
  for (int t = 0; t < threads; ++t) {
    spaces.push_back(std::make_unique<linear_workspace<T>>(p.block, p.tile, d));
  }
  auto run_thread = [&]<class Acc, bool Entropy>(int tid) -> index_t {
    linear_workspace<T>& ws = *spaces[static_cast<std::size_t>(tid)];
    const index_t a = n * tid / threads;
    const index_t b = n * (tid + 1) / threads;
    const tile_kernels<Acc>& k = tiles_for<Acc>(active_isa(), opt.exp);
    std::vector<row_accumulator<Acc, Entropy>> acc(static_cast<std::size_t>(p.tile),
                                                   row_accumulator<Acc, Entropy>(k));
    std::vector<double> x_t(static_cast<std::size_t>(p.tile));
    alignas(64) Acc scratch[widen_scratch<Acc, T>];  // a widened tile (double accumulation)
    index_t bad = n;
    for (index_t r0 = a; r0 < b; r0 += p.tile) {
      const index_t rt = std::min(p.tile, b - r0);
      const tile_view<T> tile = tile_rows(p.h, r0, rt, ws);
      std::fill(acc.begin(), acc.end(), row_accumulator<Acc, Entropy>(k));
      for (index_t v0 = 0; v0 < v; v0 += p.block) {
        const index_t bc = std::min(p.block, v - v0);
        block_logits(p.w, p.bias, v0, bc, tile, ws);
        for (index_t r = 0; r < rt; ++r) {
          const index_t i = r0 + r;
          if (!row_on(opt.mask, i)) continue;
          const T* zr = ws.z.data() + r * bc;
          auto& ac = acc[static_cast<std::size_t>(r)];
          for (index_t j = 0; j < bc; j += reduction_tile) {
            ac.add_tile(zr + j, std::min(reduction_tile, bc - j), scratch);
          }
          if (!out.log_probs.empty()) {
            const index_t t = p.targets[static_cast<std::size_t>(i)];
            if (t >= v0 && t < v0 + bc)
              x_t[static_cast<std::size_t>(r)] = static_cast<double>(zr[t - v0]);
          }
        }
      }
      for (index_t r = 0; r < rt; ++r) {
        const index_t i = r0 + r;
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
  auto dispatch = [&](int tid) -> index_t {
    return with_accumulation<T>(opt.accumulate, [&]<class Acc>() -> index_t {
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
  const index_t n = p.h.rows;
  const index_t v = p.w.rows;
  const index_t d = p.h.cols;
  const index_t n_blocks = (v + p.block - 1) / p.block;
  const index_t tile_rows_n = backward_tile<T>(n, opt);
  const int threads =
      static_cast<int>(std::min<index_t>(p.threads, std::max<index_t>(n_blocks, 1)));
  const bool acc_mode = opt.mode == write_mode::accumulate;
  // Outputs under `overwrite` start from zero (blocks of dweight / dbias are then accumulated).
  if (!acc_mode) {
    if (want_dw) {
      for (index_t j = 0; j < v; ++j) array_map<T>(dw.row(j), d).setZero();
    }
    std::fill(dbias.begin(), dbias.end(), T(0));
    if (want_dh) {
      for (index_t i = 0; i < n; ++i) array_map<T>(dh.row(i), d).setZero();
    }
  }
  // Per-thread workspaces. One thread: one sweep over (vocabulary block, row tile) does
  // dweight, dbias and dhidden. Several threads: the vocabulary blocks are split for dweight and
  // dbias (disjoint outputs), then the row tiles are split for dhidden, each tile summing the
  // blocks in the one-thread order; so every output is bitwise independent of the thread count, at
  // the cost of computing the logits and dz twice when more than one thread runs.
  std::vector<std::unique_ptr<linear_workspace<T>>> spaces;
  for (int t = 0; t < threads; ++t) {
    spaces.push_back(std::make_unique<linear_workspace<T>>(p.block, tile_rows_n, d));
  }
  const bool with_h = !grads.entropy.empty();
  const index_t n_tiles = (n + tile_rows_n - 1) / tile_rows_n;
  // dz of one (block, row tile), then the requested products.
  auto block_tile = [&]<class Acc, bool Entropy>(const tile_kernels<Acc>& k,
                                                 linear_workspace<T>& ws, index_t blk, index_t r0,
                                                 bool do_dw, bool do_dh) {
    const index_t v0 = blk * p.block;
    const index_t bc = std::min(p.block, v - v0);
    const index_t rt = std::min(tile_rows_n, n - r0);
    const tile_view<T> tile = tile_rows(p.h, r0, rt, ws);
    block_logits(p.w, p.bias, v0, bc, tile, ws);
    T* z = ws.z.data();
    for (index_t r = 0; r < rt; ++r) {
      const index_t i = r0 + r;
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
        const index_t t = p.targets[u];
        g.target = (t >= v0 && t < v0 + bc) ? t - v0 : index_t{-1};
      }
      if constexpr (Entropy) {
        g.g_h = static_cast<double>(grads.entropy[u]);
        g.entropy = static_cast<double>(saved.entropy[u]);
      }
      backward_row<Acc, Entropy, false, T>(k, zr, nullptr, zr, nullptr, bc, g,
                                           write_mode::overwrite);
    }
    // dweight[v0 .. v0 + bc) += dz^T h[r0 .. r0 + rt); dhidden[r0 .. r0 + rt) += dz w[v0 ..).
    if (do_dw) {
      if (want_dw) {
        gemm_accumulate<Eigen::ColMajor>(bc, d, rt, z, bc, p.h.row(r0), p.h.stride, dw.row(v0),
                                         dw.stride);
      }
      if (!dbias.empty()) {
        const Eigen::Map<const row_matrix_t<T>> dz(z, rt, bc);
        array_map<T>(dbias.data() + v0, bc) += dz.colwise().sum().transpose().array();
      }
    }
    if (do_dh && want_dh) {
      gemm_accumulate<Eigen::RowMajor>(rt, d, bc, z, bc, p.w.row(v0), p.w.stride,
                                       dh.data + r0 * dh.stride, dh.stride);
    }
  };
  // Pass 0: everything in one sweep (one thread); pass 1: blocks for dweight / dbias; pass 2: row
  // tiles for dhidden.
  auto run_thread = [&]<class Acc, bool Entropy>(int tid, int pass) {
    linear_workspace<T>& ws = *spaces[static_cast<std::size_t>(tid)];
    const tile_kernels<Acc>& k = tiles_for<Acc>(active_isa(), opt.exp);
    auto one = [&](index_t blk, index_t r0, bool do_dw, bool do_dh) {
      block_tile.template operator()<Acc, Entropy>(k, ws, blk, r0, do_dw, do_dh);
    };
    if (pass == 2) {
      for (index_t tile = tid; tile < n_tiles; tile += threads) {
        for (index_t blk = 0; blk < n_blocks; ++blk) one(blk, tile * tile_rows_n, false, true);
      }
      return;
    }
    for (index_t blk = tid; blk < n_blocks; blk += threads) {
      for (index_t r0 = 0; r0 < n; r0 += tile_rows_n) one(blk, r0, true, pass == 0);
    }
  };
  auto dispatch = [&](int tid, int pass) {
    with_accumulation<T>(opt.accumulate, [&]<class Acc>() {
      if (with_h) {
        run_thread.template operator()<Acc, true>(tid, pass);
      } else {
        run_thread.template operator()<Acc, false>(tid, pass);
      }
    });
  };
#if defined(_OPENMP)
  if (threads > 1) {
    if (want_dw || !dbias.empty()) {
#pragma omp parallel for schedule(static, 1) num_threads(threads)
      for (int tid = 0; tid < threads; ++tid) dispatch(tid, 1);
    }
    if (want_dh) {
#pragma omp parallel for schedule(static, 1) num_threads(threads)
      for (int tid = 0; tid < threads; ++tid) dispatch(tid, 2);
    }
  } else {
    dispatch(0, 0);
  }
#else
  dispatch(0, 0);
#endif
}

}  // namespace detail

}  // namespace prefopt::kernels
