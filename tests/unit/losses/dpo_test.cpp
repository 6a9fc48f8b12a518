#include "prefopt/losses/dpo.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <numbers>
#include <string>
#include <vector>

#include "finite_difference.hpp"
#include "prefopt/core/math.hpp"
#include "prefopt/core/random.hpp"

using namespace prefopt;
using namespace prefopt::losses;
using Catch::Matchers::WithinAbs;
using Catch::Matchers::WithinRel;

namespace {

struct pair_data {
  vector_d pc, pr, rc, rr;
  std::vector<prefopt::index_t> lc, lr;
  [[nodiscard]] dpo_inputs<double> inputs() const { return {pc, pr, rc, rr, lc, lr}; }
};

pair_data one_pair(double sw, double sl, double rw, double rl, prefopt::index_t nw,
                   prefopt::index_t nl) {
  return {vector_d::Constant(1, sw),
          vector_d::Constant(1, sl),
          vector_d::Constant(1, rw),
          vector_d::Constant(1, rl),
          {nw},
          {nl}};
}

template <class Loss>
dpo_metrics<double> run(const Loss& loss, const pair_data& d, vector_d& gw, vector_d& gl) {
  const prefopt::index_t n = d.pc.size();
  vector_d losses(n);
  gw.resize(n);
  gl.resize(n);
  return loss.compute(d.inputs(), losses, gw, gl);
}

pair_data random_pairs(rng& g, prefopt::index_t n, double spread) {
  pair_data d;
  d.pc.resize(n);
  d.pr.resize(n);
  d.rc.resize(n);
  d.rr.resize(n);
  for (prefopt::index_t i = 0; i < n; ++i) {
    d.lc.push_back(1 + g.uniform_index(20));
    d.lr.push_back(g.uniform_index(20));  // includes length 0 (clamped to 1)
    d.pc(i) = -g.uniform(0, spread);
    d.pr(i) = -g.uniform(0, spread);
    d.rc(i) = -g.uniform(0, spread);
    d.rr(i) = -g.uniform(0, spread);
  }
  return d;
}

template <class Loss>
void check_fd(const Loss& loss, const pair_data& d) {
  // FD on the per-pair loss l_i (the batch mean's FD cannot resolve gradients of 1e-22 next to
  // O(1) losses of other pairs); the gradient of the mean is dl_i/dS / N.
  vector_d gw, gl;
  run(loss, d, gw, gl);
  const double n = double(d.pc.size());
  for (prefopt::index_t i = 0; i < d.pc.size(); ++i) {
    const auto pair_loss = [&](const pair_data& e) {
      vector_d losses(e.pc.size()), a(e.pc.size()), b(e.pc.size());
      loss.compute(e.inputs(), losses, a, b);
      return losses(i);
    };
    const auto value_w = [&](const vector_d& x) {
      pair_data e = d;
      e.pc = x;
      return pair_loss(e);
    };
    const auto value_l = [&](const vector_d& x) {
      pair_data e = d;
      e.pr = x;
      return pair_loss(e);
    };
    CHECK(test::close(gw(i) * n, test::central_difference(value_w, d.pc, i), 1e-6, 1e-300));
    CHECK(test::close(gl(i) * n, test::central_difference(value_l, d.pr, i), 1e-6, 1e-300));
  }
}

}  // namespace

TEST_CASE("DPO loss is log 2 with per-token gradients -+beta/2 when policy equals reference",
          "[losses]") {
  const double beta = 0.3;
  const auto d = one_pair(-12.0, -7.5, -12.0, -7.5, 6, 3);
  vector_d gw, gl;
  const auto m = run(sigmoid_dpo_loss({beta}), d, gw, gl);
  CHECK_THAT(m.loss, WithinAbs(std::numbers::ln2, 1e-12));
  CHECK_THAT(gw(0), WithinAbs(-beta / 2, 1e-12));
  CHECK_THAT(gl(0), WithinAbs(beta / 2, 1e-12));
  // Per-token: spreading over the tokens gives the same value for every token.
  const std::vector<prefopt::index_t> offsets{0, 6};
  std::vector<double> tokens(6);
  spread_sequence_gradients<double>(gw, ragged_view<double>{offsets, tokens});
  for (const double t : tokens) CHECK_THAT(t, WithinAbs(-beta / 2, 1e-12));
}

