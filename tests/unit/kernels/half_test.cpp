// bf16 and fp16 logits (Eigen::bfloat16, Eigen::half) on every instruction-set path: the forward
// kernels bitwise equal to the float kernels on the exactly widened logits and within the float
// bounds of a long-double reference computed from the same half-precision values; the backward
// kernels equal to the float gradient rounded once to the half format (overwrite and accumulate);
// bitwise invariance to the batch, the address and threading; errors naming kernel and row.

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
#include "prefopt/kernels/logsumexp.hpp"
#include "prefopt/kernels/token_log_probs.hpp"
#include "prefopt/kernels/token_stats.hpp"
#include "stats_reference.hpp"

using namespace prefopt;
using idx = prefopt::index_t;
using prefopt::test::ld;

namespace {

/// Logits in format H: uniform in [-scale, scale] rounded to H, a fraction `neg_inf` of -inf.
template <class H>
row_matrix_t<H> half_logits(idx n, idx v, double scale, std::uint64_t seed, double neg_inf = 0) {
  const auto f = test::random_logits<float>(n, v, scale, seed, neg_inf);
  return f.template cast<H>();
}

template <class H>
row_matrix_f widened(const row_matrix_t<H>& z) {
  return z.template cast<float>();
}

/// Unit roundoff of the half format (bf16: 2^-8, fp16: 2^-11).
template <class H>
double half_u() {
  return std::is_same_v<H, Eigen::bfloat16> ? 0x1p-8 : 0x1p-11;
}

/// Bitwise equality of two float vectors (NaN-free here).
bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

template <class H>
bool same_bits(const row_matrix_t<H>& a, const row_matrix_t<H>& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() &&
         std::memcmp(a.data(), b.data(), static_cast<std::size_t>(a.size()) * sizeof(H)) == 0;
}

/// Every output of the two-matrix `token_stats`, computed for logits of any scalar type.
struct all_stats {
  std::vector<float> lp, lse, h, kl, klr, lseq;
};

template <class M>
all_stats stats_of(const M& z, const M& zq, const std::vector<token_id>& t,
                   const kernels::options& opt = {}) {
  const auto n = static_cast<std::size_t>(z.rows());
  all_stats s{std::vector<float>(n), std::vector<float>(n), std::vector<float>(n),
              std::vector<float>(n), std::vector<float>(n), std::vector<float>(n)};
  kernels::token_stats(z, zq, t,
                       {.log_probs = kernels::span_of(s.lp),
                        .logsumexp = kernels::span_of(s.lse),
                        .entropy = kernels::span_of(s.h),
                        .kl = kernels::span_of(s.kl),
                        .kl_reverse = kernels::span_of(s.klr),
                        .logsumexp_q = kernels::span_of(s.lseq)},
                       opt);
  return s;
}

/// Bitwise equality of every output.
bool same_bits(const all_stats& a, const all_stats& b) {
  return same_bits(a.lp, b.lp) && same_bits(a.lse, b.lse) && same_bits(a.h, b.h) &&
         same_bits(a.kl, b.kl) && same_bits(a.klr, b.klr) && same_bits(a.lseq, b.lseq);
}

}  // namespace

