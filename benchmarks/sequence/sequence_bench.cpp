// Benchmarks of the library's work around a user's SequenceModel (a program, not a test):
//
// 1. Generation: 64 prompts, `new_tokens` tokens each, with a model whose forward is cheap (a
//    bigram logits table). Reports tokens/s and the library's overhead per generated token, i.e.
//    the total time minus the time spent inside the model's own next_logits / append calls,
//    measured in the same run.
// 2. Derived log-probs + backward for T positions, vocabulary V, hidden size D: the fused path of
//    a LinearHeadSequenceModel (never builds [T, V]) against materialising the logits and running
//    the per-row kernels (the logits path with one chunk of T positions). Reports time and peak
//    resident memory (getrusage; the fused path runs first so each peak is its own).
//
// Usage: prefopt_bench_sequence [T V D]   (defaults 16384 32000 256; PREFOPT_BENCH_TINY=1: tiny)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <sys/resource.h>
#include <vector>

#include "prefopt/prefopt.hpp"

namespace {

using prefopt::index_t;
using prefopt::token_id;
using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;
}

/// Bigram logits table, float; counts the time spent in its own decoding calls.
class table_lm {
 public:
  using scalar_type = float;
  struct decode_state {
    std::vector<index_t> last;
  };
  table_lm(index_t v, std::uint64_t seed) : v_(v), theta_((v + 1) * v) {
    prefopt::rng gen(seed);
    for (index_t k = 0; k < theta_.size(); ++k) theta_(k) = static_cast<float>(gen.normal());
  }
  [[nodiscard]] index_t vocab_size() const { return v_; }
  [[nodiscard]] token_id eos() const { return static_cast<token_id>(v_ - 1); }
  [[nodiscard]] index_t num_parameters() const { return theta_.size(); }
  Eigen::Ref<prefopt::vector_f> parameters() { return theta_; }
  [[nodiscard]] Eigen::Ref<const prefopt::vector_f> parameters() const { return theta_; }
  void logits(const prefopt::sequence_batch&, Eigen::Ref<prefopt::row_matrix_f>) const {}
  void accumulate_logits_gradient(const prefopt::sequence_batch&,
                                  Eigen::Ref<const prefopt::row_matrix_f>,
                                  Eigen::Ref<prefopt::vector_f>) const {}
  [[nodiscard]] decode_state start_decoding(prefopt::ragged_view<const token_id> prompts) const {
    decode_state s;
    for (index_t i = 0; i < prompts.num_sequences(); ++i)
      s.last.push_back(prompts.sequence(i).back());
    return s;
  }
  void next_logits(decode_state& s, std::span<const index_t> live,
                   Eigen::Ref<prefopt::row_matrix_f> out) const {
    const auto t0 = clock_type::now();
    for (std::size_t r = 0; r < live.size(); ++r) {
      out.row(static_cast<index_t>(r)) =
          theta_.segment(s.last[static_cast<std::size_t>(live[r])] * v_, v_).transpose();
    }
    model_seconds += seconds_since(t0);
  }
  void append(decode_state& s, std::span<const index_t> live,
              std::span<const token_id> tokens) const {
    const auto t0 = clock_type::now();
    for (std::size_t r = 0; r < live.size(); ++r)
      s.last[static_cast<std::size_t>(live[r])] = tokens[r];
    model_seconds += seconds_since(t0);
  }
  mutable double model_seconds = 0.0;

 private:
  index_t v_;
  prefopt::vector_f theta_;
};

/// h = E[prev] (an embedding), z = W h: the cheapest model with a linear head; float.
class embedding_lm {
 public:
  using scalar_type = float;
  struct decode_state {};
  embedding_lm(index_t v, index_t d, std::uint64_t seed)
      : v_(v), d_(d), theta_((v + 1) * d + v * d) {
    prefopt::rng gen(seed);
    for (index_t k = 0; k < theta_.size(); ++k) theta_(k) = static_cast<float>(0.3 * gen.normal());
  }
  [[nodiscard]] index_t vocab_size() const { return v_; }
  [[nodiscard]] token_id eos() const { return 0; }
  [[nodiscard]] index_t num_parameters() const { return theta_.size(); }
  Eigen::Ref<prefopt::vector_f> parameters() { return theta_; }
  [[nodiscard]] Eigen::Ref<const prefopt::vector_f> parameters() const { return theta_; }
  [[nodiscard]] index_t hidden_size() const { return d_; }
  [[nodiscard]] index_t output_weight_offset() const { return (v_ + 1) * d_; }

  void hidden_states(const prefopt::sequence_batch& b,
                     Eigen::Ref<prefopt::row_matrix_f> out) const {
    for_each(b, [&](index_t row, index_t prev) {
      out.row(row) = theta_.segment(prev * d_, d_).transpose();
    });
  }
  void accumulate_hidden_gradient(const prefopt::sequence_batch& b,
                                  Eigen::Ref<const prefopt::row_matrix_f> dh,
                                  Eigen::Ref<prefopt::vector_f> g) const {
    for_each(
        b, [&](index_t row, index_t prev) { g.segment(prev * d_, d_) += dh.row(row).transpose(); });
  }
  void logits(const prefopt::sequence_batch& b, Eigen::Ref<prefopt::row_matrix_f> out) const {
    prefopt::row_matrix_f h(b.responses.total_length(), d_);
    hidden_states(b, h);
    out.noalias() = h * weight().transpose();
  }
  void accumulate_logits_gradient(const prefopt::sequence_batch& b,
                                  Eigen::Ref<const prefopt::row_matrix_f> dz,
                                  Eigen::Ref<prefopt::vector_f> g) const {
    prefopt::row_matrix_f h(b.responses.total_length(), d_);
    hidden_states(b, h);
    Eigen::Map<prefopt::row_matrix_f>(g.data() + output_weight_offset(), v_, d_).noalias() +=
        dz.transpose() * h;
    const prefopt::row_matrix_f dh = dz * weight();
    accumulate_hidden_gradient(b, dh, g);
  }
  [[nodiscard]] decode_state start_decoding(prefopt::ragged_view<const token_id>) const {
    return {};
  }
  void next_logits(decode_state&, std::span<const index_t>,
                   Eigen::Ref<prefopt::row_matrix_f>) const {}
  void append(decode_state&, std::span<const index_t>, std::span<const token_id>) const {}

