/// \file
/// Array checks and conversions shared by every area of the Python module (see arrays.hpp).

#include "arrays.hpp"

#include <cstdint>
#include <limits>
#include <string>

namespace prefopt::python {

namespace {

/// torch.Tensor when torch is already imported (never imports it), else null. Looked up once
/// torch is in sys.modules; the type object lives as long as the interpreter.
PyObject* torch_tensor_type() {
  static PyObject* type = nullptr;
  if (type == nullptr) {
    const py::dict modules = py::module_::import("sys").attr("modules");
    if (!modules.contains("torch")) return nullptr;
    type = py::object(modules["torch"].attr("Tensor")).release().ptr();
  }
  return type;
}

[[nodiscard]] bool is_torch_tensor(py::handle obj) {
  PyObject* type = torch_tensor_type();
  return type != nullptr && PyObject_IsInstance(obj.ptr(), type) == 1;
}

/// Why a tensor has no NumPy view (only called once `.numpy()` failed).
[[noreturn]] void tensor_error(const char* fn, const char* arg, py::handle obj,
                               const py::error_already_set& e) {
  const auto device = py::str(obj.attr("device").attr("type")).cast<std::string>();
  if (device != "cpu") {
    PREFOPT_THROW(invalid_argument, fn, ": ", arg, " is a torch tensor on device '", device,
                  "', expected a CPU tensor (prefopt's kernels run on the CPU)");
  }
  if (obj.attr("is_conj")().cast<bool>() || obj.attr("is_neg")().cast<bool>()) {
    PREFOPT_THROW(invalid_argument, fn, ": ", arg,
                  " is a torch tensor with a lazy conjugate/negative bit; call "
                  ".resolve_conj()/.resolve_neg() first");
  }
  // e.g. bfloat16 / float16 tensors, which NumPy cannot view.
  PREFOPT_THROW(dtype_error, fn, ": ", arg, " has dtype ",
                py::str(obj.attr("dtype")).cast<std::string>(),
                ", expected torch.float32 / torch.float64 (or int32 / int64 token ids, uint8 / "
                "bool masks) (",
                e.what(), ")");
}

}  // namespace

py::array as_array(const char* fn, const char* arg, py::handle obj) {
  if (py::isinstance<py::array>(obj)) return py::reinterpret_borrow<py::array>(obj);
  if (is_torch_tensor(obj)) {
    try {
      // Shares the tensor's storage; raises for CUDA / meta tensors, lazy conj/neg bits and
      // dtypes NumPy has no view for, which tensor_error then explains.
      return obj.attr("detach")().attr("numpy")();
    } catch (py::error_already_set& e) {
      tensor_error(fn, arg, obj, e);
    }
  }
  PREFOPT_THROW(dtype_error, fn, ": ", arg, " is a ",
                py::str(py::type::handle_of(obj).attr("__name__")).cast<std::string>(),
                ", expected a numpy.ndarray or a CPU torch.Tensor (nothing is converted)");
}

std::string dtype_name(const py::array& a) {
  return py::str(a.dtype()).cast<std::string>();
}

void wrong_dtype(const char* fn, const char* arg, const py::array& a, std::string_view expected) {
  PREFOPT_THROW(dtype_error, fn, ": ", arg, " has dtype ", dtype_name(a), ", expected ", expected,
                " (prefopt never converts inputs; use numpy.asarray(x, dtype=...) or "
                "tensor.to(dtype) yourself)");
}

index_t checked_row_stride(const char* fn, const char* arg, const py::array& a, std::size_t item) {
  if (a.ndim() != 2) {
    PREFOPT_THROW(shape_error, fn, ": ", arg, " has ", a.ndim(),
                  " dimensions, expected a 2-d [N, V] array");
  }
  const index_t rows = a.shape(0);
  const index_t cols = a.shape(1);
  const auto s_item = static_cast<py::ssize_t>(item);
  if (reinterpret_cast<std::uintptr_t>(a.data()) % item != 0) {
    PREFOPT_THROW(invalid_argument, fn, ": ", arg,
                  " is not aligned to its element size; pass numpy.ascontiguousarray(", arg, ")");
  }
  if (rows > 0 && cols > 1 && a.strides(1) != s_item) {
    PREFOPT_THROW(invalid_argument, fn, ": ", arg, " has a column stride of ", a.strides(1),
                  " bytes, expected contiguous rows (", item,
                  " bytes); it would need a copy: pass numpy.ascontiguousarray(", arg,
                  ") or tensor.contiguous()");
  }
  if (rows <= 1) return cols;
  const py::ssize_t s = a.strides(0);
  if (s % s_item != 0 || s < cols * s_item) {
    PREFOPT_THROW(invalid_argument, fn, ": ", arg, " has a row stride of ", s,
                  " bytes, expected a positive multiple of the element size of at least one row (",
                  cols * s_item, " bytes); pass numpy.ascontiguousarray(", arg, ")");
  }
  return s / s_item;
}

void check_writeable(const char* fn, const char* arg, const py::array& a) {
  if (!a.writeable()) {
    PREFOPT_THROW(invalid_argument, fn, ": ", arg, " is read-only, expected a writeable array");
  }
}

void check_shape(const char* fn, const char* arg, const py::array& a, index_t rows, index_t cols) {
  if (a.shape(0) != rows || a.shape(1) != cols) {
    PREFOPT_THROW(shape_error, fn, ": ", arg, " is [", a.shape(0), ", ", a.shape(1),
                  "], expected [", rows, ", ", cols, "]");
  }
}

void check_vector(const char* fn, const char* arg, const py::array& a, index_t n,
                  std::size_t item) {
  if (a.ndim() != 1) {
    PREFOPT_THROW(shape_error, fn, ": ", arg, " has ", a.ndim(),
                  " dimensions, expected a 1-d array of one entry per row");
  }
  if (n >= 0 && a.shape(0) != n) {
    PREFOPT_THROW(shape_error, fn, ": ", arg, " has ", a.shape(0),
                  " entries, expected one per row (", n, ")");
  }
  if (a.shape(0) > 1 && a.strides(0) != static_cast<py::ssize_t>(item)) {
    PREFOPT_THROW(invalid_argument, fn, ": ", arg, " has a stride of ", a.strides(0),
                  " bytes, expected a contiguous vector (", item,
                  " bytes); pass numpy.ascontiguousarray(", arg, ")");
  }
  if (reinterpret_cast<std::uintptr_t>(a.data()) % item != 0) {
    PREFOPT_THROW(invalid_argument, fn, ": ", arg, " is not aligned to its element size");
  }
}

targets_arg targets_in(const char* fn, py::handle obj, index_t n, index_t vocabulary,
                       std::span<const std::uint8_t> mask) {
  targets_arg r;
  if (obj.is_none()) return r;
  r.array = as_array(fn, "targets", obj);
  if (has_dtype<std::int32_t>(r.array)) {
    check_vector(fn, "targets", r.array, n, sizeof(std::int32_t));
    r.span = {static_cast<const token_id*>(r.array.data()), static_cast<std::size_t>(n)};
    return r;
  }
  if (!has_dtype<std::int64_t>(r.array)) wrong_dtype(fn, "targets", r.array, "int32 or int64");
  check_vector(fn, "targets", r.array, n, sizeof(std::int64_t));
  const auto* src = static_cast<const std::int64_t*>(r.array.data());
  r.buffer.resize(static_cast<std::size_t>(n));
  constexpr auto lo = std::numeric_limits<token_id>::min();
  constexpr auto hi = std::numeric_limits<token_id>::max();
  for (index_t i = 0; i < n; ++i) {
    const auto u = static_cast<std::size_t>(i);
    const bool on = mask.empty() || mask[u] != 0;
    const std::int64_t t = src[i];
    if (on && (t < lo || t > hi)) {
      PREFOPT_THROW(invalid_argument, fn, ": targets[", i, "] = ", t,
                    " is outside the vocabulary [0, ", vocabulary, ")");
    }
    r.buffer[u] = on ? static_cast<token_id>(t) : token_id{0};
  }
  r.span = r.buffer;
  return r;
}

std::span<const std::uint8_t> mask_in(const char* fn, py::handle obj, index_t n, py::array& keep) {
  if (obj.is_none()) return {};
  keep = as_array(fn, "mask", obj);
  if (!has_dtype<std::uint8_t>(keep) && !has_dtype<bool>(keep)) {
    wrong_dtype(fn, "mask", keep, "uint8 or bool");
  }
  check_vector(fn, "mask", keep, n, 1);
  return {static_cast<const std::uint8_t*>(keep.data()), static_cast<std::size_t>(n)};
}

kernels::accumulation accumulation_in(const char* fn, std::string_view name) {
  if (name == "input") return kernels::accumulation::input;
  if (name == "double") return kernels::accumulation::double_precision;
  PREFOPT_THROW(invalid_argument, fn, ": accumulation = '", name,
                "', expected 'input' or 'double'");
}

options_arg options_in(const char* fn, py::handle mask, index_t n, std::string_view accumulation,
                       bool accumulate, bool parallel) {
  options_arg r;
  r.opt.mask = mask_in(fn, mask, n, r.mask_array);
  r.opt.accumulate = accumulation_in(fn, accumulation);
  r.opt.mode = accumulate ? kernels::write_mode::accumulate : kernels::write_mode::overwrite;
  r.opt.parallel = parallel;
  return r;
}

}  // namespace prefopt::python
