#pragma once
/// \file
/// Shared vocabulary of `prefopt::losses`: the reduction convention, argument checks, and the two
/// ragged helpers every sequence-level loss uses (sequence sums from per-token log-probs, and the
/// spreading of a sequence gradient back onto its tokens).
///
/// Conventions (ALGORITHMS.md §0.2):
/// - A sequence log-prob is the sum over *response* tokens only. Ragged views here cover response
///   tokens; an optional per-token mask (1 = response token, 0 = prompt or padding) lets callers
///   pass padded buffers, and masked positions contribute exactly 0 (their values are never read).
/// - Length averaging divides by the sequence's own length clamped to `max(L, 1)`.
/// - Every loss in this namespace returns its value reduced as documented and writes gradients of
///   *that reduced value* into caller buffers (`reduction::mean`: the batch mean, the default;
///   `reduction::sum`: the sum, i.e. per-element gradients).
///
/// Everything lives in `namespace prefopt::losses`; functions are templated on the scalar type
/// (`float` or `double`), take Eigen `Ref`s / spans over caller memory and never allocate unless
/// stated. Functions whose arguments are all Eigen objects take the scalar type explicitly
/// (`bradley_terry_loss<double>(...)`, `ppo_policy_loss<float>(...)`: Eigen `Ref` parameters cannot
/// deduce it); functions taking a `ragged_view<const T>` or `dpo_inputs<T>` deduce it.

#include <Eigen/Core>

#include <cmath>
#include <cstdint>
#include <span>
#include <type_traits>

#include "prefopt/core/assert.hpp"
#include "prefopt/core/types.hpp"
#include "prefopt/kernels/ragged.hpp"

