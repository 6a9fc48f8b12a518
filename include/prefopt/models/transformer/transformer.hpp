#pragma once
/// \file
/// prefopt's shipped decoder-only transformer, in three roles on one backbone:
///
/// - `transformer<T>`: a language model; models `LinearHeadSequenceModel` (teacher-forced logits
///   and their backward, hidden states for the fused log-prob kernel, incremental decoding with a
///   key/value cache), so every derived quantity, generation and every sequence solver takes it.
/// - `transformer_reward_model<T>`: a scalar head on the last token, `r(x, y) = w . h_last + b`
///   (a `RewardModel` over `sequence_batch` with `accumulate_reward_gradient`, for Bradley-Terry
///   reward modelling).
/// - `transformer_critic<T>`: a per-token value head, `V(x, y_<t) = w . h_t + b` (a PPO critic:
///   `values`, `accumulate_value_gradient`).
///
/// Architecture (GPT-2, pre-norm; `transformer_config`): `h_0 = E[x_t] + P[t]`; per block
/// `h += Attn(LN_1(h))`, `h += W_2 GELU(W_1 LN_2(h) + b_1) + b_2`; a final `LN_f`; the head.
/// Attention is causal and multi-head, `softmax(Q K^T / sqrt(d_h)) V`; GELU is the tanh form;
/// layer norms use eps = 1e-5. Parameters are one flat vector (`parameters()`): embeddings,
/// positions, each block, the final norm, then the head (for the language model the output
/// matrix `W` `[V, D]` at `output_weight_offset()` and its bias at `output_bias_offset()`).
///
/// Batches are packed without padding: each sequence attends only to itself, causally, at
/// positions 0, 1, ... of its own. The backward is hand-written (checked against finite
/// differences for every parameter block in the tests).
///
/// Guarantees (see `detail/math.hpp` for why they hold):
/// - a sequence's outputs do not depend on the other sequences of the batch, bitwise;
/// - decoding with the cache (`next_logits`) gives bitwise the teacher-forced `logits`;
/// - with OpenMP, results are bitwise the same for any number of threads (the batch's rows,
///   sequences and heads are split across threads; every reduction has one fixed order).
///
/// An empty prompt reads as the eos token (GPT-2's convention; the first response token needs a
/// context), in teacher forcing and decoding alike. Not supported: sequences longer than
/// `config.max_length` (named errors), dropout.

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "prefopt/core/assert.hpp"
#include "prefopt/core/concepts.hpp"
#include "prefopt/core/error.hpp"
#include "prefopt/core/random.hpp"
#include "prefopt/core/types.hpp"
#include "prefopt/models/transformer/config.hpp"
#include "prefopt/models/transformer/detail/backbone.hpp"
#include "prefopt/models/transformer/detail/math.hpp"

namespace prefopt {

namespace detail {

/// What the three roles share: the configuration, the layout, the flat parameters (backbone
/// followed by a head of `head_size` values) and the packing of batches.
template <class T>
class transformer_core {
 public:
  transformer_core(const transformer_config& c, index_t head_size, const char* fn)
      : config_(validated(c, fn)), layout_(c), theta_(layout_.backbone_size + head_size) {
    rng gen(c.seed, /*stream=*/0x7f0);
    init_backbone(c, layout_, gen, theta_.data());
    theta_.tail(head_size).setZero();
  }

  [[nodiscard]] const transformer_config& config() const noexcept { return config_; }
  [[nodiscard]] const transformer_layout& layout() const noexcept { return layout_; }
  [[nodiscard]] vector_t<T>& theta() noexcept { return theta_; }
  [[nodiscard]] const vector_t<T>& theta() const noexcept { return theta_; }
  [[nodiscard]] index_t head_offset() const noexcept { return layout_.backbone_size; }

