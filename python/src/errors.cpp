/// \file
/// `prefopt.Error` and its subclasses. The Python hierarchy mirrors core/error.hpp:
///
///     Error(RuntimeError)
///       InvalidArgument(Error, ValueError)
///         ShapeError(InvalidArgument)
///         DTypeError(InvalidArgument, TypeError)   (bindings only: a wrong NumPy/torch dtype)
///       ParseError(Error)
///       IoError(Error, OSError)
///       ConvergenceError(Error)
///       AssertionError_(Error)  exported as prefopt.InternalAssertionError
///
/// Every prefopt exception raised in C++ reaches Python as the matching class with the same
/// message (which names the function, the argument and the row / index).

#include <exception>
#include <pybind11/pybind11.h>

#include "arrays.hpp"
#include "bindings.hpp"
#include "prefopt/core/error.hpp"

namespace prefopt::python {

namespace {

struct error_types {
  py::handle error, invalid_argument, shape_error, dtype_error, parse_error, io_error,
      convergence_error, assertion_error;
};

error_types& types() {
  static error_types t;
  return t;
}

py::handle new_exception(py::module_& m, const char* name, py::tuple bases, const char* doc) {
  const std::string qualified = std::string("prefopt.") + name;
  PyObject* type = PyErr_NewExceptionWithDoc(qualified.c_str(), doc, bases.ptr(), nullptr);
  if (type == nullptr) throw py::error_already_set();
  m.add_object(name, py::handle(type));  // the module keeps the reference
  return type;
}

}  // namespace

void bind_errors(py::module_& m) {
  auto& t = types();
  const py::handle runtime(PyExc_RuntimeError);
  t.error = new_exception(m, "Error", py::make_tuple(runtime),
                          "Root of every error prefopt raises (prefopt::error).");
  t.invalid_argument =
      new_exception(m, "InvalidArgument", py::make_tuple(t.error, py::handle(PyExc_ValueError)),
                    "An argument has the wrong value (prefopt::invalid_argument).");
  t.shape_error = new_exception(m, "ShapeError", py::make_tuple(t.invalid_argument),
                                "Arguments whose shapes or sizes disagree (prefopt::shape_error).");
  t.dtype_error = new_exception(
      m, "DTypeError", py::make_tuple(t.invalid_argument, py::handle(PyExc_TypeError)),
      "An array or tensor of the wrong dtype, or not an array at all (the bindings "
      "never convert inputs).");
  t.parse_error = new_exception(m, "ParseError", py::make_tuple(t.error),
                                "Malformed external input: config, game file, JSONL record.");
  t.io_error = new_exception(m, "IoError", py::make_tuple(t.error, py::handle(PyExc_OSError)),
                             "A file could not be read or written, or failed a check.");
  t.convergence_error = new_exception(m, "ConvergenceError", py::make_tuple(t.error),
                                      "An iterative method did not reach its stated target.");
  t.assertion_error = new_exception(m, "InternalAssertionError", py::make_tuple(t.error),
                                    "A debug-only internal invariant failed: a bug in prefopt.");

  py::register_exception_translator([](std::exception_ptr p) {
    if (!p) return;
    const auto& e = types();
    try {
      std::rethrow_exception(p);
    } catch (const dtype_error& x) {
      PyErr_SetString(e.dtype_error.ptr(), x.what());
    } catch (const shape_error& x) {
      PyErr_SetString(e.shape_error.ptr(), x.what());
    } catch (const invalid_argument& x) {
      PyErr_SetString(e.invalid_argument.ptr(), x.what());
    } catch (const parse_error& x) {
      PyErr_SetString(e.parse_error.ptr(), x.what());
    } catch (const io_error& x) {
      PyErr_SetString(e.io_error.ptr(), x.what());
    } catch (const convergence_error& x) {
      PyErr_SetString(e.convergence_error.ptr(), x.what());
    } catch (const assertion_error& x) {
      PyErr_SetString(e.assertion_error.ptr(), x.what());
    } catch (const error& x) {
      PyErr_SetString(e.error.ptr(), x.what());
    }
  });
}

}  // namespace prefopt::python
