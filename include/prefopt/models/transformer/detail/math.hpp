#pragma once
/// \file
/// The arithmetic of the shipped transformer: a matrix product, row reductions and element-wise
/// maps whose every output element is computed by one fixed sequence of operations, whatever the
/// number of rows, the row's position in a tile, the column range or the thread that computes it.
///
/// That is what makes the model's guarantees hold: a sequence's logits do not depend on the other
/// sequences of the batch, decoding with the key/value cache gives bitwise the teacher-forced
/// logits, and 1 and 2 threads give bitwise the same results. A general-purpose GEMM (Eigen's,
/// BLAS) does not promise any of it: it changes its kernel with the shape (matrix-vector for one
/// row, coefficient-wise for tiny products) and its blocking with the thread count.
///
/// - `gemm`: `C (=|+=) A B (+ bias)`, row-major, `C[i, j] = fma(A[i, K-1], B[K-1, j], ... fma(A[i,
///   0], B[0, j], c0))`: sequential in k, each column in a SIMD lane (or in the lane of a padded
///   packet at the tail, so the same instruction computes it). Register tiles of rows x packets
///   over cache-sized panels of k; storing and reloading a partial sum is exact, so the panels do
///   not change the result.
/// - `lane_sum`: packet-lane partial sums over whole packets, the padded tail packet, then a
///   fixed horizontal reduction: a function of the row's length and values only.
/// - element-wise maps apply the packet function to every element, tail included (padded).

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <type_traits>

#include "prefopt/core/types.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

// The register tile's loops have compile-time trip counts; -O2 does not always unroll them, and a
// tile left in memory runs five times slower.
#define PREFOPT_XF_UNROLL _Pragma("GCC unroll 16")