  /// Packs `b` for teacher forcing: sequence `i` reads `x_i` followed by `y_i` (`full`) or by
  /// `y_i` without its last token (language model, critic: the output at position `|x_i| - 1 +
  /// t` predicts `y_i[t]`); sequences with an empty response are skipped unless `full`.
  /// `first[i]` gets the packed row of `x_i`'s last token (-1 when skipped).
  [[nodiscard]] packed_rows pack(const char* fn, const sequence_batch& b, bool full,
                                 std::vector<index_t>& first) const {
    b.prompts.validate(fn, "batch.prompts");
    b.responses.validate(fn, "batch.responses");
    PREFOPT_CHECK(b.prompts.num_sequences() == b.responses.num_sequences(), shape_error, fn,
                  ": batch has ", b.prompts.num_sequences(), " prompts and ",
                  b.responses.num_sequences(), " responses, expected one prompt per response");
    PREFOPT_CHECK(b.size() >= 1, invalid_argument, fn,
                  ": batch is empty, expected at least one sequence");
    packed_rows rows;
    first.assign(static_cast<std::size_t>(b.size()), -1);
    for (index_t i = 0; i < b.size(); ++i) {
      const auto x = b.prompts.sequence(i);
      const auto y = b.responses.sequence(i);
      check_tokens(fn, "batch.prompts", i, x);
      check_tokens(fn, "batch.responses", i, y);
      if (y.empty() && !full) continue;
      const auto read = full ? y : y.first(y.size() - 1);
      // An empty prompt reads as the eos token (GPT-2's convention: it also starts a document).
      const std::span<const token_id> prompt =
          x.empty() ? std::span<const token_id>(&config_.eos, 1) : x;
      const index_t length = static_cast<index_t>(prompt.size() + read.size());
      PREFOPT_CHECK(length <= config_.max_length, invalid_argument, fn, ": batch sequence ", i,
                    " reads ", length, " tokens (prompt ", x.size(), ", response ", y.size(),
                    "), expected at most config.max_length = ", config_.max_length,
                    " (the position table)");
      first[static_cast<std::size_t>(i)] = rows.rows() + static_cast<index_t>(prompt.size()) - 1;
      rows.add(prompt, read, 0, rows.sequences());
    }
    return rows;
  }

  /// The forward pass over packed rows that all start at position 0 (teacher forcing), into the
  /// calling thread's workspace (whose activations it returns), keeping every layer's
  /// activations. When the workspace already holds the pass of the same parameters and batch
  /// (`batch`, `full`), it is returned as is.
  const backbone_activations<T>& forward(const packed_rows& rows, const sequence_batch& batch,
                                         bool full) const {
    transformer_workspace<T>& w = thread_workspace<T>();
    const std::uint64_t key = fingerprint(batch, full);
    for (auto& p : w.passes) {
      if (p.valid && p.key == key) {
        p.used = ++w.clock;
        return p.act;
      }
    }
    auto& p = w.passes[0].used <= w.passes[1].used ? w.passes[0] : w.passes[1];
    p.valid = false;
    run_forward(rows, w, p.act);
    p.valid = true;
    p.key = key;
    p.used = ++w.clock;
    return p.act;
  }

  /// Hash of the configuration, every parameter and every token of `batch` (with `full`).
  [[nodiscard]] std::uint64_t fingerprint(const sequence_batch& b, bool full) const {
    const index_t sizes[] = {config_.vocab_size, config_.max_length, config_.d_model,
                             config_.num_layers, config_.num_heads,  config_.mlp_width(),
                             theta_.size(),      full ? 1 : 0};
    std::uint64_t h = hash_bytes(sizes, sizeof(sizes), 0x7f2);
    h = hash_bytes(theta_.data(), static_cast<std::size_t>(theta_.size()) * sizeof(T), h);
    for (const auto* r : {&b.prompts, &b.responses}) {
      const index_t n = r->num_sequences();
      h = hash_bytes(&n, sizeof(n), h);
      for (index_t i = 0; i < n; ++i) {
        const auto seq = r->sequence(i);
        const index_t len = static_cast<index_t>(seq.size());
        h = hash_bytes(&len, sizeof(len), h);
        h = hash_bytes(seq.data(), seq.size() * sizeof(token_id), h);
      }
    }
    return h;
  }

 private:
  void run_forward(const packed_rows& rows, transformer_workspace<T>& w,
                   backbone_activations<T>& act) const {
    index_t longest = 0;
    for (index_t s = 0; s < rows.sequences(); ++s) {
      const auto u = static_cast<std::size_t>(s);
      longest = std::max(longest, rows.offsets[u + 1] - rows.offsets[u]);
    }
    w.kv.reset(1, rows.sequences(), longest, layout_.d, layout_.h);
    backbone_forward(layout_, theta_.data(), rows, w.kv, act, /*keep=*/true);
  }

