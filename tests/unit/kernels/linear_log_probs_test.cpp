#include "prefopt/kernels/linear_log_probs.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <tuple>
#include <vector>

#include "kernel_reference.hpp"
#include "prefopt/kernels/token_log_probs.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

using namespace prefopt;
using idx = prefopt::index_t;
using prefopt::test::ld;

namespace {
template <class T>
row_matrix_t<T> random_matrix(idx r, idx c, double scale, std::uint64_t seed) {
  return test::random_logits<T>(r, c, scale, seed);
}
}  // namespace

TEMPLATE_TEST_CASE("linear_log_probs matches log-softmax of the materialized logits",
                   "[kernels][linear_log_probs]", float, double) {
  using T = TestType;
  for (const idx v : {idx{1}, idx{29}, idx{1008}, idx{2500}}) {
    const idx n = 13;
    const idx d = 37;
    const auto h = random_matrix<T>(n, d, 1.0, 1);
    const auto w = random_matrix<T>(v, d, 0.5, 2);
    const auto bias_m = random_matrix<T>(1, v, 2.0, 3);
    const std::vector<T> bias(bias_m.data(), bias_m.data() + v);
    const auto t = test::random_targets<T>(n, v, 4);
    std::vector<T> lp(n), lse(n), ent(n);
    kernels::linear_log_probs(h, w, std::span<const T>(bias), t,
                              {.log_probs = kernels::span_of(lp),
                               .logsumexp = kernels::span_of(lse),
                               .entropy = kernels::span_of(ent)});
    for (idx i = 0; i < n; ++i) {
      std::vector<ld> z(static_cast<std::size_t>(v));
      ld m = -std::numeric_limits<ld>::infinity();
      for (idx j = 0; j < v; ++j) {
        ld s = static_cast<ld>(bias[static_cast<std::size_t>(j)]);
        for (idx k = 0; k < d; ++k) s += static_cast<ld>(h(i, k)) * static_cast<ld>(w(j, k));
        z[static_cast<std::size_t>(j)] = s;
        m = std::max(m, s);
      }
      ld sum = 0;
      for (const ld x : z) sum += std::exp(x - m);
      const ld ref_lse = m + std::log(sum);
      ld ref_h = 0;
      for (const ld x : z) ref_h -= std::exp(x - ref_lse) * (x - ref_lse);
      const auto u = static_cast<std::size_t>(i);
      const ld ref_lp = z[static_cast<std::size_t>(t[u])] - ref_lse;
      // GEMM rounding (D terms of size ~1) plus the documented log-sum-exp bound.
      const double gemm = 4.0 * static_cast<double>(d) * test::unit_roundoff<T>() * 2.0;
      INFO("V = " << v << ", row " << i);
      CHECK(test::err(lp[u], ref_lp) <=
            gemm + test::value_bound<T>(static_cast<double>(ref_lp), v));
      CHECK(test::err(lse[u], ref_lse) <=
            gemm + test::value_bound<T>(static_cast<double>(ref_lse), v));
      CHECK(test::err(ent[u], ref_h) <=
            gemm + 200 * test::unit_roundoff<T>() * (1 + std::log(static_cast<double>(v))));
    }
  }
}

