#pragma once
/// \file
/// Internals: the vector primitives the row math is written in, one struct per instruction set,
/// and the float exponential (Cody-Waite reduction, minimax polynomial, exponent insertion,
/// flush to 0 below log(smallest normal)). Not part of the public API.
///
/// - `isa_base::simd<T>`: Eigen packets of the ISA the compiler was told about (SSE2 on plain
/// x86-64,
///   AVX-512 under `-march=native` on such a machine, NEON on ARM); float and double. This is the
///   `baseline` path and the only one for double arithmetic.
/// - `isa_avx2::simd` / `isa_avx512::simd` (x86-64 with GCC or Clang only): float vectors written
/// with
///   intrinsics and compiled for AVX2 + FMA / AVX-512F through `#pragma GCC target` (Clang:
///   `#pragma clang attribute`), whatever flags the consumer compiles with. They are only ever
///   called after a CPU feature check (`kernels/dispatch.hpp`).
///
/// Every struct has the same static members: `scalar`, `vec`, `width`, `load` (unaligned),
/// `store` (unaligned), `set1`, `add`, `sub`, `mul`, `fmadd(a, b, c) = a b + c`,
/// `fnmadd(a, b, c) = c - a b` (fused where the ISA has FMA), `max`, `min`, `hmax` (horizontal),
/// and `exp<Fast>(x)`; the AVX2 and AVX-512 structs also have `load_half(p)`, one packet of
/// bf16 or fp16 values widened exactly to float, and `store_half(p, v)`, rounded to nearest even
/// (the baseline converts element by element). Each
/// ISA's namespace then includes `row_tiles.hpp`, the tile reductions
/// written once over these primitives, so that they are compiled for that ISA.

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "prefopt/core/types.hpp"
#include "prefopt/kernels/options.hpp"

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(PREFOPT_NO_ISA_DISPATCH)
#define PREFOPT_KERNELS_X86_DISPATCH 1
#include <immintrin.h>
#endif

// Eigen's packet types carry vector attributes that GCC drops when they are template arguments
// (harmless; Eigen silences the same warning inside its own headers).
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wignored-attributes"
#endif

