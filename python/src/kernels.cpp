/// \file
/// `prefopt.kernels`: the per-row logits kernels of include/prefopt/kernels/ on NumPy arrays and
/// CPU torch tensors, over the caller's memory (arrays.hpp says what is accepted). Every function
/// checks its arguments with the GIL held, then releases the GIL for the kernel itself.

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <string>
#include <string_view>

#include "arrays.hpp"
#include "bindings.hpp"
#include "prefopt/kernels/entropy.hpp"
#include "prefopt/kernels/kl.hpp"
#include "prefopt/kernels/kl_estimators.hpp"
#include "prefopt/kernels/logsumexp.hpp"
#include "prefopt/kernels/token_log_probs.hpp"
#include "prefopt/kernels/token_stats.hpp"

namespace prefopt::python {

namespace {

using namespace pybind11::literals;

constexpr const char* common_doc = R"(
Common keywords: ``mask`` -- optional uint8/bool ``[N]`` row mask (rows with 0 are not read; their
outputs are 0, their targets unchecked); ``accumulation`` -- ``"input"`` (arithmetic in the logits'
type, fast) or ``"double"`` (float32 logits widened to double inside each tile); ``parallel`` --
split rows across OpenMP threads (never changes results).

Layout: logits are row-major ``[N, V]`` float32/float64 with contiguous rows (any row stride);
vectors are 1-d contiguous. NumPy arrays and CPU torch tensors are used in place; anything else
(another dtype, Fortran order, a column step, a CUDA tensor, a list) raises -- nothing is copied,
except int64 targets, narrowed into an ``[N]`` int32 buffer. Outputs passed as ``out=`` must have the
exact dtype, shape and layout and be writeable; otherwise fresh arrays are returned.

Raises: prefopt.DTypeError (wrong dtype), prefopt.ShapeError (shapes disagree),
prefopt.InvalidArgument (a target outside [0, V), a NaN/+inf logit or a row of -inf only -- the
message names the function, the argument, the row and column). The GIL is released while the
kernel runs. Accuracy: include/prefopt/kernels/options.hpp.)";

std::string doc(const char* signature, const char* text) {
  return std::string(signature) + "\n\n" + text + "\n" + common_doc;
}

/// Returns `first` alone, or `(first, second)` when `pair`.
py::object one_or_two(const py::array& first, bool pair, const py::array& second) {
  if (pair) return py::make_tuple(first, second);
  return first;
}

py::object token_log_probs(py::handle logits, py::handle targets, py::handle mask, py::handle out,
                           py::handle lse_out, bool with_lse, std::string_view accumulation,
                           bool parallel) {
  const char* fn = "token_log_probs";
  const auto z = as_array(fn, "logits", logits);
  return dispatch_float(fn, "logits", z, [&]<class T>() -> py::object {
    const auto zm = matrix_in<T>(fn, "logits", z);
    const index_t n = zm.rows();
    const auto o = options_in(fn, mask, n, accumulation, false, parallel);
    const auto t = targets_in(fn, targets, n, zm.cols(), o.opt.mask);
    if (t.array.ptr() == nullptr) {
      PREFOPT_THROW(invalid_argument, fn, ": targets is None, expected [N] token ids");
    }
    const auto lp = vector_out_of<T>(fn, "out", out, n);
    const bool want_lse = with_lse || !lse_out.is_none();
    vector_out<T> lse;
    if (want_lse) lse = vector_out_of<T>(fn, "lse_out", lse_out, n);
    {
      py::gil_scoped_release nogil;
      kernels::token_log_probs(zm, t.span, lp.span, o.opt, lse.span);
    }
    return one_or_two(lp.array, want_lse, lse.array);
  });
}

py::array token_log_probs_backward(py::handle logits, py::handle targets, py::handle lse,
                                   py::handle grad, py::handle mask, py::handle out,
                                   bool accumulate, std::string_view accumulation, bool parallel) {
  const char* fn = "token_log_probs_backward";
  const auto z = as_array(fn, "logits", logits);
  return dispatch_float(fn, "logits", z, [&]<class T>() -> py::array {
    const auto zm = matrix_in<T>(fn, "logits", z);
    const index_t n = zm.rows();
    if (accumulate && out.is_none()) {
      PREFOPT_THROW(invalid_argument, fn, ": accumulate=True needs out= (the array to add to)");
    }
    const auto o = options_in(fn, mask, n, accumulation, accumulate, parallel);
    const auto t = targets_in(fn, targets, n, zm.cols(), o.opt.mask);
    py::array keep_lse, keep_grad;
    const auto lse_s = optional_vector_in<T>(fn, "lse", lse, n, keep_lse);
    const auto g_s = optional_vector_in<T>(fn, "grad", grad, n, keep_grad);
    const auto d = matrix_out_of<T>(fn, "out", out, n, zm.cols());
    {
      py::gil_scoped_release nogil;
      kernels::token_log_probs_backward(zm, t.span, lse_s, g_s, d.map(), o.opt);
    }
    return d.array;
  });
}

py::array logsumexp(py::handle logits, py::handle mask, py::handle out,
                    std::string_view accumulation, bool parallel) {
  const char* fn = "row_logsumexp";
  const auto z = as_array(fn, "logits", logits);
  return dispatch_float(fn, "logits", z, [&]<class T>() -> py::array {
    const auto zm = matrix_in<T>(fn, "logits", z);
    const auto o = options_in(fn, mask, zm.rows(), accumulation, false, parallel);
    const auto r = vector_out_of<T>(fn, "out", out, zm.rows());
    {
      py::gil_scoped_release nogil;
      kernels::row_logsumexp(zm, r.span, o.opt);
    }
    return r.array;
  });
}

py::array log_softmax(py::handle logits, py::handle mask, py::handle out,
                      std::string_view accumulation, bool parallel) {
  const char* fn = "log_softmax";
  const auto z = as_array(fn, "logits", logits);
  return dispatch_float(fn, "logits", z, [&]<class T>() -> py::array {
    const auto zm = matrix_in<T>(fn, "logits", z);
    const auto o = options_in(fn, mask, zm.rows(), accumulation, false, parallel);
    const auto r = matrix_out_of<T>(fn, "out", out, zm.rows(), zm.cols());
    const bool in_place = static_cast<const void*>(r.data) == static_cast<const void*>(zm.data());
    {
      py::gil_scoped_release nogil;
      if (in_place) {
        kernels::log_softmax_inplace(r.map(), o.opt);
      } else {
        kernels::log_softmax(zm, r.map(), o.opt);
      }
    }
    return r.array;
  });
}

py::object entropy(py::handle logits, py::handle mask, py::handle out, py::handle lse_out,
                   bool with_lse, std::string_view accumulation, bool parallel) {
  const char* fn = "entropy";
  const auto z = as_array(fn, "logits", logits);
  return dispatch_float(fn, "logits", z, [&]<class T>() -> py::object {
    const auto zm = matrix_in<T>(fn, "logits", z);
    const index_t n = zm.rows();
    const auto o = options_in(fn, mask, n, accumulation, false, parallel);
    const auto h = vector_out_of<T>(fn, "out", out, n);
    const bool want_lse = with_lse || !lse_out.is_none();
    vector_out<T> lse;
    if (want_lse) lse = vector_out_of<T>(fn, "lse_out", lse_out, n);
    {
      py::gil_scoped_release nogil;
      kernels::entropy(zm, h.span, o.opt, lse.span);
    }
    return one_or_two(h.array, want_lse, lse.array);
  });
}

py::array entropy_backward(py::handle logits, py::handle lse, py::handle ent, py::handle grad,
                           py::handle mask, py::handle out, bool accumulate,
                           std::string_view accumulation, bool parallel) {
  const char* fn = "entropy_backward";
  const auto z = as_array(fn, "logits", logits);
  return dispatch_float(fn, "logits", z, [&]<class T>() -> py::array {
    const auto zm = matrix_in<T>(fn, "logits", z);
    const index_t n = zm.rows();
    if (accumulate && out.is_none()) {
      PREFOPT_THROW(invalid_argument, fn, ": accumulate=True needs out= (the array to add to)");
    }
    const auto o = options_in(fn, mask, n, accumulation, accumulate, parallel);
    py::array k1, k2, k3;
    const auto lse_s = optional_vector_in<T>(fn, "lse", lse, n, k1);
    const auto h_s = optional_vector_in<T>(fn, "entropy", ent, n, k2);
    const auto g_s = optional_vector_in<T>(fn, "grad", grad, n, k3);
    const auto d = matrix_out_of<T>(fn, "out", out, n, zm.cols());
    {
      py::gil_scoped_release nogil;
      kernels::entropy_backward(zm, lse_s, h_s, g_s, d.map(), o.opt);
    }
    return d.array;
  });
}

py::object kl_divergence(py::handle p_logits, py::handle q_logits, py::handle mask, py::handle out,
                         py::handle reverse_out, py::handle lse_p_out, py::handle lse_q_out,
                         bool with_reverse, bool with_lse, std::string_view accumulation,
                         bool parallel) {
  const char* fn = "kl_divergence";
  const auto zp = as_array(fn, "p_logits", p_logits);
  const auto zq = as_array(fn, "q_logits", q_logits);
  return dispatch_float(fn, "p_logits", zp, [&]<class T>() -> py::object {
    const auto pm = matrix_in<T>(fn, "p_logits", zp);
    const auto qm = matrix_in<T>(fn, "q_logits", zq);
    const index_t n = pm.rows();
    const auto o = options_in(fn, mask, n, accumulation, false, parallel);
    const auto kl = vector_out_of<T>(fn, "out", out, n);
    const bool want_rev = with_reverse || !reverse_out.is_none();
    const bool want_lse = with_lse || !lse_p_out.is_none() || !lse_q_out.is_none();
    vector_out<T> rev, lp, lq;
    if (want_rev) rev = vector_out_of<T>(fn, "reverse_out", reverse_out, n);
    if (want_lse) {
      lp = vector_out_of<T>(fn, "lse_p_out", lse_p_out, n);
      lq = vector_out_of<T>(fn, "lse_q_out", lse_q_out, n);
    }
    {
      py::gil_scoped_release nogil;
      kernels::kl_divergence(pm, qm, kl.span, rev.span, o.opt, lp.span, lq.span);
    }
    if (!want_rev && !want_lse) return kl.array;
    py::list r;
    r.append(kl.array);
    if (want_rev) r.append(rev.array);
    if (want_lse) {
      r.append(lp.array);
      r.append(lq.array);
    }
    return py::tuple(r);
  });
}

py::object kl_divergence_backward(py::handle p_logits, py::handle q_logits, py::handle lse_p,
                                  py::handle lse_q, py::handle kl, py::handle grad, py::handle mask,
                                  py::handle out_p, py::handle out_q, bool q_grad, bool accumulate,
                                  std::string_view accumulation, bool parallel) {
  const char* fn = "kl_divergence_backward";
  const auto zp = as_array(fn, "p_logits", p_logits);
  const auto zq = as_array(fn, "q_logits", q_logits);
  return dispatch_float(fn, "p_logits", zp, [&]<class T>() -> py::object {
    const auto pm = matrix_in<T>(fn, "p_logits", zp);
    const auto qm = matrix_in<T>(fn, "q_logits", zq);
    const index_t n = pm.rows();
    const bool want_q = q_grad || !out_q.is_none();
    if (accumulate && (out_p.is_none() || (want_q && out_q.is_none()))) {
      PREFOPT_THROW(invalid_argument, fn,
                    ": accumulate=True needs out_p= (and out_q= with q_grad) to add to");
    }
    const auto o = options_in(fn, mask, n, accumulation, accumulate, parallel);
    py::array k1, k2, k3, k4;
    const auto lp = optional_vector_in<T>(fn, "lse_p", lse_p, n, k1);
    const auto lq = optional_vector_in<T>(fn, "lse_q", lse_q, n, k2);
    const auto kl_s = optional_vector_in<T>(fn, "kl", kl, n, k3);
    const auto g = optional_vector_in<T>(fn, "grad", grad, n, k4);
    const auto dp = matrix_out_of<T>(fn, "out_p", out_p, n, pm.cols());
    matrix_out<T> dq;
    if (want_q) dq = matrix_out_of<T>(fn, "out_q", out_q, qm.rows(), qm.cols());
    {
      py::gil_scoped_release nogil;
      kernels::kl_divergence_backward(pm, qm, lp, lq, kl_s, g, dp.map(), dq.map(), o.opt);
    }
    return one_or_two(dp.array, want_q, dq.array);
  });
}

py::dict token_stats(py::handle logits, py::handle targets, py::handle q_logits, py::handle mask,
                     const std::vector<std::string>& outputs, py::handle out,
                     std::string_view accumulation, bool parallel) {
  const char* fn = "token_stats";
  const auto z = as_array(fn, "logits", logits);
  return dispatch_float(fn, "logits", z, [&]<class T>() -> py::dict {
    const auto zm = matrix_in<T>(fn, "logits", z);
    const index_t n = zm.rows();
    const auto o = options_in(fn, mask, n, accumulation, false, parallel);
    const auto t = targets_in(fn, targets, n, zm.cols(), o.opt.mask);
    const py::dict given = out.is_none() ? py::dict() : py::reinterpret_borrow<py::dict>(out);
    py::dict result;
    kernels::token_stats_outputs<T> so;
    std::span<T>* slots[] = {&so.log_probs,  &so.entropy,   &so.kl,
                             &so.kl_reverse, &so.logsumexp, &so.logsumexp_q};
    const std::string_view slot_names[] = {"log_probs",  "entropy",   "kl",
                                           "kl_reverse", "logsumexp", "logsumexp_q"};
    for (const auto& name : outputs) {
      bool known = false;
      for (std::size_t k = 0; k < std::size(slot_names); ++k) {
        if (name != slot_names[k]) continue;
        known = true;
        const auto arg = std::string("out['") + name + "']";
        const py::object target =
            given.contains(name) ? py::object(given[name.c_str()]) : py::object(py::none());
        const auto v = vector_out_of<T>(fn, arg.c_str(), target, n);
        *slots[k] = v.span;
        result[name.c_str()] = v.array;
      }
      if (!known) {
        PREFOPT_THROW(invalid_argument, fn, ": outputs contains '", name,
                      "', expected some of log_probs, logsumexp, entropy, kl, kl_reverse, "
                      "logsumexp_q");
      }
    }
    if (!so.log_probs.empty() && t.span.empty() && n > 0) {
      PREFOPT_THROW(invalid_argument, fn, ": log_probs requested but targets is None");
    }
    if (q_logits.is_none()) {
      py::gil_scoped_release nogil;
      kernels::token_stats(zm, t.span, so, o.opt);
    } else {
      const auto zq = as_array(fn, "q_logits", q_logits);
      const auto qm = matrix_in<T>(fn, "q_logits", zq);
      py::gil_scoped_release nogil;
      kernels::token_stats(zm, qm, t.span, so, o.opt);
    }
    return result;
  });
}

py::object token_stats_backward(py::handle logits, py::handle targets, py::handle q_logits,
                                const py::dict& saved, const py::dict& grads, py::handle mask,
                                py::handle out, py::handle out_q, bool q_grad, bool accumulate,
                                std::string_view accumulation, bool parallel) {
  const char* fn = "token_stats_backward";
  const auto z = as_array(fn, "logits", logits);
  return dispatch_float(fn, "logits", z, [&]<class T>() -> py::object {
    const auto zm = matrix_in<T>(fn, "logits", z);
    const index_t n = zm.rows();
    const bool want_q = q_grad || !out_q.is_none();
    if (want_q && q_logits.is_none()) {
      PREFOPT_THROW(invalid_argument, fn, ": q_grad=True needs q_logits");
    }
    if (accumulate && (out.is_none() || (want_q && out_q.is_none()))) {
      PREFOPT_THROW(invalid_argument, fn,
                    ": accumulate=True needs out= (and out_q= with q_grad) to add to");
    }
    const auto o = options_in(fn, mask, n, accumulation, accumulate, parallel);
    const auto t = targets_in(fn, targets, n, zm.cols(), o.opt.mask);
    std::vector<py::array> keep;
    auto get = [&](const py::dict& d, const char* dict_name, const char* key,
                   std::span<const T>& slot) {
      if (!d.contains(key)) return;
      const auto arg = std::string(dict_name) + "['" + key + "']";
      keep.emplace_back();
      slot = optional_vector_in<T>(fn, arg.c_str(), d[key], n, keep.back());
    };
    for (const auto& [k, v] : saved) {
      const auto key = py::str(k).cast<std::string>();
      if (key != "logsumexp" && key != "entropy" && key != "kl" && key != "logsumexp_q") {
        PREFOPT_THROW(invalid_argument, fn, ": saved has key '", key,
                      "', expected some of logsumexp, entropy, kl, logsumexp_q");
      }
      (void)v;
    }
    for (const auto& [k, v] : grads) {
      const auto key = py::str(k).cast<std::string>();
      if (key != "log_probs" && key != "entropy" && key != "kl") {
        PREFOPT_THROW(invalid_argument, fn, ": grads has key '", key,
                      "', expected some of log_probs, entropy, kl");
      }
      (void)v;
    }
    kernels::token_stats_saved<T> s;
    get(saved, "saved", "logsumexp", s.logsumexp);
    get(saved, "saved", "entropy", s.entropy);
    get(saved, "saved", "kl", s.kl);
    get(saved, "saved", "logsumexp_q", s.logsumexp_q);
    kernels::token_stats_grads<T> g;
    get(grads, "grads", "log_probs", g.log_probs);
    get(grads, "grads", "entropy", g.entropy);
    get(grads, "grads", "kl", g.kl);
    const auto d = matrix_out_of<T>(fn, "out", out, n, zm.cols());
    if (q_logits.is_none()) {
      {
        py::gil_scoped_release nogil;
        kernels::token_stats_backward(zm, t.span, s, g, d.map(), o.opt);
      }
      return d.array;
    }
    const auto zq = as_array(fn, "q_logits", q_logits);
    const auto qm = matrix_in<T>(fn, "q_logits", zq);
    matrix_out<T> dq;
    if (want_q) dq = matrix_out_of<T>(fn, "out_q", out_q, qm.rows(), qm.cols());
    {
      py::gil_scoped_release nogil;
      kernels::token_stats_backward(zm, qm, t.span, s, g, d.map(), dq.map(), o.opt);
    }
    return one_or_two(d.array, want_q, dq.array);
  });
}

kernels::kl_estimator estimator_in(const char* fn, std::string_view name) {
  if (name == "k1") return kernels::kl_estimator::k1;
  if (name == "k2") return kernels::kl_estimator::k2;
  if (name == "k3") return kernels::kl_estimator::k3;
  if (name == "abs") return kernels::kl_estimator::abs;
  PREFOPT_THROW(invalid_argument, fn, ": estimator = '", name,
                "', expected k1, k2, k3 or abs (the exact KL is kl_divergence)");
}

py::array sampled_kl(py::handle log_probs, py::handle ref_log_probs, std::string_view estimator,
                     py::handle mask, py::handle out) {
  const char* fn = "sampled_kl";
  const auto lp = as_array(fn, "log_probs", log_probs);
  return dispatch_float(fn, "log_probs", lp, [&]<class T>() -> py::array {
    const index_t n = lp.ndim() == 1 ? lp.shape(0) : -1;
    py::array keep;
    const auto e = estimator_in(fn, estimator);
    const auto l = vector_in<T>(fn, "log_probs", lp, n);
    const auto r = optional_vector_in<T>(fn, "ref_log_probs", ref_log_probs, n, keep);
    const auto o = options_in(fn, mask, n, "input", false, false);
    const auto v = vector_out_of<T>(fn, "out", out, n);
    kernels::sampled_kl(e, l, r, v.span, o.opt);
    return v.array;
  });
}

py::object sampled_kl_backward(py::handle log_probs, py::handle ref_log_probs, py::handle grad,
                               std::string_view estimator, py::handle mask, py::handle out,
                               py::handle ref_out, bool ref_grad, bool accumulate) {
  const char* fn = "sampled_kl_backward";
  const auto lp = as_array(fn, "log_probs", log_probs);
  return dispatch_float(fn, "log_probs", lp, [&]<class T>() -> py::object {
    const index_t n = lp.ndim() == 1 ? lp.shape(0) : -1;
    const bool want_ref = ref_grad || !ref_out.is_none();
    if (accumulate && (out.is_none() || (want_ref && ref_out.is_none()))) {
      PREFOPT_THROW(invalid_argument, fn,
                    ": accumulate=True needs out= (and ref_out= with ref_grad) to add to");
    }
    py::array k1, k2;
    const auto e = estimator_in(fn, estimator);
    const auto l = vector_in<T>(fn, "log_probs", lp, n);
    const auto r = optional_vector_in<T>(fn, "ref_log_probs", ref_log_probs, n, k1);
    const auto g = optional_vector_in<T>(fn, "grad", grad, n, k2);
    const auto o = options_in(fn, mask, n, "input", accumulate, false);
    const auto d = vector_out_of<T>(fn, "out", out, n);
    vector_out<T> dr;
    if (want_ref) dr = vector_out_of<T>(fn, "ref_out", ref_out, n);
    kernels::sampled_kl_backward(e, l, r, g, d.span, dr.span, o.opt);
    return one_or_two(d.array, want_ref, dr.array);
  });
}

}  // namespace

