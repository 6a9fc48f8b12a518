#include "prefopt/losses/ppo.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "finite_difference.hpp"
#include "prefopt/core/random.hpp"

using namespace prefopt;
using namespace prefopt::losses;
using Catch::Matchers::WithinAbs;
using Catch::Matchers::WithinRel;

namespace {
struct gae_out {
  std::vector<double> a, ret;
};
gae_out run_gae(const std::vector<double>& rew, const std::vector<double>& v, double gamma,
                double lambda) {
  const std::vector<prefopt::index_t> off{0, static_cast<prefopt::index_t>(rew.size())};
  gae_out o{std::vector<double>(rew.size()), std::vector<double>(rew.size())};
  generalized_advantages<double>(ragged_view<const double>{off, rew},
                                 ragged_view<const double>{off, v}, gamma, lambda,
                                 ragged_view<double>{off, o.a}, ragged_view<double>{off, o.ret});
  return o;
}
}  // namespace

TEST_CASE("GAE with lambda 0.95 on rew (0,0,1), V (0.2,0.4,0.6) gives A (0.751,0.58,0.4)",
          "[losses]") {
  const auto o = run_gae({0, 0, 1}, {0.2, 0.4, 0.6}, 1.0, 0.95);
  CHECK_THAT(o.a[0], WithinAbs(0.751, 1e-12));
  CHECK_THAT(o.a[1], WithinAbs(0.58, 1e-12));
  CHECK_THAT(o.a[2], WithinAbs(0.4, 1e-12));
  CHECK_THAT(o.ret[0], WithinAbs(0.951, 1e-12));
  CHECK_THAT(o.ret[1], WithinAbs(0.98, 1e-12));
  CHECK_THAT(o.ret[2], WithinAbs(1.0, 1e-12));
}

TEST_CASE("GAE with lambda = gamma = 1 is reward-to-go minus value", "[losses]") {
  const auto o = run_gae({0, 0, 1}, {0.2, 0.4, 0.6}, 1.0, 1.0);
  CHECK_THAT(o.a[0], WithinAbs(0.8, 1e-12));
  CHECK_THAT(o.a[1], WithinAbs(0.6, 1e-12));
  CHECK_THAT(o.a[2], WithinAbs(0.4, 1e-12));
  rng g(3);
  std::vector<double> rew(9), v(9);
  for (std::size_t i = 0; i < 9; ++i) {
    rew[i] = g.uniform(-1, 1);
    v[i] = g.uniform(-1, 1);
  }
  const auto r = run_gae(rew, v, 1.0, 1.0);
  double to_go = 0;
  for (std::size_t i = 9; i-- > 0;) {
    to_go += rew[i];
    CHECK_THAT(r.a[i], WithinAbs(to_go - v[i], 1e-12));
  }
}

TEST_CASE("GAE with lambda 0 is the TD error", "[losses]") {
  const auto o = run_gae({0, 0, 1}, {0.2, 0.4, 0.6}, 1.0, 0.0);
  CHECK_THAT(o.a[0], WithinAbs(0.2, 1e-12));
  CHECK_THAT(o.a[1], WithinAbs(0.2, 1e-12));
  CHECK_THAT(o.a[2], WithinAbs(0.4, 1e-12));
  const auto d = run_gae({0.5, -1, 2}, {0.1, 0.3, -0.2}, 0.9, 0.0);
  CHECK_THAT(d.a[0], WithinAbs(0.5 + 0.9 * 0.3 - 0.1, 1e-12));
  CHECK_THAT(d.a[2], WithinAbs(2 + 0.2, 1e-12));
}