TEMPLATE_TEST_CASE(
    "half logits: every path equals the float kernels on the widened logits and "
    "meets the float bounds against the long-double reference",
    "[kernels][half][isa]", Eigen::bfloat16, Eigen::half) {
  using H = TestType;
  for (auto path : test::supported_paths()) {
    const test::forced_path fp(path);
    for (auto acc : {kernels::exp_accuracy::standard, kernels::exp_accuracy::fast}) {
      const double c = acc == kernels::exp_accuracy::fast ? 300 : 150;
      kernels::options opt;
      opt.exp = acc;
      for (const idx v : {idx{1}, idx{17}, idx{1008}, idx{4097}, idx{33001}}) {
        for (const double scale : {1.0, 30.0, 1e4}) {
          for (const double neg_inf : {0.0, 0.3}) {
            const idx n = 3;
            const auto seed = static_cast<std::uint64_t>(v) * 13 + 1;
            const auto z = half_logits<H>(n, v, scale, seed, neg_inf);
            const row_matrix_t<H> zq =
                (widened(z) + test::random_logits<float>(n, v, 0.2 * scale, seed + 1))
                    .template cast<H>();
            const row_matrix_f zf = widened(z);  // the same values, exactly
            const row_matrix_f zqf = widened(zq);
            const auto t = test::random_targets<float>(n, v, 5);
            const all_stats st = stats_of(z, zq, t, opt);
            const auto& [lp, lse, h, kl, klr, lseq] = st;
            INFO("path " << kernels::isa_name(path) << ", fast " << (c > 150) << ", V = " << v
                         << ", scale = " << scale << ", -inf " << neg_inf);
            // Same outputs as the float path on the widened logits, bitwise.
            CHECK(same_bits(st, stats_of(zf, zqf, t, opt)));
            // The dedicated kernels read half logits too, with the fused kernel's results.
            std::vector<float> lp1(n), lse1(n), h1(n), kl1(n), klr1(n);
            kernels::token_log_probs(z, t, kernels::span_of(lp1), opt);
            kernels::row_logsumexp(z, kernels::span_of(lse1), opt);
            kernels::entropy(z, kernels::span_of(h1), opt);
            kernels::kl_divergence(z, zq, kernels::span_of(kl1), kernels::span_of(klr1), opt);
            CHECK(same_bits(lp1, lp));
            CHECK(same_bits(lse1, lse));
            CHECK(same_bits(h1, h));
            CHECK(same_bits(kl1, kl));
            CHECK(same_bits(klr1, klr));
            // Against the long-double reference of the same half-precision values.
            for (idx i = 0; i < n; ++i) {
              const auto k = static_cast<std::size_t>(i);
              INFO("row " << i);
              test::check_stats_row(zf.row(i).data(), zqf.row(i).data(), v, t[k], c,
                                    {lp[k], lse[k], h[k], kl[k], klr[k], lseq[k]});
            }
          }
        }
      }
    }
  }
}

