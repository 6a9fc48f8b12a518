#pragma once
/// \file
/// Seeded random numbers whose streams are identical on every platform and standard library.
///
/// `std::mt19937_64` is portable but the `std::` distributions are implementation-defined, so the
/// same seed gives different samples under libstdc++, libc++ and MSVC. prefopt therefore fixes both
/// the generator and the samplers:
///
/// - generator: xoshiro256** (Blackman and Vigna, "Scrambled linear pseudorandom number
///   generators", arXiv 1805.01407), state seeded from `(seed, stream)` through splitmix64;
/// - `uniform()`: the top 53 bits scaled by 2^-53, exactly representable, in [0, 1);
/// - `uniform_index(n)`: Lemire's multiply-and-reject method (arXiv 1805.10941), unbiased;
/// - `bernoulli(p)`, `categorical(w)`, `shuffle`: built on the two above, no `std::` distribution.
///
/// Integer, uniform, Bernoulli, categorical and shuffle streams are bit-identical everywhere.
/// `normal()` uses `std::log`, `std::sqrt` and `std::cos` (Box-Muller, two uniforms per sample):
/// its stream is bit-identical wherever those are correctly rounded (glibc on x86-64) and within an
/// ulp elsewhere. Not cryptographically secure.

#include <Eigen/Core>

#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <span>
#include <tuple>
#include <utility>

#include "prefopt/core/assert.hpp"
#include "prefopt/core/types.hpp"

namespace prefopt {

namespace detail {
/// splitmix64 step (Steele, Lea and Flood 2014): used only to expand seeds into state.
constexpr std::uint64_t splitmix64(std::uint64_t& x) noexcept {
  std::uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30U)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27U)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31U);
}

/// Full 64x64 -> 128-bit product as (high, low) words, in portable C++.
constexpr std::pair<std::uint64_t, std::uint64_t> mul_64x64(std::uint64_t a,
                                                            std::uint64_t b) noexcept {
  const std::uint64_t a_lo = a & 0xffffffffULL, a_hi = a >> 32U;
  const std::uint64_t b_lo = b & 0xffffffffULL, b_hi = b >> 32U;
  const std::uint64_t lo_lo = a_lo * b_lo, hi_lo = a_hi * b_lo, lo_hi = a_lo * b_hi;
  const std::uint64_t cross = (lo_lo >> 32U) + (hi_lo & 0xffffffffULL) + lo_hi;
  const std::uint64_t high = a_hi * b_hi + (hi_lo >> 32U) + (cross >> 32U);
  const std::uint64_t low = (cross << 32U) | (lo_lo & 0xffffffffULL);
  return {high, low};
}
}  // namespace detail

/// The prefopt random-number generator: xoshiro256** with portable samplers.
///
/// `rng(seed, stream)` gives independent-looking streams for different `stream` values under the
/// same seed (use one stream per solver, per run, per worker). Satisfies
/// `std::uniform_random_bit_generator`, but prefer its own samplers for reproducibility.
class rng {
 public:
  using result_type = std::uint64_t;

  explicit rng(std::uint64_t seed = 0, std::uint64_t stream = 0) noexcept {
    std::uint64_t x = seed ^ (stream * 0xd1b54a32d192ed03ULL + 0x8bb84b93962eacc9ULL);
    for (auto& s : state_) s = detail::splitmix64(x);
  }

  /// A generator with the given raw xoshiro256** state (not all zero); for known-answer tests and
  /// for resuming a saved stream.
  static rng from_state(const std::array<std::uint64_t, 4>& state) {
    PREFOPT_CHECK(state[0] != 0 || state[1] != 0 || state[2] != 0 || state[3] != 0,
                  invalid_argument, "rng::from_state: state is all zero, expected a nonzero word");
    rng g;
    for (std::size_t i = 0; i < 4; ++i) g.state_[i] = state[i];
    return g;
  }

  /// The raw state (to save and later resume a stream with `from_state`).
  [[nodiscard]] std::array<std::uint64_t, 4> state() const noexcept {
    return {state_[0], state_[1], state_[2], state_[3]};
  }