 public:
  /// `backbone_backward` with the calling thread's buffers.
  void backward(const packed_rows& rows, const backbone_activations<T>& act,
                const row_matrix_t<T>& da_f, T* grad) const {
    backbone_backward(layout_, theta_.data(), rows, act, da_f, grad, thread_workspace<T>().back);
  }

  /// Token ids of `seq` in `[0, V)`, else an error naming `argument[i][t]`.
  void check_tokens(const char* fn, const char* argument, index_t i,
                    std::span<const token_id> seq) const {
    for (std::size_t t = 0; t < seq.size(); ++t) {
      PREFOPT_CHECK(seq[t] >= 0 && seq[t] < config_.vocab_size, invalid_argument, fn, ": ",
                    argument, "[", i, "][", t, "] = ", seq[t], ", expected a token id in [0, ",
                    config_.vocab_size, ") (config.vocab_size)");
    }
  }

  /// Copies the backbone of another role's core with the same configuration.
  void copy_backbone(const transformer_core& other, const char* fn) {
    PREFOPT_CHECK(other.config_ == config_, invalid_argument, fn,
                  ": the source model's configuration differs, expected the same sizes");
    theta_.head(layout_.backbone_size) = other.theta_.head(layout_.backbone_size);
  }

 private:
  static const transformer_config& validated(const transformer_config& c, const char* fn) {
    c.validate(fn);
    return c;
  }

  transformer_config config_;
  transformer_layout layout_;
  vector_t<T> theta_;
};

}  // namespace detail

template <class T>
class transformer_reward_model;
template <class T>
class transformer_critic;

/// The shipped decoder-only transformer as a language model (file comment). `T` is float or
/// double (double for gradient checks).
template <class T>
class transformer {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                "prefopt::transformer: T must be float or double");

 public:
  using scalar_type = T;

  /// Incremental decoding: the key/value cache of every sequence and its pending tokens.
  class decode_state {
   public:
    /// Sequences of the decoding batch.
    [[nodiscard]] index_t size() const noexcept { return static_cast<index_t>(length_.size()); }
    /// Tokens of sequence `i` already in the cache.
    [[nodiscard]] index_t cached(index_t i) const { return length_[static_cast<std::size_t>(i)]; }

   private:
    friend class transformer;
    std::vector<std::vector<token_id>> pending_;
    std::vector<index_t> length_;
    detail::kv_store<T> kv_;
    row_matrix_t<T> head_t_;  // W^T, [D, V]
  };

  /// A model with the initialisation of `config` (validated: errors name the field).
  explicit transformer(const transformer_config& config)
      : core_(config, config.vocab_size * config.d_model + config.vocab_size, "transformer") {
    rng gen(config.seed, /*stream=*/0x7f1);
    T* w = core_.theta().data() + output_weight_offset();
    for (index_t k = 0; k < config.vocab_size * config.d_model; ++k) {
      w[k] = static_cast<T>(config.init_scale * gen.normal());
    }
  }

  [[nodiscard]] const transformer_config& config() const noexcept { return core_.config(); }
  [[nodiscard]] index_t vocab_size() const noexcept { return core_.config().vocab_size; }
  [[nodiscard]] token_id eos() const noexcept { return core_.config().eos; }
  [[nodiscard]] index_t num_parameters() const noexcept { return core_.theta().size(); }
  [[nodiscard]] Eigen::Ref<vector_t<T>> parameters() noexcept { return core_.theta(); }
  [[nodiscard]] Eigen::Ref<const vector_t<T>> parameters() const noexcept { return core_.theta(); }
  [[nodiscard]] index_t hidden_size() const noexcept { return core_.config().d_model; }
  [[nodiscard]] index_t output_weight_offset() const noexcept { return core_.head_offset(); }
  [[nodiscard]] index_t output_bias_offset() const noexcept {
    return core_.head_offset() + vocab_size() * hidden_size();
  }

  /// Teacher-forced logits, `out` `[batch.responses.total_length(), V]` (`SequenceModel`).
  void logits(const sequence_batch& batch, Eigen::Ref<row_matrix_t<T>> out) const {
    constexpr const char* fn = "transformer::logits";
    row_matrix_t<T> h = hidden(fn, batch, out.rows(), out.cols(), vocab_size());
    const row_matrix_t<T> wt = head_transposed();
    compute_head(h, wt, out);
  }

