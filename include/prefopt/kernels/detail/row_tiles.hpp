// NOLINT(llvm-header-guard): included once per ISA on purpose, no include guard.
// Internals: the tile reductions and the backward tile, written once over the vector primitives of
// `detail/simd.hpp` and included once per instruction set, inside that ISA's namespace and target
// region (no include guard on purpose). A "tile" is at most `reduction_tile` elements of one row;
// the row-level code (`row_math.hpp`) feeds tiles in order and keeps the running maximum.
//
// Order of every sum: lane l of packet k holds element k W + l (W = packet width); packets go to
// two accumulators alternately (even / odd k), a partial last packet is padded with -inf (weight
// exactly 0) and goes to the first; the two accumulators are added, then each lane is added to its
// double lane of `lane_sums`. The order depends only on positions within the tile, never on the
// data's address, the batch or the thread.

// NOLINTBEGIN(readability-function-size)

template <class S, bool Fast>
inline typename S::vec exp_poly_eval(typename S::vec r) noexcept {
  using V = typename S::vec;
  if constexpr (Fast) {
    V y = S::set1(exp_poly::d4[0]);
    y = S::fmadd(y, r, S::set1(exp_poly::d4[1]));
    y = S::fmadd(y, r, S::set1(exp_poly::d4[2]));
    y = S::fmadd(y, r, S::set1(exp_poly::d4[3]));
    return S::fmadd(y, r, S::set1(1.0f));
  } else {
    V y = S::set1(exp_poly::d5[0]);
    y = S::fmadd(y, r, S::set1(exp_poly::d5[1]));
    y = S::fmadd(y, r, S::set1(exp_poly::d5[2]));
    y = S::fmadd(y, r, S::set1(exp_poly::d5[3]));
    y = S::fmadd(y, r, S::set1(exp_poly::d5[4]));
    return S::fmadd(y, r, S::set1(1.0f));
  }
}

/// Requests the cache lines of [p, p + bytes) at `ahead` bytes past p (never faults, so the address
/// may lie past the caller's data; it is formed as an integer).
inline void prefetch_lines(const void* p, std::uintptr_t ahead, std::uintptr_t bytes) noexcept {
#if defined(__GNUC__)
  const auto a = reinterpret_cast<std::uintptr_t>(p) + ahead;
  for (std::uintptr_t k = 0; k < bytes; k += 64) {
    __builtin_prefetch(reinterpret_cast<const void*>(a + k), 0, 3);
  }
#else
  (void)p;
  (void)ahead;
  (void)bytes;
#endif
}

/// Maximum of x[0, n) (NaN may or may not win: NaN rows are detected from the sums).
template <class S>
[[nodiscard]] typename S::scalar tile_max(const typename S::scalar* x, index_t n) noexcept {
  using T = typename S::scalar;
  using V = typename S::vec;
  constexpr index_t w = S::width;
  V m0 = S::set1(-std::numeric_limits<T>::infinity());
  V m1 = m0;
  V m2 = m0;
  V m3 = m0;
  index_t j = 0;
  for (; j + 4 * w <= n; j += 4 * w) {
    m0 = S::max(m0, S::load(x + j));
    m1 = S::max(m1, S::load(x + j + w));
    m2 = S::max(m2, S::load(x + j + 2 * w));
    m3 = S::max(m3, S::load(x + j + 3 * w));
  }
  for (; j + w <= n; j += w) m0 = S::max(m0, S::load(x + j));
  T m = S::hmax(S::max(S::max(m0, m1), S::max(m2, m3)));
  for (; j < n; ++j) m = x[j] > m ? x[j] : m;
  return m;
}

/// x[j, j + n) copied into `buf` (one packet), padded with `pad`.
template <class S>
void pad_packet(const typename S::scalar* x, index_t n, typename S::scalar pad,
                typename S::scalar* buf) noexcept {
  for (index_t k = 0; k < S::width; ++k) buf[k] = k < n ? x[k] : pad;
}