  static constexpr result_type min() noexcept { return 0; }
  static constexpr result_type max() noexcept { return ~result_type{0}; }

  /// Next 64 random bits.
  result_type operator()() noexcept {
    const std::uint64_t result = std::rotl(state_[1] * 5U, 7) * 9U;
    const std::uint64_t t = state_[1] << 17U;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = std::rotl(state_[3], 45);
    return result;
  }

  /// Uniform double in [0, 1) with 53 random bits.
  double uniform() noexcept { return static_cast<double>((*this)() >> 11U) * 0x1.0p-53; }

  /// Uniform double in [lo, hi).
  double uniform(double lo, double hi) noexcept { return lo + (hi - lo) * uniform(); }

  /// Uniform integer in [0, n), unbiased; `n` must be positive.
  index_t uniform_index(index_t n) {
    PREFOPT_CHECK(n > 0, invalid_argument, "rng::uniform_index: n = ", n, ", expected n > 0");
    const auto range = static_cast<std::uint64_t>(n);
    auto [high, low] = detail::mul_64x64((*this)(), range);
    if (low < range) {
      const std::uint64_t threshold = (0 - range) % range;
      while (low < threshold) std::tie(high, low) = detail::mul_64x64((*this)(), range);
    }
    return static_cast<index_t>(high);
  }

  /// True with probability `p` (clamped to [0, 1]); consumes exactly one draw.
  bool bernoulli(double p) noexcept { return uniform() < p; }

  /// Standard normal sample (Box-Muller; consumes exactly two draws).
  double normal() noexcept {
    const double u1 = 1.0 - uniform();  // (0, 1]
    const double u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
  }

  /// Index drawn with probability proportional to `weights[i]` (non-negative, finite, positive
  /// sum); inverse CDF by a left-to-right scan, one draw. Never returns an index of zero weight.
  template <class Derived>
  index_t categorical(const Eigen::DenseBase<Derived>& weights) {
    const index_t n = weights.size();
    PREFOPT_CHECK(n > 0, invalid_argument, "rng::categorical: weights is empty");
    double total = 0.0;
    for (index_t i = 0; i < n; ++i) {
      const double w = static_cast<double>(weights.derived().coeff(i));
      PREFOPT_CHECK(w >= 0.0 && std::isfinite(w), invalid_argument, "rng::categorical: weights[", i,
                    "] = ", w, ", expected a finite non-negative weight");
      total += w;
    }
    PREFOPT_CHECK(total > 0.0, invalid_argument, "rng::categorical: weights sum to 0");
    return categorical(weights, total);
  }

  /// The same draw from weights already known to be finite and non-negative, `total` their sum
  /// (finite, > 0; computed by the caller, e.g. beside the weights in one pass).
  template <class Derived>
  index_t categorical(const Eigen::DenseBase<Derived>& weights, double total) {
    PREFOPT_CHECK(total > 0.0 && std::isfinite(total), invalid_argument,
                  "rng::categorical: total = ", total, ", expected a finite sum > 0");
    const index_t n = weights.size();
    const double u = uniform() * total;
    double cumulative = 0.0;
    index_t last_positive = 0;
    for (index_t i = 0; i < n; ++i) {
      const double w = static_cast<double>(weights.derived().coeff(i));
      if (w <= 0.0) continue;
      cumulative += w;
      last_positive = i;
      if (u < cumulative) return i;
    }
    return last_positive;  // u landed in the rounding slack at the top
  }

  /// Fisher-Yates shuffle of `values` (portable, unlike `std::shuffle`).
  template <class T>
  void shuffle(std::span<T> values) {
    for (std::size_t i = values.size(); i > 1; --i) {
      const auto j = static_cast<std::size_t>(uniform_index(static_cast<index_t>(i)));
      std::swap(values[i - 1], values[j]);
    }
  }

 private:
  std::uint64_t state_[4]{};
};

}  // namespace prefopt