namespace prefopt::kernels::detail {

/// Inputs below this are flushed to an exact 0 by `exp`: log of the smallest normal number. The
/// true value is below FLT_MIN / DBL_MIN there, so the absolute error is under it, `-inf` logits
/// get exactly zero weight and no denormals are produced.
template <class T>
inline constexpr T exp_flush_threshold = std::is_same_v<T, float> ? T(-87.33654f)
                                                                  : T(-708.3964185322641);

/// Floor for the backward's cross terms, where the floored value is multiplied by an upstream
/// coefficient before the zero weight: small enough to leave any meaningful log-probability alone,
/// large enough that `coefficient * floor` stays finite.
template <class T>
inline constexpr T grad_log_floor = T(-1e30);

/// How many tiles ahead of the one being reduced the software prefetch reaches: the next tiles
/// stream in while the exponentials of this one are computed.
inline constexpr index_t prefetch_distance = 2;

/// Coefficients of the float exponential on the reduced argument |r| <= ln2 / 2, highest degree
/// first, constant term 1 (not listed). Degree 5 (`standard`): minimax relative error 1.6e-7 as
/// evaluated in float (under 3 ulp in all, tested in exp_test.cpp). Degree 4 (`fast`): one fused
/// multiply-add fewer, and (where multiply-adds are fused: AVX2, AVX-512, an FMA baseline) a
/// one-step reduction, one more fewer: relative error 2.9e-6 from the polynomial, under 3.5e-6
/// (about 60 u, u = 2^-24) in all, tested likewise.
struct exp_poly {
  static constexpr float d5[5] = {0.008325801230967045f, 0.041908301413059235f,
                                  0.16666938364505768f, 0.49999040365219116f, 1.0f};
  static constexpr float d4[4] = {0.041513849049806595f, 0.16787473857402802f, 0.5000301599502563f,
                                  0.9999668598175049f};
  static constexpr float log2e = 1.44269504088896341f;
  static constexpr float ln2_hi = 0.693359375f;     // ln 2 = ln2_hi + ln2_lo
  static constexpr float ln2_lo = -2.12194440e-4f;  // (Cody-Waite: n ln2_hi is exact)
  /// ln 2 rounded to float, for the fast mode's one-step reduction r = fma(-n, ln2_f, x): it
  /// shifts r by n (ln2_f - ln 2), |n| <= 126, so at most 2.4e-7 (4 u) of relative error more.
  static constexpr float ln2_f = 0.693147182464599609375f;
  static constexpr float max_arg = 88.0f;
};

/// One tile's partial sums per SIMD lane, in double: `s` = sum of weights, `u` = entropy cross
/// term, and for row pairs `sq`, `a`, `b` (see `row_tiles.hpp`), plus the extreme differences of
/// the floored shifted logits (exact detection of zero-mass mismatches). Lanes beyond the packet
/// width stay 0. Every ISA adds a tile's float lanes into these in lane order.
struct lane_sums {
  static constexpr index_t lanes = 16;
  double s[lanes] = {};
  double u[lanes] = {};
  double sq[lanes] = {};
  double a[lanes] = {};
  double b[lanes] = {};
  double dmin = std::numeric_limits<double>::infinity();
  double dmax = -std::numeric_limits<double>::infinity();
};

/// Arguments of one tile of the fused backward (see `backward_row`).
template <class T>
struct backward_tile_args {
  const T* zp = nullptr;
  const T* zq = nullptr;
  T* dzp = nullptr;
  T* dzq = nullptr;  // null: no q gradient
  index_t n = 0;
  T lse = 0;
  T lse_q = 0;
  T c0 = 0;
  T c1 = 0;
  T g_kl = 0;
  bool accumulate = false;
};

/// The tile functions of one instruction set for arithmetic type T (one table per ISA and exp
/// accuracy). Indices: [entropy] and [entropy][kl].
template <class T>
struct tile_kernels {
  T (*max)(const T* x, index_t n) noexcept;
  void (*sums[2])(const T* x, index_t n, T m, double* s, double* u) noexcept;
  void (*pair[2])(const T* zp, const T* zq, index_t n, T mp, T mq, lane_sums& acc) noexcept;
  void (*backward[2][2])(const backward_tile_args<T>& g) noexcept;
  void (*exp)(const T* x, T* y, index_t n) noexcept;  ///< y = exp(x) element-wise (tests)
  /// y[0, n) = x[0, n) widened exactly from the half formats (bf16, fp16) to T.
  void (*widen_bf16)(const Eigen::bfloat16* x, T* y, index_t n) noexcept;
  void (*widen_f16)(const Eigen::half* x, T* y, index_t n) noexcept;
  /// out[0, n) = y[0, n) (or out + y when `add`, in float), rounded to nearest even.
  void (*narrow_bf16)(const T* y, index_t n, Eigen::bfloat16* out, bool add) noexcept;
  void (*narrow_f16)(const T* y, index_t n, Eigen::half* out, bool add) noexcept;
  index_t width;
};

namespace isa_base {

template <class S, bool Fast>
typename S::vec exp_poly_eval(typename S::vec r) noexcept;

/// Eigen packets of the compile-time ISA (the `baseline` path).
template <class T>
struct simd {
  using scalar = T;
  using vec = typename Eigen::internal::packet_traits<T>::type;
  static constexpr index_t width = Eigen::internal::unpacket_traits<vec>::size;
#if defined(EIGEN_VECTORIZE_FMA)
  static constexpr bool fused_madd = true;
#else
  static constexpr bool fused_madd = false;
#endif
  static vec load(const T* p) noexcept {
    return Eigen::internal::ploadu<vec>(p);
  }
  static void store(T* p, const vec& v) noexcept {
    Eigen::internal::pstoreu(p, v);
  }
  static vec set1(T x) noexcept {
    return Eigen::internal::pset1<vec>(x);
  }
  static vec add(const vec& a, const vec& b) noexcept {
    return Eigen::internal::padd(a, b);
  }
  static vec sub(const vec& a, const vec& b) noexcept {
    return Eigen::internal::psub(a, b);
  }
  static vec mul(const vec& a, const vec& b) noexcept {
    return Eigen::internal::pmul(a, b);
  }
  static vec fmadd(const vec& a, const vec& b, const vec& c) noexcept {
    return Eigen::internal::pmadd(a, b, c);
  }
  static vec fnmadd(const vec& a, const vec& b, const vec& c) noexcept {
    return Eigen::internal::psub(c, Eigen::internal::pmul(a, b));
  }
  static vec max(const vec& a, const vec& b) noexcept {
    return Eigen::internal::pmax(a, b);
  }
  static vec min(const vec& a, const vec& b) noexcept {
    return Eigen::internal::pmin(a, b);
  }
  static T hmax(const vec& v) noexcept {
    alignas(64) T t[static_cast<std::size_t>(width)];
    Eigen::internal::pstoreu(t, v);
    T m = t[0];
    for (index_t k = 1; k < width; ++k) m = t[k] > m ? t[k] : m;
    return m;
  }
  /// exp(x), flushed to 0 below the threshold; NaN propagates (pmin keeps a NaN first argument).
  template <bool Fast>
  static vec exp(const vec& x) noexcept {
    using namespace Eigen::internal;  // NOLINT: Eigen's packet primitives
    const vec flush = pcmp_lt(x, pset1<vec>(exp_flush_threshold<T>));
    if constexpr (std::is_same_v<T, float>) {
      using packet_i = typename unpacket_traits<vec>::integer_packet;
      const vec xc = pmin(x, pset1<vec>(exp_poly::max_arg));
      const vec n = print(pmul(xc, pset1<vec>(exp_poly::log2e)));
      vec r;
      // The one-step reduction needs a fused multiply-add (else n ln2_f is rounded: up to 4e-6).
      if constexpr (Fast && fused_madd) {
        r = pmadd(n, pset1<vec>(-exp_poly::ln2_f), xc);
      } else {
        r = pmadd(n, pset1<vec>(-exp_poly::ln2_hi), xc);
        r = pmadd(n, pset1<vec>(-exp_poly::ln2_lo), r);
      }
      const vec y = exp_poly_eval<simd, Fast>(r);
      const packet_i e = plogical_shift_left<23>(pcast<vec, packet_i>(n));
      const vec res = preinterpret<vec>(padd(preinterpret<packet_i>(y), e));
      return pselect(flush, pzero(x), res);
    } else {
      return pselect(flush, pzero(x), pexp(x));
    }
  }
};

#include "prefopt/kernels/detail/row_tiles.hpp"  // IWYU pragma: keep

}  // namespace isa_base
}  // namespace prefopt::kernels::detail

