#pragma once
/// \file
/// Internals: the plumbing of the logits kernels -- views over caller memory, shape / target /
/// mask validation, the error messages naming kernel, argument and row, and the row-parallel
/// loop. The arithmetic lives in `row_math.hpp`. Not part of the public API.

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <type_traits>

#include "prefopt/core/assert.hpp"
#include "prefopt/core/types.hpp"
#include "prefopt/kernels/options.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace prefopt::kernels::detail {

inline constexpr double neg_inf = -std::numeric_limits<double>::infinity();
inline constexpr double pos_inf = std::numeric_limits<double>::infinity();

template <class T>
using carray_map = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;
template <class T>
using array_map = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;

/// Read-only view of a row-major matrix: row i starts at data + i * stride.
template <class T>
struct cview {
  const T* data = nullptr;
  index_t rows = 0;
  index_t cols = 0;
  index_t stride = 0;
  [[nodiscard]] const T* row(index_t i) const noexcept { return data + i * stride; }
};

/// Writable view of a row-major matrix.
template <class T>
struct mview {
  T* data = nullptr;
  index_t rows = 0;
  index_t cols = 0;
  index_t stride = 0;
  [[nodiscard]] T* row(index_t i) const noexcept { return data + i * stride; }
};

template <class Derived>
constexpr void check_matrix_type() {
  using S = typename Derived::Scalar;
  static_assert(
      std::is_same_v<S, float> || std::is_same_v<S, double> || is_half_format_v<S>,
      "prefopt kernels: matrices must hold float, double, Eigen::bfloat16 or Eigen::half");
  static_assert(bool(Derived::Flags & Eigen::DirectAccessBit),
                "prefopt kernels: pass a Matrix, Map, Ref or block of rows over memory, not an "
                "expression (evaluate it first)");
  static_assert(bool(Derived::IsRowMajor),
                "prefopt kernels: matrices must be row-major [N, V] (prefopt::row_matrix_t, "
                "row_matrix_map)");
  static_assert(int(Derived::InnerStrideAtCompileTime) == 1,
                "prefopt kernels: each row must be contiguous (inner stride 1)");
}

template <class Derived>
[[nodiscard]] cview<typename Derived::Scalar> view_of(const Eigen::DenseBase<Derived>& m) {
  check_matrix_type<Derived>();
  const auto& d = m.derived();
  return {d.data(), d.rows(), d.cols(), d.rows() <= 1 ? d.cols() : d.outerStride()};
}

template <class Derived>
[[nodiscard]] mview<typename Derived::Scalar> mutable_view_of(const Eigen::DenseBase<Derived>& m) {
  check_matrix_type<Derived>();
  auto& d = const_cast<Derived&>(m.derived());  // NOLINT: Eigen's documented out-parameter idiom
  return {d.data(), d.rows(), d.cols(), d.rows() <= 1 ? d.cols() : d.outerStride()};
}

/// `t - m` in the accumulation type (widening float tiles when Acc = double).
template <class Acc, class T>
[[nodiscard]] auto shifted(const carray_map<T>& t, Acc m) {
  if constexpr (std::is_same_v<Acc, T>) {
    return t - m;
  } else {
    return t.template cast<Acc>() - m;
  }
}

/// Outcome of a row reduction.
enum class row_status : std::uint8_t { ok, non_finite, all_neg_inf, infinite_kl };

/// One-pass statistics of one row (and, for two-matrix reductions, of the second row).
struct row_stats {
  double m = neg_inf;    ///< row maximum (a logit value, exact)
  double log_s = 0;      ///< log sum_j exp(z_j - m); lse = m + log_s
  double entropy = 0;    ///< -sum p log p (when requested)
  double m_q = neg_inf;  ///< second row
  double log_s_q = 0;
  double kl = 0;          ///< KL(p || q) (two-matrix)
  double kl_reverse = 0;  ///< KL(q || p) (two-matrix)
  row_status status = row_status::ok;
  row_status status_q = row_status::ok;
  [[nodiscard]] double lse() const noexcept { return m + log_s; }
  [[nodiscard]] double lse_q() const noexcept { return m_q + log_s_q; }
};

/// Stores `value` (an Acc expression) into the T row segment `out` under `mode`. Only for
/// expressions whose scalar and packet evaluations agree bitwise (no transcendental functions):
/// Eigen peels unaligned destinations with scalar code, at a position that depends on the address.
template <class T, class Expr>
void store(array_map<T>& out, const Expr& value, write_mode mode) {
  using Acc = typename Expr::Scalar;
  if constexpr (std::is_same_v<Acc, T>) {
    if (mode == write_mode::overwrite) {
      out = value;
    } else {
      out += value;
    }
  } else {
    if (mode == write_mode::overwrite) {
      out = value.template cast<T>();
    } else {
      out += value.template cast<T>();
    }
  }
}

