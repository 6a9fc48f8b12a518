// Benchmark of the shipped transformer (a program, not a test): one forward + backward pass over
// a packed batch, and decoding with the key/value cache, beside the time of the model's own
// matrix products alone through Eigen at the same shapes (so the table shows the share of time
// outside matrix products). The same architecture in PyTorch is timed by
// `benchmarks/transformer/bench_torch_transformer.py`; `benchmarks/transformer/run.sh` runs both.
//
// Sizes (defaults, the issue's): d = 256, 4 layers, 4 heads, V = 8192, 16 sequences x 128 tokens
// (one prompt token + 128 response tokens, so 128 positions are read and 128 logits rows come out
// per sequence). Decoding: batch 1 and 16, one prompt token, 128 new tokens, greedy.
//
// Forward + backward is what a training step asks of the model: `logits` (the forward with the
// head) then `accumulate_logits_gradient` on the same batch (which finds the forward's activations
// in the thread's workspace and back-propagates). The GEMM reference runs every product those two
// calls make, with the same shapes, through Eigen.
//
// Usage: prefopt_bench_transformer [threads]   (PREFOPT_BENCH_TINY=1: tiny sizes, for CI).
// With OpenMP compiled in (the `openmp` preset), `threads` sets the thread count of both.
#include <Eigen/Core>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <tuple>
#include <vector>

#include "prefopt/models/transformer/transformer.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace {

using idx = prefopt::index_t;
using prefopt::row_matrix_f;
using prefopt::token_id;
using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

/// Best of `reps` timings of `f`.
template <class F>
double best_of(int reps, F&& f) {
  double best = 1e300;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = clock_type::now();
    f();
    best = std::min(best, seconds_since(t0));
  }
  return best;
}

/// Every matrix product (m x k times k x n) of one forward + backward pass.
std::vector<std::tuple<idx, idx, idx>> model_products(const prefopt::transformer_config& c,
                                                      idx sequences, idx length) {
  const idx n = sequences * length;
  const idx d = c.d_model, f = c.mlp_width(), v = c.vocab_size, dh = c.head_dim();
  std::vector<std::tuple<idx, idx, idx>> out;
  auto forward_layer = [&]() {
    out.emplace_back(n, d, 3 * d);
    for (idx s = 0; s < sequences * c.num_heads; ++s) {
      out.emplace_back(length, dh, length);  // Q K^T
      out.emplace_back(length, length, dh);  // P V
    }
    out.emplace_back(n, d, d);
    out.emplace_back(n, d, f);
    out.emplace_back(n, f, d);
  };
  // logits(): forward + head
  for (idx l = 0; l < c.num_layers; ++l) forward_layer();
  out.emplace_back(n, d, v);
  // accumulate_logits_gradient(): the head's backward, every layer's backward (the forward is
  // the one `logits` kept)
  out.emplace_back(n, v, d);  // dh = dz W
  out.emplace_back(d, n, v);  // dW^T = h^T dz
  for (idx l = 0; l < c.num_layers; ++l) {
    for (auto [in, o] : {std::pair{f, d}, std::pair{d, f}, std::pair{d, d}, std::pair{d, 3 * d}}) {
      out.emplace_back(in, n, o);  // dW = x^T dy
      out.emplace_back(n, o, in);  // dx = dy W^T
    }
    for (idx s = 0; s < sequences * c.num_heads; ++s) {
      out.emplace_back(length, length, dh);  // dV = P^T dO
      out.emplace_back(length, dh, length);  // dP = dO V^T
      out.emplace_back(length, length, dh);  // dQ = dS K
      out.emplace_back(length, length, dh);  // dK = dS^T Q
    }
  }
  return out;
}

double eigen_products_seconds(const std::vector<std::tuple<idx, idx, idx>>& shapes, int reps) {
  // One set of operands per distinct shape, allocated before timing.
  std::vector<row_matrix_f> a, b, c;
  for (auto [m, k, n] : shapes) {
    a.push_back(row_matrix_f::Random(m, k));
    b.push_back(row_matrix_f::Random(k, n));
    c.push_back(row_matrix_f(m, n));
  }
  return best_of(reps, [&]() {
    for (std::size_t i = 0; i < shapes.size(); ++i) c[i].noalias() = a[i] * b[i];
  });
}

}  // namespace