TEST_CASE("Length-averaged DPO is log 2 with per-token gradients -+beta/(2 len) at the reference",
          "[losses]") {
  const double beta = 0.3;
  const auto d = one_pair(-12.0, -7.5, -12.0, -7.5, 6, 3);
  vector_d gw, gl;
  const auto m = run(sigmoid_dpo_loss({beta, /*length_average=*/true}), d, gw, gl);
  CHECK_THAT(m.loss, WithinAbs(std::numbers::ln2, 1e-12));
  CHECK_THAT(gw(0), WithinAbs(-beta / (2 * 6), 1e-12));
  CHECK_THAT(gl(0), WithinAbs(beta / (2 * 3), 1e-12));
}

TEST_CASE("DPO with beta 0.1 and h = 2 gives 0.5981389 and gradients -+0.0450166", "[losses]") {
  const auto d = one_pair(-3.0, -6.0, -4.0, -5.0, 5, 5);  // h = 1 - (-1) = 2
  vector_d gw, gl;
  const auto m = run(sigmoid_dpo_loss({0.1}), d, gw, gl);
  CHECK_THAT(m.loss, WithinAbs(0.5981389, 1e-7));
  CHECK_THAT(gw(0), WithinAbs(-0.0450166, 1e-7));
  CHECK_THAT(gl(0), WithinAbs(0.0450166, 1e-7));
}

TEST_CASE("Averaged DPO example gives h_avg 1.25, loss 0.6325990, grads -0.0117198, +0.0234395",
          "[losses]") {
  const auto d = one_pair(-1.0, -6.0, -4.0, -5.0, 4, 2);  // S_w - R_w = 3, S_l - R_l = -1
  vector_d gw, gl;
  const auto m = run(sigmoid_dpo_loss({0.1, true}), d, gw, gl);
  CHECK_THAT(m.rewards_margins, WithinAbs(0.1 * 1.25, 1e-14));
  CHECK_THAT(m.loss, WithinAbs(0.6325990, 1e-7));
  CHECK_THAT(gw(0), WithinAbs(-0.0117198, 1e-7));
  CHECK_THAT(gl(0), WithinAbs(0.0234395, 1e-7));
}

TEST_CASE("DPO is invariant to adding c to both policy sums; averaged DPO to adding c n",
          "[losses]") {
  rng g(1);
  const auto d = random_pairs(g, 8, 30.0);
  vector_d gw, gl;
  const double plain = run(sigmoid_dpo_loss({0.2}), d, gw, gl).loss;
  const double averaged = run(sigmoid_dpo_loss({0.2, true}), d, gw, gl).loss;
  auto shifted = d;
  shifted.pc.array() += 3.7;
  shifted.pr.array() += 3.7;
  CHECK_THAT(run(sigmoid_dpo_loss({0.2}), shifted, gw, gl).loss, WithinRel(plain, 1e-12));
  auto shifted_avg = d;
  for (prefopt::index_t i = 0; i < d.pc.size(); ++i) {
    const auto u = static_cast<std::size_t>(i);
    shifted_avg.pc(i) += 0.9 * double(std::max<prefopt::index_t>(d.lc[u], 1));
    shifted_avg.pr(i) += 0.9 * double(std::max<prefopt::index_t>(d.lr[u], 1));
  }
  CHECK_THAT(run(sigmoid_dpo_loss({0.2, true}), shifted_avg, gw, gl).loss,
             WithinRel(averaged, 1e-12));
}

TEST_CASE("Averaged DPO equals plain DPO when both responses have one token", "[losses]") {
  rng g(2);
  auto d = random_pairs(g, 5, 10.0);
  std::fill(d.lc.begin(), d.lc.end(), 1);
  std::fill(d.lr.begin(), d.lr.end(), 1);
  vector_d gw1, gl1, gw2, gl2;
  CHECK(run(sigmoid_dpo_loss({0.5}), d, gw1, gl1).loss ==
        run(sigmoid_dpo_loss({0.5, true}), d, gw2, gl2).loss);
  CHECK(gw1 == gw2);
  CHECK(gl1 == gl2);
}

TEST_CASE("A zero-length response is divided by 1, never by 0", "[losses]") {
  const auto d = one_pair(-1.0, -2.0, -1.5, -2.5, 0, 0);
  vector_d gw, gl;
  const auto m = run(sigmoid_dpo_loss({0.1, true}), d, gw, gl);
  CHECK(std::isfinite(m.loss));
  CHECK_THAT(m.loss, WithinAbs(softplus(-0.1 * 0.0), 1e-15));
}