/// Work (elements touched) below which a batch is not worth splitting across threads.
inline constexpr index_t parallel_work_threshold = index_t{1} << 16;

/// Calls `f(i)` (returning false for a bad row) for every row; returns the smallest bad row, or
/// `n` when every row was fine. Rows are split across OpenMP threads when enabled, compiled in and
/// worthwhile; results never depend on it. Serially, stops at the first bad row.
template <class F>
index_t for_each_row(index_t n, index_t work_per_row, bool parallel, F&& f) {
  index_t first_bad = n;
#if defined(_OPENMP)
  if (parallel && n > 1 && n * std::max<index_t>(work_per_row, 1) >= parallel_work_threshold &&
      omp_get_max_threads() > 1 && !omp_in_parallel()) {
#pragma omp parallel for schedule(static) reduction(min : first_bad)
    for (index_t i = 0; i < n; ++i) {
      if (!f(i)) first_bad = std::min(first_bad, i);
    }
    return first_bad;
  }
#else
  (void)parallel;
  (void)work_per_row;
#endif
  for (index_t i = 0; i < n; ++i) {
    if (!f(i)) return i;
  }
  return first_bad;
}

/// Whether row i is selected by the mask (empty mask: every row).
[[nodiscard]] inline bool row_on(std::span<const std::uint8_t> mask, index_t i) noexcept {
  return mask.empty() || mask[static_cast<std::size_t>(i)] != 0;
}

inline void check_rows(const char* kernel, const char* what, std::size_t size, index_t n) {
  PREFOPT_CHECK(static_cast<index_t>(size) == n, shape_error, kernel, ": ", what, " has ", size,
                " entries, expected one per logits row (", n, ")");
}

inline void check_optional_rows(const char* kernel, const char* what, std::size_t size, index_t n) {
  PREFOPT_CHECK(size == 0 || static_cast<index_t>(size) == n, shape_error, kernel, ": ", what,
                " has ", size, " entries, expected 0 (not computed) or one per row (", n, ")");
}

inline void check_mask(const char* kernel, const options& opt, index_t n) {
  check_optional_rows(kernel, "mask", opt.mask.size(), n);
}

inline void check_targets(const char* kernel, std::span<const token_id> targets,
                          std::span<const std::uint8_t> mask, index_t n, index_t v) {
  check_rows(kernel, "targets", targets.size(), n);
  for (index_t i = 0; i < n; ++i) {
    if (!row_on(mask, i)) continue;
    const auto t = targets[static_cast<std::size_t>(i)];
    PREFOPT_CHECK(t >= 0 && t < v, invalid_argument, kernel, ": targets[", i, "] = ", t,
                  " is outside the vocabulary [0, ", v, ")");
  }
}

template <class A, class B>
void check_same_shape(const char* kernel, const char* a_name, const cview<A>& a, const char* b_name,
                      const B& b) {
  PREFOPT_CHECK(a.rows == b.rows && a.cols == b.cols, shape_error, kernel, ": ", b_name, " is [",
                b.rows, ", ", b.cols, "], expected the shape of ", a_name, " [", a.rows, ", ",
                a.cols, "]");
}

/// Throws the error for a bad row, scanning that row (error path only) for the offending value.
template <class T>
[[noreturn]] void throw_row_error(const char* kernel, const char* argument, const cview<T>& x,
                                  index_t i, row_status status) {
  if (status == row_status::all_neg_inf) {
    PREFOPT_THROW(invalid_argument, kernel, ": ", argument, " row ", i,
                  " has no finite logit (every entry is -inf)");
  }
  const T* r = x.row(i);
  for (index_t j = 0; j < x.cols; ++j) {
    const auto value = static_cast<result_scalar_t<T>>(r[j]);  // half formats: widened exactly
    if (std::isnan(value) || value == std::numeric_limits<decltype(value)>::infinity()) {
      PREFOPT_THROW(invalid_argument, kernel, ": ", argument, "(", i, ", ", j, ") = ", value,
                    " in row ", i, ", expected finite or -inf logits");
    }
  }
  PREFOPT_THROW(invalid_argument, kernel, ": ", argument, " row ", i,
                " produced a non-finite reduction (overflow)");
}

/// Calls `f.template operator()<Acc>()` with Acc = the input arithmetic type (T, float for the half
/// formats) or double per the options.
template <class T, class F>
decltype(auto) with_accumulation(accumulation a, F&& f) {
  using input_acc = result_scalar_t<T>;
  if constexpr (std::is_same_v<input_acc, float>) {
    if (a == accumulation::double_precision) return f.template operator()<double>();
  } else {
    (void)a;
  }
  return f.template operator()<input_acc>();
}

}  // namespace prefopt::kernels::detail
