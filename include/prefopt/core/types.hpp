#pragma once
/// \file
/// Core vocabulary: index and scalar aliases, Eigen aliases and maps, and batch views.
///
/// Batch views are non-owning: they point into the caller's memory, cost nothing to copy, and never
/// allocate. Ragged data (sequences of different lengths) is stored as one flat array plus offsets:
/// sequence `i` occupies `values[offsets[i], offsets[i+1])`, so `offsets` has one more entry than
/// there are sequences and must be non-decreasing.

#include <Eigen/Core>

#include <cstdint>
#include <span>
#include <type_traits>

#include "prefopt/core/assert.hpp"

namespace prefopt {

/// Signed index type used throughout (Eigen's).
using index_t = Eigen::Index;
/// The former name of `index_t`. It collided with POSIX `index()` (declared by <strings.h>, which
/// <cstring> includes on glibc) under `using namespace prefopt;`; kept for one release.
using index [[deprecated("use prefopt::index_t")]] = index_t;
/// Token identifiers, as produced by tokenizers and stored in datasets: 32-bit signed.
using token_id = std::int32_t;

template <class T>
using vector_t = Eigen::Matrix<T, Eigen::Dynamic, 1>;
template <class T>
using matrix_t = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;
/// Row-major matrix: row `i` is contiguous (logits `[N, V]`, tabular tables `[contexts, actions]`).
template <class T>
using row_matrix_t = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

using vector_d = vector_t<double>;
using vector_f = vector_t<float>;
using matrix_d = matrix_t<double>;
using row_matrix_d = row_matrix_t<double>;
using row_matrix_f = row_matrix_t<float>;

/// Maps over caller memory (the types kernels and losses take).
template <class T>
using row_matrix_map = Eigen::Map<row_matrix_t<T>>;
template <class T>
using const_row_matrix_map = Eigen::Map<const row_matrix_t<T>>;
template <class T>
using vector_map = Eigen::Map<vector_t<T>>;
template <class T>
using const_vector_map = Eigen::Map<const vector_t<T>>;

/// A ragged batch: `num_sequences()` sequences stored back to back in `values`.
///
/// `offsets` has `num_sequences() + 1` entries, non-decreasing, with `offsets.back() <=
/// values.size()`; `offsets.front()` need not be 0 (a view may start inside a larger buffer).
/// `validate` checks all of this once, at an API boundary; accessors only `PREFOPT_ASSERT`.
template <class T>
struct ragged_view {
  std::span<const index_t> offsets;
  std::span<T> values;

  [[nodiscard]] index_t num_sequences() const noexcept {
    return offsets.empty() ? 0 : static_cast<index_t>(offsets.size()) - 1;
  }
  [[nodiscard]] index_t length(index_t i) const {
    PREFOPT_ASSERT(i >= 0 && i < num_sequences());
    const auto u = static_cast<std::size_t>(i);
    return offsets[u + 1] - offsets[u];
  }
  [[nodiscard]] std::span<T> sequence(index_t i) const {
    PREFOPT_ASSERT(i >= 0 && i < num_sequences());
    const auto u = static_cast<std::size_t>(i);
    return values.subspan(static_cast<std::size_t>(offsets[u]),
                          static_cast<std::size_t>(offsets[u + 1] - offsets[u]));
  }
  /// Total number of elements covered by the sequences.
  [[nodiscard]] index_t total_length() const noexcept {
    return offsets.empty() ? 0 : offsets.back() - offsets.front();
  }

  /// The same view, read-only: `ragged_view<int>` converts to `ragged_view<const int>` wherever
  /// the target type is spelled (e.g. `sequence_batch{buffer.view(), ...}` on a non-const
  /// buffer). Function templates that deduce `T` from `ragged_view<const T>` do not see
  /// conversions; pass `view.as_const()` to them.
  template <class U = T>
  requires(!std::is_const_v<U>) [[nodiscard]] operator ragged_view<const U>() const noexcept {
    return {offsets, values};
  }
  /// `ragged_view<const T>` over the same memory.
  [[nodiscard]] ragged_view<const std::remove_const_t<T>> as_const() const noexcept {
    return {offsets, values};
  }

  /// Throws `prefopt::shape_error` naming `function`, `argument` and the first bad offset.
  void validate(const char* function, const char* argument) const {
    if (offsets.empty()) return;  // an empty batch
    PREFOPT_CHECK(offsets.front() >= 0, shape_error, function, ": ", argument,
                  ".offsets[0] = ", offsets.front(), ", expected >= 0");
    for (std::size_t i = 1; i < offsets.size(); ++i) {
      PREFOPT_CHECK(offsets[i] >= offsets[i - 1], shape_error, function, ": ", argument,
                    ".offsets[", i, "] = ", offsets[i], " < offsets[", i - 1,
                    "] = ", offsets[i - 1], ", expected non-decreasing offsets");
    }
    PREFOPT_CHECK(offsets.back() <= static_cast<index_t>(values.size()), shape_error, function,
                  ": ", argument, ".offsets[", offsets.size() - 1, "] = ", offsets.back(),
                  " exceeds the number of values ", values.size());
  }
};

/// A batch of tabular (context, action) pairs: element `i` is `(contexts[i], actions[i])`.
struct tabular_batch {
  std::span<const index_t> contexts;
  std::span<const index_t> actions;

  [[nodiscard]] index_t size() const noexcept { return static_cast<index_t>(actions.size()); }
};

/// A batch of token sequences: element `i` is the response `responses.sequence(i)` to the prompt
/// `prompts.sequence(i)`. The batch type of token-level policies and reward models.
struct sequence_batch {
  ragged_view<const token_id> prompts;
  ragged_view<const token_id> responses;

  [[nodiscard]] index_t size() const noexcept { return responses.num_sequences(); }
};

/// Two batches of the same size and contexts: element `i` compares `first[i]` with `second[i]`
/// (both responses to the same context / prompt). The argument of `PreferenceModel::preference`.
template <class Batch>
struct pair_batch {
  Batch first;
  Batch second;

  [[nodiscard]] index_t size() const noexcept { return first.size(); }
};

}  // namespace prefopt
