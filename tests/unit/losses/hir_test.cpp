#include "prefopt/losses/hir.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <numbers>
#include <vector>

#include "finite_difference.hpp"
#include "prefopt/core/random.hpp"
#include "prefopt/losses/common.hpp"

using namespace prefopt;
using namespace prefopt::losses;
using Catch::Matchers::WithinAbs;
using Catch::Matchers::WithinRel;

TEST_CASE("2-way HIR contrast is log 2 when both instructions score the same, for any eps",
          "[losses]") {
  vector_d gp(3), gn(3);
  const vector_d ell{{-0.3, -2.0, -7.5}};
  for (const double eps : {0.0, 0.2, 0.5}) {
    CHECK_THAT(contrastive_instruction_loss_2way<double>(ell, ell, eps, gp, gn),
               WithinAbs(std::numbers::ln2, 1e-12));
  }
}

TEST_CASE("2-way HIR contrast gradient is q+ - (1 - eps) and vanishes at log((1-eps)/eps)",
          "[losses]") {
  const double eps = 0.2;
  vector_d gp(1), gn(1);
  const vector_d pos = vector_d::Constant(1, -1.0), neg = vector_d::Constant(1, -1.7);
  contrastive_instruction_loss_2way<double>(pos, neg, eps, gp, gn);
  const double q = 1.0 / (1.0 + std::exp(-0.7));
  CHECK_THAT(gp(0), WithinAbs(q - (1 - eps), 1e-15));
  CHECK(gn(0) == -gp(0));
  const double star = std::log((1 - eps) / eps);
  CHECK_THAT(star, WithinAbs(1.3862944, 1e-7));
  contrastive_instruction_loss_2way<double>(vector_d::Constant(1, star), vector_d::Zero(1), eps, gp,
                                            gn);
  CHECK_THAT(gp(0), WithinAbs(0.0, 1e-15));
}

TEST_CASE("k-way contrast with k = 2 equals the 2-way form", "[losses]") {
  rng g(51);
  const prefopt::index_t b = 6;
  vector_d pos(b), neg(b), gp(b), gn(b);
  row_matrix_d ell(b, 2), grad(b, 2);
  for (prefopt::index_t i = 0; i < b; ++i) {
    pos(i) = g.uniform(-5, 0);
    neg(i) = g.uniform(-5, 0);
    ell(i, 0) = pos(i);
    ell(i, 1) = neg(i);
  }
  const std::vector<prefopt::index_t> positive(static_cast<std::size_t>(b), 0);
  for (const double eps : {0.0, 0.2}) {
    const double two = contrastive_instruction_loss_2way<double>(pos, neg, eps, gp, gn);
    const double k = contrastive_instruction_loss<double>(ell, positive, eps, grad);
    CHECK_THAT(k, WithinAbs(two, 1e-12));
    for (prefopt::index_t i = 0; i < b; ++i) {
      CHECK_THAT(grad(i, 0), WithinAbs(gp(i), 1e-12));
      CHECK_THAT(grad(i, 1), WithinAbs(gn(i), 1e-12));
    }
  }
}

TEST_CASE(
    "k-way contrast gradient matches finite differences (batch form, positives on the "
    "diagonal)",
    "[losses]") {
  rng g(52);
  const prefopt::index_t b = 4;
  row_matrix_d ell(b, b), grad(b, b), scratch(b, b);
  for (prefopt::index_t i = 0; i < ell.size(); ++i) ell.data()[i] = g.uniform(-4, 0);
  contrastive_instruction_loss<double>(ell, {}, 0.2, grad);
  const vector_d flat = ell.reshaped<Eigen::RowMajor>();
  for (prefopt::index_t i = 0; i < flat.size(); ++i) {
    const double fd = test::central_difference(
        [&](const vector_d& x) {
          return contrastive_instruction_loss<double>(
              row_matrix_d(x.reshaped<Eigen::RowMajor>(b, b)), {}, 0.2, scratch);
        },
        flat, i);
    CHECK(test::close(grad.data()[i], fd, 1e-6));
  }
  // Diagonal positives: raising ell_ii lowers the loss.
  CHECK(grad(2, 2) < 0.0);
}

TEST_CASE("Label-smoothed CE at uniform logits is log V for every eps", "[losses]") {
  const prefopt::index_t v = 7;
  const row_matrix_d logits = row_matrix_d::Constant(3, v, 1.25);
  row_matrix_d grad(3, v);
  const std::vector<token_id> targets{0, 3, 6};
  for (const double eps : {0.0, 0.2, 0.9}) {
    CHECK_THAT(label_smoothed_cross_entropy<double>(logits, targets, eps, grad),
               WithinAbs(std::log(double(v)), 1e-12));
  }
}

