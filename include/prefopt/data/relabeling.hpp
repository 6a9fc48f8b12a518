#pragma once
/// \file
/// Hindsight instruction relabeling for HIR (ALGORITHMS.md §10; The Wisdom of Hindsight Makes
/// Language Models Better Instruction Followers, Zhang et al., arXiv 2302.05206; reference code
/// `tianjunz/HIR`):
/// - `normalize_answer` / `verify_answer`: the binary exact-match feedback of the reference code,
/// - `binary_relabeler` / `relabel`: `(instruction, query, output, feedback) -> (positive,
///   negative)` instruction, with configurable strings,
/// - `replace_instruction`: swap the instruction block (everything before the first blank line),
/// - `sample_sub_span` and `sub_span_swaps`: the seeded sub-output sampler and its swap rule.
/// Strings are treated as bytes (lower-casing is ASCII only).

#include <string>
#include <string_view>
#include <utility>

#include "prefopt/core/assert.hpp"
#include "prefopt/core/random.hpp"
#include "prefopt/core/types.hpp"

namespace prefopt::data {

/// The feedback of the verifier.
enum class feedback { correct, wrong };

/// The two instructions produced by relabeling.
struct relabeled_instructions {
  std::string positive;  ///< `c+`: an instruction the output does satisfy (hindsight)
  std::string negative;  ///< `c-`: the contrasting instruction
};

/// Normalisation of the reference verifier: ASCII lower-case, then drop spaces, periods and
/// newlines. "The Answer." and "theanswer" map to the same string.
[[nodiscard]] inline std::string normalize_answer(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (const char c : s) {
    if (c == ' ' || c == '.' || c == '\n' || c == '\r') continue;
    out.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c);
  }
  return out;
}

/// Binary exact match after normalisation.
[[nodiscard]] inline feedback verify_answer(std::string_view output, std::string_view target) {
  return normalize_answer(output) == normalize_answer(target) ? feedback::correct : feedback::wrong;
}

/// Instruction strings of the binary relabeler. Defaults: the evaluation instruction for a
/// correct answer; `reference_code()` reproduces the reference code's "Solve question with correct
/// answer." (no "the") for parity.
struct relabel_strings {
  std::string correct_instruction = "Solve the question with correct answer.";
  std::string wrong_instruction = "Solve the question with wrong answer.";
  /// `c+` used when the output is correct (defaults to `correct_instruction` when empty).
  std::string positive_if_correct = {};

  [[nodiscard]] static relabel_strings reference_code() {
    return {"Solve the question with correct answer.", "Solve the question with wrong answer.",
            "Solve question with correct answer."};
  }
};

/// The relabeler of the reference code: correct -> (correct instruction, wrong instruction);
/// wrong -> (wrong instruction, correct instruction). The instruction, query and output are part
/// of the interface (other relabelers may use them) but do not affect this one.
class binary_relabeler {
 public:
  explicit binary_relabeler(relabel_strings strings = {}) : strings_(std::move(strings)) {}

  [[nodiscard]] relabeled_instructions operator()(std::string_view /*instruction*/,
                                                  std::string_view /*query*/,
                                                  std::string_view /*output*/, feedback fb) const {
    if (fb == feedback::correct) {
      return {strings_.positive_if_correct.empty() ? strings_.correct_instruction
                                                   : strings_.positive_if_correct,
              strings_.wrong_instruction};
    }
    return {strings_.wrong_instruction, strings_.correct_instruction};
  }

  [[nodiscard]] const relabel_strings& strings() const noexcept { return strings_; }

 private:
  relabel_strings strings_;
};

/// `(instruction, query, output, feedback) -> (positive, negative)` with the default strings.
[[nodiscard]] inline relabeled_instructions relabel(std::string_view instruction,
                                                    std::string_view query, std::string_view output,
                                                    feedback fb) {
  return binary_relabeler{}(instruction, query, output, fb);
}

/// Replaces the instruction block of `prompt` — everything before the first blank line
/// ("\n\n") — by `instruction`, keeping the blank line and the rest. Throws `invalid_argument` if
/// the prompt has no blank line.
[[nodiscard]] inline std::string replace_instruction(std::string_view prompt,
                                                     std::string_view instruction) {
  const auto pos = prompt.find("\n\n");
  PREFOPT_CHECK(pos != std::string_view::npos, invalid_argument,
                "replace_instruction: the prompt has no blank line separating the instruction "
                "from the query");
  std::string out(instruction);
  out.append(prompt.substr(pos));
  return out;
}

/// A sub-output span `[start, end)` of an output of `length` tokens: the tokens before `start`
/// join the input, `[start, end)` is the target.
struct sub_span {
  index_t start = 0;
  index_t end = 0;
  friend bool operator==(const sub_span&, const sub_span&) = default;
};

/// The reference `DynamicLengthSampler`: for `length >= 4`, `start` uniform over the even values
/// `< length - 3`, then `end` uniform over the odd values in `(start, length]`; for `length <= 3`
/// the whole output `[0, length)`. Deterministic given the generator's state.
[[nodiscard]] inline sub_span sample_sub_span(index_t length, rng& generator) {
  PREFOPT_CHECK(length >= 0, invalid_argument, "sample_sub_span: length = ", length,
                ", expected >= 0");
  if (length <= 3) return {0, length};
  const index_t starts = (length - 3 + 1) / 2;  // even values 0, 2, ... < length - 3
  const index_t start = 2 * generator.uniform_index(starts);
  const index_t ends = (length - start + 1) / 2;  // start+1, start+3, ... <= length
  const index_t end = start + 1 + 2 * generator.uniform_index(ends);
  return {start, end};
}

/// The swap rule of the reference trainer: when the output was truncated (`end < length`), the
/// full output was judged wrong, and the normalised truncated output `output[0, end)` equals or is
/// contained in the normalised target answer, the partial output counts as correct and `c+` / `c-`
/// are swapped. (As in the reference, an empty normalised prefix is contained in any target.)
[[nodiscard]] inline bool sub_span_swaps(std::string_view truncated_output,
                                         std::string_view target_answer, bool truncated,
                                         feedback full_output) {
  if (!truncated || full_output == feedback::correct) return false;
  return normalize_answer(target_answer).find(normalize_answer(truncated_output)) !=
         std::string::npos;
}

/// Applies `sub_span_swaps`: swaps `positive` and `negative` when it holds; returns whether it did.
inline bool apply_sub_span_rule(relabeled_instructions& r, std::string_view truncated_output,
                                std::string_view target_answer, bool truncated,
                                feedback full_output) {
  if (!sub_span_swaps(truncated_output, target_answer, truncated, full_output)) return false;
  std::swap(r.positive, r.negative);
  return true;
}

}  // namespace prefopt::data
