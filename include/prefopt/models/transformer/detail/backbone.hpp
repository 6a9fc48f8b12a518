#pragma once
/// \file
/// The shipped transformer's backbone: parameter layout, the forward pass over packed rows with
/// a key/value store, and the hand-written backward. Shared by `transformer` (language model),
/// `transformer_reward_model` and `transformer_critic` (`models/transformer/transformer.hpp`).

#include <Eigen/Core>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "prefopt/core/assert.hpp"
#include "prefopt/core/error.hpp"
#include "prefopt/core/random.hpp"
#include "prefopt/core/types.hpp"
#include "prefopt/models/transformer/config.hpp"
#include "prefopt/models/transformer/detail/math.hpp"

namespace prefopt::detail {

/// Offsets of every parameter block in the flat vector. Matrices are row-major `[in, out]`
/// (`y = x W + b`), except the language-model head, `[V, D]` as `LinearHeadSequenceModel` wants.
struct transformer_layout {
  struct block {
    index_t ln1_g, ln1_b, w_qkv, b_qkv, w_o, b_o, ln2_g, ln2_b, w_fc, b_fc, w_proj, b_proj;
  };
  index_t d = 0, f = 0, v = 0, p = 0, h = 0, dh = 0;
  index_t tok = 0, pos = 0, lnf_g = 0, lnf_b = 0;
  std::vector<block> blocks;
  index_t backbone_size = 0;

  explicit transformer_layout(const transformer_config& c)
      : d(c.d_model),
        f(c.mlp_width()),
        v(c.vocab_size),
        p(c.max_length),
        h(c.num_heads),
        dh(c.head_dim()) {
    index_t at = 0;
    auto take = [&](index_t n) {
      const index_t o = at;
      at += n;
      return o;
    };
    tok = take(v * d);
    pos = take(p * d);
    for (index_t l = 0; l < c.num_layers; ++l) {
      block b{};
      b.ln1_g = take(d);
      b.ln1_b = take(d);
      b.w_qkv = take(d * 3 * d);
      b.b_qkv = take(3 * d);
      b.w_o = take(d * d);
      b.b_o = take(d);
      b.ln2_g = take(d);
      b.ln2_b = take(d);
      b.w_fc = take(d * f);
      b.b_fc = take(f);
      b.w_proj = take(f * d);
      b.b_proj = take(d);
      blocks.push_back(b);
    }
    lnf_g = take(d);
    lnf_b = take(d);
    backbone_size = at;
  }
};

/// Writes the initialisation of `config` (documented on `transformer_config`) into
/// `theta[0, backbone_size)`.
template <class T>
void init_backbone(const transformer_config& c, const transformer_layout& lay, rng& gen, T* theta) {
  auto normal = [&](index_t o, index_t n, double sd) {
    for (index_t k = 0; k < n; ++k) theta[o + k] = static_cast<T>(sd * gen.normal());
  };
  auto fill = [&](index_t o, index_t n, T value) { std::fill(theta + o, theta + o + n, value); };
  const double sd = c.init_scale;
  const double sd_out =
      sd / std::sqrt(2.0 * static_cast<double>(std::max<index_t>(1, c.num_layers)));
  normal(lay.tok, lay.v * lay.d, sd);
  normal(lay.pos, lay.p * lay.d, sd);
  for (const auto& b : lay.blocks) {
    fill(b.ln1_g, lay.d, T(1));
    fill(b.ln1_b, lay.d, T(0));
    normal(b.w_qkv, lay.d * 3 * lay.d, sd);
    fill(b.b_qkv, 3 * lay.d, T(0));
    normal(b.w_o, lay.d * lay.d, sd_out);
    fill(b.b_o, lay.d, T(0));
    fill(b.ln2_g, lay.d, T(1));
    fill(b.ln2_b, lay.d, T(0));
    normal(b.w_fc, lay.d * lay.f, sd);
    fill(b.b_fc, lay.f, T(0));
    normal(b.w_proj, lay.f * lay.d, sd_out);
    fill(b.b_proj, lay.d, T(0));
  }
  fill(lay.lnf_g, lay.d, T(1));
  fill(lay.lnf_b, lay.d, T(0));
}

/// Packed input rows: sequence `s` occupies rows `[offsets[s], offsets[s + 1])` at positions
/// `[start[s], start[s] + length)` of that sequence.
struct packed_rows {
  std::vector<index_t> offsets{0};
  std::vector<index_t> start;
  std::vector<token_id> tokens;
  std::vector<index_t> positions;
  /// The cache slot of each sequence (its index in the key/value store).
  std::vector<index_t> slot;