  /// `gradient += dL/dtheta` given `dlogits` laid out like `logits`' output.
  void accumulate_logits_gradient(const sequence_batch& batch,
                                  Eigen::Ref<const row_matrix_t<T>> dlogits,
                                  Eigen::Ref<vector_t<T>> gradient) const {
    constexpr const char* fn = "transformer::accumulate_logits_gradient";
    namespace xm = detail::transformer_math;
    check_gradient(fn, gradient);
    check_rows(fn, "dlogits", batch, dlogits.rows(), dlogits.cols(), vocab_size());
    const index_t d = hidden_size();
    const index_t v = vocab_size();
    const index_t n = dlogits.rows();
    // dh = dz W, [n, D]; `dlogits` is read in place (its rows may be strided).
    row_matrix_t<T> dh(n, d);
    xm::gemm<T>(n, d, v, dlogits.data(), dlogits.outerStride(),
                core_.theta().data() + output_weight_offset(), d, dh.data(), d,
                xm::gemm_init::zero);
    backward_through_hidden(fn, batch, dh, gradient, dlogits.data(), dlogits.outerStride());
  }

  /// The final hidden states `[batch.responses.total_length(), D]` (`LinearHeadSequenceModel`).
  void hidden_states(const sequence_batch& batch, Eigen::Ref<row_matrix_t<T>> out) const {
    out = hidden("transformer::hidden_states", batch, out.rows(), out.cols(), hidden_size());
  }

  /// `gradient += dL/dtheta` through the hidden states only (not the head).
  void accumulate_hidden_gradient(const sequence_batch& batch,
                                  Eigen::Ref<const row_matrix_t<T>> dhidden,
                                  Eigen::Ref<vector_t<T>> gradient) const {
    constexpr const char* fn = "transformer::accumulate_hidden_gradient";
    check_gradient(fn, gradient);
    check_rows(fn, "dhidden", batch, dhidden.rows(), dhidden.cols(), hidden_size());
    const row_matrix_t<T> dh = dhidden;
    backward_through_hidden(fn, batch, dh, gradient, nullptr, 0);
  }

  /// Starts decoding after `prompts` (each at most `config.max_length` tokens; an empty one reads
  /// as eos).
  [[nodiscard]] decode_state start_decoding(ragged_view<const token_id> prompts) const {
    constexpr const char* fn = "transformer::start_decoding";
    prompts.validate(fn, "prompts");
    PREFOPT_CHECK(prompts.num_sequences() >= 1, invalid_argument, fn,
                  ": prompts is empty, expected at least one sequence");
    decode_state s;
    for (index_t i = 0; i < prompts.num_sequences(); ++i) {
      const auto x = prompts.sequence(i);
      core_.check_tokens(fn, "prompts", i, x);
      PREFOPT_CHECK(static_cast<index_t>(x.size()) <= config().max_length, invalid_argument, fn,
                    ": prompts[", i, "] has ", x.size(),
                    " tokens, expected at most config.max_length = ", config().max_length,
                    " (the position table)");
      if (x.empty()) {
        s.pending_.push_back({eos()});  // an empty prompt reads as eos, as in teacher forcing
      } else {
        s.pending_.emplace_back(x.begin(), x.end());
      }
      s.length_.push_back(0);
    }
    s.kv_.reset(static_cast<index_t>(core_.layout().blocks.size()), prompts.num_sequences(),
                config().max_length, hidden_size(), config().num_heads);
    s.head_t_ = head_transposed();
    return s;
  }