TEMPLATE_TEST_CASE(
    "linear_log_probs forward is bitwise invariant to batch, block size and row tile",
    "[kernels][linear_log_probs][invariance]", float, double) {
  using T = TestType;
  const idx n = 21;
  const idx d = 64;
  const idx v = 3100;
  const auto h = random_matrix<T>(n, d, 1.0, 5);
  const auto w = random_matrix<T>(v, d, 0.3, 6);
  const auto t = test::random_targets<T>(n, v, 7);
  std::vector<T> lp(n), lse(n), ent(n);
  kernels::linear_log_probs(h, w, {}, t,
                            {.log_probs = kernels::span_of(lp),
                             .logsumexp = kernels::span_of(lse),
                             .entropy = kernels::span_of(ent)});
  for (const idx block : {idx{1}, idx{1008}, idx{3024}, idx{100000}}) {
    for (const idx tile : {idx{0}, idx{1}, idx{4}, idx{7}, idx{64}}) {
      kernels::linear_options opt;
      opt.block_size = block;
      opt.row_tile = tile;
      std::vector<T> lp2(n), lse2(n), ent2(n);
      kernels::linear_log_probs(h, w, {}, t,
                                {.log_probs = kernels::span_of(lp2),
                                 .logsumexp = kernels::span_of(lse2),
                                 .entropy = kernels::span_of(ent2)},
                                opt);
      INFO("block " << block << ", tile " << tile);
      CHECK(lp2 == lp);
      CHECK(lse2 == lse);
      CHECK(ent2 == ent);
    }
  }
  // Rows 20, 3, 11 alone, in another order.
  const std::vector<idx> pick{20, 3, 11};
  row_matrix_t<T> hs(3, d);
  std::vector<token_id> ts;
  for (std::size_t k = 0; k < pick.size(); ++k) {
    hs.row(static_cast<idx>(k)) = h.row(pick[k]);
    ts.push_back(t[static_cast<std::size_t>(pick[k])]);
  }
  std::vector<T> lp3(3);
  kernels::linear_log_probs(hs, w, {}, ts, {.log_probs = kernels::span_of(lp3)});
  for (std::size_t k = 0; k < pick.size(); ++k)
    CHECK(lp3[k] == lp[static_cast<std::size_t>(pick[k])]);
  // The fused result is that of token_log_probs on the same logits (the GEMM's own rounding aside,
  // which the kernel makes position independent): compare within the bound.
  row_matrix_t<T> z = h * w.transpose();
  std::vector<T> lpz(n);
  kernels::token_log_probs(z, t, kernels::span_of(lpz));
  for (std::size_t i = 0; i < lp.size(); ++i) {
    CHECK(std::abs(static_cast<double>(lpz[i] - lp[i])) <= 1e3 * test::unit_roundoff<T>());
  }
#if defined(_OPENMP)
  std::vector<T> a(n), b(n);
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  kernels::linear_log_probs(h, w, {}, t, {.log_probs = kernels::span_of(a)});
  omp_set_num_threads(2);
  kernels::linear_log_probs(h, w, {}, t, {.log_probs = kernels::span_of(b)});
  omp_set_num_threads(saved);
  CHECK(a == b);
  CHECK(a == lp);
#endif
}

#if defined(_OPENMP)
TEST_CASE("linear_log_probs_backward: 1 and 2 threads give bitwise the same gradients",
          "[kernels][linear_log_probs][gradient]") {
  // Several vocabulary blocks (block 144 < V) and more rows than a thread's forward share: the
  // backward splits blocks for dweight / dbias and row tiles for dhidden, each output summed in
  // the one-thread order.
  const idx n = 700, d = 24, v = 1000;
  const auto h = random_matrix<float>(n, d, 1.0, 21);
  const auto w = random_matrix<float>(v, d, 0.5, 22);
  const auto bm = random_matrix<float>(1, v, 1.0, 23);
  const std::vector<float> bias(bm.data(), bm.data() + v);
  std::vector<token_id> t(static_cast<std::size_t>(n));
  std::vector<float> g_lp(t.size()), g_h(t.size());
  for (idx i = 0; i < n; ++i) {
    t[static_cast<std::size_t>(i)] = static_cast<token_id>((37 * i) % v);
    g_lp[static_cast<std::size_t>(i)] = static_cast<float>((i % 7) - 3) / 3.0f;
    g_h[static_cast<std::size_t>(i)] = static_cast<float>((i % 5) - 2) / 5.0f;
  }
  kernels::linear_options opt;
  opt.block_size = 144;
  std::vector<float> lse(t.size()), ent(t.size());
  kernels::linear_log_probs(
      h, w, bias, t, {.logsumexp = kernels::span_of(lse), .entropy = kernels::span_of(ent)}, opt);
  auto grads = [&](int threads) {
    const int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    row_matrix_t<float> dh(n, d), dw(v, d);
    std::vector<float> db(static_cast<std::size_t>(v));
    kernels::linear_log_probs_backward(
        h, w, bias, t, {.logsumexp = kernels::span_of(lse), .entropy = kernels::span_of(ent)},
        {.log_probs = kernels::span_of(g_lp), .entropy = kernels::span_of(g_h)}, dh, dw,
        std::span<float>(db), opt);
    omp_set_num_threads(saved);
    return std::make_tuple(dh, dw, db);
  };
  const auto [dh1, dw1, db1] = grads(1);
  const auto [dh2, dw2, db2] = grads(2);
  CHECK(dh1 == dh2);
  CHECK(dw1 == dw2);
  CHECK(db1 == db2);
  CHECK(dh1.cwiseAbs().maxCoeff() > 0.0f);
  CHECK(dw1.cwiseAbs().maxCoeff() > 0.0f);
}
#endif