/// Adds the lanes of `v` to `out[0, W)` in lane order.
template <class S>
void add_lanes(typename S::vec v, double* out) noexcept {
  alignas(64) typename S::scalar t[static_cast<std::size_t>(S::width)];
  S::store(t, v);
  for (index_t k = 0; k < S::width; ++k) out[k] += static_cast<double>(t[k]);
}

template <class S, bool Entropy, bool Fast>
inline void sum_step(const typename S::scalar* p, typename S::vec vm, typename S::vec vfloor,
                     typename S::vec& s, typename S::vec& u) noexcept {
  const auto x = S::sub(S::load(p), vm);
  const auto e = S::template exp<Fast>(x);
  s = S::add(s, e);
  if constexpr (Entropy) u = S::fmadd(e, S::max(x, vfloor), u);
}

/// With x = z - m, w = exp(x): s[l] += lane l of sum w, and if `Entropy`, u[l] += lane l of
/// sum w max(x, lowest) (the floor turns 0 * -inf into 0 for -inf logits).
template <class S, bool Entropy, bool Fast>
void tile_sums(const typename S::scalar* z, index_t n, typename S::scalar m, double* s_out,
               double* u_out) noexcept {
  using T = typename S::scalar;
  using V = typename S::vec;
  constexpr index_t w = S::width;
  const V vm = S::set1(m);
  const V vfloor = S::set1(std::numeric_limits<T>::lowest());
  V s0 = S::set1(T(0));
  V s1 = s0;
  V u0 = s0;
  V u1 = s0;
  constexpr auto ahead =
      static_cast<std::uintptr_t>(prefetch_distance * reduction_tile * sizeof(T));
  index_t j = 0;
  for (; j + 2 * w <= n; j += 2 * w) {
    prefetch_lines(z + j, ahead, 2 * w * sizeof(T));
    sum_step<S, Entropy, Fast>(z + j, vm, vfloor, s0, u0);
    sum_step<S, Entropy, Fast>(z + j + w, vm, vfloor, s1, u1);
  }
  if (j + w <= n) {
    sum_step<S, Entropy, Fast>(z + j, vm, vfloor, s0, u0);
    j += w;
  }
  if (j < n) {
    alignas(64) T buf[static_cast<std::size_t>(w)];
    pad_packet<S>(z + j, n - j, -std::numeric_limits<T>::infinity(), buf);
    sum_step<S, Entropy, Fast>(buf, vm, vfloor, s0, u0);
  }
  add_lanes<S>(S::add(s0, s1), s_out);
  if constexpr (Entropy) add_lanes<S>(S::add(u0, u1), u_out);
}

template <class S, bool Entropy, bool Fast>
inline void pair_step(const typename S::scalar* zp, const typename S::scalar* zq,
                      typename S::vec vmp, typename S::vec vmq, typename S::vec vfloor,
                      typename S::vec& sp, typename S::vec& u, typename S::vec& sq,
                      typename S::vec& a, typename S::vec& b, typename S::vec& dmin,
                      typename S::vec& dmax) noexcept {
  const auto xp = S::sub(S::load(zp), vmp);
  const auto ep = S::template exp<Fast>(xp);
  sp = S::add(sp, ep);
  const auto dp = S::max(xp, vfloor);
  if constexpr (Entropy) u = S::fmadd(ep, dp, u);
  const auto xq = S::sub(S::load(zq), vmq);
  const auto eq = S::template exp<Fast>(xq);
  const auto d = S::sub(dp, S::max(xq, vfloor));
  sq = S::add(sq, eq);
  a = S::fmadd(ep, d, a);
  b = S::fnmadd(eq, d, b);
  dmin = S::min(dmin, d);
  dmax = S::max(dmax, d);
}