TEMPLATE_TEST_CASE("half logits: every backward is the float gradient rounded once to the format",
                   "[kernels][half][isa][backward]", Eigen::bfloat16, Eigen::half) {
  using H = TestType;
  const idx n = 4;
  const idx v = 3001;
  const auto z = half_logits<H>(n, v, 8.0, 41, 0.05);
  const auto zq = half_logits<H>(n, v, 8.0, 42, 0.0);
  const row_matrix_f zf = widened(z);
  const row_matrix_f zqf = widened(zq);
  const auto t = test::random_targets<float>(n, v, 9);
  const std::vector<float> g{1.0f, -0.5f, 2.0f, 0.25f};
  const std::vector<float> gh{0.3f, -1.0f, 0.5f, 2.0f};
  const std::vector<float> gk{-0.7f, 1.5f, 0.2f, 1.0f};
  const double uf = test::unit_roundoff<float>();
  for (auto path : test::supported_paths()) {
    const test::forced_path fp(path);
    INFO("path " << kernels::isa_name(path));
    std::vector<float> lp(n), lse(n), h(n), kl(n), lseq(n);
    kernels::token_stats(z, zq, t,
                         {.log_probs = kernels::span_of(lp),
                          .logsumexp = kernels::span_of(lse),
                          .entropy = kernels::span_of(h),
                          .kl = kernels::span_of(kl),
                          .logsumexp_q = kernels::span_of(lseq)});
    const kernels::token_stats_saved<float> saved{
        .logsumexp = lse, .entropy = h, .kl = kl, .logsumexp_q = lseq};
    const kernels::token_stats_grads<float> grads{.log_probs = g, .entropy = gh, .kl = gk};
    for (auto mode : {kernels::write_mode::overwrite, kernels::write_mode::accumulate}) {
      INFO("accumulate " << (mode == kernels::write_mode::accumulate));
      kernels::options opt;
      opt.mode = mode;
      // Start values for accumulate: some half-format gradient already there.
      const auto d0 = half_logits<H>(n, v, 0.01, 43);
      const auto dq0 = half_logits<H>(n, v, 0.01, 44);
      row_matrix_t<H> d = d0;
      row_matrix_t<H> dq = dq0;
      kernels::token_stats_backward(z, zq, t, saved, grads, d, dq, opt);
      row_matrix_f df = widened(d0);
      row_matrix_f dqf = widened(dq0);
      kernels::token_stats_backward(zf, zqf, t, saved, grads, df, dqf, opt);
      CHECK(same_bits<H>(d, df.cast<H>()));
      CHECK(same_bits<H>(dq, dqf.cast<H>()));
      // Each dedicated backward likewise.
      row_matrix_t<H> d1 = d0;
      row_matrix_f d1f = widened(d0);
      kernels::token_log_probs_backward(z, t, std::span<const float>(lse),
                                        std::span<const float>(g), d1, opt);
      kernels::token_log_probs_backward(zf, t, std::span<const float>(lse),
                                        std::span<const float>(g), d1f, opt);
      CHECK(same_bits<H>(d1, d1f.cast<H>()));
      row_matrix_t<H> d2 = d0;
      row_matrix_f d2f = widened(d0);
      kernels::entropy_backward(z, std::span<const float>(lse), std::span<const float>(h),
                                std::span<const float>(gh), d2, opt);
      kernels::entropy_backward(zf, std::span<const float>(lse), std::span<const float>(h),
                                std::span<const float>(gh), d2f, opt);
      CHECK(same_bits<H>(d2, d2f.cast<H>()));
      row_matrix_t<H> d3 = d0;
      row_matrix_t<H> dq3 = dq0;
      row_matrix_f d3f = widened(d0);
      row_matrix_f dq3f = widened(dq0);
      kernels::kl_divergence_backward(z, zq, std::span<const float>(lse),
                                      std::span<const float>(lseq), std::span<const float>(kl),
                                      std::span<const float>(gk), d3, dq3, opt);
      kernels::kl_divergence_backward(zf, zqf, std::span<const float>(lse),
                                      std::span<const float>(lseq), std::span<const float>(kl),
                                      std::span<const float>(gk), d3f, dq3f, opt);
      CHECK(same_bits<H>(d3, d3f.cast<H>()));
      CHECK(same_bits<H>(dq3, dq3f.cast<H>()));
      if (mode == kernels::write_mode::overwrite) {
        // The log-prob gradient against the long-double reference: the float bound plus one
        // rounding to the format (relative, and half the smallest fp16 subnormal in absolute).
        double worst = 0;
        for (idx i = 0; i < n; ++i) {
          const auto k = static_cast<std::size_t>(i);
          const ld rl = test::ref_lse(zf.row(i).data(), v);
          for (idx j = 0; j < v; ++j) {
            const bool inf = std::isinf(zf(i, j));
            const ld p = inf ? 0 : std::exp(static_cast<ld>(zf(i, j)) - rl);
            const ld ref = static_cast<ld>(g[k]) * ((j == t[k] ? 1 : 0) - p);
            const double zj = inf ? 0.0 : std::abs(static_cast<double>(zf(i, j)));
            const double bound =
                std::abs(static_cast<double>(g[k])) * uf *
                    ((2 * std::abs(static_cast<double>(rl)) + zj + 150) * static_cast<double>(p) +
                     1) +
                half_u<H>() * std::abs(static_cast<double>(ref)) * 1.01 + 0x1p-25;
            worst = std::max(worst, test::err(static_cast<float>(d1(i, j)), ref) / bound);
          }
        }
        CHECK(worst <= 1.0);
      }
    }
  }
}

TEMPLATE_TEST_CASE("half logits: log_softmax writes the float result rounded to the format",
                   "[kernels][half]", Eigen::bfloat16, Eigen::half) {
  using H = TestType;
  const auto z = half_logits<H>(3, 2049, 5.0, 51, 0.1);
  const row_matrix_f zf = widened(z);
  for (auto path : test::supported_paths()) {
    const test::forced_path fp(path);
    INFO("path " << kernels::isa_name(path));
    row_matrix_t<H> out(3, 2049);
    row_matrix_f outf(3, 2049);
    kernels::log_softmax(z, out);
    kernels::log_softmax(zf, outf);
    CHECK(same_bits<H>(out, outf.cast<H>()));
    row_matrix_t<H> in_place = z;
    kernels::log_softmax_inplace(in_place);
    CHECK(same_bits<H>(in_place, out));
  }
}