TEST_CASE("GAE treats sequences independently with V after the last token = 0", "[losses]") {
  const std::vector<prefopt::index_t> off{0, 3, 5};
  const std::vector<double> rew{0, 0, 1, 0.5, 0.5}, v{0.2, 0.4, 0.6, 1.0, 1.0};
  std::vector<double> a(5), ret(5);
  generalized_advantages<double>(ragged_view<const double>{off, rew},
                                 ragged_view<const double>{off, v}, 1.0, 1.0,
                                 ragged_view<double>{off, a}, ragged_view<double>{off, ret});
  CHECK_THAT(a[2], WithinAbs(0.4, 1e-12));
  CHECK_THAT(a[3], WithinAbs(0.0, 1e-12));
  CHECK_THAT(a[4], WithinAbs(-0.5, 1e-12));
}

TEST_CASE("Reward shaping puts -tau kl on every token and the score at the last real token",
          "[losses]") {
  const std::vector<prefopt::index_t> off{0, 3, 5};
  const std::vector<double> l{-1.0, -2.0, -0.5, -0.3, -0.7};
  const std::vector<double> lr{-1.1, -1.8, -0.5, -0.4, -0.2};
  std::vector<double> rew(5);
  const vector_d scores{{2.0, -1.0}};
  const std::vector<std::uint8_t> eos{1, 0};
  const auto s =
      shape_rewards<kl_k1>(ragged_view<const double>{off, l}, ragged_view<const double>{off, lr},
                           scores, eos, 0.1, 3.0, ragged_view<double>{off, rew});
  CHECK_THAT(rew[0], WithinAbs(-0.1 * 0.1, 1e-15));
  CHECK_THAT(rew[1], WithinAbs(-0.1 * -0.2, 1e-15));
  CHECK_THAT(rew[2], WithinAbs(2.0, 1e-15));
  CHECK_THAT(rew[3], WithinAbs(-0.1 * 0.1, 1e-15));
  CHECK_THAT(rew[4], WithinAbs(-0.1 * -0.5 + (-1.0 - 3.0), 1e-15));  // missing EOS penalty
  CHECK_THAT(s.mean_sequence_kl, WithinAbs((-0.1 + -0.4) / 2, 1e-15));
  CHECK_THAT(s.mean_score, WithinAbs((2.0 - 4.0) / 2, 1e-15));
  const double k3 = mean_sequence_kl<kl_k3>(ragged_view<const double>{off, l},
                                            ragged_view<const double>{off, lr});
  CHECK(k3 > 0.0);
  std::vector<double> rew3(5);
  shape_rewards<kl_k3>(ragged_view<const double>{off, l}, ragged_view<const double>{off, lr},
                       scores, {}, 0.5, 0.0, ragged_view<double>{off, rew3});
  CHECK_THAT(rew3[0], WithinAbs(-0.5 * kl_k3::value(0.1), 1e-15));
  CHECK_THAT(rew3[4], WithinAbs(-0.5 * kl_k3::value(-0.5) - 1.0, 1e-15));
}

TEST_CASE("Reward shaping rejects an empty response and mismatched layouts", "[losses]") {
  const std::vector<prefopt::index_t> off{0, 2, 2};
  const std::vector<double> l{-1.0, -2.0};
  std::vector<double> rew(2);
  CHECK_THROWS_WITH(
      shape_rewards(ragged_view<const double>{off, l}, ragged_view<const double>{off, l},
                    vector_d::Zero(2), {}, 0.1, 0.0, ragged_view<double>{off, rew}),
      Catch::Contains("sequence 1 has no tokens"));
  const std::vector<prefopt::index_t> other{0, 1, 2};
  CHECK_THROWS_WITH(
      shape_rewards(ragged_view<const double>{off, l}, ragged_view<const double>{other, l},
                    vector_d::Zero(2), {}, 0.1, 0.0, ragged_view<double>{off, rew}),
      Catch::Contains("sequence 0 of reference_logps has length 1, expected 2"));
}