/// Both rows live: with xp = zp - mp, wp = exp(xp), dp = max(xp, lowest), the same for q and
/// d = dp - dq: s += sum wp, u += sum wp dp (if `Entropy`), sq += sum wq, a += sum wp d,
/// b -= sum wq d, and the extreme d. `s` and `u` are bitwise those of `tile_sums` (same steps in
/// the same order).
template <class S, bool Entropy, bool Fast>
void tile_pair_sums(const typename S::scalar* zp, const typename S::scalar* zq, index_t n,
                    typename S::scalar mp, typename S::scalar mq, lane_sums& acc) noexcept {
  using T = typename S::scalar;
  using V = typename S::vec;
  constexpr index_t w = S::width;
  const V vmp = S::set1(mp);
  const V vmq = S::set1(mq);
  const V vfloor = S::set1(std::numeric_limits<T>::lowest());
  const V zero = S::set1(T(0));
  V sp0 = zero, sp1 = zero, u0 = zero, u1 = zero, sq0 = zero, sq1 = zero;
  V a0 = zero, a1 = zero, b0 = zero, b1 = zero;
  V dmin = S::set1(std::numeric_limits<T>::infinity());
  V dmax = S::set1(-std::numeric_limits<T>::infinity());
  constexpr auto ahead =
      static_cast<std::uintptr_t>(prefetch_distance * reduction_tile * sizeof(T));
  index_t j = 0;
  for (; j + 2 * w <= n; j += 2 * w) {
    prefetch_lines(zp + j, ahead, 2 * w * sizeof(T));
    prefetch_lines(zq + j, ahead, 2 * w * sizeof(T));
    pair_step<S, Entropy, Fast>(zp + j, zq + j, vmp, vmq, vfloor, sp0, u0, sq0, a0, b0, dmin, dmax);
    pair_step<S, Entropy, Fast>(zp + j + w, zq + j + w, vmp, vmq, vfloor, sp1, u1, sq1, a1, b1,
                                dmin, dmax);
  }
  if (j + w <= n) {
    pair_step<S, Entropy, Fast>(zp + j, zq + j, vmp, vmq, vfloor, sp0, u0, sq0, a0, b0, dmin, dmax);
    j += w;
  }
  if (j < n) {
    alignas(64) T bp[static_cast<std::size_t>(w)];
    alignas(64) T bq[static_cast<std::size_t>(w)];
    pad_packet<S>(zp + j, n - j, -std::numeric_limits<T>::infinity(), bp);
    pad_packet<S>(zq + j, n - j, -std::numeric_limits<T>::infinity(), bq);
    // Padding: d = lowest - lowest = 0, inside [dmin, dmax] only if a real d is (harmless).
    V tmin = S::set1(std::numeric_limits<T>::infinity());
    V tmax = S::set1(-std::numeric_limits<T>::infinity());
    pair_step<S, Entropy, Fast>(bp, bq, vmp, vmq, vfloor, sp0, u0, sq0, a0, b0, tmin, tmax);
    alignas(64) T lo[static_cast<std::size_t>(w)];
    alignas(64) T hi[static_cast<std::size_t>(w)];
    S::store(lo, tmin);
    S::store(hi, tmax);
    for (index_t k = 0; k < n - j; ++k) {
      acc.dmin = std::min(acc.dmin, static_cast<double>(lo[k]));
      acc.dmax = std::max(acc.dmax, static_cast<double>(hi[k]));
    }
  }
  add_lanes<S>(S::add(sp0, sp1), acc.s);
  if constexpr (Entropy) add_lanes<S>(S::add(u0, u1), acc.u);
  add_lanes<S>(S::add(sq0, sq1), acc.sq);
  add_lanes<S>(S::add(a0, a1), acc.a);
  add_lanes<S>(S::add(b0, b1), acc.b);
  alignas(64) T lo[static_cast<std::size_t>(w)];
  alignas(64) T hi[static_cast<std::size_t>(w)];
  S::store(lo, dmin);
  S::store(hi, dmax);
  for (index_t k = 0; k < w; ++k) {
    acc.dmin = std::min(acc.dmin, static_cast<double>(lo[k]));
    acc.dmax = std::max(acc.dmax, static_cast<double>(hi[k]));
  }
}

