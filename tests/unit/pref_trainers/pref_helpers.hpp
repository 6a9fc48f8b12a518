#pragma once
// Shared by the generic preference-trainer tests: the exact class distribution of any
// SequenceModel on the intransitive task (all responses up to max_new_tokens enumerated), the
// class-level duality gap, a standard small problem, and central finite differences.

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <vector>

#include "prefopt/core/types.hpp"
#include "prefopt/sequence/derived.hpp"
#include "prefopt/sequence/instruction_task.hpp"
#include "prefopt/sequence/intransitive_task.hpp"

namespace prefopt::test {

/// Every response of at most `max_len` tokens over content tokens [0, K) and eos = K: the ones
/// that end with eos (lengths 1..max_len) and the truncated ones (max_len content tokens).
inline std::vector<std::vector<token_id>> all_class_task_responses(index_t k, index_t max_len) {
  std::vector<std::vector<token_id>> out;
  std::vector<std::vector<token_id>> prefixes{{}};
  for (index_t len = 0; len <= max_len; ++len) {
    std::vector<std::vector<token_id>> next;
    for (const auto& p : prefixes) {
      if (len < max_len) {
        auto e = p;
        e.push_back(static_cast<token_id>(k));
        out.push_back(e);
        for (index_t t = 0; t < k; ++t) {
          auto q = p;
          q.push_back(static_cast<token_id>(t));
          next.push_back(q);
        }
      } else {
        out.push_back(p);  // truncated
      }
    }
    prefixes = std::move(next);
  }
  return out;
}

/// Exact class probabilities `[prompts, 3]` of `model` (temperature 1) on the task's responses of
/// at most `max_len` tokens (`task.vocab_size() == model.vocab_size()`).
template <class M>
matrix_d exact_class_distribution(const M& model, const intransitive_class_task& task,
                                  ragged_view<const token_id> prompts, index_t max_len) {
  const index_t k = task.vocab_size() - 1;
  const auto responses = all_class_task_responses(k, max_len);
  matrix_d out = matrix_d::Zero(prompts.num_sequences(), 3);
  for (index_t i = 0; i < prompts.num_sequences(); ++i) {
    std::vector<index_t> po{0}, ro{0};
    std::vector<token_id> pt, rt;
    const auto x = prompts.sequence(i);
    for (const auto& y : responses) {
      pt.insert(pt.end(), x.begin(), x.end());
      po.push_back(static_cast<index_t>(pt.size()));
      rt.insert(rt.end(), y.begin(), y.end());
      ro.push_back(static_cast<index_t>(rt.size()));
    }
    const sequence_batch b{{po, pt}, {ro, rt}};
    vector_d s(b.size());
    sequence_log_probs(model, b, s);
    for (std::size_t r = 0; r < responses.size(); ++r) {
      out(i, task.response_class(responses[r])) += std::exp(s(static_cast<index_t>(r)));
    }
  }
  return out;
}

/// `task.class_duality_gap` of each prompt's class distribution (rows of `classes`), averaged
/// over prompts.
inline double class_duality_gap(const intransitive_class_task& task, const matrix_d& classes) {
  double gap = 0.0;
  for (index_t i = 0; i < classes.rows(); ++i) {
    gap += task.class_duality_gap(classes.row(i).transpose() / classes.row(i).sum());
  }
  return gap / static_cast<double>(classes.rows());
}

/// The standard small problem of these tests: K = 3 content tokens, eos 3, margins (1, 2, 3)
/// (equilibrium (1/2, 1/3, 1/6)), quality weight 0; two prompts, [3] (eos) and the empty one, so
/// that a bigram model's prompt contexts are not shared with its response contexts.
struct class_task_fixture {
  intransitive_class_task task{vector_d::Zero(3), 1.0, 2.0, 3.0, 0.0};
  intransitive_class_task::judge_model judge = task.judge();
  std::vector<index_t> prompt_offsets{0, 1, 1};
  std::vector<token_id> prompt_tokens{3};
  [[nodiscard]] ragged_view<const token_id> prompts() const {
    return {prompt_offsets, prompt_tokens};
  }
};

}  // namespace prefopt::test

namespace prefopt::test {

/// dF/dx_i by central differences, step `h` (double).
template <class F>
double pref_central_difference(F&& f, vector_d x, index_t i, double h = 1e-6) {
  const double x0 = x(i);
  x(i) = x0 + h;
  const double up = f(x);
  x(i) = x0 - h;
  const double down = f(x);
  return (up - down) / (2.0 * h);
}

/// Mean of the class-level gaps at the checkpoints after `from` (inclusive).
inline double mean_after(const std::vector<double>& gaps, std::size_t from) {
  double s = 0.0;
  for (std::size_t k = from; k < gaps.size(); ++k) s += gaps[k];
  return s / static_cast<double>(gaps.size() - from);
}

/// Exact success rate of `m` on the instruction task, prompts weighted equally (every response of
/// at most `max_len` tokens enumerated).
template <class M>
double hir_exact_success(const M& m, const modular_sum_instruction_task& task,
                         ragged_view<const token_id> prompts, prefopt::index_t max_len) {
  const auto responses = all_class_task_responses(task.vocab_size() - 1, max_len);
  double total = 0.0;
  for (prefopt::index_t i = 0; i < prompts.num_sequences(); ++i) {
    std::vector<prefopt::index_t> po{0}, ro{0};
    std::vector<token_id> pt, rt;
    const auto x = prompts.sequence(i);
    for (const auto& y : responses) {
      pt.insert(pt.end(), x.begin(), x.end());
      po.push_back(static_cast<prefopt::index_t>(pt.size()));
      rt.insert(rt.end(), y.begin(), y.end());
      ro.push_back(static_cast<prefopt::index_t>(rt.size()));
    }
    const sequence_batch b{{po, pt}, {ro, rt}};
    vector_d s(b.size()), r(b.size());
    sequence_log_probs(m, b, s);
    task.feedback().reward(b, r);
    total += (s.array().exp() * r.array()).sum();
  }
  return total / static_cast<double>(prompts.num_sequences());
}

}  // namespace prefopt::test