  [[nodiscard]] index_t rows() const noexcept { return static_cast<index_t>(tokens.size()); }
  [[nodiscard]] index_t sequences() const noexcept { return static_cast<index_t>(start.size()); }
  void add(std::span<const token_id> a, std::span<const token_id> b, index_t first_position,
           index_t cache_slot) {
    start.push_back(first_position);
    slot.push_back(cache_slot);
    index_t t = first_position;
    for (const token_id x : a) {
      tokens.push_back(x);
      positions.push_back(t++);
    }
    for (const token_id x : b) {
      tokens.push_back(x);
      positions.push_back(t++);
    }
    offsets.push_back(static_cast<index_t>(tokens.size()));
  }
};

/// Keys (transposed, `[dh, capacity]` per head) and values (`[capacity, D]`) of every sequence
/// slot and layer.
template <class T>
struct kv_store {
  index_t layers = 0, slots = 0, capacity = 0, d = 0, h = 0, dh = 0;
  std::vector<T> keys;    // [layer][slot][head][dh][capacity]
  std::vector<T> values;  // [layer][slot][capacity][d]

  void reset(index_t num_layers, index_t num_slots, index_t cap, index_t width, index_t heads) {
    layers = num_layers;
    slots = num_slots;
    capacity = cap;
    d = width;
    h = heads;
    dh = width / heads;
    keys.assign(static_cast<std::size_t>(layers * slots * d * capacity), T(0));
    values.assign(static_cast<std::size_t>(layers * slots * capacity * d), T(0));
  }
  [[nodiscard]] T* kt(index_t l, index_t s, index_t head) {
    return keys.data() + ((l * slots + s) * h + head) * dh * capacity;
  }
  [[nodiscard]] T* v(index_t l, index_t s) {
    return values.data() + (l * slots + s) * capacity * d;
  }
};

/// Activations of one layer (kept for the backward when asked).
template <class T>
struct layer_activations {
  row_matrix_t<T> x, xhat1, a1, qkv, att, xmid, xhat2, a2, u, t, g;
  vector_t<T> rstd1, rstd2;
  std::vector<T> probs;  // per sequence and head: [rows of s][cache length of s]
};

template <class T>
struct backbone_activations {
  std::vector<layer_activations<T>> layers;
  row_matrix_t<T> x_final, xhat_f, a_f;
  vector_t<T> rstd_f;
  std::vector<index_t> prob_offsets;  // per sequence: start in `probs` (heads contiguous)
};

/// Buffers of the backward pass (reused between calls, see `thread_workspace`).
template <class T>
struct backward_buffers {
  row_matrix_t<T> dx, dg, da2, datt, dqkv, da1, at, wt;
};

/// Per-thread buffers of the teacher-forced passes, kept between calls: a training step
/// allocates the same few hundred megabytes every call, and fresh pages cost a page fault each
/// (about a sixth of the backward's time at the benchmark's sizes). The memory stays allocated
/// until `release()` (or the thread's end).
///
/// The workspace also remembers which (parameters, batch) its kept activations belong to, so that
/// the backward that follows a forward on the same batch (`hidden_states` then
/// `accumulate_hidden_gradient`, as the library's fused path calls them) does not run the forward
/// again. Two passes are remembered (least recently used replaced): the library scores a batch in
/// chunks of positions, then differentiates the same chunks in the same order. The key hashes every
/// parameter and every token: any change recomputes.
template <class T>
struct transformer_workspace {
  struct pass {
    backbone_activations<T> act;
    bool valid = false;
    std::uint64_t key = 0;
    std::uint64_t used = 0;  // recency stamp
  };
  std::array<pass, 2> passes;
  std::uint64_t clock = 0;
  backbone_activations<T> decode;  // incremental decoding's (never kept)
  backward_buffers<T> back;
  kv_store<T> kv;
  void release() { *this = transformer_workspace{}; }
};

/// A 64-bit hash of `n` bytes, four independent multiply-xor lanes (fast: a few milliseconds for
/// millions of parameters). Guards a cache against change, not against an adversary.
inline std::uint64_t hash_bytes(const void* data, std::size_t n, std::uint64_t seed) {
  constexpr std::uint64_t m = 0x9E3779B97F4A7C15ULL;
  std::uint64_t h[4] = {seed ^ 0x243F6A8885A308D3ULL, seed ^ 0x13198A2E03707344ULL,
                        seed ^ 0xA4093822299F31D0ULL, seed ^ 0x082EFA98EC4E6C89ULL};
  const auto* p = static_cast<const unsigned char*>(data);
  std::size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    for (std::size_t l = 0; l < 4; ++l) {
      std::uint64_t w;
      std::memcpy(&w, p + i + 8 * l, 8);
      h[l] = (h[l] ^ w) * m;
      h[l] ^= h[l] >> 29;
    }
  }
  std::uint64_t tail = n;
  for (; i < n; ++i) tail = (tail ^ p[i]) * m;
  std::uint64_t out = tail;
  for (const std::uint64_t x : h) out = (out ^ x) * m ^ (out >> 31);
  return out;
}