void bind_kernels(py::module_& m) {
  // Signatures are written in the docstrings: pybind11's would print pybind11::handle types.
  py::options doc_options;
  doc_options.disable_function_signatures();
  const auto none = py::none();
  m.def(
      "token_log_probs", &token_log_probs, "logits"_a, "targets"_a, "mask"_a = none, py::kw_only(),
      "out"_a = none, "lse_out"_a = none, "with_lse"_a = false, "accumulation"_a = "input",
      "parallel"_a = true,
      doc("token_log_probs(logits, targets, mask=None, *, out=None, lse_out=None, with_lse=False, "
          "accumulation='input', parallel=True) -> log_probs | (log_probs, lse)",
          R"(Per-token log-probabilities of the targets: ``log_probs[i] = log softmax(logits[i])[targets[i]]``.

Args:
  logits: ``[N, V]`` float32 or float64.
  targets: ``[N]`` int32 (used in place) or int64 (narrowed), each in ``[0, V)`` on unmasked rows.
  out: optional ``[N]`` output of the logits' dtype. lse_out: optional ``[N]`` output of the row
    log-sum-exp (save it for ``token_log_probs_backward``); ``with_lse=True`` allocates one.
Returns:
  ``log_probs`` ``[N]`` (the logits' dtype), or ``(log_probs, lse)`` when an lse is requested.
  A target whose logit is -inf gives -inf.)")
          .c_str());
  m.def(
      "token_log_probs_backward", &token_log_probs_backward, "logits"_a, "targets"_a, "lse"_a,
      "grad"_a, "mask"_a = none, py::kw_only(), "out"_a = none, "accumulate"_a = false,
      "accumulation"_a = "input", "parallel"_a = true,
      doc("token_log_probs_backward(logits, targets, lse, grad, mask=None, *, out=None, "
          "accumulate=False, accumulation='input', parallel=True) -> dlogits",
          R"(Gradient of the token log-probs: ``dlogits[i, j] = grad[i] (1[j = targets[i]] - softmax(logits[i])_j)``.

Args:
  logits: ``[N, V]`` float32/float64 (the forward's). targets: ``[N]`` int32/int64.
  lse: ``[N]`` log-sum-exp saved by the forward. grad: ``[N]`` upstream dL/dlog_probs.
  out: optional ``[N, V]`` output (may not alias ``logits``); ``accumulate=True`` adds into it.
Returns:
  ``dlogits`` ``[N, V]``; masked rows are 0 (or untouched when accumulating).)")
          .c_str());
  m.def("logsumexp", &logsumexp, "logits"_a, "mask"_a = none, py::kw_only(), "out"_a = none,
        "accumulation"_a = "input", "parallel"_a = true,
        doc("logsumexp(logits, mask=None, *, out=None, accumulation='input', parallel=True) -> lse",
            R"(Row log-sum-exp ``lse[i] = log sum_j exp(logits[i, j])`` in one streaming pass.

Args:
  logits: ``[N, V]`` float32/float64. out: optional ``[N]`` output.
Returns:
  ``lse`` ``[N]``; masked rows give 0. A row with no finite logit raises prefopt.InvalidArgument.)")
            .c_str());
  m.def("log_softmax", &log_softmax, "logits"_a, "mask"_a = none, py::kw_only(), "out"_a = none,
        "accumulation"_a = "input", "parallel"_a = true,
        doc("log_softmax(logits, mask=None, *, out=None, accumulation='input', parallel=True) -> "
            "log_probs [N, V]",
            R"(Row log-softmax ``out[i, j] = logits[i, j] - lse[i]``.

Args:
  logits: ``[N, V]`` float32/float64. out: optional ``[N, V]`` output; ``out=logits`` works in place
    (a failing row is then left unchanged).
Returns:
  ``[N, V]`` log-probabilities; masked rows are 0 (left unchanged in place).)")
            .c_str());
  m.def(
      "entropy", &entropy, "logits"_a, "mask"_a = none, py::kw_only(), "out"_a = none,
      "lse_out"_a = none, "with_lse"_a = false, "accumulation"_a = "input", "parallel"_a = true,
      doc("entropy(logits, mask=None, *, out=None, lse_out=None, with_lse=False, "
          "accumulation='input', parallel=True) -> entropy | (entropy, lse)",
          R"(Entropy of each row's softmax in nats, ``H[i] = -sum_j p_ij log p_ij`` (clamped at 0).

Args:
  logits: ``[N, V]`` float32/float64. out: optional ``[N]``. lse_out / with_lse: also return the
    row log-sum-exp (needed by ``entropy_backward``).
Returns:
  ``H`` ``[N]``, or ``(H, lse)``.)")
          .c_str());
  m.def("entropy_backward", &entropy_backward, "logits"_a, "lse"_a, "entropy"_a, "grad"_a,
        "mask"_a = none, py::kw_only(), "out"_a = none, "accumulate"_a = false,
        "accumulation"_a = "input", "parallel"_a = true,
        doc("entropy_backward(logits, lse, entropy, grad, mask=None, *, out=None, "
            "accumulate=False, accumulation='input', parallel=True) -> dlogits",
            R"(Gradient of the entropy: ``dlogits[i, j] = -grad[i] p_ij (log p_ij + H[i])``.

Args:
  logits: ``[N, V]``. lse, entropy: ``[N]`` from the forward. grad: ``[N]`` upstream dL/dH.
  out: optional ``[N, V]``; ``accumulate=True`` adds into it.
Returns:
  ``dlogits`` ``[N, V]``.)")
            .c_str());
  m.def(
      "kl_divergence", &kl_divergence, "p_logits"_a, "q_logits"_a, "mask"_a = none, py::kw_only(),
      "out"_a = none, "reverse_out"_a = none, "lse_p_out"_a = none, "lse_q_out"_a = none,
      "with_reverse"_a = false, "with_lse"_a = false, "accumulation"_a = "input",
      "parallel"_a = true,
      doc("kl_divergence(p_logits, q_logits, mask=None, *, out=None, reverse_out=None, "
          "lse_p_out=None, lse_q_out=None, with_reverse=False, with_lse=False, "
          "accumulation='input', parallel=True) -> kl | tuple",
          R"(Exact full-vocabulary ``KL(p || q)`` per row, ``p = softmax(p_logits)``, ``q = softmax(q_logits)``.

Args:
  p_logits, q_logits: ``[N, V]``, same dtype and shape (p is the sampling distribution).
  out: optional ``[N]``. with_reverse / reverse_out: also ``KL(q || p)`` (same pass).
  with_lse / lse_p_out / lse_q_out: also both log-sum-exps (for ``kl_divergence_backward``).
Returns:
  ``kl`` ``[N]`` alone, or the tuple ``(kl[, kl_reverse][, lse_p, lse_q])``. KL is +inf exactly when
  p puts mass where q_logits is -inf.)")
          .c_str());
  m.def(
      "kl_divergence_backward", &kl_divergence_backward, "p_logits"_a, "q_logits"_a, "lse_p"_a,
      "lse_q"_a, "kl"_a, "grad"_a, "mask"_a = none, py::kw_only(), "out_p"_a = none,
      "out_q"_a = none, "q_grad"_a = true, "accumulate"_a = false, "accumulation"_a = "input",
      "parallel"_a = true,
      doc("kl_divergence_backward(p_logits, q_logits, lse_p, lse_q, kl, grad, mask=None, *, "
          "out_p=None, out_q=None, q_grad=True, accumulate=False, accumulation='input', "
          "parallel=True) -> (dp, dq) | dp",
          R"(Gradient of ``KL(p || q)`` scaled by ``grad``: ``dp[i, j] = grad[i] p_j ((log p_j - log q_j) - kl[i])``, ``dq[i, j] = grad[i] (q_j - p_j)``.

Args:
  p_logits, q_logits: ``[N, V]``. lse_p, lse_q, kl: ``[N]`` from the forward. grad: ``[N]``.
  out_p, out_q: optional ``[N, V]`` outputs. q_grad=False skips dq (a frozen reference).
Returns:
  ``(dp, dq)``, or ``dp`` alone when ``q_grad=False``. An infinite KL raises prefopt.InvalidArgument.)")
          .c_str());
  m.def(
      "token_stats", &token_stats, "logits"_a, "targets"_a = none, "q_logits"_a = none,
      "mask"_a = none, py::kw_only(),
      "outputs"_a = std::vector<std::string>{"log_probs", "logsumexp"}, "out"_a = none,
      "accumulation"_a = "input", "parallel"_a = true,
      doc("token_stats(logits, targets=None, q_logits=None, mask=None, *, outputs=('log_probs', "
          "'logsumexp'), out=None, accumulation='input', parallel=True) -> dict",
          R"(One pass over each row producing any of ``log_probs``, ``logsumexp``, ``entropy`` and, with ``q_logits``, ``kl``, ``kl_reverse``, ``logsumexp_q``; each bitwise equal to the dedicated kernel's.

Args:
  logits: ``[N, V]``. targets: ``[N]`` int32/int64 (needed for ``log_probs``).
  q_logits: optional ``[N, V]`` (e.g. the reference model) for the KL outputs.
  outputs: names to compute. out: optional dict name -> ``[N]`` caller array.
Returns:
  dict name -> ``[N]`` array (the logits' dtype).)")
          .c_str());
  m.def(
      "token_stats_backward", &token_stats_backward, "logits"_a, "targets"_a = none,
      "q_logits"_a = none, py::kw_only(), "saved"_a, "grads"_a, "mask"_a = none, "out"_a = none,
      "out_q"_a = none, "q_grad"_a = false, "accumulate"_a = false, "accumulation"_a = "input",
      "parallel"_a = true,
      doc("token_stats_backward(logits, targets=None, q_logits=None, *, saved, grads, mask=None, "
          "out=None, out_q=None, q_grad=False, accumulate=False, accumulation='input', "
          "parallel=True) -> dlogits | (dlogits, dq)",
          R"(One sweep turning upstream gradients of the token stats into ``dlogits``: ``g_lp (1[j = t] - p) - g_H p (log p + H) + g_KL p ((log p - log q) - KL)``.

Args:
  logits: ``[N, V]``. targets: ``[N]`` (with a log_probs gradient). q_logits: ``[N, V]`` (with a KL
  gradient). saved: dict with ``logsumexp`` (always), ``entropy`` (with an entropy gradient), ``kl``
  and ``logsumexp_q`` (with a KL gradient). grads: dict with any of ``log_probs``, ``entropy``,
  ``kl`` (``[N]`` each). q_grad: also return ``dq = g_KL (q - p)``.
Returns:
  ``dlogits`` ``[N, V]``, or ``(dlogits, dq)`` with ``q_grad``.)")
          .c_str());
  m.def("sampled_kl", &sampled_kl, "log_probs"_a, "ref_log_probs"_a, "estimator"_a = "k1",
        "mask"_a = none, py::kw_only(), "out"_a = none,
        R"(sampled_kl(log_probs, ref_log_probs, estimator='k1', mask=None, *, out=None) -> kl

Sampled per-token KL estimators of ``d = log_probs - ref_log_probs`` (``[T]`` float32/float64 each):
``k1 = d`` (unbiased), ``k2 = d^2/2``, ``k3 = e^{-d} - 1 + d`` (unbiased, >= 0, full relative
accuracy as d -> 0), ``abs = |d|``. Masked positions give 0. Non-finite log-probs at unmasked
positions raise prefopt.InvalidArgument.)");
  m.def(
      "sampled_kl_backward", &sampled_kl_backward, "log_probs"_a, "ref_log_probs"_a, "grad"_a,
      "estimator"_a = "k1", "mask"_a = none, py::kw_only(), "out"_a = none, "ref_out"_a = none,
      "ref_grad"_a = false, "accumulate"_a = false,
      R"(sampled_kl_backward(log_probs, ref_log_probs, grad, estimator='k1', mask=None, *, out=None, ref_out=None, ref_grad=False, accumulate=False) -> d_log_probs | (d_log_probs, d_ref_log_probs)

``d_log_probs = grad k'(d)`` and, with ``ref_grad``, ``d_ref_log_probs = -grad k'(d)`` (the reference
is usually a stop-gradient).)");
}

}  // namespace prefopt::python