TEST_CASE("linear_log_probs_backward equals finite differences in hidden, weight and bias",
          "[kernels][linear_log_probs][gradient]") {
  const idx n = 5;
  const idx d = 6;
  const idx v = 11;
  const auto h = random_matrix<double>(n, d, 1.0, 8);
  const auto w = random_matrix<double>(v, d, 0.7, 9);
  const auto bm = random_matrix<double>(1, v, 1.0, 10);
  const std::vector<double> bias(bm.data(), bm.data() + v);
  const std::vector<token_id> t{0, 10, 4, 4, 7};
  const std::vector<double> g_lp{1.0, -0.7, 0.4, 2.0, -1.5};
  const std::vector<double> g_h{0.3, 0.0, -0.8, 1.1, 0.5};
  std::vector<std::uint8_t> mask{1, 1, 0, 1, 1};
  kernels::linear_options opt;
  opt.mask = mask;
  opt.block_size = 1;  // several blocks are irrelevant here (V < 1008) but exercise rounding
  auto loss = [&](const row_matrix_d& hh, const row_matrix_d& ww, const std::vector<double>& bb) {
    std::vector<double> lp(n), e(n);
    kernels::linear_log_probs(hh, ww, std::span<const double>(bb), t,
                              {.log_probs = kernels::span_of(lp), .entropy = kernels::span_of(e)},
                              opt);
    double s = 0;
    for (std::size_t i = 0; i < lp.size(); ++i) s += g_lp[i] * lp[i] + g_h[i] * e[i];
    return s;
  };
  std::vector<double> lp(n), lse(n), ent(n);
  kernels::linear_log_probs(h, w, std::span<const double>(bias), t,
                            {.log_probs = kernels::span_of(lp),
                             .logsumexp = kernels::span_of(lse),
                             .entropy = kernels::span_of(ent)},
                            opt);
  CHECK(lp[2] == 0.0);
  row_matrix_d dh(n, d), dw(v, d);
  std::vector<double> db(v);
  kernels::linear_log_probs_backward(
      h, w, std::span<const double>(bias), t, {.logsumexp = lse, .entropy = ent},
      {.log_probs = g_lp, .entropy = g_h}, dh, dw, kernels::span_of(db), opt);
  const auto num_h =
      test::numeric_gradient(h, [&](const row_matrix_d& x) { return loss(x, w, bias); });
  const auto num_w =
      test::numeric_gradient(w, [&](const row_matrix_d& x) { return loss(h, x, bias); });
  row_matrix_d bmat(1, v);
  for (idx j = 0; j < v; ++j) bmat(0, j) = bias[static_cast<std::size_t>(j)];
  const auto num_b = test::numeric_gradient(bmat, [&](const row_matrix_d& x) {
    return loss(h, w, std::vector<double>(x.data(), x.data() + v));
  });
  CHECK((dh - num_h).cwiseAbs().maxCoeff() < 1e-7);
  CHECK((dw - num_w).cwiseAbs().maxCoeff() < 1e-7);
  for (idx j = 0; j < v; ++j) CHECK(std::abs(db[static_cast<std::size_t>(j)] - num_b(0, j)) < 1e-7);
  CHECK(dh.row(2).cwiseAbs().maxCoeff() == 0.0);
  // accumulate adds to what is there; an empty dweight is skipped.
  row_matrix_d dh2 = row_matrix_d::Constant(n, d, 1.0), none;
  opt.mode = kernels::write_mode::accumulate;
  kernels::linear_log_probs_backward(h, w, std::span<const double>(bias), t,
                                     {.logsumexp = lse, .entropy = ent},
                                     {.log_probs = g_lp, .entropy = g_h}, dh2, none, {}, opt);
  CHECK(((dh2.array() - 1.0) - dh.array()).abs().maxCoeff() < 1e-14);
}