namespace prefopt::detail::transformer_math {

template <class T>
using packet = typename Eigen::internal::packet_traits<T>::type;
template <class T>
inline constexpr index_t lanes = Eigen::internal::unpacket_traits<packet<T>>::size;

/// A packet of `w < lanes` values from `p`, the rest `fill`.
template <class T>
inline packet<T> load_partial(const T* p, index_t w, T fill) {
  alignas(64) T tmp[lanes<T>];
  for (index_t l = 0; l < lanes<T>; ++l) tmp[l] = l < w ? p[l] : fill;
  return Eigen::internal::pload<packet<T>>(tmp);
}
template <class T>
inline void store_partial(T* p, const packet<T>& x, index_t w) {
  alignas(64) T tmp[lanes<T>];
  Eigen::internal::pstore(tmp, x);
  for (index_t l = 0; l < w; ++l) p[l] = tmp[l];
}

/// Whether the calling code may start OpenMP threads (compiled in, not nested, > 1 thread).
[[nodiscard]] inline bool parallel_allowed() {
#if defined(_OPENMP)
  return omp_get_max_threads() > 1 && !omp_in_parallel();
#else
  return false;
#endif
}

/// Calls `f(t)` for `t` in `[0, n)`, split across threads when allowed and `n > 1`.
template <class F>
inline void parallel_for(index_t n, F&& f) {
#if defined(_OPENMP)
  if (n > 1 && parallel_allowed()) {
#pragma omp parallel for schedule(static)
    for (index_t t = 0; t < n; ++t) f(t);
    return;
  }
#endif
  for (index_t t = 0; t < n; ++t) f(t);
}

/// How `gemm` starts each output element.
enum class gemm_init { zero, bias, accumulate };

/// Rows x packets register tile: `C[0..R, 0..W) (=|+=) A[0..R, k0..k1) B[k0..k1, 0..W)`, W =
/// `C * lanes` or the partial width `w` of a one-packet tail tile (`partial`).
template <class T, std::size_t R, std::size_t C, bool partial>
inline void gemm_tile(const T* a, index_t lda, const T* b, index_t ldb, T* c, index_t ldc,
                      index_t k0, index_t k1, bool load_c, const T* bias, index_t w) {
  using P = packet<T>;
  using namespace Eigen::internal;
  constexpr index_t L = lanes<T>;
  P acc[R][C];
  PREFOPT_XF_UNROLL
  for (std::size_t r = 0; r < R; ++r) {
    PREFOPT_XF_UNROLL
    for (std::size_t q = 0; q < C; ++q) {
      if (load_c) {
        acc[r][q] =
            partial ? load_partial(c + static_cast<index_t>(r) * ldc, w, T(0))
                    : ploadu<P>(c + static_cast<index_t>(r) * ldc + static_cast<index_t>(q) * L);
      } else if (bias != nullptr) {
        acc[r][q] =
            partial ? load_partial(bias, w, T(0)) : ploadu<P>(bias + static_cast<index_t>(q) * L);
      } else {
        acc[r][q] = pset1<P>(T(0));
      }
    }
  }
  for (index_t k = k0; k < k1; ++k) {
    P bk[C];
    PREFOPT_XF_UNROLL
    for (std::size_t q = 0; q < C; ++q) {
      bk[q] = partial ? load_partial(b + k * ldb, w, T(0))
                      : ploadu<P>(b + k * ldb + static_cast<index_t>(q) * L);
    }
    PREFOPT_XF_UNROLL
    for (std::size_t r = 0; r < R; ++r) {
      const P ak = pset1<P>(a[static_cast<index_t>(r) * lda + k]);
      PREFOPT_XF_UNROLL
      for (std::size_t q = 0; q < C; ++q) acc[r][q] = pmadd(ak, bk[q], acc[r][q]);
    }
  }
  PREFOPT_XF_UNROLL
  for (std::size_t r = 0; r < R; ++r) {
    PREFOPT_XF_UNROLL
    for (std::size_t q = 0; q < C; ++q) {
      if (partial) {
        store_partial(c + static_cast<index_t>(r) * ldc, acc[r][q], w);
      } else {
        pstoreu(c + static_cast<index_t>(r) * ldc + static_cast<index_t>(q) * L, acc[r][q]);
      }
    }
  }
}

/// Calls `f(std::integral_constant<std::size_t, R>{}, i)` for the row tiles of `[i_begin,
/// i_end)`: `R = 4` rows, the last tile fewer.
template <class F>
inline void for_row_tiles(index_t i_begin, index_t i_end, F&& f) {
  for (index_t i = i_begin; i < i_end; i += 4) {
    switch (std::min<index_t>(4, i_end - i)) {
      case 4:
        f(std::integral_constant<std::size_t, 4>{}, i);
        break;
      case 3:
        f(std::integral_constant<std::size_t, 3>{}, i);
        break;
      case 2:
        f(std::integral_constant<std::size_t, 2>{}, i);
        break;
      default:
        f(std::integral_constant<std::size_t, 1>{}, i);
        break;
    }
  }
}

/// `C[m, n] (=|+=) A[m, k] B[k, n] (+ bias[n])`, all row-major with leading dimensions `lda`,
/// `ldb`, `ldc` (see the file comment for the order of operations). Work is split into tasks of
/// (64 rows, 512 columns), across threads when `parallel` (and allowed); the result never
/// depends on it. Inside a task: panels of 64 k, then blocks of 4 packets of columns, then tiles
/// of 4 rows, so that a block of B (64 x 4 packets) stays in L1 while the rows sweep it.
template <class T>
void gemm(index_t m, index_t n, index_t k, const T* a, index_t lda, const T* b, index_t ldb, T* c,
          index_t ldc, gemm_init init, const T* bias = nullptr, bool parallel = true) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    for (index_t i = 0; i < m; ++i) {
      for (index_t j = 0; j < n; ++j) {
        if (init == gemm_init::zero) c[i * ldc + j] = T(0);
        if (init == gemm_init::bias) c[i * ldc + j] = bias[j];
      }
    }
    return;
  }
  constexpr index_t L = lanes<T>;
  constexpr std::size_t CB = 4;  // packets per column block
  constexpr index_t W = static_cast<index_t>(CB) * L;
  constexpr index_t KC = 64;
  constexpr index_t MC = 64;
  constexpr index_t NC = 512;
  const index_t row_groups = (m + MC - 1) / MC;
  const index_t col_panels = (n + NC - 1) / NC;
  auto task = [&](index_t t) {
    const index_t i_begin = (t % row_groups) * MC;  // consecutive tasks share a panel of B
    const index_t i_end = std::min(m, i_begin + MC);
    const index_t j_begin = (t / row_groups) * NC;
    const index_t j_end = std::min(n, j_begin + NC);
    for (index_t k0 = 0; k0 < k; k0 += KC) {
      const index_t k1 = std::min(k, k0 + KC);
      const bool load_c = k0 > 0 || init == gemm_init::accumulate;
      const bool add_bias = k0 == 0 && init == gemm_init::bias;
      index_t j = j_begin;
      auto block = [&](auto cols, auto part, index_t width) {
        constexpr std::size_t C = decltype(cols)::value;
        constexpr bool partial = decltype(part)::value;
        for_row_tiles(i_begin, i_end, [&](auto rows, index_t i) {
          constexpr std::size_t R = decltype(rows)::value;
          gemm_tile<T, R, C, partial>(a + i * lda, lda, b + j, ldb, c + i * ldc + j, ldc, k0, k1,
                                      load_c, add_bias ? bias + j : nullptr, width);
        });
      };
      for (; j + W <= j_end; j += W) {
        block(std::integral_constant<std::size_t, CB>{}, std::false_type{}, 0);
      }
      for (; j + L <= j_end; j += L) {
        block(std::integral_constant<std::size_t, 1>{}, std::false_type{}, 0);
      }
      if (j < j_end) block(std::integral_constant<std::size_t, 1>{}, std::true_type{}, j_end - j);
    }
  };
  const index_t tasks = row_groups * col_panels;
  if (parallel) {
    parallel_for(tasks, task);
  } else {
    for (index_t t = 0; t < tasks; ++t) task(t);
  }
}