  /// Next-token logits of sequences `live` (increasing ids), `out` `[live.size(), V]`.
  void next_logits(decode_state& s, std::span<const index_t> live,
                   Eigen::Ref<row_matrix_t<T>> out) const {
    constexpr const char* fn = "transformer::next_logits";
    check_live(fn, s, live);
    PREFOPT_CHECK(out.rows() == static_cast<index_t>(live.size()) && out.cols() == vocab_size(),
                  shape_error, fn, ": out is ", out.rows(), "x", out.cols(), ", expected ",
                  live.size(), "x", vocab_size());
    detail::packed_rows rows;
    for (const index_t i : live) {
      const auto u = static_cast<std::size_t>(i);
      PREFOPT_CHECK(!s.pending_[u].empty(), invalid_argument, fn, ": sequence ", i,
                    " has no new token since its last next_logits, expected append first");
      const index_t length = s.length_[u] + static_cast<index_t>(s.pending_[u].size());
      PREFOPT_CHECK(length <= config().max_length, invalid_argument, fn, ": sequence ", i,
                    " would read ", length,
                    " tokens, expected at most config.max_length = ", config().max_length,
                    " (the position table)");
      rows.add(s.pending_[u], {}, s.length_[u], i);
    }
    auto& w = detail::thread_workspace<T>();
    auto& act = w.decode;
    detail::backbone_forward(core_.layout(), core_.theta().data(), rows, s.kv_, act, false);
    row_matrix_t<T> h(static_cast<index_t>(live.size()), hidden_size());
    for (std::size_t r = 0; r < live.size(); ++r) {
      h.row(static_cast<index_t>(r)) = act.a_f.row(rows.offsets[r + 1] - 1);
      const auto u = static_cast<std::size_t>(live[r]);
      s.length_[u] += static_cast<index_t>(s.pending_[u].size());
      s.pending_[u].clear();
    }
    compute_head(h, s.head_t_, out);
  }

  /// Sequences `live[r]` continue with `tokens[r]`.
  void append(decode_state& s, std::span<const index_t> live,
              std::span<const token_id> tokens) const {
    constexpr const char* fn = "transformer::append";
    check_live(fn, s, live);
    PREFOPT_CHECK(tokens.size() == live.size(), shape_error, fn, ": tokens has ", tokens.size(),
                  " entries, expected one per live sequence (", live.size(), ")");
    for (std::size_t r = 0; r < live.size(); ++r) {
      PREFOPT_CHECK(tokens[r] >= 0 && tokens[r] < vocab_size(), invalid_argument, fn, ": tokens[",
                    r, "] = ", tokens[r], ", expected a token id in [0, ", vocab_size(), ")");
    }
    for (std::size_t r = 0; r < live.size(); ++r) {
      s.pending_[static_cast<std::size_t>(live[r])].push_back(tokens[r]);
    }
  }

 private:
  friend class transformer_reward_model<T>;
  friend class transformer_critic<T>;

  void check_gradient(const char* fn, const Eigen::Ref<vector_t<T>>& gradient) const {
    PREFOPT_CHECK(gradient.size() == num_parameters(), shape_error, fn, ": gradient has ",
                  gradient.size(), " entries, expected num_parameters() = ", num_parameters());
  }

  static void check_rows(const char* fn, const char* argument, const sequence_batch& batch,
                         index_t rows, index_t cols, index_t want_cols) {
    PREFOPT_CHECK(rows == batch.responses.total_length() && cols == want_cols, shape_error, fn,
                  ": ", argument, " is ", rows, "x", cols, ", expected ",
                  batch.responses.total_length(), "x", want_cols, " (one row per response token)");
  }

  void check_live(const char* fn, const decode_state& s, std::span<const index_t> live) const {
    for (std::size_t r = 0; r < live.size(); ++r) {
      PREFOPT_CHECK(live[r] >= 0 && live[r] < s.size(), invalid_argument, fn, ": live[", r,
                    "] = ", live[r], ", expected a sequence id in [0, ", s.size(), ")");
      PREFOPT_CHECK(r == 0 || live[r] > live[r - 1], invalid_argument, fn, ": live[", r,
                    "] = ", live[r], " <= live[", r - 1, "], expected increasing ids");
    }
  }

  [[nodiscard]] row_matrix_t<T> head_transposed() const {
    row_matrix_t<T> wt(hidden_size(), vocab_size());
    detail::transformer_math::transpose(core_.theta().data() + output_weight_offset(), vocab_size(),
                                        hidden_size(), hidden_size(), wt.data(), vocab_size());
    return wt;
  }

  void compute_head(const row_matrix_t<T>& h, const row_matrix_t<T>& wt,
                    Eigen::Ref<row_matrix_t<T>> out) const {
    namespace xm = detail::transformer_math;
    const index_t v = vocab_size();
    if (out.outerStride() == v) {
      xm::gemm<T>(h.rows(), v, hidden_size(), h.data(), hidden_size(), wt.data(), v, out.data(), v,
                  xm::gemm_init::bias, core_.theta().data() + output_bias_offset());
    } else {
      row_matrix_t<T> z(h.rows(), v);
      xm::gemm<T>(h.rows(), v, hidden_size(), h.data(), hidden_size(), wt.data(), v, z.data(), v,
                  xm::gemm_init::bias, core_.theta().data() + output_bias_offset());
      out = z;
    }
  }