TEMPLATE_TEST_CASE("half logits: bitwise invariant to the batch, the address and threading",
                   "[kernels][half][invariance]", Eigen::bfloat16, Eigen::half) {
  using H = TestType;
  const idx n = 6;
  const idx v = 5003;
  const auto z = half_logits<H>(n, v, 20.0, 61, 0.02);
  const auto zq = half_logits<H>(n, v, 20.0, 62, 0.0);
  const auto t = test::random_targets<float>(n, v, 3);
  for (auto path : test::supported_paths()) {
    const test::forced_path fp(path);
    INFO("path " << kernels::isa_name(path));
    const all_stats st = stats_of(z, zq, t);
    kernels::options serial;
    serial.parallel = false;
    CHECK(same_bits(stats_of(z, zq, t, serial), st));
    // Rows 4 and 1 alone, at an address shifted by one element (odd: not 4-byte aligned).
    std::vector<H> bp(static_cast<std::size_t>(2 * v + 1));
    std::vector<H> bq(static_cast<std::size_t>(2 * v + 1));
    const std::vector<idx> pick{4, 1};
    std::vector<token_id> tt;
    for (std::size_t k = 0; k < 2; ++k) {
      std::memcpy(static_cast<void*>(bp.data() + 1 + static_cast<idx>(k) * v),
                  z.row(pick[k]).data(), sizeof(H) * static_cast<std::size_t>(v));
      std::memcpy(static_cast<void*>(bq.data() + 1 + static_cast<idx>(k) * v),
                  zq.row(pick[k]).data(), sizeof(H) * static_cast<std::size_t>(v));
      tt.push_back(t[static_cast<std::size_t>(pick[k])]);
    }
    const Eigen::Map<const row_matrix_t<H>> sp(bp.data() + 1, 2, v);
    const Eigen::Map<const row_matrix_t<H>> sq(bq.data() + 1, 2, v);
    const all_stats st2 = stats_of(sp, sq, tt);
    for (std::size_t k = 0; k < 2; ++k) {
      const auto r = static_cast<std::size_t>(pick[k]);
      CHECK(std::memcmp(&st2.lp[k], &st.lp[r], sizeof(float)) == 0);
      CHECK(std::memcmp(&st2.h[k], &st.h[r], sizeof(float)) == 0);
      CHECK(std::memcmp(&st2.kl[k], &st.kl[r], sizeof(float)) == 0);
      CHECK(std::memcmp(&st2.klr[k], &st.klr[r], sizeof(float)) == 0);
    }
  }
}

TEMPLATE_TEST_CASE("half logits: a NaN, +inf or all -inf row is reported with kernel and row",
                   "[kernels][half][errors]", Eigen::bfloat16, Eigen::half) {
  using H = TestType;
  const idx v = 1500;
  const auto t = test::random_targets<float>(4, v, 1);
  for (auto path : test::supported_paths()) {
    const test::forced_path fp(path);
    INFO("path " << kernels::isa_name(path));
    std::vector<float> lp(4);
    auto z = half_logits<H>(4, v, 3.0, 71);
    z(2, 1234) = std::numeric_limits<H>::quiet_NaN();
    CHECK_THROWS_WITH(kernels::token_log_probs(z, t, kernels::span_of(lp)),
                      Catch::Contains("token_log_probs") && Catch::Contains("(2, 1234)") &&
                          Catch::Contains("row 2"));
    z = half_logits<H>(4, v, 3.0, 72);
    z(1, 7) = std::numeric_limits<H>::infinity();
    CHECK_THROWS_WITH(
        kernels::entropy(z, kernels::span_of(lp)),
        Catch::Contains("entropy") && Catch::Contains("(1, 7) = inf") && Catch::Contains("row 1"));
    z = half_logits<H>(4, v, 3.0, 73);
    z.row(3).setConstant(-std::numeric_limits<H>::infinity());
    const auto q = half_logits<H>(4, v, 3.0, 74);
    CHECK_THROWS_WITH(kernels::kl_divergence(q, z, kernels::span_of(lp), {}),
                      Catch::Contains("kl_divergence") && Catch::Contains("q_logits row 3") &&
                          Catch::Contains("no finite logit"));
  }
}
