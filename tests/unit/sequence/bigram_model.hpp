#pragma once
// A model that only the tests define: a tiny bigram network with a hand-written backward,
//
//     h = tanh(E[c]),  z = W h + b,
//
// where c is the previous token (the last prompt token at the first response position, or the
// start row E[V] after an empty prompt). Parameters, flat: E [V + 1, D], then W [V, D], then
// b [V], all row-major. With `linear_head` it also exposes hidden states and the head's offsets
// (the fused path); without, only logits. `poison` makes one logits entry NaN (error tests).

#include <Eigen/Core>

#include <cmath>
#include <limits>
#include <span>
#include <vector>

#include "prefopt/core/random.hpp"
#include "prefopt/core/types.hpp"

namespace prefopt::test {

template <class T, bool linear_head>
class bigram_model {
 public:
  using scalar_type = T;
  struct decode_state {
    std::vector<index_t> last;  // context row of every sequence
  };

  bigram_model(index_t vocab, index_t hidden, token_id eos, std::uint64_t seed, double scale = 1.0)
      : v_(vocab), d_(hidden), eos_(eos), theta_((vocab + 1) * hidden + vocab * hidden + vocab) {
    rng gen(seed, /*stream=*/7);
    for (index_t k = 0; k < theta_.size(); ++k) theta_(k) = static_cast<T>(scale * gen.normal());
  }

  [[nodiscard]] index_t vocab_size() const { return v_; }
  [[nodiscard]] token_id eos() const { return eos_; }
  [[nodiscard]] index_t num_parameters() const { return theta_.size(); }
  [[nodiscard]] Eigen::Ref<vector_t<T>> parameters() { return theta_; }
  [[nodiscard]] Eigen::Ref<const vector_t<T>> parameters() const { return theta_; }

  /// Makes logits entry (row of context `context`, column `column`) NaN.
  void poison(index_t context, index_t column) {
    poison_context_ = context;
    poison_column_ = column;
  }

  void logits(const sequence_batch& batch, Eigen::Ref<row_matrix_t<T>> out) const {
    for_each_row(batch, [&](index_t row, index_t c) { out.row(row) = logits_of(c).transpose(); });
  }

  void accumulate_logits_gradient(const sequence_batch& batch,
                                  Eigen::Ref<const row_matrix_t<T>> dlogits,
                                  Eigen::Ref<vector_t<T>> gradient) const {
    for_each_row(batch, [&](index_t row, index_t c) {
      const vector_t<T> h = hidden_of(c);
      const vector_t<T> dz = dlogits.row(row).transpose();
      Eigen::Map<row_matrix_t<T>>(gradient.data() + w_offset(), v_, d_) += dz * h.transpose();
      gradient.segment(b_offset(), v_) += dz;
      const vector_t<T> dh = weight().transpose() * dz;
      add_hidden_gradient(c, h, dh, gradient);
    });
  }

  [[nodiscard]] index_t hidden_size() const requires linear_head { return d_; }
  [[nodiscard]] index_t output_weight_offset() const requires linear_head { return w_offset(); }
  [[nodiscard]] index_t output_bias_offset() const requires linear_head { return b_offset(); }
  void hidden_states(const sequence_batch& batch,
                     Eigen::Ref<row_matrix_t<T>> out) const requires linear_head {
    for_each_row(batch, [&](index_t row, index_t c) { out.row(row) = hidden_of(c).transpose(); });
  }
  void accumulate_hidden_gradient(const sequence_batch& batch,
                                  Eigen::Ref<const row_matrix_t<T>> dhidden,
                                  Eigen::Ref<vector_t<T>> gradient) const requires linear_head {
    for_each_row(batch, [&](index_t row, index_t c) {
      add_hidden_gradient(c, hidden_of(c), dhidden.row(row).transpose(), gradient);
    });
  }

  [[nodiscard]] decode_state start_decoding(ragged_view<const token_id> prompts) const {
    decode_state s;
    for (index_t i = 0; i < prompts.num_sequences(); ++i) {
      const auto x = prompts.sequence(i);
      s.last.push_back(x.empty() ? v_ : x.back());
    }
    return s;
  }
  void next_logits(decode_state& s, std::span<const index_t> live,
                   Eigen::Ref<row_matrix_t<T>> out) const {
    for (std::size_t r = 0; r < live.size(); ++r) {
      out.row(static_cast<index_t>(r)) =
          logits_of(s.last[static_cast<std::size_t>(live[r])]).transpose();
    }
  }
  void append(decode_state& s, std::span<const index_t> live,
              std::span<const token_id> tokens) const {
    for (std::size_t r = 0; r < live.size(); ++r) {
      s.last[static_cast<std::size_t>(live[r])] = tokens[r];
    }
  }

  /// Next-token logits after context `c` (a token id, or V for the start).
  [[nodiscard]] vector_t<T> logits_of(index_t c) const {
    vector_t<T> z = weight() * hidden_of(c) + theta_.segment(b_offset(), v_);
    if (c == poison_context_) z(poison_column_) = std::numeric_limits<T>::quiet_NaN();
    return z;
  }

 private:
  [[nodiscard]] index_t w_offset() const { return (v_ + 1) * d_; }
  [[nodiscard]] index_t b_offset() const { return w_offset() + v_ * d_; }
  [[nodiscard]] Eigen::Map<const row_matrix_t<T>> weight() const {
    return {theta_.data() + w_offset(), v_, d_};
  }
  [[nodiscard]] vector_t<T> hidden_of(index_t c) const {
    return theta_.segment(c * d_, d_).array().tanh().matrix();
  }
  template <class DH>
  void add_hidden_gradient(index_t c, const vector_t<T>& h, const DH& dh,
                           Eigen::Ref<vector_t<T>> gradient) const {
    gradient.segment(c * d_, d_).array() += dh.array() * (T(1) - h.array().square());
  }

  /// f(row, context) for every response position of the batch, rows as the concept lays them out.
  template <class F>
  void for_each_row(const sequence_batch& batch, F&& f) const {
    const index_t base = batch.responses.offsets.empty() ? 0 : batch.responses.offsets.front();
    for (index_t i = 0; i < batch.size(); ++i) {
      const auto x = batch.prompts.sequence(i);
      const auto y = batch.responses.sequence(i);
      index_t c = x.empty() ? v_ : x.back();
      const index_t row0 = batch.responses.offsets[static_cast<std::size_t>(i)] - base;
      for (std::size_t t = 0; t < y.size(); ++t) {
        f(row0 + static_cast<index_t>(t), c);
        c = y[t];
      }
    }
  }

  index_t v_;
  index_t d_;
  token_id eos_;
  vector_t<T> theta_;
  index_t poison_context_ = -1;
  index_t poison_column_ = 0;
};

}  // namespace prefopt::test