  /// Final hidden states of every response position, `[T, D]` (checks `out`'s shape).
  [[nodiscard]] row_matrix_t<T> hidden(const char* fn, const sequence_batch& batch, index_t rows,
                                       index_t cols, index_t want_cols) const {
    std::vector<index_t> first;
    const detail::packed_rows packed = core_.pack(fn, batch, false, first);
    check_rows(fn, "out", batch, rows, cols, want_cols);
    const auto& act = core_.forward(packed, batch, false);
    row_matrix_t<T> h(batch.responses.total_length(), hidden_size());
    gather(batch, first, act.a_f, h);
    return h;
  }

  /// Response rows of the packed `a_f` into `h` (`[T, D]`), and back (`scatter`).
  static void gather(const sequence_batch& batch, const std::vector<index_t>& first,
                     const row_matrix_t<T>& a_f, row_matrix_t<T>& h) {
    const index_t base = batch.responses.offsets.front();
    for (index_t i = 0; i < batch.size(); ++i) {
      const auto u = static_cast<std::size_t>(i);
      const index_t row0 = batch.responses.offsets[u] - base;
      for (index_t t = 0; t < batch.responses.length(i); ++t)
        h.row(row0 + t) = a_f.row(first[u] + t);
    }
  }

  /// Backward from `dh` (`[T, D]`, gradient w.r.t. the final hidden states of response rows);
  /// with `dz` (`[T, V]`, leading dimension `ldz`), also the head's `dW = dz^T h` and
  /// `db = colsum(dz)`.
  void backward_through_hidden(const char* fn, const sequence_batch& batch,
                               const row_matrix_t<T>& dh, Eigen::Ref<vector_t<T>> gradient,
                               const T* dz, index_t ldz) const {
    namespace xm = detail::transformer_math;
    std::vector<index_t> first;
    const detail::packed_rows packed = core_.pack(fn, batch, false, first);
    const auto& act = core_.forward(packed, batch, false);
    const index_t d = hidden_size();
    const index_t base = batch.responses.offsets.front();
    row_matrix_t<T> da = row_matrix_t<T>::Zero(packed.rows(), d);
    for (index_t i = 0; i < batch.size(); ++i) {
      const auto u = static_cast<std::size_t>(i);
      const index_t row0 = batch.responses.offsets[u] - base;
      for (index_t t = 0; t < batch.responses.length(i); ++t)
        da.row(first[u] + t) = dh.row(row0 + t);
    }
    vector_t<T> g = vector_t<T>::Zero(num_parameters());
    if (dz != nullptr) {
      const index_t v = vocab_size();
      const index_t n = dh.rows();
      row_matrix_t<T> h(n, d);
      gather(batch, first, act.a_f, h);
      // dW^T = h^T dz, [D, V]; then W [V, D] += its transpose.
      row_matrix_t<T> dwt = row_matrix_t<T>::Zero(d, v);
      row_matrix_t<T> scratch;
      detail::accumulate_weight_gradient<T>(n, d, v, h.data(), d, dz, ldz, dwt.data(), scratch);
      detail::transformer_math::transpose(dwt.data(), d, v, v, g.data() + output_weight_offset(),
                                          d);
      for (index_t r = 0; r < n; ++r) {
        xm::accumulate_product<T>(g.data() + output_bias_offset(), dz + r * ldz, nullptr, v);
      }
    }
    core_.backward(packed, act, da, g.data());
    gradient += g;
  }

  detail::transformer_core<T> core_;
};

/// The transformer with a scalar head on the last token: `r(x, y) = w . LN_f(h)_{last} + b`, the
/// reward model of RLHF (trained by Bradley-Terry on preference pairs). The head starts at zero
/// (every reward 0); the backbone from `config`, or copied from a language model (the usual
/// start: the SFT policy's backbone).
template <class T>
class transformer_reward_model {
 public:
  using scalar_type = T;
  using batch_type = sequence_batch;

