#pragma once
/// \file
/// FNV-1a 64-bit hashing, used for dataset fingerprints and the reference log-prob cache checksum.
///
/// Algorithm (Fowler-Noll-Vo, variant 1a, 64 bit): `h = 14695981039346656037`; for each byte `b`:
/// `h = (h xor b) * 1099511628211 mod 2^64`. Each step is a bijection of `h` for a fixed byte and
/// changes `h` when the byte changes, so any single changed byte changes the final hash (it is
/// not a cryptographic hash: it guards against corruption, not against an adversary).
/// Multi-byte integers are fed little-endian so hashes are identical on every platform; doubles
/// are fed as their IEEE-754 bit pattern.

#include <bit>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>

namespace prefopt::data {

/// Incremental FNV-1a 64 hasher.
class fnv1a64 {
 public:
  static constexpr std::uint64_t offset_basis = 14695981039346656037ULL;
  static constexpr std::uint64_t prime = 1099511628211ULL;

  /// Feeds raw bytes.
  constexpr fnv1a64& update(std::span<const unsigned char> bytes) noexcept {
    for (const unsigned char b : bytes) {
      state_ ^= b;
      state_ *= prime;
    }
    return *this;
  }
  /// Feeds the bytes of a string (no terminator, no length prefix).
  fnv1a64& update(std::string_view text) noexcept {
    for (const char c : text) update_byte(static_cast<unsigned char>(c));
    return *this;
  }
  /// Feeds a 64-bit unsigned integer, little-endian.
  constexpr fnv1a64& update_u64(std::uint64_t x) noexcept {
    for (int i = 0; i < 8; ++i) update_byte(static_cast<unsigned char>((x >> (8 * i)) & 0xffU));
    return *this;
  }
  /// Feeds a 32-bit signed integer, little-endian two's complement.
  constexpr fnv1a64& update_i32(std::int32_t x) noexcept {
    const auto u = static_cast<std::uint32_t>(x);
    for (int i = 0; i < 4; ++i) update_byte(static_cast<unsigned char>((u >> (8 * i)) & 0xffU));
    return *this;
  }
  /// Feeds a double's IEEE-754 bit pattern, little-endian.
  constexpr fnv1a64& update_f64(double x) noexcept {
    return update_u64(std::bit_cast<std::uint64_t>(x));
  }

  [[nodiscard]] constexpr std::uint64_t value() const noexcept { return state_; }

 private:
  constexpr void update_byte(unsigned char b) noexcept {
    state_ ^= b;
    state_ *= prime;
  }
  std::uint64_t state_ = offset_basis;
};

/// FNV-1a 64 of a byte string (e.g. `fnv1a64_of("a") == 0xaf63dc4c8601ec8c`).
[[nodiscard]] inline std::uint64_t fnv1a64_of(std::string_view bytes) noexcept {
  return fnv1a64{}.update(bytes).value();
}

}  // namespace prefopt::data
