#pragma once
/// \file
/// `modular_sum_instruction_task`: a sequence-level instruction-following problem for HIR
/// (Zhang et al., "The Wisdom of Hindsight Makes Language Models Better Instruction Followers",
/// arXiv 2302.05206; ALGORITHMS.md §10), with binary feedback and exact hindsight relabeling.
///
/// Vocabulary: `K` content tokens `0 .. K-1` and eos `= K`. A prompt's first token is an
/// instruction `k in [0, m)` ("make the response's token sum equal k modulo m", `2 <= m <= K`);
/// the rest of the prompt is free context. A response `y` satisfies the instruction when
///
///     sum_{t before the first eos} y_t  = k  (mod m).
///
/// Feedback (the gold reward) is 1 on success and 0 on failure; the judge prefers success,
/// `P(y > y') = 1/2 + (r(y) - r(y')) / 2` (ties 1/2). Relabeling maps any output to the
/// instruction it satisfies, `k* = sum_t y_t mod m`, so every relabeled example is a success
/// (`relabel_prompts` writes the prompts with the first token replaced). The negative
/// instruction of a 2-way contrast (§10.2) is any other `k != k*`; `negative_instruction` picks
/// `(k* + 1) mod m`. Not supported: instruction families other than the modular sum.

#include <Eigen/Core>

#include <span>
#include <vector>

#include "prefopt/core/assert.hpp"
#include "prefopt/core/concepts.hpp"
#include "prefopt/core/types.hpp"

namespace prefopt {

class modular_sum_instruction_task {
 public:
  /// `content_tokens = K >= 2` content tokens and instructions modulo `2 <= modulus <= K`.
  modular_sum_instruction_task(index_t content_tokens, index_t modulus)
      : k_(content_tokens), m_(modulus) {
    PREFOPT_CHECK(content_tokens >= 2, invalid_argument,
                  "modular_sum_instruction_task: content_tokens = ", content_tokens,
                  ", expected >= 2");
    PREFOPT_CHECK(modulus >= 2 && modulus <= content_tokens, invalid_argument,
                  "modular_sum_instruction_task: modulus = ", modulus, ", expected in [2, ",
                  content_tokens, "] (instructions are content tokens)");
  }

  /// Success feedback as a `RewardModel` over `sequence_batch` (out[i] in {0, 1}).
  class feedback_model {
   public:
    using batch_type = sequence_batch;
    explicit feedback_model(const modular_sum_instruction_task& task) : task_(&task) {}
    void reward(const sequence_batch& batch, Eigen::Ref<vector_d> out) const {
      constexpr const char* fn = "modular_sum_instruction_task::feedback_model::reward";
      PREFOPT_CHECK(out.size() == batch.size() && batch.prompts.num_sequences() == batch.size(),
                    shape_error, fn, ": out has ", out.size(), " entries, batch ",
                    batch.prompts.num_sequences(), " prompts and ", batch.size(),
                    " responses, expected equal");
      for (index_t i = 0; i < batch.size(); ++i) {
        out(i) = task_->instruction(fn, batch, i) == task_->satisfied_instruction(fn, batch, i)
                     ? 1.0
                     : 0.0;
      }
    }

   private:
    const modular_sum_instruction_task* task_;
  };

  /// Success beats failure: P(y > y') = 1/2 + (r(y) - r(y')) / 2.
  class judge_model {
   public:
    using batch_type = sequence_batch;
    explicit judge_model(const modular_sum_instruction_task& task) : task_(&task) {}
    void preference(const pair_batch<sequence_batch>& pairs, Eigen::Ref<vector_d> out) const {
      PREFOPT_CHECK(pairs.first.size() == pairs.second.size() && out.size() == pairs.size(),
                    shape_error,
                    "modular_sum_instruction_task::judge_model::preference: first has ",
                    pairs.first.size(), " responses, second ", pairs.second.size(), ", out ",
                    out.size(), ", expected equal sizes");
      vector_d a(out.size()), b(out.size());
      task_->feedback().reward(pairs.first, a);
      task_->feedback().reward(pairs.second, b);
      out = (0.5 + 0.5 * (a - b).array()).matrix();
    }