  explicit transformer_reward_model(const transformer_config& config)
      : core_(config, config.d_model + 1, "transformer_reward_model") {}
  /// The backbone of `policy`, a zero head.
  explicit transformer_reward_model(const transformer<T>& policy)
      : transformer_reward_model(policy.config()) {
    core_.copy_backbone(policy.core_, "transformer_reward_model");
  }

  [[nodiscard]] const transformer_config& config() const noexcept { return core_.config(); }
  [[nodiscard]] index_t num_parameters() const noexcept { return core_.theta().size(); }
  [[nodiscard]] Eigen::Ref<vector_t<T>> parameters() noexcept { return core_.theta(); }
  [[nodiscard]] Eigen::Ref<const vector_t<T>> parameters() const noexcept { return core_.theta(); }
  /// `w` (`[D]`) is `parameters()[head_offset(), + D)`, then `b`.
  [[nodiscard]] index_t head_offset() const noexcept { return core_.head_offset(); }

  /// `out[i] = r(prompts[i], responses[i])` (`RewardModel`).
  void reward(const sequence_batch& batch, Eigen::Ref<vector_d> out) const {
    constexpr const char* fn = "transformer_reward_model::reward";
    std::vector<index_t> last;
    const detail::packed_rows packed = core_.pack(fn, batch, true, last);
    PREFOPT_CHECK(out.size() == batch.size(), shape_error, fn, ": out has ", out.size(),
                  " entries, expected one per sequence (", batch.size(), ")");
    const auto& act = core_.forward(packed, batch, true);
    const index_t d = config().d_model;
    const T* w = core_.theta().data() + head_offset();
    for (index_t i = 0; i < batch.size(); ++i) {
      const index_t row = last_row(batch, last, i);
      out(i) = static_cast<double>(
          detail::transformer_math::lane_dot(act.a_f.row(row).data(), w, d) + w[d]);
    }
  }

  /// `gradient += sum_i weights[i] dr_i/dtheta`.
  void accumulate_reward_gradient(const sequence_batch& batch, Eigen::Ref<const vector_d> weights,
                                  Eigen::Ref<vector_t<T>> gradient) const {
    constexpr const char* fn = "transformer_reward_model::accumulate_reward_gradient";
    std::vector<index_t> last;
    const detail::packed_rows packed = core_.pack(fn, batch, true, last);
    PREFOPT_CHECK(weights.size() == batch.size(), shape_error, fn, ": weights has ", weights.size(),
                  " entries, expected one per sequence (", batch.size(), ")");
    PREFOPT_CHECK(gradient.size() == num_parameters(), shape_error, fn, ": gradient has ",
                  gradient.size(), " entries, expected num_parameters() = ", num_parameters());
    const auto& act = core_.forward(packed, batch, true);
    const index_t d = config().d_model;
    const T* w = core_.theta().data() + head_offset();
    vector_t<T> g = vector_t<T>::Zero(num_parameters());
    row_matrix_t<T> da = row_matrix_t<T>::Zero(packed.rows(), d);
    for (index_t i = 0; i < batch.size(); ++i) {
      const index_t row = last_row(batch, last, i);
      const T wi = static_cast<T>(weights(i));
      for (index_t c = 0; c < d; ++c) {
        da(row, c) += wi * w[c];
        g(head_offset() + c) += wi * act.a_f(row, c);
      }
      g(head_offset() + d) += wi;
    }
    core_.backward(packed, act, da, g.data());
    gradient += g;
  }

 private:
  /// The packed row of the last token of sequence `i` (prompt then response).
  static index_t last_row(const sequence_batch& batch, const std::vector<index_t>& first,
                          index_t i) {
    return first[static_cast<std::size_t>(i)] + batch.responses.length(i);
  }

  detail::transformer_core<T> core_;
};

/// The transformer with a per-token value head, `V(x, y_<t) = w . LN_f(h)_t + b` at the position
/// that predicts `y_t` (the state before `y_t` is emitted): the critic of PPO. Rows laid out like
/// `transformer::logits`' rows. The head starts at zero.
template <class T>
class transformer_critic {
 public:
  using scalar_type = T;