TEST_CASE("Prompt and padding log-probs change nothing in the sequence sums", "[losses]") {
  const std::vector<prefopt::index_t> offsets{0, 5, 9};
  std::vector<double> tokens{9.0, -1.0, -2.0, 7.0, 7.0, 3.0, -0.5, -0.25, 4.0};
  const std::vector<std::uint8_t> mask{0, 1, 1, 0, 0, 0, 1, 1, 0};  // prompt / padding = 0
  vector_d sums(2);
  std::vector<prefopt::index_t> lengths(2);
  sequence_sums<double>(ragged_view<const double>{offsets, tokens}, mask, sums, lengths);
  CHECK(sums(0) == -3.0);
  CHECK(sums(1) == -0.75);
  CHECK(lengths == std::vector<prefopt::index_t>{2, 2});
  tokens[0] = std::nan("");
  tokens[3] = 1e300;
  tokens[8] = -77.0;
  vector_d sums2(2);
  sequence_sums<double>(ragged_view<const double>{offsets, tokens}, mask, sums2, lengths);
  CHECK(sums2 == sums);
  std::vector<double> grads(9, 42.0);
  spread_sequence_gradients<double>(vector_d{{0.5, -1.0}}, ragged_view<double>{offsets, grads},
                                    mask);
  CHECK(grads == std::vector<double>{0, 0.5, 0.5, 0, 0, 0, -1, -1, 0});
}

TEST_CASE("IPO loss at h = 0 with beta 0.1 is 25", "[losses]") {
  const auto d = one_pair(-3.0, -3.0, -3.0, -3.0, 2, 2);
  vector_d gw, gl;
  const auto m = run(ipo_loss({0.1}), d, gw, gl);
  CHECK_THAT(m.loss, WithinAbs(25.0, 1e-12));
  CHECK_THAT(gw(0), WithinAbs(2.0 * (0.0 - 5.0), 1e-12));
  // minimiser h* = 1/(2 beta)
  const auto at_min = one_pair(2.0, -3.0, 0.0, 0.0, 2, 2);  // h = 5
  CHECK_THAT(run(ipo_loss({0.1}), at_min, gw, gl).loss, WithinAbs(0.0, 1e-24));
  CHECK(gw(0) == 0.0);
}

TEST_CASE("Hinge loss is 0 with zero gradient for u >= 1 and 1 at u = 0", "[losses]") {
  vector_d gw, gl;
  const auto big = one_pair(0.0, -10.0, 0.0, 0.0, 1, 1);  // u = 0.1 * 10 = 1
  const auto m = run(hinge_dpo_loss({0.1}), big, gw, gl);
  CHECK(m.loss == 0.0);
  CHECK(gw(0) == 0.0);
  CHECK(gl(0) == 0.0);
  const auto zero = one_pair(-1.0, -2.0, -1.0, -2.0, 1, 1);
  CHECK_THAT(run(hinge_dpo_loss({0.1}), zero, gw, gl).loss, WithinAbs(1.0, 1e-15));
  CHECK_THAT(gw(0), WithinAbs(-0.1, 1e-15));
}

TEST_CASE("Label-smoothed DPO is log 2 at u = 0 for every eps and minimal at log((1-eps)/eps)",
          "[losses]") {
  vector_d gw, gl;
  const auto zero = one_pair(-1.0, -2.0, -1.0, -2.0, 1, 1);
  for (const double eps : {0.0, 0.1, 0.2, 0.45}) {
    CHECK_THAT(run(label_smoothed_dpo_loss({0.1, false, eps}), zero, gw, gl).loss,
               WithinAbs(std::numbers::ln2, 1e-12));
  }
  const double u_star = std::log(0.8 / 0.2);
  CHECK_THAT(u_star, WithinAbs(1.3862944, 1e-7));
  const label_smoothed_dpo_loss ls({1.0, false, 0.2});
  CHECK_THAT(ls.evaluate(u_star).second, WithinAbs(0.0, 1e-15));
  CHECK(ls.evaluate(u_star - 0.01).second < 0.0);
  CHECK(ls.evaluate(u_star + 0.01).second > 0.0);
}

