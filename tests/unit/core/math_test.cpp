#include "prefopt/core/math.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "prefopt/core/types.hpp"

TEMPLATE_TEST_CASE("softplus, log_sigmoid and sigmoid are finite and exact at extreme arguments",
                   "[core][math]", float, double) {
  using T = TestType;
  const T big = T(1000);
  CHECK(prefopt::softplus(big) == big);
  CHECK(prefopt::softplus(-big) == T(0));
  CHECK(prefopt::log_sigmoid(-big) == -big);
  CHECK(prefopt::sigmoid(big) == T(1));
  CHECK(prefopt::sigmoid(-big) == T(0));
  CHECK(prefopt::softplus(T(0)) == Approx(std::log(2.0)));
  CHECK(prefopt::sigmoid(T(0)) == T(0.5));
  for (T x : {T(-30), T(-2.5), T(-1e-3), T(0.7), T(12)}) {
    CHECK(prefopt::sigmoid(x) + prefopt::sigmoid(-x) == Approx(1.0));
    CHECK(prefopt::log_sigmoid(x) == Approx(std::log(prefopt::sigmoid(static_cast<double>(x)))));
  }
}

TEST_CASE("logsumexp and softmax are exact to 1e-12 for logits spanning +-1e3", "[core][math]") {
  Eigen::VectorXd z(4);
  z << -1000.0, 999.0, 1000.0, 0.0;
  const double expected = 1000.0 + std::log1p(std::exp(-1.0));  // other terms underflow to 0
  CHECK(std::abs(prefopt::logsumexp(z) - expected) <= 1e-12);
  Eigen::VectorXd p(4), lp(4);
  prefopt::softmax(z, p);
  prefopt::log_softmax(z, lp);
  CHECK(std::abs(p.sum() - 1.0) <= 1e-12);
  CHECK(std::abs(p[2] - 1.0 / (1.0 + std::exp(-1.0))) <= 1e-12);
  CHECK(std::abs(lp[1] - (999.0 - expected)) <= 1e-12);
}

TEST_CASE("logsumexp ignores -inf entries and is -inf for an all -inf or empty vector",
          "[core][math]") {
  const double inf = std::numeric_limits<double>::infinity();
  Eigen::Vector3d z(-inf, 0.0, -inf);
  CHECK(prefopt::logsumexp(z) == 0.0);
  CHECK(prefopt::logsumexp(Eigen::Vector2d(-inf, -inf)) == -inf);
  CHECK(prefopt::logsumexp(Eigen::VectorXd(0)) == -inf);
}

TEST_CASE("geometric mixture of two softmaxes equals the softmax of the mixed logits",
          "[core][math]") {
  // ALGORITHMS.md §0.5: pi^a mu^(1-a) / Z == softmax(a z + (1 - a) w), to 1e-12.
  Eigen::VectorXd z(5), w(5), p(5), q(5), mixed(5);
  z << 0.3, -1.2, 2.0, 0.0, 5.0;
  w << 1.0, 1.0, -3.0, 0.5, -0.25;
  const double a = 0.37;
  prefopt::softmax(z, p);
  prefopt::softmax(w, q);
  Eigen::VectorXd geo = (p.array().pow(a) * q.array().pow(1 - a)).matrix();
  geo /= geo.sum();
  prefopt::softmax((a * z + (1 - a) * w).eval(), mixed);
  CHECK((geo - mixed).cwiseAbs().maxCoeff() <= 1e-12);
}
