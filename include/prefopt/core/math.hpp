#pragma once
/// \file
/// Numerically stable scalar and vector helpers shared by every layer (double or float).
///
/// - `softplus(x) = log(1 + e^x)`, `log_sigmoid(x) = -softplus(-x)`, `sigmoid(x)`: exact to a few
///   ulps for all finite x (no overflow for |x| up to the type's limit).
/// - `logsumexp(v)`: `log sum_i exp(v_i)` with the maximum subtracted; `-inf` entries contribute 0,
///   an all `-inf` vector gives `-inf`.
/// - `softmax(z, out)`, `log_softmax(z, out)`: the max-subtracted forms.
/// These are reference-quality helpers for small vectors (tabular rows); the batched, vectorized
/// kernels for `[N, V]` logits live in `kernels/`.

#include <Eigen/Core>

#include <cmath>
#include <limits>

namespace prefopt {

/// log(1 + e^x), stable for every finite x.
template <class T>
[[nodiscard]] T softplus(T x) noexcept {
  // For x > 0: x + log1p(e^-x); otherwise log1p(e^x). No overflow either way.
  return x > T(0) ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
}

/// log sigma(x) = -softplus(-x).
template <class T>
[[nodiscard]] T log_sigmoid(T x) noexcept {
  return -softplus(-x);
}

/// sigma(x) = 1 / (1 + e^-x), stable for every finite x.
template <class T>
[[nodiscard]] T sigmoid(T x) noexcept {
  if (x >= T(0)) return T(1) / (T(1) + std::exp(-x));
  const T e = std::exp(x);
  return e / (T(1) + e);
}

/// log sum_i exp(v_i), max-subtracted. Empty or all -inf input gives -inf.
template <class Derived>
[[nodiscard]] typename Derived::Scalar logsumexp(const Eigen::DenseBase<Derived>& v) {
  using T = typename Derived::Scalar;
  if (v.size() == 0) return -std::numeric_limits<T>::infinity();
  const T m = v.maxCoeff();
  if (m == -std::numeric_limits<T>::infinity()) return m;
  return m + std::log((v.derived().array() - m).exp().sum());
}

/// out = softmax(z) (max-subtracted); `z` and `out` are vectors of the same size and may alias.
/// `out` may be a temporary block or `Eigen::Ref` (the Eigen idiom for writable expressions).
template <class In, class Out>
void softmax(const Eigen::MatrixBase<In>& z, const Eigen::MatrixBase<Out>& out_) {
  auto& out = const_cast<Eigen::MatrixBase<Out>&>(out_);  // NOLINT: Eigen's documented idiom
  const auto m = z.maxCoeff();
  out = (z.array() - m).exp().matrix();
  out /= out.sum();
}

/// out = z - logsumexp(z); same shapes and aliasing rules as `softmax`.
template <class In, class Out>
void log_softmax(const Eigen::MatrixBase<In>& z, const Eigen::MatrixBase<Out>& out_) {
  auto& out = const_cast<Eigen::MatrixBase<Out>&>(out_);  // NOLINT: Eigen's documented idiom
  const auto lse = logsumexp(z);
  out = (z.array() - lse).matrix();
}

}  // namespace prefopt