TEST_CASE("Robust DPO matches its closed form, is log 2 at u = 0 and unbiased under label flips",
          "[losses]") {
  // Values from ((1-eps) softplus(-u) - eps softplus(u)) / (1 - 2 eps) evaluated independently:
  // beta = 0.1, h = 2, eps = 0.1 and beta = 1, h = -0.7, eps = 0.25.
  const robust_dpo_loss a({0.1, false, 0.1});
  CHECK_THAT(a.evaluate(2.0).first, WithinAbs(0.5731388693815918, 1e-14));
  CHECK_THAT(a.evaluate(2.0).second, WithinAbs(-0.057516600268752216, 1e-14));
  const robust_dpo_loss b({1.0, false, 0.25});
  CHECK_THAT(b.evaluate(-0.7).first, WithinAbs(1.453186048885458, 1e-14));
  CHECK_THAT(b.evaluate(-0.7).second, WithinAbs(-1.1681877721681662, 1e-14));
  vector_d gw, gl;
  const auto zero = one_pair(-1.0, -2.0, -1.0, -2.0, 1, 1);
  for (const double eps : {0.0, 0.1, 0.2, 0.45}) {
    CHECK_THAT(run(robust_dpo_loss({0.1, false, eps}), zero, gw, gl).loss,
               WithinAbs(std::numbers::ln2, 1e-12));
    // Unbiased: with labels flipped w.p. eps, the expected loss is the clean DPO loss.
    const robust_dpo_loss r({1.0, false, eps});
    for (const double u : {-3.0, -0.5, 0.7, 4.0}) {
      CHECK_THAT((1.0 - eps) * r.evaluate(u).first + eps * r.evaluate(-u).first,
                 WithinAbs(softplus(-u), 1e-13));
    }
  }
  // Not label smoothing: the robust loss keeps decreasing past log((1-eps)/eps).
  const robust_dpo_loss r({1.0, false, 0.2});
  CHECK(r.evaluate(std::log(0.8 / 0.2) + 1.0).second < 0.0);
  CHECK(r.evaluate(20.0).first < 0.0);
  // eps = 0 is DPO.
  rng g(5);
  const auto d = random_pairs(g, 5, 20.0);
  vector_d gw1, gl1, gw2, gl2;
  const auto dpo = run(sigmoid_dpo_loss({0.3}), d, gw1, gl1);
  const auto rob = run(robust_dpo_loss({0.3, false, 0.0}), d, gw2, gl2);
  CHECK_THAT(rob.loss, WithinRel(dpo.loss, 1e-15));
  for (prefopt::index_t i = 0; i < 5; ++i) CHECK_THAT(gl2(i), WithinRel(gl1(i), 1e-14));
  CHECK_THROWS_WITH(robust_dpo_loss({0.1, false, 0.5}), Catch::Contains("eps_ls"));
}

TEST_CASE("Label smoothing 0 is exactly DPO", "[losses]") {
  rng g(4);
  const auto d = random_pairs(g, 7, 20.0);
  vector_d gw1, gl1, gw2, gl2;
  const auto a = run(sigmoid_dpo_loss({0.3}), d, gw1, gl1);
  const auto b = run(label_smoothed_dpo_loss({0.3, false, 0.0}), d, gw2, gl2);
  CHECK_THAT(b.loss, WithinRel(a.loss, 1e-15));
  for (prefopt::index_t i = 0; i < 7; ++i) CHECK_THAT(gw2(i), WithinRel(gw1(i), 1e-14));
}

TEST_CASE("SimPO ignores the reference and subtracts its target margin", "[losses]") {
  vector_d gw, gl;
  auto d = one_pair(-4.0, -9.0, 123.0, -55.0, 2, 3);  // averaged h = -2 - (-3) = 1
  const auto m = run(simpo_loss({2.0, true, 0.0, 0.5}), d, gw, gl);
  CHECK_THAT(m.loss, WithinAbs(softplus(-(2.0 * 1.0 - 0.5)), 1e-14));
  d.rc.resize(0);
  d.rr.resize(0);
  CHECK_THAT(run(simpo_loss({2.0, true, 0.0, 0.5}), d, gw, gl).loss, WithinAbs(m.loss, 1e-15));
  CHECK_THROWS_AS(run(sigmoid_dpo_loss({2.0}), d, gw, gl), prefopt::shape_error);
}

