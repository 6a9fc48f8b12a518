// Example 06: per-token log-probs, entropies and sequence log-probs from a language model's logits,
// and the gradient back to the logits, with prefopt's kernels.
//
// A batch of two (prompt, response) sequences is laid out token by token: the logits at position
// t predict token t + 1. Only response tokens are scored (a mask), per-token log-probs are summed
// per sequence with the ragged reduction (the sequence log-prob S(y) that DPO consumes), and a
// loss L = -sum_i S(y_i) / |y_i| (length-averaged) is differentiated back to the [T, V] logits
// in one sweep. The same numbers come out whatever the batch composition or thread count.

#include <cstdio>
#include <vector>

#include "prefopt/core/random.hpp"
#include "prefopt/kernels/ragged.hpp"
#include "prefopt/kernels/token_log_probs.hpp"
#include "prefopt/kernels/token_stats.hpp"

int main() {
  namespace k = prefopt::kernels;
  using idx = prefopt::index_t;
  const idx vocab = 5000;
  // Two sequences: prompt lengths 3 and 2, response lengths 4 and 6 (positions predicting them).
  const std::vector<idx> prompt_len{3, 2};
  const std::vector<idx> response_len{4, 6};
  idx total = 0;
  for (std::size_t s = 0; s < prompt_len.size(); ++s) total += prompt_len[s] + response_len[s];

  // Logits [T, V] from "a model" (random here), next-token targets and the response mask.
  prefopt::rng g(2024, 0);
  prefopt::row_matrix_f logits(total, vocab);
  for (idx i = 0; i < logits.size(); ++i) logits.data()[i] = static_cast<float>(3.0 * g.normal());
  std::vector<prefopt::token_id> targets(static_cast<std::size_t>(total));
  for (auto& t : targets) t = static_cast<prefopt::token_id>(g.uniform_index(vocab));
  std::vector<std::uint8_t> mask;
  std::vector<idx> offsets{0};  // response tokens of each sequence, packed
  for (std::size_t s = 0; s < prompt_len.size(); ++s) {
    mask.insert(mask.end(), static_cast<std::size_t>(prompt_len[s]), 0);
    mask.insert(mask.end(), static_cast<std::size_t>(response_len[s]), 1);
  }

  // One pass over the logits: log p(target), log-sum-exp (saved for the backward), entropy.
  std::vector<float> lp(static_cast<std::size_t>(total)), lse(lp.size()), ent(lp.size());
  k::options opt;
  opt.mask = mask;
  k::token_stats(
      logits, targets,
      {.log_probs = k::span_of(lp), .logsumexp = k::span_of(lse), .entropy = k::span_of(ent)}, opt);

  // Sequence log-probs over response tokens only: gather them, then a ragged mean
  // (length-averaged).
  std::vector<float> response_lp;
  std::vector<idx> where;  // position of each response token in the batch
  for (idx t = 0; t < total; ++t) {
    if (mask[static_cast<std::size_t>(t)] != 0) {
      response_lp.push_back(lp[static_cast<std::size_t>(t)]);
      where.push_back(t);
    }
  }
  for (const idx len : response_len) offsets.push_back(offsets.back() + len);
  std::vector<float> seq_mean(prompt_len.size()), seq_sum(prompt_len.size());
  k::ragged_sum(prefopt::ragged_view<const float>{offsets, response_lp}, k::span_of(seq_sum));
  k::ragged_mean(prefopt::ragged_view<const float>{offsets, response_lp}, k::span_of(seq_mean));
  for (std::size_t s = 0; s < seq_sum.size(); ++s) {
    std::printf("sequence %zu: S(y) = %.4f, S(y)/|y| = %.4f\n", s, static_cast<double>(seq_sum[s]),
                static_cast<double>(seq_mean[s]));
  }
  for (idx t = 0; t < total; ++t) {
    std::printf("position %2lld  mask %d  log p = %9.4f  entropy = %.4f\n",
                static_cast<long long>(t), mask[static_cast<std::size_t>(t)],
                static_cast<double>(lp[static_cast<std::size_t>(t)]),
                static_cast<double>(ent[static_cast<std::size_t>(t)]));
  }

  // Backward of L = -sum_s S(y_s)/|y_s|: dL/dS_mean = -1, broadcast to tokens, then to the logits.
  const std::vector<float> d_seq(prompt_len.size(), -1.0f);
  std::vector<float> d_response(response_lp.size());
  k::ragged_mean_backward<float>(offsets, d_seq, k::span_of(d_response));
  std::vector<float> d_lp(static_cast<std::size_t>(total), 0.0f);
  for (std::size_t r = 0; r < where.size(); ++r)
    d_lp[static_cast<std::size_t>(where[r])] = d_response[r];
  prefopt::row_matrix_f d_logits(total, vocab);
  k::token_log_probs_backward(logits, targets, std::span<const float>(lse),
                              std::span<const float>(d_lp), d_logits, opt);
  std::printf("|dL/dlogits| = %.6f (prompt rows are exactly zero: %s)\n",
              static_cast<double>(d_logits.norm()),
              d_logits.topRows(prompt_len[0]).norm() == 0.0f ? "yes" : "no");
  return 0;
}
