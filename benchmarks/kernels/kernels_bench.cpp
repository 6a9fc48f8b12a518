// Timing benchmarks of the logits kernels against (a) a naive Eigen baseline that materializes the
// log-softmax and then gathers, and (b) plain streaming passes over the same bytes (the memory
// bandwidth roofline: a vectorized sum for reads, a scaled copy for read + write).
//
// Shapes N x V (float): 4096 x 32000, 1024 x 128256, 16384 x 4096, 256 x 50257, and 2 x 32000
// (L2-resident: the compute ceiling, no memory traffic); fused linear
// N = 1024, D in {1024, 2048}, V = 32000 against the bare GEMM that writes [N, V].
// bytes_per_second counts the logits bytes each benchmark must move (reads, plus writes for
// gradients); the fused linear kernels report items (tokens) and their workspace as a fraction of
// [N, V] ("extra_mem_frac").
//
// Half formats: "<kernel>.bf16/<shape>" and "<kernel>.fp16/<shape>" run the same kernels on
// Eigen::bfloat16 / Eigen::half copies of the logits (gradients written in the same format) at
// 4096 x 32000, 1024 x 128256 and the L2-resident 2 x 32000; their bytes_per_second counts the
// 2-byte elements actually moved, and every kernel reports "elements_per_second" (logits of one
// [N, V] matrix per second), so the float and half rows compare directly.
//
// PREFOPT_BENCH_TINY=1 picks tiny shapes so CI can run every benchmark once in seconds:
//   PREFOPT_BENCH_TINY=1 ./prefopt_bench_kernels --benchmark_min_time=0.01
// Threads: build with -DPREFOPT_OPENMP=ON and set OMP_NUM_THREADS (1 or 2).

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "prefopt/core/random.hpp"
#include "prefopt/core/types.hpp"
#include "prefopt/kernels/dispatch.hpp"
#include "prefopt/kernels/entropy.hpp"
#include "prefopt/kernels/kl.hpp"
#include "prefopt/kernels/linear_log_probs.hpp"
#include "prefopt/kernels/logsumexp.hpp"
#include "prefopt/kernels/token_log_probs.hpp"
#include "prefopt/kernels/token_stats.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define PREFOPT_BENCH_STICK 1
#endif