int main(int argc, char** argv) {
  const bool tiny = std::getenv("PREFOPT_BENCH_TINY") != nullptr;
  int threads = argc > 1 ? std::atoi(argv[1]) : 1;
#if defined(_OPENMP)
  omp_set_num_threads(threads);
  Eigen::setNbThreads(threads);
#else
  threads = 1;
#endif
  prefopt::transformer_config c;
  c.vocab_size = tiny ? 64 : 8192;
  c.d_model = tiny ? 32 : 256;
  c.num_layers = tiny ? 2 : 4;
  c.num_heads = 4;
  c.max_length = tiny ? 24 : 160;
  c.eos = 0;
  c.seed = 1;
  const idx sequences = tiny ? 2 : 16;
  const idx length = tiny ? 16 : 128;
  const idx new_tokens = tiny ? 8 : 128;
  const int reps = tiny ? 1 : 3;
  const prefopt::transformer<float> model(c);

  // Three batches of the same shape (one prompt token, `length` response tokens per sequence):
  // timed passes rotate through them, so that no pass finds its activations among the two the
  // model remembers (a cold forward) while the buffers stay allocated (as in a training loop).
  std::vector<idx> po{0}, ro{0};
  std::vector<token_id> pt, rt[3];
  for (idx s = 0; s < sequences; ++s) {
    pt.push_back(static_cast<token_id>(1 + s));
    for (idx t = 0; t < length; ++t) {
      for (int b = 0; b < 3; ++b) {
        rt[b].push_back(static_cast<token_id>((7 * t + 13 * s + 1 + b) % c.vocab_size));
      }
    }
    po.push_back(static_cast<idx>(pt.size()));
    ro.push_back(static_cast<idx>(rt[0].size()));
  }
  const prefopt::sequence_batch batches[3] = {
      {{po, pt}, {ro, rt[0]}}, {{po, pt}, {ro, rt[1]}}, {{po, pt}, {ro, rt[2]}}};
  const prefopt::sequence_batch& batch = batches[0];
  int turn = 0;
  const idx n = batch.responses.total_length();
  row_matrix_f z(n, c.vocab_size);
  const row_matrix_f dz = row_matrix_f::Random(n, c.vocab_size) * 1e-3f;
  prefopt::vector_f g = prefopt::vector_f::Zero(model.num_parameters());

  const double t_fwd = best_of(reps, [&]() { model.logits(batches[++turn % 3], z); });
  const double t_pass = best_of(reps, [&]() {
    const prefopt::sequence_batch& b = batches[++turn % 3];
    model.logits(b, z);
    model.accumulate_logits_gradient(b, dz, g);
  });
  const double t_bwd = t_pass - t_fwd;
  const auto shapes = model_products(c, sequences, length);
  double flops = 0;
  for (auto [m, k, nn] : shapes) flops += 2.0 * static_cast<double>(m * k * nn);
  const double t_gemm = eigen_products_seconds(shapes, reps);

  auto decode = [&](idx batch_size) {
    std::vector<idx> dpo{0};
    std::vector<token_id> dpt;
    for (idx s = 0; s < batch_size; ++s) {
      dpt.push_back(static_cast<token_id>(1 + s));
      dpo.push_back(static_cast<idx>(dpt.size()));
    }
    std::vector<idx> live(static_cast<std::size_t>(batch_size));
    for (idx s = 0; s < batch_size; ++s) live[static_cast<std::size_t>(s)] = s;
    row_matrix_f out(batch_size, c.vocab_size);
    std::vector<token_id> next(static_cast<std::size_t>(batch_size));
    return best_of(reps, [&]() {
      auto st = model.start_decoding({dpo, dpt});
      for (idx t = 0; t < new_tokens; ++t) {
        model.next_logits(st, live, out);
        for (idx s = 0; s < batch_size; ++s) {
          idx best = 0;
          out.row(s).maxCoeff(&best);
          next[static_cast<std::size_t>(s)] = static_cast<token_id>(best);
        }
        model.append(st, live, next);
      }
    });
  };
  const double t_dec1 = decode(1);
  const double t_dec16 = decode(tiny ? 2 : 16);

  const double tokens = static_cast<double>(n);
  std::printf(
      "{\"threads\": %d, \"d_model\": %ld, \"layers\": %ld, \"heads\": %ld, \"vocab\": %ld,"
      " \"sequences\": %ld, \"length\": %ld,\n",
      threads, static_cast<long>(c.d_model), static_cast<long>(c.num_layers),
      static_cast<long>(c.num_heads), static_cast<long>(c.vocab_size), static_cast<long>(sequences),
      static_cast<long>(length));
  std::printf(
      " \"forward_s\": %.4f, \"backward_s\": %.4f, \"forward_backward_tokens_per_s\": %.0f,\n",
      t_fwd, t_bwd, tokens / (t_fwd + t_bwd));
  std::printf(" \"eigen_gemm_s\": %.4f, \"gemm_gflops\": %.1f, \"ratio_to_gemm\": %.2f,\n", t_gemm,
              flops / t_gemm / 1e9, (t_fwd + t_bwd) / t_gemm);
  std::printf(" \"model_gflops\": %.1f,\n", flops / (t_fwd + t_bwd) / 1e9);
  std::printf(" \"decode_batch1_tokens_per_s\": %.0f, \"decode_batch16_tokens_per_s\": %.0f}\n",
              static_cast<double>(new_tokens) / t_dec1,
              static_cast<double>(new_tokens * (tiny ? 2 : 16)) / t_dec16);
  return 0;
}
