// 02_dpo_from_jsonl: DPO and length-averaged DPO on precomputed log-probs.
//
// Shows how someone with per-token log-probs from their own policy and reference model uses
// prefopt's losses directly: load a strict JSONL preference file (prompt_ids, chosen_ids,
// rejected_ids and per-token policy / reference log-probs), compute the DPO loss (Rafailov et al.,
// arXiv 2305.18290) and its length-averaged form (Grinsztajn et al., arXiv 2406.19188) with their
// gradients with respect to the sequence log-probs, spread those to per-token gradients, and print
// the metrics practitioners log (rewards/chosen, rewards/margins, ...).
//
// Usage: 02_dpo_from_jsonl [file.jsonl] [beta_dpo]   (defaults: examples/data/dpo_pairs.jsonl, 0.1)

#include <fmt/core.h>

#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "prefopt/io/jsonl_dataset.hpp"
#include "prefopt/losses/common.hpp"
#include "prefopt/losses/dpo.hpp"

#ifndef PREFOPT_EXAMPLE_DATA_DIR
#define PREFOPT_EXAMPLE_DATA_DIR "examples/data"
#endif

namespace {

using prefopt::data::logprob_column;

template <class Loss>
void report(const char* title, const Loss& loss, const prefopt::data::preference_batch& batch) {
  const prefopt::index_t n = batch.size();
  prefopt::vector_d losses(n), grad_chosen(n), grad_rejected(n);
  const auto metrics = loss.template compute<double>(
      {batch.logps(logprob_column::policy_chosen), batch.logps(logprob_column::policy_rejected),
       batch.logps(logprob_column::reference_chosen),
       batch.logps(logprob_column::reference_rejected), batch.chosen_lengths,
       batch.rejected_lengths},
      losses, grad_chosen, grad_rejected);

  fmt::print("{} (beta_dpo = {}, length_average = {})\n", title, loss.config().beta_dpo,
             loss.config().length_average);
  for (const auto& [name, value] : metrics.named()) fmt::print("  {:<20} {:+.6f}\n", name, value);

  // Per-token gradients of the batch-mean loss for the chosen responses (what a user would
  // back-propagate through their model's token log-probs).
  std::vector<double> token_grads(static_cast<std::size_t>(batch.chosen.total_length()));
  prefopt::losses::spread_sequence_gradients<double>(
      grad_chosen, prefopt::ragged_view<double>{batch.chosen.offsets(), token_grads});
  fmt::print("  {:>4} {:>9} {:>12} {:>14}\n", "pair", "loss", "len(chosen)", "dL/dl_t (chosen)");
  for (prefopt::index_t i = 0; i < n; ++i) {
    const auto first =
        static_cast<std::size_t>(batch.chosen.offsets()[static_cast<std::size_t>(i)]);
    fmt::print("  {:>4} {:>9.5f} {:>12} {:>+14.6f}\n", batch.indices[static_cast<std::size_t>(i)],
               losses(i), batch.chosen_lengths[static_cast<std::size_t>(i)], token_grads[first]);
  }
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string path =
        argc > 1 ? argv[1] : std::string(PREFOPT_EXAMPLE_DATA_DIR) + "/dpo_pairs.jsonl";
    const double beta = argc > 2 ? std::strtod(argv[2], nullptr) : 0.1;

    const auto loaded = prefopt::io::load_preference_jsonl(path);
    const auto& dataset = loaded.dataset;
    fmt::print("loaded {} preference pairs from {} ({} truncated)\n\n", dataset.size(), path,
               loaded.report.truncated_records);
    for (const auto c : prefopt::data::all_logprob_columns) {
      if (dataset.layout(c) == prefopt::data::logprob_layout::none) {
        fmt::print(stderr, "{} has no {}: this example needs precomputed log-probs\n", path,
                   prefopt::data::column_name(c));
        return 1;
      }
    }

    const auto batch = dataset.batches(dataset.size()).front();  // one batch of every pair
    report("DPO (summed log-ratios)", prefopt::losses::sigmoid_dpo_loss({beta}), batch);
    fmt::print("\n");
    // Averaged log-ratios are ~|y| times smaller, so a larger beta_dpo is typical.
    report("Length-averaged DPO", prefopt::losses::sigmoid_dpo_loss({beta * 10.0, true}), batch);
    return 0;
  } catch (const std::exception& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
}
