#pragma once
/// \file
/// Internals: the row arithmetic of the logits kernels. A row is reduced in fixed tiles of
/// `reduction_tile` elements anchored at the row start: for each tile, its maximum (one vector
/// sweep from L1), then, when it raises the running maximum m, a rescale of the running sums, then
/// one sweep of exp(z - m) and the cross terms (`row_tiles.hpp`, compiled once per ISA). The
/// tile's float lanes are added to per-lane double sums; the lanes are added (in lane order) only
/// at the end of the row. So the only horizontal work is one per tile and one per row, and the
/// float sums of any lane cover at most reduction_tile / (2 W) + 1 terms (W = packet width).
/// Not part of the public API.

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "prefopt/kernels/detail/plumbing.hpp"
#include "prefopt/kernels/detail/simd.hpp"
#include "prefopt/kernels/dispatch.hpp"
#include "prefopt/kernels/options.hpp"

namespace prefopt::kernels::detail {

/// The tile functions for arithmetic type Acc on path `which`: float has one table per ISA and
/// exp accuracy; double arithmetic always runs on the baseline path with the full-accuracy exp.
template <class Acc>
[[nodiscard]] const tile_kernels<Acc>& tiles_for(isa which, exp_accuracy accuracy) noexcept {
  if constexpr (std::is_same_v<Acc, float>) {
    const bool fast = accuracy == exp_accuracy::fast;
#if defined(PREFOPT_KERNELS_X86_DISPATCH)
    if (which == isa::avx512) {
      return fast ? isa_avx512::tile_table<isa_avx512::simd, true>
                  : isa_avx512::tile_table<isa_avx512::simd, false>;
    }
    if (which == isa::avx2) {
      return fast ? isa_avx2::tile_table<isa_avx2::simd, true>
                  : isa_avx2::tile_table<isa_avx2::simd, false>;
    }
#else
    (void)which;
#endif
    return fast ? isa_base::tile_table<isa_base::simd<float>, true>
                : isa_base::tile_table<isa_base::simd<float>, false>;
  } else {
    (void)which;
    (void)accuracy;
    return isa_base::tile_table<isa_base::simd<double>, false>;
  }
}

/// The tables a kernel call uses: the active path (read once per call) and the options' accuracy.
template <class Acc>
[[nodiscard]] const tile_kernels<Acc>& tiles_for(const options& opt) noexcept {
  return tiles_for<Acc>(active_isa(), opt.exp);
}

/// y[0, n) = x[0, n) widened exactly to Acc: the half formats through the ISA's packet
/// conversion (`k.widen_bf16` / `k.widen_f16`), float to double element by element.
template <class Acc, class T>
void widen(const tile_kernels<Acc>& k, const T* x, index_t n, Acc* y) noexcept {
  if constexpr (std::is_same_v<T, Eigen::bfloat16>) {
    k.widen_bf16(x, y, n);
  } else if constexpr (std::is_same_v<T, Eigen::half>) {
    k.widen_f16(x, y, n);
  } else {
    for (index_t j = 0; j < n; ++j) y[j] = static_cast<Acc>(x[j]);
  }
}

/// The tile `x[0, n)` in the accumulation type: `x` itself, or widened (exactly) into `buf`, which
/// then needs `n` entries.
template <class Acc, class T>
[[nodiscard]] const Acc* in_acc(const tile_kernels<Acc>& k, const T* x, [[maybe_unused]] index_t n,
                                [[maybe_unused]] Acc* buf) noexcept {
  if constexpr (std::is_same_v<Acc, T>) {
    return x;
  } else {
    widen(k, x, n, buf);
    return buf;
  }
}

/// Scratch for one widened tile (half-format logits, or double accumulation of float logits); one
/// element otherwise.
template <class Acc, class T>
inline constexpr index_t widen_scratch = std::is_same_v<Acc, T> ? 1 : reduction_tile;

[[nodiscard]] inline double lane_total(const double* lanes) noexcept {
  double t = 0;
  for (index_t l = 0; l < lane_sums::lanes; ++l) t += lanes[l];
  return t;
}

[[nodiscard]] inline bool any_nan(const auto* x, index_t n) noexcept {
  for (index_t j = 0; j < n; ++j) {
    if (std::isnan(x[j])) return true;
  }
  return false;
}

/// Online log-sum-exp (and, if `Entropy`, entropy) state of one row, fed tile by tile.
///
/// For each tile (fixed grid of `reduction_tile` from the row start): tm = max(tile); if tm > m
/// every lane is rescaled, s <- s e^{m - tm}, u <- e^{m - tm}(u - (tm - m) s); then
/// s += exp(z - m), u += exp(z - m) (z - m) lane by lane. At the end S = sum of the lanes,
/// lse = m + log S and H = log S - U / S. `reduce_row` and the fused linear kernel feed the same
/// tiles in the same order, so they produce bitwise identical results from identical logits.
/// `add_tile`'s `scratch` holds a widened tile (`reduction_tile` entries) when Acc is wider than
/// the logits; else unused.
template <class Acc, bool Entropy>
struct row_accumulator {
  const tile_kernels<Acc>* k = nullptr;
  double m = neg_inf;
  bool nan_before_finite = false;  // a NaN seen while every logit so far was -inf
  double s[lane_sums::lanes] = {};
  double u[lane_sums::lanes] = {};

