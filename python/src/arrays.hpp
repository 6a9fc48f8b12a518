#pragma once
/// \file
/// How the Python module sees the caller's arrays: NumPy arrays (and CPU `torch.Tensor`s through
/// their zero-copy NumPy view) become Eigen maps and spans over the same memory, or are rejected
/// with a `prefopt.Error` naming the function and the argument. Nothing here copies an input,
/// except `targets_in`'s documented narrowing of int64 token ids into an `[N]` int32 buffer.
///
/// Accepted layouts: float32 / float64 in native byte order; matrices `[N, V]` with contiguous rows
/// and any row stride (a slice of whole rows or a leading column block is fine, Fortran order or a
/// column step is not); vectors `[N]` contiguous. Outputs must also be writeable.

#include <Eigen/Core>

#include <cstdint>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "prefopt/core/error.hpp"
#include "prefopt/core/types.hpp"
#include "prefopt/kernels/options.hpp"

namespace prefopt {

/// An argument of the wrong dtype (a `prefopt.InvalidArgument` that is also a `TypeError` in
/// Python). Defined by the bindings: the C++ library never sees NumPy dtypes.
class dtype_error : public invalid_argument {
 public:
  using invalid_argument::invalid_argument;
};

}  // namespace prefopt

namespace prefopt::python {

namespace py = pybind11;

template <class T>
using row_matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using cmatrix = Eigen::Map<const row_matrix<T>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <class T>
using mmatrix = Eigen::Map<row_matrix<T>, Eigen::Unaligned, Eigen::OuterStride<>>;

/// `obj` as an ndarray without copying: an ndarray as is, a CPU `torch.Tensor` through
/// `tensor.detach().numpy()` (same memory). Anything else (lists, CUDA tensors, ...) is rejected.
py::array as_array(const char* fn, const char* arg, py::handle obj);

/// Name of an array's dtype for messages ("float32", "int64", ">f4", ...).
std::string dtype_name(const py::array& a);

template <class T>
[[nodiscard]] bool has_dtype(const py::array& a) {
  return a.dtype().equal(py::dtype::of<T>());
}

/// Throws `dtype_error`: "fn: arg has dtype X, expected E".
[[noreturn]] void wrong_dtype(const char* fn, const char* arg, const py::array& a,
                              std::string_view expected);

/// Row stride (in elements) of a matrix with contiguous rows; throws with a message saying how to
/// make one (numpy.ascontiguousarray) otherwise. Checks ndim, alignment and the dtype size.
index_t checked_row_stride(const char* fn, const char* arg, const py::array& a, std::size_t item);

template <class T>
[[nodiscard]] cmatrix<T> matrix_in(const char* fn, const char* arg, const py::array& a) {
  if (!has_dtype<T>(a)) wrong_dtype(fn, arg, a, py::str(py::dtype::of<T>()).cast<std::string>());
  const index_t stride = checked_row_stride(fn, arg, a, sizeof(T));
  return {static_cast<const T*>(a.data()), a.shape(0), a.shape(1), Eigen::OuterStride<>(stride)};
}

/// A writeable `[rows, cols]` output: `obj` (checked: dtype T, shape, contiguous rows, writeable)
/// or, when None, a fresh C-contiguous array. `array` keeps it alive and is what Python receives.
template <class T>
struct matrix_out {
  py::array array;
  T* data = nullptr;
  index_t rows = 0;
  index_t cols = 0;
  index_t stride = 0;
  [[nodiscard]] mmatrix<T> map() const { return {data, rows, cols, Eigen::OuterStride<>(stride)}; }
};

void check_writeable(const char* fn, const char* arg, const py::array& a);
void check_shape(const char* fn, const char* arg, const py::array& a, index_t rows, index_t cols);

template <class T>
[[nodiscard]] matrix_out<T> matrix_out_of(const char* fn, const char* arg, py::handle obj,
                                          index_t rows, index_t cols) {
  matrix_out<T> r;
  if (obj.is_none()) {
    r.array = py::array_t<T>({rows, cols});
  } else {
    r.array = as_array(fn, arg, obj);
    if (!has_dtype<T>(r.array)) {
      wrong_dtype(fn, arg, r.array, py::str(py::dtype::of<T>()).cast<std::string>());
    }
    check_writeable(fn, arg, r.array);
  }
  r.stride = checked_row_stride(fn, arg, r.array, sizeof(T));
  check_shape(fn, arg, r.array, rows, cols);
  r.data = static_cast<T*>(r.array.mutable_data());
  r.rows = rows;
  r.cols = cols;
  return r;
}

/// Checks a 1-d contiguous array of `n` entries of type T (any n when n < 0).
void check_vector(const char* fn, const char* arg, const py::array& a, index_t n, std::size_t item);

template <class T>
[[nodiscard]] std::span<const T> vector_in(const char* fn, const char* arg, const py::array& a,
                                           index_t n) {
  if (!has_dtype<T>(a)) wrong_dtype(fn, arg, a, py::str(py::dtype::of<T>()).cast<std::string>());
  check_vector(fn, arg, a, n, sizeof(T));
  return {static_cast<const T*>(a.data()), static_cast<std::size_t>(a.shape(0))};
}

/// `vector_in` of an optional argument: empty span for None. `keep` holds the array.
template <class T>
[[nodiscard]] std::span<const T> optional_vector_in(const char* fn, const char* arg, py::handle obj,
                                                    index_t n, py::array& keep) {
  if (obj.is_none()) return {};
  keep = as_array(fn, arg, obj);
  return vector_in<T>(fn, arg, keep, n);
}

/// A writeable `[n]` output: `obj` (checked) or a fresh array when None.
template <class T>
struct vector_out {
  py::array array;
  std::span<T> span{};
};

template <class T>
[[nodiscard]] vector_out<T> vector_out_of(const char* fn, const char* arg, py::handle obj,
                                          index_t n) {
  vector_out<T> r;
  if (obj.is_none()) {
    r.array = py::array_t<T>(n);
  } else {
    r.array = as_array(fn, arg, obj);
    if (!has_dtype<T>(r.array)) {
      wrong_dtype(fn, arg, r.array, py::str(py::dtype::of<T>()).cast<std::string>());
    }
    check_writeable(fn, arg, r.array);
    check_vector(fn, arg, r.array, n, sizeof(T));
  }
  r.span = {static_cast<T*>(r.array.mutable_data()), static_cast<std::size_t>(n)};
  return r;
}

/// Token ids `[n]`: int32 arrays are used in place; int64 arrays (NumPy's and torch's default) are
/// narrowed into `buffer` (n * 4 bytes; values outside int32 in unmasked rows are rejected with
/// the kernels' own message). None gives an empty span (kernels that do not need targets).
struct targets_arg {
  py::array array;
  std::vector<token_id> buffer;
  std::span<const token_id> span{};
};

[[nodiscard]] targets_arg targets_in(const char* fn, py::handle obj, index_t n, index_t vocabulary,
                                     std::span<const std::uint8_t> mask);

/// The kernels' options from the Python keywords: mask (uint8 or bool `[n]`, None for all rows),
/// accumulation ("input" or "double"), accumulate (write mode), parallel.
struct options_arg {
  py::array mask_array;
  kernels::options opt;
};

[[nodiscard]] options_arg options_in(const char* fn, py::handle mask, index_t n,
                                     std::string_view accumulation, bool accumulate, bool parallel);

/// Parses "input" / "double".
[[nodiscard]] kernels::accumulation accumulation_in(const char* fn, std::string_view name);

/// The row mask `[n]` (uint8 or bool), empty for None; `keep` holds the array.
[[nodiscard]] std::span<const std::uint8_t> mask_in(const char* fn, py::handle obj, index_t n,
                                                    py::array& keep);

/// Calls `f.template operator()<T>()` with T = float or double, the dtype of `a`; `dtype_error`
/// otherwise.
template <class F>
decltype(auto) dispatch_float(const char* fn, const char* arg, const py::array& a, F&& f) {
  if (has_dtype<float>(a)) return f.template operator()<float>();
  if (has_dtype<double>(a)) return f.template operator()<double>();
  wrong_dtype(fn, arg, a, "float32 or float64");
}

}  // namespace prefopt::python