namespace {

using prefopt::index_t;
using prefopt::row_matrix_f;
namespace kernels = prefopt::kernels;

bool tiny() {
  const char* e = std::getenv("PREFOPT_BENCH_TINY");
  return e != nullptr && std::string(e) == "1";
}

struct shape {
  index_t n;
  index_t v;
};

std::vector<shape> shapes() {
  if (tiny()) return {{64, 1000}, {16, 5003}};
  // 2 x 32000 (256 KB per matrix) stays in L2: the kernels' arithmetic alone, their compute
  // ceiling on this core, to set beside the out-of-cache read roofline.
  return {{4096, 32000}, {1024, 128256}, {16384, 4096}, {256, 50257}, {2, 32000}, {2048, 32000}};
}

/// Inputs of one shape, built once and reused by every benchmark of that shape.
struct data {
  index_t n = 0;
  index_t v = 0;
  row_matrix_f z, q, d;
  std::vector<prefopt::token_id> t;
  std::vector<float> lp, lse, h, kl, lseq, g;
};

data& get(index_t n, index_t v) {
  static std::unique_ptr<data> current;
  if (!current || current->n != n || current->v != v) {
    current.reset();  // free the previous shape first
    auto x = std::make_unique<data>();
    x->n = n;
    x->v = v;
    prefopt::rng g(1, 0);
    x->z.resize(n, v);
    x->q.resize(n, v);
    x->d.resize(n, v);
    for (index_t i = 0; i < n; ++i) {
      for (index_t j = 0; j < v; ++j) {
        x->z(i, j) = static_cast<float>(4 * g.normal());
        x->q(i, j) = x->z(i, j) + static_cast<float>(0.1 * g.normal());
      }
    }
    x->d.setZero();
    x->t.resize(static_cast<std::size_t>(n));
    for (auto& t : x->t) t = static_cast<prefopt::token_id>(g.uniform_index(v));
    for (auto* vec : {&x->lp, &x->lse, &x->h, &x->kl, &x->lseq, &x->g}) {
      vec->assign(static_cast<std::size_t>(n), 1.0f);
    }
    current = std::move(x);
  }
  return *current;
}

/// The logits, q logits and gradient buffer of one shape in scalar type S: the float matrices of
/// `data` themselves, or half-format copies of them made once per shape.
template <class S>
struct mats {
  const prefopt::row_matrix_t<S>& z;
  const prefopt::row_matrix_t<S>& q;
  prefopt::row_matrix_t<S>& d;
};

template <class S>
mats<S> mats_of(data& x) {
  if constexpr (std::is_same_v<S, float>) {
    return {x.z, x.q, x.d};
  } else {
    struct copy {
      index_t n = -1, v = -1;
      prefopt::row_matrix_t<S> z, q, d;
    };
    static copy c;
    if (c.n != x.n || c.v != x.v) {
      c.z = x.z.template cast<S>();
      c.q = x.q.template cast<S>();
      c.d = x.d.template cast<S>();
      c.n = x.n;
      c.v = x.v;
    }
    return {c.z, c.q, c.d};
  }
}

/// Options every kernel benchmark passes (the exp accuracy is set per registered variant).
kernels::options bench_opt;

void set_bytes(benchmark::State& state, const data& x, int passes,
               std::size_t element_bytes = sizeof(float)) {
  // Which row-math path ran (kernels/dispatch.hpp), and the exp accuracy.
  state.SetLabel(std::string(kernels::isa_name(kernels::active_isa())) +
                 (bench_opt.exp == kernels::exp_accuracy::fast ? "+fast" : ""));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * passes * x.n * x.v *
                          static_cast<std::int64_t>(element_bytes));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * x.n);
  state.counters["elements_per_second"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * static_cast<double>(x.n) * static_cast<double>(x.v),
      benchmark::Counter::kIsRate);
  state.counters["N"] = static_cast<double>(x.n);
  state.counters["V"] = static_cast<double>(x.v);
#if defined(_OPENMP)
  state.counters["omp_threads"] = omp_get_max_threads();
#else
  state.counters["omp_threads"] = 1;
#endif
}

// ---- rooflines ----------------------------------------------------------------------------------
void roofline_read(benchmark::State& state, index_t n, index_t v) {
  auto& x = get(n, v);
  for (auto _ : state) {
    float s = 0;
#if defined(_OPENMP)
#pragma omp parallel for reduction(+ : s) schedule(static)
#endif
    for (index_t i = 0; i < n; ++i) s += x.z.row(i).sum();
    benchmark::DoNotOptimize(s);
  }
  set_bytes(state, x, 1);
  state.SetLabel("eigen");
}

void roofline_read2(benchmark::State& state, index_t n, index_t v) {
  auto& x = get(n, v);
  for (auto _ : state) {
    float s = 0;
#if defined(_OPENMP)
#pragma omp parallel for reduction(+ : s) schedule(static)
#endif
    for (index_t i = 0; i < n; ++i) s += x.z.row(i).sum() + x.q.row(i).sum();
    benchmark::DoNotOptimize(s);
  }
  set_bytes(state, x, 2);
  state.SetLabel("eigen");
}

void roofline_read_write(benchmark::State& state, index_t n, index_t v) {
  auto& x = get(n, v);
  for (auto _ : state) {
#if defined(_OPENMP)
#pragma omp parallel for schedule(static)
#endif
    for (index_t i = 0; i < n; ++i) x.d.row(i) = x.z.row(i) * 0.5f;
    benchmark::ClobberMemory();
  }
  set_bytes(state, x, 2);
  state.SetLabel("eigen");
}

// ---- naive baseline: materialize log-softmax with Eigen, then gather ----------------------------
void naive_token_log_probs(benchmark::State& state, index_t n, index_t v) {
  auto& x = get(n, v);
  Eigen::VectorXf lse(n);
  for (auto _ : state) {
    const Eigen::VectorXf m = x.z.rowwise().maxCoeff();
    lse = m.array() + (x.z.colwise() - m).array().exp().rowwise().sum().log();
    x.d = x.z.colwise() - lse;  // the [N, V] log-softmax
    for (index_t i = 0; i < n; ++i)
      x.lp[static_cast<std::size_t>(i)] = x.d(i, x.t[static_cast<std::size_t>(i)]);
    benchmark::DoNotOptimize(x.lp.data());
  }
  set_bytes(state, x, 1);
  state.SetLabel("eigen");
}