TEST_CASE("dpo_inputs::reference_free gives SimPO its inputs without empty reference vectors",
          "[losses]") {
  rng g(9);
  const auto d = random_pairs(g, 5, 10.0);
  const simpo_loss loss({2.0, true, 0.0, 0.5});
  vector_d l1(5), gw1(5), gl1(5), l2(5), gw2(5), gl2(5);
  const vector_d empty;
  const auto a =
      loss.compute(dpo_inputs<double>{d.pc, d.pr, empty, empty, d.lc, d.lr}, l1, gw1, gl1);
  const auto b =
      loss.compute(dpo_inputs<double>::reference_free(d.pc, d.pr, d.lc, d.lr), l2, gw2, gl2);
  CHECK(a.loss == b.loss);
  CHECK(l1 == l2);
  CHECK(gw1 == gw2);
  CHECK(gl1 == gl2);
  CHECK_THROWS_WITH(
      sigmoid_dpo_loss({0.1}).compute(dpo_inputs<double>::reference_free(d.pc, d.pr), l2, gw2, gl2),
      Catch::Contains("reference_chosen"));
}

TEST_CASE("Every direct-alignment variant matches finite differences, |u| up to 50", "[losses]") {
  rng g(7);
  auto d = random_pairs(g, 6, 40.0);
  // Pair 0: u = +50, pair 1: u = -50 with beta = 1 (summed).
  d.pc(0) = -10.0;
  d.rc(0) = -40.0;
  d.pr(0) = -30.0;
  d.rr(0) = -10.0;
  d.pc(1) = -40.0;
  d.rc(1) = -10.0;
  d.pr(1) = -10.0;
  d.rr(1) = -30.0;
  for (const bool avg : {false, true}) {
    check_fd(sigmoid_dpo_loss({1.0, avg}), d);
    check_fd(label_smoothed_dpo_loss({1.0, avg, 0.1}), d);
    check_fd(robust_dpo_loss({1.0, avg, 0.1}), d);
    check_fd(robust_dpo_loss({0.2, avg, 0.4}), d);
    check_fd(ipo_loss({0.5, avg}), d);
    check_fd(simpo_loss({1.0, avg, 0.0, 0.3}), d);
    check_fd(hinge_dpo_loss({0.05, avg}), d);  // FD is valid away from the kink u = 1
  }
}

TEST_CASE("DPO gradients through the softmax match finite differences in the logits", "[losses]") {
  // Two responses of 3 and 2 tokens over a vocabulary of 5, logits z; l_t = log_softmax(z_t)[y_t].
  rng g(13);
  const prefopt::index_t v = 5;
  const std::vector<prefopt::index_t> yw{1, 4, 2}, yl{0, 3};
  vector_d z(5 * v);
  for (prefopt::index_t i = 0; i < z.size(); ++i) z(i) = g.uniform(-2, 2);
  const vector_d ref_w = vector_d::Constant(1, -4.0), ref_l = vector_d::Constant(1, -3.5);
  const auto sums = [&](const vector_d& x, double& sw, double& sl) {
    sw = sl = 0.0;
    vector_d lp(v);
    for (prefopt::index_t t = 0; t < 5; ++t) {
      log_softmax(x.segment(t * v, v), lp);
      if (t < 3)
        sw += lp(yw[static_cast<std::size_t>(t)]);
      else
        sl += lp(yl[static_cast<std::size_t>(t - 3)]);
    }
  };
  for (const bool avg : {false, true}) {
    const sigmoid_dpo_loss loss({0.7, avg});
    const std::vector<prefopt::index_t> lw{3}, ll{2};
    const auto value = [&](const vector_d& x) {
      double sw, sl;
      sums(x, sw, sl);
      vector_d losses(1), a(1), b(1);
      return loss
          .compute<double>(
              {vector_d::Constant(1, sw), vector_d::Constant(1, sl), ref_w, ref_l, lw, ll}, losses,
              a, b)
          .loss;
    };
    double sw, sl;
    sums(z, sw, sl);
    vector_d losses(1), gw(1), gl(1);
    loss.compute<double>(
        {vector_d::Constant(1, sw), vector_d::Constant(1, sl), ref_w, ref_l, lw, ll}, losses, gw,
        gl);
    // Per-token gradients, then dl_t/dz_tk = 1[k = y_t] - p_tk.
    const std::vector<prefopt::index_t> off_w{0, 3}, off_l{0, 2};
    std::vector<double> tw(3), tl(2);
    spread_sequence_gradients<double>(gw, ragged_view<double>{off_w, tw});
    spread_sequence_gradients<double>(gl, ragged_view<double>{off_l, tl});
    for (prefopt::index_t t = 0; t < 5; ++t) {
      vector_d p(v);
      softmax(z.segment(t * v, v), p);
      const double gt =
          t < 3 ? tw[static_cast<std::size_t>(t)] : tl[static_cast<std::size_t>(t - 3)];
      const prefopt::index_t y =
          t < 3 ? yw[static_cast<std::size_t>(t)] : yl[static_cast<std::size_t>(t - 3)];
      for (prefopt::index_t k = 0; k < v; ++k) {
        const double analytic = gt * ((k == y ? 1.0 : 0.0) - p(k));
        CHECK(test::close(analytic, test::central_difference(value, z, t * v + k), 1e-7, 1e-11));
      }
    }
  }
}