 private:
  [[nodiscard]] Eigen::Map<const prefopt::row_matrix_f> weight() const {
    return {theta_.data() + output_weight_offset(), v_, d_};
  }
  template <class F>
  void for_each(const prefopt::sequence_batch& b, F&& f) const {
    const index_t base = b.responses.offsets.front();
    for (index_t i = 0; i < b.size(); ++i) {
      index_t prev = b.prompts.sequence(i).back();
      index_t row = b.responses.offsets[static_cast<std::size_t>(i)] - base;
      for (const token_id y : b.responses.sequence(i)) {
        f(row++, prev);
        prev = y;
      }
    }
  }
  index_t v_, d_;
  prefopt::vector_f theta_;
};

static_assert(prefopt::LinearHeadSequenceModel<embedding_lm>);

}  // namespace

int main(int argc, char** argv) {
  using prefopt::index_t;
  const bool tiny = std::getenv("PREFOPT_BENCH_TINY") != nullptr;
  index_t t = tiny ? 256 : 16384, v = tiny ? 1000 : 32000, d = tiny ? 32 : 256;
  if (argc == 4) {
    t = std::stol(argv[1]);
    v = std::stol(argv[2]);
    d = std::stol(argv[3]);
  }

  // 1. Generation throughput and overhead.
  {
    const index_t vocab = tiny ? 256 : 4096, prompts_n = 64, new_tokens = tiny ? 16 : 128;
    const table_lm m(vocab, 1);
    std::vector<index_t> offsets{0};
    std::vector<token_id> prompts;
    for (index_t i = 0; i < prompts_n; ++i) {
      prompts.push_back(static_cast<token_id>(i % (vocab - 1)));
      offsets.push_back(i + 1);
    }
    for (const bool top_p : {false, true}) {
      prefopt::generation_config c;
      c.max_new_tokens = new_tokens;
      c.top_p = top_p ? 0.9 : 1.0;
      m.model_seconds = 0.0;
      const auto t0 = clock_type::now();
      const auto res = prefopt::generate(m, {offsets, prompts}, c, 7);
      const double total = seconds_since(t0);
      const auto tokens = static_cast<double>(res.tokens.size());
      std::printf(
          "generate: 64 prompts, V = %ld, %s: %.0f tokens in %.3f s = %.0f tokens/s; model calls "
          "%.3f s; library overhead %.2f us/token (%.2f ns per vocabulary entry)\n",
          static_cast<long>(vocab), top_p ? "top-p 0.9" : "temperature 1", tokens, total,
          tokens / total, m.model_seconds, 1e6 * (total - m.model_seconds) / tokens,
          1e9 * (total - m.model_seconds) / tokens / static_cast<double>(vocab));
    }
  }

  // 2. Fused linear head against materialised logits: log-probs + backward.
  {
    const embedding_lm m(v, d, 2);
    std::vector<index_t> po{0, 1}, ro{0, t};
    std::vector<token_id> pt{1}, rt(static_cast<std::size_t>(t));
    prefopt::rng gen(3);
    for (auto& y : rt) y = static_cast<token_id>(gen.uniform_index(v));
    const prefopt::sequence_batch b{{po, pt}, {ro, rt}};
    const prefopt::vector_d w = prefopt::vector_d::Constant(t, 1.0 / static_cast<double>(t));
    const std::span<const double> ws(w.data(), static_cast<std::size_t>(t));
    const double base_mb = peak_rss_mb();
    for (const bool fused : {true, false}) {
      prefopt::sequence_options opt;
      opt.fused = fused;
      opt.max_positions = t;  // one chunk: the materialised path holds [T, V] (and its gradient)
      prefopt::vector_d lp(t);
      prefopt::vector_f g = prefopt::vector_f::Zero(m.num_parameters());
      const auto t0 = clock_type::now();
      prefopt::token_log_probs(m, b, lp, opt);
      const double forward = seconds_since(t0);
      const auto t1 = clock_type::now();
      prefopt::accumulate_token_gradient(m, b, {ws}, g, opt);
      const double backward = seconds_since(t1);
      std::printf(
          "%s: T = %ld, V = %ld, D = %ld: log-probs %.3f s, log-probs + backward %.3f s, peak RSS "
          "%.0f MB (%.0f MB above the model and batch); mean log-prob %.4f\n",
          fused ? "fused linear head " : "materialised logits", static_cast<long>(t),
          static_cast<long>(v), static_cast<long>(d), forward, backward, peak_rss_mb(),
          peak_rss_mb() - base_mb, lp.mean());
    }
  }
  return 0;
}
