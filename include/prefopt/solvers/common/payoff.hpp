#pragma once
/// \file
/// How a tabular solver obtains the payoff vector `r(y) = P(y > pi') = (P pi')_y` of every response
/// against an opponent policy `pi'` (one context). Chosen as a template parameter of the solver:
///
/// - `exact_payoff`: `r = P pi'`, one matrix-vector product.
/// - `sampled_payoff{samples}`: mimics what LLM-scale methods see. It draws `m = samples`
///   opponent responses `y'_1..y'_m ~ pi'` (one categorical draw each, from a seeded
///   `prefopt::rng`), pairs every response `y` with each of them and asks the preference oracle
///   for a Bernoulli label `o ~ Bernoulli(P(y > y'_j))`; the estimate is
///   `r_hat(y) = (1/m) sum_j o(y, y'_j)`, unbiased with variance `<= 1/(4m)` and values in
///   [0, 1], so Nash-MD's `2 eta^2` one-step bound holds in expectation. Cost `O(n m)` per
///   context, no matrix product. The opponent draws use an inverse-CDF table, built once per call.
/// Both write into caller-owned buffers (no allocation per step once the workspace is sized).

#include <Eigen/Core>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "prefopt/core/assert.hpp"
#include "prefopt/core/random.hpp"
#include "prefopt/core/types.hpp"

namespace prefopt {

/// Per-run scratch of a payoff estimator (sized in `init`).
struct payoff_workspace {
  vector_d cdf;
  std::vector<index_t> draws;
};

/// `r = P pi'` exactly.
struct exact_payoff {
  static constexpr bool is_sampled = false;

  void resize(payoff_workspace& /*w*/, index_t /*n*/) const {}

  template <class Opp, class Out>
  void operator()(const matrix_d& p, const Opp& opponent, Out&& out, rng& /*gen*/,
                  payoff_workspace& /*w*/) const {
    out.noalias() = p * opponent;
  }
};

/// Monte-Carlo payoff with Bernoulli preference labels (see the file comment).
struct sampled_payoff {
  static constexpr bool is_sampled = true;

  /// Opponent samples per context and step (`m`).
  index_t samples = 16;
  /// Seed of the solver's random stream (stream = context-independent, one per run).
  std::uint64_t seed = 0;

  void resize(payoff_workspace& w, index_t n) const {
    PREFOPT_CHECK(samples > 0, invalid_argument, "sampled_payoff: samples = ", samples,
                  ", expected samples > 0");
    w.cdf.resize(n);
    w.draws.resize(static_cast<std::size_t>(samples));
  }

  template <class Opp, class Out>
  void operator()(const matrix_d& p, const Opp& opponent, Out&& out, rng& gen,
                  payoff_workspace& w) const {
    const index_t n = p.rows();
    double total = 0.0;
    for (index_t i = 0; i < n; ++i) {
      total += opponent[i];
      w.cdf[i] = total;
    }
    for (auto& d : w.draws) {
      const double u = gen.uniform() * total;
      const double* first = w.cdf.data();
      const auto pos = std::upper_bound(first, first + n, u) - first;
      d = std::min<index_t>(pos, n - 1);
    }
    const double scale = 1.0 / static_cast<double>(samples);
    for (index_t y = 0; y < n; ++y) {
      int wins = 0;
      for (const index_t d : w.draws) wins += gen.bernoulli(p(y, d)) ? 1 : 0;
      out[y] = scale * static_cast<double>(wins);
    }
  }
};

}  // namespace prefopt
