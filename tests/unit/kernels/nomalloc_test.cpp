// Checks that no per-row kernel allocates: this executable is compiled with EIGEN_RUNTIME_NO_MALLOC
// (in every translation unit, before Eigen is included; see CMakeLists.txt), and each call runs
// with Eigen's heap allocation disallowed, so any Eigen temporary aborts the test. Standard-library
// allocations are not caught by Eigen's switch; the kernels make none (their scratch is on the
// stack), which the counting operator new below checks as well.
#if !defined(EIGEN_RUNTIME_NO_MALLOC)
#error "nomalloc_test.cpp must be compiled with EIGEN_RUNTIME_NO_MALLOC"
#endif

#include <catch2/catch.hpp>

#include <atomic>
#include <cstdlib>
#include <new>
#include <vector>

#include "kernel_reference.hpp"
#include "prefopt/kernels/entropy.hpp"
#include "prefopt/kernels/kl.hpp"
#include "prefopt/kernels/kl_estimators.hpp"
#include "prefopt/kernels/logsumexp.hpp"
#include "prefopt/kernels/ragged.hpp"
#include "prefopt/kernels/token_log_probs.hpp"
#include "prefopt/kernels/token_stats.hpp"

namespace {
std::atomic<long> g_news{0};
}  // namespace

// The counting replacement of operator new is left out under AddressSanitizer, which owns the
// allocation functions (mixing a replaced `new` with its `delete` is reported as a mismatch);
// Eigen's own check still runs there.
#if defined(__SANITIZE_ADDRESS__)
#define PREFOPT_COUNT_NEW 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PREFOPT_COUNT_NEW 0
#endif
#endif
#if !defined(PREFOPT_COUNT_NEW)
#define PREFOPT_COUNT_NEW 1
#endif

#if PREFOPT_COUNT_NEW
void* operator new(std::size_t n) {
  g_news.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
  return operator new(n);
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  g_news.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(n == 0 ? 1 : n);
}
void* operator new[](std::size_t n, const std::nothrow_t& t) noexcept {
  return operator new(n, t);
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete[](void* p) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}
#endif

using namespace prefopt;
using idx = prefopt::index_t;

namespace {
/// Runs `f` with Eigen allocation forbidden and counts operator new calls.
template <class F>
long allocations_in(F&& f) {
  const long before = g_news.load();
  Eigen::internal::set_is_malloc_allowed(false);
  f();
  Eigen::internal::set_is_malloc_allowed(true);
  return g_news.load() - before;
}
}  // namespace

TEMPLATE_TEST_CASE("per-row kernels make no heap allocation", "[kernels][nomalloc]", float, double,
                   Eigen::bfloat16, Eigen::half) {
  using T = TestType;
  using R = kernels::result_scalar_t<T>;  // per-row values: float for the half formats
  const idx n = 6;
  const idx v = 2500;
  auto z = test::random_logits<T>(n, v, 10.0, 1, 0.1);
  const auto q = test::random_logits<T>(n, v, 10.0, 2, 0.0);
  const auto t = test::random_targets<T>(n, v, 3);
  std::vector<R> lp(n), lse(n), h(n), kl(n), klr(n), lseq(n), g(n, R(1));
  row_matrix_t<T> d(n, v), dq(n, v), out(n, v);
  std::vector<std::uint8_t> mask{1, 1, 0, 1, 1, 1};
  for (const auto acc : {kernels::accumulation::input, kernels::accumulation::double_precision}) {
    kernels::options opt;
    opt.accumulate = acc;
    opt.mask = mask;
    CHECK(allocations_in([&] { kernels::row_logsumexp(z, kernels::span_of(lse), opt); }) == 0);
    CHECK(allocations_in([&] { kernels::log_softmax(z, out, opt); }) == 0);
    CHECK(allocations_in([&] {
            kernels::token_log_probs(z, t, kernels::span_of(lp), opt, kernels::span_of(lse));
          }) == 0);
    CHECK(allocations_in([&] {
            kernels::token_log_probs_backward(z, t, std::span<const R>(lse), std::span<const R>(g),
                                              d, opt);
          }) == 0);
    CHECK(allocations_in(
              [&] { kernels::entropy(z, kernels::span_of(h), opt, kernels::span_of(lse)); }) == 0);
    CHECK(allocations_in([&] {
            kernels::entropy_backward(z, std::span<const R>(lse), std::span<const R>(h),
                                      std::span<const R>(g), d, opt);
          }) == 0);
    CHECK(allocations_in([&] {
            kernels::kl_divergence(z, q, kernels::span_of(kl), kernels::span_of(klr), opt,
                                   kernels::span_of(lse), kernels::span_of(lseq));
          }) == 0);
    CHECK(allocations_in([&] {
            kernels::kl_divergence_backward(z, q, std::span<const R>(lse), std::span<const R>(lseq),
                                            std::span<const R>(kl), std::span<const R>(g), d, dq,
                                            opt);
          }) == 0);
    CHECK(allocations_in([&] {
            kernels::token_stats(z, q, t,
                                 {.log_probs = kernels::span_of(lp),
                                  .logsumexp = kernels::span_of(lse),
                                  .entropy = kernels::span_of(h),
                                  .kl = kernels::span_of(kl),
                                  .logsumexp_q = kernels::span_of(lseq)},
                                 opt);
          }) == 0);
    CHECK(allocations_in([&] {
            kernels::token_stats_backward(
                z, q, t, {.logsumexp = lse, .entropy = h, .kl = kl, .logsumexp_q = lseq},
                {.log_probs = g, .entropy = g, .kl = g}, d, dq, opt);
          }) == 0);
    CHECK(allocations_in([&] { kernels::log_softmax_inplace(z, opt); }) == 0);
  }
  std::vector<R> est(n);
  CHECK(allocations_in([&] {
          kernels::sampled_kl(kernels::kl_estimator::k3, std::span<const R>(lp),
                              std::span<const R>(lp), kernels::span_of(est));
        }) == 0);
  const std::vector<idx> offsets{0, 2, 6};
  std::vector<R> seq(2);
  CHECK(allocations_in([&] {
          kernels::ragged_sum(ragged_view<const R>{offsets, std::span<const R>(lp)},
                              kernels::span_of(seq));
          kernels::ragged_mean_backward<R>(offsets, seq, kernels::span_of(est));
        }) == 0);
}

TEST_CASE("the no-malloc switch is live in this executable (Eigen asserts are on)",
          "[kernels][nomalloc]") {
#if defined(EIGEN_NO_DEBUG)
  FAIL("EIGEN_NO_DEBUG is defined: Eigen's allocation assert would be compiled out");
#endif
  Eigen::internal::set_is_malloc_allowed(false);
  const bool allowed = Eigen::internal::is_malloc_allowed();
  Eigen::internal::set_is_malloc_allowed(true);
  CHECK_FALSE(allowed);
}