// ---- prefopt kernels ---------------------------------------------------------------------------
template <class S = float>
void token_log_probs(benchmark::State& state, index_t n, index_t v) {
  auto& x = get(n, v);
  const auto m = mats_of<S>(x);
  for (auto _ : state) {
    kernels::token_log_probs(m.z, x.t, kernels::span_of(x.lp), bench_opt, kernels::span_of(x.lse));
    benchmark::DoNotOptimize(x.lp.data());
  }
  set_bytes(state, x, 1, sizeof(S));
}

template <class S = float>
void token_log_probs_backward(benchmark::State& state, index_t n, index_t v) {
  auto& x = get(n, v);
  const auto m = mats_of<S>(x);
  kernels::token_log_probs(m.z, x.t, kernels::span_of(x.lp), {}, kernels::span_of(x.lse));
  for (auto _ : state) {
    kernels::token_log_probs_backward(m.z, x.t, std::span<const float>(x.lse),
                                      std::span<const float>(x.g), m.d, bench_opt);
    benchmark::ClobberMemory();
  }
  set_bytes(state, x, 2, sizeof(S));
}

template <class S = float>
void entropy(benchmark::State& state, index_t n, index_t v) {
  auto& x = get(n, v);
  const auto m = mats_of<S>(x);
  for (auto _ : state) {
    kernels::entropy(m.z, kernels::span_of(x.h), bench_opt);
    benchmark::DoNotOptimize(x.h.data());
  }
  set_bytes(state, x, 1, sizeof(S));
}

template <class S = float>
void token_stats(benchmark::State& state, index_t n, index_t v) {
  auto& x = get(n, v);
  const auto m = mats_of<S>(x);
  for (auto _ : state) {
    kernels::token_stats(m.z, x.t,
                         {.log_probs = kernels::span_of(x.lp),
                          .logsumexp = kernels::span_of(x.lse),
                          .entropy = kernels::span_of(x.h)},
                         bench_opt);
    benchmark::DoNotOptimize(x.lp.data());
  }
  set_bytes(state, x, 1, sizeof(S));
}

template <class S = float>
void kl_divergence(benchmark::State& state, index_t n, index_t v) {
  auto& x = get(n, v);
  const auto m = mats_of<S>(x);
  for (auto _ : state) {
    kernels::kl_divergence(m.z, m.q, kernels::span_of(x.kl), {}, bench_opt, kernels::span_of(x.lse),
                           kernels::span_of(x.lseq));
    benchmark::DoNotOptimize(x.kl.data());
  }
  set_bytes(state, x, 2, sizeof(S));
}

template <class S = float>
void kl_divergence_backward(benchmark::State& state, index_t n, index_t v) {
  auto& x = get(n, v);
  const auto m = mats_of<S>(x);
  kernels::kl_divergence(m.z, m.q, kernels::span_of(x.kl), {}, {}, kernels::span_of(x.lse),
                         kernels::span_of(x.lseq));
  const prefopt::row_matrix_t<S> none;
  for (auto _ : state) {
    kernels::kl_divergence_backward(m.z, m.q, std::span<const float>(x.lse),
                                    std::span<const float>(x.lseq), std::span<const float>(x.kl),
                                    std::span<const float>(x.g), m.d, none);
    benchmark::ClobberMemory();
  }
  set_bytes(state, x, 3, sizeof(S));  // read p and q, write dp (q is a frozen reference)
}

void log_softmax(benchmark::State& state, index_t n, index_t v) {
  auto& x = get(n, v);
  for (auto _ : state) {
    kernels::log_softmax(x.z, x.d);
    benchmark::ClobberMemory();
  }
  set_bytes(state, x, 2);
}