TEST_CASE("linear_log_probs backward gives the same gradient for every block size and row tile",
          "[kernels][linear_log_probs][gradient]") {
  const idx n = 9;
  const idx d = 16;
  const idx v = 2100;
  const auto h = random_matrix<float>(n, d, 1.0, 11);
  const auto w = random_matrix<float>(v, d, 0.5, 12);
  const auto t = test::random_targets<float>(n, v, 13);
  std::vector<float> lse(n), lp(n);
  kernels::linear_log_probs(
      h, w, {}, t, {.log_probs = kernels::span_of(lp), .logsumexp = kernels::span_of(lse)});
  const std::vector<float> g(n, 1.0f);
  row_matrix_f dh_ref(n, d), dw_ref(v, d);
  kernels::linear_log_probs_backward(h, w, {}, t, {.logsumexp = lse}, {.log_probs = g}, dh_ref,
                                     dw_ref, {});
  for (const idx block : {idx{1008}, idx{2016}}) {
    for (const idx tile : {idx{4}, idx{5}}) {
      kernels::linear_options opt;
      opt.block_size = block;
      opt.row_tile = tile;
      row_matrix_f dh(n, d), dw(v, d);
      kernels::linear_log_probs_backward(h, w, {}, t, {.logsumexp = lse}, {.log_probs = g}, dh, dw,
                                         {}, opt);
      CHECK((dh - dh_ref).cwiseAbs().maxCoeff() < 1e-5f);
      CHECK((dw - dw_ref).cwiseAbs().maxCoeff() < 1e-5f);
    }
  }
}

TEST_CASE("linear_log_probs rejects mismatched shapes, bad targets and non-finite hidden states",
          "[kernels][linear_log_probs]") {
  const auto h = random_matrix<float>(3, 8, 1.0, 1);
  const auto w = random_matrix<float>(20, 8, 1.0, 2);
  const auto w_bad = random_matrix<float>(20, 9, 1.0, 2);
  std::vector<token_id> t{1, 2, 3};
  std::vector<float> lp(3);
  CHECK_THROWS_AS(kernels::linear_log_probs(h, w_bad, {}, t, {.log_probs = kernels::span_of(lp)}),
                  shape_error);
  t[1] = 20;
  CHECK_THROWS_WITH(kernels::linear_log_probs(h, w, {}, t, {.log_probs = kernels::span_of(lp)}),
                    Catch::Contains("linear_log_probs") && Catch::Contains("targets[1] = 20"));
  t[1] = 2;
  std::vector<float> short_bias(19, 0.0f);
  CHECK_THROWS_AS(kernels::linear_log_probs(h, w, std::span<const float>(short_bias), t,
                                            {.log_probs = kernels::span_of(lp)}),
                  shape_error);
  auto hn = h;
  hn(2, 3) = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_WITH(kernels::linear_log_probs(hn, w, {}, t, {.log_probs = kernels::span_of(lp)}),
                    Catch::Contains("row 2"));
  row_matrix_f empty(0, 8);
  std::vector<float> none;
  CHECK_NOTHROW(kernels::linear_log_probs(empty, w, {}, {}, {.log_probs = kernels::span_of(none)}));
}