namespace prefopt::losses {

/// How per-element losses are combined into the returned value (and hence the gradient scale).
enum class reduction {
  mean,  ///< batch mean (prefopt's default, ALGORITHMS.md §0.2 item 4)
  sum,   ///< plain sum: gradients are the per-element gradients
};

namespace detail {

/// Non-deduced Eigen argument types (the scalar is deduced from another argument or given).
template <class T>
using cref_t = std::type_identity_t<Eigen::Ref<const vector_t<T>>>;
template <class T>
using ref_t = std::type_identity_t<Eigen::Ref<vector_t<T>>>;

/// Throws unless `a` and `b` hold the same number of sequences with equal lengths.
template <class A, class B>
void check_same_layout(const char* function, const char* name_a, const ragged_view<A>& a,
                       const char* name_b, const ragged_view<B>& b) {
  PREFOPT_CHECK(a.num_sequences() == b.num_sequences(), shape_error, function, ": ", name_b,
                " has ", b.num_sequences(), " sequences, expected ", a.num_sequences(), " (as ",
                name_a, ")");
  for (index_t i = 0; i < a.num_sequences(); ++i) {
    PREFOPT_CHECK(a.length(i) == b.length(i), shape_error, function, ": sequence ", i, " of ",
                  name_b, " has length ", b.length(i), ", expected ", a.length(i), " (as ", name_a,
                  ")");
  }
}

/// 1/n for `reduction::mean`, 1 for `reduction::sum` (n > 0).
template <class T>
[[nodiscard]] T reduction_scale(reduction r, index_t n) noexcept {
  return r == reduction::mean && n > 0 ? T(1) / static_cast<T>(n) : T(1);
}

inline void check_size(const char* function, const char* argument, index_t size, index_t expected) {
  PREFOPT_CHECK(size == expected, shape_error, function, ": ", argument, " has size ", size,
                ", expected ", expected);
}

/// Throws `invalid_argument` naming the first non-finite entry of `v`.
template <class Derived>
void check_finite(const char* function, const char* argument, const Eigen::DenseBase<Derived>& v) {
  for (index_t i = 0; i < v.size(); ++i) {
    const auto x = v.derived().coeff(i);
    PREFOPT_CHECK(std::isfinite(x), invalid_argument, function, ": ", argument, "[", i, "] = ", x,
                  ", expected a finite value");
  }
}

/// Throws unless `x` is finite and `lo <= x` (or `lo < x` when `strict`).
inline void check_lower(const char* function, const char* argument, double x, double lo,
                        bool strict) {
  PREFOPT_CHECK(std::isfinite(x) && (strict ? x > lo : x >= lo), invalid_argument, function, ": ",
                argument, " = ", x, ", expected a finite value ", strict ? "> " : ">= ", lo);
}

/// `max(L, 1)` as the scalar type (ALGORITHMS.md §0.2 item 2).
template <class T>
[[nodiscard]] T clamped_length(index_t length) noexcept {
  return static_cast<T>(length < 1 ? index_t{1} : length);
}

}  // namespace detail

/// Per-sequence sums and lengths of ragged per-token values.
///
/// `sums[i] = sum_{t in seq i, mask[t] = 1} token_values[t]`, `lengths[i]` = number of counted
/// tokens. `mask` is either empty (every token counts) or has one entry per element of
/// `token_values.values` (indexed like it; 0 = prompt/padding, anything else = response token).
/// Masked values are never read, so they may hold anything (even NaN). Accumulated in double in
/// token order and rounded once to T: the same summation as `kernels::ragged_sum`.
/// Shapes: `sums` and `lengths` have `token_values.num_sequences()` entries.
template <class T>
void sequence_sums(ragged_view<const T> token_values, std::span<const std::uint8_t> mask,
                   Eigen::Ref<vector_t<T>> sums, std::span<index_t> lengths) {
  constexpr const char* fn = "sequence_sums";
  token_values.validate(fn, "token_values");
  const index_t n = token_values.num_sequences();
  detail::check_size(fn, "sums", sums.size(), n);
  detail::check_size(fn, "lengths", static_cast<index_t>(lengths.size()), n);
  if (!mask.empty()) {
    detail::check_size(fn, "mask", static_cast<index_t>(mask.size()),
                       static_cast<index_t>(token_values.values.size()));
  }
  for (index_t i = 0; i < n; ++i) {
    const auto b = static_cast<std::size_t>(token_values.offsets[static_cast<std::size_t>(i)]);
    const auto e = static_cast<std::size_t>(token_values.offsets[static_cast<std::size_t>(i) + 1]);
    const auto r = kernels::detail::sum_range<T>(token_values.values, mask, b, e);
    sums(i) = static_cast<T>(r.sum);
    lengths[static_cast<std::size_t>(i)] = r.count;
  }
}

/// Spreads sequence-level gradients onto tokens: `token_grads[t] = sequence_grads[i]` for every
/// (unmasked) token `t` of sequence `i`, since `dS_i / dl_t = 1` for `S_i = sum_t l_t`; masked
/// positions (mask entry 0) receive exactly 0. Elements of `token_grads.values` outside every
/// sequence are left untouched.
///
/// When a loss already used length averaging, its gradient with respect to `S_i` already carries
/// the `1/max(L_i, 1)` factor (e.g. DPO: `dL/dl_t^w = -beta_dpo sigma(-u)/n_w`), so plain spreading
/// is right. `divide_by_length = true` additionally divides by `max(L_i, 1)` (L_i = unmasked
/// count): use it for losses defined on mean-token log-likelihoods whose gradient was taken with
/// respect to the mean (HIR contrast).
template <class T>
void spread_sequence_gradients(const Eigen::Ref<const vector_t<T>>& sequence_grads,
                               ragged_view<T> token_grads, std::span<const std::uint8_t> mask = {},
                               bool divide_by_length = false) {
  constexpr const char* fn = "spread_sequence_gradients";
  token_grads.validate(fn, "token_grads");
  const index_t n = token_grads.num_sequences();
  detail::check_size(fn, "sequence_grads", sequence_grads.size(), n);
  if (!mask.empty()) {
    detail::check_size(fn, "mask", static_cast<index_t>(mask.size()),
                       static_cast<index_t>(token_grads.values.size()));
  }
  for (index_t i = 0; i < n; ++i) {
    const auto b = static_cast<std::size_t>(token_grads.offsets[static_cast<std::size_t>(i)]);
    const auto e = static_cast<std::size_t>(token_grads.offsets[static_cast<std::size_t>(i) + 1]);
    T g = sequence_grads(i);
    if (divide_by_length) {
      index_t count = 0;
      for (std::size_t t = b; t < e; ++t) count += (mask.empty() || mask[t] != 0) ? 1 : 0;
      g /= detail::clamped_length<T>(count);
    }
    for (std::size_t t = b; t < e; ++t) {
      token_grads.values[t] = (mask.empty() || mask[t] != 0) ? g : T(0);
    }
  }
}

}  // namespace prefopt::losses