TEST_CASE("Masked whitening gives mean 0 and Bessel-corrected std 1 over valid tokens",
          "[losses]") {
  rng g(5);
  const std::vector<prefopt::index_t> off{1, 4, 9};  // element 0 and 9 lie outside every sequence
  std::vector<double> a(10);
  for (auto& x : a) x = g.uniform(-3, 5);
  a[0] = 1000.0;
  a[9] = -1000.0;
  auto b = a;
  whiten<double>(ragged_view<double>{off, a});
  CHECK(a[0] == 1000.0);
  CHECK(a[9] == -1000.0);
  double mean = 0, ss = 0;
  for (std::size_t i = 1; i < 9; ++i) mean += a[i];
  mean /= 8;
  for (std::size_t i = 1; i < 9; ++i) ss += (a[i] - mean) * (a[i] - mean);
  CHECK_THAT(mean, WithinAbs(0.0, 1e-12));
  CHECK_THAT(std::sqrt(ss / 7), WithinAbs(1.0, 1e-7));  // the +1e-8 inside the sqrt
  // Without the mean shift, the mean is kept.
  double mean_b = 0;
  for (std::size_t i = 1; i < 9; ++i) mean_b += b[i];
  mean_b /= 8;
  whiten<double>(ragged_view<double>{off, b}, /*shift_mean=*/false);
  double mean_after = 0;
  for (std::size_t i = 1; i < 9; ++i) mean_after += b[i];
  CHECK_THAT(mean_after / 8, WithinAbs(mean_b, 1e-12));
}

TEST_CASE("PPO clip: A = 1, ratio 1.5 gives -1.2 with zero gradient", "[losses]") {
  vector_d g(1);
  const auto s = ppo_policy_loss<double>(vector_d::Constant(1, std::log(1.5)), vector_d::Zero(1),
                                         vector_d::Ones(1), 0.2, g);
  CHECK_THAT(s.loss, WithinAbs(-1.2, 1e-12));
  CHECK(g(0) == 0.0);
  CHECK(s.clip_fraction == 1.0);
}

TEST_CASE("PPO clip: A = -1, ratio 0.5 gives 0.8 with zero gradient", "[losses]") {
  vector_d g(1);
  const auto s = ppo_policy_loss<double>(vector_d::Constant(1, std::log(0.5)), vector_d::Zero(1),
                                         vector_d::Constant(1, -1.0), 0.2, g);
  CHECK_THAT(s.loss, WithinAbs(0.8, 1e-12));
  CHECK(g(0) == 0.0);
}

TEST_CASE("PPO clip: A = 1, ratio 0.5 gives -0.5 with gradient -0.5", "[losses]") {
  vector_d g(1);
  const auto s = ppo_policy_loss<double>(vector_d::Constant(1, std::log(0.5)), vector_d::Zero(1),
                                         vector_d::Ones(1), 0.2, g);
  CHECK_THAT(s.loss, WithinAbs(-0.5, 1e-12));
  CHECK_THAT(g(0), WithinAbs(-0.5, 1e-12));
  CHECK(s.clip_fraction == 0.0);
  CHECK_THAT(s.approx_kl, WithinAbs(0.5 * std::log(0.5) * std::log(0.5), 1e-15));
}

TEST_CASE("PPO value clip: V_old 0, V_new 1, Ret 2, eps_v 0.2 gives 1.62 with zero gradient",
          "[losses]") {
  vector_d g(1);
  const auto s = ppo_value_loss<double>(vector_d::Ones(1), vector_d::Zero(1),
                                        vector_d::Constant(1, 2.0), 0.2, g);
  CHECK_THAT(s.loss, WithinAbs(1.62, 1e-12));
  CHECK(g(0) == 0.0);
  CHECK(s.clip_fraction == 1.0);
}