/// Sum of `x[0, n)`: lane partial sums over whole packets, the padded tail, a fixed reduction.
template <class T>
[[nodiscard]] inline T lane_sum(const T* x, index_t n) {
  using namespace Eigen::internal;
  using P = packet<T>;
  constexpr index_t L = lanes<T>;
  P acc = pset1<P>(T(0));
  index_t j = 0;
  for (; j + L <= n; j += L) acc = padd(acc, ploadu<P>(x + j));
  if (j < n) acc = padd(acc, load_partial(x + j, n - j, T(0)));
  return predux(acc);
}

/// Sum of `x[j] y[j]` over `[0, n)`, in the same order as `lane_sum`.
template <class T>
[[nodiscard]] inline T lane_dot(const T* x, const T* y, index_t n) {
  using namespace Eigen::internal;
  using P = packet<T>;
  constexpr index_t L = lanes<T>;
  P acc = pset1<P>(T(0));
  index_t j = 0;
  for (; j + L <= n; j += L) acc = pmadd(ploadu<P>(x + j), ploadu<P>(y + j), acc);
  if (j < n) acc = pmadd(load_partial(x + j, n - j, T(0)), load_partial(y + j, n - j, T(0)), acc);
  return predux(acc);
}

/// `x[j] = f(x[j])` for `j` in `[0, n)` with a packet function, the tail in a padded packet.
template <class T, class F>
inline void map_packets(T* x, index_t n, F&& f) {
  using namespace Eigen::internal;
  using P = packet<T>;
  constexpr index_t L = lanes<T>;
  index_t j = 0;
  for (; j + L <= n; j += L) pstoreu(x + j, f(ploadu<P>(x + j)));
  if (j < n) store_partial(x + j, f(load_partial(x + j, n - j, T(0))), n - j);
}

