#pragma once
/// \file
/// Internals: the checked, row-parallel drivers behind every per-row forward and backward kernel.
/// Each public kernel fills a request naming what it wants; a driver validates shapes, targets and
/// the mask before touching any output, then runs the one-pass row engine on every row.

#include <cstddef>
#include <span>

#include "prefopt/kernels/detail/plumbing.hpp"
#include "prefopt/kernels/detail/row_math.hpp"

namespace prefopt::kernels::detail {

/// What a forward call wants. Empty output spans are not computed.
template <class T>
struct forward_request {
  const char* kernel = "";
  const char* p_name = "logits";
  const char* q_name = "q_logits";
  cview<T> p;
  bool has_q = false;
  cview<T> q;
  std::span<const token_id> targets;
  std::span<result_scalar_t<T>> log_probs;
  std::span<result_scalar_t<T>> lse;
  std::span<result_scalar_t<T>> entropy;
  std::span<result_scalar_t<T>> kl;
  std::span<result_scalar_t<T>> kl_reverse;
  std::span<result_scalar_t<T>> lse_q;
};

template <class T>
void check_forward(const forward_request<T>& r, const options& opt) {
  const index_t n = r.p.rows;
  check_mask(r.kernel, opt, n);
  PREFOPT_CHECK(r.p.cols > 0 || n == 0, shape_error, r.kernel, ": ", r.p_name,
                " has 0 columns, expected a vocabulary of at least 1 entry");
  if (r.has_q) check_same_shape(r.kernel, r.p_name, r.p, r.q_name, r.q);
  check_optional_rows(r.kernel, "log_probs", r.log_probs.size(), n);
  check_optional_rows(r.kernel, "logsumexp", r.lse.size(), n);
  check_optional_rows(r.kernel, "entropy", r.entropy.size(), n);
  check_optional_rows(r.kernel, "kl", r.kl.size(), n);
  check_optional_rows(r.kernel, "kl_reverse", r.kl_reverse.size(), n);
  check_optional_rows(r.kernel, "logsumexp_q", r.lse_q.size(), n);
  if (!r.log_probs.empty()) check_targets(r.kernel, r.targets, opt.mask, n, r.p.cols);
}

/// Runs a checked forward request: one pass over each (unmasked) row.
template <class T>
void run_forward(const forward_request<T>& r, const options& opt) {
  check_forward(r, opt);
  const index_t n = r.p.rows;
  const index_t v = r.p.cols;
  const bool want_entropy = !r.entropy.empty();
  using R = result_scalar_t<T>;
  auto put = [](std::span<R> out, std::size_t u, double value) {
    if (!out.empty()) out[u] = static_cast<R>(value);
  };
  auto with_acc = [&]<class Acc>() -> index_t {
    const tile_kernels<Acc>& k = tiles_for<Acc>(opt);
    auto go = [&]<bool Entropy, bool Two>() -> index_t {
      return for_each_row(n, Two ? 2 * v : v, opt.parallel, [&](index_t i) -> bool {
        const auto u = static_cast<std::size_t>(i);
        if (!row_on(opt.mask, i)) {
          for (auto out : {r.log_probs, r.lse, r.entropy, r.kl, r.kl_reverse, r.lse_q})
            put(out, u, 0.0);
          return true;
        }
        row_stats s;
        if constexpr (Two) {
          s = reduce_row_pair<Acc, Entropy>(k, r.p.row(i), r.q.row(i), v);
        } else {
          s = reduce_row<Acc, Entropy>(k, r.p.row(i), v);
        }
        if (s.status != row_status::ok || s.status_q != row_status::ok) return false;
        if (!r.log_probs.empty()) {
          const auto x_t = static_cast<double>(static_cast<R>(r.p.row(i)[r.targets[u]]));
          r.log_probs[u] = static_cast<R>((x_t - s.m) - s.log_s);
        }
        put(r.lse, u, s.lse());
        put(r.entropy, u, s.entropy);
        if constexpr (Two) {
          put(r.kl, u, s.kl);
          put(r.kl_reverse, u, s.kl_reverse);
          put(r.lse_q, u, s.lse_q());
        }
        return true;
      });
    };
    if (r.has_q) {
      return want_entropy ? go.template operator()<true, true>()
                          : go.template operator()<false, true>();
    }
    return want_entropy ? go.template operator()<true, false>()
                        : go.template operator()<false, false>();
  };
  const index_t bad = with_accumulation<T>(opt.accumulate, with_acc);
  if (bad < n) {
    const tile_kernels<R>& k = tiles_for<R>(opt);
    const auto sp = reduce_row<R, false>(k, r.p.row(bad), v);
    if (sp.status != row_status::ok) throw_row_error(r.kernel, r.p_name, r.p, bad, sp.status);
    const auto sq = reduce_row<R, false>(k, r.q.row(bad), v);
    throw_row_error(r.kernel, r.q_name, r.q, bad, sq.status);
  }
}

/// What a backward call has: saved forward values, upstream gradients (empty = 0) and outputs.
template <class T>
struct backward_request {
  const char* kernel = "";
  const char* p_name = "logits";
  const char* q_name = "q_logits";
  const char* dp_name = "dlogits";
  cview<T> p;
  bool has_q = false;
  cview<T> q;
  std::span<const token_id> targets;
  std::span<const result_scalar_t<T>> lse;
  std::span<const result_scalar_t<T>> g_lp;
  std::span<const result_scalar_t<T>> g_h;
  std::span<const result_scalar_t<T>> entropy;
  std::span<const result_scalar_t<T>> g_kl;
  std::span<const result_scalar_t<T>> kl;
  std::span<const result_scalar_t<T>> lse_q;
  mview<T> dp;
  bool has_dq = false;
  mview<T> dq;
};

template <class T>
void check_backward(const backward_request<T>& r, const options& opt) {
  const index_t n = r.p.rows;
  check_mask(r.kernel, opt, n);
  check_same_shape(r.kernel, r.p_name, r.p, r.dp_name, r.dp);
  check_rows(r.kernel, "logsumexp", r.lse.size(), n);
  check_optional_rows(r.kernel, "grad_log_probs", r.g_lp.size(), n);
  check_optional_rows(r.kernel, "grad_entropy", r.g_h.size(), n);
  check_optional_rows(r.kernel, "grad_kl", r.g_kl.size(), n);
  if (!r.g_lp.empty()) check_targets(r.kernel, r.targets, opt.mask, n, r.p.cols);
  if (!r.g_h.empty()) check_rows(r.kernel, "entropy", r.entropy.size(), n);
  if (!r.g_kl.empty()) {
    PREFOPT_CHECK(r.has_q, invalid_argument, r.kernel, ": grad_kl given without q_logits");
    check_rows(r.kernel, "kl", r.kl.size(), n);
    check_rows(r.kernel, "logsumexp_q", r.lse_q.size(), n);
  }
  if (r.has_q) check_same_shape(r.kernel, r.p_name, r.p, r.q_name, r.q);
  if (r.has_dq) check_same_shape(r.kernel, r.q_name, r.q, "dq_logits", r.dq);
  // Saved values must be finite (a non-finite forward value means the forward failed).
  for (index_t i = 0; i < n; ++i) {
    if (!row_on(opt.mask, i)) continue;
    const auto u = static_cast<std::size_t>(i);
    PREFOPT_CHECK(std::isfinite(r.lse[u]), invalid_argument, r.kernel, ": logsumexp[", i,
                  "] = ", r.lse[u], ", expected the finite log-sum-exp saved by the forward");
    if (!r.g_h.empty()) {
      PREFOPT_CHECK(std::isfinite(r.entropy[u]), invalid_argument, r.kernel, ": entropy[", i,
                    "] = ", r.entropy[u], ", expected finite");
    }
    if (!r.g_kl.empty()) {
      PREFOPT_CHECK(std::isfinite(r.kl[u]) && std::isfinite(r.lse_q[u]), invalid_argument, r.kernel,
                    ": kl[", i, "] = ", r.kl[u], ", logsumexp_q[", i, "] = ", r.lse_q[u],
                    ", expected finite values (the gradient of an infinite KL is undefined)");
    }
  }
}

/// Runs a checked backward request: one read + one write sweep per (unmasked) row.
template <class T>
void run_backward(const backward_request<T>& r, const options& opt) {
  check_backward(r, opt);
  const index_t n = r.p.rows;
  const index_t v = r.p.cols;
  auto at = [](std::span<const result_scalar_t<T>> s, std::size_t u) {
    return s.empty() ? 0.0 : static_cast<double>(s[u]);
  };
  auto with_acc = [&]<class Acc>() -> index_t {
    const tile_kernels<Acc>& k = tiles_for<Acc>(opt);
    auto go = [&]<bool Entropy, bool Kl>() -> index_t {
      return for_each_row(n, Kl ? 4 * v : 2 * v, opt.parallel, [&](index_t i) -> bool {
        const auto u = static_cast<std::size_t>(i);
        if (!row_on(opt.mask, i)) {
          if (opt.mode == write_mode::overwrite) {
            array_map<T>(r.dp.row(i), v).setZero();
            if (r.has_dq) array_map<T>(r.dq.row(i), v).setZero();
          }
          return true;
        }
        row_grad_in g;
        g.lse = static_cast<double>(r.lse[u]);
        g.g_lp = at(r.g_lp, u);
        g.target = r.g_lp.empty() ? index_t{-1} : index_t{r.targets[u]};
        g.g_h = at(r.g_h, u);
        g.entropy = at(r.entropy, u);
        g.g_kl = at(r.g_kl, u);
        g.kl = at(r.kl, u);
        g.lse_q = at(r.lse_q, u);
        if constexpr (Kl) {
          backward_row<Acc, Entropy, true>(k, r.p.row(i), r.q.row(i), r.dp.row(i),
                                           r.has_dq ? r.dq.row(i) : nullptr, v, g, opt.mode);
        } else {
          backward_row<Acc, Entropy, false, T>(k, r.p.row(i), nullptr, r.dp.row(i), nullptr, v, g,
                                               opt.mode);
        }
        return true;
      });
    };
    const bool e = !r.g_h.empty();
    if (!r.g_kl.empty()) {
      return e ? go.template operator()<true, true>() : go.template operator()<false, true>();
    }
    return e ? go.template operator()<true, false>() : go.template operator()<false, false>();
  };
  (void)with_accumulation<T>(opt.accumulate, with_acc);
}

}  // namespace prefopt::kernels::detail