   private:
    const modular_sum_instruction_task* task_;
  };

  [[nodiscard]] feedback_model feedback() const { return feedback_model(*this); }
  [[nodiscard]] judge_model judge() const { return judge_model(*this); }
  [[nodiscard]] index_t vocab_size() const noexcept { return k_ + 1; }
  [[nodiscard]] token_id eos() const noexcept { return static_cast<token_id>(k_); }
  [[nodiscard]] index_t modulus() const noexcept { return m_; }
  /// Instructions need a prompt: its first token.
  [[nodiscard]] index_t min_prompt_length() const noexcept { return 1; }

  /// The instruction a response satisfies, `sum_t y_t mod m` (tokens before the first eos).
  [[nodiscard]] index_t satisfied_instruction(std::span<const token_id> y) const {
    index_t s = 0;
    for (std::size_t t = 0; t < y.size(); ++t) {
      PREFOPT_CHECK(y[t] >= 0 && y[t] < vocab_size(), invalid_argument,
                    "modular_sum_instruction_task::satisfied_instruction: y[", t, "] = ", y[t],
                    ", expected a token id in [0, ", vocab_size(), ")");
      if (y[t] == eos()) break;
      s += y[t];
    }
    return s % m_;
  }

  /// A negative instruction for the contrast: `(k* + 1) mod m`, never satisfied by `y`.
  [[nodiscard]] index_t negative_instruction(std::span<const token_id> y) const {
    return (satisfied_instruction(y) + 1) % m_;
  }

  /// Hindsight relabeling of a batch: `prompts` receives each prompt with its first token
  /// replaced by the instruction its response satisfies (same offsets as `batch.prompts`,
  /// rebased to 0), so every relabeled pair is a success.
  void relabel_prompts(const sequence_batch& batch, std::vector<index_t>& offsets,
                       std::vector<token_id>& prompts) const {
    constexpr const char* fn = "modular_sum_instruction_task::relabel_prompts";
    offsets.assign(1, 0);
    prompts.clear();
    for (index_t i = 0; i < batch.size(); ++i) {
      static_cast<void>(instruction(fn, batch, i));  // validates the prompt
      const auto x = batch.prompts.sequence(i);
      prompts.push_back(static_cast<token_id>(satisfied_instruction(fn, batch, i)));
      prompts.insert(prompts.end(), x.begin() + 1, x.end());
      offsets.push_back(static_cast<index_t>(prompts.size()));
    }
  }

 private:
  [[nodiscard]] index_t instruction(const char* fn, const sequence_batch& batch, index_t i) const {
    const auto x = batch.prompts.sequence(i);
    PREFOPT_CHECK(!x.empty() && x[0] >= 0 && x[0] < m_, invalid_argument, fn, ": batch.prompts[", i,
                  "] must start with an instruction in [0, ", m_, ")");
    return x[0];
  }
  [[nodiscard]] index_t satisfied_instruction(const char* fn, const sequence_batch& batch,
                                              index_t i) const {
    const auto y = batch.responses.sequence(i);
    for (std::size_t t = 0; t < y.size(); ++t) {
      PREFOPT_CHECK(y[t] >= 0 && y[t] < vocab_size(), invalid_argument, fn, ": batch.responses[", i,
                    "][", t, "] = ", y[t], ", expected a token id in [0, ", vocab_size(), ")");
    }
    return satisfied_instruction(y);
  }

  index_t k_;
  index_t m_;
};

static_assert(RewardModel<modular_sum_instruction_task::feedback_model>);
static_assert(PreferenceModel<modular_sum_instruction_task::judge_model>);

}  // namespace prefopt
