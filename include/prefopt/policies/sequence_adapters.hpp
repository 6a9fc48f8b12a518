#pragma once
/// \file
/// The shipped policies as `SequenceModel`s, so that everything the library derives for a user's
/// language model (`sequence/derived.hpp`, `sequence/generation.hpp`) also runs on them.
///
/// - `positional_sequence_model` views a `token_softmax_policy` (K content tokens, eos = K,
///   responses of at most L tokens): vocabulary `K + 1`; the logits at response position
///   `t < L - 1` are `theta[t, .]`; at `t >= L - 1` only eos is possible (logits -inf elsewhere,
///   0 for eos), which is the policy's forced final eos. Prompts are ignored (one context).
/// - `tabular_sequence_model` views a `tabular_softmax_policy` over C contexts and A actions as a
///   one-token model over contexts: the prompt's last token is the context (`min_prompt_length()
///   = 1`, ids `< C`), the response is `[a, eos]`; vocabulary `max(A, C) + 1`, eos the last id;
///   at the first response position the logits are `z[c, .]` on the ids `< A` and -inf on the
///   others, afterwards only eos. So `S([a, eos]) = log pi(a | c)`.
///
/// Both hold their policy by value (a copy of the model is a copy of the policy, as a trainer's
/// state needs); `policy()` gives it back, and `parameters()` are its own, so gradients and
/// updates through the adapter are the policy's. Derived
/// quantities equal the shipped classes' (tested): sequence log-probs and their gradients,
/// `sum_y pi(y) sum_t KL_t(y) = token_softmax_policy::kl_divergence`, the tabular per-context KL.
/// Not supported: responses longer than L for the positional model score -inf (after the forced
/// eos), which `token_softmax_policy::log_prob` rejects as an error instead.

#include <Eigen/Core>

#include <algorithm>
#include <limits>
#include <span>
#include <utility>
#include <vector>

#include "prefopt/core/assert.hpp"
#include "prefopt/core/concepts.hpp"
#include "prefopt/core/types.hpp"
#include "prefopt/policies/tabular_softmax.hpp"
#include "prefopt/policies/token_softmax.hpp"

namespace prefopt {

/// `token_softmax_policy` as a `SequenceModel` (file comment).
class positional_sequence_model {
 public:
  using scalar_type = double;
  /// Number of tokens decoded so far, per sequence.
  struct decode_state {
    std::vector<index_t> position;
  };

  explicit positional_sequence_model(token_softmax_policy policy) : policy_(std::move(policy)) {}

  /// The policy the model holds (updates through `parameters()` are its own).
  [[nodiscard]] const token_softmax_policy& policy() const noexcept { return policy_; }
  [[nodiscard]] token_softmax_policy& policy() noexcept { return policy_; }
  [[nodiscard]] index_t vocab_size() const noexcept { return policy_.vocab_size() + 1; }
  [[nodiscard]] token_id eos() const noexcept { return policy_.eos(); }
  [[nodiscard]] index_t num_parameters() const noexcept { return policy_.num_parameters(); }
  [[nodiscard]] Eigen::Ref<vector_d> parameters() noexcept { return policy_.parameters(); }
  [[nodiscard]] Eigen::Ref<const vector_d> parameters() const noexcept {
    return policy_.parameters();
  }

  /// Row of response token t = logits of position t.
  void logits(const sequence_batch& batch, Eigen::Ref<row_matrix_d> out) const {
    const index_t base = batch.responses.offsets.empty() ? 0 : batch.responses.offsets.front();
    for (index_t i = 0; i < batch.size(); ++i) {
      const index_t row0 = batch.responses.offsets[static_cast<std::size_t>(i)] - base;
      for (index_t t = 0; t < batch.responses.length(i); ++t) write_position(t, out.row(row0 + t));
    }
  }

  /// gradient[t, .] += dlogits of every response token at a free position t.
  void accumulate_logits_gradient(const sequence_batch& batch,
                                  Eigen::Ref<const row_matrix_d> dlogits,
                                  Eigen::Ref<vector_d> gradient) const {
    const index_t base = batch.responses.offsets.empty() ? 0 : batch.responses.offsets.front();
    const index_t v = vocab_size();
    for (index_t i = 0; i < batch.size(); ++i) {
      const index_t row0 = batch.responses.offsets[static_cast<std::size_t>(i)] - base;
      const index_t free = std::min(batch.responses.length(i), policy_.max_length() - 1);
      for (index_t t = 0; t < free; ++t) {
        gradient.segment(t * v, v) += dlogits.row(row0 + t).transpose();
      }
    }
  }

  [[nodiscard]] decode_state start_decoding(ragged_view<const token_id> prompts) const {
    return {std::vector<index_t>(static_cast<std::size_t>(prompts.num_sequences()), 0)};
  }
  void next_logits(decode_state& s, std::span<const index_t> live,
                   Eigen::Ref<row_matrix_d> out) const {
    for (std::size_t r = 0; r < live.size(); ++r) {
      write_position(s.position[static_cast<std::size_t>(live[r])],
                     out.row(static_cast<index_t>(r)));
    }
  }
  void append(decode_state& s, std::span<const index_t> live, std::span<const token_id>) const {
    for (const index_t j : live) ++s.position[static_cast<std::size_t>(j)];
  }

 private:
  template <class Row>
  void write_position(index_t t, Row&& row) const {
    if (t + 1 < policy_.max_length()) {
      row = policy_.logits(t).transpose();
    } else {
      row.setConstant(-std::numeric_limits<double>::infinity());
      row(policy_.vocab_size()) = 0.0;
    }
  }

