#pragma once
/// \file
/// Internals of the logits kernels: views over caller memory, the one-pass row reductions (online
/// log-sum-exp with entropy and KL cross terms), the one-sweep backward, the row-parallel driver
/// and the error reporting. Not part of the public API.

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <type_traits>

#include "prefopt/core/assert.hpp"
#include "prefopt/core/types.hpp"
#include "prefopt/kernels/options.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace prefopt::kernels::detail {

inline constexpr double neg_inf = -std::numeric_limits<double>::infinity();
inline constexpr double pos_inf = std::numeric_limits<double>::infinity();

/// Floor applied to shifted log-probabilities inside cross terms (entropy, KL) so that an entry
/// with zero weight (a -inf logit) contributes `0 * lowest = 0` instead of `0 * -inf = NaN`.
/// Finite values are never changed by it.
template <class Acc>
inline constexpr Acc log_floor = std::numeric_limits<Acc>::lowest();

/// Floor for the backward's cross terms, where the floored value is multiplied by an upstream
/// coefficient before the zero weight: small enough to leave any meaningful log-probability alone,
/// large enough that `coefficient * floor` stays finite.
template <class Acc>
inline constexpr Acc grad_log_floor = Acc(-1e30);

/// exp(x) flushed to exactly 0 below log(smallest normal): the true value is below the smallest
/// normal number there, so the absolute error is under FLT_MIN / DBL_MIN, `-inf` logits get an
/// exact 0 weight (Eigen's packet exp returns a denormal for -inf) and no denormals are produced.
template <class Acc>
struct exp_flush_op {
  static constexpr Acc threshold =
      std::is_same_v<Acc, float> ? Acc(-87.33654f) : Acc(-708.3964185322641);
  Acc operator()(const Acc& x) const { return x < threshold ? Acc(0) : std::exp(x); }
  template <class Packet>
  Packet packetOp(const Packet& x) const {
    using namespace Eigen::internal;  // NOLINT: Eigen's packet primitives
    const Packet flush = pcmp_lt(x, pset1<Packet>(threshold));
    if constexpr (std::is_same_v<Acc, float>) {
      // Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, a degree-5 polynomial with constant
      // term 1 fitted for minimax relative error on that interval (1.3 ulp before rounding; under
      // 3 ulp in all, tested in exp_test.cpp), and 2^n applied by adding n to the exponent bits.
      // Two fused multiply-adds fewer than the Cephes degree-7 polynomial of Eigen's pexp: the
      // forward kernels are bound by this function's throughput.
      // Valid for x in [threshold, 88]; below the threshold the result is flushed to 0. NaN
      // propagates (pmin keeps a NaN first argument, like std::min).
      using packet_i = typename unpacket_traits<Packet>::integer_packet;
      const Packet xc = pmin(x, pset1<Packet>(88.0f));
      const Packet n = print(pmul(xc, pset1<Packet>(1.44269504088896341f)));
      Packet r = pmadd(n, pset1<Packet>(-0.693359375f), xc);
      r = pmadd(n, pset1<Packet>(2.12194440e-4f), r);
      Packet y = pset1<Packet>(0.008325801230967045f);
      y = pmadd(y, r, pset1<Packet>(0.041908301413059235f));
      y = pmadd(y, r, pset1<Packet>(0.16666938364505768f));
      y = pmadd(y, r, pset1<Packet>(0.49999040365219116f));
      y = pmadd(y, r, pset1<Packet>(1.0f));
      y = pmadd(y, r, pset1<Packet>(1.0f));
      const packet_i e = plogical_shift_left<23>(pcast<Packet, packet_i>(n));
      const Packet res = preinterpret<Packet>(padd(preinterpret<packet_i>(y), e));
      return pselect(flush, pzero(x), res);
    } else {
      return pselect(flush, pzero(x), pexp(x));
    }
  }
};

}  // namespace prefopt::kernels::detail

namespace Eigen::internal {
template <class Acc>
struct functor_traits<prefopt::kernels::detail::exp_flush_op<Acc>> {
  enum { Cost = 20, PacketAccess = packet_traits<Acc>::HasExp };
};
}  // namespace Eigen::internal

