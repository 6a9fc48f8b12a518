#pragma once
/// \file
/// Ragged reductions: per-sequence sums and length-averaged means of per-token values, and their
/// gradients. This is what turns per-token log-probs into the sequence log-probs `S(y) = sum_t l_t`
/// of DPO (ALGORITHMS.md §3.1) and the averaged `S(y) / max(|y|, 1)` of length-averaged DPO (§3.2,
/// Grinsztajn et al., "Averaging log-likelihoods in direct alignment", arXiv 2406.19188; TRL
/// `sigmoid_norm`), convention §0.2.2.
///
/// Sequence i is `values[offsets[i], offsets[i+1])` (`prefopt::ragged_view`). Sums are accumulated
/// in double, in token order, so a sequence's result is bitwise independent of the other sequences
/// and of how the batch was assembled. An empty sequence sums to 0 and averages to 0. No
/// allocation.

#include <cstddef>
#include <cstdint>
#include <span>

#include "prefopt/core/assert.hpp"
#include "prefopt/core/types.hpp"
#include "prefopt/kernels/options.hpp"

namespace prefopt::kernels {

namespace detail {

/// Sum (in double, in token order) and count of `values[b, e)` where `mask` is empty or nonzero
/// (`mask` indexed like `values`). The one ragged summation of prefopt: `ragged_sum`,
/// `ragged_mean` and `losses::sequence_sums` all use it.
struct masked_sum {
  double sum = 0;
  index_t count = 0;
};

template <class T>
[[nodiscard]] masked_sum sum_range(std::span<const T> values, std::span<const std::uint8_t> mask,
                                   std::size_t b, std::size_t e) noexcept {
  masked_sum r;
  for (std::size_t t = b; t < e; ++t) {
    if (!mask.empty() && mask[t] == 0) continue;
    r.sum += static_cast<double>(values[t]);
    ++r.count;
  }
  return r;
}

template <class T>
void ragged_reduce(const char* kernel, ragged_view<const T> values, std::span<T> out, bool mean) {
  values.validate(kernel, "values");
  PREFOPT_CHECK(static_cast<index_t>(out.size()) == values.num_sequences(), shape_error, kernel,
                ": out has ", out.size(), " entries, expected one per sequence (",
                values.num_sequences(), ")");
  for (index_t i = 0; i < values.num_sequences(); ++i) {
    const auto b = static_cast<std::size_t>(values.offsets[static_cast<std::size_t>(i)]);
    const auto e = static_cast<std::size_t>(values.offsets[static_cast<std::size_t>(i) + 1]);
    double s = sum_range<T>(values.values, {}, b, e).sum;
    const auto len = values.length(i);
    if (mean && len > 1) s /= static_cast<double>(len);
    out[static_cast<std::size_t>(i)] = static_cast<T>(s);
  }
}

template <class T>
void ragged_reduce_backward(const char* kernel, std::span<const index_t> offsets,
                            std::span<const T> grad, std::span<T> d_values, write_mode mode,
                            bool mean) {
  const ragged_view<T> d{offsets, d_values};
  d.validate(kernel, "d_values");
  PREFOPT_CHECK(static_cast<index_t>(grad.size()) == d.num_sequences(), shape_error, kernel,
                ": grad has ", grad.size(), " entries, expected one per sequence (",
                d.num_sequences(), ")");
  for (index_t i = 0; i < d.num_sequences(); ++i) {
    const auto len = d.length(i);
    T g = grad[static_cast<std::size_t>(i)];
    if (mean && len > 1) g = static_cast<T>(static_cast<double>(g) / static_cast<double>(len));
    for (T& x : d.sequence(i)) x = mode == write_mode::accumulate ? x + g : g;
  }
}
}  // namespace detail

/// out[i] = sum of sequence i (`[num_sequences]`).
template <class T>
void ragged_sum(ragged_view<const T> values, std::span<T> out) {
  detail::ragged_reduce("ragged_sum", values, out, false);
}

/// out[i] = (sum of sequence i) / max(length_i, 1).
template <class T>
void ragged_mean(ragged_view<const T> values, std::span<T> out) {
  detail::ragged_reduce("ragged_mean", values, out, true);
}

/// d_values[t] (= or +=) grad[i] for every token t of sequence i; tokens outside every sequence
/// are untouched. `offsets` as in the forward; `d_values` spans the forward's `values`.
template <class T>
void ragged_sum_backward(std::span<const index_t> offsets, std::span<const T> grad,
                         std::span<T> d_values, write_mode mode = write_mode::overwrite) {
  detail::ragged_reduce_backward("ragged_sum_backward", offsets, grad, d_values, mode, false);
}

/// d_values[t] (= or +=) grad[i] / max(length_i, 1) for every token t of sequence i.
template <class T>
void ragged_mean_backward(std::span<const index_t> offsets, std::span<const T> grad,
                          std::span<T> d_values, write_mode mode = write_mode::overwrite) {
  detail::ragged_reduce_backward("ragged_mean_backward", offsets, grad, d_values, mode, true);
}

}  // namespace prefopt::kernels
