/// \file
/// `prefopt.kernels.linear_log_probs` / `linear_log_probs_backward` / `linear_workspace_bytes`:
/// the fused linear log-probs of kernels/linear_log_probs.hpp (hidden states and the output
/// matrix in, per-token log-probs out, never the `[N, V]` logits). Kept apart from kernels.cpp
/// because its GEMM instantiations dominate the compile time; the two files build in parallel.

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <string>
#include <string_view>
#include <vector>

#include "arrays.hpp"
#include "bindings.hpp"
#include "prefopt/kernels/linear_log_probs.hpp"

namespace prefopt::python {

namespace {

using namespace pybind11::literals;

kernels::linear_options linear_options_in(const char* fn, std::span<const std::uint8_t> mask,
                                          index_t block_size, index_t row_tile,
                                          std::string_view accumulation, bool accumulate,
                                          bool parallel) {
  if (block_size < 1) {
    PREFOPT_THROW(invalid_argument, fn, ": block_size = ", block_size, ", expected >= 1");
  }
  if (row_tile < 0) {
    PREFOPT_THROW(invalid_argument, fn, ": row_tile = ", row_tile, ", expected >= 0 (0: auto)");
  }
  kernels::linear_options o;
  o.block_size = block_size;
  o.row_tile = row_tile;
  o.accumulate = accumulation_in(fn, accumulation);
  o.mode = accumulate ? kernels::write_mode::accumulate : kernels::write_mode::overwrite;
  o.mask = mask;
  o.parallel = parallel;
  return o;
}

py::dict given_dict(py::handle d) {
  return d.is_none() ? py::dict() : py::reinterpret_borrow<py::dict>(d);
}

py::object entry(const py::dict& d, const char* key) {
  return d.contains(key) ? py::object(d[key]) : py::object(py::none());
}

py::dict linear_log_probs(py::handle hidden, py::handle weight, py::handle targets, py::handle bias,
                          py::handle mask, const std::vector<std::string>& outputs, py::handle out,
                          index_t block_size, index_t row_tile, std::string_view accumulation,
                          bool parallel) {
  const char* fn = "linear_log_probs";
  const auto h = as_array(fn, "hidden", hidden);
  const auto w = as_array(fn, "weight", weight);
  return dispatch_float(fn, "hidden", h, [&]<class T>() -> py::dict {
    const auto hm = matrix_in<T>(fn, "hidden", h);
    const auto wm = matrix_in<T>(fn, "weight", w);
    const index_t n = hm.rows();
    py::array keep_mask, keep_bias;
    const auto m = mask_in(fn, mask, n, keep_mask);
    const auto b = optional_vector_in<T>(fn, "bias", bias, wm.rows(), keep_bias);
    const auto t = targets_in(fn, targets, n, wm.rows(), m);
    const auto opt = linear_options_in(fn, m, block_size, row_tile, accumulation, false, parallel);
    const auto given = given_dict(out);
    kernels::linear_outputs<T> lo;
    py::dict result;
    for (const auto& name : outputs) {
      std::span<T>* slot = name == "log_probs"   ? &lo.log_probs
                           : name == "logsumexp" ? &lo.logsumexp
                           : name == "entropy"   ? &lo.entropy
                                                 : nullptr;
      if (slot == nullptr) {
        PREFOPT_THROW(invalid_argument, fn, ": outputs contains '", name,
                      "', expected some of log_probs, logsumexp, entropy");
      }
      const auto arg = std::string("out['") + name + "']";
      const auto v = vector_out_of<T>(fn, arg.c_str(), entry(given, name.c_str()), n);
      *slot = v.span;
      result[name.c_str()] = v.array;
    }
    {
      py::gil_scoped_release nogil;
      kernels::linear_log_probs(hm, wm, b, t.span, lo, opt);
    }
    return result;
  });
}

py::dict linear_log_probs_backward(py::handle hidden, py::handle weight, py::handle targets,
                                   py::handle bias, const py::dict& saved, const py::dict& grads,
                                   py::handle mask, const std::vector<std::string>& wrt,
                                   py::handle out, bool accumulate, index_t block_size,
                                   index_t row_tile, std::string_view accumulation, bool parallel) {
  const char* fn = "linear_log_probs_backward";
  const auto h = as_array(fn, "hidden", hidden);
  const auto w = as_array(fn, "weight", weight);
  return dispatch_float(fn, "hidden", h, [&]<class T>() -> py::dict {
    const auto hm = matrix_in<T>(fn, "hidden", h);
    const auto wm = matrix_in<T>(fn, "weight", w);
    const index_t n = hm.rows();
    py::array keep_mask, keep_bias, k1, k2, k3, k4;
    const auto m = mask_in(fn, mask, n, keep_mask);
    const auto b = optional_vector_in<T>(fn, "bias", bias, wm.rows(), keep_bias);
    const auto t = targets_in(fn, targets, n, wm.rows(), m);
    const auto opt =
        linear_options_in(fn, m, block_size, row_tile, accumulation, accumulate, parallel);
    for (const auto& [k, v] : saved) {
      const auto key = py::str(k).cast<std::string>();
      if (key != "logsumexp" && key != "entropy") {
        PREFOPT_THROW(invalid_argument, fn, ": saved has key '", key,
                      "', expected logsumexp (and entropy)");
      }
      (void)v;
    }
    for (const auto& [k, v] : grads) {
      const auto key = py::str(k).cast<std::string>();
      if (key != "log_probs" && key != "entropy") {
        PREFOPT_THROW(invalid_argument, fn, ": grads has key '", key,
                      "', expected some of log_probs, entropy");
      }
      (void)v;
    }
    kernels::linear_saved<T> s;
    s.logsumexp = optional_vector_in<T>(fn, "saved['logsumexp']", entry(saved, "logsumexp"), n, k1);
    s.entropy = optional_vector_in<T>(fn, "saved['entropy']", entry(saved, "entropy"), n, k2);
    kernels::linear_grads<T> g;
    g.log_probs = optional_vector_in<T>(fn, "grads['log_probs']", entry(grads, "log_probs"), n, k3);
    g.entropy = optional_vector_in<T>(fn, "grads['entropy']", entry(grads, "entropy"), n, k4);
    bool want_h = false, want_w = false, want_b = false;
    for (const auto& name : wrt) {
      if (name == "hidden") {
        want_h = true;
      } else if (name == "weight") {
        want_w = true;
      } else if (name == "bias") {
        want_b = true;
      } else {
        PREFOPT_THROW(invalid_argument, fn, ": wrt contains '", name,
                      "', expected some of hidden, weight, bias");
      }
    }
    if (want_b && b.empty()) {
      PREFOPT_THROW(invalid_argument, fn, ": wrt contains 'bias' but bias is None");
    }
    const auto given = given_dict(out);
    if (accumulate) {
      for (const auto* name : {"hidden", "weight", "bias"}) {
        const bool wanted = std::string_view(name) == "hidden"   ? want_h
                            : std::string_view(name) == "weight" ? want_w
                                                                 : want_b;
        if (wanted && !given.contains(name)) {
          PREFOPT_THROW(invalid_argument, fn, ": accumulate=True needs out['", name,
                        "'] to add to");
        }
      }
    }
    py::dict result;
    matrix_out<T> dh, dw;
    vector_out<T> db;
    if (want_h) {
      dh = matrix_out_of<T>(fn, "out['hidden']", entry(given, "hidden"), n, hm.cols());
      result["hidden"] = dh.array;
    }
    if (want_w) {
      dw = matrix_out_of<T>(fn, "out['weight']", entry(given, "weight"), wm.rows(), wm.cols());
      result["weight"] = dw.array;
    }
    if (want_b) {
      db = vector_out_of<T>(fn, "out['bias']", entry(given, "bias"), wm.rows());
      result["bias"] = db.array;
    }
    {
      py::gil_scoped_release nogil;
      kernels::linear_log_probs_backward(hm, wm, b, t.span, s, g, dh.map(), dw.map(), db.span, opt);
    }
    return result;
  });
}

std::size_t workspace_bytes(index_t n, index_t v, index_t d, py::handle dtype, bool backward,
                            index_t block_size, index_t row_tile, bool parallel) {
  const char* fn = "linear_workspace_bytes";
  const auto dt = py::dtype::from_args(py::reinterpret_borrow<py::object>(dtype));
  const auto opt = linear_options_in(fn, {}, block_size, row_tile, "input", false, parallel);
  if (dt.equal(py::dtype::of<float>())) {
    return kernels::linear_workspace_bytes<float>(n, v, d, opt, backward);
  }
  if (dt.equal(py::dtype::of<double>())) {
    return kernels::linear_workspace_bytes<double>(n, v, d, opt, backward);
  }
  PREFOPT_THROW(dtype_error, fn, ": dtype ", dt.attr("name").cast<std::string>(),
                ", expected float32 or float64");
}

constexpr const char* linear_common = R"(
Keywords: ``mask`` -- uint8/bool ``[N]`` (0: position not scored; outputs 0, no gradient; its hidden
row must still be finite); ``block_size`` -- vocabulary columns per block (rounded up to 1008; memory
and speed only, never the forward results); ``row_tile`` -- hidden rows per GEMM (0: auto);
``accumulation`` -- "input" or "double" for the log-sum-exp folds; ``parallel`` -- OpenMP.

Layout and errors as for the other kernels (see prefopt.kernels): row-major float32/float64 with
contiguous rows, nothing copied except int64 targets (narrowed to int32); prefopt.DTypeError,
prefopt.ShapeError, prefopt.InvalidArgument (target outside [0, V), non-finite logits per row).
This kernel allocates a per-thread workspace (``linear_workspace_bytes``). The GIL is released.)";

}  // namespace