namespace prefopt::kernels::detail {

/// Element-wise flushed exp of an array expression.
template <class Expr>
[[nodiscard]] auto exp0(const Expr& e) {
  return e.unaryExpr(exp_flush_op<typename Expr::Scalar>());
}

template <class T>
using carray_map = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;
template <class T>
using array_map = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;

/// Read-only view of a row-major matrix: row i starts at data + i * stride.
template <class T>
struct cview {
  const T* data = nullptr;
  index rows = 0;
  index cols = 0;
  index stride = 0;
  [[nodiscard]] const T* row(index i) const noexcept { return data + i * stride; }
};

/// Writable view of a row-major matrix.
template <class T>
struct mview {
  T* data = nullptr;
  index rows = 0;
  index cols = 0;
  index stride = 0;
  [[nodiscard]] T* row(index i) const noexcept { return data + i * stride; }
};

template <class Derived>
constexpr void check_matrix_type() {
  using S = typename Derived::Scalar;
  static_assert(std::is_same_v<S, float> || std::is_same_v<S, double>,
                "prefopt kernels: matrices must hold float or double");
  static_assert(bool(Derived::Flags & Eigen::DirectAccessBit),
                "prefopt kernels: pass a Matrix, Map, Ref or block of rows over memory, not an "
                "expression (evaluate it first)");
  static_assert(bool(Derived::IsRowMajor),
                "prefopt kernels: matrices must be row-major [N, V] (prefopt::row_matrix_t, "
                "row_matrix_map)");
  static_assert(int(Derived::InnerStrideAtCompileTime) == 1,
                "prefopt kernels: each row must be contiguous (inner stride 1)");
}

template <class Derived>
[[nodiscard]] cview<typename Derived::Scalar> view_of(const Eigen::DenseBase<Derived>& m) {
  check_matrix_type<Derived>();
  const auto& d = m.derived();
  return {d.data(), d.rows(), d.cols(), d.rows() <= 1 ? d.cols() : d.outerStride()};
}

template <class Derived>
[[nodiscard]] mview<typename Derived::Scalar> mutable_view_of(const Eigen::DenseBase<Derived>& m) {
  check_matrix_type<Derived>();
  auto& d = const_cast<Derived&>(m.derived());  // NOLINT: Eigen's documented out-parameter idiom
  return {d.data(), d.rows(), d.cols(), d.rows() <= 1 ? d.cols() : d.outerStride()};
}

/// `t - m` in the accumulation type (widening float tiles when Acc = double).
template <class Acc, class T>
[[nodiscard]] auto shifted(const carray_map<T>& t, Acc m) {
  if constexpr (std::is_same_v<Acc, T>) {
    return t - m;
  } else {
    return t.template cast<Acc>() - m;
  }
}

/// Outcome of a row reduction.
enum class row_status : std::uint8_t { ok, non_finite, all_neg_inf, infinite_kl };

/// One-pass statistics of one row (and, for two-matrix reductions, of the second row).
struct row_stats {
  double m = neg_inf;    ///< row maximum (a logit value, exact)
  double log_s = 0;      ///< log sum_j exp(z_j - m); lse = m + log_s
  double entropy = 0;    ///< -sum p log p (when requested)
  double m_q = neg_inf;  ///< second row
  double log_s_q = 0;
  double kl = 0;          ///< KL(p || q) (two-matrix)
  double kl_reverse = 0;  ///< KL(q || p) (two-matrix)
  row_status status = row_status::ok;
  row_status status_q = row_status::ok;
  [[nodiscard]] double lse() const noexcept { return m + log_s; }
  [[nodiscard]] double lse_q() const noexcept { return m_q + log_s_q; }
};

/// Running state of an online log-sum-exp. `raise(tm)` moves the reference maximum up to `tm`,
/// rescaling the sum and returning the shift so cross terms can be rescaled too.
struct online_lse {
  double m = neg_inf;
  double s = 0;
  bool nan_before_finite = false;  // a NaN seen while every logit so far was -inf