TEST_CASE("Label-smoothed CE and entropy bonus gradients match finite differences", "[losses]") {
  rng g(53);
  const prefopt::index_t n = 3, v = 5;
  row_matrix_d logits(n, v), grad(n, v), grad_e(n, v), scratch(n, v);
  for (prefopt::index_t i = 0; i < logits.size(); ++i) logits.data()[i] = g.uniform(-3, 3);
  const std::vector<token_id> targets{4, 0, 2};
  label_smoothed_cross_entropy<double>(logits, targets, 0.2, grad);
  entropy_bonus<double>(logits, 0.001, grad_e);
  const vector_d flat = logits.reshaped<Eigen::RowMajor>();
  const auto as_matrix = [&](const vector_d& x) {
    return row_matrix_d(x.reshaped<Eigen::RowMajor>(n, v));
  };
  for (prefopt::index_t i = 0; i < flat.size(); ++i) {
    const double f1 = test::central_difference(
        [&](const vector_d& x) {
          return label_smoothed_cross_entropy<double>(as_matrix(x), targets, 0.2, scratch);
        },
        flat, i);
    const double f2 = test::central_difference(
        [&](const vector_d& x) { return entropy_bonus<double>(as_matrix(x), 0.001, scratch); },
        flat, i);
    CHECK(test::close(grad.data()[i], f1, 1e-6));
    CHECK(test::close(grad_e.data()[i], f2, 1e-6, 1e-13));
  }
}

TEST_CASE("Entropy bonus: uniform rows have entropy log V and more entropy lowers the loss",
          "[losses]") {
  const prefopt::index_t v = 6;
  row_matrix_d grad(1, v);
  const double uniform = entropy_bonus<double>(row_matrix_d::Zero(1, v), 1.0, grad);
  CHECK_THAT(uniform, WithinAbs(-std::log(double(v)), 1e-12));
  row_matrix_d peaked = row_matrix_d::Zero(1, v);
  peaked(0, 2) = 3.0;
  CHECK(entropy_bonus<double>(peaked, 0.001, grad) >
        entropy_bonus<double>(row_matrix_d::Zero(1, v), 0.001, grad));
}

TEST_CASE("Mean-token log-likelihoods and their per-token gradients", "[losses]") {
  const std::vector<prefopt::index_t> off{0, 2, 5};
  const std::vector<double> tok{-1.0, -3.0, -0.5, -0.5, -2.0};
  vector_d mean(2), sum(2);
  sequence_log_likelihoods<double>(ragged_view<const double>{off, tok},
                                   likelihood_reduction::mean_token, mean);
  sequence_log_likelihoods<double>(ragged_view<const double>{off, tok}, likelihood_reduction::sum,
                                   sum);
  CHECK(mean(0) == -2.0);
  CHECK(mean(1) == -1.0);
  CHECK(sum(1) == -3.0);
  std::vector<double> tg(5);
  spread_sequence_gradients<double>(vector_d{{0.4, 0.9}}, ragged_view<double>{off, tg}, {}, true);
  CHECK_THAT(tg[0], WithinAbs(0.2, 1e-15));
  CHECK_THAT(tg[4], WithinAbs(0.3, 1e-15));
}

TEST_CASE("HIR losses reject bad arguments", "[losses]") {
  row_matrix_d logits = row_matrix_d::Zero(1, 3), grad(1, 3);
  const std::vector<token_id> bad{3};
  CHECK_THROWS_WITH(label_smoothed_cross_entropy<double>(logits, bad, 0.1, grad),
                    Catch::Contains("targets[0] = 3"));
  row_matrix_d one_column(2, 1);
  CHECK_THROWS_AS(
      contrastive_instruction_loss<double>(row_matrix_d::Zero(2, 1), {}, 0.1, one_column),
      prefopt::shape_error);
}

TEST_CASE("2-way contrast gradient matches finite differences at |delta| up to 50", "[losses]") {
  const vector_d pos{{-1.0, -60.0, -3.0, -0.5}}, neg{{-51.0, -10.0, -2.0, -0.75}};
  vector_d gp(4), gn(4), s1(4), s2(4);
  contrastive_instruction_loss_2way<double>(pos, neg, 0.2, gp, gn);
  for (prefopt::index_t i = 0; i < 4; ++i) {
    // per-pair FD (the mean over pairs cannot resolve tiny gradients next to O(1) losses)
    const vector_d p1 = pos.segment(i, 1), n1 = neg.segment(i, 1);
    vector_d a(1), b(1);
    const double fd = test::central_difference(
        [&](const vector_d& x) {
          return contrastive_instruction_loss_2way<double>(x, n1, 0.2, a, b);
        },
        p1, 0);
    CHECK(test::close(gp(i) * 4.0, fd, 1e-6, 1e-300));
  }
}