template <class S, bool Entropy, bool Kl, bool Fast>
inline void backward_step(const backward_tile_args<typename S::scalar>& g, index_t j,
                          const typename S::scalar* zp, const typename S::scalar* zq,
                          typename S::scalar* dzp, typename S::scalar* dzq) noexcept {
  using T = typename S::scalar;
  const auto vlse = S::set1(g.lse);
  const auto vc0 = S::set1(g.c0);
  const auto floor = S::set1(grad_log_floor<T>);
  const auto lp = S::sub(S::load(zp + j), vlse);
  const auto ep = S::template exp<Fast>(lp);
  typename S::vec d;
  if constexpr (!Entropy && !Kl) {
    d = S::mul(vc0, ep);
  } else {
    const auto inner = S::fmadd(S::set1(g.c1), S::max(lp, floor), vc0);
    if constexpr (Kl) {
      const auto lq = S::sub(S::load(zq + j), S::set1(g.lse_q));
      d = S::mul(ep, S::fnmadd(S::set1(g.g_kl), S::max(lq, floor), inner));
      if (dzq != nullptr) {
        auto dq = S::mul(S::set1(g.g_kl), S::sub(S::template exp<Fast>(lq), ep));
        if (g.accumulate) dq = S::add(S::load(dzq + j), dq);
        S::store(dzq + j, dq);
      }
    } else {
      d = S::mul(ep, inner);
    }
  }
  if (g.accumulate) d = S::add(S::load(dzp + j), d);
  S::store(dzp + j, d);
}

/// One tile of the fused backward, element-wise: dzp = exp(lp) (c0 + c1 max(lp, floor) - g_kl
/// max(lq, floor)) with lp = zp - lse, lq = zq - lse_q (the c1 and g_kl terms only when
/// `Entropy` / `Kl`), and dzq = g_kl (exp(lq) - exp(lp)); written or added. A partial last packet
/// goes through the same arithmetic on a padded copy, so every element's result depends only on
/// its inputs. `dzp` may equal `zp` (in place).
template <class S, bool Entropy, bool Kl, bool Fast>
void backward_tile(const backward_tile_args<typename S::scalar>& g) noexcept {
  using T = typename S::scalar;
  constexpr index_t w = S::width;
  constexpr auto ahead =
      static_cast<std::uintptr_t>(prefetch_distance * reduction_tile * sizeof(T));
  index_t j = 0;
  for (; j + w <= g.n; j += w) {
    if ((j * static_cast<index_t>(sizeof(T))) % 64 == 0) {  // one request per cache line
      prefetch_lines(g.zp + j, ahead, 64);
      if constexpr (Kl) prefetch_lines(g.zq + j, ahead, 64);
    }
    backward_step<S, Entropy, Kl, Fast>(g, j, g.zp, g.zq, g.dzp, g.dzq);
  }
  if (j < g.n) {
    const index_t r = g.n - j;
    alignas(64) T bp[static_cast<std::size_t>(w)];
    alignas(64) T bq[static_cast<std::size_t>(w)];
    alignas(64) T op[static_cast<std::size_t>(w)];
    alignas(64) T oq[static_cast<std::size_t>(w)];
    pad_packet<S>(g.zp + j, r, T(0), bp);
    if constexpr (Kl) pad_packet<S>(g.zq + j, r, T(0), bq);
    if (g.accumulate) {
      pad_packet<S>(g.dzp + j, r, T(0), op);
      if (g.dzq != nullptr) pad_packet<S>(g.dzq + j, r, T(0), oq);
    }
    backward_step<S, Entropy, Kl, Fast>(g, 0, bp, bq, op, g.dzq != nullptr ? oq : nullptr);
    for (index_t k = 0; k < r; ++k) g.dzp[j + k] = op[k];
    if (Kl && g.dzq != nullptr) {
      for (index_t k = 0; k < r; ++k) g.dzq[j + k] = oq[k];
    }
  }
}