  [[nodiscard]] row_status status() const noexcept {
    if (nan_before_finite || std::isnan(s) || std::isnan(m) || m == pos_inf) {
      return row_status::non_finite;
    }
    if (m == neg_inf) return row_status::all_neg_inf;
    return row_status::ok;
  }
};

/// Elements per chunk of a tile's arithmetic (1008 = 7 x 144; a multiple of every packet width).
/// Before each chunk, the memory `prefetch_distance` tiles ahead is requested, one chunk's worth,
/// so that the next tiles stream in while the exponentials of this one are computed (the
/// hardware prefetcher alone leaves the loads and the arithmetic mostly serialised). Chunking
/// fixes the order of the in-tile sums by position only, so results stay bitwise invariant.
inline constexpr index tile_chunk = 144;
/// How many tiles ahead of the one being reduced the software prefetch reaches.
inline constexpr index prefetch_distance = 2;
static_assert(reduction_tile % tile_chunk == 0, "chunks tile the reduction tile exactly");
static_assert(tile_chunk % 16 == 0 && (tile_chunk * sizeof(float)) % 64 == 0,
              "chunks keep the 64-byte alignment of the tile scratch");

/// Hints the cache to load the `n` elements at `p + offset`. The address may lie past the end of
/// the caller's data (prefetches never fault), so it is formed as an integer, not a pointer.
/// `Write`: the lines are about to be written (prefetch for ownership).
template <class T, bool Write = false>
inline void prefetch_ahead(const T* p, index offset, index n) noexcept {
#if defined(__GNUC__)
  const auto a =
      reinterpret_cast<std::uintptr_t>(p) + static_cast<std::uintptr_t>(offset) * sizeof(T);
  const auto bytes = static_cast<std::uintptr_t>(n) * sizeof(T);
  for (std::uintptr_t k = 0; k < bytes; k += 64) {
    __builtin_prefetch(reinterpret_cast<const void*>(a + k), Write ? 1 : 0, 3);
  }
#else
  (void)p;
  (void)offset;
  (void)n;
#endif
}

/// In-chunk sums of one row (or, when `Pair`, of a row pair whose running maxima are both
/// finite) in one sweep over the chunk: with xp = zp - mp, wp = exp0(xp), dp = max(xp, floor),
/// the same for q and d = dp - dq:
///   sp = sum wp, u = sum wp dp (when `Entropy`), and for pairs sq = sum wq, a = sum wp d,
///   b = -sum wq d.
/// Full packets from the chunk start, then scalars: the order depends on positions only. The
/// single-row and pair reductions share this code, so their `sp` and `u` are bitwise equal.
template <class T>
struct chunk_sums {
  T sp = T(0), u = T(0), sq = T(0), a = T(0), b = T(0);
};

template <bool Entropy, bool Pair, class T>
[[nodiscard]] chunk_sums<T> reduce_chunk(const T* zp, [[maybe_unused]] const T* zq, index n, T mp,
                                         [[maybe_unused]] T mq) noexcept {
  using namespace Eigen::internal;  // NOLINT: Eigen's packet primitives
  using Packet = typename packet_traits<T>::type;
  constexpr index width = packet_traits<T>::size;
  const exp_flush_op<T> ex;
  constexpr T floor = log_floor<T>;
  const Packet vmp = pset1<Packet>(mp);
  const Packet vfloor = pset1<Packet>(floor);
  Packet sp = pset1<Packet>(T(0));
  Packet u = sp;
  [[maybe_unused]] Packet sq = sp;
  [[maybe_unused]] Packet a = sp;
  [[maybe_unused]] Packet b = sp;
  [[maybe_unused]] const Packet vmq = pset1<Packet>(mq);
  // Two interleaved accumulators for sp and u (packets 2k and 2k+1) keep the single-row sweep
  // from waiting on the adds; a last odd packet goes to the first.
  Packet sp1 = sp;
  Packet u1 = sp;
  const auto step = [&](index at, Packet& sp_acc, Packet& u_acc) {
    const Packet xp = psub(ploadu<Packet>(zp + at), vmp);
    const Packet ep = ex.packetOp(xp);
    sp_acc = padd(sp_acc, ep);
    if constexpr (Entropy || Pair) {
      const Packet dp = pmax(xp, vfloor);
      if constexpr (Entropy) u_acc = pmadd(ep, dp, u_acc);
      if constexpr (Pair) {
        const Packet xq = psub(ploadu<Packet>(zq + at), vmq);
        const Packet eq = ex.packetOp(xq);
        const Packet d = psub(dp, pmax(xq, vfloor));
        sq = padd(sq, eq);
        a = pmadd(ep, d, a);
        b = psub(b, pmul(eq, d));
      }
    }
  };
  index j = 0;
  for (; j + 2 * width <= n; j += 2 * width) {
    step(j, sp, u);
    step(j + width, sp1, u1);
  }
  if (j + width <= n) {
    step(j, sp, u);
    j += width;
  }
  chunk_sums<T> r;
  r.sp = predux(padd(sp, sp1));
  if constexpr (Entropy) r.u = predux(padd(u, u1));
  if constexpr (Pair) {
    r.sq = predux(sq);
    r.a = predux(a);
    r.b = predux(b);
  }
  for (; j < n; ++j) {
    const T xp = zp[j] - mp;
    const T ep = ex(xp);
    const T dp = std::max(xp, floor);
    r.sp += ep;
    if constexpr (Entropy) r.u = std::fma(ep, dp, r.u);
    if constexpr (Pair) {
      const T xq = zq[j] - mq;
      const T eq = ex(xq);
      const T d = dp - std::max(xq, floor);
      r.sq += eq;
      r.a = std::fma(ep, d, r.a);
      r.b -= eq * d;
    }
  }
  return r;
}

/// The chunk `x[0, n)` in the accumulation type: `x` itself, or widened (exactly) into `buf`,
/// which then needs `n` entries.
template <class Acc, class T>
[[nodiscard]] const Acc* in_acc(const T* x, [[maybe_unused]] index n,
                                [[maybe_unused]] Acc* buf) noexcept {
  if constexpr (std::is_same_v<Acc, T>) {
    return x;
  } else {
    for (index j = 0; j < n; ++j) buf[j] = static_cast<Acc>(x[j]);
    return buf;
  }
}

/// Online log-sum-exp (and, if `Entropy`, entropy) state of one row, fed tile by tile.
///
/// For each tile (fixed grid of `reduction_tile` from the row start): tm = max(tile); if tm > m
/// the state is rescaled, s <- s e^{m - tm}, u <- e^{m - tm}(u - (tm - m) s); then
/// s += sum e^{z - m}, u += sum e^{z - m} (z - m). At the end lse = m + log s and
/// H = log s - u / s. `reduce_row` and the fused linear kernel feed the same tiles in the same
/// order, so they produce bitwise identical results from identical logits. `add_tile`'s `scratch`
/// holds a widened chunk (`tile_chunk` entries) when Acc is wider than the logits; else unused.
template <class Acc, bool Entropy>
struct row_accumulator {
  online_lse st;
  double u = 0;

