#include "prefopt/losses/pair_regression.hpp"

#include <catch2/catch.hpp>

#include "prefopt/solvers/nash/mirror_descent.hpp"
#include "prefopt/solvers/nash/onpo.hpp"
#include "solver_helpers.hpp"

using namespace prefopt;
using test::vec;

namespace {
/// Minimises a quadratic pair loss exactly, independently of the closed forms: its gradient is
/// affine, g(z) = H z + b, so H is read off column by column and (H + 1 1^T) z = -b is solved
/// (the 1 1^T term fixes the gauge: the loss only depends on differences of z).
template <class Loss>
vector_d minimise(Loss loss, const vector_d& start) {
  const prefopt::index_t n = start.size();
  vector_d g0(n), g(n);
  const vector_d zero = vector_d::Zero(n);
  loss(zero, g0);
  matrix_d h(n, n);
  for (prefopt::index_t k = 0; k < n; ++k) {
    loss(vector_d(vector_d::Unit(n, k)), g);
    h.col(k) = g - g0;
  }
  const vector_d z = (h + matrix_d::Ones(n, n)).partialPivLu().solve(-g0);
  loss(z, g);
  CHECK(g.cwiseAbs().maxCoeff() <= 1e-12);
  return z;
}

double centred_distance(const vector_d& a, const vector_d& b) {
  const vector_d d = a - b;
  return (d.array() - d.mean()).abs().maxCoeff();
}
}  // namespace

TEST_CASE(
    "The tabular INPO squared loss over all pairs is minimised by the closed-form INPO step") {
  const auto game = random_intransitive_game(5, 3, random_reference(5, 4), 0.3);
  const double eta = 1.5;  // eta tau = 0.45
  const inpo<constant_step> solver(
      constant_step(eta), exact_payoff{},
      initial_policy::from_probabilities(vec({0.3, 0.25, 0.2, 0.15, 0.1})));
  auto state = solver.init(game);
  vector_d pi_t(5), log_pi_t(5);
  state.policy().probabilities(0, pi_t);
  state.policy().log_probabilities(0, log_pi_t);
  const vector_d anchor =
      eta * 0.3 * game.log_reference().row(0).transpose() + (1 - eta * 0.3) * log_pi_t;
  const matrix_d& p = game.preference(0);
  const vector_d z =
      minimise([&](const vector_d& x,
                   vector_d& g) { return losses::labelled_pair_loss(p, pi_t, anchor, eta, x, g); },
               anchor);
  (void)solver.step(game, state);
  CHECK(centred_distance(z, state.policy().logits().row(0).transpose()) <= 1e-6);
}

TEST_CASE(
    "ONPO's squared-loss minimiser equals the closed form; the two loss forms differ by a "
    "constant") {
  const auto game = random_intransitive_game(6, 8);
  const double eta = 0.5;
  const onpo<> solver{constant_step(eta)};
  auto state = solver.init(game);
  for (int t = 0; t < 3; ++t) (void)solver.step(game, state);
  // Step t: plays pi_t, then pi'_{t+1} = argmin with anchor pi'_t, data from pi_t.
  vector_d q(6);
  state.policy().probabilities(0, q);
  const vector_d anchor = state.auxiliary_logits().row(0).transpose();
  const matrix_d& p = game.preference(0);
  const vector_d z =
      minimise([&](const vector_d& x,
                   vector_d& g) { return losses::labelled_pair_loss(p, q, anchor, eta, x, g); },
               anchor);
  (void)solver.step(game, state);
  CHECK(centred_distance(z, state.auxiliary_logits().row(0).transpose()) <= 1e-6);
  // L - R is the same for every z.
  rng gen(2);
  vector_d none(0);
  double difference = 0;
  for (int k = 0; k < 10; ++k) {
    vector_d x(6);
    for (prefopt::index_t i = 0; i < 6; ++i) x[i] = gen.normal();
    const double d = losses::labelled_pair_loss(p, q, anchor, eta, x, none) -
                     losses::regression_pair_loss(p, q, anchor, eta, x, none);
    if (k == 0) difference = d;
    CHECK(d == Approx(difference).margin(1e-12));
  }
  CHECK_THROWS_AS(losses::labelled_pair_loss(p, q, anchor, eta, vec({1.0, 2.0}), none),
                  shape_error);
}