TEST_CASE("PPO policy and value gradients match finite differences", "[losses]") {
  rng g(31);
  const prefopt::index_t n = 12;
  vector_d lnew(n), lold(n), adv(n), vnew(n), vold(n), ret(n);
  for (prefopt::index_t i = 0; i < n; ++i) {
    lold(i) = g.uniform(-3, -0.1);
    lnew(i) = lold(i) + g.uniform(-0.5, 0.5);
    adv(i) = g.uniform(-2, 2);
    vold(i) = g.uniform(-1, 1);
    vnew(i) = vold(i) + g.uniform(-0.6, 0.6);
    ret(i) = g.uniform(-2, 2);
  }
  vector_d gp(n), gv(n), scratch(n);
  ppo_policy_loss<double>(lnew, lold, adv, 0.2, gp);
  ppo_value_loss<double>(vnew, vold, ret, 0.2, gv);
  for (prefopt::index_t i = 0; i < n; ++i) {
    const double fp = test::central_difference(
        [&](const vector_d& x) { return ppo_policy_loss<double>(x, lold, adv, 0.2, scratch).loss; },
        lnew, i);
    const double fv = test::central_difference(
        [&](const vector_d& x) { return ppo_value_loss<double>(x, vold, ret, 0.2, scratch).loss; },
        vnew, i);
    CHECK(test::close(gp(i), fp, 1e-6));
    CHECK(test::close(gv(i), fv, 1e-6));
  }
}

TEST_CASE("PPO losses in float agree with double within 1e-5", "[losses]") {
  rng g(32);
  const prefopt::index_t n = 10;
  vector_d lnew(n), lold(n), adv(n);
  for (prefopt::index_t i = 0; i < n; ++i) {
    lold(i) = g.uniform(-3, -0.1);
    lnew(i) = lold(i) + g.uniform(-0.5, 0.5);
    adv(i) = g.uniform(-2, 2);
  }
  vector_d gd(n);
  vector_f gf(n);
  const auto d = ppo_policy_loss<double>(lnew, lold, adv, 0.2, gd);
  const auto f =
      ppo_policy_loss<float>(lnew.cast<float>(), lold.cast<float>(), adv.cast<float>(), 0.2, gf);
  CHECK_THAT(double(f.loss), WithinAbs(d.loss, 1e-5));
  for (prefopt::index_t i = 0; i < n; ++i) CHECK_THAT(double(gf(i)), WithinAbs(gd(i), 1e-6));
}

TEST_CASE("Adaptive KL controller multiplies tau by exactly 1 + 0.2 n/horizon above target",
          "[losses]") {
  adaptive_kl_controller c(0.2, 6.0, 10000.0);
  for (int step = 0; step < 100; ++step) c.update(/*kl=*/6.0 * 1.5, /*n_steps=*/64);
  CHECK_THAT(c.coefficient(), WithinAbs(0.2272920, 1e-6));
  adaptive_kl_controller one(0.2, 6.0, 10000.0);
  one.update(7.2, 64);
  CHECK(one.coefficient() == 0.2 * (1.0 + 0.2 * 64.0 / 10000.0));
  adaptive_kl_controller same(0.2, 6.0, 10000.0);
  same.update(6.0, 64);
  CHECK(same.coefficient() == 0.2);
  adaptive_kl_controller below(0.2, 6.0, 10000.0);
  below.update(0.0, 64);
  CHECK_THAT(below.coefficient(), WithinAbs(0.2 * (1.0 - 0.2 * 0.0064), 1e-15));
}

TEST_CASE("Paper-gain helper: horizon n/K_p makes the code form's gain equal K_p", "[losses]") {
  const double horizon = adaptive_kl_controller::horizon_for_gain(64, 0.1);
  CHECK_THAT(horizon, WithinAbs(640.0, 1e-12));
  adaptive_kl_controller c(0.2, 6.0, horizon);
  c.update(6.6, 64);  // e = 0.1
  CHECK_THAT(c.coefficient(), WithinAbs(0.2 * (1.0 + 0.1 * 0.1), 1e-15));
  fixed_kl_controller f(0.05);
  f.update(100.0, 64);
  CHECK(f.coefficient() == 0.05);
}