  template <class T>
  void add_tile(const T* x, index n, [[maybe_unused]] Acc* scratch) noexcept {
    const carray_map<T> t(x, n);
    const auto tm = static_cast<double>(t.maxCoeff());
    if (tm > st.m) {
      if (st.s > 0) {
        const double delta = tm - st.m;
        const double r = std::exp(-delta);
        if constexpr (Entropy) u = r * (u - delta * st.s);
        st.s *= r;
      }
      st.m = tm;
    }
    if (st.m == neg_inf) {
      st.nan_before_finite = st.nan_before_finite || t.isNaN().any();
      return;
    }
    const auto ma = static_cast<Acc>(st.m);
    for (index c = 0; c < n; c += tile_chunk) {
      const index cn = std::min(tile_chunk, n - c);
      prefetch_ahead(x, prefetch_distance * reduction_tile + c, cn);
      const auto r = reduce_chunk<Entropy, false>(in_acc<Acc>(x + c, cn, scratch),
                                                  static_cast<const Acc*>(nullptr), cn, ma, Acc(0));
      st.s += static_cast<double>(r.sp);
      if constexpr (Entropy) u += static_cast<double>(r.u);
    }
  }

  [[nodiscard]] row_stats finish() const noexcept {
    row_stats r;
    r.m = st.m;
    r.status = st.status();
    if (r.status == row_status::ok) {
      r.log_s = std::log(st.s);
      if constexpr (Entropy) r.entropy = std::max(0.0, r.log_s - u / st.s);
    }
    return r;
  }
};

/// One-pass reduction of one row: log-sum-exp and, if `Entropy`, the entropy.
template <class Acc, bool Entropy, class T>
[[nodiscard]] row_stats reduce_row(const T* x, index n_cols) noexcept {
  row_accumulator<Acc, Entropy> acc;
  [[maybe_unused]] alignas(64) Acc w[std::is_same_v<Acc, T> ? 1 : tile_chunk];
  for (index j0 = 0; j0 < n_cols; j0 += reduction_tile) {
    acc.add_tile(x + j0, std::min(reduction_tile, n_cols - j0), w);
  }
  return acc.finish();
}

/// One-pass reduction of two rows p (logits zp) and q (logits zq) of the same length: both
/// log-sum-exps, KL(p||q) = A/s_p - log s_p + log s_q with A = sum e^{zp-mp}((zp-mp) - (zq-mq)),
/// KL(q||p) symmetrically, and optionally the entropy of p. A KL is +inf when the first
/// distribution puts mass where the second has a -inf logit (detected exactly).
template <class Acc, bool Entropy, class T>
[[nodiscard]] row_stats reduce_row_pair(const T* zp, const T* zq, index n_cols) noexcept {
  online_lse p;
  online_lse q;
  double u = 0;
  double a = 0;  // sum wp (dp - dq)
  double b = 0;  // sum wq (dq - dp)
  bool inf_pq = false;
  bool inf_qp = false;
  // Chunk buffers for widened float logits (accumulation::double_precision only).
  alignas(64) Acc wp[std::is_same_v<Acc, T> ? 1 : tile_chunk];
  alignas(64) Acc wq[std::is_same_v<Acc, T> ? 1 : tile_chunk];
  constexpr auto half_max = std::numeric_limits<T>::max() / 2;
  for (index j0 = 0; j0 < n_cols; j0 += reduction_tile) {
    const index n = std::min(reduction_tile, n_cols - j0);
    const carray_map<T> tp(zp + j0, n);
    const carray_map<T> tq(zq + j0, n);
    const auto tmp = static_cast<double>(tp.maxCoeff());
    const auto tmq = static_cast<double>(tq.maxCoeff());
    if (tmp > p.m) {
      if (p.s > 0) {
        const double delta = tmp - p.m;
        const double r = std::exp(-delta);
        if constexpr (Entropy) u = r * (u - delta * p.s);
        a = r * (a - delta * p.s);
        p.s *= r;
      }
      if (q.s > 0) b = (p.m == neg_inf) ? pos_inf : b + (tmp - p.m) * q.s;
      p.m = tmp;
    }
    if (tmq > q.m) {
      if (q.s > 0) {
        const double delta = tmq - q.m;
        const double r = std::exp(-delta);
        b = r * (b - delta * q.s);
        q.s *= r;
      }
      if (p.s > 0) a = (q.m == neg_inf) ? pos_inf : a + (tmq - q.m) * p.s;
      q.m = tmq;
    }
    const bool p_live = p.m > neg_inf;
    const bool q_live = q.m > neg_inf;
    if (!p_live) p.nan_before_finite = p.nan_before_finite || tp.isNaN().any();
    if (!q_live) q.nan_before_finite = q.nan_before_finite || tq.isNaN().any();
    const auto mpa = static_cast<Acc>(p.m);
    const auto mqa = static_cast<Acc>(q.m);
    for (index c = 0; c < n; c += tile_chunk) {
      const index cn = std::min(tile_chunk, n - c);
      prefetch_ahead(zp + j0, prefetch_distance * reduction_tile + c, cn);
      prefetch_ahead(zq + j0, prefetch_distance * reduction_tile + c, cn);
      const Acc* xp = in_acc<Acc>(zp + j0 + c, cn, wp);
      const Acc* xq = in_acc<Acc>(zq + j0 + c, cn, wq);
      if (p_live && q_live) {
        const auto r = reduce_chunk<Entropy, true>(xp, xq, cn, mpa, mqa);
        p.s += static_cast<double>(r.sp);
        q.s += static_cast<double>(r.sq);
        a += static_cast<double>(r.a);
        b += static_cast<double>(r.b);
        if constexpr (Entropy) u += static_cast<double>(r.u);
      } else if (p_live) {  // every q logit so far is -inf: no cross terms yet
        const auto r = reduce_chunk<Entropy, false>(xp, xq, cn, mpa, mqa);
        p.s += static_cast<double>(r.sp);
        if constexpr (Entropy) u += static_cast<double>(r.u);
      } else if (q_live) {
        q.s += static_cast<double>(reduce_chunk<false, false>(xq, xp, cn, mqa, mpa).sp);
      }
    }
    if (p_live && q_live) {
      // Exact zero-mass mismatches, only in tiles that contain -inf logits.
      if (tp.minCoeff() == -std::numeric_limits<T>::infinity() ||
          tq.minCoeff() == -std::numeric_limits<T>::infinity()) {
        const auto lowest = std::numeric_limits<T>::lowest();
        const auto d = tq.max(lowest) - tp.max(lowest);  // an expression: no temporary
        inf_pq = inf_pq || d.minCoeff() < -half_max;
        inf_qp = inf_qp || d.maxCoeff() > half_max;
      }
    } else if (p_live && tmp > neg_inf) {
      inf_pq = true;  // every q logit so far is -inf, p has a finite logit here
    } else if (q_live && tmq > neg_inf) {
      inf_qp = true;
    }
  }
  row_stats r;
  r.m = p.m;
  r.m_q = q.m;
  r.status = p.status();
  r.status_q = q.status();
  if (r.status == row_status::ok && r.status_q == row_status::ok) {
    r.log_s = std::log(p.s);
    r.log_s_q = std::log(q.s);
    if constexpr (Entropy) r.entropy = std::max(0.0, r.log_s - u / p.s);
    r.kl = inf_pq ? pos_inf : std::max(0.0, a / p.s - r.log_s + r.log_s_q);
    r.kl_reverse = inf_qp ? pos_inf : std::max(0.0, b / q.s - r.log_s_q + r.log_s);
  }
  return r;
}

/// Upstream gradients and saved forward values for one row of the fused backward.
struct row_grad_in {
  double lse = 0;      ///< forward log-sum-exp of p
  double g_lp = 0;     ///< dL / d log p(target)
  index target = -1;   ///< target column (g_lp is ignored when < 0)
  double g_h = 0;      ///< dL / d H(p)
  double entropy = 0;  ///< forward H(p)
  double g_kl = 0;     ///< dL / d KL(p || q)
  double kl = 0;       ///< forward KL(p || q)
  double lse_q = 0;    ///< forward log-sum-exp of q
};

/// Stores `value` (an Acc expression) into the T row segment `out` under `mode`. Only for
/// expressions whose scalar and packet evaluations agree bitwise (no transcendental functions):
/// Eigen peels unaligned destinations with scalar code, at a position that depends on the address.
template <class T, class Expr>
void store(array_map<T>& out, const Expr& value, write_mode mode) {
  using Acc = typename Expr::Scalar;
  if constexpr (std::is_same_v<Acc, T>) {
    if (mode == write_mode::overwrite) {
      out = value;
    } else {
      out += value;
    }
  } else {
    if (mode == write_mode::overwrite) {
      out = value.template cast<T>();
    } else {
      out += value.template cast<T>();
    }
  }
}

/// Stores an expression containing exp: it is first evaluated into the 64-byte aligned `scratch`
/// (full packets from the chunk start, so the arithmetic of each element depends only on its
/// position in the row, never on the output address), then copied or added (exact either way).
template <class T, class Expr>
void store_via(T* out, index n, const Expr& value, typename Expr::Scalar* scratch,
               write_mode mode) {
  using Acc = typename Expr::Scalar;
  Eigen::Map<Eigen::Array<Acc, Eigen::Dynamic, 1>, Eigen::Aligned64> buf(scratch, n);
  buf = value;
  array_map<T> o(out, n);
  store(o, buf, mode);
}

/// One read + one write sweep over a row: dzp_j = p_j * (c0 + c1 lp_j' - g_kl lq_j') with
/// lp' = max(zp - lse, floor), c1 = g_kl - g_h, c0 = -g_lp - g_h H - g_kl KL, plus g_lp at the
/// target; and, when `Kl`, dzq_j = g_kl (q_j - p_j).
template <class Acc, bool Entropy, bool Kl, class T>
void backward_row(const T* zp, const T* zq, T* dzp, T* dzq, index n_cols, const row_grad_in& g,
                  write_mode mode) noexcept {
  constexpr auto floor = grad_log_floor<Acc>;
  const auto lse = static_cast<Acc>(g.lse);
  const auto lse_q = static_cast<Acc>(g.lse_q);
  const double c0d = -g.g_lp - (Entropy ? g.g_h * g.entropy : 0.0) - (Kl ? g.g_kl * g.kl : 0.0);
  const auto c0 = static_cast<Acc>(c0d);
  const auto c1 = static_cast<Acc>((Kl ? g.g_kl : 0.0) - (Entropy ? g.g_h : 0.0));
  const auto gkl = static_cast<Acc>(g.g_kl);
  alignas(64) Acc scratch[tile_chunk];
  // Element-wise: chunks only set how far ahead memory is requested (inputs and outputs).
  for (index j0 = 0; j0 < n_cols; j0 += tile_chunk) {
    const index n = std::min(tile_chunk, n_cols - j0);
    prefetch_ahead(zp + j0, prefetch_distance * reduction_tile, n);
    prefetch_ahead<T, true>(dzp + j0, prefetch_distance * reduction_tile, n);
    if constexpr (Kl) {
      prefetch_ahead(zq + j0, prefetch_distance * reduction_tile, n);
      if (dzq != nullptr) prefetch_ahead<T, true>(dzq + j0, prefetch_distance * reduction_tile, n);
    }
    const carray_map<T> tp(zp + j0, n);
    const auto lp = shifted<Acc>(tp, lse);
    if constexpr (!Entropy && !Kl) {
      store_via(dzp + j0, n, c0 * exp0(lp), scratch, mode);
    } else if constexpr (!Kl) {
      store_via(dzp + j0, n, exp0(lp) * (c0 + c1 * lp.max(floor)), scratch, mode);
    } else {
      const carray_map<T> tq(zq + j0, n);
      const auto lq = shifted<Acc>(tq, lse_q);
      store_via(dzp + j0, n, exp0(lp) * (c0 + c1 * lp.max(floor) - gkl * lq.max(floor)), scratch,
                mode);
      if (dzq != nullptr) store_via(dzq + j0, n, gkl * (exp0(lq) - exp0(lp)), scratch, mode);
    }
  }
  if (g.target >= 0) dzp[g.target] += static_cast<T>(g.g_lp);
}

/// Work (elements touched) below which a batch is not worth splitting across threads.
inline constexpr index parallel_work_threshold = index{1} << 16;

/// Calls `f(i)` (returning false for a bad row) for every row; returns the smallest bad row, or
/// `n` when every row was fine. Rows are split across OpenMP threads when enabled, compiled in and
/// worthwhile; results never depend on it. Serially, stops at the first bad row.
template <class F>
index for_each_row(index n, index work_per_row, bool parallel, F&& f) {
  index first_bad = n;
#if defined(_OPENMP)
  if (parallel && n > 1 && n * std::max<index>(work_per_row, 1) >= parallel_work_threshold &&
      omp_get_max_threads() > 1 && !omp_in_parallel()) {
#pragma omp parallel for schedule(static) reduction(min : first_bad)
    for (index i = 0; i < n; ++i) {
      if (!f(i)) first_bad = std::min(first_bad, i);
    }
    return first_bad;
  }
#else
  (void)parallel;
  (void)work_per_row;
#endif
  for (index i = 0; i < n; ++i) {
    if (!f(i)) return i;
  }
  return first_bad;
}

/// Whether row i is selected by the mask (empty mask: every row).
[[nodiscard]] inline bool row_on(std::span<const std::uint8_t> mask, index i) noexcept {
  return mask.empty() || mask[static_cast<std::size_t>(i)] != 0;
}

inline void check_rows(const char* kernel, const char* what, std::size_t size, index n) {
  PREFOPT_CHECK(static_cast<index>(size) == n, shape_error, kernel, ": ", what, " has ", size,
                " entries, expected one per logits row (", n, ")");
}

inline void check_optional_rows(const char* kernel, const char* what, std::size_t size, index n) {
  PREFOPT_CHECK(size == 0 || static_cast<index>(size) == n, shape_error, kernel, ": ", what,
                " has ", size, " entries, expected 0 (not computed) or one per row (", n, ")");
}

inline void check_mask(const char* kernel, const options& opt, index n) {
  check_optional_rows(kernel, "mask", opt.mask.size(), n);
}

inline void check_targets(const char* kernel, std::span<const token_id> targets,
                          std::span<const std::uint8_t> mask, index n, index v) {
  check_rows(kernel, "targets", targets.size(), n);
  for (index i = 0; i < n; ++i) {
    if (!row_on(mask, i)) continue;
    const auto t = targets[static_cast<std::size_t>(i)];
    PREFOPT_CHECK(t >= 0 && t < v, invalid_argument, kernel, ": targets[", i, "] = ", t,
                  " is outside the vocabulary [0, ", v, ")");
  }
}

template <class A, class B>
void check_same_shape(const char* kernel, const char* a_name, const cview<A>& a, const char* b_name,
                      const B& b) {
  PREFOPT_CHECK(a.rows == b.rows && a.cols == b.cols, shape_error, kernel, ": ", b_name, " is [",
                b.rows, ", ", b.cols, "], expected the shape of ", a_name, " [", a.rows, ", ",
                a.cols, "]");
}

/// Throws the error for a bad row, scanning that row (error path only) for the offending value.
template <class T>
[[noreturn]] void throw_row_error(const char* kernel, const char* argument, const cview<T>& x,
                                  index i, row_status status) {
  if (status == row_status::all_neg_inf) {
    PREFOPT_THROW(invalid_argument, kernel, ": ", argument, " row ", i,
                  " has no finite logit (every entry is -inf)");
  }
  const T* r = x.row(i);
  for (index j = 0; j < x.cols; ++j) {
    if (std::isnan(r[j]) || r[j] == std::numeric_limits<T>::infinity()) {
      PREFOPT_THROW(invalid_argument, kernel, ": ", argument, "(", i, ", ", j, ") = ", r[j],
                    " in row ", i, ", expected finite or -inf logits");
    }
  }
  PREFOPT_THROW(invalid_argument, kernel, ": ", argument, " row ", i,
                " produced a non-finite reduction (overflow)");
}

/// Calls `f.template operator()<Acc>()` with Acc = T or double per the options.
template <class T, class F>
decltype(auto) with_accumulation(accumulation a, F&& f) {
  if constexpr (std::is_same_v<T, float>) {
    if (a == accumulation::double_precision) return f.template operator()<double>();
  } else {
    (void)a;
  }
  return f.template operator()<T>();
}

}  // namespace prefopt::kernels::detail
