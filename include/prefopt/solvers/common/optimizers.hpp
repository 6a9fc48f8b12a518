#pragma once
/// \file
/// First-order optimizers over a flat parameter vector, for the gradient-based tabular solvers
/// (RLHF-PPO, the DPO family, HIR). All minimise: `theta <- theta - step`.
///
/// - SGD: `theta <- theta - lr g`.
/// - Adam (Kingma and Ba, "Adam: A Method for Stochastic Optimization", arXiv 1412.6980):
///   `m <- b1 m + (1-b1) g`, `v <- b2 v + (1-b2) g^2`,
///   `theta <- theta - lr (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)`.
/// The kind is chosen once per run (a runtime choice from configs); the update loops are
/// vectorised Eigen expressions and allocate nothing after construction. A schedule changes the
/// learning rate between steps with `set_learning_rate`; `clip_global_norm` rescales a gradient
/// to a maximum Euclidean norm before the step (Pascanu, Mikolov and Bengio, "On the difficulty of
/// training recurrent neural networks", arXiv 1211.5063).

#include <Eigen/Core>

#include <cmath>
#include <string_view>

#include "prefopt/core/assert.hpp"
#include "prefopt/core/types.hpp"

namespace prefopt {

enum class optimizer_kind { sgd, adam };

/// Hyperparameters of `optimizer`.
struct optimizer_config {
  optimizer_kind kind = optimizer_kind::adam;
  double learning_rate = 0.05;  ///< > 0
  double beta1 = 0.9;           ///< Adam first-moment decay, in [0, 1)
  double beta2 = 0.999;         ///< Adam second-moment decay, in [0, 1)
  double epsilon = 1e-8;        ///< Adam denominator guard, > 0

  /// Throws `prefopt::invalid_argument` naming `function` and the bad field.
  void validate(const char* function) const {
    PREFOPT_CHECK(std::isfinite(learning_rate) && learning_rate > 0.0, invalid_argument, function,
                  ": optimizer.learning_rate = ", learning_rate, ", expected > 0");
    PREFOPT_CHECK(beta1 >= 0.0 && beta1 < 1.0, invalid_argument, function,
                  ": optimizer.beta1 = ", beta1, ", expected a value in [0, 1)");
    PREFOPT_CHECK(beta2 >= 0.0 && beta2 < 1.0, invalid_argument, function,
                  ": optimizer.beta2 = ", beta2, ", expected a value in [0, 1)");
    PREFOPT_CHECK(epsilon > 0.0, invalid_argument, function, ": optimizer.epsilon = ", epsilon,
                  ", expected > 0");
  }
};

/// Name of an optimizer kind as used in configs ("sgd", "adam").
[[nodiscard]] constexpr std::string_view to_string(optimizer_kind kind) noexcept {
  return kind == optimizer_kind::sgd ? "sgd" : "adam";
}

/// Optimizer state for one parameter vector of fixed size.
class optimizer {
 public:
  optimizer(const optimizer_config& config, index_t size) : config_(config) {
    config_.validate("optimizer");
    PREFOPT_CHECK(size >= 0, shape_error, "optimizer: size = ", size, ", expected >= 0");
    if (config_.kind == optimizer_kind::adam) {
      m_ = vector_d::Zero(size);
      v_ = vector_d::Zero(size);
    }
    size_ = size;
  }

  [[nodiscard]] const optimizer_config& config() const noexcept { return config_; }
  /// Number of steps taken.
  [[nodiscard]] long steps() const noexcept { return t_; }

  /// The learning rate of the next steps (a schedule's value; finite, > 0). The Adam moments and
  /// the step count are kept.
  void set_learning_rate(double learning_rate) {
    PREFOPT_CHECK(std::isfinite(learning_rate) && learning_rate > 0.0, invalid_argument,
                  "optimizer::set_learning_rate: learning_rate = ", learning_rate,
                  ", expected a finite value > 0");
    config_.learning_rate = learning_rate;
  }

  /// One descent step on `parameters` with `gradient` (same size as the optimizer).
  void step(Eigen::Ref<vector_d> parameters, const Eigen::Ref<const vector_d>& gradient) {
    step_impl<double>(parameters, gradient);
  }

  /// The same step on float parameters (a user model's float weights): the gradient is widened
  /// to double, the Adam moments stay in double, and the step is rounded to float once when it is
  /// subtracted, so float and double parameters follow the same trajectory up to that rounding.
  void step(Eigen::Ref<vector_f> parameters, const Eigen::Ref<const vector_f>& gradient) {
    step_impl<float>(parameters, gradient);
  }

 private:
  template <class T>
  void step_impl(Eigen::Ref<vector_t<T>> parameters,
                 const Eigen::Ref<const vector_t<T>>& gradient) {
    PREFOPT_CHECK(parameters.size() == size_ && gradient.size() == size_, shape_error,
                  "optimizer::step: parameters has ", parameters.size(), " entries and gradient ",
                  gradient.size(), ", expected ", size_);
    ++t_;
    const double lr = config_.learning_rate;
    if (config_.kind == optimizer_kind::sgd) {
      parameters -= (lr * gradient.template cast<double>()).template cast<T>();
      return;
    }
    const double b1 = config_.beta1, b2 = config_.beta2;
    m_ = b1 * m_ + (1.0 - b1) * gradient.template cast<double>();
    v_ = b2 * v_ + (1.0 - b2) * gradient.template cast<double>().cwiseAbs2();
    const double c1 = 1.0 - std::pow(b1, static_cast<double>(t_));
    const double c2 = 1.0 - std::pow(b2, static_cast<double>(t_));
    parameters.array() -=
        (lr * (m_.array() / c1) / ((v_.array() / c2).sqrt() + config_.epsilon)).template cast<T>();
  }

  optimizer_config config_;
  vector_d m_, v_;
  index_t size_ = 0;
  long t_ = 0;
};

/// Global-norm clipping: with `n = ||gradient||_2` (accumulated in double), scales `gradient` by
/// `max_norm / n` when `n > max_norm`, and returns `n` (the norm before clipping). `max_norm <= 0`
/// turns clipping off. A non-finite `n` leaves `gradient` unchanged (the caller decides what a
/// non-finite gradient means).
template <class T>
double clip_global_norm(Eigen::Ref<vector_t<T>> gradient, double max_norm) {
  double sum = 0.0;
  for (index_t k = 0; k < gradient.size(); ++k) {
    const auto g = static_cast<double>(gradient(k));
    sum += g * g;
  }
  const double norm = std::sqrt(sum);
  if (max_norm > 0.0 && std::isfinite(norm) && norm > max_norm) {
    gradient *= static_cast<T>(max_norm / norm);
  }
  return norm;
}

}  // namespace prefopt
