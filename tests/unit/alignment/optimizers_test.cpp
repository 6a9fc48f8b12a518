#include "prefopt/solvers/common/optimizers.hpp"

#include <catch2/catch.hpp>

#include <cmath>

using prefopt::optimizer;
using prefopt::optimizer_config;
using prefopt::optimizer_kind;
using prefopt::vector_d;

TEST_CASE("SGD takes the step -lr * g", "[alignment][optimizers]") {
  optimizer opt(optimizer_config{optimizer_kind::sgd, 0.5}, 2);
  vector_d x(2), g(2);
  x << 1.0, -2.0;
  g << 0.2, 4.0;
  opt.step(x, g);
  CHECK(x[0] == 0.9);
  CHECK(x[1] == -4.0);
  CHECK(opt.steps() == 1);
}

TEST_CASE("Adam's first step moves every coordinate by lr against the gradient's sign",
          "[alignment][optimizers]") {
  // With bias correction, m/(1-b1) = g and v/(1-b2) = g^2, so the first step is lr g / (|g| + eps).
  optimizer opt(optimizer_config{optimizer_kind::adam, 0.1}, 3);
  vector_d x = vector_d::Zero(3), g(3);
  g << 3.0, -1e-3, 0.0;
  opt.step(x, g);
  CHECK(x[0] == Approx(-0.1).epsilon(1e-8));
  CHECK(x[1] == Approx(0.1).epsilon(1e-4));
  CHECK(x[2] == 0.0);
}

TEST_CASE("Adam minimises a convex quadratic", "[alignment][optimizers]") {
  optimizer opt(optimizer_config{optimizer_kind::adam, 0.05}, 2);
  vector_d x(2), target(2);
  x << 5.0, -3.0;
  target << 1.0, 2.0;
  for (int t = 0; t < 3000; ++t) {
    const vector_d g = 2.0 * (x - target);
    opt.step(x, g);
  }
  CHECK((x - target).norm() < 1e-3);
}

TEST_CASE("optimizer rejects bad hyperparameters and shapes by name", "[alignment][optimizers]") {
  CHECK_THROWS_WITH(optimizer(optimizer_config{optimizer_kind::adam, -1.0}, 2),
                    Catch::Contains("optimizer.learning_rate = -1"));
  optimizer_config c;
  c.beta2 = 1.0;
  CHECK_THROWS_WITH(optimizer(c, 2), Catch::Contains("optimizer.beta2 = 1"));
  optimizer opt(optimizer_config{}, 2);
  vector_d x(3), g(3);
  CHECK_THROWS_AS(opt.step(x, g), prefopt::shape_error);
}

TEST_CASE("optimizer::step takes float parameters and follows the double trajectory",
          "[alignment][optimizers]") {
  for (const auto kind : {optimizer_kind::sgd, optimizer_kind::adam}) {
    optimizer od(optimizer_config{kind, 0.05}, 3), of(optimizer_config{kind, 0.05}, 3);
    vector_d xd(3);
    xd << 1.0, -2.0, 0.5;
    prefopt::vector_f xf = xd.cast<float>();
    for (int t = 0; t < 50; ++t) {
      // Gradient of 0.5 * sum_i (i + 1) x_i^2, evaluated at each iterate in its own precision.
      const vector_d gd = xd.cwiseProduct(vector_d::LinSpaced(3, 1.0, 3.0));
      const prefopt::vector_f gf = xf.cwiseProduct(prefopt::vector_f::LinSpaced(3, 1.0f, 3.0f));
      od.step(xd, gd);
      of.step(xf, gf);
    }
    CHECK(of.steps() == 50);
    CHECK((xf.cast<double>() - xd).cwiseAbs().maxCoeff() <= 1e-5);
    CHECK(xd.norm() < 1.0);  // it moved toward the minimum
  }
  optimizer opt(optimizer_config{}, 2);
  prefopt::vector_f x = prefopt::vector_f::Zero(3), g = prefopt::vector_f::Zero(3);
  CHECK_THROWS_AS(opt.step(x, g), prefopt::shape_error);
}
