// Every instruction-set path of the row math (kernels/dispatch.hpp), forced one by one, at both
// exp accuracies: against the long-double reference within the documented bounds, bitwise
// invariant to the batch and the address, the fused kernel bitwise equal to the dedicated ones,
// and non-finite rows reported with kernel and row.

#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "isa_paths.hpp"
#include "kernel_reference.hpp"
#include "prefopt/kernels/dispatch.hpp"
#include "prefopt/kernels/entropy.hpp"
#include "prefopt/kernels/kl.hpp"
#include "prefopt/kernels/token_log_probs.hpp"
#include "prefopt/kernels/token_stats.hpp"
#include "stats_reference.hpp"

using namespace prefopt;
using idx = prefopt::index_t;
using prefopt::test::ld;

namespace {

/// The bounds' constant c: 150 (standard exp), 300 (fast exp).
double isa_test_c(kernels::exp_accuracy a) {
  return a == kernels::exp_accuracy::fast ? 300 : 150;
}

}  // namespace

TEST_CASE("dispatch: a path is chosen, can be forced and reset; baseline is always there",
          "[kernels][isa]") {
  CHECK(kernels::isa_supported(kernels::isa::baseline));
  const auto auto_path = kernels::detected_isa();
  CHECK(kernels::isa_supported(auto_path));
  CHECK(kernels::active_isa() == auto_path);
  {
    const test::forced_path f(kernels::isa::baseline);
    CHECK(kernels::active_isa() == kernels::isa::baseline);
  }
  CHECK(kernels::active_isa() == auto_path);
  for (auto i : {kernels::isa::avx2, kernels::isa::avx512}) {
    if (!kernels::isa_supported(i)) {
      CHECK_THROWS_WITH(kernels::force_isa(i),
                        Catch::Contains("force_isa") && Catch::Contains(kernels::isa_name(i)));
    }
  }
  CHECK(std::string(kernels::isa_name(kernels::isa::avx512)) == "avx512");
}

TEST_CASE("every path and accuracy matches the long-double reference within the bounds",
          "[kernels][isa]") {
  for (auto path : test::supported_paths()) {
    const test::forced_path f(path);
    for (auto acc : {kernels::exp_accuracy::standard, kernels::exp_accuracy::fast}) {
      const double c = isa_test_c(acc);
      const double u = test::unit_roundoff<float>();
      kernels::options opt;
      opt.exp = acc;
      for (const idx v : {idx{1}, idx{17}, idx{1008}, idx{4097}, idx{33001}}) {
        for (const double scale : {1.0, 30.0, 1e4}) {
          for (const double neg_inf : {0.0, 0.3}) {
            const idx n = 3;
            const auto seed = static_cast<std::uint64_t>(v) * 7 + 3;
            const auto z = test::random_logits<float>(n, v, scale, seed, neg_inf);
            row_matrix_f zq = z + test::random_logits<float>(n, v, 0.2 * scale, seed + 1);
            const auto t = test::random_targets<float>(n, v, 5);
            std::vector<float> lp(n), lse(n), h(n), kl(n), klr(n), lseq(n);
            kernels::token_stats(z, zq, t,
                                 {.log_probs = kernels::span_of(lp),
                                  .logsumexp = kernels::span_of(lse),
                                  .entropy = kernels::span_of(h),
                                  .kl = kernels::span_of(kl),
                                  .kl_reverse = kernels::span_of(klr),
                                  .logsumexp_q = kernels::span_of(lseq)},
                                 opt);
            for (idx i = 0; i < n; ++i) {
              const auto k = static_cast<std::size_t>(i);
              INFO("path " << kernels::isa_name(path) << ", fast " << (c > 150) << ", V = " << v
                           << ", scale = " << scale << ", -inf " << neg_inf << ", row " << i);
              test::check_stats_row(z.row(i).data(), zq.row(i).data(), v, t[k], c,
                                    {lp[k], lse[k], h[k], kl[k], klr[k], lseq[k]});
            }
            // The gradient of sum g_i log p_i against the reference.
            const std::vector<float> g{1.0f, -0.5f, 2.0f};
            row_matrix_f d(n, v);
            kernels::token_log_probs_backward(z, t, std::span<const float>(lse), g, d, opt);
            double worst = 0;
            for (idx i = 0; i < n; ++i) {
              const ld rl = test::ref_lse(z.row(i).data(), v);
              const double gi = std::abs(static_cast<double>(g[static_cast<std::size_t>(i)]));
              for (idx j = 0; j < v; ++j) {
                const bool inf = std::isinf(z(i, j));
                const ld p = inf ? 0 : std::exp(static_cast<ld>(z(i, j)) - rl);
                const ld ref = static_cast<ld>(g[static_cast<std::size_t>(i)]) *
                               ((j == t[static_cast<std::size_t>(i)] ? 1 : 0) - p);
                const double zj = inf ? 0.0 : std::abs(static_cast<double>(z(i, j)));
                const double bound =
                    gi * u *
                    ((2 * std::abs(static_cast<double>(rl)) + zj + c) * static_cast<double>(p) + 1);
                worst = std::max(worst, test::err(d(i, j), ref) / bound);
              }
            }
            INFO("path " << kernels::isa_name(path) << ", V = " << v << ", scale = " << scale);
            CHECK(worst <= 1.0);
          }
        }
      }
    }
  }
}