template <class T>
[[nodiscard]] transformer_workspace<T>& thread_workspace() {
  static thread_local transformer_workspace<T> w;
  return w;
}

/// The forward pass over `rows` through every block, reading and extending `kv` (each sequence's
/// keys/values at positions `[0, start)` must already be in its slot). With `keep`, every layer's
/// activations are kept for `backbone_backward`; otherwise one set of buffers is reused.
/// Writes the final layer norm's output to `act.a_f` (`[rows, D]`).
template <class T>
void backbone_forward(const transformer_layout& lay, const T* theta, const packed_rows& in,
                      kv_store<T>& kv, backbone_activations<T>& act, bool keep) {
  namespace xm = transformer_math;
  const index_t n = in.rows();
  const index_t d = lay.d;
  const index_t dh = lay.dh;
  const index_t nl = static_cast<index_t>(lay.blocks.size());
  const T scale = T(1) / std::sqrt(static_cast<T>(dh));
  act.layers.resize(static_cast<std::size_t>(keep ? std::max<index_t>(nl, 1) : 1));
  // Probability buffer layout: sequence s, head hd, its rows x its cache length.
  act.prob_offsets.assign(static_cast<std::size_t>(in.sequences() + 1), 0);
  for (index_t s = 0; s < in.sequences(); ++s) {
    const auto u = static_cast<std::size_t>(s);
    const index_t rows_s = in.offsets[u + 1] - in.offsets[u];
    act.prob_offsets[u + 1] = act.prob_offsets[u] + lay.h * rows_s * (in.start[u] + rows_s);
  }

  row_matrix_t<T> x(n, d);
  for (index_t r = 0; r < n; ++r) {
    const T* e = theta + lay.tok + static_cast<index_t>(in.tokens[static_cast<std::size_t>(r)]) * d;
    const T* pe = theta + lay.pos + in.positions[static_cast<std::size_t>(r)] * d;
    for (index_t j = 0; j < d; ++j) x(r, j) = e[j] + pe[j];
  }
  for (index_t l = 0; l < nl; ++l) {
    const auto& b = lay.blocks[static_cast<std::size_t>(l)];
    auto& a = act.layers[static_cast<std::size_t>(keep ? l : 0)];
    const index_t kl = kv.layers == 1 ? 0 : l;  // a one-layer store is reused by every layer
    a.x = x;
    a.xhat1.resize(n, d);
    a.a1.resize(n, d);
    a.rstd1.resize(n);
    xm::parallel_for(n, [&](index_t r) {
      a.rstd1(r) = xm::layer_norm_row(a.x.row(r).data(), theta + b.ln1_g, theta + b.ln1_b,
                                      a.xhat1.row(r).data(), a.a1.row(r).data(), d);
    });
    a.qkv.resize(n, 3 * d);
    xm::gemm<T>(n, 3 * d, d, a.a1.data(), d, theta + b.w_qkv, 3 * d, a.qkv.data(), 3 * d,
                xm::gemm_init::bias, theta + b.b_qkv);
    // Extend the key/value store with this layer's new rows.
    for (index_t s = 0; s < in.sequences(); ++s) {
      const auto u = static_cast<std::size_t>(s);
      const index_t slot = in.slot[u];
      T* vs = kv.v(kl, slot);
      for (index_t r = in.offsets[u]; r < in.offsets[u + 1]; ++r) {
        const index_t p = in.positions[static_cast<std::size_t>(r)];
        const T* q = a.qkv.row(r).data();
        for (index_t hd = 0; hd < lay.h; ++hd) {
          T* kt = kv.kt(kl, slot, hd);
          for (index_t c = 0; c < dh; ++c) kt[c * kv.capacity + p] = q[d + hd * dh + c];
        }
        std::copy(q + 2 * d, q + 3 * d, vs + p * d);
      }
    }
    a.att.resize(n, d);
    a.probs.resize(static_cast<std::size_t>(act.prob_offsets.back()));
    const index_t pairs = in.sequences() * lay.h;
    xm::parallel_for(pairs, [&](index_t task) {
      const index_t s = task / lay.h;
      const index_t hd = task % lay.h;
      const auto u = static_cast<std::size_t>(s);
      const index_t r0 = in.offsets[u];
      const index_t rows_s = in.offsets[u + 1] - r0;
      const index_t len = in.start[u] + rows_s;  // keys visible to the last row
      if (rows_s == 0) return;
      T* pr = a.probs.data() + act.prob_offsets[u] + hd * rows_s * len;
      xm::gemm<T>(rows_s, len, dh, a.qkv.row(r0).data() + hd * dh, 3 * d, kv.kt(kl, in.slot[u], hd),
                  kv.capacity, pr, len, xm::gemm_init::zero, nullptr, false);
      for (index_t i = 0; i < rows_s; ++i) {
        T* row = pr + i * len;
        const index_t visible = in.start[u] + i + 1;
        for (index_t j = 0; j < visible; ++j) row[j] *= scale;
        xm::softmax_prefix(row, visible, len);
      }
      xm::gemm<T>(rows_s, dh, len, pr, len, kv.v(kl, in.slot[u]) + hd * dh, d,
                  a.att.row(r0).data() + hd * dh, d, xm::gemm_init::zero, nullptr, false);
    });
    a.xmid = a.x;
    xm::gemm<T>(n, d, d, a.att.data(), d, theta + b.w_o, d, a.xmid.data(), d,
                xm::gemm_init::accumulate);
    for (index_t r = 0; r < n; ++r)
      xm::accumulate_product<T>(a.xmid.row(r).data(), theta + b.b_o, nullptr, d);
    a.xhat2.resize(n, d);
    a.a2.resize(n, d);
    a.rstd2.resize(n);
    xm::parallel_for(n, [&](index_t r) {
      a.rstd2(r) = xm::layer_norm_row(a.xmid.row(r).data(), theta + b.ln2_g, theta + b.ln2_b,
                                      a.xhat2.row(r).data(), a.a2.row(r).data(), d);
    });
    const index_t f = lay.f;
    a.u.resize(n, f);
    a.t.resize(n, f);
    a.g.resize(n, f);
    xm::gemm<T>(n, f, d, a.a2.data(), d, theta + b.w_fc, f, a.u.data(), f, xm::gemm_init::bias,
                theta + b.b_fc);
    xm::parallel_for(n, [&](index_t r) {
      xm::gelu_forward(a.u.row(r).data(), a.t.row(r).data(), a.g.row(r).data(), f);
    });
    x = a.xmid;
    xm::gemm<T>(n, d, f, a.g.data(), f, theta + b.w_proj, d, x.data(), d,
                xm::gemm_init::accumulate);
    for (index_t r = 0; r < n; ++r)
      xm::accumulate_product<T>(x.row(r).data(), theta + b.b_proj, nullptr, d);
  }
  act.x_final = std::move(x);
  act.xhat_f.resize(n, d);
  act.a_f.resize(n, d);
  act.rstd_f.resize(n);
  xm::parallel_for(n, [&](index_t r) {
    act.rstd_f(r) =
        xm::layer_norm_row(act.x_final.row(r).data(), theta + lay.lnf_g, theta + lay.lnf_b,
                           act.xhat_f.row(r).data(), act.a_f.row(r).data(), d);
  });
}