// ---- the measuring stick (../shared/bench/lse_two_pass_avx2.cpp, the same loop) -----------------
// A plain two-pass row log-sum-exp with AVX2 intrinsics: row max, then sum exp(x - max) re-reading
// the row (from L1/L2 for rows up to the L2 size), Cody-Waite reduction, Cephes polynomial
// (degree 5 in p(r) r^2 + r + 1 form; the degree-4 variant in Taylor form), 2^n inserted as
// integer bits, four accumulators. Not library code: the arithmetic ceiling on this core.
#if defined(PREFOPT_BENCH_STICK)
template <bool Deg4>
inline __m256 stick_exp(__m256 x) {
  x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p;
  if constexpr (Deg4) {
    p = _mm256_set1_ps(1.0f / 120);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  } else {
    p = _mm256_set1_ps(1.9875691500E-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507E-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073E-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894E-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459E-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201E-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  }
  const __m256i e =
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

inline float stick_hsum(__m256 v) {
  alignas(32) float t[8];
  _mm256_store_ps(t, v);
  return ((t[0] + t[1]) + (t[2] + t[3])) + ((t[4] + t[5]) + (t[6] + t[7]));
}

template <bool Deg4>
float stick_lse(const float* x, index_t v) {
  __m256 m0 = _mm256_set1_ps(-INFINITY), m1 = m0, m2 = m0, m3 = m0;
  index_t i = 0;
  for (; i + 32 <= v; i += 32) {
    m0 = _mm256_max_ps(m0, _mm256_loadu_ps(x + i));
    m1 = _mm256_max_ps(m1, _mm256_loadu_ps(x + i + 8));
    m2 = _mm256_max_ps(m2, _mm256_loadu_ps(x + i + 16));
    m3 = _mm256_max_ps(m3, _mm256_loadu_ps(x + i + 24));
  }
  alignas(32) float t[8];
  _mm256_store_ps(t, _mm256_max_ps(_mm256_max_ps(m0, m1), _mm256_max_ps(m2, m3)));
  float m = t[0];
  for (int k = 1; k < 8; ++k) m = std::max(m, t[k]);
  for (; i < v; ++i) m = std::max(m, x[i]);
  const __m256 vm = _mm256_set1_ps(m);
  __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  i = 0;
  for (; i + 32 <= v; i += 32) {
    s0 = _mm256_add_ps(s0, stick_exp<Deg4>(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm)));
    s1 = _mm256_add_ps(s1, stick_exp<Deg4>(_mm256_sub_ps(_mm256_loadu_ps(x + i + 8), vm)));
    s2 = _mm256_add_ps(s2, stick_exp<Deg4>(_mm256_sub_ps(_mm256_loadu_ps(x + i + 16), vm)));
    s3 = _mm256_add_ps(s3, stick_exp<Deg4>(_mm256_sub_ps(_mm256_loadu_ps(x + i + 24), vm)));
  }
  float s = stick_hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
  for (; i < v; ++i) s += std::exp(x[i] - m);
  return m + std::log(s);
}

template <bool Deg4>
void stick_lse_two_pass(benchmark::State& state, index_t n, index_t v) {
  auto& x = get(n, v);
  for (auto _ : state) {
#if defined(_OPENMP)
#pragma omp parallel for schedule(static)
#endif
    for (index_t i = 0; i < n; ++i)
      x.lse[static_cast<std::size_t>(i)] = stick_lse<Deg4>(x.z.row(i).data(), v);
    benchmark::DoNotOptimize(x.lse.data());
  }
  set_bytes(state, x, 1);
  state.SetLabel("avx2 stick");
}
#endif

// ---- fused linear ------------------------------------------------------------------------------
struct linear_data {
  row_matrix_f h, w, z;
  std::vector<prefopt::token_id> t;
  std::vector<float> lp, lse;
};

linear_data make_linear(index_t n, index_t d, index_t v, bool with_z) {
  linear_data x;
  prefopt::rng g(2, 0);
  x.h.resize(n, d);
  x.w.resize(v, d);
  for (index_t i = 0; i < x.h.size(); ++i) x.h.data()[i] = static_cast<float>(g.normal());
  for (index_t i = 0; i < x.w.size(); ++i) x.w.data()[i] = static_cast<float>(0.05 * g.normal());
  if (with_z) x.z.resize(n, v);
  x.t.resize(static_cast<std::size_t>(n));
  for (auto& t : x.t) t = static_cast<prefopt::token_id>(g.uniform_index(v));
  x.lp.resize(static_cast<std::size_t>(n));
  x.lse.resize(static_cast<std::size_t>(n));
  return x;
}

void linear_counters(benchmark::State& state, index_t n, index_t d, index_t v) {
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * n);
  state.counters["N"] = static_cast<double>(n);
  state.counters["D"] = static_cast<double>(d);
  state.counters["V"] = static_cast<double>(v);
#if defined(_OPENMP)
  state.counters["omp_threads"] = omp_get_max_threads();
#else
  state.counters["omp_threads"] = 1;
#endif
  state.counters["GFLOPS"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * 2.0 * static_cast<double>(n) *
                             static_cast<double>(d) * static_cast<double>(v) * 1e-9,
                         benchmark::Counter::kIsRate);
}