  token_softmax_policy policy_;
};

/// `tabular_softmax_policy` as a one-token `SequenceModel` over contexts (file comment).
class tabular_sequence_model {
 public:
  using scalar_type = double;
  struct decode_state {
    std::vector<index_t> context;
    std::vector<index_t> position;
  };

  explicit tabular_sequence_model(tabular_softmax_policy policy) : policy_(std::move(policy)) {}

  /// The table the model holds (updates through `parameters()` are its own).
  [[nodiscard]] const tabular_softmax_policy& policy() const noexcept { return policy_; }
  [[nodiscard]] tabular_softmax_policy& policy() noexcept { return policy_; }
  [[nodiscard]] index_t vocab_size() const noexcept {
    return std::max(policy_.num_actions(), policy_.num_contexts()) + 1;
  }
  [[nodiscard]] token_id eos() const noexcept { return static_cast<token_id>(vocab_size() - 1); }
  [[nodiscard]] index_t min_prompt_length() const noexcept { return 1; }
  [[nodiscard]] index_t num_parameters() const noexcept { return policy_.num_parameters(); }
  [[nodiscard]] Eigen::Ref<vector_d> parameters() noexcept { return policy_.parameters(); }
  [[nodiscard]] Eigen::Ref<const vector_d> parameters() const noexcept {
    return policy_.parameters();
  }

  /// The batch of one-token prompts `[c]` and responses `[a, eos]` for a tabular batch; `prompts`
  /// and `responses` receive the storage the returned view points into.
  [[nodiscard]] sequence_batch to_sequences(const tabular_batch& batch,
                                            std::vector<index_t>& prompt_offsets,
                                            std::vector<token_id>& prompts,
                                            std::vector<index_t>& response_offsets,
                                            std::vector<token_id>& responses) const {
    prompt_offsets.assign(1, 0);
    response_offsets.assign(1, 0);
    prompts.clear();
    responses.clear();
    for (index_t i = 0; i < batch.size(); ++i) {
      const auto u = static_cast<std::size_t>(i);
      prompts.push_back(static_cast<token_id>(batch.contexts[u]));
      responses.push_back(static_cast<token_id>(batch.actions[u]));
      responses.push_back(eos());
      prompt_offsets.push_back(static_cast<index_t>(prompts.size()));
      response_offsets.push_back(static_cast<index_t>(responses.size()));
    }
    return {{prompt_offsets, prompts}, {response_offsets, responses}};
  }

  void logits(const sequence_batch& batch, Eigen::Ref<row_matrix_d> out) const {
    const index_t base = batch.responses.offsets.empty() ? 0 : batch.responses.offsets.front();
    for (index_t i = 0; i < batch.size(); ++i) {
      const index_t c = context_of(batch, i);
      const index_t row0 = batch.responses.offsets[static_cast<std::size_t>(i)] - base;
      for (index_t t = 0; t < batch.responses.length(i); ++t)
        write_position(c, t, out.row(row0 + t));
    }
  }

  void accumulate_logits_gradient(const sequence_batch& batch,
                                  Eigen::Ref<const row_matrix_d> dlogits,
                                  Eigen::Ref<vector_d> gradient) const {
    const index_t base = batch.responses.offsets.empty() ? 0 : batch.responses.offsets.front();
    const index_t a = policy_.num_actions();
    for (index_t i = 0; i < batch.size(); ++i) {
      if (batch.responses.length(i) == 0) continue;
      const index_t c = context_of(batch, i);
      const index_t row = batch.responses.offsets[static_cast<std::size_t>(i)] - base;
      gradient.segment(c * a, a) += dlogits.row(row).head(a).transpose();
    }
  }

  [[nodiscard]] decode_state start_decoding(ragged_view<const token_id> prompts) const {
    decode_state s;
    for (index_t i = 0; i < prompts.num_sequences(); ++i) {
      const auto x = prompts.sequence(i);
      PREFOPT_CHECK(!x.empty() && x.back() < policy_.num_contexts(), invalid_argument,
                    "tabular_sequence_model::start_decoding: prompts[", i,
                    "] must end in a context id in [0, ", policy_.num_contexts(), ")");
      s.context.push_back(x.back());
      s.position.push_back(0);
    }
    return s;
  }
  void next_logits(decode_state& s, std::span<const index_t> live,
                   Eigen::Ref<row_matrix_d> out) const {
    for (std::size_t r = 0; r < live.size(); ++r) {
      const auto j = static_cast<std::size_t>(live[r]);
      write_position(s.context[j], s.position[j], out.row(static_cast<index_t>(r)));
    }
  }
  void append(decode_state& s, std::span<const index_t> live, std::span<const token_id>) const {
    for (const index_t j : live) ++s.position[static_cast<std::size_t>(j)];
  }

 private:
  [[nodiscard]] index_t context_of(const sequence_batch& batch, index_t i) const {
    const auto x = batch.prompts.sequence(i);
    PREFOPT_CHECK(!x.empty() && x.back() < policy_.num_contexts(), invalid_argument,
                  "tabular_sequence_model: batch.prompts[", i, "] must end in a context id in [0, ",
                  policy_.num_contexts(), ")");
    return x.back();
  }

  template <class Row>
  void write_position(index_t c, index_t t, Row&& row) const {
    row.setConstant(-std::numeric_limits<double>::infinity());
    if (t == 0) {
      row.head(policy_.num_actions()) = policy_.logits().row(c);
    } else {
      row(eos()) = 0.0;
    }
  }

  tabular_softmax_policy policy_;
};

static_assert(SequenceModel<positional_sequence_model>);
static_assert(SequenceModel<tabular_sequence_model>);

}  // namespace prefopt