TEST_CASE("every path: bitwise invariant to the batch and the address, fused == dedicated",
          "[kernels][isa][invariance]") {
  const idx v = 5003;
  const auto z = test::random_logits<float>(6, v, 20.0, 81, 0.02);
  const auto zq = test::random_logits<float>(6, v, 20.0, 82, 0.0);
  const auto t = test::random_targets<float>(6, v, 3);
  for (auto path : test::supported_paths()) {
    const test::forced_path f(path);
    for (auto acc : {kernels::exp_accuracy::standard, kernels::exp_accuracy::fast}) {
      kernels::options opt;
      opt.exp = acc;
      INFO("path " << kernels::isa_name(path));
      std::vector<float> lp(6), lse(6), h(6), kl(6), klr(6);
      kernels::token_stats(z, zq, t,
                           {.log_probs = kernels::span_of(lp),
                            .logsumexp = kernels::span_of(lse),
                            .entropy = kernels::span_of(h),
                            .kl = kernels::span_of(kl),
                            .kl_reverse = kernels::span_of(klr)},
                           opt);
      std::vector<float> lp1(6), h1(6), kl1(6), klr1(6);
      kernels::token_log_probs(z, t, kernels::span_of(lp1), opt);
      kernels::entropy(z, kernels::span_of(h1), opt);
      kernels::kl_divergence(z, zq, kernels::span_of(kl1), kernels::span_of(klr1), opt);
      CHECK(lp1 == lp);
      CHECK(h1 == h);
      CHECK(kl1 == kl);
      CHECK(klr1 == klr);
      // Rows 4 and 1 alone, at an address shifted by one float.
      std::vector<float> bp(static_cast<std::size_t>(2 * v + 1));
      std::vector<float> bq(static_cast<std::size_t>(2 * v + 1));
      const std::vector<idx> pick{4, 1};
      std::vector<token_id> tt;
      for (std::size_t k = 0; k < 2; ++k) {
        std::memcpy(bp.data() + 1 + static_cast<idx>(k) * v, z.row(pick[k]).data(),
                    sizeof(float) * static_cast<std::size_t>(v));
        std::memcpy(bq.data() + 1 + static_cast<idx>(k) * v, zq.row(pick[k]).data(),
                    sizeof(float) * static_cast<std::size_t>(v));
        tt.push_back(t[static_cast<std::size_t>(pick[k])]);
      }
      const Eigen::Map<const row_matrix_f> sp(bp.data() + 1, 2, v);
      const Eigen::Map<const row_matrix_f> sq(bq.data() + 1, 2, v);
      std::vector<float> lp2(2), h2(2), kl2(2), klr2(2);
      kernels::token_stats(sp, sq, tt,
                           {.log_probs = kernels::span_of(lp2),
                            .entropy = kernels::span_of(h2),
                            .kl = kernels::span_of(kl2),
                            .kl_reverse = kernels::span_of(klr2)},
                           opt);
      for (std::size_t k = 0; k < 2; ++k) {
        const auto r = static_cast<std::size_t>(pick[k]);
        CHECK(lp2[k] == lp[r]);
        CHECK(h2[k] == h[r]);
        CHECK(kl2[k] == kl[r]);
        CHECK(klr2[k] == klr[r]);
      }
      // The backward too (element-wise, including the padded last packet).
      const std::vector<float> g(6, 0.5f);
      row_matrix_f d(6, v);
      kernels::token_log_probs_backward(z, t, std::span<const float>(lse), g, d, opt);
      std::vector<float> lse2{lse[4], lse[1]};
      std::vector<float> d2(static_cast<std::size_t>(2 * v + 1));
      Eigen::Map<row_matrix_f> dm(d2.data() + 1, 2, v);
      kernels::token_log_probs_backward(sp, tt, std::span<const float>(lse2),
                                        std::span<const float>(g.data(), 2), dm, opt);
      for (std::size_t k = 0; k < 2; ++k) {
        CHECK(std::memcmp(dm.row(static_cast<idx>(k)).data(), d.row(pick[k]).data(),
                          sizeof(float) * static_cast<std::size_t>(v)) == 0);
      }
    }
  }
}

TEST_CASE("every path reports NaN, +inf and all -inf rows with kernel and row",
          "[kernels][isa][errors]") {
  for (auto path : test::supported_paths()) {
    const test::forced_path f(path);
    INFO("path " << kernels::isa_name(path));
    auto z = test::random_logits<float>(4, 2500, 3.0, 91);
    const std::vector<token_id> t(4, 0);
    std::vector<float> lp(4);
    auto zn = z;
    zn(2, 2499) = std::numeric_limits<float>::quiet_NaN();  // in the last, partial packet
    CHECK_THROWS_WITH(
        kernels::token_log_probs(zn, t, kernels::span_of(lp)),
        Catch::Contains("token_log_probs") && Catch::Contains("row 2") && Catch::Contains("2499"));
    auto zi = z;
    zi(1, 1500) = std::numeric_limits<float>::infinity();
    CHECK_THROWS_WITH(kernels::entropy(zi, kernels::span_of(lp)),
                      Catch::Contains("entropy") && Catch::Contains("row 1"));
    auto za = z;
    za.row(3).setConstant(-std::numeric_limits<float>::infinity());
    CHECK_THROWS_WITH(kernels::kl_divergence(z, za, kernels::span_of(lp), {}),
                      Catch::Contains("kl_divergence") && Catch::Contains("row 3"));
    // NaN after a -inf prefix (the running maximum is still -inf when it is seen).
    auto zp = z;
    zp.row(0).head(1200).setConstant(-std::numeric_limits<float>::infinity());
    zp(0, 5) = std::numeric_limits<float>::quiet_NaN();
    CHECK_THROWS_WITH(kernels::token_log_probs(zp, t, kernels::span_of(lp)),
                      Catch::Contains("row 0"));
  }
}
