#pragma once
/// \file
/// The argument readers the loss bindings share (losses.cpp, nash_losses.cpp): `[n]` float
/// vectors of the caller's memory (never converted), optional ones, int64 / int32 lengths and
/// offsets, the reduction name and a metrics struct's `named()` values as a dict.

#include <cstdint>
#include <pybind11/pybind11.h>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "arrays.hpp"
#include "prefopt/losses/common.hpp"

namespace prefopt::python {

template <class T>
using cvec = Eigen::Map<const vector_t<T>>;

template <class T>
inline cvec<T> vec(const char* fn, const char* arg, py::handle obj, index_t n, py::array& keep) {
  keep = as_array(fn, arg, obj);
  const auto s = vector_in<T>(fn, arg, keep, n);
  return {s.data(), static_cast<index_t>(s.size())};
}

/// Optional `[n]` vector: a size-0 map for None.
template <class T>
inline cvec<T> optional_vec(const char* fn, const char* arg, py::handle obj, index_t n,
                            py::array& keep) {
  if (obj.is_none()) return {nullptr, 0};
  return vec<T>(fn, arg, obj, n, keep);
}

/// Lengths or offsets (`index` = int64): int64 arrays in place, int32 widened into `buffer`.
inline std::span<const index_t> indices_in(const char* fn, const char* arg, py::handle obj,
                                           index_t n, py::array& keep,
                                           std::vector<index_t>& buffer) {
  if (obj.is_none()) return {};
  keep = as_array(fn, arg, obj);
  if (has_dtype<std::int64_t>(keep)) {
    check_vector(fn, arg, keep, n, sizeof(std::int64_t));
    return {static_cast<const index_t*>(keep.data()), static_cast<std::size_t>(keep.shape(0))};
  }
  if (!has_dtype<std::int32_t>(keep)) wrong_dtype(fn, arg, keep, "int64 or int32");
  check_vector(fn, arg, keep, n, sizeof(std::int32_t));
  const auto* p = static_cast<const std::int32_t*>(keep.data());
  buffer.assign(p, p + keep.shape(0));
  return buffer;
}

inline losses::reduction reduction_in(const char* fn, std::string_view name) {
  if (name == "mean") return losses::reduction::mean;
  if (name == "sum") return losses::reduction::sum;
  PREFOPT_THROW(invalid_argument, fn, ": reduction = '", name, "', expected 'mean' or 'sum'");
}

template <class Metrics>
inline py::dict named_metrics(const Metrics& m) {
  py::dict d;
  for (const auto& [name, value] : m.named()) {
    d[py::str(std::string(name))] = static_cast<double>(value);
  }
  return d;
}

}  // namespace prefopt::python
