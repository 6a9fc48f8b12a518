#pragma once
// One row of the two-matrix token_stats checked against the long-double reference within the
// documented float bounds of kernels/options.hpp (shared by the ISA and the half-format tests).

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>

#include "kernel_reference.hpp"

namespace prefopt::test {

/// Outputs of one row: log p(target), lse of p, entropy, KL(p||q), KL(q||p), lse of q.
struct stats_row {
  float lp, lse, h, kl, klr, lseq;
};

/// Checks `got` for the float rows `z`, `zq` of length v with target `t`; c = 150 (standard exp)
/// or 300 (fast exp).
inline void check_stats_row(const float* z, const float* zq, index_t v, token_id t, double c,
                            const stats_row& got) {
  const double u = unit_roundoff<float>();
  const double logv = std::log(static_cast<double>(v));
  const ld rl = ref_lse(z, v);
  CHECK(err(got.lse, rl) <= u * (std::abs(static_cast<double>(rl)) + logv + c));
  const ld rq = ref_lse(zq, v);
  CHECK(err(got.lseq, rq) <= u * (std::abs(static_cast<double>(rq)) + logv + c));
  if (!std::isinf(z[t])) {
    const ld r = static_cast<ld>(z[t]) - rl;
    CHECK(err(got.lp, r) <= u * (std::abs(static_cast<double>(r)) + logv + c));
  }
  const ld rh = ref_entropy(z, v);
  CHECK(err(got.h, rh) <= u * (logv + c) * (1 + static_cast<double>(rh) + logv));
  double spread = 0;  // max |zp - zq| over entries where both are finite
  for (index_t j = 0; j < v; ++j) {
    const double d = static_cast<double>(z[j]) - static_cast<double>(zq[j]);
    if (std::isfinite(d)) spread = std::max(spread, std::abs(d));
  }
  CHECK(err(got.kl, ref_kl(z, zq, v)) <= u * (logv + c) * (2 + spread));
  CHECK(err(got.klr, ref_kl(zq, z, v)) <= u * (logv + c) * (2 + spread));
}

}  // namespace prefopt::test