TEST_CASE("DPO in float agrees with double within 1e-5 relative", "[losses]") {
  rng g(17);
  const auto d = random_pairs(g, 16, 30.0);
  const vector_f pc = d.pc.cast<float>(), pr = d.pr.cast<float>(), rc = d.rc.cast<float>(),
                 rr = d.rr.cast<float>();
  for (const bool avg : {false, true}) {
    const sigmoid_dpo_loss loss({0.1, avg});
    vector_d gw, gl;
    const auto md = run(loss, d, gw, gl);
    vector_f lf(16), gwf(16), glf(16);
    const auto mf = loss.compute<float>({pc, pr, rc, rr, d.lc, d.lr}, lf, gwf, glf);
    CHECK_THAT(double(mf.loss), WithinRel(md.loss, 1e-5));
    CHECK_THAT(double(mf.rewards_margins),
               WithinRel(md.rewards_margins, 1e-4) || WithinAbs(md.rewards_margins, 1e-5));
    for (prefopt::index_t i = 0; i < 16; ++i) {
      CHECK_THAT(double(gwf(i)), WithinRel(gw(i), 1e-5) || WithinAbs(gw(i), 1e-8));
      CHECK_THAT(double(glf(i)), WithinRel(gl(i), 1e-5) || WithinAbs(gl(i), 1e-8));
    }
  }
}

TEST_CASE("DPO metrics carry the names practitioners log", "[losses]") {
  const auto d = one_pair(-1.0, -6.0, -4.0, -5.0, 4, 2);
  vector_d gw, gl;
  const auto m = run(sigmoid_dpo_loss({0.1}), d, gw, gl);
  const auto named = m.named();
  CHECK(std::string(named[1].first) == "rewards/chosen");
  CHECK_THAT(named[1].second, WithinAbs(0.3, 1e-15));
  CHECK(std::string(named[2].first) == "rewards/rejected");
  CHECK_THAT(named[2].second, WithinAbs(-0.1, 1e-15));
  CHECK(std::string(named[3].first) == "rewards/margins");
  CHECK(std::string(named[4].first) == "rewards/accuracies");
  CHECK(named[4].second == 1.0);
  CHECK(std::string(named[5].first) == "logps/chosen");
  CHECK(named[5].second == -1.0);
  CHECK(std::string(named[7].first) == "lengths/chosen");
  CHECK(named[7].second == 4.0);
}

TEST_CASE("DPO rejects bad configuration and inputs with clear messages", "[losses]") {
  CHECK_THROWS_WITH(sigmoid_dpo_loss({0.0}), Catch::Contains("beta_dpo"));
  CHECK_THROWS_WITH(label_smoothed_dpo_loss({0.1, false, 0.5}), Catch::Contains("eps_ls"));
  auto d = one_pair(-1.0, -2.0, -1.0, -2.0, 1, 1);
  d.lc[0] = -3;
  vector_d gw, gl;
  CHECK_THROWS_WITH(run(sigmoid_dpo_loss({0.1, true}), d, gw, gl),
                    Catch::Contains("lengths of pair 0"));
  d.lc.clear();
  d.lr.clear();
  CHECK_THROWS_AS(run(sigmoid_dpo_loss({0.1, true}), d, gw, gl), prefopt::shape_error);
}

TEST_CASE("DPO gradient vanishes linearly as beta_dpo -> 0", "[losses]") {
  const auto d = one_pair(-2.0, -9.0, -4.0, -5.0, 3, 3);  // h = 2 - (-4) = 6
  vector_d gw, gl;
  for (const double beta : {1e-4, 1e-6, 1e-8}) {
    run(sigmoid_dpo_loss({beta}), d, gw, gl);
    CHECK_THAT(gw(0) / beta, WithinAbs(-0.5, 2.0 * beta * 6.0));
  }
}