#if defined(PREFOPT_KERNELS_X86_DISPATCH)

// ---- AVX2 + FMA (+ F16C, which every AVX2 CPU has)
// ----------------------------------------------------------------------------------
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#endif

namespace prefopt::kernels::detail::isa_avx2 {

template <class S, bool Fast>
typename S::vec exp_poly_eval(typename S::vec r) noexcept;

struct simd {
  using scalar = float;
  using vec = __m256;
  static constexpr index_t width = 8;
  static vec load(const float* p) noexcept { return _mm256_loadu_ps(p); }
  /// bf16 is the top half of a float: zero-extend each 16-bit value and shift it up.
  static vec load_half(const Eigen::bfloat16* p) noexcept {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  static vec load_half(const Eigen::half* p) noexcept {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  /// Round to nearest even on the bits: add 0x7FFF + the lowest kept bit, keep the top 16 bits;
  /// NaN becomes the quiet NaN 0x7FC0 (as Eigen's scalar conversion does).
  static void store_half(Eigen::bfloat16* p, vec v) noexcept {
    const __m256i b = _mm256_castps_si256(v);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(b, 16), _mm256_set1_epi32(1));
    __m256i r = _mm256_srli_epi32(
        _mm256_add_epi32(b, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7FFF))), 16);
    const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    r = _mm256_blendv_epi8(r, _mm256_set1_epi32(0x7FC0), nan);
    const __m128i h = _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), h);
  }
  static void store_half(Eigen::half* p, vec v) noexcept {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
  }
  static void store(float* p, vec v) noexcept { _mm256_storeu_ps(p, v); }
  static vec set1(float x) noexcept { return _mm256_set1_ps(x); }
  static vec add(vec a, vec b) noexcept { return _mm256_add_ps(a, b); }
  static vec sub(vec a, vec b) noexcept { return _mm256_sub_ps(a, b); }
  static vec mul(vec a, vec b) noexcept { return _mm256_mul_ps(a, b); }
  static vec fmadd(vec a, vec b, vec c) noexcept { return _mm256_fmadd_ps(a, b, c); }
  static vec fnmadd(vec a, vec b, vec c) noexcept { return _mm256_fnmadd_ps(a, b, c); }
  static vec max(vec a, vec b) noexcept { return _mm256_max_ps(a, b); }
  static vec min(vec a, vec b) noexcept { return _mm256_min_ps(a, b); }
  static float hmax(vec v) noexcept {
    alignas(32) float t[8];
    _mm256_store_ps(t, v);
    float m = t[0];
    for (int k = 1; k < 8; ++k) m = t[k] > m ? t[k] : m;
    return m;
  }
  template <bool Fast>
  static vec exp(vec x) noexcept {
    // min(88, x) returns x when x is NaN (the second operand), so NaN propagates.
    const vec xc = _mm256_min_ps(_mm256_set1_ps(exp_poly::max_arg), x);
    const vec n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(exp_poly::log2e)),
                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    vec r;
    if constexpr (Fast) {
      r = _mm256_fnmadd_ps(n, _mm256_set1_ps(exp_poly::ln2_f), xc);
    } else {
      r = _mm256_fnmadd_ps(n, _mm256_set1_ps(exp_poly::ln2_hi), xc);
      r = _mm256_fnmadd_ps(n, _mm256_set1_ps(exp_poly::ln2_lo), r);
    }
    const vec y = exp_poly_eval<simd, Fast>(r);
    const __m256i e = _mm256_slli_epi32(_mm256_cvtps_epi32(n), 23);
    const vec res = _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(y), e));
    // keep = !(x < threshold): true for NaN.
    const vec keep = _mm256_cmp_ps(x, _mm256_set1_ps(exp_flush_threshold<float>), _CMP_NLT_UQ);
    return _mm256_and_ps(keep, res);
  }
};