/// In place: `x[0, n) = exp(x - max) / sum`; `x[n, total) = 0` (the causal mask).
template <class T>
inline void softmax_prefix(T* x, index_t n, index_t total) {
  using namespace Eigen::internal;
  T mx = x[0];
  for (index_t j = 1; j < n; ++j) mx = std::max(mx, x[j]);
  const packet<T> pm = pset1<packet<T>>(mx);
  map_packets(x, n, [&](const packet<T>& v) { return pexp(psub(v, pm)); });
  const T inv = T(1) / lane_sum(x, n);
  const packet<T> pinv = pset1<packet<T>>(inv);
  map_packets(x, n, [&](const packet<T>& v) { return pmul(v, pinv); });
  for (index_t j = n; j < total; ++j) x[j] = T(0);
}

/// tanh on a packet (vectorised for float; element by element otherwise).
template <class T>
[[nodiscard]] inline packet<T> tanh_packet(const packet<T>& x) {
  if constexpr (Eigen::internal::packet_traits<T>::HasTanh) {
    return Eigen::internal::ptanh(x);
  } else {
    alignas(64) T tmp[lanes<T>];
    Eigen::internal::pstore(tmp, x);
    for (index_t l = 0; l < lanes<T>; ++l) tmp[l] = std::tanh(tmp[l]);
    return Eigen::internal::pload<packet<T>>(tmp);
  }
}

/// GELU (tanh approximation), `y = x/2 (1 + tanh(c (x + 0.044715 x^3)))`, `c = sqrt(2 / pi)`.
/// `t` gets the tanh (for the backward), `y` the activation; both `[n]`.
template <class T>
inline void gelu_forward(const T* u, T* t, T* y, index_t n) {
  using namespace Eigen::internal;
  using P = packet<T>;
  const P c0 = pset1<P>(T(0.7978845608028654));
  const P c1 = pset1<P>(T(0.044715));
  const P half = pset1<P>(T(0.5));
  const P one = pset1<P>(T(1));
  std::memcpy(t, u, static_cast<std::size_t>(n) * sizeof(T));
  map_packets(t, n, [&](const P& x) {
    return tanh_packet<T>(pmul(c0, pmadd(pmul(c1, pmul(x, x)), x, x)));
  });
  std::memcpy(y, u, static_cast<std::size_t>(n) * sizeof(T));
  constexpr index_t L = lanes<T>;
  index_t j = 0;
  for (; j + L <= n; j += L) {
    pstoreu(y + j, pmul(pmul(half, ploadu<P>(u + j)), padd(one, ploadu<P>(t + j))));
  }
  for (; j < n; ++j) y[j] = T(0.5) * u[j] * (T(1) + t[j]);
}

/// Calls `f(j, w)` for the packets of `[0, n)`: `w = lanes` for whole packets, `w < lanes` for
/// the tail (read it with `load`, write it with `store`, which pad and clip).
template <class T, class F>
inline void for_each_packet(index_t n, F&& f) {
  constexpr index_t L = lanes<T>;
  index_t j = 0;
  for (; j + L <= n; j += L) f(j, L);
  if (j < n) f(j, n - j);
}
template <class T>
[[nodiscard]] inline packet<T> load(const T* p, index_t w) {
  return w == lanes<T> ? Eigen::internal::ploadu<packet<T>>(p) : load_partial(p, w, T(0));
}
template <class T>
inline void store(T* p, const packet<T>& x, index_t w) {
  if (w == lanes<T>) {
    Eigen::internal::pstoreu(p, x);
  } else {
    store_partial(p, x, w);
  }
}

/// GELU backward: `du = dy (0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 0.044715 x^2))`.
template <class T>
inline void gelu_backward(const T* u, const T* t, const T* dy, T* du, index_t n) {
  using namespace Eigen::internal;
  using P = packet<T>;
  const P c0 = pset1<P>(T(0.7978845608028654));
  const P c3 = pset1<P>(T(3 * 0.044715));
  const P half = pset1<P>(T(0.5));
  const P one = pset1<P>(T(1));
  for_each_packet<T>(n, [&](index_t j, index_t w) {
    const P x = load(u + j, w);
    const P th = load(t + j, w);
    const P a = pmul(half, padd(one, th));
    const P b = pmul(pmul(pmul(half, x), psub(one, pmul(th, th))),
                     pmul(c0, padd(one, pmul(c3, pmul(x, x)))));
    store(du + j, pmul(load(dy + j, w), padd(a, b)), w);
  });
}