void bare_gemm(benchmark::State& state, index_t n, index_t d, index_t v) {
  auto x = make_linear(n, d, v, true);
  for (auto _ : state) {
    x.z.noalias() = x.h * x.w.transpose();
    benchmark::ClobberMemory();
  }
  linear_counters(state, n, d, v);
}

void linear_forward(benchmark::State& state, index_t n, index_t d, index_t v) {
  auto x = make_linear(n, d, v, false);
  for (auto _ : state) {
    kernels::linear_log_probs(
        x.h, x.w, {}, x.t,
        {.log_probs = kernels::span_of(x.lp), .logsumexp = kernels::span_of(x.lse)});
    benchmark::DoNotOptimize(x.lp.data());
  }
  linear_counters(state, n, d, v);
  state.counters["extra_mem_frac"] =
      static_cast<double>(kernels::linear_workspace_bytes<float>(n, v, d, {})) /
      (static_cast<double>(n) * static_cast<double>(v) * sizeof(float));
}

void linear_backward(benchmark::State& state, index_t n, index_t d, index_t v) {
  auto x = make_linear(n, d, v, false);
  kernels::linear_log_probs(
      x.h, x.w, {}, x.t,
      {.log_probs = kernels::span_of(x.lp), .logsumexp = kernels::span_of(x.lse)});
  row_matrix_f dh(n, d), dw(v, d);
  const std::vector<float> g(static_cast<std::size_t>(n), 1.0f);
  for (auto _ : state) {
    kernels::linear_log_probs_backward(x.h, x.w, {}, x.t, {.logsumexp = x.lse}, {.log_probs = g},
                                       dh, dw, {});
    benchmark::ClobberMemory();
  }
  linear_counters(state, n, d, v);
}