#include "prefopt/kernels/detail/row_tiles.hpp"  // IWYU pragma: keep

}  // namespace prefopt::kernels::detail::isa_avx2

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

// ---- AVX-512F
// --------------------------------------------------------------------------------------
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx2,fma")
#endif

namespace prefopt::kernels::detail::isa_avx512 {

template <class S, bool Fast>
typename S::vec exp_poly_eval(typename S::vec r) noexcept;

struct simd {
  using scalar = float;
  using vec = __m512;
  static constexpr index_t width = 16;
  static constexpr __mmask16 all = 0xFFFF;
  static vec load(const float* p) noexcept { return _mm512_loadu_ps(p); }
  static vec load_half(const Eigen::bfloat16* p) noexcept {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    // Zero-masked forms with a full mask, for the reason given at `max` below.
    return _mm512_castsi512_ps(
        _mm512_maskz_slli_epi32(all, _mm512_maskz_cvtepu16_epi32(all, h), 16));
  }
  static vec load_half(const Eigen::half* p) noexcept {
    return _mm512_maskz_cvtph_ps(all, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  /// As the AVX2 version: round to nearest even on the bits, NaN to 0x7FC0.
  static void store_half(Eigen::bfloat16* p, vec v) noexcept {
    const __m512i b = _mm512_castps_si512(v);
    const __m512i lsb = _mm512_and_si512(_mm512_maskz_srli_epi32(all, b, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_maskz_srli_epi32(
        all, _mm512_add_epi32(b, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF))), 16);
    const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    r = _mm512_mask_mov_epi32(r, nan, _mm512_set1_epi32(0x7FC0));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_maskz_cvtepi32_epi16(all, r));
  }
  static void store_half(Eigen::half* p, vec v) noexcept {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p),
                        _mm512_maskz_cvtps_ph(all, v, _MM_FROUND_TO_NEAREST_INT));
  }
  static void store(float* p, vec v) noexcept { _mm512_storeu_ps(p, v); }
  static vec set1(float x) noexcept { return _mm512_set1_ps(x); }
  static vec add(vec a, vec b) noexcept { return _mm512_add_ps(a, b); }
  static vec sub(vec a, vec b) noexcept { return _mm512_sub_ps(a, b); }
  static vec mul(vec a, vec b) noexcept { return _mm512_mul_ps(a, b); }
  static vec fmadd(vec a, vec b, vec c) noexcept { return _mm512_fmadd_ps(a, b, c); }
  static vec fnmadd(vec a, vec b, vec c) noexcept { return _mm512_fnmadd_ps(a, b, c); }
  // The merge-masked forms with a full mask are the same instructions as _mm512_max_ps etc.,
  // which GCC 12 builds on _mm512_undefined_ps and then reports as uninitialised reads.
  static vec max(vec a, vec b) noexcept { return _mm512_mask_max_ps(a, all, a, b); }
  static vec min(vec a, vec b) noexcept { return _mm512_mask_min_ps(a, all, a, b); }
  static float hmax(vec v) noexcept {
    alignas(64) float t[16];
    _mm512_store_ps(t, v);
    float m = t[0];
    for (int k = 1; k < 16; ++k) m = t[k] > m ? t[k] : m;
    return m;
  }
  template <bool Fast>
  static vec exp(vec x) noexcept {
    const vec xc = min(_mm512_set1_ps(exp_poly::max_arg), x);
    const vec t = _mm512_mul_ps(xc, _mm512_set1_ps(exp_poly::log2e));
    const vec n =
        _mm512_mask_roundscale_ps(t, all, t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    vec r;
    if constexpr (Fast) {
      r = _mm512_fnmadd_ps(n, _mm512_set1_ps(exp_poly::ln2_f), xc);
    } else {
      r = _mm512_fnmadd_ps(n, _mm512_set1_ps(exp_poly::ln2_hi), xc);
      r = _mm512_fnmadd_ps(n, _mm512_set1_ps(exp_poly::ln2_lo), r);
    }
    const vec y = exp_poly_eval<simd, Fast>(r);
    // keep = !(x < threshold): true for NaN. scalef(y, n) = y 2^n exactly (y in [0.7, 1.5]).
    const __mmask16 keep =
        _mm512_cmp_ps_mask(x, _mm512_set1_ps(exp_flush_threshold<float>), _CMP_NLT_UQ);
    return _mm512_maskz_scalef_ps(keep, y, n);
  }
};

#include "prefopt/kernels/detail/row_tiles.hpp"  // IWYU pragma: keep

}  // namespace prefopt::kernels::detail::isa_avx512

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#endif  // PREFOPT_KERNELS_X86_DISPATCH

#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