/// `grad[o, o + rows x cols) += (A^T B)` for `A` `[n, rows]`, `B` `[n, cols]` (row-major):
/// the weight gradient of `y = x W`, reduced over rows in order (threads split `rows`).
template <class T>
void accumulate_weight_gradient(index_t n, index_t rows, index_t cols, const T* a, index_t lda,
                                const T* b, index_t ldb, T* grad, row_matrix_t<T>& at) {
  namespace xm = transformer_math;
  at.resize(rows, n);
  xm::transpose(a, n, rows, lda, at.data(), n);
  xm::gemm<T>(rows, cols, n, at.data(), n, b, ldb, grad, cols, xm::gemm_init::accumulate);
}

/// `dx (=) dy W^T` for `W` `[in, out]` row-major: `dx` `[n, in]`.
template <class T>
void input_gradient(index_t n, index_t in, index_t out, const T* dy, const T* w, T* dx,
                    transformer_math::gemm_init init, row_matrix_t<T>& wt) {
  namespace xm = transformer_math;
  wt.resize(out, in);
  xm::transpose(w, in, out, out, wt.data(), in);
  xm::gemm<T>(n, in, out, dy, out, wt.data(), in, dx, in, init);
}

/// Column sums: `grad[o, o + cols) += sum_r m[r, :]`, rows in order.
template <class T>
void accumulate_column_sums(const row_matrix_t<T>& m, T* grad) {
  for (index_t r = 0; r < m.rows(); ++r) {
    transformer_math::accumulate_product<T>(grad, m.row(r).data(), nullptr, m.cols());
  }
}