void bind_linear(py::module_& m) {
  py::options doc_options;  // signatures are written in the docstrings
  doc_options.disable_function_signatures();
  const auto none = py::none();
  m.def(
      "linear_log_probs", &linear_log_probs, "hidden"_a, "weight"_a, "targets"_a = none,
      "bias"_a = none, "mask"_a = none, py::kw_only(),
      "outputs"_a = std::vector<std::string>{"log_probs", "logsumexp"}, "out"_a = none,
      "block_size"_a = kernels::reduction_tile, "row_tile"_a = 0, "accumulation"_a = "input",
      "parallel"_a = true,
      (std::string(
           R"(linear_log_probs(hidden, weight, targets=None, bias=None, mask=None, *, outputs=('log_probs', 'logsumexp'), out=None, block_size=1008, row_tile=0, accumulation='input', parallel=True) -> dict

Fused linear log-probs: with ``z_i = weight @ hidden[i] + bias``, ``log_probs[i] = z_{i, targets[i]} - logsumexp(z_i)`` and ``entropy[i] = H(softmax(z_i))``, walking the vocabulary in blocks so that the ``[N, V]`` logits are never built.

Args:
  hidden: ``[N, D]`` float32/float64. weight: ``[V, D]`` same dtype (e.g. ``lm_head.weight``).
  targets: ``[N]`` int32/int64 (needed for ``log_probs``). bias: optional ``[V]``.
  outputs: any of "log_probs", "logsumexp" (save it for the backward), "entropy".
  out: optional dict name -> ``[N]`` caller array.
Returns:
  dict name -> ``[N]`` array; bitwise equal to ``token_log_probs`` on the same logits.)") +
       "\n" + linear_common)
          .c_str());
  m.def(
      "linear_log_probs_backward", &linear_log_probs_backward, "hidden"_a, "weight"_a,
      "targets"_a = none, "bias"_a = none, py::kw_only(), "saved"_a, "grads"_a, "mask"_a = none,
      "wrt"_a = std::vector<std::string>{"hidden", "weight"}, "out"_a = none,
      "accumulate"_a = false, "block_size"_a = kernels::reduction_tile, "row_tile"_a = 0,
      "accumulation"_a = "input", "parallel"_a = true,
      (std::string(
           R"(linear_log_probs_backward(hidden, weight, targets=None, bias=None, *, saved, grads, mask=None, wrt=('hidden', 'weight'), out=None, accumulate=False, block_size=1008, row_tile=0, accumulation='input', parallel=True) -> dict

Fused linear backward: with ``dz_iv = g_lp,i (1[v = t_i] - p_iv) - g_H,i p_iv (log p_iv + H_i)`` recomputed block by block, ``dhidden = dz @ weight`` ``[N, D]``, ``dweight = dz.T @ hidden`` ``[V, D]``, ``dbias = dz.sum(0)`` ``[V]``.

Args:
  hidden, weight, targets, bias: as for ``linear_log_probs``.
  saved: dict with ``logsumexp`` (and ``entropy`` with an entropy gradient) from the forward.
  grads: dict with any of ``log_probs``, ``entropy`` (``[N]`` upstream gradients).
  wrt: any of "hidden", "weight", "bias". out: optional dict name -> caller array;
  ``accumulate=True`` adds into them.
Returns:
  dict name -> gradient array.)") +
       "\n" + linear_common)
          .c_str());
  m.def("linear_workspace_bytes", &workspace_bytes, "n"_a, "v"_a, "d"_a, "dtype"_a = "float32",
        py::kw_only(), "backward"_a = false, "block_size"_a = kernels::reduction_tile,
        "row_tile"_a = 0, "parallel"_a = true,
        "linear_workspace_bytes(n, v, d, dtype='float32', *, backward=False, block_size=1008, "
        "row_tile=0, parallel=True) -> int\n\nBytes the fused linear kernel allocates for n rows, "
        "vocabulary v, hidden size d (per "
        "thread workspace, plus private dhidden copies for a multi-threaded backward), under the "
        "current thread count.");
}

}  // namespace prefopt::python