/// Layer norm of one row: `xhat = (x - mean) rstd`, `y = gamma xhat + beta`, `rstd = 1 /
/// sqrt(var + eps)` (biased variance). Writes `xhat` and `y` (`[d]`) and returns `rstd`.
template <class T>
inline T layer_norm_row(const T* x, const T* gamma, const T* beta, T* xhat, T* y, index_t d) {
  using namespace Eigen::internal;
  using P = packet<T>;
  constexpr T eps = T(1e-5);
  const T mean = lane_sum(x, d) / static_cast<T>(d);
  const P pmean = pset1<P>(mean);
  for_each_packet<T>(
      d, [&](index_t j, index_t w) { store(xhat + j, psub(load(x + j, w), pmean), w); });
  const T var = lane_dot(xhat, xhat, d) / static_cast<T>(d);
  const T rstd = T(1) / std::sqrt(var + eps);
  const P pr = pset1<P>(rstd);
  for_each_packet<T>(d, [&](index_t j, index_t w) {
    const P xh = pmul(load(xhat + j, w), pr);
    store(xhat + j, xh, w);
    store(y + j, pmadd(load(gamma + j, w), xh, load(beta + j, w)), w);
  });
  return rstd;
}

/// Layer-norm backward of one row: `dx += rstd (g - mean(g) - xhat mean(g xhat))`, `g = dy
/// gamma`; `dgamma += dy xhat`, `dbeta += dy` are the caller's (column sums over rows).
template <class T>
inline void layer_norm_row_backward(const T* dy, const T* gamma, const T* xhat, T rstd, T* dx,
                                    T* scratch, index_t d) {
  using namespace Eigen::internal;
  using P = packet<T>;
  for_each_packet<T>(d, [&](index_t j, index_t w) {
    store(scratch + j, pmul(load(dy + j, w), load(gamma + j, w)), w);
  });
  const P mg = pset1<P>(lane_sum(scratch, d) / static_cast<T>(d));
  const P mgx = pset1<P>(lane_dot(scratch, xhat, d) / static_cast<T>(d));
  const P pr = pset1<P>(rstd);
  for_each_packet<T>(d, [&](index_t j, index_t w) {
    const P g = psub(psub(load(scratch + j, w), mg), pmul(load(xhat + j, w), mgx));
    store(dx + j, padd(load(dx + j, w), pmul(pr, g)), w);
  });
}

/// `acc[j] += x[j] y[j]` (y null: `acc[j] += x[j]`) for `j` in `[0, n)`.
template <class T>
inline void accumulate_product(T* acc, const T* x, const T* y, index_t n) {
  using namespace Eigen::internal;
  for_each_packet<T>(n, [&](index_t j, index_t w) {
    const packet<T> a = load(acc + j, w);
    store(acc + j, y ? pmadd(load(x + j, w), load(y + j, w), a) : padd(a, load(x + j, w)), w);
  });
}

/// `out[r, c] = in[c, r]` for an `[rows, cols]` row-major `in` (leading dimension `ldi`) into a
/// `[cols, rows]` row-major `out` (leading dimension `ldo`).
template <class T>
inline void transpose(const T* in, index_t rows, index_t cols, index_t ldi, T* out, index_t ldo) {
  constexpr index_t B = 16;
  for (index_t r0 = 0; r0 < rows; r0 += B) {
    for (index_t c0 = 0; c0 < cols; c0 += B) {
      const index_t r1 = std::min(rows, r0 + B);
      const index_t c1 = std::min(cols, c0 + B);
      for (index_t r = r0; r < r1; ++r) {
        for (index_t c = c0; c < c1; ++c) out[c * ldo + r] = in[r * ldi + c];
      }
    }
  }
}

}  // namespace prefopt::detail::transformer_math