/// Layer-norm backward over all rows: `dx += LN'(dy)`, and the gain/bias gradients.
template <class T>
void layer_norm_backward(const row_matrix_t<T>& dy, const T* gamma, const row_matrix_t<T>& xhat,
                         const vector_t<T>& rstd, row_matrix_t<T>& dx, T* dgamma, T* dbeta) {
  namespace xm = transformer_math;
  const index_t d = dy.cols();
  xm::parallel_for(dy.rows(), [&](index_t r) {
    std::vector<T> scratch(static_cast<std::size_t>(d));
    xm::layer_norm_row_backward(dy.row(r).data(), gamma, xhat.row(r).data(), rstd(r),
                                dx.row(r).data(), scratch.data(), d);
  });
  for (index_t r = 0; r < dy.rows(); ++r) {
    xm::accumulate_product<T>(dgamma, dy.row(r).data(), xhat.row(r).data(), d);
    xm::accumulate_product<T>(dbeta, dy.row(r).data(), nullptr, d);
  }
}

/// The backward of `backbone_forward` (run with `keep`, every sequence starting at position 0,
/// so that each sequence's keys are its own rows): `grad += dL/dtheta` given `da_f = dL/da_f`
/// (`[rows, D]`).
template <class T>
void backbone_backward(const transformer_layout& lay, const T* theta, const packed_rows& in,
                       const backbone_activations<T>& act, const row_matrix_t<T>& da_f, T* grad,
                       backward_buffers<T>& w) {
  namespace xm = transformer_math;
  const index_t n = in.rows();
  const index_t d = lay.d;
  const index_t f = lay.f;
  const index_t dh = lay.dh;
  const T scale = T(1) / std::sqrt(static_cast<T>(dh));
  row_matrix_t<T>& dx = w.dx;
  dx.setZero(n, d);
  layer_norm_backward(da_f, theta + lay.lnf_g, act.xhat_f, act.rstd_f, dx, grad + lay.lnf_g,
                      grad + lay.lnf_b);
  for (index_t l = static_cast<index_t>(lay.blocks.size()) - 1; l >= 0; --l) {
    const auto& b = lay.blocks[static_cast<std::size_t>(l)];
    const auto& a = act.layers[static_cast<std::size_t>(l)];
    // MLP: x_out = xmid + gelu(a2 W_fc + b_fc) W_proj + b_proj.
    accumulate_weight_gradient<T>(n, f, d, a.g.data(), f, dx.data(), d, grad + b.w_proj, w.at);
    accumulate_column_sums(dx, grad + b.b_proj);
    row_matrix_t<T>& dg = w.dg;
    dg.resize(n, f);
    input_gradient<T>(n, f, d, dx.data(), theta + b.w_proj, dg.data(), xm::gemm_init::zero, w.wt);
    xm::parallel_for(n, [&](index_t r) {
      xm::gelu_backward(a.u.row(r).data(), a.t.row(r).data(), dg.row(r).data(), dg.row(r).data(),
                        f);
    });
    accumulate_weight_gradient<T>(n, d, f, a.a2.data(), d, dg.data(), f, grad + b.w_fc, w.at);
    accumulate_column_sums(dg, grad + b.b_fc);
    row_matrix_t<T>& da2 = w.da2;
    da2.resize(n, d);
    input_gradient<T>(n, d, f, dg.data(), theta + b.w_fc, da2.data(), xm::gemm_init::zero, w.wt);
    layer_norm_backward(da2, theta + b.ln2_g, a.xhat2, a.rstd2, dx, grad + b.ln2_g,
                        grad + b.ln2_b);  // dx is now dL/dxmid
    // Attention: xmid = x + att W_o + b_o.
    accumulate_weight_gradient<T>(n, d, d, a.att.data(), d, dx.data(), d, grad + b.w_o, w.at);
    accumulate_column_sums(dx, grad + b.b_o);
    row_matrix_t<T>& datt = w.datt;
    datt.resize(n, d);
    input_gradient<T>(n, d, d, dx.data(), theta + b.w_o, datt.data(), xm::gemm_init::zero, w.wt);
    row_matrix_t<T>& dqkv = w.dqkv;
    dqkv.setZero(n, 3 * d);
    xm::parallel_for(in.sequences() * lay.h, [&](index_t task) {
      const index_t s = task / lay.h;
      const index_t hd = task % lay.h;
      const auto u = static_cast<std::size_t>(s);
      const index_t r0 = in.offsets[u];
      const index_t len = in.offsets[u + 1] - r0;
      if (len == 0) return;
      PREFOPT_ASSERT(in.start[u] == 0);
      const T* p = a.probs.data() + act.prob_offsets[u] + hd * len * len;
      const T* q = a.qkv.row(r0).data() + hd * dh;
      const T* k = q + d;
      const T* v = q + 2 * d;
      const T* dout = datt.row(r0).data() + hd * dh;
      row_matrix_t<T> pt(len, len), vt(dh, len), dp(len, len), dst(len, len);
      // dV = P^T dO
      xm::transpose(p, len, len, len, pt.data(), len);
      xm::gemm<T>(len, dh, len, pt.data(), len, dout, d, dqkv.row(r0).data() + 2 * d + hd * dh,
                  3 * d, xm::gemm_init::zero, nullptr, false);
      // dP = dO V^T
      xm::transpose(v, len, dh, 3 * d, vt.data(), len);
      xm::gemm<T>(len, len, dh, dout, d, vt.data(), len, dp.data(), len, xm::gemm_init::zero,
                  nullptr, false);
      // dS = P (dP - rowsum(P dP)) scale, causal part only.
      for (index_t i = 0; i < len; ++i) {
        const T* pi = p + i * len;
        T* dpi = dp.row(i).data();
        const T dot = xm::lane_dot(pi, dpi, i + 1);
        for (index_t j = 0; j <= i; ++j) dpi[j] = pi[j] * (dpi[j] - dot) * scale;
        for (index_t j = i + 1; j < len; ++j) dpi[j] = T(0);
      }
      // dQ = dS K, dK = dS^T Q
      xm::gemm<T>(len, dh, len, dp.data(), len, k, 3 * d, dqkv.row(r0).data() + hd * dh, 3 * d,
                  xm::gemm_init::zero, nullptr, false);
      xm::transpose(dp.data(), len, len, len, dst.data(), len);
      xm::gemm<T>(len, dh, len, dst.data(), len, q, 3 * d, dqkv.row(r0).data() + d + hd * dh, 3 * d,
                  xm::gemm_init::zero, nullptr, false);
    });
    accumulate_weight_gradient<T>(n, d, 3 * d, a.a1.data(), d, dqkv.data(), 3 * d, grad + b.w_qkv,
                                  w.at);
    accumulate_column_sums(dqkv, grad + b.b_qkv);
    row_matrix_t<T>& da1 = w.da1;
    da1.resize(n, d);
    input_gradient<T>(n, d, 3 * d, dqkv.data(), theta + b.w_qkv, da1.data(), xm::gemm_init::zero,
                      w.wt);
    layer_norm_backward(da1, theta + b.ln1_g, a.xhat1, a.rstd1, dx, grad + b.ln1_g,
                        grad + b.ln1_b);  // dx is now dL/dx of the block's input
  }
  for (index_t r = 0; r < n; ++r) {
    const auto u = static_cast<std::size_t>(r);
    xm::accumulate_product<T>(grad + lay.tok + static_cast<index_t>(in.tokens[u]) * d,
                              dx.row(r).data(), nullptr, d);
    xm::accumulate_product<T>(grad + lay.pos + in.positions[u] * d, dx.row(r).data(), nullptr, d);
  }
}

}  // namespace prefopt::detail