/// y[j] = exp(x[j]) for j < n through this ISA's vector exponential (a partial last packet on a
/// padded copy): what every kernel computes, exposed for the accuracy tests.
template <class S, bool Fast>
void exp_array(const typename S::scalar* x, typename S::scalar* y, index_t n) noexcept {
  using T = typename S::scalar;
  constexpr index_t w = S::width;
  index_t j = 0;
  for (; j + w <= n; j += w) S::store(y + j, S::template exp<Fast>(S::load(x + j)));
  if (j < n) {
    alignas(64) T b[static_cast<std::size_t>(w)];
    pad_packet<S>(x + j, n - j, T(0), b);
    S::store(b, S::template exp<Fast>(S::load(b)));
    for (index_t k = 0; k < n - j; ++k) y[j + k] = b[k];
  }
}

/// y[0, n) = x[0, n) widened (exactly) from a half format H to `S::scalar`: one packet at a time
/// through `S::load_half` where the ISA has it, element by element otherwise and for the tail.
template <class S, class H>
void widen_array(const H* x, typename S::scalar* y, index_t n) noexcept {
  using T = typename S::scalar;
  // The source streams from memory (the float sweeps that follow read the L1 copy): prefetch it
  // the same distance ahead as the float tiles, one request per cache line.
  constexpr auto ahead =
      static_cast<std::uintptr_t>(prefetch_distance * reduction_tile * sizeof(H));
  index_t j = 0;
  if constexpr (requires { S::load_half(x); }) {
    for (; j + S::width <= n; j += S::width) {
      if ((j * static_cast<index_t>(sizeof(H))) % 64 == 0) prefetch_lines(x + j, ahead, 64);
      S::store(y + j, S::load_half(x + j));
    }
  }
  for (; j < n; ++j) y[j] = static_cast<T>(static_cast<float>(x[j]));
}

/// out[0, n) = y[0, n), or out + y when `add` (added in float, the previous value first, as the
/// float backward does), rounded to nearest even into the half format H: one packet at a time
/// through `S::store_half` where the ISA has it, element by element otherwise and for the tail.
template <class S, class H>
void narrow_array(const typename S::scalar* y, index_t n, H* out, bool add) noexcept {
  index_t j = 0;
  if constexpr (requires(typename S::vec v) { S::store_half(out, v); }) {
    for (; j + S::width <= n; j += S::width) {
      auto v = S::load(y + j);
      if (add) v = S::add(S::load_half(out + j), v);
      S::store_half(out + j, v);
    }
  }
  for (; j < n; ++j) {
    auto v = static_cast<float>(y[j]);
    if (add) v = static_cast<float>(out[j]) + v;
    out[j] = static_cast<H>(v);
  }
}

/// This ISA's tile functions for arithmetic type `S::scalar` and the given exp accuracy.
template <class S, bool Fast>
inline constexpr tile_kernels<typename S::scalar> tile_table = {
    &tile_max<S>,
    {&tile_sums<S, false, Fast>, &tile_sums<S, true, Fast>},
    {&tile_pair_sums<S, false, Fast>, &tile_pair_sums<S, true, Fast>},
    {{&backward_tile<S, false, false, Fast>, &backward_tile<S, false, true, Fast>},
     {&backward_tile<S, true, false, Fast>, &backward_tile<S, true, true, Fast>}},
    &exp_array<S, Fast>,
    &widen_array<S, Eigen::bfloat16>,
    &widen_array<S, Eigen::half>,
    &narrow_array<S, Eigen::bfloat16>,
    &narrow_array<S, Eigen::half>,
    S::width};

// NOLINTEND(readability-function-size)