  explicit row_accumulator(const tile_kernels<Acc>& kernels) noexcept : k(&kernels) {}

  template <class T>
  void add_tile(const T* x, index_t n, [[maybe_unused]] Acc* scratch) noexcept {
    const Acc* xa = in_acc<Acc>(*k, x, n, scratch);
    const auto tm = static_cast<double>(k->max(xa, n));
    if (tm > m) {
      if (m > neg_inf) {
        const double delta = tm - m;
        const double r = std::exp(-delta);
        for (index_t l = 0; l < lane_sums::lanes; ++l) {
          if constexpr (Entropy) u[l] = r * (u[l] - delta * s[l]);
          s[l] *= r;
        }
      }
      m = tm;
    }
    if (!(m > neg_inf)) {
      nan_before_finite = nan_before_finite || any_nan(xa, n);
      return;
    }
    k->sums[Entropy](xa, n, static_cast<Acc>(m), s, u);
  }

  [[nodiscard]] row_stats finish() const noexcept {
    row_stats r;
    r.m = m;
    const double st = lane_total(s);
    if (nan_before_finite || std::isnan(st) || std::isnan(m) || m == pos_inf) {
      r.status = row_status::non_finite;
    } else if (m == neg_inf) {
      r.status = row_status::all_neg_inf;
    } else {
      r.log_s = std::log(st);
      if constexpr (Entropy) r.entropy = std::max(0.0, r.log_s - lane_total(u) / st);
    }
    return r;
  }
};

/// One-pass reduction of one row: log-sum-exp and, if `Entropy`, the entropy.
template <class Acc, bool Entropy, class T>
[[nodiscard]] row_stats reduce_row(const tile_kernels<Acc>& k, const T* x,
                                   index_t n_cols) noexcept {
  row_accumulator<Acc, Entropy> acc(k);
  alignas(64) Acc w[widen_scratch<Acc, T>];
  for (index_t j0 = 0; j0 < n_cols; j0 += reduction_tile) {
    acc.add_tile(x + j0, std::min(reduction_tile, n_cols - j0), w);
  }
  return acc.finish();
}

/// One-pass reduction of two rows p (logits zp) and q (logits zq) of the same length: both
/// log-sum-exps, KL(p||q) = A/s_p - log s_p + log s_q with A = sum e^{zp-mp}((zp-mp) - (zq-mq)),
/// KL(q||p) symmetrically, and optionally the entropy of p. A KL is +inf when the first
/// distribution puts mass where the second has a -inf logit (detected exactly, from the extreme
/// floored differences). `s_p` and the entropy terms are bitwise those of `reduce_row`.
template <class Acc, bool Entropy, class T>
[[nodiscard]] row_stats reduce_row_pair(const tile_kernels<Acc>& k, const T* zp, const T* zq,
                                        index_t n_cols) noexcept {
  double mp = neg_inf;
  double mq = neg_inf;
  bool nan_p = false;
  bool nan_q = false;
  bool inf_pq = false;
  bool inf_qp = false;
  lane_sums acc;
  alignas(64) Acc wp[widen_scratch<Acc, T>];
  alignas(64) Acc wq[widen_scratch<Acc, T>];
  constexpr double half_max = static_cast<double>(std::numeric_limits<Acc>::max()) / 2;
  for (index_t j0 = 0; j0 < n_cols; j0 += reduction_tile) {
    const index_t n = std::min(reduction_tile, n_cols - j0);
    const Acc* xp = in_acc<Acc>(k, zp + j0, n, wp);
    const Acc* xq = in_acc<Acc>(k, zq + j0, n, wq);
    const auto tmp = static_cast<double>(k.max(xp, n));
    const auto tmq = static_cast<double>(k.max(xq, n));
    const bool p_was = mp > neg_inf;  // p (q) has mass in the running sums
    const bool q_was = mq > neg_inf;
    if (tmp > mp) {
      if (p_was) {
        const double delta = tmp - mp;
        const double r = std::exp(-delta);
        for (index_t l = 0; l < lane_sums::lanes; ++l) {
          if constexpr (Entropy) acc.u[l] = r * (acc.u[l] - delta * acc.s[l]);
          acc.a[l] = r * (acc.a[l] - delta * acc.s[l]);
          acc.s[l] *= r;
        }
        if (q_was) {
          for (index_t l = 0; l < lane_sums::lanes; ++l) acc.b[l] += delta * acc.sq[l];
        }
      } else if (q_was) {
        inf_qp = true;  // q has mass where every p logit so far was -inf
      }
      mp = tmp;
    }
    if (tmq > mq) {
      if (q_was) {
        const double delta = tmq - mq;
        const double r = std::exp(-delta);
        for (index_t l = 0; l < lane_sums::lanes; ++l) {
          acc.b[l] = r * (acc.b[l] - delta * acc.sq[l]);
          acc.sq[l] *= r;
        }
        if (p_was) {
          for (index_t l = 0; l < lane_sums::lanes; ++l) acc.a[l] += delta * acc.s[l];
        }
      } else if (p_was) {
        inf_pq = true;
      }
      mq = tmq;
    }
    const bool p_live = mp > neg_inf;
    const bool q_live = mq > neg_inf;
    if (!p_live) nan_p = nan_p || any_nan(xp, n);
    if (!q_live) nan_q = nan_q || any_nan(xq, n);
    if (p_live && q_live) {
      k.pair[Entropy](xp, xq, n, static_cast<Acc>(mp), static_cast<Acc>(mq), acc);
    } else if (p_live) {  // every q logit so far is -inf: no cross terms yet
      k.sums[Entropy](xp, n, static_cast<Acc>(mp), acc.s, acc.u);
      if (tmp > neg_inf) inf_pq = true;
    } else if (q_live) {
      k.sums[0](xq, n, static_cast<Acc>(mq), acc.sq, acc.u);
      if (tmq > neg_inf) inf_qp = true;
    }
  }
  // d = max(zp - mp, lowest) - max(zq - mq, lowest): near +lowest' only where q is -inf and p is
  // not (p has mass q lacks), near -lowest' in the opposite case.
  inf_pq = inf_pq || acc.dmax > half_max;
  inf_qp = inf_qp || acc.dmin < -half_max;
  row_stats r;
  r.m = mp;
  r.m_q = mq;
  const double sp = lane_total(acc.s);
  const double sq = lane_total(acc.sq);
  auto status = [](bool nan_seen, double m, double s) {
    if (nan_seen || std::isnan(s) || std::isnan(m) || m == pos_inf) return row_status::non_finite;
    if (m == neg_inf) return row_status::all_neg_inf;
    return row_status::ok;
  };
  r.status = status(nan_p, mp, sp);
  r.status_q = status(nan_q, mq, sq);
  if (r.status == row_status::ok && r.status_q == row_status::ok) {
    r.log_s = std::log(sp);
    r.log_s_q = std::log(sq);
    if constexpr (Entropy) r.entropy = std::max(0.0, r.log_s - lane_total(acc.u) / sp);
    r.kl = inf_pq ? pos_inf : std::max(0.0, lane_total(acc.a) / sp - r.log_s + r.log_s_q);
    r.kl_reverse = inf_qp ? pos_inf : std::max(0.0, lane_total(acc.b) / sq - r.log_s_q + r.log_s);
  }
  return r;
}

/// Upstream gradients and saved forward values for one row of the fused backward.
struct row_grad_in {
  double lse = 0;       ///< forward log-sum-exp of p
  double g_lp = 0;      ///< dL / d log p(target)
  index_t target = -1;  ///< target column (g_lp is ignored when < 0)
  double g_h = 0;       ///< dL / d H(p)
  double entropy = 0;   ///< forward H(p)
  double g_kl = 0;      ///< dL / d KL(p || q)
  double kl = 0;        ///< forward KL(p || q)
  double lse_q = 0;     ///< forward log-sum-exp of q
};

/// out[0, n) = y[0, n) (or out + y), rounded once to the half format T through the ISA's packet
/// conversion, plus `extra` at j = `at` (if in range) added in float after the rest, in the order
/// the float kernels use (they add the target term last).
template <class Acc, class T>
void round_into(const tile_kernels<Acc>& k, const Acc* y, index_t n, T* out, bool add, index_t at,
                double extra) noexcept {
  const bool has_at = at >= 0 && at < n;
  const T before = has_at ? out[at] : T{};
  if constexpr (std::is_same_v<T, Eigen::bfloat16>) {
    k.narrow_bf16(y, n, out, add);
  } else {
    k.narrow_f16(y, n, out, add);
  }
  if (has_at) {
    auto v = static_cast<float>(y[at]);
    if (add) v = static_cast<float>(before) + v;
    out[at] = static_cast<T>(v + static_cast<float>(extra));
  }
}

/// One read + one write sweep over a row: dzp_j = p_j * (c0 + c1 lp_j' - g_kl lq_j') with
/// lp' = max(zp - lse, floor), c1 = g_kl - g_h, c0 = -g_lp - g_h H - g_kl KL, plus g_lp at the
/// target; and, when `Kl`, dzq_j = g_kl (q_j - p_j). Element-wise, so chunking never changes a
/// value. With Acc wider than T (double accumulation of float logits, or half-format logits) the
/// row goes through the Acc arithmetic in chunks, each rounded once to T.
template <class Acc, bool Entropy, bool Kl, class T>
void backward_row(const tile_kernels<Acc>& k, const T* zp, const T* zq, T* dzp, T* dzq,
                  index_t n_cols, const row_grad_in& g, write_mode mode) noexcept {
  const double c0d = -g.g_lp - (Entropy ? g.g_h * g.entropy : 0.0) - (Kl ? g.g_kl * g.kl : 0.0);
  backward_tile_args<Acc> a;
  a.lse = static_cast<Acc>(g.lse);
  a.lse_q = static_cast<Acc>(g.lse_q);
  a.c0 = static_cast<Acc>(c0d);
  a.c1 = static_cast<Acc>((Kl ? g.g_kl : 0.0) - (Entropy ? g.g_h : 0.0));
  a.g_kl = static_cast<Acc>(g.g_kl);
  const auto fn = k.backward[Entropy][Kl];
  if constexpr (std::is_same_v<Acc, T>) {
    a.zp = zp;
    a.zq = zq;
    a.dzp = dzp;
    a.dzq = Kl ? dzq : nullptr;
    a.n = n_cols;
    a.accumulate = mode == write_mode::accumulate;
    fn(a);
  } else {
    constexpr index_t chunk = 256;
    alignas(64) Acc bp[chunk];
    alignas(64) Acc bq[chunk];
    alignas(64) Acc op[chunk];
    alignas(64) Acc oq[chunk];
    for (index_t j0 = 0; j0 < n_cols; j0 += chunk) {
      const index_t n = std::min(chunk, n_cols - j0);
      widen(k, zp + j0, n, bp);
      if constexpr (Kl) widen(k, zq + j0, n, bq);
      a.zp = bp;
      a.zq = bq;
      a.dzp = op;
      a.dzq = (Kl && dzq != nullptr) ? oq : nullptr;
      a.n = n;
      a.accumulate = false;
      fn(a);
      const bool add = mode == write_mode::accumulate;
      if constexpr (is_half_format_v<T>) {
        // Half formats: the previous value and the target term are added in float, then rounded
        // once to T (the float kernels' gradient, rounded).
        const index_t at = g.target >= 0 ? g.target - j0 : -1;
        round_into(k, op, n, dzp + j0, add, at, g.g_lp);
        if (Kl && dzq != nullptr) round_into(k, oq, n, dzq + j0, add, -1, 0.0);
      } else {
        for (index_t j = 0; j < n; ++j) {
          dzp[j0 + j] = add ? dzp[j0 + j] + static_cast<T>(op[j]) : static_cast<T>(op[j]);
        }
        if (Kl && dzq != nullptr) {
          for (index_t j = 0; j < n; ++j) {
            dzq[j0 + j] = add ? dzq[j0 + j] + static_cast<T>(oq[j]) : static_cast<T>(oq[j]);
          }
        }
      }
    }
  }
  if constexpr (!is_half_format_v<T>) {
    if (g.target >= 0) dzp[g.target] += static_cast<T>(g.g_lp);
  }
}

}  // namespace prefopt::kernels::detail