void register_all() {
  using fn = void (*)(benchmark::State&, index_t, index_t);
  const std::vector<std::pair<const char*, fn>> per_row{
      {"roofline_read", roofline_read},
      {"roofline_read2", roofline_read2},
      {"roofline_read_write", roofline_read_write},
      {"naive_token_log_probs", naive_token_log_probs},
      {"token_log_probs", token_log_probs<>},
      {"token_log_probs_backward", token_log_probs_backward<>},
      {"entropy", entropy<>},
      {"token_stats_lp_lse_entropy", token_stats<>},
      {"kl_divergence", kl_divergence<>},
      {"kl_divergence_backward", kl_divergence_backward<>},
      {"log_softmax", log_softmax},
  };
#if defined(PREFOPT_BENCH_STICK)
  const std::vector<std::pair<const char*, fn>> sticks{
      {"stick_lse_two_pass", stick_lse_two_pass<false>},
      {"stick_lse_two_pass_deg4", stick_lse_two_pass<true>}};
#else
  const std::vector<std::pair<const char*, fn>> sticks;
#endif
  // The forward kernels once more on every other supported path and with the fast exp:
  // "<kernel>@<path>[+fast]" (the plain names run the automatically chosen path).
  const std::vector<std::pair<const char*, fn>> variants{
      {"token_log_probs", token_log_probs<>},
      {"entropy", entropy<>},
      {"token_stats_lp_lse_entropy", token_stats<>},
      {"kl_divergence", kl_divergence<>},
      {"token_log_probs_backward", token_log_probs_backward}};
  // The forward kernels and two backwards on half-format logits: "<kernel>.bf16", "<kernel>.fp16".
  const std::vector<std::pair<const char*, fn>> halves{
      {"token_log_probs.bf16", token_log_probs<Eigen::bfloat16>},
      {"entropy.bf16", entropy<Eigen::bfloat16>},
      {"token_stats_lp_lse_entropy.bf16", token_stats<Eigen::bfloat16>},
      {"kl_divergence.bf16", kl_divergence<Eigen::bfloat16>},
      {"token_log_probs_backward.bf16", token_log_probs_backward<Eigen::bfloat16>},
      {"kl_divergence_backward.bf16", kl_divergence_backward<Eigen::bfloat16>},
      {"token_log_probs.fp16", token_log_probs<Eigen::half>},
      {"entropy.fp16", entropy<Eigen::half>},
      {"token_stats_lp_lse_entropy.fp16", token_stats<Eigen::half>},
      {"kl_divergence.fp16", kl_divergence<Eigen::half>},
      {"token_log_probs_backward.fp16", token_log_probs_backward<Eigen::half>},
      {"kl_divergence_backward.fp16", kl_divergence_backward<Eigen::half>}};
  const auto chosen = kernels::active_isa();
  for (const auto s : shapes()) {
    // Appended piece by piece: GCC 12 at -O3 reports `"/" + std::string` as a memcpy overlap.
    std::string shape = "/";
    shape += std::to_string(s.n);
    shape += 'x';
    shape += std::to_string(s.v);
    const bool half_shape = tiny() || (s.n == 4096 && s.v == 32000) ||
                            (s.n == 1024 && s.v == 128256) || (s.n == 2 && s.v == 32000);
    const std::vector<std::pair<const char*, fn>> none;
    for (const auto* list : {&per_row, &sticks, half_shape ? &halves : &none}) {
      for (const auto& [name, f] : *list) {
        benchmark::RegisterBenchmark((std::string(name) + shape).c_str(),
                                     [f = f, s](benchmark::State& st) { f(st, s.n, s.v); })
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime();
      }
    }
    for (const auto path : {kernels::isa::baseline, kernels::isa::avx2, kernels::isa::avx512}) {
      if (!kernels::isa_supported(path)) continue;
      for (const bool fast : {false, true}) {
        if (path == chosen && !fast) continue;  // the plain names
        for (const auto& [name, f] : variants) {
          const std::string full =
              std::string(name) + "@" + kernels::isa_name(path) + (fast ? "+fast" : "") + shape;
          benchmark::RegisterBenchmark(full.c_str(),
                                       [f = f, s, path, fast](benchmark::State& st) {
                                         kernels::force_isa(path);
                                         bench_opt.exp = fast ? kernels::exp_accuracy::fast
                                                              : kernels::exp_accuracy::standard;
                                         f(st, s.n, s.v);
                                         bench_opt.exp = kernels::exp_accuracy::standard;
                                         kernels::reset_isa();
                                       })
              ->Unit(benchmark::kMillisecond)
              ->UseRealTime();
        }
      }
    }
  }
  using lfn = void (*)(benchmark::State&, index_t, index_t, index_t);
  const std::vector<std::pair<const char*, lfn>> linear{
      {"bare_gemm", bare_gemm},
      {"linear_log_probs", linear_forward},
      {"linear_log_probs_backward", linear_backward}};
  const index_t n = tiny() ? 32 : 1024;
  const index_t v = tiny() ? 3000 : 32000;
  for (const index_t d : tiny() ? std::vector<index_t>{64} : std::vector<index_t>{1024, 2048}) {
    for (const auto& [name, f] : linear) {
      const std::string full = std::string(name) + "/N" + std::to_string(n) + "_D" +
                               std::to_string(d) + "_V" + std::to_string(v);
      benchmark::RegisterBenchmark(full.c_str(),
                                   [f = f, n, d, v](benchmark::State& st) { f(st, n, d, v); })
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
