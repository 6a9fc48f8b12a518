#pragma once
/// \file
/// Row log-sum-exp and log-softmax of logits `[N, V]`.
///
/// `lse_i = log sum_j exp(z_ij)` computed in one streaming pass (online log-sum-exp over fixed
/// L1-sized tiles, see `kernels/options.hpp` for guarantees, accuracy and threading);
/// `log_softmax(z)_ij = z_ij - lse_i`. A row of `-inf` entries only (no finite logit), a NaN or a
/// +inf logit raises `prefopt::invalid_argument` naming the row. Masked rows (options::mask) are
/// not read: their log-sum-exp is 0 and their log-softmax row is 0 (or left untouched in place).
/// Half formats: the logits (and gradient matrices) may be `Eigen::bfloat16` or `Eigen::half`; the
/// per-row spans are then float (`result_scalar_t`) and gradients are written in the logits' format
/// (`kernels/options.hpp`, "Half formats").

#include <Eigen/Core>

#include <span>

#include "prefopt/kernels/detail/drivers.hpp"
#include "prefopt/kernels/options.hpp"

namespace prefopt::kernels {

/// lse[i] = log sum_j exp(logits(i, j)). `logits`: row-major `[N, V]` float, double, bf16 or fp16
/// (Matrix, Map, Ref or row block); `lse`: `[N]`. One read of the logits.
template <class Logits>
void row_logsumexp(const Eigen::DenseBase<Logits>& logits,
                   std::span<result_scalar_t<typename Logits::Scalar>> lse,
                   const options& opt = {}) {
  detail::forward_request<typename Logits::Scalar> r;
  r.kernel = "row_logsumexp";
  r.p = detail::view_of(logits);
  detail::check_rows(r.kernel, "logsumexp", lse.size(), r.p.rows);
  r.lse = lse;
  detail::run_forward(r, opt);
}

namespace detail {
template <class T>
void log_softmax_impl(const char* kernel, const cview<T>& x, const mview<T>& out,
                      const options& opt) {
  check_mask(kernel, opt, x.rows);
  check_same_shape(kernel, "logits", x, "out", out);
  PREFOPT_CHECK(x.cols > 0 || x.rows == 0, shape_error, kernel,
                ": logits has 0 columns, expected a vocabulary of at least 1 entry");
  const bool in_place = static_cast<const void*>(x.data) == static_cast<const void*>(out.data);
  auto with_acc = [&]<class Acc>() -> index_t {
    const tile_kernels<Acc>& k = tiles_for<Acc>(opt);
    return for_each_row(x.rows, 2 * x.cols, opt.parallel, [&](index_t i) -> bool {
      array_map<T> o(out.row(i), x.cols);
      if (!row_on(opt.mask, i)) {
        if (!in_place) o.setZero();
        return true;
      }
      const auto s = reduce_row<Acc, false>(k, x.row(i), x.cols);
      if (s.status != row_status::ok) return false;
      const auto m = static_cast<Acc>(s.m);
      const auto log_s = static_cast<Acc>(s.log_s);
      for (index_t j0 = 0; j0 < x.cols; j0 += reduction_tile) {
        const index_t n = std::min(reduction_tile, x.cols - j0);
        const carray_map<T> t(x.row(i) + j0, n);
        array_map<T> oj(out.row(i) + j0, n);
        store(oj, shifted<Acc>(t, m) - log_s, write_mode::overwrite);
      }
      return true;
    });
  };
  const index_t bad = with_accumulation<T>(opt.accumulate, with_acc);
  if (bad < x.rows) {
    using R = result_scalar_t<T>;
    throw_row_error(kernel, "logits", x, bad,
                    reduce_row<R, false>(tiles_for<R>(opt), x.row(bad), x.cols).status);
  }
}
}  // namespace detail

/// out(i, j) = logits(i, j) - lse_i, out of place (`out` has the shape of `logits`; both
/// row-major). Reads each row twice (the second read comes from cache for rows up to about the L2
/// size) and writes it once. Computed as (z - max) - log s for accuracy.
template <class Logits, class Out>
void log_softmax(const Eigen::DenseBase<Logits>& logits, const Eigen::DenseBase<Out>& out,
                 const options& opt = {}) {
  static_assert(std::is_same_v<typename Logits::Scalar, typename Out::Scalar>,
                "log_softmax: logits and out must have the same scalar type");
  detail::log_softmax_impl("log_softmax", detail::view_of(logits), detail::mutable_view_of(out),
                           opt);
}

/// logits(i, j) <- logits(i, j) - lse_i, in place. A row that fails (NaN, +inf, all -inf) is left
/// unchanged; masked rows are left unchanged.
template <class Logits>
void log_softmax_inplace(const Eigen::DenseBase<Logits>& logits, const options& opt = {}) {
  const auto m = detail::mutable_view_of(logits);
  detail::log_softmax_impl("log_softmax_inplace",
                           detail::cview<typename Logits::Scalar>{m.data, m.rows, m.cols, m.stride},
                           m, opt);
}

}  // namespace prefopt::kernels