  explicit transformer_critic(const transformer_config& config)
      : core_(config, config.d_model + 1, "transformer_critic") {}
  /// The backbone of `policy`, a zero head.
  explicit transformer_critic(const transformer<T>& policy) : transformer_critic(policy.config()) {
    core_.copy_backbone(policy.core_, "transformer_critic");
  }

  [[nodiscard]] const transformer_config& config() const noexcept { return core_.config(); }
  [[nodiscard]] index_t num_parameters() const noexcept { return core_.theta().size(); }
  [[nodiscard]] Eigen::Ref<vector_t<T>> parameters() noexcept { return core_.theta(); }
  [[nodiscard]] Eigen::Ref<const vector_t<T>> parameters() const noexcept { return core_.theta(); }
  [[nodiscard]] index_t head_offset() const noexcept { return core_.head_offset(); }

  /// `out[row of (i, t)] = V(prompts[i], responses[i][0, t))`, `[responses.total_length()]`.
  void values(const sequence_batch& batch, Eigen::Ref<vector_d> out) const {
    constexpr const char* fn = "transformer_critic::values";
    std::vector<index_t> first;
    const detail::packed_rows packed = core_.pack(fn, batch, false, first);
    PREFOPT_CHECK(out.size() == batch.responses.total_length(), shape_error, fn, ": out has ",
                  out.size(), " entries, expected one per response token (",
                  batch.responses.total_length(), ")");
    const auto& act = core_.forward(packed, batch, false);
    const index_t d = config().d_model;
    const T* w = core_.theta().data() + head_offset();
    for_each_row(batch, first, [&](index_t row, index_t packed_row) {
      out(row) = static_cast<double>(
          detail::transformer_math::lane_dot(act.a_f.row(packed_row).data(), w, d) + w[d]);
    });
  }

  /// `gradient += sum_k dvalues[k] dV_k/dtheta`.
  void accumulate_value_gradient(const sequence_batch& batch, Eigen::Ref<const vector_d> dvalues,
                                 Eigen::Ref<vector_t<T>> gradient) const {
    constexpr const char* fn = "transformer_critic::accumulate_value_gradient";
    std::vector<index_t> first;
    const detail::packed_rows packed = core_.pack(fn, batch, false, first);
    PREFOPT_CHECK(dvalues.size() == batch.responses.total_length(), shape_error, fn,
                  ": dvalues has ", dvalues.size(), " entries, expected one per response token (",
                  batch.responses.total_length(), ")");
    PREFOPT_CHECK(gradient.size() == num_parameters(), shape_error, fn, ": gradient has ",
                  gradient.size(), " entries, expected num_parameters() = ", num_parameters());
    const auto& act = core_.forward(packed, batch, false);
    const index_t d = config().d_model;
    const T* w = core_.theta().data() + head_offset();
    vector_t<T> g = vector_t<T>::Zero(num_parameters());
    row_matrix_t<T> da = row_matrix_t<T>::Zero(packed.rows(), d);
    for_each_row(batch, first, [&](index_t row, index_t packed_row) {
      const T dv = static_cast<T>(dvalues(row));
      for (index_t c = 0; c < d; ++c) {
        da(packed_row, c) += dv * w[c];
        g(head_offset() + c) += dv * act.a_f(packed_row, c);
      }
      g(head_offset() + d) += dv;
    });
    core_.backward(packed, act, da, g.data());
    gradient += g;
  }

 private:
  template <class F>
  static void for_each_row(const sequence_batch& batch, const std::vector<index_t>& first, F&& f) {
    const index_t base = batch.responses.offsets.front();
    for (index_t i = 0; i < batch.size(); ++i) {
      const auto u = static_cast<std::size_t>(i);
      const index_t row0 = batch.responses.offsets[u] - base;
      for (index_t t = 0; t < batch.responses.length(i); ++t) f(row0 + t, first[u] + t);
    }
  }

  detail::transformer_core<T> core_;
};

/// Frees the calling thread's transformer buffers of scalar type `T` (kept activations and
/// scratch, see the file comment) and forgets the pass they held. The next teacher-forced call
/// allocates them again.
template <class T>
void release_transformer_workspace() {
  detail::thread_workspace<T>().release();
}

static_assert(LinearHeadSequenceModel<transformer<float>>);
static_assert(LinearHeadSequenceModel<transformer<double>>);
static_assert(RewardModel<transformer_reward_model<float>>);

}  // namespace prefopt
